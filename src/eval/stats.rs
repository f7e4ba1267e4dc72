//! The statistics of task accuracy, as pure functions: an accuracy's interval, the paired
//! comparison of a level with the reference level on the same items, and how small a drop
//! the item count can detect. Pure functions; they must not format for reports or read files.
//!
//! Methods and sources:
//! - Interval of an accuracy: the Wilson score interval (E. B. Wilson, "Probable inference,
//!   the law of succession, and statistical inference", JASA 22, 1927), as statsmodels'
//!   `proportion_confint(method="wilson")`, z = Φ⁻¹(0.975). Unlike the Wald interval it stays
//!   inside [0, 1] and keeps its coverage at accuracies near 0 or 1 and for small n
//!   (Brown, Cai & DasGupta, "Interval estimation for a binomial proportion", Stat. Sci. 16, 2001).
//! - Paired test: McNemar's test (Q. McNemar, Psychometrika 12, 1947) in its exact form: under
//!   the null, the b items lost and c items gained are b + c fair coin flips, so
//!   p = min(1, 2 · P[X ≤ min(b, c)]) with X ~ Binomial(b + c, 1/2), exactly as statsmodels'
//!   `mcnemar(table, exact=True)`. The binomial tail is summed in log space from its largest
//!   term, so it is accurate for b + c in the tens of thousands (no factorials).
//! - Interval of the difference: the paired (item) bootstrap (B. Efron & R. Tibshirani, "An
//!   Introduction to the Bootstrap", 1993, ch. 13 percentile interval; for evaluation of
//!   models on shared items: Koehn, "Statistical significance tests for machine translation
//!   evaluation", EMNLP 2004). Items are resampled with replacement and the same resampled
//!   items score both levels, so the between-item variance cancels. Percentiles use linear
//!   interpolation between order statistics (numpy's default). Resampling draws from
//!   ChaCha8 seeded with `seed_from_u64`, so intervals are identical on every platform.
//! - Detectable difference: the sample size of a paired test on proportions (J. T. Connor,
//!   "Sample size for testing differences in proportions for the paired-sample design",
//!   Biometrics 43, 1987, eq. 3, the normal approximation for McNemar's test):
//!   n = [z_{α/2} √ψ + z_β √(ψ − δ²)]² / δ², with ψ the discordance rate (b + c) / n and δ the
//!   accuracy difference. Solved for δ at given n (α = 0.05 two-sided, power 1 − β = 0.8):
//!   δ = √ψ · K(n), K(n) = [√n z_{α/2} + z_β √(n − z_{α/2}² + z_β²)] / (n + z_β²).
//!   A drop of δ needs at least δ of the items to flip, so ψ is floored at δ; with that floor
//!   the detectable drop is max(√ψ_obs · K, K²), defined also when no item flipped.

use crate::results::TaskResult;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Φ⁻¹(0.975): the two-sided 95% normal quantile (scipy `norm.ppf(0.975)`), the one copy
/// of "1.96" in the crate (reports use it too).
pub const Z_95: f64 = 1.959_963_984_540_054;
/// Φ⁻¹(0.80): the quantile for 80% power (scipy `norm.ppf(0.8)`).
const Z_POWER_80: f64 = 0.841_621_233_572_914_3;
/// Bootstrap resamples used by [`task_result`].
pub const BOOTSTRAP_ITERS: usize = 2000;

/// Wilson score interval for k successes in n trials at 95% (z = 1.959964). n = 0 -> (0, 1).
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let k = k.min(n);
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = Z_95 * Z_95;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z_95 / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    // At k = 0 (k = n) the lower (upper) bound is 0 (1) exactly; the formula only reaches
    // it up to rounding.
    let low = if k == 0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let high = if k == n {
        1.0
    } else {
        (center + half).min(1.0)
    };
    (low, high)
}

/// Items right at the reference and wrong at the level (lost), and the reverse (gained).
/// Panics if the slices differ in length (they must score the same items).
pub fn flips(reference: &[bool], level: &[bool]) -> (usize, usize) {
    assert_eq!(
        reference.len(),
        level.len(),
        "flips: reference and level must score the same items"
    );
    let mut lost = 0;
    let mut gained = 0;
    for (&r, &l) in reference.iter().zip(level) {
        match (r, l) {
            (true, false) => lost += 1,
            (false, true) => gained += 1,
            _ => {}
        }
    }
    (lost, gained)
}

/// Natural log of the binomial coefficient C(n, k), as a sum of logs (exact to rounding;
/// k ≤ n).
fn ln_choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum()
}

/// Exact two-sided McNemar test p-value on the discordant counts b, c (binomial with p = 0.5, two-sided as
/// statsmodels' mcnemar(exact=True): min(1, 2 * P[X <= min(b,c)])); 1.0 when b + c = 0. Must be accurate for
/// b + c up to 20,000 (use log-space / a stable binomial CDF, not factorials).
pub fn mcnemar_exact_p(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P[X = k] in log space; k ≤ n/2, so the terms P[X = i] grow with i up to k and the sum
    // P[X ≤ k] = P[X = k] · (1 + r_k + r_k r_{k-1} + …), r_i = P[X = i-1] / P[X = i] = i / (n - i + 1).
    let ln_pk = ln_choose(n, k) - n as f64 * std::f64::consts::LN_2;
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    for i in (1..=k).rev() {
        term *= i as f64 / (n - i + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    let ln_tail = ln_pk + sum.ln();
    (std::f64::consts::LN_2 + ln_tail).exp().min(1.0)
}

/// Percentile `q` (0..1) of sorted values, linear interpolation between order statistics
/// (numpy's default, Hyndman & Fan type 7).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Paired bootstrap over items of mean(level) - mean(reference): resample item indices with replacement
/// `iters` times (default 2000) with the seed; returns (delta, ci_low, ci_high) as the 2.5/97.5 percentiles.
/// `delta` is the observed difference on all items. No items (or `iters` = 0) gives a
/// degenerate interval at `delta`. Panics if the slices differ in length.
pub fn paired_bootstrap(
    reference: &[bool],
    level: &[bool],
    iters: usize,
    seed: u64,
) -> (f64, f64, f64) {
    assert_eq!(
        reference.len(),
        level.len(),
        "paired_bootstrap: reference and level must score the same items"
    );
    let n = reference.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    // Per-item difference: -1 lost, +1 gained, 0 unchanged.
    let d: Vec<i8> = reference
        .iter()
        .zip(level)
        .map(|(&r, &l)| l as i8 - r as i8)
        .collect();
    let delta = d.iter().map(|&x| x as i64).sum::<i64>() as f64 / n as f64;
    if iters == 0 || d.iter().all(|&x| x == d[0]) {
        // Every resample has the same mean.
        return (delta, delta, delta);
    }
    let n32 = u32::try_from(n).expect("paired_bootstrap: more than 2^32 items");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..iters)
        .map(|_| {
            let s: i64 = (0..n)
                .map(|_| d[rng.random_range(0..n32) as usize] as i64)
                .sum();
            s as f64 / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (
        delta,
        percentile_sorted(&means, 0.025),
        percentile_sorted(&means, 0.975),
    )
}

/// The constant K(n) of the module doc: the detectable difference is √ψ · K(n).
/// None when n is too small for the normal approximation to detect anything.
fn connor_k(n: usize) -> Option<f64> {
    let n = n as f64;
    let inner = n - Z_95 * Z_95 + Z_POWER_80 * Z_POWER_80;
    if n <= 0.0 || inner <= 0.0 {
        return None;
    }
    Some((n.sqrt() * Z_95 + Z_POWER_80 * inner.sqrt()) / (n + Z_POWER_80 * Z_POWER_80))
}

/// The smallest accuracy drop detectable with 80% power at alpha = 0.05 (two-sided) by a paired test on n items,
/// given the observed discordance rate (b + c) / n (use a floor, e.g. the observed rate or 2 * min detectable, so it
/// is defined when there are no flips; document the formula: Connor 1987 / the normal approximation for McNemar).
///
/// Formula (module doc): max(√ψ · K(n), K(n)²), capped at 1; the second term is the floor
/// ψ ≥ δ (a drop of δ flips at least a fraction δ of the items). 1.0 (nothing detectable)
/// for n = 0 and for n below z_{α/2}² − z_β² ≈ 3.1.
pub fn min_detectable_delta(n: usize, discordant_rate: f64) -> f64 {
    let Some(k) = connor_k(n) else {
        return 1.0;
    };
    let psi = if discordant_rate.is_nan() {
        0.0
    } else {
        discordant_rate.clamp(0.0, 1.0)
    };
    (psi.sqrt() * k).max(k * k).min(1.0)
}

/// All of the above for one task metric at one level: fills a crate::results::TaskResult (value, ci_low, ci_high, n,
/// and, when `reference` is Some, delta_vs_reference, delta_ci_low/high, mcnemar_p, flips_lost/gained,
/// min_detectable_delta). `seconds` and `items_per_sec` are left for the caller.
/// The bootstrap uses [`BOOTSTRAP_ITERS`] resamples.
pub fn task_result(
    task: &str,
    kind: crate::results::TaskKind,
    metric: &str,
    level: &[bool],
    reference: Option<&[bool]>,
    seed: u64,
) -> Result<TaskResult> {
    let n = level.len();
    if n == 0 {
        bail!("task {task} ({metric}): no items scored");
    }
    let k = level.iter().filter(|&&x| x).count();
    let (ci_low, ci_high) = wilson_interval(k, n);
    let mut r = TaskResult {
        task: task.to_string(),
        kind,
        metric: metric.to_string(),
        value: k as f64 / n as f64,
        ci_low,
        ci_high,
        n,
        ..Default::default()
    };
    if let Some(reference) = reference {
        if reference.len() != n {
            bail!(
                "task {task} ({metric}): the reference scored {} items and this level {n}; a paired comparison needs the same items",
                reference.len()
            );
        }
        let (lost, gained) = flips(reference, level);
        let (delta, lo, hi) = paired_bootstrap(reference, level, BOOTSTRAP_ITERS, seed);
        r.delta_vs_reference = Some(delta);
        r.delta_ci_low = Some(lo);
        r.delta_ci_high = Some(hi);
        r.mcnemar_p = Some(mcnemar_exact_p(lost, gained));
        r.flips_lost = Some(lost);
        r.flips_gained = Some(gained);
        r.min_detectable_delta = Some(min_detectable_delta(n, (lost + gained) as f64 / n as f64));
    }
    Ok(r)
}

/// Seeded sample of `n` distinct indices out of `len`, sorted ascending (for --limit); all when n >= len.
/// rand's `index::sample` on ChaCha8: the same indices on every platform (indices are drawn
/// as u32 while `len` fits in one).
pub fn sample_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = rand::seq::index::sample(&mut rng, len, n).into_vec();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TaskKind;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Relative closeness, for p-values spanning many orders of magnitude.
    fn rel_close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// `n` items with `k` right, in a fixed order.
    fn answers(pattern: &[(bool, usize)]) -> Vec<bool> {
        pattern
            .iter()
            .flat_map(|&(v, count)| std::iter::repeat_n(v, count))
            .collect()
    }

    #[test]
    fn wilson_matches_statsmodels() {
        // Expected: statsmodels 0.15.0
        // proportion_confint(k, n, alpha=0.05, method="wilson").
        let cases = [
            (0, 10, 0.0, 0.277_532_799_862_889_26),
            (10, 10, 0.722_467_200_137_110_6, 1.0),
            (7, 10, 0.396_778_147_461_145_37, 0.892_208_732_593_698_9),
            (81, 100, 0.722_211_546_209_356_2, 0.874_852_484_902_312_6),
            (
                5021,
                10042,
                0.490_222_565_046_730_7,
                0.509_777_434_953_269_3,
            ),
            (1, 1, 0.206_549_314_377_237_4, 1.0),
            (0, 1, 0.0, 0.793_450_685_622_762_7),
        ];
        for (k, n, lo, hi) in cases {
            let (l, h) = wilson_interval(k, n);
            assert!(close(l, lo, 1e-12), "wilson({k},{n}) low {l} != {lo}");
            assert!(close(h, hi, 1e-12), "wilson({k},{n}) high {h} != {hi}");
        }
        // By hand for 7/10: p = .7, z² = 3.841459, center = (.7 + .1920730)/1.3841459 = .6444934,
        // half = 1.959964/1.3841459 · √(.021 + .0096036) = .2477153 → (.3967781, .8922087).
        let (l, h) = wilson_interval(7, 10);
        assert!(close(l, 0.396_778_1, 1e-7) && close(h, 0.892_208_7, 1e-7));
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn flips_count_each_direction() {
        let reference = [true, true, false, false, true, false];
        let level = [true, false, true, false, false, false];
        // Lost: items 1 and 4 (right → wrong); gained: item 2 (wrong → right).
        assert_eq!(flips(&reference, &level), (2, 1));
        assert_eq!(flips(&level, &reference), (1, 2));
        assert_eq!(flips(&[], &[]), (0, 0));
    }

    #[test]
    fn mcnemar_matches_statsmodels_and_exact_sums() {
        // Expected: statsmodels 0.15.0 mcnemar([[0, b], [c, 0]], exact=True).pvalue, checked
        // against the exact sum 2 · Σ_{i ≤ min(b,c)} C(b+c, i) / 2^(b+c) in mpmath at 50 digits
        // (the digits here are mpmath's where the two differ in the last places).
        let cases = [
            (0, 0, 1.0),
            (1, 0, 1.0),
            (0, 5, 0.0625),             // 2 · 2⁻⁵
            (3, 7, 0.34375),            // 2 · (1 + 10 + 45 + 120) / 1024 = 352/1024
            (10, 10, 1.0),              // 2 · P[X ≤ 10] > 1
            (2, 12, 0.012_939_453_125), // 2 · (1 + 14 + 91) / 16384
            (40, 60, 0.056_887_933_640_980_79),
            (5000, 5200, 0.048_787_963_126_822_45),
            (9800, 10200, 0.004_780_889_455_902_644),
            (9000, 11000, 1.954_082_770_582_896e-45),
        ];
        for (b, c, want) in cases {
            let got = mcnemar_exact_p(b, c);
            assert!(
                rel_close(got, want, 1e-9),
                "mcnemar({b},{c}) = {got}, want {want}"
            );
            // Symmetric in b and c.
            assert_eq!(got, mcnemar_exact_p(c, b));
        }
        // 2 · 2^-20000 = 5.02e-6021 underflows f64: the answer is 0, not NaN.
        assert_eq!(mcnemar_exact_p(0, 20000), 0.0);
    }

    #[test]
    fn bootstrap_delta_and_interval() {
        // 1000 items: 60 lost, 30 gained, 910 unchanged (500 right at both).
        let reference = answers(&[(true, 60), (false, 30), (true, 500), (false, 410)]);
        let level = answers(&[(false, 60), (true, 30), (true, 500), (false, 410)]);
        let (delta, lo, hi) = paired_bootstrap(&reference, &level, 2000, 42);
        // Observed difference: (30 - 60) / 1000.
        assert!(close(delta, -0.03, 1e-15));
        assert!(lo < delta && delta < hi);
        // The bootstrap SE of a mean of d ∈ {-1, 0, 1} is √((ψ − δ²)/n)
        // = √((0.09 − 0.0009)/1000) = 0.0094393; the percentile interval is about
        // δ ± 1.96 · SE = (-0.04850, -0.01150). 2000 resamples estimate each end to within a
        // few tenths of a point; allow 0.003.
        assert!(close(lo, -0.0485, 0.003), "ci low {lo}");
        assert!(close(hi, -0.0115, 0.003), "ci high {hi}");
        // The same seed gives the same interval; another seed a slightly different one.
        assert_eq!(
            paired_bootstrap(&reference, &level, 2000, 42),
            (delta, lo, hi)
        );
        assert_ne!(
            paired_bootstrap(&reference, &level, 2000, 43),
            (delta, lo, hi)
        );
        // Swapping the levels mirrors the difference.
        let (d2, _, _) = paired_bootstrap(&level, &reference, 2000, 42);
        assert!(close(d2, 0.03, 1e-15));
    }

    #[test]
    fn bootstrap_degenerate_cases() {
        // Identical answers: no difference and no spread.
        let a = answers(&[(true, 7), (false, 3)]);
        assert_eq!(paired_bootstrap(&a, &a, 2000, 1), (0.0, 0.0, 0.0));
        // Every item lost: every resample has mean -1.
        let r = vec![true; 5];
        let l = vec![false; 5];
        assert_eq!(paired_bootstrap(&r, &l, 2000, 1), (-1.0, -1.0, -1.0));
        assert_eq!(paired_bootstrap(&[], &[], 2000, 1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn bootstrap_speed_on_hellaswag_size() {
        // HellaSwag validation: 10,042 items; measured, not asserted (the machine is shared).
        let n = 10_042;
        let reference: Vec<bool> = (0..n).map(|i| i % 5 < 2).collect();
        let level: Vec<bool> = (0..n).map(|i| i % 7 < 3).collect();
        let t = std::time::Instant::now();
        let (delta, lo, hi) = paired_bootstrap(&reference, &level, BOOTSTRAP_ITERS, 7);
        eprintln!(
            "paired_bootstrap: {n} items x {BOOTSTRAP_ITERS} resamples in {:.3} s (delta {delta:.4}, CI {lo:.4} to {hi:.4})",
            t.elapsed().as_secs_f64()
        );
        assert!(lo <= delta && delta <= hi);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925]:
        // position 0.025 · 3 = 0.075 → 1 + 0.075; position 2.925 → 3 + 0.925.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile_sorted(&v, 0.025), 1.075, 1e-12));
        assert!(close(percentile_sorted(&v, 0.975), 3.925, 1e-12));
        assert_eq!(percentile_sorted(&[5.0], 0.5), 5.0);
    }

    #[test]
    fn min_detectable_matches_connor() {
        // Expected values from the closed form in the module doc with scipy's quantiles
        // z_.975 = 1.959963984540054, z_.8 = 0.8416212335729143; each was checked by putting it
        // back into Connor's n = [z_α/2 √ψ + z_β √(ψ − δ²)]² / δ² (with ψ floored at δ), which
        // returns the n it came from.
        let cases = [
            (100, 0.0, 0.076_656_134_246_235_74), // no flips: K(100)² (ψ floored at δ)
            (100, 0.1, 0.087_553_488_934_613_98),
            (1000, 0.1, 0.027_982_836_304_473_523),
            (10042, 0.05, 0.006_250_686_872_740_982),
            (10042, 0.0, 0.000_781_421_727_621_128_6),
            (500, 0.3, 0.068_462_862_096_213_52),
        ];
        for (n, psi, want) in cases {
            let got = min_detectable_delta(n, psi);
            assert!(
                close(got, want, 1e-12),
                "mdd({n}, {psi}) = {got}, want {want}"
            );
        }
        // By hand, large-n form: √ψ (z_α/2 + z_β) / √n = √.1 · 2.8015852 / √1000 = 0.0280159,
        // within 0.1% of the exact 0.0279828.
        assert!(close(min_detectable_delta(1000, 0.1), 0.028_015_9, 5e-5));
        // More items detect smaller drops; more disagreement needs bigger ones.
        assert!(min_detectable_delta(2000, 0.1) < min_detectable_delta(1000, 0.1));
        assert!(min_detectable_delta(1000, 0.2) > min_detectable_delta(1000, 0.1));
        // Nothing is detectable on no items or too few.
        assert_eq!(min_detectable_delta(0, 0.5), 1.0);
        assert_eq!(min_detectable_delta(3, 0.5), 1.0);
        assert!(min_detectable_delta(10042, f64::NAN).is_finite());
    }

    #[test]
    fn min_detectable_delta_matches_connor() {
        // Connor's n for δ = 0.02 at ψ = .1 (scipy quantiles as above) is 1959.86, so 1960
        // items detect about a 2-point drop.
        let d = min_detectable_delta(1960, 0.1);
        assert!(close(d, 0.02, 1e-4), "{d}");
    }

    #[test]
    fn task_result_fills_every_field() {
        // 100 items; reference 70 right; the level loses 12 of them and gains 2:
        // 60 right. Lost = 12, gained = 2.
        let reference = answers(&[(true, 12), (false, 2), (true, 58), (false, 28)]);
        let level = answers(&[(false, 12), (true, 2), (true, 58), (false, 28)]);
        let r = task_result(
            "default/choice",
            TaskKind::Choice,
            "acc",
            &level,
            Some(&reference),
            42,
        )
        .expect("same length");
        assert_eq!(r.task, "default/choice");
        assert_eq!(r.kind, TaskKind::Choice);
        assert_eq!(r.metric, "acc");
        assert_eq!(r.n, 100);
        assert!(close(r.value, 0.60, 1e-15));
        let (lo, hi) = wilson_interval(60, 100);
        assert_eq!((r.ci_low, r.ci_high), (lo, hi));
        assert!(close(
            r.delta_vs_reference.unwrap_or(f64::NAN),
            -0.10,
            1e-15
        ));
        assert_eq!(r.flips_lost, Some(12));
        assert_eq!(r.flips_gained, Some(2));
        // 2 · (1 + 14 + 91) / 2^14 (see the McNemar test).
        assert!(rel_close(
            r.mcnemar_p.unwrap_or(f64::NAN),
            0.012_939_453_125,
            1e-12
        ));
        let (_, dlo, dhi) = paired_bootstrap(&reference, &level, BOOTSTRAP_ITERS, 42);
        assert_eq!(r.delta_ci_low, Some(dlo));
        assert_eq!(r.delta_ci_high, Some(dhi));
        assert_eq!(
            r.min_detectable_delta,
            Some(min_detectable_delta(100, 0.14))
        );
        assert_eq!((r.seconds, r.items_per_sec), (0.0, 0.0));

        // At the reference: only the accuracy and its interval.
        let r =
            task_result("t", TaskKind::Generate, "exact_match", &reference, None, 42).expect("ok");
        assert!(close(r.value, 0.70, 1e-15));
        assert_eq!(r.delta_vs_reference, None);
        assert_eq!(r.mcnemar_p, None);
        assert_eq!(r.flips_lost, None);
        assert_eq!(r.min_detectable_delta, None);
    }

    #[test]
    fn task_result_rejects_bad_input() {
        let e = task_result("t", TaskKind::Choice, "acc", &[], None, 1).expect_err("no items");
        assert!(e.to_string().contains("no items"), "{e}");
        let e = task_result(
            "t",
            TaskKind::Choice,
            "acc",
            &[true, false],
            Some(&[true]),
            1,
        )
        .expect_err("length mismatch");
        assert!(e.to_string().contains("same items"), "{e}");
    }

    #[test]
    fn sample_indices_is_seeded_sorted_distinct() {
        let s = sample_indices(10_042, 2000, 1234);
        assert_eq!(s.len(), 2000);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(s.iter().all(|&i| i < 10_042));
        assert_eq!(s, sample_indices(10_042, 2000, 1234));
        assert_ne!(s, sample_indices(10_042, 2000, 1235));
        assert_eq!(sample_indices(5, 5, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(5, 9, 1), vec![0, 1, 2, 3, 4]);
        assert!(sample_indices(5, 0, 1).is_empty());
        // Golden value, recorded from rand 0.9 + rand_chacha 0.9: if it changes, --limit picks
        // other items than earlier qeval versions did and their numbers stop being comparable.
        assert_eq!(sample_indices(100, 5, 42), GOLDEN_SAMPLE.to_vec());
    }
    const GOLDEN_SAMPLE: [usize; 5] = [14, 21, 66, 77, 94];
}
