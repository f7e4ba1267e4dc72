//! What `qeval bench` prints and writes besides results.json: the speed table (prefill, decode
//! and eval-scoring throughput per level) and `bench.csv`, one row per level, for scripts
//! (scripts/compare-llamacpp.sh reads it). It reads results only; it must not measure, and
//! its number formatting is `crate::fmt`'s.

use crate::fsutil::write_atomic;
use crate::results::{LevelResult, Results, Spread};
use anyhow::Result;
use std::path::Path;

/// The columns of `bench.csv`, in order.
pub const CSV_HEADER: &str = "level,status,weight_bytes,bits_per_weight,threads,kernels,prefill_tokens,prefill_tokens_per_sec,prefill_stddev,decode_tokens,decode_tokens_per_sec,decode_stddev,eval_tokens,eval_tokens_per_sec,eval_stddev";

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_default()
}

fn esc(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn row(l: &LevelResult) -> Vec<String> {
    let name = if l.is_reference {
        format!("{} (ref)", l.level)
    } else {
        l.level.clone()
    };
    if !l.is_ok() {
        return vec![name, "FAILED".into(), "-".into(), "-".into(), "-".into()];
    }
    vec![
        name,
        crate::fmt::mb(l.weight_bytes),
        crate::fmt::rate(l.prefill.as_ref()),
        crate::fmt::rate(l.decode.as_ref()),
        crate::fmt::rate(l.eval.as_ref()),
    ]
}

/// The terminal table: level, weight MB, pp / tg / eval tokens per second (median ± sd).
pub fn table(r: &Results) -> String {
    let first = r.levels.iter().find(|l| l.is_ok());
    let pp = first.map_or(0, |l| l.prefill_tokens);
    let tg = first.map_or(0, |l| l.decode_tokens);
    let ev = first.map_or(0, |l| l.eval_tokens);
    let heads = vec![
        "level".to_string(),
        "weight MB".to_string(),
        format!("pp{pp} t/s"),
        format!("tg{tg} t/s"),
        format!("eval{ev} t/s"),
    ];
    let rows: Vec<Vec<String>> = r.levels.iter().map(row).collect();
    let kernels: Vec<&str> = {
        let mut k: Vec<&str> = r
            .levels
            .iter()
            .map(|l| l.kernels.as_str())
            .filter(|k| !k.is_empty())
            .collect();
        k.dedup();
        k
    };
    let mut s = format!(
        "{} on {} ({}, {}), kernels: {}; median ±sd of {} repeat(s) after a warm-up\n",
        r.model.display(),
        r.device.name,
        r.device.kind,
        crate::fmt::threads(r.device.threads),
        if kernels.is_empty() {
            "-".to_string()
        } else {
            kernels.join(", ")
        },
        first
            .and_then(|l| l.prefill.as_ref())
            .map_or(0, |s| s.samples.len()),
    );
    s.push_str(&super::table::aligned(&heads, &rows, true));
    for l in r.levels.iter().filter(|l| !l.is_ok()) {
        s.push_str(&format!(
            "{}: {}\n",
            l.level,
            l.error.as_deref().unwrap_or("failed")
        ));
    }
    s
}

/// `bench.csv`: one row per level, raw numbers (see `CSV_HEADER`).
pub fn csv(r: &Results) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for l in &r.levels {
        let sd = |x: Option<&Spread>| num(x.map(|s| s.stddev));
        s.push_str(
            &[
                l.level.clone(),
                l.status.to_string(),
                l.weight_bytes.to_string(),
                format!("{:.4}", l.bits_per_weight),
                r.device.threads.to_string(),
                esc(&l.kernels),
                l.prefill_tokens.to_string(),
                num(l.prefill_tokens_per_sec),
                sd(l.prefill.as_ref()),
                l.decode_tokens.to_string(),
                num(l.decode_tokens_per_sec),
                sd(l.decode.as_ref()),
                l.eval_tokens.to_string(),
                num(l.eval_tokens_per_sec),
                sd(l.eval.as_ref()),
            ]
            .join(","),
        );
        s.push('\n');
    }
    s
}

/// `qeval bench`, at its end: write bench.csv, print the table.
pub fn finish(r: &Results, dir: &Path) -> Result<()> {
    let path = dir.join("bench.csv");
    write_atomic(&path, csv(r).as_bytes())?;
    println!("{}", table(r));
    println!(
        "results in {} and {}",
        dir.join("results.json").display(),
        path.display()
    );
    Ok(())
}
