//! Reports, rendered from results files alone (one run, or several merged): HTML, Markdown,
//! CSV, PNG and SVG plots, the terminal table and the recommendation. Each format, figure
//! set and judgement lives in its own file; this one writes them out. Reports depend on the
//! records a run writes (`crate::results`, and `prompts::compare`'s prompts.jsonl record),
//! `crate::fmt` and the statistics constant `eval::stats::Z_95`; nothing under `report/` may
//! import `crate::cli`, the runner, the plan or a model.

pub mod bench;
pub mod csv;
pub mod figures;
pub mod html;
pub mod items;
pub mod markdown;
pub mod merge;
pub mod options;
pub mod pareto;
pub mod plot;
pub mod prompts;
pub mod quality;
pub mod recommend;
pub mod rows;
pub mod table;

use crate::fsutil::write_atomic;
use crate::report::options::ReportOptions;
use crate::results::Results;
use anyhow::Result;
use merge::ReportSet;
use std::path::{Path, PathBuf};

/// Write every report of `set` into `dir` (atomically, file by file); returns the paths.
pub fn render_set(set: &ReportSet, dir: &Path, opts: &ReportOptions) -> Result<Vec<PathBuf>> {
    recommend::check_metric(set, opts)?;
    let mut out = Vec::new();
    let mut put = |name: &str, data: &[u8]| -> Result<()> {
        let p = dir.join(name);
        write_atomic(&p, data)?;
        out.push(p);
        Ok(())
    };
    put("results.csv", csv::render(set, opts)?.as_bytes())?;
    if let Some(t) = csv::render_tasks(set)? {
        put("tasks.csv", t.as_bytes())?;
    }
    let figs = figures::all(set, opts)?;
    for f in &figs {
        put(&format!("{}.png", f.stem), &f.png)?;
        put(&format!("{}.svg", f.stem), f.svg.as_bytes())?;
    }
    put("summary.md", markdown::render(set, opts, &figs).as_bytes())?;
    put("report.html", html::render(set, opts, &figs).as_bytes())?;
    Ok(out)
}

/// The terminal view: the table, then the recommendation.
pub fn terminal(set: &ReportSet, opts: &ReportOptions) -> String {
    let mut s = table::render(set, opts);
    s.push_str("\nRecommendation:\n");
    if opts.quality_metric != options::QualityMetric::Kld {
        s.push_str(&format!(
            "  (levels ranked by {}, --quality-metric {})\n",
            opts.quality_metric.describe(),
            opts.quality_metric.name()
        ));
    }
    for line in recommend::sentences(set, opts) {
        s.push_str(&format!("  {line}\n"));
    }
    s
}

fn single(r: &Results, dir: &Path) -> Result<ReportSet> {
    let results = dir.join("results.json");
    let items = items::load(&merge::items_path(&results))?;
    let mut set = ReportSet::single(r.clone(), items);
    set.runs[0].prompts = crate::prompts::compare::load_records(&merge::prompts_path(&results))?;
    Ok(set)
}

/// `qeval run`, after every level: the reports of the run so far (with OUT/items.jsonl).
pub fn render_all(r: &Results, dir: &Path, opts: &ReportOptions) -> Result<Vec<PathBuf>> {
    render_set(&single(r, dir)?, dir, opts)
}

/// `qeval run`, at its end: the reports, then the table and recommendation on stdout.
pub fn finish_run(r: &Results, dir: &Path, opts: &ReportOptions) -> Result<()> {
    let set = single(r, dir)?;
    render_set(&set, dir, opts)?;
    println!("{}", terminal(&set, opts));
    println!("reports in {}", dir.display());
    Ok(())
}

/// `qeval report`: render one report from one or more results files (or run directories).
pub fn rerender(paths: &[PathBuf], out: Option<&Path>, opts: &ReportOptions) -> Result<i32> {
    let set = ReportSet::load(paths, opts.allow_mixed)?;
    let dir = match out {
        Some(o) => o.to_path_buf(),
        None => set.runs[0]
            .source
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| crate::error::usage(format!("--out {}: cannot create: {e}", dir.display())))?;
    render_set(&set, &dir, opts)?;
    println!("{}", terminal(&set, opts));
    println!("reports in {}", dir.display());
    Ok(0)
}
