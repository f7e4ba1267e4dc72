//! Reports, every one rendered from a `Results` record alone: CSV, terminal table, PNG plots
//! and a self-contained HTML page. Each format lives in its own file.

pub mod csv;
pub mod html;
pub mod plots;
pub mod table;

use crate::fsutil::write_atomic;
use crate::results::Results;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Write every report for `r` into `dir` (atomically, file by file).
pub fn render_all(r: &Results, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let p = dir.join("results.csv");
    write_atomic(&p, csv::render(r).as_bytes())?;
    out.push(p);
    let mem = dir.join("quality_vs_memory.png");
    write_atomic(&mem, &plots::quality_vs_memory(r)?)?;
    out.push(mem);
    let spd = dir.join("quality_vs_speed.png");
    write_atomic(&spd, &plots::quality_vs_speed(r)?)?;
    out.push(spd);
    let h = dir.join("report.html");
    write_atomic(&h, html::render(r)?.as_bytes())?;
    out.push(h);
    Ok(out)
}

/// `qeval report`: render the reports again from a results file.
pub fn rerender(results: &Path, out: Option<&Path>) -> Result<i32> {
    let file = if results.is_dir() {
        results.join("results.json")
    } else {
        results.to_path_buf()
    };
    let r = Results::load(&file)?;
    let dir = match out {
        Some(o) => o.to_path_buf(),
        None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| crate::error::usage(format!("--out {}: cannot create: {e}", dir.display())))?;
    render_all(&r, &dir)?;
    println!("{}", table::render(&r));
    println!("reports in {}", dir.display());
    Ok(0)
}
