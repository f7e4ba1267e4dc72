//! F16 weights times f32 activations on the CPU. Decode (up to 4 activation rows) and AVX2
//! prefill go in blocks of 4 weight rows × a few activation rows, each weight value converted
//! in registers (F16C) and FMA'd into 4·rows accumulators, prefetching ahead in the weight rows
//! for decode. AVX-512 prefill is a small GEMM (`gemm_bcast`): weight micro-panels of 32 rows ×
//! 256 columns converted to f32 and transposed once into L1, 12 activation rows broadcast
//! against them (24 accumulators; measured pp512 on Qwen2.5-Coder-1.5B f16, 2 threads: 64 →
//! 81 t/s against the 6 × 4 blocks). Activations stay f32 (llama.cpp rounds them to f16
//! first).

use super::{for_chunks, OutPtr};
use candle_core::{Tensor, D};
use rayon::prelude::*;

/// The same with AVX2's 16 registers: 2 × 4 weight rows = 8 accumulators (3 × 4 spilled one
/// and measured pp512 23 t/s on Qwen2.5-Coder-1.5B f16 against 31 for 2 × 4).
const ROWS_AVX2: usize = 2;

/// f16 weight bytes of one group of blocks in the many-row path: a quarter of a 2 MB L2, so
/// the group, a block of activation rows and the output stay there.
const L2_WEIGHT_BYTES: usize = 512 * 1024;

/// `gemm_bcast`'s blocking: activation rows per micro-kernel (2·MR of the 32 vector registers
/// accumulate), weight rows per micro-panel (two vectors), and columns per slab (a micro-panel
/// of NR × KC f32 is 32 KB, in a 48 KB L1).
const MR: usize = 12;
const NR: usize = 32;
const KC: usize = 256;

/// How far ahead in each weight row decode prefetches (as the k-quant row kernels do).
const PREFETCH_BYTES: usize = 1024;

/// The longest rows (k) that are grouped that way.
const GROUP_MAX_K: usize = 4096;

/// x (..., k) × wᵀ for an f16 weight `w` (n×k) on the CPU, or `None` where this path does not
/// apply (not f16, not CPU, no AVX2/F16C).
pub fn matmul(w: &Tensor, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
    if super::isa().is_none() || w.dtype() != candle_core::DType::F16 || !w.device().is_cpu() {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    if x.dim(D::Minus1)? != k {
        return Ok(None);
    }
    let (storage, layout) = w.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let ws = cpu.as_slice::<half::f16>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    apply(&ws[start..end], n, k, x).map(Some)
}

/// x (..., k) × wᵀ for f16 weights given as their little-endian bytes (n×k), on the CPU where
/// `isa()` found AVX2 (the caller checks).
pub fn matmul_bytes(w: &[u8], n: usize, k: usize, x: &Tensor) -> candle_core::Result<Tensor> {
    if super::isa().is_none() {
        candle_core::bail!("qeval's f16 kernel needs AVX2, FMA and F16C");
    }
    if w.len() < 2 * n * k || x.dim(D::Minus1)? != k {
        candle_core::bail!(
            "f16 matmul: {} weight bytes for {n}×{k}, input {:?}",
            w.len(),
            x.dims()
        );
    }
    // Safety: every bit pattern is an f16; the slice is n·k values long (checked above), and
    // its alignment is checked here (candle stores f16 tensors as Vec<f16>).
    let (pre, ws, _) = unsafe { w[..2 * n * k].align_to::<half::f16>() };
    if !pre.is_empty() {
        candle_core::bail!("f16 weight bytes not 2-byte aligned");
    }
    apply(ws, n, k, x)
}

/// x (..., k) × wᵀ for f16 weights `ws` (n×k, row-major).
fn apply(ws: &[half::f16], n: usize, k: usize, x: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let xs: Vec<f32> = x
        .reshape((rows, k))?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut dst = vec![0f32; rows * n];
    multiply(ws, n, k, &xs, rows, &mut dst);
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = n;
    Tensor::from_vec(dst, out, x.device())
}

/// The product into `dst` (m×n): blocks of 4 weight rows × the activation rows, prefetching
/// ahead in the weight rows for decode (a few rows: memory-bound).
fn multiply(ws: &[half::f16], n: usize, k: usize, xs: &[f32], rows: usize, dst: &mut [f32]) {
    let avx512 = super::isa() == Some(super::Isa::Avx512Vnni);
    match (rows, avx512) {
        (0, _) => {}
        (1, _) => gemm_blocks::<1, true>(ws, n, k, xs, rows, dst),
        (2, _) | (3 | 4, false) => gemm_blocks::<2, true>(ws, n, k, xs, rows, dst),
        (3, true) => gemm_blocks::<3, true>(ws, n, k, xs, rows, dst),
        (4, true) => gemm_blocks::<4, true>(ws, n, k, xs, rows, dst),
        (_, true) => gemm_bcast(ws, n, k, xs, rows, dst),
        (_, false) => gemm_blocks::<ROWS_AVX2, false>(ws, n, k, xs, rows, dst),
    }
}

/// Many rows: blocks of 4 weight rows (in parallel chunks) × `ROWS` activation rows; the rows
/// of a remainder go through `dot`.
fn gemm_blocks<const ROWS: usize, const PF: bool>(
    w: &[half::f16],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    dst: &mut [f32],
) {
    assert!(w.len() >= n * k && x.len() >= m * k && dst.len() >= m * n);
    let threads = rayon::current_num_threads().max(1);
    let nblk = n.div_ceil(4);
    let chunk = nblk.div_ceil(threads * 4).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    // For short rows a chunk's weight rows go in groups small enough to stay in L2 while every
    // group of `ROWS` activation rows passes over them: weights are read from memory once, the
    // activations once per group. Long rows keep the whole chunk as one group: a group would
    // hold few blocks, and `ROWS` activation rows are better reused across the whole chunk
    // (measured when AVX-512 prefill still ran here with 6 rows, 6 × 35 KB at k = 8960:
    // `kernel_speed f16 1536 8960 512` 87 GOP/s against 75 grouped, where 8960 1536 went from
    // 74 to 94 and 151936 1536 from 41 to 82; AVX-512 prefill is `gemm_bcast` now).
    let avx512 = super::isa() == Some(super::Isa::Avx512Vnni);
    let group = if k <= GROUP_MAX_K {
        (L2_WEIGHT_BYTES / (8 * k)).max(1)
    } else {
        chunk
    };
    for_chunks(nblk.div_ceil(chunk), m * n * k, |c| {
        let blocks = c * chunk..((c + 1) * chunk).min(nblk);
        for g0 in blocks.clone().step_by(group) {
            for r0 in (0..m).step_by(ROWS) {
                for blk in g0..(g0 + group).min(blocks.end) {
                    let i0 = blk * 4;
                    if i0 + 4 <= n && r0 + ROWS <= m {
                        let mut res = [[0f32; 4]; ROWS];
                        #[cfg(target_arch = "x86_64")]
                        // Safety: `matmul` runs only where `isa()` found AVX2, FMA and F16C, and
                        // the AVX-512 block only where it found AVX-512; rows i0..i0+4 < n and
                        // r0..r0+ROWS < m are inside the slices.
                        unsafe {
                            let (wb, xb) = (&w[i0 * k..(i0 + 4) * k], &x[r0 * k..(r0 + ROWS) * k]);
                            if avx512 {
                                block4::<ROWS, PF>(wb, xb, k, &mut res)
                            } else {
                                block4_avx2::<ROWS, PF>(wb, xb, k, &mut res)
                            }
                        };
                        for (r, row) in res.iter().enumerate() {
                            for (j, v) in row.iter().enumerate() {
                                // Safety: (r0+r, i0+j) is inside m×n; each block belongs to one chunk.
                                unsafe { *out.get().add((r0 + r) * n + i0 + j) = *v };
                            }
                        }
                    } else {
                        for r in r0..(r0 + ROWS).min(m) {
                            for i in i0..(i0 + 4).min(n) {
                                let v = dot(&w[i * k..(i + 1) * k], &x[r * k..(r + 1) * k]);
                                // Safety: as above.
                                unsafe { *out.get().add(r * n + i) = v };
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Many rows with AVX-512, as a GEMM of broadcast activations against vectors of weight rows
/// (the BLIS scheme): the activations are packed once into blocks of `MR` rows, column-major
/// within a block; each chunk's weight rows go in micro-panels of `NR` rows × `KC` columns,
/// converted to f32 and transposed (32 rows of one column per 128 bytes) into an L1 buffer,
/// and every block of activation rows passes over it: per column, 2 weight loads and `MR`
/// broadcasts feed 2·`MR` FMAs, with no conversion and no horizontal sum in the loop. The sums
/// of a micro-panel's slabs of `KC` columns are added in `dst`, whose `NR` columns stay in L2.
fn gemm_bcast(w: &[half::f16], n: usize, k: usize, x: &[f32], m: usize, dst: &mut [f32]) {
    assert!(w.len() >= n * k && x.len() >= m * k && dst.len() >= m * n);
    let mb = m.div_ceil(MR);
    // The packed activations' buffer is kept between calls: a new one of a few MB per matmul
    // is that many page faults.
    thread_local! {
        static APACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    APACK.with_borrow_mut(|apack| {
        // block b, column c, row r at (b·k + c)·MR + r. The buffer is only resized, not
        // cleared: the rows past m in the last block keep whatever was there, and `micro`
        // stores no product of theirs.
        apack.resize(mb * k * MR, 0.0);
        apack
            .par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(b, blk)| {
                for r in 0..MR.min(m - b * MR) {
                    let row = &x[(b * MR + r) * k..(b * MR + r + 1) * k];
                    for (c, v) in row.iter().enumerate() {
                        blk[c * MR + r] = *v;
                    }
                }
            });
        bcast_packed(w, n, k, &apack[..mb * k * MR], mb, m, dst)
    });
    // rows past the last whole micro-panel
    for i in n / NR * NR..n {
        for r in 0..m {
            dst[r * n + i] = dot(&w[i * k..(i + 1) * k], &x[r * k..(r + 1) * k]);
        }
    }
}

/// `gemm_bcast` once the activations are packed.
fn bcast_packed(
    w: &[half::f16],
    n: usize,
    k: usize,
    apack: &[f32],
    mb: usize,
    m: usize,
    dst: &mut [f32],
) {
    let threads = rayon::current_num_threads().max(1);
    let np = n / NR;
    let chunk = np.div_ceil(threads * 4).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    for_chunks(np.div_ceil(chunk), m * n * k, |c| {
        let mut bp = vec![0f32; KC * NR];
        for p in c * chunk..((c + 1) * chunk).min(np) {
            let i0 = p * NR;
            for s0 in (0..k).step_by(KC) {
                let len = KC.min(k - s0);
                #[cfg(target_arch = "x86_64")]
                // Safety: this path runs only where `isa()` found AVX-512 (`multiply`); rows
                // i0..i0+NR and columns s0..s0+len are inside w, bp holds KC·NR values, each
                // activation block holds k·MR, and each chunk owns its NR columns of dst.
                unsafe {
                    transpose_f32(&w[i0 * k..(i0 + NR) * k], k, s0, len, &mut bp);
                    for b in 0..mb {
                        let a = apack.as_ptr().add((b * k + s0) * MR);
                        let d = out.get().add(b * MR * n + i0);
                        micro(a, bp.as_ptr(), len, d, n, (m - b * MR).min(MR), s0 > 0);
                    }
                }
            }
        }
    });
}

/// `transpose_f32`'s index vectors for `_mm512_permutex2var_ps` at distance `d`: lanes with
/// bit d set take the partner vector's lane d lower (`first`), or the first vector's lane d
/// higher goes where bit d is clear (`!first`). Four such exchanges (d = 8, 4, 2, 1) transpose
/// 16 vectors of 16.
const fn swap_index(d: usize, first: bool) -> [i32; 16] {
    let mut t = [0i32; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = match (first, j & d == 0) {
            (true, true) => j as i32,
            (true, false) => 16 + (j - d) as i32,
            (false, true) => (j + d) as i32,
            (false, false) => 16 + j as i32,
        };
        j += 1;
    }
    t
}

const SWAP: [[[i32; 16]; 2]; 4] = [
    [swap_index(8, true), swap_index(8, false)],
    [swap_index(4, true), swap_index(4, false)],
    [swap_index(2, true), swap_index(2, false)],
    [swap_index(1, true), swap_index(1, false)],
];

/// Weight rows of one micro-panel (`NR` rows of `w`, row length `k`), columns s0..s0+len, as
/// f32 into `bp`, column-major: column c's `NR` values at c·NR. Blocks of 16 rows × 16
/// columns are converted and transposed in registers (64 permutes per 256 values).
///
/// # Safety
/// AVX-512 F and F16C; `w` holds NR rows of k, `s0 + len <= k`, `bp` holds len·NR values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c,avx2")]
unsafe fn transpose_f32(w: &[half::f16], k: usize, s0: usize, len: usize, bp: &mut [f32]) {
    use std::arch::x86_64::*;
    debug_assert!(w.len() >= NR * k && s0 + len <= k && bp.len() >= len * NR);
    let wp = w.as_ptr() as *const u16;
    let idx: [[__m512i; 2]; 4] = std::array::from_fn(|s| {
        std::array::from_fn(|f| _mm512_loadu_si512(SWAP[s][f].as_ptr() as *const _))
    });
    for h in 0..NR / 16 {
        let mut c = 0;
        while c + 16 <= len {
            let mut v: [__m512; 16] = std::array::from_fn(|i| {
                let p = wp.add((16 * h + i) * k + s0 + c);
                _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
            });
            for (s, d) in [8usize, 4, 2, 1].into_iter().enumerate() {
                for i in 0..16 {
                    if i & d == 0 {
                        let (x, y) = (v[i], v[i + d]);
                        v[i] = _mm512_permutex2var_ps(x, idx[s][0], y);
                        v[i + d] = _mm512_permutex2var_ps(x, idx[s][1], y);
                    }
                }
            }
            for (q, col) in v.iter().enumerate() {
                _mm512_storeu_ps(bp.as_mut_ptr().add((c + q) * NR + 16 * h), *col);
            }
            c += 16;
        }
        for c in c..len {
            for r in 16 * h..16 * h + 16 {
                bp[c * NR + r] = w[r * k + s0 + c].to_f32();
            }
        }
    }
}

/// `MR` activation rows (packed: column c's rows at c·MR) × `NR` weight rows (`bp`, as
/// `transpose_f32` writes it) over `len` columns; the first `rows` rows of the product are
/// stored at `d` (row stride `stride`), or added to what is there (`add`).
///
/// # Safety
/// AVX-512 F and FMA; `a` holds len·MR values, `bp` len·NR, `d` `rows` rows of NR values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma,avx2")]
unsafe fn micro(
    a: *const f32,
    bp: *const f32,
    len: usize,
    d: *mut f32,
    stride: usize,
    rows: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    let mut c0 = [_mm512_setzero_ps(); MR];
    let mut c1 = [_mm512_setzero_ps(); MR];
    for c in 0..len {
        let b0 = _mm512_loadu_ps(bp.add(c * NR));
        let b1 = _mm512_loadu_ps(bp.add(c * NR + 16));
        let ac = a.add(c * MR);
        for r in 0..MR {
            let av = _mm512_set1_ps(*ac.add(r));
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    for r in 0..rows.min(MR) {
        let p = d.add(r * stride);
        if add {
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), c0[r]));
            _mm512_storeu_ps(p.add(16), _mm512_add_ps(_mm512_loadu_ps(p.add(16)), c1[r]));
        } else {
            _mm512_storeu_ps(p, c0[r]);
            _mm512_storeu_ps(p.add(16), c1[r]);
        }
    }
}

/// 4 weight rows × RA activation rows, 16 lanes of k at a time, 4·RA accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c,fma,avx2")]
unsafe fn block4<const RA: usize, const PF: bool>(
    w: &[half::f16],
    x: &[f32],
    k: usize,
    res: &mut [[f32; 4]; RA],
) {
    use std::arch::x86_64::*;
    let wp = w.as_ptr() as *const u16;
    let xp = x.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 4]; RA];
    let mut j = 0;
    while j + 16 <= k {
        if PF && j % 32 == 0 {
            prefetch_rows(wp, k, j);
        }
        let wv = [
            _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(j) as *const __m256i)),
            _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(k + j) as *const __m256i)),
            _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(2 * k + j) as *const __m256i)),
            _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(3 * k + j) as *const __m256i)),
        ];
        for (r, accr) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_ps(xp.add(r * k + j));
            for (a, wvi) in accr.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(*wvi, xv, *a);
            }
        }
        j += 16;
    }
    for r in 0..RA {
        for i in 0..4 {
            let mut v = _mm512_reduce_add_ps(acc[r][i]);
            for t in j..k {
                v += w[i * k + t].to_f32() * x[r * k + t];
            }
            res[r][i] = v;
        }
    }
}

/// Prefetch the cache line `PREFETCH_BYTES` ahead of column `j` in each of the 4 rows of `wp`
/// (row length `k`). A prefetch never faults, so past the rows' end it is harmless.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_rows(wp: *const u16, k: usize, j: usize) {
    use std::arch::x86_64::*;
    for i in 0..4 {
        let ahead = wp.wrapping_add(i * k + j + PREFETCH_BYTES / 2) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(ahead);
    }
}

/// As `block4` in AVX2: 8 lanes of k at a time, 4·RA accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c,fma,avx2")]
unsafe fn block4_avx2<const RA: usize, const PF: bool>(
    w: &[half::f16],
    x: &[f32],
    k: usize,
    res: &mut [[f32; 4]; RA],
) {
    use std::arch::x86_64::*;
    let wp = w.as_ptr() as *const u16;
    let xp = x.as_ptr();
    let mut acc = [[_mm256_setzero_ps(); 4]; RA];
    let mut j = 0;
    while j + 8 <= k {
        if PF && j % 32 == 0 {
            prefetch_rows(wp, k, j);
        }
        let wv = [
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(j) as *const __m128i)),
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(k + j) as *const __m128i)),
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * k + j) as *const __m128i)),
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(3 * k + j) as *const __m128i)),
        ];
        for (r, accr) in acc.iter_mut().enumerate() {
            let xv = _mm256_loadu_ps(xp.add(r * k + j));
            for (a, wvi) in accr.iter_mut().zip(&wv) {
                *a = _mm256_fmadd_ps(*wvi, xv, *a);
            }
        }
        j += 8;
    }
    for r in 0..RA {
        for i in 0..4 {
            let s = acc[r][i];
            let h = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            let h = _mm_add_ss(h, _mm_movehdup_ps(h));
            let mut v = _mm_cvtss_f32(h);
            for t in j..k {
                v += w[i * k + t].to_f32() * x[r * k + t];
            }
            res[r][i] = v;
        }
    }
}

fn dot(w: &[half::f16], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    // Safety: `matmul` only runs where `isa()` found AVX2, FMA and F16C.
    unsafe {
        dot_avx2(w, x)
    }
    #[cfg(not(target_arch = "x86_64"))]
    w.iter().zip(x).map(|(a, b)| a.to_f32() * b).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(w: &[half::f16], x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let k = w.len().min(x.len());
    let wp = w.as_ptr() as *const u16;
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    while j + 32 <= k {
        for (t, a) in acc.iter_mut().enumerate() {
            let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(j + 8 * t) as *const __m128i));
            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(j + 8 * t)), *a);
        }
        j += 32;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let h = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_movehdup_ps(h));
    let mut sum = _mm_cvtss_f32(h);
    while j < k {
        sum += w[j].to_f32() * x[j];
        j += 1;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Against candle's own f16 matmul of the same weights (f32 activations): one to four rows
    /// (decode) and nine (prefill), k with a tail that is not a multiple of 32.
    #[test]
    fn f16_gemv_matches_candle() {
        if super::super::isa().is_none() {
            eprintln!("no AVX2/F16C: the f16 path does not run here");
            return;
        }
        let dev = Device::Cpu;
        // (42, 576) and (42, 100): one group of blocks, columns with and without a tail;
        // (600, 4000): several L2 groups per chunk.
        for (n, k) in [(42usize, 576usize), (42, 100), (600, 4000)] {
            // Sums of k products of N(0, 1) values in two summation orders: their f32 rounding
            // differs by about eps · sqrt(k) · |terms| (measured 1.3e-4 at k = 4000).
            let tol = 1e-5 * (k as f32).sqrt();
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap();
            for m in [1usize, 2, 3, 4] {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                let want = x
                    .matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap())
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                let got = matmul(&w, &x).unwrap().unwrap().to_vec2::<f32>().unwrap();
                // The same weights as bytes (how `Linear::F16` calls it) give the same product.
                let bytes: Vec<u8> = w
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<half::f16>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                let from_bytes = matmul_bytes(&bytes, n, k, &x).unwrap();
                assert_eq!(from_bytes.to_vec2::<f32>().unwrap(), got, "k={k} m={m}");
                for (g, e) in got.iter().flatten().zip(want.iter().flatten()) {
                    assert!(
                        (g - e).abs() <= tol * (1.0 + e.abs()),
                        "k={k} m={m}: {g} vs {e}"
                    );
                }
            }
            // Many rows: the AVX-512 or AVX2 blocks, with remainders of rows and columns
            // (30 rows: two blocks of 12 and a partial one).
            for rows in [9usize, 30] {
                let x9 = Tensor::randn(0f32, 1.0, (rows, k), &dev).unwrap();
                let got = matmul(&w, &x9).unwrap();
                assert!(got.is_some(), "many rows take the block path");
                if let Some(got) = got {
                    let want = x9
                        .matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap())
                        .unwrap()
                        .to_vec2::<f32>()
                        .unwrap();
                    let got = got.to_vec2::<f32>().unwrap();
                    for (g, e) in got.iter().flatten().zip(want.iter().flatten()) {
                        assert!(
                            (g - e).abs() <= tol * (1.0 + e.abs()),
                            "k={k} m={rows}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}
