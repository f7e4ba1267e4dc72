//! What a level costs in quality next to its run's reference, derived from results alone:
//! ΔPPL %, the headline task metrics, the mean accuracy delta, and whether a difference is
//! distinguishable from noise. Pure functions of results; it must not format or render.

use super::options::QualityMetric;
// The two-sided 95% normal quantile (one constant for the whole crate).
use crate::eval::stats::Z_95 as Z95;
use crate::results::{LevelResult, Results, TaskResult};

/// Perplexity change against the run's reference (or, for levels measured against a reference
/// pack, the pack's reference), in percent.
pub fn dppl_pct(run: &Results, l: &LevelResult) -> Option<f64> {
    let r = match run.reference_level() {
        Some(r) => r.perplexity?,
        None => run.kld_from_pack.as_ref()?.reference_perplexity?,
    };
    let p = l.perplexity?;
    (r > 0.0 && p.is_finite()).then(|| (p / r - 1.0) * 100.0)
}

/// One metric per task, the one a reader compares: acc_norm, else acc, else exact_match,
/// else the first listed.
pub fn headline_tasks(l: &LevelResult) -> Vec<&TaskResult> {
    let mut names: Vec<&str> = Vec::new();
    for t in &l.tasks {
        if !names.contains(&t.task.as_str()) {
            names.push(&t.task);
        }
    }
    names
        .iter()
        .filter_map(|n| {
            let of: Vec<&TaskResult> = l.tasks.iter().filter(|t| t.task == *n).collect();
            ["acc_norm", "acc", "exact_match"]
                .iter()
                .find_map(|m| of.iter().find(|t| t.metric == *m).copied())
                .or_else(|| of.first().copied())
        })
        .collect()
}

/// Mean accuracy delta against the reference over the headline tasks, in percentage points,
/// with a 95% interval. One task: its paired-bootstrap interval. Several: the tasks' items
/// are independent, so standard errors (interval width / 3.92) add in quadrature.
pub fn acc_delta_pts(l: &LevelResult) -> Option<(f64, f64, f64)> {
    let ts: Vec<&TaskResult> = headline_tasks(l);
    let ds: Vec<(f64, f64, f64)> = ts
        .iter()
        .filter_map(|t| {
            let d = t.delta_vs_reference?;
            Some((d, t.delta_ci_low.unwrap_or(d), t.delta_ci_high.unwrap_or(d)))
        })
        .collect();
    match ds.len() {
        0 => {
            // The reference itself: a zero delta on every task it ran.
            (l.is_reference && !ts.is_empty()).then_some((0.0, 0.0, 0.0))
        }
        1 => Some((ds[0].0 * 100.0, ds[0].1 * 100.0, ds[0].2 * 100.0)),
        k => {
            let k = k as f64;
            let mean = ds.iter().map(|d| d.0).sum::<f64>() / k;
            let var: f64 = ds.iter().map(|d| ((d.2 - d.1) / (2.0 * Z95)).powi(2)).sum();
            let se = var.sqrt() / k;
            Some((
                mean * 100.0,
                (mean - Z95 * se) * 100.0,
                (mean + Z95 * se) * 100.0,
            ))
        }
    }
}

/// Whether a task's difference from the reference is within noise: its 95% interval holds
/// 0, or (without an interval) McNemar's p is at least 0.05. None at the reference.
pub fn task_indistinguishable(t: &TaskResult) -> Option<bool> {
    match (t.delta_ci_low, t.delta_ci_high, t.mcnemar_p) {
        (Some(lo), Some(hi), _) => Some(lo <= 0.0 && hi >= 0.0),
        (_, _, Some(p)) => Some(p >= 0.05),
        _ => None,
    }
}

/// Mean KLD as a loss (0 at the reference; unknown = infinite) and its standard error.
pub fn kld(l: &LevelResult) -> (f64, f64) {
    if l.is_reference {
        return (0.0, 0.0);
    }
    match l.kld_mean {
        Some(k) if k.is_finite() => (k, l.kld_mean_se.unwrap_or(0.0)),
        _ => (f64::INFINITY, 0.0),
    }
}

/// The loss the recommendation ranks by (`--quality-metric`) and its standard error: 0 at
/// the reference, infinite when the level lacks the measurement. `kld` and `prompts-kld`
/// in nats per token; `task:NAME` the accuracy drop in percentage points.
pub fn loss(l: &LevelResult, m: &QualityMetric) -> (f64, f64) {
    if l.is_reference {
        return (0.0, 0.0);
    }
    match m {
        QualityMetric::Kld => kld(l),
        QualityMetric::PromptsKld => match &l.prompts {
            Some(p) if p.all.kld_mean.mean.is_finite() => (
                p.all.kld_mean.mean,
                (p.all.kld_mean.high - p.all.kld_mean.low) / (2.0 * Z95),
            ),
            _ => (f64::INFINITY, 0.0),
        },
        QualityMetric::Task(name) => {
            match headline_tasks(l).into_iter().find(|t| &t.task == name) {
                Some(t) => match t.delta_vs_reference {
                    Some(d) => (
                        -d * 100.0,
                        match (t.delta_ci_low, t.delta_ci_high) {
                            (Some(a), Some(b)) => (b - a) * 100.0 / (2.0 * Z95),
                            _ => 0.0,
                        },
                    ),
                    None => (f64::INFINITY, 0.0),
                },
                None => (f64::INFINITY, 0.0),
            }
        }
    }
}

/// Two losses whose difference is within 1.96 combined standard errors.
pub fn within_noise(a: &LevelResult, b: &LevelResult, m: &QualityMetric) -> bool {
    let ((ka, sa), (kb, sb)) = (loss(a, m), loss(b, m));
    ka.is_finite() && kb.is_finite() && (ka - kb).abs() <= Z95 * (sa * sa + sb * sb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, metric: &str, d: f64, lo: f64, hi: f64) -> TaskResult {
        TaskResult {
            task: name.into(),
            kind: crate::results::TaskKind::Choice,
            metric: metric.into(),
            value: 0.5,
            delta_vs_reference: Some(d),
            delta_ci_low: Some(lo),
            delta_ci_high: Some(hi),
            ..Default::default()
        }
    }

    fn example() -> Results {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        Results::load(&p).unwrap()
    }

    #[test]
    fn dppl_of_the_example() {
        let r = example();
        // q2_k: 109.768 / 30.7275 - 1 = +257.2%
        let q2 = r.levels.iter().find(|l| l.level == "q2_k").unwrap();
        let d = dppl_pct(&r, q2).unwrap();
        assert!((d - 257.23).abs() < 0.05, "{d}");
        assert_eq!(dppl_pct(&r, &r.levels[0]), Some(0.0));
    }

    #[test]
    fn headline_metric_and_pooled_interval() {
        let mut l = example().levels[1].clone();
        l.tasks = vec![
            task("hs", "acc", -0.10, -0.20, 0.00),
            task("hs", "acc_norm", -0.02, -0.06, 0.02),
            task("arc", "acc", -0.04, -0.08, 0.00),
        ];
        let h = headline_tasks(&l);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].metric, "acc_norm");
        // mean of -2 and -4 points = -3; se = sqrt(0.0204^2 + 0.0204^2)/2 = 0.01443
        let (m, lo, hi) = acc_delta_pts(&l).unwrap();
        assert!((m + 3.0).abs() < 1e-9);
        assert!((lo - (-3.0 - 1.96 * 1.443)).abs() < 0.01, "{lo}");
        assert!((hi - (-3.0 + 1.96 * 1.443)).abs() < 0.01, "{hi}");
        l.tasks.truncate(1);
        assert_eq!(acc_delta_pts(&l), Some((-10.0, -20.0, 0.0)));
        assert_eq!(task_indistinguishable(&l.tasks[0]), Some(true));
        let t = task("x", "acc", -0.05, -0.08, -0.01);
        assert_eq!(task_indistinguishable(&t), Some(false));
    }

    #[test]
    fn kld_noise_comparison() {
        let r = example();
        let (f16, q8) = (&r.levels[0], &r.levels[1]);
        assert_eq!(kld(f16), (0.0, 0.0));
        // 0.00495 ± 0.00012 is far from 0 ± 0
        assert!(!within_noise(f16, q8, &QualityMetric::Kld));
        let mut q8b = q8.clone();
        q8b.kld_mean = Some(q8.kld_mean.unwrap() + 0.0001);
        assert!(within_noise(q8, &q8b, &QualityMetric::Kld));
    }
}
