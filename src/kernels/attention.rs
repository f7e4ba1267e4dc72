//! Fused causal attention on the CPU: for each head and query, the scores of only the keys it
//! may see (cached positions up to its own, its own segment's new tokens, the sliding window),
//! a softmax, and the weighted sum of values, read straight from the KV cache.
//!
//! Why: the tensor path (repeat the K/V heads, Q·Kᵀ over every key, add a −∞ mask, softmax,
//! multiply by V) computes the masked half of every window and copies the grouped K/V heads on
//! each call; on SmolLM2 that was about a fifth of a 512-token window's time. Here nothing
//! masked is computed, grouped heads are indexed (no copy), the query heads that share a K/V
//! head run together so that each key and value row comes from L2 once for all of them, and
//! the exp is eight lanes wide.

use super::{for_chunks, OutPtr};
use candle_core::{CpuStorage, Storage, Tensor};

/// Which keys each new token sees. New token `i` sits at position `positions[i]`; it sees the
/// cached keys `0..pos0` at positions up to its own, and the new tokens `seg_start[i]..=i` (its
/// own segment); with a window `w`, only keys less than `w` positions back.
#[derive(Debug, Clone)]
pub struct Visibility<'a> {
    pub pos0: usize,
    pub positions: &'a [usize],
    pub seg_start: &'a [usize],
    pub window: Option<usize>,
}

impl Visibility<'_> {
    /// The key ranges (indices into the cache) new token `i` sees: cached, then new.
    fn ranges(&self, i: usize) -> ((usize, usize), (usize, usize)) {
        let qp = self.positions[i];
        let lo_pos = match self.window {
            Some(w) => (qp + 1).saturating_sub(w),
            None => 0,
        };
        let cached = (
            lo_pos.min(self.pos0),
            self.pos0.min(qp + 1).max(lo_pos.min(self.pos0)),
        );
        // Within a segment positions rise by one per token.
        let s0 = self.seg_start[i];
        let skip = lo_pos.saturating_sub(self.positions[s0]);
        let new = (self.pos0 + (s0 + skip).min(i + 1), self.pos0 + i + 1);
        (cached, new)
    }
}

/// softmax(q·kᵀ·scale over the visible keys)·v for every head and new token.
/// `q`: (1, n_head, s, hd) f32; `k`, `v`: the cache, (1, n_kv_head, len, hd) f32 views whose
/// last `s` positions are the new tokens. Returns (1, s, n_head·hd), or `None` where this path
/// does not apply (not CPU f32, no AVX2, a head size not a multiple of 8, or strided data).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis: &Visibility<'_>,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    if super::isa().is_none() || !q.device().is_cpu() {
        return Ok(None);
    }
    let (b, nh, s, hd) = q.dims4()?;
    let (_, nkv, len, _) = k.dims4()?;
    if b != 1 || hd % 8 != 0 || nkv == 0 || nh % nkv != 0 || len != vis.pos0 + s {
        return Ok(None);
    }
    let (Some(qd), Some(kd), Some(vd)) = (view(q)?, view(k)?, view(v)?) else {
        return Ok(None);
    };
    let (qs, ks, vs) = (qd.lock(), kd.lock(), vd.lock());
    let (Some(qs), Some(ks), Some(vs)) = (qs.slice(&qd), ks.slice(&kd), vs.slice(&vd)) else {
        return Ok(None);
    };
    let rep = nh / nkv;
    let mut out = vec![0f32; s * nh * hd];
    let dst = OutPtr(out.as_mut_ptr());
    // Work items: (K/V head, block of up to 16 queries). The `rep` query heads that share a
    // K/V head see the same keys at the same position, so they go together: each key and
    // value row is brought from L2 once for all of them, not once per head (perf on
    // Qwen2.5-1.5B, 12 heads on 2 K/V heads: the per-head loop waited on those loads).
    const QB: usize = 16;
    let blocks = s.div_ceil(QB);
    let visible: usize = (0..s)
        .map(|i| {
            let ((a, b), (c, d)) = vis.ranges(i);
            (b - a) + (d - c)
        })
        .sum();
    for_chunks(nkv * blocks, 2 * visible * nh * hd, |c| {
        let (kvh, blk) = (c / blocks, c % blocks);
        let mut scores = vec![0f32; rep * len];
        let mut qrows: Vec<&[f32]> = Vec::with_capacity(rep);
        for i in blk * QB..((blk + 1) * QB).min(s) {
            qrows.clear();
            qrows.extend((0..rep).map(|r| &qs[qd.row(kvh * rep + r, i)..][..hd]));
            let (cached, new) = vis.ranges(i);
            let keys = (cached.0..cached.1).chain(new.0..new.1);
            let n = (cached.1 - cached.0) + (new.1 - new.0);
            // Safety: each work item writes only its own heads' columns of its own rows
            // (heads kvh·rep.. are adjacent in row i).
            let o = unsafe {
                std::slice::from_raw_parts_mut(dst.get().add((i * nh + kvh * rep) * hd), rep * hd)
            };
            // Safety: attention() runs only where isa() found AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx2::group_query(
                    &qrows,
                    |j| &ks[kd.row(kvh, j)..][..hd],
                    |j| &vs[vd.row(kvh, j)..][..hd],
                    keys,
                    n,
                    &mut scores[..rep * n],
                    scale,
                    o,
                )
            };
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!(
                "isa() is None off x86-64 ({} keys)",
                keys.count() + o.len() + qrows.len() + n
            );
        }
    });
    Ok(Some(Tensor::from_vec(out, (1, s, nh * hd), q.device())?))
}

/// Where a (1, heads, len, hd) f32 tensor's rows are in its storage.
struct View<'a> {
    t: &'a Tensor,
    start: usize,
    head_stride: usize,
    row_stride: usize,
}

fn view(t: &Tensor) -> candle_core::Result<Option<View<'_>>> {
    let (_, layout) = t.storage_and_layout();
    let st = layout.stride();
    if t.dtype() != candle_core::DType::F32 || st.len() != 4 || st[3] != 1 {
        return Ok(None);
    }
    Ok(Some(View {
        t,
        start: layout.start_offset(),
        head_stride: st[1],
        row_stride: st[2],
    }))
}

impl View<'_> {
    fn lock(&self) -> Locked<'_> {
        Locked(self.t.storage_and_layout().0)
    }

    fn row(&self, head: usize, j: usize) -> usize {
        self.start + head * self.head_stride + j * self.row_stride
    }
}

struct Locked<'a>(candle_core::StorageRef<'a>);

impl Locked<'_> {
    /// The whole storage as f32, if it covers every row `v` addresses.
    fn slice(&self, v: &View<'_>) -> Option<&[f32]> {
        let Storage::Cpu(CpuStorage::F32(data)) = &*self.0 else {
            return None;
        };
        let (_, heads, rows, hd) = v.t.dims4().ok()?;
        let last = v.row(heads.max(1) - 1, rows.max(1) - 1) + hd;
        (last <= data.len()).then_some(data.as_slice())
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::kernels::exp::exp8;
    use std::arch::x86_64::*;

    /// Keys per block of the value pass: 64 values of each of their value rows (8 KB) stay in
    /// L1 while every head of the group accumulates them.
    const VB: usize = 32;

    /// The query rows `q` (the heads of one K/V group, at one position) against the `n` keys
    /// `keys` yields, into `o` (head after head, hd values each); `scores` holds n per head.
    ///
    /// Scores: eight keys at a time, their rows brought into L1 once for every head; per head
    /// one load of q for eight FMAs into eight chains and one reduction of the eight sums into
    /// a vector (hadd tree), not eight horizontal sums. Values: 64 output values at a time in
    /// eight registers, blocks of `VB` keys, every head against a block before the next.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn group_query<'a>(
        q: &[&[f32]],
        krow: impl Fn(usize) -> &'a [f32],
        vrow: impl Fn(usize) -> &'a [f32],
        keys: impl Iterator<Item = usize> + Clone,
        n: usize,
        scores: &mut [f32],
        scale: f32,
        o: &mut [f32],
    ) {
        let heads = q.len();
        let hd = o.len() / heads.max(1);
        let sv = _mm256_set1_ps(scale);
        let mut vmax = vec![_mm256_set1_ps(f32::NEG_INFINITY); heads];
        let mut max = vec![f32::NEG_INFINITY; heads];
        let mut it = keys.clone();
        let mut n0 = 0;
        while n0 + 8 <= n {
            let kp: [*const f32; 8] = std::array::from_fn(|_| match it.next() {
                Some(j) => krow(j).as_ptr(),
                None => unreachable!("n counts the keys"),
            });
            for (h, qr) in q.iter().enumerate() {
                let mut acc = [_mm256_setzero_ps(); 8];
                let mut d = 0;
                while d < hd {
                    let qv = _mm256_loadu_ps(qr.as_ptr().add(d));
                    for (a, k) in acc.iter_mut().zip(&kp) {
                        *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k.add(d)), *a);
                    }
                    d += 8;
                }
                // [k0 lo, k1 lo, k2 lo, k3 lo | k0 hi, ...] (lo, hi: sums of lanes 0..4, 4..8)
                let s0123 = _mm256_hadd_ps(
                    _mm256_hadd_ps(acc[0], acc[1]),
                    _mm256_hadd_ps(acc[2], acc[3]),
                );
                let s4567 = _mm256_hadd_ps(
                    _mm256_hadd_ps(acc[4], acc[5]),
                    _mm256_hadd_ps(acc[6], acc[7]),
                );
                let sums = _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(s0123, s4567),
                    _mm256_permute2f128_ps::<0x31>(s0123, s4567),
                );
                let sc = _mm256_mul_ps(sums, sv);
                _mm256_storeu_ps(scores.as_mut_ptr().add(h * n + n0), sc);
                vmax[h] = _mm256_max_ps(vmax[h], sc);
            }
            n0 += 8;
        }
        for (t, j) in it.enumerate() {
            let k = krow(j);
            for (h, qr) in q.iter().enumerate() {
                let mut a0 = _mm256_setzero_ps();
                let mut d = 0;
                while d < hd {
                    a0 = _mm256_fmadd_ps(
                        _mm256_loadu_ps(qr.as_ptr().add(d)),
                        _mm256_loadu_ps(k.as_ptr().add(d)),
                        a0,
                    );
                    d += 8;
                }
                let sc = hsum(a0) * scale;
                scores[h * n + n0 + t] = sc;
                max[h] = max[h].max(sc);
            }
        }
        // exp(score − max) per head, eight at a time; the probabilities, normalised, stay in
        // `scores`.
        for h in 0..heads {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), vmax[h]);
            let mx = lanes.iter().fold(max[h], |a, &l| a.max(l));
            let row = &mut scores[h * n..(h + 1) * n];
            let m = _mm256_set1_ps(mx);
            let mut vsum = _mm256_setzero_ps();
            let mut i = 0;
            while i + 8 <= n {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row.as_ptr().add(i)), m));
                _mm256_storeu_ps(row.as_mut_ptr().add(i), e);
                vsum = _mm256_add_ps(vsum, e);
                i += 8;
            }
            let mut sum = hsum(vsum);
            for x in &mut row[i..] {
                *x = (*x - mx).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            for x in row.iter_mut() {
                *x *= inv;
            }
        }
        // Σ p·v: 64 output values at a time (then 8), blocks of VB keys, all heads per block.
        o.fill(0.0);
        let mut d0 = 0;
        while d0 < hd {
            let w = if d0 + 64 <= hd { 64 } else { 8 };
            let mut it = keys.clone();
            let mut b0 = 0;
            while b0 < n {
                let b1 = (b0 + VB).min(n);
                let mut vp = [std::ptr::null::<f32>(); VB];
                for p in vp.iter_mut().take(b1 - b0) {
                    *p = match it.next() {
                        Some(j) => vrow(j).as_ptr().add(d0),
                        None => unreachable!("n counts the keys"),
                    };
                }
                for h in 0..heads {
                    let out = o.as_mut_ptr().add(h * hd + d0);
                    let pr = scores.as_ptr().add(h * n);
                    if w == 64 {
                        let mut acc: [__m256; 8] =
                            std::array::from_fn(|t| _mm256_loadu_ps(out.add(8 * t)));
                        for (t, v) in vp.iter().take(b1 - b0).enumerate() {
                            let p = _mm256_set1_ps(*pr.add(b0 + t));
                            for (u, a) in acc.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(p, _mm256_loadu_ps(v.add(8 * u)), *a);
                            }
                        }
                        for (u, a) in acc.iter().enumerate() {
                            _mm256_storeu_ps(out.add(8 * u), *a);
                        }
                    } else {
                        let mut acc = _mm256_loadu_ps(out);
                        for (t, v) in vp.iter().take(b1 - b0).enumerate() {
                            let p = _mm256_set1_ps(*pr.add(b0 + t));
                            acc = _mm256_fmadd_ps(p, _mm256_loadu_ps(*v), acc);
                        }
                        _mm256_storeu_ps(out, acc);
                    }
                }
                b0 = b1;
            }
            d0 += w;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A reproducible pseudo-random value in [-1, 1).
    fn val(i: usize) -> f32 {
        let x = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Attention written out from the rule the mask tensor follows (transformer.rs): key j sees
    /// cached positions and earlier tokens of the same segment, never later positions, and with a
    /// window only the last `w` positions; in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        (nh, nkv, s, len, hd): (usize, usize, usize, usize, usize),
        pos0: usize,
        positions: &[usize],
        segments: &[usize],
        window: Option<usize>,
    ) -> Vec<f32> {
        let scale = 1.0 / (hd as f64).sqrt();
        let mut out = vec![0f32; s * nh * hd];
        for h in 0..nh {
            let kvh = h / (nh / nkv);
            for i in 0..s {
                let qp = positions[i];
                let mut w = Vec::new();
                for j in 0..len {
                    let (kp, vis) = if j < pos0 {
                        (j, true)
                    } else {
                        let jj = j - pos0;
                        (positions[jj], segments[jj] == segments[i] && jj <= i)
                    };
                    if !vis || kp > qp || window.is_some_and(|w| qp - kp >= w) {
                        continue;
                    }
                    let dot: f64 = (0..hd)
                        .map(|d| {
                            q[(h * s + i) * hd + d] as f64 * k[(kvh * len + j) * hd + d] as f64
                        })
                        .sum();
                    w.push((j, dot * scale));
                }
                let max = w.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = w.iter().map(|x| (x.1 - max).exp()).sum();
                for d in 0..hd {
                    let o: f64 = w
                        .iter()
                        .map(|&(j, sc)| (sc - max).exp() / z * v[(kvh * len + j) * hd + d] as f64)
                        .sum();
                    out[(i * nh + h) * hd + d] = o as f32;
                }
            }
        }
        out
    }

    /// Causal, segmented (choices after a shared context) and sliding-window attention, with
    /// grouped K/V heads and a head size that is not a multiple of 64, against the reference;
    /// the cache is a view of a larger allocation, as the model's is.
    #[test]
    fn fused_attention_matches_the_mask_rule() {
        if crate::kernels::isa().is_none() {
            eprintln!("no AVX2 here: the tensor path runs instead");
            return;
        }
        let dev = Device::Cpu;
        for &(nh, nkv, hd) in &[(6usize, 2usize, 64usize), (4, 4, 72), (2, 1, 8)] {
            for (pos0, segments, window) in [
                (0, vec![0; 11], None),
                (5, vec![0; 4], None),
                (7, vec![0, 0, 0, 1, 1, 2, 2, 2, 2], None),
                (9, vec![0, 0, 1, 1, 1, 1, 1], Some(4)),
                (0, vec![0; 13], Some(5)),
                (6, vec![0], Some(3)),
                // more keys than one block of the value pass (VB), several groups of eight
                (70, vec![0, 0, 0, 1, 1], None),
            ] {
                let s = segments.len();
                let len = pos0 + s;
                let max = len + 3;
                let mut positions = Vec::new();
                let mut at = pos0;
                for i in 0..s {
                    if i > 0 && segments[i] != segments[i - 1] {
                        at = pos0;
                    }
                    positions.push(at);
                    at += 1;
                }
                let mut seg_start = Vec::new();
                for i in 0..s {
                    let mut st = i;
                    while st > 0 && segments[st - 1] == segments[i] {
                        st -= 1;
                    }
                    seg_start.push(st);
                }
                let qv: Vec<f32> = (0..nh * s * hd).map(|i| val(i) * 2.0).collect();
                let kv: Vec<f32> = (0..nkv * max * hd).map(|i| val(i + 7_000)).collect();
                let vv: Vec<f32> = (0..nkv * max * hd).map(|i| val(i + 90_000)).collect();
                let q = Tensor::from_vec(qv.clone(), (1, nh, s, hd), &dev).unwrap();
                let kc = Tensor::from_vec(kv.clone(), (1, nkv, max, hd), &dev).unwrap();
                let vc = Tensor::from_vec(vv.clone(), (1, nkv, max, hd), &dev).unwrap();
                let (k, v) = (kc.narrow(2, 0, len).unwrap(), vc.narrow(2, 0, len).unwrap());
                let vis = Visibility {
                    pos0,
                    positions: &positions,
                    seg_start: &seg_start,
                    window,
                };
                let scale = 1.0 / (hd as f32).sqrt();
                let flat = |t: &Tensor| -> Vec<f32> {
                    t.contiguous()
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                };
                let got = flat(
                    &attention(&q, &k, &v, &vis, scale)
                        .unwrap()
                        .expect("the fused path applies"),
                );
                let (kd, vd) = (flat(&k), flat(&v));
                let want = reference(
                    &qv,
                    &kd,
                    &vd,
                    (nh, nkv, s, len, hd),
                    pos0,
                    &positions,
                    &segments,
                    window,
                );
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err < 2e-5,
                    "heads {nh}/{nkv} hd {hd} pos0 {pos0} segments {segments:?} window {window:?}: max error {err}"
                );
            }
        }
    }
}
