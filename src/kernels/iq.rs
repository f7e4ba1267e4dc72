//! The CPU matrix multiplication for the GGUF types candle has no kernels for (i-quants,
//! TQ1_0/TQ2_0, MXFP4: [`IqTensor`]), as llama.cpp's CPU backend does it: the activations
//! quantized to its `vec_dot_type` for the weight type (Q8_0 blocks of 32 for IQ4_NL and
//! MXFP4, Q8_K blocks of 256 for the others), then an integer dot product per weight block.
//!
//! With AVX2 every type has an integer kernel. IQ4_NL and IQ4_XS look their 16 non-linear
//! values up with a byte shuffle. The others unpack each weight block once into signed bytes
//! (grid entries with their sign patterns applied, IQ1's delta folded in as `8 × (grid ±
//! 1/8)`, ternary digits, E2M1 values) and i16 multipliers per 16 values (the sub-block
//! scales), then multiply them with up to eight activation rows: signed byte products summed
//! in i32, one f32 multiply per block and row, so the numbers are llama.cpp's integer dot
//! products up to f32 summation order. Without AVX2, each weight row is dequantized
//! (`iq::dequantize_row`, bit for bit llama.cpp's) and multiplied in f32 with the dequantized
//! activations. The weights stay in their GGUF blocks in memory.

use super::{f32_rows, for_chunks, isa, Isa, OutPtr, QActs};
use crate::quant::iq::{self, IqType};
use crate::quant::weight::IqTensor;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use std::sync::Arc;

/// A weight matrix (n outputs × k inputs) of an [`IqType`], multiplied on the CPU.
#[derive(Debug, Clone)]
pub struct IqMatMul {
    w: Arc<IqTensor>,
    n: usize,
    k: usize,
    simd: Option<Isa>,
}

/// The block of the activations' 8-bit quantization for weights of type `t` (llama.cpp's
/// `vec_dot_type`): Q8_0's 32 or Q8_K's 256.
pub fn act_block(t: IqType) -> usize {
    match t {
        IqType::Iq4Nl | IqType::Mxfp4 => 32,
        _ => 256,
    }
}

impl IqMatMul {
    /// The product for a 2-D weight. `simd`: use the AVX2 kernel where the type has one.
    pub fn new(w: Arc<IqTensor>, simd: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(
            w.shape.len() == 2,
            "{} weight of shape {:?} is not a matrix",
            w.ty.name(),
            w.shape
        );
        let (n, k) = (w.shape[0], w.shape[1]);
        Ok(IqMatMul {
            n,
            k,
            simd: if simd { isa() } else { None },
            w,
        })
    }

    /// What multiplies: "avx2" (integer) or "dequantize-f32".
    pub fn kernel_name(&self) -> &'static str {
        match self.simd {
            Some(_) => "avx2",
            None => "dequantize-f32",
        }
    }

    /// The weight multiplied.
    pub fn weight(&self) -> &Arc<IqTensor> {
        &self.w
    }

    /// Rows `ids` of the weight as f32 (a token embedding lookup), shape (ids, k).
    pub fn embedding(&self, ids: &[u32], device: &Device) -> anyhow::Result<Tensor> {
        let rb = self.w.row_bytes();
        let mut out = vec![0f32; ids.len() * self.k];
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.k)) {
            let id = id as usize;
            anyhow::ensure!(id < self.n, "token id {id} beyond the {} rows", self.n);
            iq::dequantize_row(self.w.ty, &self.w.data[id * rb..(id + 1) * rb], o);
        }
        Ok(Tensor::from_vec(out, (ids.len(), self.k), device)?)
    }

    /// `x` (…, k) times the weight's transpose: (…, n).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = x
            .reshape((rows, self.k))?
            .contiguous()?
            .apply_op1_no_bwd(self)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.n;
        y.reshape(out)
    }

    /// The product of `x` (m×k, row-major) with the weight's transpose into `dst` (m×n).
    pub fn matmul(&self, x: &[f32], m: usize, dst: &mut [f32]) {
        let t = self.w.ty;
        let block = act_block(t);
        let a = QActs::quantize(x, m, self.k, block);
        let (n, k) = (self.n, self.k);
        let rb = self.w.row_bytes();
        let w = &self.w.data;
        assert!(w.len() >= n * rb && dst.len() >= m * n);
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil(threads * 4).max(1);
        let out = OutPtr(dst.as_mut_ptr());
        match self.simd {
            Some(_) => for_chunks(n.div_ceil(chunk), m * n * k, |c| {
                // Each weight block is unpacked once for up to eight activation rows.
                let mut j = 0;
                while j < m {
                    let r = if m - j >= 8 {
                        8
                    } else if m - j >= 4 {
                        4
                    } else {
                        1
                    };
                    for wi in c * chunk..((c + 1) * chunk).min(n) {
                        let wrow = &w[wi * rb..(wi + 1) * rb];
                        let mut res = [0f32; 8];
                        simd_dot(t, wrow, &a, j, r, &mut res);
                        for (jj, v) in res.iter().take(r).enumerate() {
                            // Safety: j + jj < m, wi < n; each column belongs to one chunk.
                            unsafe { *out.get().add((j + jj) * n + wi) = *v };
                        }
                    }
                    j += r;
                }
            }),
            None => {
                // Dequantized activations, once: d × q per value.
                let nb = k / block;
                let mut af = vec![0f32; m * k];
                for (j, row) in af.chunks_exact_mut(k).enumerate() {
                    for (b, v) in row.chunks_exact_mut(block).enumerate() {
                        let d = a.d[j * nb + b];
                        let q = &a.qs[j * k + b * block..j * k + (b + 1) * block];
                        for (v, &q) in v.iter_mut().zip(q) {
                            *v = d * f32::from(q);
                        }
                    }
                }
                for_chunks(n.div_ceil(chunk), m * n * k, |c| {
                    let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(n));
                    let mut wf = vec![0f32; TILE * k];
                    let mut wi = lo;
                    while wi < hi {
                        let r = TILE.min(hi - wi);
                        for (i, row) in wf.chunks_exact_mut(k).take(r).enumerate() {
                            iq::dequantize_row(t, &w[(wi + i) * rb..(wi + i + 1) * rb], row);
                        }
                        let mut j = 0;
                        while j < m {
                            let j2 = (j + 1).min(m - 1);
                            let (a0, a1) = (&af[j * k..(j + 1) * k], &af[j2 * k..(j2 + 1) * k]);
                            let mut dots = [[0f32; TILE]; 2];
                            for (i, row) in wf.chunks_exact(k).take(r).enumerate() {
                                dots[0][i] = dot_f32(row, a0);
                                dots[1][i] = dot_f32(row, a1);
                            }
                            for (jj, d) in [j, j2].into_iter().zip(dots).take(j2 + 1 - j) {
                                for (i, v) in d.into_iter().take(r).enumerate() {
                                    // Safety: jj < m, wi + i < hi <= n; each column belongs
                                    // to one chunk.
                                    unsafe { *out.get().add(jj * n + wi + i) = v };
                                }
                            }
                            j += 2;
                        }
                        wi += r;
                    }
                });
            }
        }
    }
}

/// Weight rows the f32 path dequantizes and multiplies together.
const TILE: usize = 4;

/// Σ a·b in eight lanes (so the compiler vectorizes it).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// One weight row against activation rows `j..j + r` (r is 1, 4 or 8) into `res`, with the
/// AVX2 kernel of its type.
fn simd_dot(t: IqType, wrow: &[u8], a: &QActs, j: usize, r: usize, res: &mut [f32; 8]) {
    let nb = a.k / t.block_elems();
    assert!(wrow.len() >= nb * t.block_bytes() && j + r <= a.m && matches!(r, 1 | 4 | 8));
    #[cfg(target_arch = "x86_64")]
    // Safety: `simd` is set only when `isa()` found AVX2/FMA/F16C; the assert bounds the reads.
    unsafe {
        let w = wrow.as_ptr();
        macro_rules! rows {
            ($f:ident) => {
                match r {
                    8 => avx2::$f::<8>(w, nb, a, j, res),
                    4 => avx2::$f::<4>(w, nb, a, j, res),
                    _ => avx2::$f::<1>(w, nb, a, j, res),
                }
            };
        }
        match t {
            IqType::Iq4Nl => rows!(iq4_nl),
            IqType::Iq4Xs => rows!(iq4_xs),
            IqType::Iq3Xxs => rows!(iq3_xxs),
            IqType::Iq3S => rows!(iq3_s),
            IqType::Iq2Xxs => rows!(iq2_xxs),
            IqType::Iq2Xs => rows!(iq2_xs),
            IqType::Iq2S => rows!(iq2_s),
            IqType::Iq1S => rows!(iq1_s),
            IqType::Iq1M => rows!(iq1_m),
            IqType::Tq1_0 => rows!(tq1_0),
            IqType::Tq2_0 => rows!(tq2_0),
            IqType::Mxfp4 => rows!(mxfp4),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = res;
        unreachable!("qeval's kernels exist only on x86-64")
    }
}

impl CustomOp1 for IqMatMul {
    fn name(&self) -> &'static str {
        "qeval-iq-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, m) = f32_rows("qeval-iq-matmul", storage, layout, self.k)?;
        let mut dst = vec![0f32; m * self.n];
        self.matmul(x, m, &mut dst);
        Ok((CpuStorage::F32(dst), Shape::from((m, self.n))))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::kernels::QActs;
    use crate::quant::iq::{e8m0_to_f32_half, KVALUES_IQ4NL};
    use crate::quant::iq_tables::{
        IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
        KVALUES_FP4,
    };
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16(p: *const u8) -> f32 {
        let h = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn hsum(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// 16 bytes of index pairs → the 32 signed values (low nibbles first), by table lookup.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn values(table: __m256i, p: *const u8) -> __m256i {
        let t = _mm_loadu_si128(p as *const __m128i);
        let idx = _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16(t, 4), t),
            _mm256_set1_epi8(0x0F),
        );
        _mm256_shuffle_epi8(table, idx)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn table() -> __m256i {
        _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_IQ4NL.as_ptr() as *const __m128i))
    }

    /// IQ4_NL row (`nb` blocks of 18 bytes) · Q8_0 activation rows `a0..a0 + R`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn iq4_nl<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let table = table();
        let ones = _mm256_set1_epi16(1);
        let (k, qs) = (a.k, a.qs.as_ptr());
        // Two sets of accumulators, even and odd blocks: one row alone would otherwise wait
        // on each FMA's latency.
        let mut accs = [[_mm256_setzero_ps(); R]; 2];
        for b in 0..nb {
            let p = w.add(b * 18);
            let wv = values(table, p.add(2));
            let aw = _mm256_sign_epi8(wv, wv);
            let dw = f16(p);
            for (r, acc) in accs[b & 1].iter_mut().enumerate() {
                let row = a0 + r;
                let av = _mm256_loadu_si256(qs.add(row * k + b * 32) as *const __m256i);
                let prod = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wv));
                let s = _mm256_madd_epi16(prod, ones);
                let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(row * nb + b));
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), *acc);
            }
        }
        for r in 0..R {
            res[r] = hsum(_mm256_add_ps(accs[0][r], accs[1][r]));
        }
    }

    /// IQ4_XS row (`nb` blocks of 136 bytes) · Q8_K activation rows `a0..a0 + R`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn iq4_xs<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let table = table();
        let (k, qs) = (a.k, a.qs.as_ptr());
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 136);
            let sh = u16::from_le_bytes([*p.add(2), *p.add(3)]);
            let mut sumi = [_mm256_setzero_si256(); R];
            for ib in 0..8 {
                let ls = i16::from((*p.add(4 + ib / 2) >> (4 * (ib % 2))) & 0xf)
                    | (((sh >> (2 * ib)) & 3) << 4) as i16;
                let scale = _mm256_set1_epi16(ls - 32);
                let wv = values(table, p.add(8 + 16 * ib));
                let aw = _mm256_sign_epi8(wv, wv);
                for (r, sumi) in sumi.iter_mut().enumerate() {
                    let y = qs.add((a0 + r) * k + b * 256 + ib * 32);
                    let av = _mm256_loadu_si256(y as *const __m256i);
                    let prod = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wv));
                    *sumi = _mm256_add_epi32(*sumi, _mm256_madd_epi16(prod, scale));
                }
            }
            let dw = f16(p);
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                let scale = _mm256_set1_ps(dw * *a.d.get_unchecked((a0 + r) * nb + b));
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), *acc);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// `SIGN8[b]`: eight bytes, the j-th -1 where bit j of `b` is set and 1 elsewhere (the sign
    /// bytes of the i-quants, `kmask_iq2xs` order), for `_mm256_sign_epi8`.
    static SIGN8: [i64; 256] = {
        let mut t = [0i64; 256];
        let mut b = 0;
        while b < 256 {
            let mut v = 0u64;
            let mut j = 0;
            while j < 8 {
                let byte: u64 = if b & (1 << j) != 0 { 0xFF } else { 0x01 };
                v |= byte << (8 * j);
                j += 1;
            }
            t[b] = v as i64;
            b += 1;
        }
        t
    };

    /// `SIGN8` of each `ksigns_iq2xs` entry: the eight signs of a 7-bit index in one lookup.
    static KSIGN8: [i64; 128] = {
        let mut t = [0i64; 128];
        let mut i = 0;
        while i < 128 {
            t[i] = SIGN8[KSIGNS_IQ2XS[i] as usize];
            i += 1;
        }
        t
    };

    /// The eight signs of a 7-bit `ksigns_iq2xs` index (the low 7 bits of `i`).
    #[inline]
    fn ksigns(i: u32) -> i64 {
        KSIGN8[(i & 127) as usize]
    }

    /// The i16 multipliers of a chunk of 32 values whose halves of 16 have scales `lo` and `hi`
    /// (lanes 0-7 of `_mm256_maddubs_epi16`'s result cover the first 16 values).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn halves(lo: i16, hi: i16) -> __m256i {
        _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
    }

    /// One unpacked weight block against activation rows `a0..a0 + R`: chunk `c` holds 32
    /// signed values `q[c]` (at most 127 in magnitude) and the i16 multipliers `sc[c]` of its
    /// two halves; the block's values are `d × sc × q`. Adds `d × a.d × Σ sc·(q·a)` to `acc`,
    /// the sums in i32 as llama.cpp's `vec_dot` does.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block_dot<const R: usize, const C: usize>(
        q: &[__m256i; C],
        sc: &[__m256i; C],
        d: f32,
        a: &QActs,
        a0: usize,
        b: usize,
        nb: usize,
        acc: &mut [__m256; R],
    ) {
        let (k, qs) = (a.k, a.qs.as_ptr());
        let mut sumi = [_mm256_setzero_si256(); R];
        for c in 0..C {
            let aw = _mm256_sign_epi8(q[c], q[c]);
            for (r, s) in sumi.iter_mut().enumerate() {
                let y = qs.add((a0 + r) * k + (b * C + c) * 32);
                let av = _mm256_loadu_si256(y as *const __m256i);
                let prod = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, q[c]));
                *s = _mm256_add_epi32(*s, _mm256_madd_epi16(prod, sc[c]));
            }
        }
        for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
            let scale = _mm256_set1_ps(d * *a.d.get_unchecked((a0 + r) * nb + b));
            *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), *acc);
        }
    }

    /// A row kernel over `nb` blocks of `$bytes` bytes and `$chunks` × 32 values, each block
    /// unpacked once by `$unpack` and multiplied with every activation row of the group.
    macro_rules! unpacked_kernel {
        ($(#[$doc:meta])* $name:ident, $unpack:ident, $bytes:expr, $chunks:expr) => {
            $(#[$doc])*
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name<const R: usize>(
                w: *const u8,
                nb: usize,
                a: &QActs,
                a0: usize,
                res: &mut [f32; 8],
            ) {
                let mut q = [_mm256_setzero_si256(); $chunks];
                let mut sc = [_mm256_setzero_si256(); $chunks];
                // Even and odd blocks accumulate apart (FMA latency, one row alone).
                let mut accs = [[_mm256_setzero_ps(); R]; 2];
                for b in 0..nb {
                    let d = $unpack(w.add(b * $bytes), &mut q, &mut sc);
                    block_dot::<R, $chunks>(&q, &sc, d, a, a0, b, nb, &mut accs[b & 1]);
                }
                for r in 0..R {
                    res[r] = hsum(_mm256_add_ps(accs[0][r], accs[1][r]));
                }
            }
        };
    }

    unpacked_kernel!(
        /// IQ3_XXS row (blocks of 98 bytes) · Q8_K activation rows.
        iq3_xxs, unpack_iq3_xxs, 98, 8
    );
    unpacked_kernel!(
        /// IQ3_S row (blocks of 110 bytes) · Q8_K activation rows.
        iq3_s, unpack_iq3_s, 110, 8
    );
    unpacked_kernel!(
        /// IQ2_XXS row (blocks of 66 bytes) · Q8_K activation rows.
        iq2_xxs, unpack_iq2_xxs, 66, 8
    );
    unpacked_kernel!(
        /// IQ2_XS row (blocks of 74 bytes) · Q8_K activation rows.
        iq2_xs, unpack_iq2_xs, 74, 8
    );
    unpacked_kernel!(
        /// IQ2_S row (blocks of 82 bytes) · Q8_K activation rows.
        iq2_s, unpack_iq2_s, 82, 8
    );
    unpacked_kernel!(
        /// IQ1_S row (blocks of 50 bytes) · Q8_K activation rows.
        iq1_s, unpack_iq1_s, 50, 8
    );
    unpacked_kernel!(
        /// IQ1_M row (blocks of 56 bytes) · Q8_K activation rows.
        iq1_m, unpack_iq1_m, 56, 8
    );
    unpacked_kernel!(
        /// TQ1_0 row (blocks of 54 bytes) · Q8_K activation rows.
        tq1_0, unpack_tq1_0, 54, 8
    );
    unpacked_kernel!(
        /// TQ2_0 row (blocks of 66 bytes) · Q8_K activation rows.
        tq2_0, unpack_tq2_0, 66, 8
    );
    unpacked_kernel!(
        /// MXFP4 row (blocks of 17 bytes) · Q8_0 activation rows.
        mxfp4, unpack_mxfp4, 17, 1
    );

    /// Eight 4-value grid entries (`u32`, IQ3) as 32 bytes, entry `i` in bytes 4i..4i+4.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn grid4(g: [u32; 8]) -> __m256i {
        _mm256_loadu_si256(g.as_ptr() as *const __m256i)
    }

    /// Four 8-value grid entries (`u64`, IQ2 and IQ1) as 32 bytes, entry `i` in bytes 8i..8i+8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn grid8(g: [u64; 4]) -> __m256i {
        _mm256_loadu_si256(g.as_ptr() as *const __m256i)
    }

    /// Four sign patterns (`SIGN8` entries) as 32 bytes of ±1.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn signs4(s: [i64; 4]) -> __m256i {
        _mm256_loadu_si256(s.as_ptr() as *const __m256i)
    }

    /// The little-endian u32 at `p` (4 readable bytes of a block).
    unsafe fn u32_at(p: *const u8) -> u32 {
        (p as *const u32).read_unaligned()
    }

    /// The little-endian u16 at `p` (2 readable bytes of a block).
    unsafe fn u16_at(p: *const u8) -> u16 {
        (p as *const u16).read_unaligned()
    }

    /// IQ3_XXS: d, 64 grid-index bytes, then per sub-block a word of 4 × 7 sign bits and a
    /// 4-bit scale `ls`: values `d/4 × (2ls + 1) × ±grid`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq3_xxs(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let qs = p.add(2);
        for ib in 0..8 {
            let aux = u32_at(p.add(66 + 4 * ib));
            let g = std::array::from_fn(|i| IQ3XXS_GRID[usize::from(*qs.add(8 * ib + i))]);
            let s = std::array::from_fn(|l| ksigns(aux >> (7 * l)));
            q[ib] = _mm256_sign_epi8(grid4(g), signs4(s));
            sc[ib] = _mm256_set1_epi16(2 * (aux >> 28) as i16 + 1);
        }
        f16(p) * 0.25
    }

    /// IQ3_S: d, 64 low grid-index bytes, a high bit each (`qh`), 32 sign bytes, a 4-bit scale
    /// per sub-block: values `d × (1 + 2 sc) × ±grid`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq3_s(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let (qs, qh, signs, scales) = (p.add(2), p.add(66), p.add(74), p.add(106));
        for ib in 0..8 {
            let h = usize::from(*qh.add(ib));
            let g = std::array::from_fn(|i| {
                IQ3S_GRID[usize::from(*qs.add(8 * ib + i)) | ((h << (8 - i)) & 256)]
            });
            let s = std::array::from_fn(|l| SIGN8[usize::from(*signs.add(4 * ib + l))]);
            q[ib] = _mm256_sign_epi8(grid4(g), signs4(s));
            let s4 = (*scales.add(ib / 2) >> (4 * (ib % 2))) & 0xf;
            sc[ib] = _mm256_set1_epi16(1 + 2 * i16::from(s4));
        }
        f16(p)
    }

    /// IQ2_XXS: d, then per sub-block 4 grid-index bytes and a word of 4 × 7 sign bits and a
    /// 4-bit scale `ls`: values `d/8 × (2ls + 1) × ±grid`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq2_xxs(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        for ib in 0..8 {
            let o = p.add(2 + 8 * ib);
            let aux = u32_at(o.add(4));
            let g = std::array::from_fn(|l| IQ2XXS_GRID[usize::from(*o.add(l))]);
            let s = std::array::from_fn(|l| ksigns(aux >> (7 * l)));
            q[ib] = _mm256_sign_epi8(grid8(g), signs4(s));
            sc[ib] = _mm256_set1_epi16(2 * (aux >> 28) as i16 + 1);
        }
        f16(p) * 0.125
    }

    /// IQ2_XS: d, 32 u16 (9-bit grid index, 7 sign bits), two 4-bit scales per sub-block:
    /// values `d/8 × (2 sc + 1) × ±grid`, a scale per 16.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq2_xs(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        for ib in 0..8 {
            let v: [u16; 4] = std::array::from_fn(|l| u16_at(p.add(2 + 2 * (4 * ib + l))));
            let g = std::array::from_fn(|l| IQ2XS_GRID[usize::from(v[l] & 511)]);
            let s = std::array::from_fn(|l| ksigns(u32::from(v[l] >> 9)));
            q[ib] = _mm256_sign_epi8(grid8(g), signs4(s));
            let b = i16::from(*p.add(66 + ib));
            sc[ib] = halves(2 * (b & 0xf) + 1, 2 * (b >> 4) + 1);
        }
        f16(p) * 0.125
    }

    /// IQ2_S: d, 32 low grid-index bytes, 32 sign bytes, 2 high index bits per group of 8
    /// (`qh`), two 4-bit scales per sub-block: values `d/8 × (2 sc + 1) × ±grid`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq2_s(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let (qs, signs, qh, scales) = (p.add(2), p.add(34), p.add(66), p.add(74));
        for ib in 0..8 {
            let h = usize::from(*qh.add(ib));
            let g = std::array::from_fn(|l| {
                IQ2S_GRID[usize::from(*qs.add(4 * ib + l)) | ((h << (8 - 2 * l)) & 0x300)]
            });
            let s = std::array::from_fn(|l| SIGN8[usize::from(*signs.add(4 * ib + l))]);
            q[ib] = _mm256_sign_epi8(grid8(g), signs4(s));
            let b = i16::from(*scales.add(ib));
            sc[ib] = halves(2 * (b & 0xf) + 1, 2 * (b >> 4) + 1);
        }
        f16(p) * 0.125
    }

    /// Eight times four IQ1 grid entries (bytes in {-1, 0, 1}) plus the delta's ±1 per group of
    /// 8 (`IQ1S_DELTA` is 1/8): `8 × (grid + delta)`, at most 9 in magnitude.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn iq1_values(idx: [usize; 4], neg: [bool; 4]) -> __m256i {
        let g = grid8(std::array::from_fn(|l| IQ1S_GRID[idx[l]]));
        let g2 = _mm256_add_epi8(g, g);
        let g4 = _mm256_add_epi8(g2, g2);
        let g8 = _mm256_add_epi8(g4, g4);
        let delta: [i64; 4] =
            std::array::from_fn(|l| if neg[l] { -1 } else { 0x0101_0101_0101_0101 });
        _mm256_add_epi8(g8, _mm256_loadu_si256(delta.as_ptr() as *const __m256i))
    }

    /// IQ1_S: d, 32 low grid-index bytes, then per sub-block a u16 of 4 × 3 high index bits, a
    /// 3-bit scale and the delta's sign: values `d/8 × (2 sc + 1) × 8 (grid ± 1/8)`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq1_s(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let qs = p.add(2);
        for ib in 0..8 {
            let qh = u16_at(p.add(34 + 2 * ib));
            let idx = std::array::from_fn(|l| {
                usize::from(*qs.add(4 * ib + l)) | (usize::from((qh >> (3 * l)) & 7) << 8)
            });
            q[ib] = iq1_values(idx, [qh & 0x8000 != 0; 4]);
            sc[ib] = _mm256_set1_epi16(2 * ((qh >> 12) & 7) as i16 + 1);
        }
        f16(p) * 0.125
    }

    /// IQ1_M: 32 low grid-index bytes, a byte per two groups of 8 (3 high index bits and the
    /// delta's sign each), four u16 of two 3-bit scales per sub-block (one per 16) whose top
    /// nibbles hold the f16 scale d: values `d/8 × (2 sc + 1) × 8 (grid ± 1/8)`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_iq1_m(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let (qs, qh) = (p, p.add(32));
        let s: [u16; 4] = std::array::from_fn(|i| u16_at(p.add(48 + 2 * i)));
        let bits = (s[0] >> 12) | ((s[1] >> 8) & 0x00f0) | ((s[2] >> 4) & 0x0f00) | (s[3] & 0xf000);
        for ib in 0..8 {
            let (h0, h1) = (
                usize::from(*qh.add(2 * ib)),
                usize::from(*qh.add(2 * ib + 1)),
            );
            let b = |l: usize| usize::from(*qs.add(4 * ib + l));
            let idx = [
                b(0) | ((h0 << 8) & 0x700),
                b(1) | ((h0 << 4) & 0x700),
                b(2) | ((h1 << 8) & 0x700),
                b(3) | ((h1 << 4) & 0x700),
            ];
            let neg = [
                h0 & 0x08 != 0,
                h0 & 0x80 != 0,
                h1 & 0x08 != 0,
                h1 & 0x80 != 0,
            ];
            q[ib] = iq1_values(idx, neg);
            let (w, shift) = (s[ib / 2], 6 * (ib % 2));
            let lo = 2 * ((w >> shift) & 7) as i16 + 1;
            let hi = 2 * ((w >> (shift + 3)) & 7) as i16 + 1;
            sc[ib] = halves(lo, hi);
        }
        f16_bits(bits) * 0.125
    }

    /// TQ1_0: 48 bytes of 5 base-3 digits, 4 bytes of 4, then d: values `d × {-1, 0, 1}` in
    /// `dequantize_row_tq1_0`'s order (bytes 0-31 digit by digit, then 32-47, then `qh`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_tq1_0(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        const POW3: [u8; 5] = [1, 3, 9, 27, 81];
        let digit =
            |byte: u8, pow3: u8| (((u16::from(byte.wrapping_mul(pow3)) * 3) >> 8) as i8) - 1;
        let mut v = [0i8; 256];
        let mut n = 0;
        for (start, len, digits) in [(0, 32, 5), (32, 16, 5), (48, 4, 4)] {
            for &pw in &POW3[..digits] {
                for i in 0..len {
                    v[n] = digit(*p.add(start + i), pw);
                    n += 1;
                }
            }
        }
        for (c, (q, sc)) in q.iter_mut().zip(sc.iter_mut()).enumerate() {
            *q = _mm256_loadu_si256(v.as_ptr().add(32 * c) as *const __m256i);
            *sc = _mm256_set1_epi16(1);
        }
        f16(p.add(52))
    }

    /// TQ2_0: 64 bytes of four 2-bit values (q - 1 in {-1, 0, 1}), then d; each run of 32
    /// bytes gives 128 values, bit pair by bit pair.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_tq2_0(p: *const u8, q: &mut [__m256i; 8], sc: &mut [__m256i; 8]) -> f32 {
        let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
        for run in 0..2 {
            let x = _mm256_loadu_si256(p.add(32 * run) as *const __m256i);
            for l in 0..4 {
                let bits = match l {
                    0 => x,
                    1 => _mm256_srli_epi16(x, 2),
                    2 => _mm256_srli_epi16(x, 4),
                    _ => _mm256_srli_epi16(x, 6),
                };
                q[4 * run + l] = _mm256_sub_epi8(_mm256_and_si256(bits, three), one);
                sc[4 * run + l] = _mm256_set1_epi16(1);
            }
        }
        f16(p.add(64))
    }

    /// MXFP4: the E8M0 exponent, then 16 bytes of two 4-bit indices into the doubled E2M1
    /// values: values `2^(e-128) × kvalues_mxfp4`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_mxfp4(p: *const u8, q: &mut [__m256i; 1], sc: &mut [__m256i; 1]) -> f32 {
        let table =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_FP4.as_ptr() as *const __m128i));
        q[0] = values(table, p.add(1));
        sc[0] = _mm256_set1_epi16(1);
        e8m0_to_f32_half(*p)
    }

    /// An f16 from its bits, widened exactly.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16_bits(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer arithmetic of the AVX2 kernels, in plain Rust: the reference they are
    /// tested against.
    fn reference_dot(t: IqType, wrow: &[u8], a: &QActs, j: usize) -> f32 {
        let kv = |q: u8| i32::from(iq::KVALUES_IQ4NL[usize::from(q)]);
        let f16 = |p: &[u8]| half::f16::from_le_bytes([p[0], p[1]]).to_f32();
        let nb = a.k / t.block_elems();
        let qs = &a.qs[j * a.k..(j + 1) * a.k];
        let nab = a.k / a.block;
        let d = &a.d[j * nab..(j + 1) * nab];
        let mut sum = 0f32;
        for b in 0..nb {
            let p = &wrow[b * t.block_bytes()..(b + 1) * t.block_bytes()];
            match t {
                IqType::Iq4Nl => {
                    let q = &qs[b * 32..(b + 1) * 32];
                    let mut s = 0i32;
                    for i in 0..16 {
                        s += kv(p[2 + i] & 0xf) * i32::from(q[i]);
                        s += kv(p[2 + i] >> 4) * i32::from(q[i + 16]);
                    }
                    sum += f16(p) * d[b] * s as f32;
                }
                IqType::Iq4Xs => {
                    let sh = u16::from_le_bytes([p[2], p[3]]);
                    let mut s = 0i32;
                    for ib in 0..8 {
                        let ls = i32::from((p[4 + ib / 2] >> (4 * (ib % 2))) & 0xf)
                            | (i32::from((sh >> (2 * ib)) & 3) << 4);
                        let q = &qs[b * 256 + ib * 32..b * 256 + (ib + 1) * 32];
                        let w = &p[8 + 16 * ib..8 + 16 * (ib + 1)];
                        let mut si = 0i32;
                        for i in 0..16 {
                            si += kv(w[i] & 0xf) * i32::from(q[i]);
                            si += kv(w[i] >> 4) * i32::from(q[i + 16]);
                        }
                        s += (ls - 32) * si;
                    }
                    sum += f16(p) * d[b] * s as f32;
                }
                _ => unreachable!("no integer reference for {}", t.name()),
            }
        }
        sum
    }

    /// llama-quantize's rows of every type (scripts/make-fixtures.sh, where llama.cpp is built),
    /// as one long row: the product with the kernel against the product with gguf-py's
    /// dequantization of the same bytes.
    #[test]
    fn real_tensors_multiply_as_gguf_py_dequantizes_them() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iq");
        let mut seen = 0;
        for t in IqType::ALL {
            let stem = format!("real_{}", t.name());
            let (Ok(data), Ok(f)) = (
                std::fs::read(dir.join(format!("{stem}.bin"))),
                std::fs::read(dir.join(format!("{stem}.f32"))),
            ) else {
                println!("skipped {stem}: not made (scripts/make-fixtures.sh makes it where llama-quantize is built)");
                continue;
            };
            let wf: Vec<f32> = f
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let k = wf.len();
            let m = 3;
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 31 % 89) as f32 - 44.0) / 11.0)
                .collect();
            let op =
                IqMatMul::new(Arc::new(IqTensor::new(t, vec![1, k], data).unwrap()), true).unwrap();
            let mut got = vec![0f32; m];
            op.matmul(&x, m, &mut got);
            let block = act_block(t);
            let a = QActs::quantize(&x, m, k, block);
            for j in 0..m {
                let want: f64 = (0..k)
                    .map(|i| {
                        let ad = a.d[j * (k / block) + i / block] * f32::from(a.qs[j * k + i]);
                        f64::from(wf[i]) * f64::from(ad)
                    })
                    .sum();
                let scale: f64 = (0..k).map(|i| f64::from(wf[i] * x[j * k + i]).abs()).sum();
                assert!(
                    (f64::from(got[j]) - want).abs() <= 1e-5 * scale,
                    "{stem} ({}): {} vs {want}",
                    op.kernel_name(),
                    got[j]
                );
            }
            seen += 1;
        }
        println!("{seen} real tensors checked");
    }

    #[test]
    fn every_type_multiplies_as_its_dequantized_weights() {
        // 13 activation rows: the SIMD kernels take a group of eight, one of four, one alone.
        let (n, k, m) = (6, 512, 13);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0)
            .collect();
        for t in IqType::ALL {
            for simd in [false, true] {
                let w = Arc::new(
                    IqTensor::new(
                        t,
                        vec![n, k],
                        iq::sample_blocks(t, n * k / t.block_elems(), 11),
                    )
                    .unwrap(),
                );
                let op = IqMatMul::new(w.clone(), simd).unwrap();
                let mut got = vec![0f32; m * n];
                op.matmul(&x, m, &mut got);
                let mut wf = vec![0f32; n * k];
                iq::dequantize(t, &w.data, &mut wf).unwrap();
                let live = wf.iter().filter(|v| **v != 0.0).count();
                assert!(
                    live > n * k / 4,
                    "{}: only {live} non-zero weights",
                    t.name()
                );
                let block = act_block(t);
                let a = QActs::quantize(&x, m, k, block);
                for j in 0..m {
                    for wi in 0..n {
                        let want: f64 = (0..k)
                            .map(|i| {
                                let ad =
                                    a.d[j * (k / block) + i / block] * f32::from(a.qs[j * k + i]);
                                f64::from(wf[wi * k + i]) * f64::from(ad)
                            })
                            .sum();
                        let scale: f64 = (0..k)
                            .map(|i| {
                                f64::from(wf[wi * k + i]).abs() * f64::from(x[j * k + i]).abs()
                            })
                            .sum();
                        let g = f64::from(got[j * n + wi]);
                        assert!(
                            (g - want).abs() <= 1e-5 * scale.max(1e-3),
                            "{} ({}) row {wi} act {j}: {g} vs {want}",
                            t.name(),
                            op.kernel_name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn iq4_kernels_match_their_integer_reference() {
        if isa().is_none() {
            eprintln!("skipped: no AVX2 here");
            return;
        }
        // 13 activation rows: a group of eight, one of four, one alone; and each row alone.
        let (n, k, m) = (8, 512, 13);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        for t in [IqType::Iq4Nl, IqType::Iq4Xs] {
            let w = IqTensor::new(
                t,
                vec![n, k],
                iq::sample_blocks(t, n * k / t.block_elems(), 7),
            )
            .unwrap();
            let a = QActs::quantize(&x, m, k, act_block(t));
            let rb = w.row_bytes();
            for wi in 0..n {
                let wrow = &w.data[wi * rb..(wi + 1) * rb];
                let groups = [(0, 8), (8, 4), (12, 1)].into_iter();
                for (j0, r) in groups.chain((0..m).map(|j| (j, 1))) {
                    let mut got = [0f32; 8];
                    simd_dot(t, wrow, &a, j0, r, &mut got);
                    for (jj, got) in got.iter().take(r).enumerate() {
                        let want = reference_dot(t, wrow, &a, j0 + jj);
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{} row {wi} act {} (group of {r}): {got} vs {want}",
                            t.name(),
                            j0 + jj
                        );
                    }
                }
            }
        }
    }
}
