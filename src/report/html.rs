//! `report.html`: one self-contained page (plots inlined as base64 PNG, no network needed):
//! summary, plots, the table of every level and metric, and provenance. All text from the
//! model or eval set is HTML-escaped.

use super::{plots, table};
use crate::results::Results;
use anyhow::Result;

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

pub fn render(r: &Results) -> Result<String> {
    let mem = b64(&plots::quality_vs_memory(r)?);
    let spd = b64(&plots::quality_vs_speed(r)?);
    let mut rows = String::new();
    for l in &r.levels {
        rows.push_str("<tr>");
        for c in table::cells(l) {
            rows.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        rows.push_str("</tr>\n");
    }
    let mut details = String::new();
    for l in &r.levels {
        let mix: Vec<String> = l
            .type_mix
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        details.push_str(&format!(
            "<li><b>{}</b>: {} {}. Types (parameters): {}. {} tensors fell back to another type.{}</li>\n",
            esc(&l.level),
            esc(&l.source),
            if l.status == "ok" { "" } else { "— FAILED" },
            esc(&mix.join(", ")),
            l.fallbacks.len(),
            l.error.as_ref().map(|e| format!(" Error: {}", esc(e))).unwrap_or_default()
        ));
    }
    let headers: String = table::HEADERS
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    let files: String = r
        .model
        .files
        .iter()
        .map(|f| {
            format!(
                "<li>{} ({} bytes) sha256 <code>{}</code></li>",
                esc(&f.name),
                f.bytes,
                esc(&f.sha256)
            )
        })
        .collect();
    Ok(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qeval: {model}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.92em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
.scroll {{ overflow-x: auto; }}
img {{ max-width: 100%; height: auto; }}
.note {{ background: #f4f4f4; padding: 0.6em 1em; border-left: 4px solid #888; }}
</style></head><body>
<h1>qeval: {model}</h1>
<p>{arch}, {params} parameters, source {src_dtype} ({format}). Device: {device} ({threads} threads). Eval set <b>{es}</b> v{esv}: {scored} scored tokens in {chunks} chunks of {ctx}. Reference level: <b>{reference}</b>. Run status: {status}.</p>
<p class="note">{refnote}</p>
<h2>Levels</h2>
<div class="scroll"><table id="levels"><thead><tr>{headers}</tr></thead><tbody>
{rows}</tbody></table></div>
<p>± is one standard error. KLD: KL divergence of the level's next-token distribution from the reference's, mean over scored tokens (0 = identical). Same top-1: share of tokens where both pick the same most likely token. PPL: perplexity on the eval text. Speeds: median ± standard deviation over repeats (prefill {pp} tokens, decode {tg} tokens). Peak RSS: {rssm}.</p>
<h2>Quality loss against memory</h2>
<img alt="mean KLD against peak memory" src="data:image/png;base64,{mem}">
<h2>Quality loss against speed</h2>
<img alt="mean KLD against decode speed" src="data:image/png;base64,{spd}">
<h2>How each level was made</h2>
<ul>{details}</ul>
<h2>Provenance</h2>
<ul>
<li>Model: {model} {repo} {rev}</li>
{files}
<li>qeval {ver} (git {git}), candle {candle}</li>
<li>Command: <code>{cmd}</code></li>
</ul>
</body></html>
"#,
        model = esc(&r.model.name),
        arch = esc(&r.model.arch),
        params = table::human_count(r.model.n_params),
        src_dtype = esc(&r.model.source_dtype),
        format = esc(&r.model.format),
        device = esc(&r.device.name),
        threads = r.device.threads,
        es = esc(&r.evalset.name),
        esv = esc(&r.evalset.version),
        scored = r.evalset.scored_tokens,
        chunks = r.evalset.chunks,
        ctx = r.evalset.ctx,
        reference = esc(&r.reference),
        status = esc(&format!("{:?}", r.status).to_lowercase()),
        refnote = esc(&r.reference_note),
        headers = headers,
        rows = rows,
        pp = r.levels.first().map(|l| l.prefill_tokens).unwrap_or(0),
        tg = r.levels.first().map(|l| l.decode_tokens).unwrap_or(0),
        rssm = esc(r
            .levels
            .first()
            .map(|l| l.peak_rss_method.as_str())
            .unwrap_or("")),
        mem = mem,
        spd = spd,
        details = details,
        repo = esc(r.model.repo.as_deref().unwrap_or("")),
        rev = esc(r.model.revision.as_deref().unwrap_or("")),
        files = files,
        ver = esc(&r.qeval_version),
        git = esc(&r.qeval_git),
        candle = esc(&r.candle_version),
        cmd = esc(&r.command_line.join(" ")),
    ))
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
}
