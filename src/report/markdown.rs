//! `summary.md`: the recommendation, the table and the plots (relative links), ready to paste
//! into an issue or a model card. It lays out what the other report modules compute; it must
//! not compute judgements or read files.

use super::figures::Figure;
use super::merge::ReportSet;
use super::{quality, recommend, table};
use crate::report::options::ReportOptions;

/// Escape text for a Markdown table cell or line: pipes, and angle brackets (no raw HTML).
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

fn row(cells: &[String]) -> String {
    format!(
        "| {} |\n",
        cells.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
    )
}

pub fn render(set: &ReportSet, opts: &ReportOptions, figures: &[Figure]) -> String {
    let r = set.first();
    let mut s = format!(
        "# {}: what each quantization level costs\n\n",
        esc(&r.model.display())
    );
    s.push_str(&format!(
        "Measured with qeval {} on {} ({}); eval set {} v{}, {} scored tokens; reference level {}.\n\n",
        esc(&r.qeval_version),
        esc(&set.devices().join(", ")),
        esc(&set
            .runs
            .iter()
            .map(|x| format!("{}: {}, {}", x.label, x.results.device.name, crate::fmt::threads(x.results.device.threads)))
            .collect::<Vec<_>>()
            .join("; ")),
        esc(&r.evalset.name),
        esc(&r.evalset.version),
        r.evalset.scored_tokens,
        esc(&r.reference)
    ));
    s.push_str("## Recommendation\n\n");
    for line in recommend::sentences(set, opts) {
        s.push_str(&format!("- {}\n", esc(&line)));
    }
    s.push_str(&format!("\n{}\n\n", esc(&recommend::thresholds_text(opts))));
    for w in &set.warnings {
        s.push_str(&format!("> **Warning:** {}\n\n", esc(w)));
    }
    s.push_str("## Levels\n\n");
    let heads: Vec<String> = table::headers(set).iter().map(|h| h.to_string()).collect();
    s.push_str(&row(&heads));
    s.push_str(&format!("|{}\n", "---|".repeat(heads.len())));
    for cells in table::rows(set, opts) {
        s.push_str(&row(&cells));
    }
    s.push_str(
        "\n± is one standard error; speeds are medians ± standard deviation over repeats.\n\n",
    );
    // How each GGUF file was made, as its metadata says (one line per file).
    let mut made = Vec::new();
    for e in set.entries() {
        if let Some(m) = &e.level.gguf_made {
            let mix: Vec<String> = e
                .level
                .type_mix
                .iter()
                .map(|(k, v)| format!("{k} {}", crate::fmt::count(*v)))
                .collect();
            let line = format!(
                "- **{}**: {}; {}; {:.2} bits/weight ({})\n",
                esc(&e.level.level),
                esc(&e.level.source),
                esc(&m.describe()),
                e.level.bits_per_weight,
                mix.join(", ")
            );
            if !made.contains(&line) {
                made.push(line);
            }
        }
    }
    if !made.is_empty() {
        s.push_str("## GGUF files\n\n");
        s.extend(made);
        s.push('\n');
    }
    let mut task_rows = Vec::new();
    for e in set.ok_entries() {
        for t in quality::headline_tasks(e.level) {
            let mut c = vec![
                e.label(set.multi_device()),
                t.task.clone(),
                t.metric.clone(),
            ];
            c.push(crate::fmt::pct_interval(t.value, t.ci_low, t.ci_high));
            c.push(
                match (t.delta_vs_reference, t.delta_ci_low, t.delta_ci_high) {
                    (Some(d), Some(a), Some(b)) => crate::fmt::points_interval(d, a, b),
                    (Some(d), _, _) => crate::fmt::points(d),
                    _ => "reference".into(),
                },
            );
            c.push(match (t.flips_lost, t.flips_gained) {
                (Some(l), Some(g)) => format!("−{l} / +{g}"),
                _ => "-".into(),
            });
            c.push(
                t.mcnemar_p
                    .map(|p| format!("{p:.3}"))
                    .unwrap_or_else(|| "-".into()),
            );
            c.push(t.n.to_string());
            task_rows.push(c);
        }
    }
    if !task_rows.is_empty() {
        s.push_str("## Tasks\n\n");
        s.push_str(&row(&[
            "level".into(),
            "task".into(),
            "metric".into(),
            "accuracy [95% CI]".into(),
            "Δ points [95% CI]".into(),
            "flips lost / gained".into(),
            "McNemar p".into(),
            "n".into(),
        ]));
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for c in task_rows {
            s.push_str(&row(&c));
        }
        s.push('\n');
    }
    s.push_str(&super::prompts::markdown_section(set));
    s.push_str("## Plots\n\n");
    for f in figures {
        s.push_str(&format!(
            "![{}]({}.png) ([SVG]({}.svg))\n\n",
            esc(&f.title),
            f.stem,
            f.stem
        ));
    }
    s.push_str("Full report with provenance: [report.html](report.html); data: [results.csv](results.csv).\n");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_table_breakers_and_markup() {
        assert_eq!(super::esc("a|b<script>\nc"), "a\\|b&lt;script&gt; c");
    }
}
