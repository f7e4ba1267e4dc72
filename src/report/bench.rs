//! What `qeval bench` prints and writes besides results.json: the speed table (prefill, decode
//! and eval-scoring throughput per level) and `bench.csv`, one row per level, for scripts
//! (scripts/compare-llamacpp.sh reads it). It reads results only; it must not measure, and
//! its number formatting is `crate::fmt`'s.

use crate::fsutil::write_atomic;
use crate::results::{LevelResult, LevelStatus, Results, Spread};
use anyhow::Result;
use serde::{Serialize, Serializer};
use std::path::Path;

/// The columns of `bench.csv`, in order.
pub const CSV_HEADER: &str = "level,status,weight_bytes,bits_per_weight,threads,kernels,prefill_tokens,prefill_tokens_per_sec,prefill_stddev,decode_tokens,decode_tokens_per_sec,decode_stddev,eval_tokens,eval_tokens_per_sec,eval_stddev,peak_memory_bytes,memory_kind";

fn row(l: &LevelResult) -> Vec<String> {
    let name = if l.is_reference {
        format!("{} (ref)", l.level)
    } else {
        l.level.clone()
    };
    if !l.is_ok() {
        return vec![
            name,
            "FAILED".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    }
    let peak = match (l.memory_bytes(), &l.device_memory) {
        (Some(b), Some(_)) => format!("{} GPU", crate::fmt::mb(b)),
        (Some(b), None) => crate::fmt::mb(b),
        (None, _) => "-".into(),
    };
    vec![
        name,
        crate::fmt::mb(l.weight_bytes),
        peak,
        crate::fmt::rate(l.prefill.as_ref()),
        crate::fmt::rate(l.decode.as_ref()),
        crate::fmt::rate(l.eval.as_ref()),
    ]
}

/// The terminal table: level, weight MB, peak memory MB (the GPU's for a GPU level), pp / tg
/// / eval tokens per second (median ± sd).
pub fn table(r: &Results) -> String {
    let first = r.levels.iter().find(|l| l.is_ok());
    let pp = first.map_or(0, |l| l.prefill_tokens);
    let tg = first.map_or(0, |l| l.decode_tokens);
    let ev = first.map_or(0, |l| l.eval_tokens);
    let heads = vec![
        "level".to_string(),
        "weight MB".to_string(),
        "peak MB".to_string(),
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

/// One row of `bench.csv`; its field names are the columns (`CSV_HEADER`).
#[derive(Serialize)]
struct BenchRow<'a> {
    level: &'a str,
    status: LevelStatus,
    weight_bytes: u64,
    #[serde(serialize_with = "fixed4")]
    bits_per_weight: f64,
    threads: usize,
    kernels: &'a str,
    prefill_tokens: usize,
    #[serde(serialize_with = "fixed3")]
    prefill_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "fixed3")]
    prefill_stddev: Option<f64>,
    decode_tokens: usize,
    #[serde(serialize_with = "fixed3")]
    decode_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "fixed3")]
    decode_stddev: Option<f64>,
    eval_tokens: usize,
    #[serde(serialize_with = "fixed3")]
    eval_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "fixed3")]
    eval_stddev: Option<f64>,
    peak_memory_bytes: Option<u64>,
    memory_kind: &'a str,
}

fn fixed3<S: Serializer>(v: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.collect_str(&format_args!("{x:.3}")),
        None => s.serialize_none(),
    }
}

fn fixed4<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.4}"))
}

fn bench_row<'a>(r: &Results, l: &'a LevelResult) -> BenchRow<'a> {
    let sd = |x: Option<&Spread>| x.map(|s| s.stddev);
    BenchRow {
        level: &l.level,
        status: l.status,
        weight_bytes: l.weight_bytes,
        bits_per_weight: l.bits_per_weight,
        threads: r.device.threads,
        kernels: &l.kernels,
        prefill_tokens: l.prefill_tokens,
        prefill_tokens_per_sec: l.prefill_tokens_per_sec,
        prefill_stddev: sd(l.prefill.as_ref()),
        decode_tokens: l.decode_tokens,
        decode_tokens_per_sec: l.decode_tokens_per_sec,
        decode_stddev: sd(l.decode.as_ref()),
        eval_tokens: l.eval_tokens,
        eval_tokens_per_sec: l.eval_tokens_per_sec,
        eval_stddev: sd(l.eval.as_ref()),
        peak_memory_bytes: l.memory_bytes(),
        memory_kind: l.memory_kind(),
    }
}

/// `bench.csv`: one row per level, raw numbers (see `CSV_HEADER`), written by the `csv` crate.
pub fn csv(r: &Results) -> Result<String> {
    let rows: Vec<BenchRow> = r.levels.iter().map(|l| bench_row(r, l)).collect();
    let blank = LevelResult::default();
    super::csv::write_csv_or_header(&rows, || bench_row(r, &blank))
}

/// `qeval bench`, at its end: write bench.csv, print the table.
pub fn finish(r: &Results, dir: &Path) -> Result<()> {
    let path = dir.join("bench.csv");
    write_atomic(&path, csv(r)?.as_bytes())?;
    println!("{}", table(r));
    println!(
        "results in {} and {}",
        dir.join("results.json").display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_csv_has_its_columns_and_fixed_decimals() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        let mut r = Results::load(&p).unwrap();
        r.levels[0].kernels = "a,b".into();
        r.levels[1].status = LevelStatus::Failed;
        r.levels[1].decode_tokens_per_sec = None;
        let out = csv(&r).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 1 + r.levels.len());
        let row0 = lines[1];
        assert!(row0.contains(",\"a,b\","), "{row0}");
        let prefill = r.levels[0].prefill_tokens_per_sec.unwrap();
        assert!(row0.contains(&format!(",{prefill:.3},")), "{row0}");
        assert!(lines[2].starts_with("q8_0,failed,"), "{}", lines[2]);
        r.levels.clear();
        assert_eq!(csv(&r).unwrap(), format!("{CSV_HEADER}\n"));
    }
}
