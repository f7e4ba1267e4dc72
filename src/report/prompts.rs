//! The users'-prompts part of the reports, from results files and their `prompts.jsonl`
//! alone: the per-level table of free-text metrics (all prompts and per tag), and the
//! side-by-side page section — every prompt with the reference's answer and each level's,
//! the first divergence marked, identical answers collapsed, the worst prompts first. It
//! must not compute the prompt metrics (the run records them) or write files.

use super::html::esc;
use super::merge::ReportSet;
use crate::prompts::compare::PromptRecord;
use crate::results::{Interval, PromptMetrics};

fn iv(i: &Interval, scale: f64, digits: usize) -> String {
    format!(
        "{:.d$} [{:.d$}, {:.d$}]",
        i.mean * scale,
        i.low * scale,
        i.high * scale,
        d = digits
    )
}

/// Header and cells of the per-level prompt metrics (shared by HTML and Markdown).
pub fn headers() -> Vec<&'static str> {
    vec![
        "level",
        "prompts",
        "KLD on ref. answers [95% CI]",
        "same top-1 % [95% CI]",
        "identical answers % [95% CI]",
        "median first divergence (token)",
        "chrF vs ref. [95% CI]",
        "matches own reference",
    ]
}

fn cells(label: &str, m: &PromptMetrics) -> Vec<String> {
    vec![
        label.to_string(),
        m.n_prompts.to_string(),
        iv(&m.kld_mean, 1.0, 4),
        iv(&m.top1_agreement, 100.0, 1),
        iv(&m.identical, 100.0, 1),
        m.first_divergence_median
            .map(|d| format!("{d:.0}"))
            .unwrap_or_else(|| "-".into()),
        iv(&m.chrf, 1.0, 1),
        match &m.reference_match {
            Some(r) => format!(
                "{:.0}% of {} [{:.0}, {:.0}]",
                r.mean * 100.0,
                m.n_with_reference,
                r.low * 100.0,
                r.high * 100.0
            ),
            None => "-".into(),
        },
    ]
}

/// Rows over all prompts: one per level that answered them.
pub fn rows(set: &ReportSet) -> Vec<Vec<String>> {
    set.ok_entries()
        .iter()
        .filter_map(|e| {
            e.level
                .prompts
                .as_ref()
                .map(|p| cells(&e.label(set.multi_device()), &p.all))
        })
        .collect()
}

/// Rows per tag: (tag, level) pairs.
pub fn tag_rows(set: &ReportSet) -> Vec<Vec<String>> {
    let mut tags: Vec<&String> = set
        .ok_entries()
        .iter()
        .filter_map(|e| e.level.prompts.as_ref())
        .flat_map(|p| p.by_tag.keys())
        .collect();
    tags.sort();
    tags.dedup();
    let mut out = Vec::new();
    for t in tags {
        for e in set.ok_entries() {
            if let Some(m) = e.level.prompts.as_ref().and_then(|p| p.by_tag.get(t)) {
                let mut c = cells(&e.label(set.multi_device()), m);
                c.insert(0, t.clone());
                out.push(c);
            }
        }
    }
    out
}

/// What the reader needs to know about how the prompts were run.
pub fn note(set: &ReportSet) -> Option<String> {
    let p = set.runs.iter().find_map(|r| r.results.prompts.as_ref())?;
    let template = match (&p.template, &p.template_origin) {
        (Some(_), Some(o)) => format!("rendered with the model's chat template ({o})"),
        _ => "used as plain text (no chat template)".into(),
    };
    Some(format!(
        "{} prompts from {}, {template}; every level answers greedily (temperature 0) until an end-of-generation token or the prompt's max_tokens. KLD and same top-1 are teacher-forced on the reference level's own answer tokens (each prompt's mean, then the mean over prompts); identical: the greedy answer equals the reference's token for token; chrF: character n-gram F-score (β = 2, 0-100) against the reference's answer. Intervals: bootstrap over prompts (seed {}).",
        p.n_prompts, p.path, p.seed
    ))
}

/// Length in characters of the common prefix of two texts.
fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// The answer with everything from its first difference from `reference` marked.
fn marked(answer: &str, reference: &str) -> String {
    let n = common_prefix_chars(answer, reference);
    let head: String = answer.chars().take(n).collect();
    let tail: String = answer.chars().skip(n).collect();
    if tail.is_empty() {
        format!("{}<mark class=\"end\">⟂ ends here</mark>", esc(&head))
    } else {
        format!("{}<mark>{}</mark>", esc(&head), esc(&tail))
    }
}

/// An HTML table, sortable, of text cells.
fn html_table(heads: Vec<&str>, rows: Vec<Vec<String>>) -> String {
    let h: String = heads
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    let b: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr>{}</tr>\n",
                r.iter()
                    .map(|c| format!("<td>{}</td>", esc(c)))
                    .collect::<String>()
            )
        })
        .collect();
    format!("<table class=\"sortable\"><thead><tr>{h}</tr></thead><tbody>\n{b}</tbody></table>")
}

/// One prompt's block of the side-by-side view (the reference's answer, then every other
/// level's), with the worst KLD any level has on it (the sort key); None without the
/// reference's answer. `order` is the block's place in file order.
fn prompt_block(
    run: &super::merge::Run,
    id: &str,
    reference: &str,
    multi: bool,
    order: usize,
) -> Option<(f64, String)> {
    let recs = &run.prompts;
    let of: Vec<&PromptRecord> = recs.iter().filter(|r| r.id == id).collect();
    let rref = of.iter().find(|r| r.level == reference)?;
    let others: Vec<&&PromptRecord> = of.iter().filter(|r| !r.is_reference).collect();
    let worst_kld = others.iter().map(|r| r.kld_mean).fold(0.0, f64::max);
    let earliest = others.iter().filter_map(|r| r.first_divergence).min();
    let n_diff = others.iter().filter(|r| !r.identical).count();
    let mut body = format!(
        "<div class=\"pp\"><b>Prompt</b> (as the model saw it)<pre>{}</pre></div>\n<div class=\"pa ref\"><b>{} (reference)</b>, {} tokens, {:?}<pre>{}</pre></div>\n",
        esc(&rref.prompt),
        esc(&rref.level),
        rref.tokens.len(),
        rref.finish,
        if rref.answer.is_empty() {
            "(no answer: the model ended its turn at once)".to_string()
        } else {
            esc(&rref.answer)
        }
    );
    if let Some(rf) = &rref.reference {
        body.push_str(&format!(
            "<p class=\"note\">Expected (the prompt's reference): <code>{}</code></p>\n",
            esc(rf)
        ));
    }
    for r in &others {
        let verdict = match r.reference_match {
            Some(true) => " · matches the expected answer",
            Some(false) => " · does not match the expected answer",
            None => "",
        };
        if r.identical {
            body.push_str(&format!(
                "<details class=\"pa same\"><summary><b>{}</b>: identical to the reference (KLD {:.4}, same top-1 {:.0}%){}</summary><pre>{}</pre></details>\n",
                esc(&r.level),
                r.kld_mean,
                r.top1 * 100.0,
                verdict,
                esc(&r.answer)
            ));
        } else {
            body.push_str(&format!(
                "<div class=\"pa diff\"><b>{}</b>: differs from token {} (KLD {:.4}, same top-1 {:.0}%, chrF {:.1}){}<pre>{}</pre></div>\n",
                esc(&r.level),
                r.first_divergence.unwrap_or(0),
                r.kld_mean,
                r.top1 * 100.0,
                r.chrf,
                verdict,
                marked(&r.answer, &rref.answer)
            ));
        }
    }
    let title = format!(
        "{}{}{} — {}",
        id,
        if rref.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", rref.tags.join(", "))
        },
        if multi {
            format!(" · {}", run.label)
        } else {
            String::new()
        },
        if others.is_empty() {
            "reference only".to_string()
        } else if n_diff == 0 {
            "every level identical".to_string()
        } else {
            format!(
                "{n_diff} of {} levels differ, first at token {}, worst KLD {worst_kld:.4}",
                others.len(),
                earliest.unwrap_or(0)
            )
        }
    );
    Some((
        worst_kld,
        format!(
            "<details class=\"prompt\" data-kld=\"{worst_kld}\" data-div=\"{}\" data-order=\"{}\"{}><summary>{}</summary>\n{body}</details>\n",
            earliest.map(|d| d as i64).unwrap_or(i64::MAX),
            order,
            if n_diff > 0 { "" } else { " data-same=\"1\"" },
            esc(&title)
        ),
    ))
}

/// The side-by-side section of report.html (empty without prompts).
pub fn html_section(set: &ReportSet) -> String {
    let Some(note) = note(set) else {
        return String::new();
    };
    let mut tag_heads = vec!["tag"];
    tag_heads.extend(headers());
    let mut s = format!(
        "<h2 id=\"prompts\">Your prompts</h2>\n<p class=\"note\">{}</p>\n<div class=\"scroll\">{}</div>\n<details><summary>Per tag</summary><div class=\"scroll\">{}</div></details>\n",
        esc(&note),
        html_table(headers(), rows(set)),
        html_table(tag_heads, tag_rows(set)),
    );
    // Side by side: one block per prompt, from each run's records.
    let mut blocks = Vec::new();
    for run in &set.runs {
        let recs = &run.prompts;
        let Some(reference) = run.results.levels.iter().find(|l| l.is_reference) else {
            continue;
        };
        let multi = set.runs.len() > 1;
        let ids: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for r in recs {
                if !v.contains(&r.id.as_str()) {
                    v.push(&r.id);
                }
            }
            v
        };
        for id in ids {
            if let Some(b) = prompt_block(run, id, &reference.level, multi, blocks.len()) {
                blocks.push(b);
            }
        }
    }
    // Worst first: the largest KLD any level has on the prompt.
    blocks.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.push_str("<h3 id=\"answers\">Answers side by side</h3>\n<p class=\"note\">Each prompt with the reference's answer and every level's; the part of an answer after its first difference from the reference's is <mark>marked</mark>; identical answers are folded. Sort: <button type=\"button\" data-sort=\"kld\">worst KLD first</button> <button type=\"button\" data-sort=\"div\">earliest divergence first</button> <button type=\"button\" data-sort=\"order\">file order</button></p>\n<div id=\"prompt-list\">\n");
    // The three worst prompts open, the rest folded.
    for (i, (_, b)) in blocks.into_iter().enumerate() {
        if i < 3 {
            s.push_str(&b.replacen(
                "<details class=\"prompt\"",
                "<details open class=\"prompt\"",
                1,
            ));
        } else {
            s.push_str(&b);
        }
    }
    s.push_str("</div>\n<script>document.querySelectorAll('button[data-sort]').forEach(function(b){b.addEventListener('click',function(){var k=b.getAttribute('data-sort');var l=document.getElementById('prompt-list');var xs=Array.prototype.slice.call(l.children);xs.sort(function(x,y){var a=parseFloat(x.getAttribute('data-'+k)),c=parseFloat(y.getAttribute('data-'+k));return k==='kld'?c-a:a-c;});xs.forEach(function(x){l.appendChild(x);});});});</script>\n");
    s
}

/// The Markdown section of summary.md (empty without prompts).
pub fn markdown_section(set: &ReportSet) -> String {
    let Some(note) = note(set) else {
        return String::new();
    };
    let row = |c: &[String]| {
        format!(
            "| {} |\n",
            c.iter()
                .map(|x| super::markdown::esc(x))
                .collect::<Vec<_>>()
                .join(" | ")
        )
    };
    let heads: Vec<String> = headers().iter().map(|h| h.to_string()).collect();
    let mut s = format!("## Your prompts\n\n{}\n\n", super::markdown::esc(&note));
    s.push_str(&row(&heads));
    s.push_str(&format!("|{}\n", "---|".repeat(heads.len())));
    for r in rows(set) {
        s.push_str(&row(&r));
    }
    s.push_str("\nAnswers side by side: report.html#answers; every answer: prompts.jsonl.\n\n");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn marks_from_the_first_difference() {
        assert_eq!(
            super::marked("Paris is big", "Paris is nice"),
            "Paris is <mark>big</mark>"
        );
        assert_eq!(
            super::marked("Paris", "Paris is nice"),
            "Paris<mark class=\"end\">⟂ ends here</mark>"
        );
        assert_eq!(super::marked("<b>", "x"), "<mark>&lt;b&gt;</mark>");
    }
}
