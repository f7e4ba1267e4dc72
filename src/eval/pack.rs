//! What a reference pack keeps of one scored position, and the quality numbers computed from
//! it: the reference's K most likely tokens with their log-probabilities, K more tokens drawn
//! from the rest of the vocabulary in proportion to their probability (with theirs), the log
//! of the rest's total mass, the log-probability of the correct next token and the reference's
//! most likely token. Perplexity, Δp and top-1 agreement need nothing more and stay exact.
//! KL divergence sums the top K exactly and estimates the rest from the draws
//! ([`kl_divergence`]): unbiased, so over thousands of positions the mean KLD lands close to
//! the exact one; how close at each K is measured (`--kld-study`, README). Keeping
//! only the top K and one bin for the rest would instead be a lower bound that misses a fifth
//! of a q4 level's KLD on SmolLM2 at K = 64 (measured). Owns the record and its fixed-size
//! bytes; the `.qref` file around the records is `crate::refpack`.

use super::metrics::Position;
use std::io::{Read, Write};

/// One scored position of the reference, as a pack keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct PackRecord {
    /// The K most likely tokens, most likely first (ties: lower id first).
    pub ids: Vec<u32>,
    /// Their log-probabilities.
    pub lps: Vec<f32>,
    /// K tokens drawn from the rest of the vocabulary in proportion to their probability
    /// (systematic sampling, seeded by the position), with their log-probabilities.
    pub tail_ids: Vec<u32>,
    pub tail_lps: Vec<f32>,
    /// log of the probability of every token outside the top K (−inf when there is none).
    pub log_rest: f32,
    /// log-probability of the correct next token.
    pub target_lp: f32,
    /// The most likely token.
    pub argmax: u32,
}

impl PackRecord {
    /// The record of a full log-probability row `lp` (length = vocabulary) for `target`; `seed`
    /// picks the tail's draws (the same seed gives the same record).
    pub fn from_logprobs(lp: &[f32], target: usize, k: usize, seed: u64) -> PackRecord {
        PackRecord::from_sorted(lp, &sorted(lp), target, k, seed)
    }

    /// The same from `order`, the row's ids sorted by [`sorted`] (sort once, make records of
    /// several K).
    pub fn from_sorted(
        lp: &[f32],
        order: &[u32],
        target: usize,
        k: usize,
        seed: u64,
    ) -> PackRecord {
        let k = k.min(lp.len());
        let (top, tail) = order.split_at(k);
        // The tail's mass, in f64, summed from the smallest up.
        let p_rest: f64 = tail
            .iter()
            .rev()
            .map(|&i| (lp[i as usize] as f64).exp())
            .sum();
        let (tail_ids, tail_lps) = draw_tail(lp, tail, p_rest, k, seed);
        PackRecord {
            lps: top.iter().map(|&i| lp[i as usize]).collect(),
            ids: top.to_vec(),
            tail_ids,
            tail_lps,
            log_rest: if p_rest > 0.0 {
                p_rest.ln() as f32
            } else {
                f32::NEG_INFINITY
            },
            target_lp: lp[target],
            argmax: super::metrics::argmax(lp) as u32,
        }
    }

    /// Bytes of one record with `k` top tokens and `k` tail draws: ids (u32) and
    /// log-probabilities (f32) of both, then log_rest, target_lp (f32) and argmax (u32), all
    /// little-endian.
    pub fn size(k: usize) -> usize {
        16 * k + 12
    }

    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(Self::size(self.ids.len()));
        for id in self.ids.iter().chain(&self.tail_ids) {
            b.extend_from_slice(&id.to_le_bytes());
        }
        for x in self.lps.iter().chain(&self.tail_lps) {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&self.log_rest.to_le_bytes());
        b.extend_from_slice(&self.target_lp.to_le_bytes());
        b.extend_from_slice(&self.argmax.to_le_bytes());
        w.write_all(&b)
    }

    /// Read one record of `k` top tokens and `k` tail draws.
    pub fn read(r: &mut impl Read, k: usize) -> std::io::Result<PackRecord> {
        let mut b = vec![0u8; Self::size(k)];
        r.read_exact(&mut b)?;
        let word = |i: usize| [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]];
        let u = |i: usize| u32::from_le_bytes(word(i));
        let f = |i: usize| f32::from_le_bytes(word(i));
        Ok(PackRecord {
            ids: (0..k).map(u).collect(),
            tail_ids: (k..2 * k).map(u).collect(),
            lps: (2 * k..3 * k).map(f).collect(),
            tail_lps: (3 * k..4 * k).map(f).collect(),
            log_rest: f(4 * k),
            target_lp: f(4 * k + 1),
            argmax: u(4 * k + 2),
        })
    }
}

/// The ids of a row, most likely first, lower id first on ties (a total order: the same
/// records whatever the sort does). Sorted as one u64 key per token (the log-probability's
/// bits mapped to an unsigned order, inverted, above the id): the order of `f32::total_cmp`
/// descending then id ascending, without an indirect comparison per step.
pub fn sorted(lp: &[f32]) -> Vec<u32> {
    let mut keys: Vec<u64> = lp
        .iter()
        .enumerate()
        .map(|(i, x)| {
            // f32::total_cmp's order as an unsigned integer.
            let b = x.to_bits() as i32;
            let ordered = ((b ^ ((((b >> 31) as u32) >> 1) as i32)) as u32) ^ 0x8000_0000;
            ((!ordered as u64) << 32) | i as u64
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k as u32).collect()
}

/// `n` tokens of `tail` (most likely first) drawn in proportion to their probability by
/// systematic sampling: one seeded offset, then `n` evenly spaced points of the tail's
/// cumulative mass. Each point is uniform on the tail's mass, so the draws give an unbiased
/// estimate of any sum over the tail weighted by probability; walking the tail from the most
/// likely token down spreads the points evenly over it (stratified by probability), which
/// keeps that estimate's variance low.
fn draw_tail(lp: &[f32], tail: &[u32], p_rest: f64, n: usize, seed: u64) -> (Vec<u32>, Vec<f32>) {
    use rand::{Rng, SeedableRng};
    if n == 0 || p_rest <= 0.0 {
        return (Vec::new(), Vec::new());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let offset: f64 = rng.random::<f64>();
    let step = p_rest / n as f64;
    let (mut ids, mut lps) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut next = offset * step;
    let mut cum = 0.0f64;
    let mut last = None;
    for &i in tail {
        let x = lp[i as usize];
        let p = (x as f64).exp();
        if p <= 0.0 {
            break;
        }
        last = Some(i);
        cum += p;
        while ids.len() < n && next < cum {
            ids.push(i);
            lps.push(x);
            next += step;
        }
        if ids.len() == n {
            break;
        }
    }
    // Rounding can leave the last point a hair past the sum: it belongs to the last token.
    if let Some(i) = last {
        while ids.len() < n {
            ids.push(i);
            lps.push(lp[i as usize]);
        }
    }
    (ids, lps)
}

/// KL(reference ‖ level) from a record, in nats; `lp` is the level's full log-probability row.
/// The top K tokens count exactly. The rest counts through the identity
/// Σ_rest p·log(p/q) = Σ_rest p·g − (Q_rest − P_rest), g = log(p/q) + q/p − 1 ≥ 0, whose
/// second part is exact (the level's mass outside the top K is read off its row) and whose
/// first is estimated from the draws (P_rest × the mean g over them). g is second-order in the
/// log-ratio, where log(p/q) alone is first-order and cancels only in the sum, so the estimate
/// keeps a small variance even where the KLD is tiny (q8_0). Unbiased; a record without draws
/// (the whole vocabulary in its top) is exact.
pub fn kl_divergence(rec: &PackRecord, lp: &[f32]) -> f64 {
    let mut kld = 0.0f64;
    let mut q_top = 0.0f64;
    for (&id, &a) in rec.ids.iter().zip(&rec.lps) {
        let b = lp[id as usize] as f64;
        let p = (a as f64).exp();
        if p > 0.0 {
            kld += p * (a as f64 - b);
        }
        q_top += b.exp();
    }
    let p_rest = (rec.log_rest as f64).exp();
    if p_rest > 0.0 {
        let q_all: f64 = lp.iter().map(|&b| (b as f64).exp()).sum();
        let q_rest = (q_all - q_top).max(0.0);
        if rec.tail_ids.is_empty() {
            kld += p_rest * (p_rest.ln() - q_rest.max(f64::MIN_POSITIVE).ln());
        } else {
            let mean_g: f64 = rec
                .tail_ids
                .iter()
                .zip(&rec.tail_lps)
                .map(|(&id, &a)| {
                    let d = a as f64 - lp[id as usize] as f64;
                    d + (-d).exp() - 1.0
                })
                .sum::<f64>()
                / rec.tail_ids.len() as f64;
            kld += p_rest * mean_g - (q_rest - p_rest);
        }
    }
    kld
}

/// Compare one position of a level with the reference's record; `target` is the correct next
/// token. Perplexity, top-1 agreement and Δp are exactly what [`super::metrics::compare`] gives
/// on the full reference row; KLD is estimated from the record.
pub fn compare(rec: &PackRecord, lp: &[f32], target: usize) -> Position {
    Position {
        nll: -(lp[target] as f64),
        kld: kl_divergence(rec, lp),
        top1_same: rec.argmax as usize == super::metrics::argmax(lp),
        delta_p: (lp[target] as f64).exp() - (rec.target_lp as f64).exp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics;

    /// A log-probability row from seeded logits with a long tail, as a language model's.
    fn row(seed: u64, n: usize, sharp: f32) -> Vec<f32> {
        let mut s = seed;
        let logits: Vec<f32> = (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 33) as f32 / (1u64 << 31) as f32;
                sharp * u - (i as f32).ln_1p() * 0.5
            })
            .collect();
        let mut lp = vec![0f32; n];
        metrics::log_softmax(&logits, &mut lp);
        lp
    }

    /// The reference's row with its logits nudged: a level close to it.
    fn nudged(r: &[f32], seed: u64, by: f32) -> Vec<f32> {
        let noise = row(seed, r.len(), 6.0);
        let logits: Vec<f32> = r.iter().zip(&noise).map(|(a, b)| a + by * b).collect();
        let mut out = vec![0f32; r.len()];
        metrics::log_softmax(&logits, &mut out);
        out
    }

    #[test]
    fn exact_metrics_stay_exact_and_the_mean_kld_lands_on_the_exact_one() {
        let n = 400;
        let (mut exact, mut coarse_free) = (0.0, [0.0f64; 3]);
        for pos in 0..n {
            let r = row(pos, 3000, 10.0);
            let l = nudged(&r, 1000 + pos, 0.08);
            let target = (pos as usize * 37) % 3000;
            let e = metrics::compare(&r, &l, target);
            exact += e.kld;
            for (sum, k) in coarse_free.iter_mut().zip([8, 32, 128]) {
                let rec = PackRecord::from_logprobs(&r, target, k, pos);
                let p = compare(&rec, &l, target);
                assert_eq!(p.nll, e.nll);
                assert_eq!(p.delta_p, e.delta_p);
                assert_eq!(p.top1_same, e.top1_same);
                *sum += p.kld;
            }
        }
        for (est, k) in coarse_free.iter().zip([8, 32, 128]) {
            let rel = (est - exact).abs() / exact;
            assert!(
                rel < 0.03,
                "k={k}: mean KLD {est} against exact {exact} ({rel})"
            );
        }
        // Every token in the top: no draws, and the exact divergence (to f32 rounding).
        let r = row(5, 500, 10.0);
        let l = nudged(&r, 6, 0.1);
        let full = PackRecord::from_logprobs(&r, 3, 500, 0);
        assert!(full.tail_ids.is_empty());
        assert_eq!(full.log_rest, f32::NEG_INFINITY);
        let e = metrics::kl_divergence(&r, &l);
        assert!((kl_divergence(&full, &l) - e).abs() < 1e-6 * e.max(1e-3));
        // The reference against itself: zero whatever the draws, to the rounding of the rest's
        // mass stored as an f32 logarithm (relative 6e-8).
        let rec = PackRecord::from_logprobs(&r, 3, 16, 9);
        assert!(
            kl_divergence(&rec, &r).abs() < 1e-7,
            "{}",
            kl_divergence(&rec, &r)
        );
    }

    #[test]
    fn sorting_by_keys_is_the_total_order() {
        let mut r = row(11, 4000, 9.0);
        // Ties, signed zeros and infinities sort as f32::total_cmp orders them.
        r[10] = r[20];
        r[30] = r[20];
        r[40] = f32::NEG_INFINITY;
        r[50] = -0.0;
        r[60] = 0.0;
        let mut want: Vec<u32> = (0..r.len() as u32).collect();
        want.sort_by(|a, b| r[*b as usize].total_cmp(&r[*a as usize]).then(a.cmp(b)));
        assert_eq!(sorted(&r), want);
    }

    #[test]
    fn records_round_trip_and_draw_the_tail_by_probability() {
        let r = row(7, 3000, 15.0);
        let rec = PackRecord::from_logprobs(&r, 5, 64, 42);
        assert_eq!(rec.ids[0], rec.argmax);
        assert!(rec.lps.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(rec.tail_ids.len(), 64);
        assert!(rec.tail_ids.iter().all(|id| !rec.ids.contains(id)));
        let p = |id: &u32| r[*id as usize];
        assert!(
            rec.tail_ids.windows(2).all(|w| p(&w[0]) >= p(&w[1])),
            "drawn from the most likely down"
        );
        assert_eq!(
            rec,
            PackRecord::from_logprobs(&r, 5, 64, 42),
            "same seed, same record"
        );
        let mut buf = Vec::new();
        rec.write(&mut buf).unwrap();
        assert_eq!(buf.len(), PackRecord::size(64));
        assert_eq!(PackRecord::read(&mut buf.as_slice(), 64).unwrap(), rec);
        // The top's and the rest's mass add up to one.
        let total: f64 =
            rec.lps.iter().map(|&x| (x as f64).exp()).sum::<f64>() + (rec.log_rest as f64).exp();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
    }
}
