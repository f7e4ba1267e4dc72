//! The deployment recommendation: for each memory budget and device, the best level that
//! fits (weights + KV cache at a stated context + the level's measured overhead) and what it
//! costs in quality, in plain words. Levels whose losses are equal within the thresholds or
//! within noise are not ranked against each other: the fastest of them is named. It reads
//! results only; it must not render a format (the formats print its sentences).

use super::merge::{Entry, ReportSet};
use super::options::{Budget, Severity};
use super::quality;
use crate::fmt::bytes as human_bytes;
use crate::report::options::ReportOptions;
use crate::results::LevelResult;

/// Memory a level needs to serve a context of `ctx` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub need_bytes: u64,
    pub weight_bytes: u64,
    pub kv_bytes: u64,
    /// Peak RSS beyond the weights and the measured KV cache (buffers, runtime); None when
    /// peak memory was not measured.
    pub overhead_bytes: Option<u64>,
    pub ctx: u64,
}

/// The memory `l` needs at `ctx` tokens: its weights, its KV cache scaled from the measured
/// one (kv_cache_bytes at kv_cache_ctx) and its measured overhead.
pub fn fit(l: &LevelResult, ctx: u64) -> Fit {
    let kv = if l.kv_cache_ctx > 0 {
        (l.kv_cache_bytes as f64 / l.kv_cache_ctx as f64 * ctx as f64).round() as u64
    } else {
        0
    };
    let overhead = l
        .memory_bytes()
        .map(|p| p.saturating_sub(l.weight_bytes + l.kv_cache_bytes));
    Fit {
        need_bytes: l.weight_bytes + kv + overhead.unwrap_or(0),
        weight_bytes: l.weight_bytes,
        kv_bytes: kv,
        overhead_bytes: overhead,
        ctx,
    }
}

/// What to run within some budgets on one device.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    Pick {
        entry: Entry<'a>,
        fit: Fit,
        /// Other fitting levels whose quality equals the pick's within the thresholds or
        /// noise (the pick is the fastest of them).
        equivalent: Vec<Entry<'a>>,
        /// Why they count as equal: "negligible" or "noise".
        why_equal: &'static str,
    },
    NothingFits {
        smallest: Entry<'a>,
        fit: Fit,
    },
}

/// One line of the recommendation: consecutive budgets with the same outcome, one device.
#[derive(Debug, Clone)]
pub struct Recommendation<'a> {
    pub device: &'a str,
    pub budgets: Vec<Budget>,
    pub outcome: Outcome<'a>,
}

fn decode(e: &Entry) -> f64 {
    e.level.decode_tokens_per_sec.unwrap_or(f64::NEG_INFINITY)
}

/// Choose for one device and one budget.
fn choose<'a>(entries: &[Entry<'a>], budget: u64, opts: &ReportOptions) -> Option<Outcome<'a>> {
    let ctx = opts.budget_context;
    let fits: Vec<(Entry, Fit)> = entries
        .iter()
        .map(|e| (*e, fit(e.level, ctx)))
        .filter(|(_, f)| f.need_bytes <= budget)
        .collect();
    if fits.is_empty() {
        let (e, f) = entries
            .iter()
            .map(|e| (*e, fit(e.level, ctx)))
            .min_by_key(|(_, f)| f.need_bytes)?;
        return Some(Outcome::NothingFits {
            smallest: e,
            fit: f,
        });
    }
    let m = &opts.quality_metric;
    let best = fits
        .iter()
        .min_by(|a, b| {
            quality::loss(a.0.level, m)
                .0
                .total_cmp(&quality::loss(b.0.level, m).0)
        })?
        .0;
    let negligible = |l: &LevelResult| {
        let k = quality::loss(l, m).0;
        k.is_finite() && opts.metric_thresholds().classify(k) == Severity::Negligible
    };
    let best_negligible = negligible(best.level);
    let tied: Vec<(Entry, Fit)> = fits
        .iter()
        .filter(|(e, _)| {
            (best_negligible && negligible(e.level))
                || quality::within_noise(e.level, best.level, m)
        })
        .cloned()
        .collect();
    let (entry, f) = tied
        .iter()
        .max_by(|a, b| {
            decode(&a.0)
                .total_cmp(&decode(&b.0))
                .then(b.1.need_bytes.cmp(&a.1.need_bytes))
        })
        .cloned()
        .unwrap_or((best, fit(best.level, ctx)));
    let equivalent = tied
        .iter()
        .map(|t| t.0)
        .filter(|e| !std::ptr::eq(e.level, entry.level))
        .collect();
    Some(Outcome::Pick {
        entry,
        fit: f,
        equivalent,
        why_equal: if best_negligible {
            "negligible"
        } else {
            "noise"
        },
    })
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (
            Outcome::Pick {
                entry: x,
                equivalent: ex,
                ..
            },
            Outcome::Pick {
                entry: y,
                equivalent: ey,
                ..
            },
        ) => {
            std::ptr::eq(x.level, y.level)
                && ex.len() == ey.len()
                && ex
                    .iter()
                    .zip(ey)
                    .all(|(a, b)| std::ptr::eq(a.level, b.level))
        }
        (Outcome::NothingFits { .. }, Outcome::NothingFits { .. }) => true,
        _ => false,
    }
}

/// The recommendation for every device of the report and every budget (given or default),
/// consecutive budgets with the same outcome merged.
pub fn recommend<'a>(set: &'a ReportSet, opts: &ReportOptions) -> Vec<Recommendation<'a>> {
    let entries = set.ok_entries();
    let mut out = Vec::new();
    for device in set.devices() {
        // Weights-mode levels (`--scoring weights`) isolate the weights' error for analysis;
        // a deployment runs the kernels, so only kernel-mode levels are recommended.
        let mine: Vec<Entry> = entries
            .iter()
            .filter(|e| {
                e.device == device && e.level.scoring_mode != crate::results::ScoringMode::Weights
            })
            .copied()
            .collect();
        let mut cur: Option<Recommendation> = None;
        for b in opts.budgets() {
            let Some(o) = choose(&mine, b.bytes, opts) else {
                continue;
            };
            match &mut cur {
                Some(c) if same(&c.outcome, &o) => c.budgets.push(b),
                _ => {
                    if let Some(c) = cur.take() {
                        out.push(c);
                    }
                    cur = Some(Recommendation {
                        device,
                        budgets: vec![b],
                        outcome: o,
                    });
                }
            }
        }
        out.extend(cur);
    }
    out
}

fn budgets_text(b: &[Budget]) -> String {
    match b {
        [] => String::new(),
        [one] => one.label(),
        [first, .., last] => format!("{} to {}", first.label(), last.label()),
    }
}

/// "0.0050" / "0.0500" / "1.22": KLD with three significant digits.
pub fn kld_text(k: f64) -> String {
    if k == 0.0 {
        "0".into()
    } else if k < 0.1 {
        format!("{k:.4}")
    } else {
        format!("{k:.3}")
    }
}

/// What `l` costs against its reference, in words: KLD and its class, top-token agreement,
/// ΔPPL and the tasks (saying when a task difference is within noise).
pub fn quality_words(set: &ReportSet, e: &Entry, opts: &ReportOptions) -> String {
    let l = e.level;
    let run = &set.runs[e.run].results;
    let mut parts = Vec::new();
    if l.is_reference {
        parts.push("the reference (no loss by definition)".to_string());
    } else {
        let (k, se) = quality::kld(l);
        if k.is_finite() {
            let stat = if k - crate::eval::stats::Z_95 * se <= 0.0 {
                ", statistically indistinguishable from 0"
            } else {
                ""
            };
            parts.push(format!(
                "KLD {} ({}{stat})",
                kld_text(k),
                opts.kld_thresholds.classify(k).word()
            ));
        }
        if let Some(t) = l.top1_agreement {
            parts.push(format!("{:.1}% same top token", t * 100.0));
        }
        if let Some(p) = &l.prompts {
            parts.push(format!(
                "on your prompts KLD {} ({}), {:.0}% of answers identical",
                kld_text(p.all.kld_mean.mean),
                opts.kld_thresholds.classify(p.all.kld_mean.mean).word(),
                p.all.identical.mean * 100.0
            ));
        }
        if let Some(d) = quality::dppl_pct(run, l) {
            parts.push(format!("PPL {d:+.1}%"));
        }
    }
    for t in quality::headline_tasks(l) {
        let base = format!("{} {} {:.1}%", t.task, t.metric, t.value * 100.0);
        match (t.delta_vs_reference, quality::task_indistinguishable(t)) {
            (Some(d), Some(true)) => parts.push(format!(
                "{base} (Δ {:+.1} pts, indistinguishable from {})",
                d * 100.0,
                run.reference
            )),
            (Some(d), _) => parts.push(format!(
                "{base} (Δ {:+.1} pts{}, {})",
                d * 100.0,
                match (t.delta_ci_low, t.delta_ci_high) {
                    (Some(a), Some(b)) => format!(
                        ", 95% CI {} to {}",
                        crate::fmt::points(a),
                        crate::fmt::points(b)
                    ),
                    _ => String::new(),
                },
                opts.acc_thresholds.classify((-d * 100.0).max(0.0)).word()
            )),
            _ => parts.push(base),
        }
    }
    parts.join(", ")
}

fn speed_words(l: &LevelResult, device: &str) -> String {
    match (l.decode_tokens_per_sec, l.prefill_tokens_per_sec) {
        (Some(d), Some(p)) => format!("{d:.0} tok/s decode and {p:.0} tok/s prefill on {device}"),
        (Some(d), None) => format!("{d:.0} tok/s decode on {device}"),
        _ => format!("speed not measured on {device}"),
    }
}

/// One recommendation as a sentence.
pub fn sentence(set: &ReportSet, r: &Recommendation, opts: &ReportOptions) -> String {
    let on = format!("On {} ({})", budgets_text(&r.budgets), r.device);
    match &r.outcome {
        Outcome::NothingFits { smallest, fit } => format!(
            "{on}: nothing fits — the smallest level, {}, needs {} with a {}-token KV cache.",
            smallest.level.level,
            human_bytes(fit.need_bytes),
            fit.ctx
        ),
        Outcome::Pick {
            entry,
            fit,
            equivalent,
            why_equal,
        } => {
            let l = entry.level;
            let mut s = format!(
                "{on}: {} — {} weights, {} in use with a {}-token KV cache; {}; {}.",
                l.level,
                human_bytes(fit.weight_bytes),
                human_bytes(fit.need_bytes),
                fit.ctx,
                quality_words(set, entry, opts),
                speed_words(l, entry.device)
            );
            if !equivalent.is_empty() {
                let names: Vec<String> = equivalent
                    .iter()
                    .map(|e| {
                        format!(
                            "{} ({}{})",
                            e.level.level,
                            if e.level.is_reference {
                                "reference, "
                            } else {
                                ""
                            },
                            e.level
                                .decode_tokens_per_sec
                                .map(|d| format!("{d:.0} tok/s"))
                                .unwrap_or_else(|| "speed not measured".into())
                        )
                    })
                    .collect();
                let metric = opts.quality_metric.short();
                let why = if *why_equal == "negligible" {
                    format!(
                        "every one is below the negligible threshold ({metric} < {})",
                        opts.metric_thresholds().0[0]
                    )
                } else {
                    format!("their {metric} values differ by less than 1.96 standard errors")
                };
                s.push_str(&format!(
                    " Equal in quality to {}: {why}, so not ranked; {} is the fastest.",
                    names.join(", "),
                    l.level
                ));
            }
            s
        }
    }
}

/// The thresholds the recommendation used, stated for the report.
pub fn thresholds_text(opts: &ReportOptions) -> String {
    let [a, b, c] = opts.kld_thresholds.0;
    let [x, y, z] = opts.acc_thresholds.0;
    format!(
        "Levels are ranked by {} (--quality-metric {}). Loss words: mean KLD below {a} nats/token is negligible, below {b} small, below {c} noticeable, else large (--kld-thresholds); an accuracy drop below {x} points is negligible, below {y} small, below {z} noticeable, else large (--acc-thresholds). A level fits a budget when its weights, its KV cache at {} tokens (--budget-context, scaled from the measured cache) and its measured overhead (peak resident memory beyond weights and measured cache) fit.",
        opts.quality_metric.describe(),
        opts.quality_metric.name(),
        opts.budget_context
    )
}

/// Refuse a `--quality-metric` the results cannot rank by, naming what they hold.
pub fn check_metric(set: &ReportSet, opts: &ReportOptions) -> anyhow::Result<()> {
    let entries = set.ok_entries();
    match &opts.quality_metric {
        super::options::QualityMetric::Kld => Ok(()),
        super::options::QualityMetric::PromptsKld => {
            if entries.iter().any(|e| e.level.prompts.is_some()) {
                Ok(())
            } else {
                Err(crate::error::usage(
                    "--quality-metric prompts-kld: these results have no answers to users' prompts; run with --prompts FILE, or rank by kld",
                ))
            }
        }
        super::options::QualityMetric::Task(name) => {
            let mut tasks: Vec<&str> = entries
                .iter()
                .flat_map(|e| e.level.tasks.iter().map(|t| t.task.as_str()))
                .collect();
            tasks.sort();
            tasks.dedup();
            if tasks.contains(&name.as_str()) {
                Ok(())
            } else {
                Err(crate::error::usage(format!(
                    "--quality-metric task:{name}: no task of that name in these results ({})",
                    if tasks.is_empty() {
                        "they have no tasks".to_string()
                    } else {
                        format!("tasks: {}", tasks.join(", "))
                    }
                )))
            }
        }
    }
}

/// Every recommendation as sentences.
pub fn sentences(set: &ReportSet, opts: &ReportOptions) -> Vec<String> {
    recommend(set, opts)
        .iter()
        .map(|r| sentence(set, r, opts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::options::parse_budgets;
    use crate::results::Results;

    fn example() -> Results {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        Results::load(&p).unwrap()
    }

    fn opts(budgets: &str) -> ReportOptions {
        ReportOptions {
            budget: Some(parse_budgets(budgets).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn fit_adds_weights_scaled_kv_and_overhead() {
        let r = example();
        let q8 = &r.levels[1];
        // weights 143025408, KV 23592960 at 512 → 188743680 at 4096,
        // overhead 257114112 - 143025408 - 23592960 = 90495744
        let f = fit(q8, 4096);
        assert_eq!(f.kv_bytes, 188_743_680);
        assert_eq!(f.overhead_bytes, Some(90_495_744));
        assert_eq!(f.need_bytes, 143_025_408 + 188_743_680 + 90_495_744);
    }

    #[test]
    fn negligible_levels_are_not_ranked_the_fastest_is_named() {
        let set = ReportSet::single(example(), vec![]);
        let o = opts("4GiB,8GiB");
        let recs = recommend(&set, &o);
        // Everything fits in 4 GiB and 8 GiB: one merged line.
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].budgets.len(), 2);
        match &recs[0].outcome {
            Outcome::Pick {
                entry, equivalent, ..
            } => {
                // f16 (KLD 0, 34.9 tok/s) and q8_0 (KLD 0.00495 < 0.01, 64.2 tok/s) are both
                // negligible: q8_0 is faster.
                assert_eq!(entry.level.level, "q8_0");
                assert_eq!(equivalent.len(), 1);
                assert_eq!(equivalent[0].level.level, "f16");
            }
            o => panic!("{o:?}"),
        }
        let s = sentence(&set, &recs[0], &o);
        assert!(s.starts_with("On 4 GiB to 8 GiB (cpu 2t): q8_0 — 143.0 MB weights, 422.3 MB in use with a 4096-token KV cache; KLD 0.0050 (negligible), 94.7% same top token, PPL +0.6%"), "{s}");
        assert!(s.contains("64 tok/s decode"), "{s}");
        assert!(s.contains("Equal in quality to f16 (reference, 35 tok/s): every one is below the negligible threshold (KLD < 0.01), so not ranked; q8_0 is the fastest."), "{s}");
    }

    #[test]
    fn tight_budgets_pick_the_least_loss_that_fits_or_say_nothing_fits() {
        let set = ReportSet::single(example(), vec![]);
        // Needs at 4096 tokens: q2_k 69.6 + 188.7 + (153.6-69.6-23.6=60.4) = 318.7 MB,
        // q4_k_m 103.7 + 188.7 + (232.3-103.7-23.6=105.0) = 397.4 MB, q8_0 422.3 MB.
        let o = opts("300MB,330MB,400MB,430MB");
        let recs = recommend(&set, &o);
        let picks: Vec<String> = recs
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Pick { entry, .. } => entry.level.level.clone(),
                Outcome::NothingFits { smallest, .. } => format!("none<{}", smallest.level.level),
            })
            .collect();
        assert_eq!(picks, vec!["none<q2_k", "q2_k", "q4_k_m", "q8_0"]);
        let s = sentence(&set, &recs[0], &o);
        assert!(s.contains("nothing fits") && s.contains("q2_k"), "{s}");
        let s = sentence(&set, &recs[1], &o);
        assert!(s.contains("KLD 1.220 (large)"), "{s}");
    }

    #[test]
    fn thresholds_change_the_words_and_the_ties() {
        let set = ReportSet::single(example(), vec![]);
        let mut o = opts("8GiB");
        o.kld_thresholds = crate::report::options::Thresholds([0.001, 0.05, 0.2]);
        let recs = recommend(&set, &o);
        match &recs[0].outcome {
            // q8_0 is now "small": f16 (loss 0) is the best and has no equal.
            Outcome::Pick {
                entry, equivalent, ..
            } => {
                assert_eq!(entry.level.level, "f16");
                assert!(equivalent.is_empty());
            }
            o => panic!("{o:?}"),
        }
        assert!(thresholds_text(&o).contains("below 0.001 nats/token is negligible"));
    }
}
