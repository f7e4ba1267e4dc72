//! `report.html`: one self-contained page (plots inlined as base64 PNG, a few lines of inline
//! script for sorting, nothing fetched): the recommendation first, then the plots, the
//! sortable table of every level and metric, per-task results with flips, example items
//! where a level disagreed with the reference, how each level was made, and provenance.
//! Every piece of text from results or items files is HTML-escaped. It lays out what the
//! other report modules compute; it must not compute quality judgements itself or read files.

use super::figures::Figure;
use super::items;
use super::merge::ReportSet;
use super::rows::LevelRow;
use super::{quality, recommend, table};
use crate::report::options::ReportOptions;

/// How the levels' memory was measured: the host's method, and the GPU's where levels ran on one.
fn memory_method(r: &crate::results::Results) -> String {
    let host = r
        .levels
        .first()
        .map(|l| l.peak_rss_method.clone())
        .unwrap_or_default();
    match r.levels.iter().find_map(|l| l.device_memory.as_ref()) {
        Some(d) => format!(
            "GPU levels: the device's memory, {}; host: {host}",
            d.source
        ),
        None => host,
    }
}

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(data.len() * 4 / 3 + 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

/// Cut text to `n` characters, marking the cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The raw number each table column sorts by (None: sort by text).
fn sort_keys(set: &ReportSet, row: &LevelRow) -> Vec<Option<f64>> {
    let l = row.entry.level;
    let mut v: Vec<Option<f64>> = vec![None];
    if set.multi_device() {
        v.push(None);
    }
    let ok = l.is_ok();
    let k = quality::kld(l).0;
    v.extend([
        Some(row.bits_per_weight),
        Some(row.weight_bytes as f64),
        row.entry.level.memory_bytes().map(|b| b as f64),
        row.perplexity,
        row.dppl_pct,
        k.is_finite().then_some(k),
        row.kld_p99,
        row.top1_agreement,
        k.is_finite().then_some(k),
        row.prefill_tokens_per_sec,
        row.decode_tokens_per_sec,
    ]);
    if !ok {
        for x in v.iter_mut().skip(1) {
            *x = None;
        }
    }
    v
}

fn levels_table(set: &ReportSet, opts: &ReportOptions) -> String {
    let mut s = String::from("<table id=\"levels\" class=\"sortable\"><thead><tr>");
    for h in table::headers(set) {
        s.push_str(&format!(
            "<th scope=\"col\" title=\"click to sort\"{}>{}</th>",
            if h == "device" { " class=\"t\"" } else { "" },
            esc(h)
        ));
    }
    s.push_str("</tr></thead><tbody>\n");
    for row in super::rows::level_rows(set, opts) {
        let e = row.entry;
        let cls = if e.level.is_reference {
            " class=\"ref\""
        } else if !e.level.is_ok() {
            " class=\"failed\""
        } else {
            ""
        };
        s.push_str(&format!("<tr{cls}>"));
        for (i, (c, k)) in table::cells(set, &row, opts)
            .iter()
            .zip(sort_keys(set, &row))
            .enumerate()
        {
            let cls = if set.multi_device() && i == 1 {
                " class=\"t\""
            } else {
                ""
            };
            match k {
                Some(k) if k.is_finite() => {
                    s.push_str(&format!("<td{cls} data-v=\"{k}\">{}</td>", esc(c)))
                }
                _ => s.push_str(&format!("<td{cls}>{}</td>", esc(c))),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>");
    s
}

fn tasks_section(set: &ReportSet, opts: &ReportOptions) -> String {
    let mut rows = String::new();
    for e in set.ok_entries() {
        for t in &e.level.tasks {
            let verdict = match (t.delta_vs_reference, quality::task_indistinguishable(t)) {
                (None, _) => "reference".to_string(),
                (Some(_), Some(true)) => "indistinguishable from the reference".into(),
                (Some(d), _) => {
                    if d >= 0.0 {
                        "better than the reference".into()
                    } else {
                        format!("{} drop", opts.acc_thresholds.classify(-d * 100.0).word())
                    }
                }
            };
            let pct = |v: Option<f64>| v.map(crate::fmt::points).unwrap_or_default();
            rows.push_str(&format!(
                "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td></tr>\n",
                esc(&e.label(set.multi_device())),
                esc(&t.task),
                esc(t.kind.name()),
                esc(&t.metric),
                t.value,
                crate::fmt::pct_interval(t.value, t.ci_low, t.ci_high),
                t.delta_vs_reference.unwrap_or(0.0),
                match t.delta_vs_reference {
                    Some(_) => format!("{} [{}, {}]", pct(t.delta_vs_reference), pct(t.delta_ci_low), pct(t.delta_ci_high)),
                    None => "-".into(),
                },
                match (t.flips_lost, t.flips_gained) {
                    (Some(l), Some(g)) => format!("−{l} / +{g}"),
                    _ => "-".into(),
                },
                t.mcnemar_p.map(|p| format!("{p:.3}")).unwrap_or_else(|| "-".into()),
                t.min_detectable_delta.map(|m| format!("{:.1}", m * 100.0)).unwrap_or_else(|| "-".into()),
                t.n,
                esc(&verdict),
            ));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        r#"<h2 id="tasks">Tasks</h2>
<p>Accuracy with its 95% Wilson interval; Δ is the paired difference from the reference on the same items, in points, with its 95% paired-bootstrap interval. Flips: items right at the reference and wrong here (−) and the reverse (+); McNemar's exact test on them. A drop smaller than the minimum detectable Δ (80% power at the 5% level) is within noise.</p>
<div class="scroll"><table id="task-table" class="sortable"><thead><tr><th>level</th><th class="t">task</th><th class="t">kind</th><th class="t">metric</th><th>accuracy [95% CI]</th><th>Δ points [95% CI]</th><th>flips lost / gained</th><th>McNemar p</th><th>min. detectable Δ</th><th>n</th><th class="t">verdict</th></tr></thead><tbody>
{rows}</tbody></table></div>
"#
    )
}

fn examples_section(set: &ReportSet) -> String {
    let mut s = String::new();
    for run in &set.runs {
        if run.items.is_empty() {
            continue;
        }
        for l in run.results.levels.iter().filter(|l| !l.is_reference) {
            let d = items::disagreements(&run.items, &l.level, &run.results.reference, 3);
            if d.is_empty() {
                continue;
            }
            s.push_str(&format!(
                "<h3>{}{}: {} item(s) shown where it disagreed with {}</h3>\n<div class=\"scroll\"><table class=\"items\"><thead><tr><th>task / item</th><th>prompt</th><th>right answer</th><th>{} answered</th><th>{} answered</th></tr></thead><tbody>\n",
                esc(&l.level),
                if set.multi_device() { format!(" · {}", esc(&run.label)) } else { String::new() },
                d.len(),
                esc(&run.results.reference),
                esc(&run.results.reference),
                esc(&l.level),
            ));
            for x in d {
                let mark = |c: bool| if c { "✓ right" } else { "✗ wrong" };
                s.push_str(&format!(
                    "<tr><td>{} / {}</td><td class=\"prompt\">{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td></tr>\n",
                    esc(&x.item.task),
                    esc(&x.item.id),
                    esc(&clip(&x.item.prompt, 400)),
                    esc(&clip(&x.item.gold, 200)),
                    esc(&clip(&x.reference.prediction, 200)),
                    mark(x.reference.correct),
                    esc(&clip(&x.item.prediction, 200)),
                    mark(x.item.correct),
                ));
            }
            s.push_str("</tbody></table></div>\n");
        }
    }
    if s.is_empty() {
        return s;
    }
    format!("<h2 id=\"examples\">Where levels disagreed with the reference</h2>\n<p>A few items per level whose answer was right at the reference and wrong at the level (or the reverse), from the run's items file.</p>\n{s}")
}

fn figure(f: &Figure) -> String {
    format!(
        "<figure id=\"fig-{}\"><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} <span class=\"files\">({}.png, {}.svg)</span></figcaption></figure>\n",
        esc(&f.stem),
        esc(&f.alt),
        b64(&f.png),
        esc(&f.alt),
        esc(&f.stem),
        esc(&f.stem)
    )
}

fn provenance(set: &ReportSet) -> String {
    let mut s = String::new();
    for run in &set.runs {
        let r = &run.results;
        let files: String = r
            .model
            .files
            .iter()
            .map(|f| {
                format!(
                    "<li>{} ({} bytes), sha256 <code>{}</code></li>",
                    esc(&f.name),
                    f.bytes,
                    esc(&f.sha256)
                )
            })
            .collect();
        s.push_str(&format!(
            r#"<h3>{label}{src}</h3>
<ul>
<li>Model: <b>{model}</b> ({arch}, {params} parameters, source {dtype}, {format}){repo}{rev}; <code>--model {given}</code>, read from <code>{path}</code></li>
<li>Files:<ul>{files}</ul></li>
<li>Device: {kind}, {dname}, {threads}, {os}/{march}</li>
<li>Eval set: {es} v{esv} ({espath}), {tokens} text tokens, {chunks} chunks of {ctx} tokens, {scored} scored; seed {seed}{limit}</li>
<li>Scoring mode: {mode}. <i>kernel</i>: quality measured through the quantized kernels a deployment runs, which also quantize activations (on CPU to 8 bits), so KLD includes that; <i>weights</i> (levels named LEVEL-weights): the same quantized weights dequantized and multiplied in f32, the error of the weights alone. Matmul kernels: {kernels}</li>
<li>Reference: {reference}. {note}</li>
<li>qeval {ver} (git {git}), candle {candle}; run status {status}, {total:.0} s in all; created {created} (Unix time)</li>
<li>Command: <code>{cmd}</code></li>
</ul>
"#,
            label = esc(&run.label),
            src = run
                .source
                .as_ref()
                .map(|p| format!(" — <code>{}</code>", esc(&p.display().to_string())))
                .unwrap_or_default(),
            model = esc(&r.model.display()),
            given = esc(&r.model.name),
            path = esc(&r.model.path),
            arch = esc(&r.model.arch),
            params = crate::fmt::count(r.model.n_params),
            dtype = esc(&r.model.source_dtype),
            format = esc(&r.model.format),
            repo = r
                .model
                .repo
                .as_ref()
                .map(|x| format!(", from {}", esc(x)))
                .unwrap_or_default(),
            rev = r
                .model
                .revision
                .as_ref()
                .map(|x| format!(" revision {}", esc(x)))
                .unwrap_or_default(),
            files = files,
            kind = esc(r.device.kind.name()),
            dname = esc(&r.device.name),
            threads = crate::fmt::threads(r.device.threads),
            os = esc(&r.device.os),
            march = esc(&r.device.arch),
            es = esc(&r.evalset.name),
            esv = esc(&r.evalset.version),
            espath = esc(&r.evalset.path),
            tokens = r.evalset.text_tokens,
            chunks = r.evalset.chunks,
            ctx = r.evalset.ctx,
            scored = r.evalset.scored_tokens,
            mode = esc(&r.scoring_mode),
            kernels = esc(&{
                let mut k: Vec<&str> = r.levels.iter().map(|l| l.kernels.as_str()).filter(|k| !k.is_empty()).collect();
                k.dedup();
                if k.is_empty() { "not recorded".to_string() } else { k.join("; ") }
            }),
            seed = r.seed,
            limit = r
                .limit
                .map(|l| format!(", {l} items per task"))
                .unwrap_or_default(),
            reference = esc(&r.reference),
            note = esc(&r.reference_note),
            ver = esc(&r.qeval_version),
            git = esc(&r.qeval_git),
            candle = esc(&r.candle_version),
            status = esc(&format!("{:?}", r.status).to_lowercase()),
            total = r.phases.total_s,
            created = r.created_unix,
            cmd = esc(&r.command_line.join(" ")),
        ));
    }
    s
}

fn levels_made(set: &ReportSet) -> String {
    let mut s = String::new();
    for e in set.entries() {
        let l = e.level;
        // The recipe is the same on every device: describe each level once.
        if set
            .entries()
            .iter()
            .take_while(|o| !std::ptr::eq(o.level, l))
            .any(|o| {
                o.level.level == l.level
                    && o.level.source == l.source
                    && o.level.type_mix == l.type_mix
            })
        {
            continue;
        }
        let mix: Vec<String> = l
            .type_mix
            .iter()
            .map(|(k, v)| format!("{k}: {}", crate::fmt::count(*v)))
            .collect();
        s.push_str(&format!(
            "<li><b>{}</b>: {}{}{}. {:.2} bits per weight; parameters per type: {}. {} tensor(s) fell back to another type.{}</li>\n",
            esc(&l.level),
            esc(&l.source),
            l.gguf_made
                .as_ref()
                .map(|m| format!("; the file says: {}", esc(&m.describe())))
                .unwrap_or_default(),
            if l.is_ok() { "" } else { " — FAILED" },
            l.bits_per_weight,
            esc(&mix.join(", ")),
            l.fallbacks.len(),
            l.error
                .as_ref()
                .map(|e| format!(" Error: {}", esc(e)))
                .unwrap_or_default()
        ));
    }
    s
}

const STYLE: &str = r#"
:root { --fg: #1d1d1f; --muted: #555; --line: #ddd; --accent: #0072b2; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 16px; line-height: 1.5; max-width: 1380px; margin: 0 auto; padding: 0.5em 1em 3em; color: var(--fg); }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 2px solid var(--line); } h3 { font-size: 1.05em; }
.lead { color: var(--muted); margin-top: 0; }
.rec { background: #eef6fb; border-left: 5px solid var(--accent); padding: 0.6em 1em; border-radius: 4px; }
.rec ul { padding-left: 1.2em; } .rec li { margin: 0.35em 0; }
.warn { background: #fff4e5; border-left: 5px solid #e69f00; padding: 0.5em 1em; }
.note { color: var(--muted); font-size: 0.92em; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: 0.84em; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: right; white-space: nowrap; }
th.t, td.t { text-align: left; }
th:first-child, td:first-child { text-align: left; position: sticky; left: 0; background: #fff; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th:first-child { background: #f3f3f3; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
tr.ref td { font-weight: 600; } tr.failed td { color: #a00; }
table.items td, table.items th { white-space: normal; text-align: left; vertical-align: top; min-width: 8em; }
td.prompt { max-width: 32em; font-size: 0.92em; }
figure { margin: 1em 0 2em; } figure img { width: 100%; max-width: 1100px; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; } .files { white-space: nowrap; }
details summary { cursor: pointer; font-weight: 600; margin: 1em 0; }
code { font-size: 0.88em; word-break: break-all; }
nav a { margin-right: 0.8em; }
details.prompt { border: 1px solid var(--line); border-radius: 4px; padding: 0 0.8em; margin: 0.4em 0; }
details.prompt > summary { margin: 0.5em 0; font-weight: 500; } details.prompt[data-same] > summary { color: var(--muted); }
.pa pre, .pp pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; padding: 0.4em 0.6em; margin: 0.2em 0 0.6em; font-size: 0.88em; }
.pa.ref pre { background: #eef6fb; } .pa.same summary { font-weight: 400; margin: 0.3em 0; }
mark { background: #ffe08a; } mark.end { background: #f6c1c1; font-size: 0.8em; }
button[data-sort] { font-size: 0.85em; }
@media (max-width: 640px) { body { font-size: 15px; padding: 0.3em 0.6em; } h1 { font-size: 1.35em; } th, td { padding: 4px 5px; } }
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('thead th').forEach(function (th, i) {
    th.tabIndex = 0;
    var go = function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      t.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = t.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { var c = r.cells[i]; return c && c.dataset.v !== undefined ? parseFloat(c.dataset.v) : null; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), c;
        if (x !== null && y !== null) c = x - y;
        else if (x !== null) return -1;
        else if (y !== null) return 1;
        else c = a.cells[i].textContent.localeCompare(b.cells[i].textContent);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    };
    th.addEventListener('click', go);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') go(); });
  });
  t.classList.add('sortable-ready');
});
window.addEventListener('load', function () {
  var n = 0;
  for (var i = 0; i < document.images.length; i++) {
    if (document.images[i].complete && document.images[i].naturalWidth > 0) n++;
  }
  document.body.setAttribute('data-images-decoded', String(n));
});
"#;

pub fn render(set: &ReportSet, opts: &ReportOptions, figures: &[Figure]) -> String {
    let r = set.first();
    let recs: String = recommend::sentences(set, opts)
        .iter()
        .map(|s| format!("<li>{}</li>\n", esc(s)))
        .collect();
    let warnings: String = set
        .warnings
        .iter()
        .map(|w| format!("<p class=\"warn\">{}</p>\n", esc(w)))
        .collect();
    let main: String = figures.iter().filter(|f| f.main).map(figure).collect();
    let more: String = figures.iter().filter(|f| !f.main).map(figure).collect();
    let more = if more.is_empty() {
        String::new()
    } else {
        format!("<details><summary>More plots: perplexity change{} against memory, weights and speed</summary>\n{more}</details>\n",
            if figures.iter().any(|f| f.stem.starts_with("acc_")) { " and accuracy change" } else { "" })
    };
    let mut notes: Vec<&str> = Vec::new();
    for run in &set.runs {
        if !notes.contains(&run.results.reference_note.as_str()) {
            notes.push(&run.results.reference_note);
        }
    }
    let notes: String = notes
        .iter()
        .map(|n| format!("<p class=\"note\">{}</p>\n", esc(n)))
        .collect();
    let devices: Vec<String> = set
        .runs
        .iter()
        .map(|x| {
            format!(
                "{} ({}, {})",
                x.label,
                x.results.device.name,
                crate::fmt::threads(x.results.device.threads)
            )
        })
        .collect();
    let tasks = tasks_section(set, opts);
    let examples = examples_section(set);
    let prompts = super::prompts::html_section(set);
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qeval: {model}</title>
<style>{STYLE}</style></head><body>
<h1>qeval: {model}</h1>
<p class="lead">{arch}, {params} parameters, source {dtype}. Measured on {devices}. Eval set <b>{es}</b> v{esv}: {scored} scored tokens in {chunks} chunks of {ctx}. Reference level: <b>{reference}</b>.</p>
<nav><a href="#recommendation">Recommendation</a><a href="#plots">Plots</a><a href="#table">Table</a>{tasks_link}{examples_link}{prompts_link}<a href="#provenance">Provenance</a></nav>
<h2 id="recommendation">Recommendation</h2>
<div class="rec"><ul>
{recs}</ul></div>
<p class="note">{thresholds}</p>
{warnings}{notes}
<h2 id="plots">Quality loss against memory and speed</h2>
<p class="note">One point per level and device; each device has its own colour and marker shape and its own Pareto frontier (the line: no other level of that device is both smaller or faster and better). Grey points are dominated. The reference has a KLD of 0 and is drawn at the bottom of the log axis, ringed. Error bars: 95% intervals. Dashed rules are the --budget sizes; the plots show memory as measured (at the benchmark's context), while the recommendation also counts the KV cache at its stated context.</p>
{main}{more}
<h2 id="table">Every level and metric</h2>
<p class="note">Click a column to sort. ± is one standard error (PPL, KLD, same top-1) or the standard deviation over repeats (speeds). KLD: KL divergence of the level's next-token distribution from the reference's, nats per token (0 = identical). Same top-1: share of tokens where both pick the same most likely token. ΔPPL: perplexity change against the reference. Loss: the KLD's class under the thresholds above. Peak memory: {rssm}.</p>
<div class="scroll">{table}</div>
{tasks}{examples}{prompts}
<h2>How each level was made</h2>
<ul>{made}</ul>
<h2 id="provenance">Provenance</h2>
{provenance}
<p class="note">Rendered by qeval {ver} from results files alone; the same data is in results.csv and summary.md next to this page.</p>
<script>{SCRIPT}</script>
</body></html>
"##,
        model = esc(&r.model.display()),
        arch = esc(&r.model.arch),
        params = crate::fmt::count(r.model.n_params),
        dtype = esc(&r.model.source_dtype),
        devices = esc(&devices.join("; ")),
        es = esc(&r.evalset.name),
        esv = esc(&r.evalset.version),
        scored = r.evalset.scored_tokens,
        chunks = r.evalset.chunks,
        ctx = r.evalset.ctx,
        reference = esc(&r.reference),
        tasks_link = if tasks.is_empty() {
            ""
        } else {
            "<a href=\"#tasks\">Tasks</a>"
        },
        examples_link = if examples.is_empty() {
            ""
        } else {
            "<a href=\"#examples\">Examples</a>"
        },
        prompts_link = if prompts.is_empty() {
            ""
        } else {
            "<a href=\"#prompts\">Your prompts</a>"
        },
        thresholds = esc(&recommend::thresholds_text(opts)),
        rssm = esc(&memory_method(r)),
        table = levels_table(set, opts),
        made = levels_made(set),
        provenance = provenance(set),
        ver = esc(env!("CARGO_PKG_VERSION")),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::esc("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }

    #[test]
    fn base64_of_known_strings() {
        assert_eq!(super::b64(b"Man"), "TWFu");
        assert_eq!(super::b64(b"Ma"), "TWE=");
        assert_eq!(super::b64(b"M"), "TQ==");
    }

    #[test]
    fn clip_marks_the_cut() {
        assert_eq!(super::clip("abcdef", 3), "abc…");
        assert_eq!(super::clip("abc", 3), "abc");
    }
}
