//! The terminal table (same columns as the CSV and the HTML table) and number formatting.

use crate::catalog::Catalog;
use crate::results::{LevelResult, Results};

pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

pub fn human_count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}M", f / 1e6)
    } else {
        format!("{n}")
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    }
}

fn pm(v: Option<f64>, se: Option<f64>, prec: usize) -> String {
    match (v, se) {
        (Some(x), Some(s)) if x.is_finite() && s.is_finite() => format!("{x:.prec$} ±{s:.prec$}"),
        _ => opt(v, prec),
    }
}

/// Column headers shared by the table and the HTML report.
pub const HEADERS: [&str; 10] = [
    "level",
    "bits/w",
    "weights",
    "peak RSS",
    "PPL",
    "KLD mean",
    "KLD p99",
    "same top-1",
    "prefill t/s",
    "decode t/s",
];

/// One row of formatted cells for a level.
pub fn cells(l: &LevelResult) -> Vec<String> {
    if l.status != "ok" {
        let mut v = vec![l.level.clone(), "FAILED".into()];
        v.extend(std::iter::repeat_n("-".to_string(), HEADERS.len() - 2));
        return v;
    }
    vec![
        if l.is_reference {
            format!("{} (ref)", l.level)
        } else {
            l.level.clone()
        },
        format!("{:.2}", l.bits_per_weight),
        human_bytes(l.weight_bytes),
        l.peak_rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "-".into()),
        pm(l.perplexity, l.perplexity_se, 3),
        pm(l.kld_mean, l.kld_mean_se, 5),
        opt(l.kld_p99, 4),
        match (l.top1_agreement, l.top1_agreement_se) {
            (Some(t), Some(s)) if s.is_finite() => format!("{:.2}% ±{:.2}", t * 100.0, s * 100.0),
            (Some(t), _) => format!("{:.2}%", t * 100.0),
            _ => "-".into(),
        },
        l.prefill
            .as_ref()
            .map(|s| format!("{:.1} ±{:.1}", s.median, s.stddev))
            .unwrap_or_else(|| "-".into()),
        l.decode
            .as_ref()
            .map(|s| format!("{:.1} ±{:.1}", s.median, s.stddev))
            .unwrap_or_else(|| "-".into()),
    ]
}

/// The results as an aligned text table with a provenance line.
pub fn render(r: &Results) -> String {
    let rows: Vec<Vec<String>> = r.levels.iter().map(cells).collect();
    let mut w: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = format!(
        "{} ({}) on {} ({} threads), eval set {} v{}: {} scored tokens, ctx {}\n",
        r.model.name,
        r.model.arch,
        r.device.name,
        r.device.threads,
        r.evalset.name,
        r.evalset.version,
        r.evalset.scored_tokens,
        r.evalset.ctx
    );
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    s.push_str(&line(
        &HEADERS.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    s.push('\n');
    s.push_str(
        &w.iter()
            .map(|n| "-".repeat(*n))
            .collect::<Vec<_>>()
            .join("  "),
    );
    s.push('\n');
    for row in &rows {
        s.push_str(&line(row));
        s.push('\n');
    }
    for l in r.levels.iter().filter(|l| l.status != "ok") {
        s.push_str(&format!(
            "{}: {}\n",
            l.level,
            l.error.as_deref().unwrap_or("failed")
        ));
    }
    s.push_str(&format!("note: {}\n", r.reference_note));
    s.push_str("± is one standard error; t/s are medians ± standard deviation over repeats.\n");
    s
}

/// `qeval models`.
pub fn models_table(c: &Catalog) -> String {
    let mut s = format!(
        "{:<20} {:<7} {:<8} {}\n",
        "name", "params", "arch", "source"
    );
    for (name, e) in &c.models {
        let src = match (&e.repo, &e.pypi) {
            (_, Some(p)) => format!("PyPI {} ({})", p.package, p.level),
            (Some(r), None) => {
                let g = e
                    .gguf
                    .as_ref()
                    .map(|g| {
                        format!(
                            "; GGUF {}: {}",
                            g.repo,
                            g.files.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    })
                    .unwrap_or_default();
                format!("{r}{}{g}", if e.gated { " (gated)" } else { "" })
            }
            _ => String::new(),
        };
        s.push_str(&format!("{name:<20} {:<7} {:<8} {src}\n", e.params, e.arch));
    }
    s
}
