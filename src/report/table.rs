//! The table of every level and metric: the same cells in the terminal, HTML and Markdown.
//! It owns which cells a level shows; number formatting is `crate::fmt`'s, and it must not
//! read files.

use super::merge::ReportSet;
use super::quality;
use super::rows::{level_rows, LevelRow};
use crate::fmt::{self, opt, pm};
use crate::report::options::ReportOptions;
use crate::results::Results;

/// Column headers shared by the terminal table, the HTML table and summary.md; the
/// device column only when the report has several devices.
pub fn headers(set: &ReportSet) -> Vec<&'static str> {
    let mut h = vec!["level"];
    if set.multi_device() {
        h.push("device");
    }
    h.extend([
        "bits/w",
        "weights",
        "peak memory",
        "PPL",
        "ΔPPL",
        "KLD mean",
        "KLD p99",
        "same top-1",
        "loss",
        "prefill t/s",
        "decode t/s",
        "eval t/s",
    ]);
    h
}

/// One row of formatted cells for a level on a device.
pub fn cells(set: &ReportSet, row: &LevelRow, opts: &ReportOptions) -> Vec<String> {
    let e = &row.entry;
    let l = e.level;
    let mut v = vec![if l.is_reference {
        format!("{} (ref)", l.level)
    } else {
        l.level.clone()
    }];
    if set.multi_device() {
        v.push(e.device.to_string());
    }
    if !l.is_ok() {
        v.push("FAILED".into());
        let n = headers(set).len();
        v.extend(std::iter::repeat_n("-".to_string(), n - v.len()));
        return v;
    }
    let k = quality::kld(l).0;
    v.extend([
        format!("{:.2}", row.bits_per_weight),
        fmt::bytes(row.weight_bytes),
        match (l.memory_bytes(), &l.device_memory) {
            (Some(b), Some(_)) => format!("{} GPU", fmt::bytes(b)),
            (Some(b), None) => fmt::bytes(b),
            (None, _) => "-".into(),
        },
        pm(row.perplexity, row.perplexity_se, 3),
        row.dppl_pct
            .map(|d| format!("{d:+.1}%"))
            .unwrap_or_else(|| "-".into()),
        pm(row.kld_mean, row.kld_mean_se, 5),
        opt(row.kld_p99, 4),
        match (row.top1_agreement, row.top1_agreement_se) {
            (Some(t), Some(s)) if s.is_finite() => format!("{:.2}% ±{:.2}", t * 100.0, s * 100.0),
            (Some(t), _) => format!("{:.2}%", t * 100.0),
            _ => "-".into(),
        },
        if l.is_reference {
            "reference".into()
        } else if k.is_finite() {
            opts.kld_thresholds.classify(k).word().into()
        } else {
            "-".into()
        },
        fmt::rate(l.prefill.as_ref()),
        fmt::rate(l.decode.as_ref()),
        fmt::rate(l.eval.as_ref()),
    ]);
    v
}

/// Every row of the report, in run then level order.
pub fn rows(set: &ReportSet, opts: &ReportOptions) -> Vec<Vec<String>> {
    level_rows(set, opts)
        .iter()
        .map(|r| cells(set, r, opts))
        .collect()
}

/// One line per run saying what was measured where.
pub fn provenance_line(r: &Results, label: &str) -> String {
    format!(
        "{} ({}) on {} [{}] ({}), eval set {} v{}: {} scored tokens, ctx {}",
        r.model.display(),
        r.model.arch,
        r.device.name,
        label,
        fmt::threads(r.device.threads),
        r.evalset.name,
        r.evalset.version,
        r.evalset.scored_tokens,
        r.evalset.ctx
    )
}

/// `heads` and `rows` as text columns two spaces apart, a line of dashes under the heads; every
/// column left-aligned, or with `numbers_right` all but the first right-aligned.
pub fn aligned(heads: &[String], rows: &[Vec<String>], numbers_right: bool) -> String {
    let mut w: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(w[i].saturating_sub(c.chars().count()));
                if numbers_right && i > 0 {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect();
        let mut l = cells.join("  ").trim_end().to_string();
        l.push('\n');
        l
    };
    let mut s = line(heads);
    let dashes: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
    s.push_str(&dashes.join("  "));
    s.push('\n');
    for row in rows {
        s.push_str(&line(row));
    }
    s
}

/// The report as an aligned text table with provenance lines and notes.
pub fn render(set: &ReportSet, opts: &ReportOptions) -> String {
    let heads: Vec<String> = headers(set).iter().map(|h| h.to_string()).collect();
    let rows = rows(set, opts);
    let mut s = String::new();
    for run in &set.runs {
        s.push_str(&provenance_line(&run.results, &run.label));
        s.push('\n');
    }
    s.push_str(&aligned(&heads, &rows, false));
    for e in set.entries().iter().filter(|e| !e.level.is_ok()) {
        s.push_str(&format!(
            "{}: {}\n",
            e.label(set.multi_device()),
            e.level.error.as_deref().unwrap_or("failed")
        ));
    }
    let mut notes: Vec<&str> = Vec::new();
    for run in &set.runs {
        if !notes.contains(&run.results.reference_note.as_str()) {
            notes.push(&run.results.reference_note);
        }
    }
    for n in notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for wn in &set.warnings {
        s.push_str(&format!("warning: {wn}\n"));
    }
    s.push_str("± is one standard error; t/s are medians ± standard deviation over repeats; loss words: see the recommendation.\n");
    s
}
