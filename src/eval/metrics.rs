//! The quality numbers, as pure functions: per-position log-softmax, NLL, KL divergence,
//! top-1 agreement and Δp, and their summaries with standard errors.
//!
//! Conventions follow llama.cpp's `perplexity` tool (`--kl-divergence`), so numbers are
//! comparable with it: perplexity = exp(mean NLL), its SE by the delta method
//! (ppl · SE(NLL)); SE of a mean = sqrt(var / (n − 1)); KLD is KL(reference ‖ level) in
//! nats per token; top-1 agreement is the fraction of positions where both pick the same
//! most likely token, SE sqrt(p(1 − p)/(n − 1)); Δp is p_level(correct) − p_ref(correct)
//! and RMS Δp its root mean square, SE by the delta method (SE(mean Δp²) / (2 · RMS)).

use serde::{Deserialize, Serialize};

/// Write the log-softmax of `logits` into `out` (f64 accumulation for the normaliser).
pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // exp in f32 (the log-probabilities are kept as f32 anyway), summed in f64.
    let sum = vexp::sum_exp(logits, max);
    let lse = max as f64 + sum.ln();
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = (x as f64 - lse) as f32;
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// KL(P ‖ Q) from log-probabilities, in nats.
pub fn kl_divergence(ref_lp: &[f32], lp: &[f32]) -> f64 {
    vexp::kld(ref_lp, lp).max(0.0)
}

/// The definition `kl_divergence` computes, in f64 throughout (tests compare the two).
#[cfg(test)]
fn kl_divergence_scalar(ref_lp: &[f32], lp: &[f32]) -> f64 {
    ref_lp
        .iter()
        .zip(lp)
        .map(|(&a, &b)| {
            let p = (a as f64).exp();
            if p == 0.0 {
                0.0
            } else {
                p * (a as f64 - b as f64)
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// Everything measured at one scored position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub nll: f64,
    pub kld: f64,
    pub top1_same: bool,
    pub delta_p: f64,
}

/// Compare one position of a level with the reference; `target` is the correct next token.
pub fn compare(ref_lp: &[f32], lp: &[f32], target: usize) -> Position {
    Position {
        nll: -(lp[target] as f64),
        kld: kl_divergence(ref_lp, lp),
        top1_same: argmax(ref_lp) == argmax(lp),
        delta_p: (lp[target] as f64).exp() - (ref_lp[target] as f64).exp(),
    }
}

/// Mean and its standard error sqrt(var/(n-1)) (var with divisor n, as llama.cpp).
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    (mean, (var / (n - 1) as f64).sqrt())
}

/// The q-quantile (0..=1) by linear interpolation between order statistics.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Summary of a level's quality over all scored positions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualitySummary {
    pub n_tokens: usize,
    pub perplexity: f64,
    pub perplexity_se: f64,
    pub nll_mean: f64,
    pub kld_mean: Option<f64>,
    pub kld_mean_se: Option<f64>,
    pub kld_median: Option<f64>,
    pub kld_p99: Option<f64>,
    pub kld_max: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub top1_agreement_se: Option<f64>,
    pub rms_delta_p: Option<f64>,
    pub rms_delta_p_se: Option<f64>,
    /// `--kld-study`: (K, mean KLD a top-K pack gives), computed beside the exact KLD.
    #[serde(default)]
    pub kld_by_top_k: Vec<(usize, f64)>,
}

/// Summarise positions (for the reference level itself KLD is 0, top-1 1 and Δp 0 by definition).
pub fn summarize(ps: &[Position]) -> QualitySummary {
    let nll: Vec<f64> = ps.iter().map(|p| p.nll).collect();
    let (nll_mean, nll_se) = mean_se(&nll);
    let ppl = nll_mean.exp();
    let n = ps.len();
    let (kld_mean, kld_se, kld_median, kld_p99, kld_max, top1, top1_se, rms, rms_se) = if n > 0 {
        let kld: Vec<f64> = ps.iter().map(|p| p.kld).collect();
        let (km, kse) = mean_se(&kld);
        let t = ps.iter().filter(|p| p.top1_same).count() as f64 / n as f64;
        let tse = if n > 1 {
            (t * (1.0 - t) / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        let dp2: Vec<f64> = ps.iter().map(|p| p.delta_p * p.delta_p).collect();
        let (m2, m2se) = mean_se(&dp2);
        let rms = m2.sqrt();
        let rms_se = if rms > 0.0 { m2se / (2.0 * rms) } else { 0.0 };
        let kmax = kld.iter().copied().fold(0.0, f64::max);
        (
            Some(km),
            Some(kse),
            Some(quantile(&kld, 0.5)),
            Some(quantile(&kld, 0.99)),
            Some(kmax),
            Some(t),
            Some(tse),
            Some(rms),
            Some(rms_se),
        )
    } else {
        (None, None, None, None, None, None, None, None, None)
    };
    QualitySummary {
        n_tokens: n,
        perplexity: ppl,
        perplexity_se: ppl * nll_se,
        nll_mean,
        kld_mean,
        kld_mean_se: kld_se,
        kld_median,
        kld_p99,
        kld_max,
        top1_agreement: top1,
        top1_agreement_se: top1_se,
        rms_delta_p: rms,
        rms_delta_p_se: rms_se,
        kld_by_top_k: Vec::new(),
    }
}

/// exp over a vocabulary's worth of f32 values, eight lanes at a time where AVX2 runs (scoring
/// spends most of its time outside the forward pass here), sums kept in f64.
mod vexp {
    /// Σ exp(x − max), in f64.
    pub fn sum_exp(x: &[f32], max: f32) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::isa().is_some() {
            // Safety: isa() found AVX2 and FMA.
            return unsafe { avx2::sum_exp(x, max) };
        }
        x.iter().map(|&v| (v - max).exp() as f64).sum()
    }

    /// Σ exp(a)·(a − b), in f64.
    pub fn kld(a: &[f32], b: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::isa().is_some() {
            // Safety: as above.
            return unsafe { avx2::kld(a, b) };
        }
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x.exp() as f64 * (x as f64 - y as f64))
            .sum()
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use crate::kernels::exp::exp8;
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn add_pd(acc: __m256d, v: __m256) -> __m256d {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            _mm256_add_pd(acc, _mm256_add_pd(lo, hi))
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn hsum_pd(v: __m256d) -> f64 {
            let mut t = [0f64; 4];
            _mm256_storeu_pd(t.as_mut_ptr(), v);
            t.iter().sum()
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn sum_exp(x: &[f32], max: f32) -> f64 {
            let m = _mm256_set1_ps(max);
            let mut acc = _mm256_setzero_pd();
            let chunks = x.len() / 8;
            for i in 0..chunks {
                let v = _mm256_loadu_ps(x.as_ptr().add(8 * i));
                acc = add_pd(acc, exp8(_mm256_sub_ps(v, m)));
            }
            let mut s = hsum_pd(acc);
            for &v in &x[chunks * 8..] {
                s += (v - max).exp() as f64;
            }
            s
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn kld(a: &[f32], b: &[f32]) -> f64 {
            let n = a.len().min(b.len());
            let mut acc = _mm256_setzero_pd();
            let chunks = n / 8;
            for i in 0..chunks {
                let x = _mm256_loadu_ps(a.as_ptr().add(8 * i));
                let y = _mm256_loadu_ps(b.as_ptr().add(8 * i));
                acc = add_pd(acc, _mm256_mul_ps(exp8(x), _mm256_sub_ps(x, y)));
            }
            let mut s = hsum_pd(acc);
            for i in chunks * 8..n {
                s += a[i].exp() as f64 * (a[i] as f64 - b[i] as f64);
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    /// The vectorised exp sums agree with f64 arithmetic on a real-looking distribution (a
    /// 49,152-entry vocabulary, log-probabilities from -60 to 0) to 1e-6 relative.
    #[test]
    fn vectorised_kld_and_softmax_match_f64() {
        let n = 49_152;
        let logits: Vec<f32> = (0..n)
            .map(|i| {
                ((i * 7919 % 1000) as f32 / 1000.0) * 30.0 - 25.0 + if i == 17 { 12.0 } else { 0.0 }
            })
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
        let got = vexp::sum_exp(&logits, max);
        assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        let mut p = vec![0f32; n];
        let mut q = vec![0f32; n];
        log_softmax(&logits, &mut p);
        let shifted: Vec<f32> = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| x + ((i % 13) as f32 - 6.0) * 0.05)
            .collect();
        log_softmax(&shifted, &mut q);
        let want = kl_divergence_scalar(&p, &q);
        let got = kl_divergence(&p, &q);
        assert!(want > 1e-4, "{want}");
        assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        // Underflow: probabilities below e^-87 count as 0.
        let tiny = [
            -100.0f32, -90.0, -88.0, -87.5, -1.0, 0.0, -0.5, -3.0, -120.0,
        ];
        let got = vexp::sum_exp(&tiny, 0.0);
        let want: f64 = tiny.iter().map(|&x| (x as f64).exp()).sum();
        assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
    }

    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn log_softmax_matches_hand_values() {
        let mut out = [0f32; 3];
        log_softmax(&[1.0, 2.0, 3.0], &mut out);
        // log(e^1+e^2+e^3) = 3.40760596
        assert!(close(out[0] as f64, 1.0 - 3.407_605_96, 1e-6));
        assert!(close(out[2] as f64, 3.0 - 3.407_605_96, 1e-6));
        let s: f64 = out.iter().map(|&x| (x as f64).exp()).sum();
        assert!(close(s, 1.0, 1e-6));
    }

    #[test]
    fn kld_of_hand_computed_distributions() {
        // P = (0.5, 0.5), Q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.1438410362
        let p = [0.5f32.ln(), 0.5f32.ln()];
        let q = [0.25f32.ln(), 0.75f32.ln()];
        assert!(close(kl_divergence(&p, &q), 0.143_841_036_2, 1e-6));
        assert_eq!(kl_divergence(&p, &p), 0.0);
    }

    #[test]
    fn compare_gives_nll_top1_and_delta_p() {
        let r = [0.7f32.ln(), 0.2f32.ln(), 0.1f32.ln()];
        let l = [0.5f32.ln(), 0.4f32.ln(), 0.1f32.ln()];
        let p = compare(&r, &l, 1);
        assert!(close(p.nll, -(0.4f64.ln()), 1e-6));
        assert!(p.top1_same);
        assert!(close(p.delta_p, 0.2, 1e-6));
    }

    #[test]
    fn summary_matches_hand_computation() {
        // NLLs 1,2,3,4: mean 2.5, var (divisor n) 1.25, SE sqrt(1.25/3) = 0.6454972
        let ps: Vec<Position> = [1.0, 2.0, 3.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, &nll)| Position {
                nll,
                kld: i as f64 * 0.1,
                top1_same: i != 0,
                delta_p: if i % 2 == 0 { 0.1 } else { -0.1 },
            })
            .collect();
        let s = summarize(&ps);
        assert!(close(s.nll_mean, 2.5, 1e-12));
        assert!(close(s.perplexity, 2.5f64.exp(), 1e-9));
        assert!(close(s.perplexity_se, 2.5f64.exp() * 0.645_497_224_4, 1e-6));
        assert!(close(s.kld_mean.unwrap(), 0.15, 1e-12));
        // KLD 0,.1,.2,.3: var 0.0125 -> SE sqrt(0.0125/3) = 0.0645497
        assert!(close(s.kld_mean_se.unwrap(), 0.064_549_722_4, 1e-9));
        assert!(close(s.kld_median.unwrap(), 0.15, 1e-12));
        assert!(close(s.kld_p99.unwrap(), 0.297, 1e-9));
        assert!(close(s.top1_agreement.unwrap(), 0.75, 1e-12));
        assert!(close(
            s.top1_agreement_se.unwrap(),
            (0.75f64 * 0.25 / 3.0).sqrt(),
            1e-12
        ));
        assert!(close(s.rms_delta_p.unwrap(), 0.1, 1e-12));
    }

    #[test]
    fn quantile_interpolates() {
        let v = [3.0, 1.0, 2.0, 4.0];
        assert!(close(quantile(&v, 0.5), 2.5, 1e-12));
        assert!(close(quantile(&v, 1.0), 4.0, 1e-12));
        assert!(close(quantile(&v, 0.0), 1.0, 1e-12));
    }
}
