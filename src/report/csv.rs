//! `results.csv` (one row per level per device) and `tasks.csv` (one row per level, device,
//! task and metric): raw numbers, no formatting, for spreadsheets. The rows are
//! `report::rows`' structs (the same the tables are made from), written by the `csv` crate;
//! this module owns only the writing and must not build or format numbers itself.

use super::merge::{Entry, ReportSet};
use super::options::ReportOptions;
use super::rows;
use crate::results::LevelResult;
use anyhow::Result;
use serde::Serialize;

/// Rows as CSV with a header line; without rows, the header that `blank` (a row of nothing)
/// would have.
pub(super) fn write_csv_or_header<T: Serialize>(
    rows: &[T],
    blank: impl FnOnce() -> T,
) -> Result<String> {
    if !rows.is_empty() {
        return write_csv(rows);
    }
    let text = write_csv(&[blank()])?;
    Ok(text
        .split_inclusive('\n')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Rows as CSV with a header line.
fn write_csv<T: Serialize>(rows: &[T]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))?;
    Ok(String::from_utf8(bytes)?)
}

/// `results.csv`: the header, then one row per level per device.
pub fn render(set: &ReportSet, opts: &ReportOptions) -> Result<String> {
    let blank = LevelResult::default();
    write_csv_or_header(&rows::level_rows(set, opts), || {
        rows::level_row(
            set,
            Entry {
                run: 0,
                device: "",
                level: &blank,
            },
            opts,
        )
    })
}

/// `tasks.csv`, or None when no level has task results.
pub fn render_tasks(set: &ReportSet) -> Result<Option<String>> {
    let rows = rows::task_rows(set);
    if rows.is_empty() {
        return Ok(None);
    }
    write_csv(&rows).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Results;

    #[test]
    fn one_row_per_level_per_device_with_matching_columns() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        let a = Results::load(&p).unwrap();
        let mut b = a.clone();
        b.device.threads = 1;
        b.model.name = "a,\"b\"".into();
        // Another model (models are told apart by their files, not their names).
        b.model.files[0].sha256 = "00ff".into();
        let runs = [a, b]
            .into_iter()
            .map(|r| super::super::merge::Run {
                results: r,
                source: None,
                items: vec![],
                prompts: vec![],
                label: String::new(),
            })
            .collect();
        let set = ReportSet::from_runs(runs, true).unwrap();
        let out = render(&set, &ReportOptions::default()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 8);
        let n = lines[0].split(',').count();
        assert!(
            lines[1].starts_with("smollm2-135m-q4_1,smollm2-135m-q4_1 cpu 2t,cpu,"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[1].split(',').count(), n);
        assert!(lines[5].starts_with("\"a,\"\"b\"\"\","), "{}", lines[5]);
        assert!(render_tasks(&set).unwrap().is_none());
    }

    /// The columns results.csv has always had, in order (written by hand before the rows
    /// were serialized), and the GPU's memory columns added at the end.
    const COLUMNS: &str = "model,device,device_kind,device_name,threads,results_file,level,status,is_reference,reference,source,weight_bytes,bits_per_weight,peak_rss_bytes,peak_rss_with_eval_bytes,kv_cache_bytes,kv_cache_ctx,fit_bytes,fit_ctx,prefill_tokens_per_sec,prefill_stddev,decode_tokens_per_sec,decode_stddev,perplexity,perplexity_se,dppl_pct,kld_mean,kld_mean_se,kld_median,kld_p99,kld_max,top1_agreement,top1_agreement_se,rms_delta_p,rms_delta_p_se,scored_tokens,acc_delta_pts,acc_delta_low_pts,acc_delta_high_pts,eval_tokens_per_sec,eval_stddev,kernels,scoring_mode,device_peak_bytes,device_after_load_bytes";

    #[test]
    fn columns_and_numbers_are_spelled_as_before() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        let mut r = Results::load(&p).unwrap();
        r.levels[1].kld_p99 = Some(1e-7);
        r.levels[1].kld_max = Some(f64::NAN);
        r.levels[1].status = crate::results::LevelStatus::Failed;
        let set = ReportSet::single(r.clone(), vec![]);
        let out = render(&set, &ReportOptions::default()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], COLUMNS);
        assert_eq!(COLUMNS.split(',').count(), 45);
        let cols: Vec<&str> = COLUMNS.split(',').collect();
        let row: Vec<&str> = lines[2].split(',').collect();
        let at = |c: &str| row[cols.iter().position(|x| *x == c).unwrap()];
        assert_eq!(at("kld_p99"), "0.0000001");
        assert_eq!(at("kld_max"), "NaN");
        assert_eq!(at("status"), "failed");
        assert_eq!(at("fit_bytes"), "");
        assert_eq!(at("scoring_mode"), "kernel");
        assert_eq!(at("bits_per_weight").split('.').nth(1).unwrap().len(), 4);
        assert!(out.ends_with('\n') && !out.contains('\r'));
        // A run with no level yet: the header alone.
        r.levels.clear();
        let set = ReportSet::single(r, vec![]);
        let out = render(&set, &ReportOptions::default()).unwrap();
        assert_eq!(out, format!("{COLUMNS}\n"));
    }
}
