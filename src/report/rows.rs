//! One row per level per device, with the raw numbers every level table is made from: the
//! terminal and Markdown tables and the HTML table format its cells (`table::cells`), and
//! `results.csv` serializes it as it is (its field names are the CSV's columns). It owns which
//! numbers a row holds and the derived ones (ΔPPL, memory fit, accuracy delta); it must not
//! format for people or write files.

use super::merge::{Entry, ReportSet};
use super::options::ReportOptions;
use super::quality;
use super::recommend::fit;
use crate::results::{LevelStatus, ScoringMode, TaskKind};
use serde::{Serialize, Serializer};

/// A level on a device, as numbers. Field order is the column order of `results.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct LevelRow<'a> {
    /// The level and run the row was made from (not a column).
    #[serde(skip)]
    pub entry: Entry<'a>,
    pub model: &'a str,
    pub device: &'a str,
    pub device_kind: &'static str,
    pub device_name: &'a str,
    pub threads: usize,
    pub results_file: String,
    pub level: &'a str,
    pub status: LevelStatus,
    pub is_reference: bool,
    pub reference: &'a str,
    pub source: &'a str,
    pub weight_bytes: u64,
    #[serde(serialize_with = "fixed4")]
    pub bits_per_weight: f64,
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_with_eval_bytes: Option<u64>,
    pub kv_cache_bytes: u64,
    pub kv_cache_ctx: usize,
    /// Memory needed at `fit_ctx` tokens (None for a failed level).
    pub fit_bytes: Option<u64>,
    pub fit_ctx: u64,
    #[serde(serialize_with = "num")]
    pub prefill_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "num")]
    pub prefill_stddev: Option<f64>,
    #[serde(serialize_with = "num")]
    pub decode_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "num")]
    pub decode_stddev: Option<f64>,
    #[serde(serialize_with = "num")]
    pub perplexity: Option<f64>,
    #[serde(serialize_with = "num")]
    pub perplexity_se: Option<f64>,
    #[serde(serialize_with = "num")]
    pub dppl_pct: Option<f64>,
    #[serde(serialize_with = "num")]
    pub kld_mean: Option<f64>,
    #[serde(serialize_with = "num")]
    pub kld_mean_se: Option<f64>,
    #[serde(serialize_with = "num")]
    pub kld_median: Option<f64>,
    #[serde(serialize_with = "num")]
    pub kld_p99: Option<f64>,
    #[serde(serialize_with = "num")]
    pub kld_max: Option<f64>,
    #[serde(serialize_with = "num")]
    pub top1_agreement: Option<f64>,
    #[serde(serialize_with = "num")]
    pub top1_agreement_se: Option<f64>,
    #[serde(serialize_with = "num")]
    pub rms_delta_p: Option<f64>,
    #[serde(serialize_with = "num")]
    pub rms_delta_p_se: Option<f64>,
    pub scored_tokens: usize,
    #[serde(serialize_with = "num")]
    pub acc_delta_pts: Option<f64>,
    #[serde(serialize_with = "num")]
    pub acc_delta_low_pts: Option<f64>,
    #[serde(serialize_with = "num")]
    pub acc_delta_high_pts: Option<f64>,
    #[serde(serialize_with = "num")]
    pub eval_tokens_per_sec: Option<f64>,
    #[serde(serialize_with = "num")]
    pub eval_stddev: Option<f64>,
    pub kernels: &'a str,
    pub scoring_mode: ScoringMode,
    /// A GPU level's memory from its driver (the peak during the benchmark, and after
    /// loading), over the baseline its process found; empty for a CPU level.
    pub device_peak_bytes: Option<u64>,
    pub device_after_load_bytes: Option<u64>,
}

/// One task metric of a level on a device: a row of `tasks.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow<'a> {
    pub model: &'a str,
    pub device: &'a str,
    pub level: &'a str,
    pub is_reference: bool,
    pub task: &'a str,
    pub kind: TaskKind,
    pub metric: &'a str,
    #[serde(serialize_with = "num1")]
    pub value: f64,
    #[serde(serialize_with = "num1")]
    pub ci_low: f64,
    #[serde(serialize_with = "num1")]
    pub ci_high: f64,
    pub n: usize,
    #[serde(serialize_with = "num")]
    pub delta_vs_reference: Option<f64>,
    #[serde(serialize_with = "num")]
    pub delta_ci_low: Option<f64>,
    #[serde(serialize_with = "num")]
    pub delta_ci_high: Option<f64>,
    #[serde(serialize_with = "num")]
    pub mcnemar_p: Option<f64>,
    pub flips_lost: Option<usize>,
    pub flips_gained: Option<usize>,
    #[serde(serialize_with = "num")]
    pub min_detectable_delta: Option<f64>,
    #[serde(serialize_with = "num1")]
    pub seconds: f64,
    #[serde(serialize_with = "num1")]
    pub items_per_sec: f64,
}

/// A float as Rust prints it (`{}`: no exponent, `NaN`, `inf`), empty when missing: the
/// spelling results.csv has always had.
fn num<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.collect_str(x),
        None => s.serialize_none(),
    }
}

fn num1<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn fixed4<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.4}"))
}

/// The row of one entry.
pub fn level_row<'a>(set: &'a ReportSet, e: Entry<'a>, opts: &ReportOptions) -> LevelRow<'a> {
    let run = &set.runs[e.run];
    let r = &run.results;
    let l = e.level;
    let ft = fit(l, opts.budget_context);
    let acc = quality::acc_delta_pts(l);
    LevelRow {
        entry: e,
        model: &r.model.name,
        device: e.device,
        device_kind: r.device.kind.name(),
        device_name: &r.device.name,
        threads: r.device.threads,
        results_file: run
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        level: &l.level,
        status: l.status,
        is_reference: l.is_reference,
        reference: &r.reference,
        source: &l.source,
        weight_bytes: l.weight_bytes,
        bits_per_weight: l.bits_per_weight,
        peak_rss_bytes: l.peak_rss_bytes,
        peak_rss_with_eval_bytes: l.peak_rss_with_eval_bytes,
        kv_cache_bytes: l.kv_cache_bytes,
        kv_cache_ctx: l.kv_cache_ctx,
        fit_bytes: l.is_ok().then_some(ft.need_bytes),
        fit_ctx: ft.ctx,
        prefill_tokens_per_sec: l.prefill_tokens_per_sec,
        prefill_stddev: l.prefill.as_ref().map(|s| s.stddev),
        decode_tokens_per_sec: l.decode_tokens_per_sec,
        decode_stddev: l.decode.as_ref().map(|s| s.stddev),
        perplexity: l.perplexity,
        perplexity_se: l.perplexity_se,
        dppl_pct: quality::dppl_pct(r, l),
        kld_mean: l.kld_mean,
        kld_mean_se: l.kld_mean_se,
        kld_median: l.kld_median,
        kld_p99: l.kld_p99,
        kld_max: l.kld_max,
        top1_agreement: l.top1_agreement,
        top1_agreement_se: l.top1_agreement_se,
        rms_delta_p: l.rms_delta_p,
        rms_delta_p_se: l.rms_delta_p_se,
        scored_tokens: l.scored_tokens,
        acc_delta_pts: acc.map(|a| a.0),
        acc_delta_low_pts: acc.map(|a| a.1),
        acc_delta_high_pts: acc.map(|a| a.2),
        eval_tokens_per_sec: l.eval_tokens_per_sec,
        eval_stddev: l.eval.as_ref().map(|s| s.stddev),
        kernels: &l.kernels,
        scoring_mode: l.scoring_mode,
        device_peak_bytes: l.device_memory.as_ref().map(|d| d.peak_bytes),
        device_after_load_bytes: l.device_memory.as_ref().map(|d| d.after_load_bytes),
    }
}

/// Every level row of the report, in run then level order.
pub fn level_rows<'a>(set: &'a ReportSet, opts: &ReportOptions) -> Vec<LevelRow<'a>> {
    set.entries()
        .into_iter()
        .map(|e| level_row(set, e, opts))
        .collect()
}

/// Every task row of the report, in run, level, then task order.
pub fn task_rows(set: &ReportSet) -> Vec<TaskRow<'_>> {
    let mut v = Vec::new();
    for e in set.entries() {
        let r = &set.runs[e.run].results;
        for t in &e.level.tasks {
            v.push(TaskRow {
                model: &r.model.name,
                device: e.device,
                level: &e.level.level,
                is_reference: e.level.is_reference,
                task: &t.task,
                kind: t.kind,
                metric: &t.metric,
                value: t.value,
                ci_low: t.ci_low,
                ci_high: t.ci_high,
                n: t.n,
                delta_vs_reference: t.delta_vs_reference,
                delta_ci_low: t.delta_ci_low,
                delta_ci_high: t.delta_ci_high,
                mcnemar_p: t.mcnemar_p,
                flips_lost: t.flips_lost,
                flips_gained: t.flips_gained,
                min_detectable_delta: t.min_detectable_delta,
                seconds: t.seconds,
                items_per_sec: t.items_per_sec,
            });
        }
    }
    v
}
