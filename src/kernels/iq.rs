//! The CPU matrix multiplication for the GGUF types candle has no kernels for (i-quants,
//! TQ1_0/TQ2_0, MXFP4: [`IqTensor`]), as llama.cpp's CPU backend does it: the activations
//! quantized to its `vec_dot_type` for the weight type (Q8_0 blocks of 32 for IQ4_NL and
//! MXFP4, Q8_K blocks of 256 for the others), then a dot product per weight row.
//!
//! IQ4_NL and IQ4_XS, the common ones, have AVX2 kernels with llama.cpp's integer arithmetic
//! (the 16 non-linear values looked up with a byte shuffle, signed byte products summed in
//! i32 per block, one f32 multiply per block). Every other type dequantizes each weight row
//! once (`iq::dequantize_row`, bit for bit llama.cpp's) and multiplies it in f32 with the
//! dequantized Q8 activations: the same numbers as llama.cpp's integer dot products up to f32
//! rounding, at a fraction of their speed. Rows are dequantized four at a time and, with
//! AVX2, multiplied against two activation rows at once (eight FMA accumulators), so each
//! activation row is read once per four weight rows. The weights stay in their GGUF blocks in
//! memory.

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
    /// The f32 path's tile with AVX2 FMA (types without an integer kernel).
    fma: bool,
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
        let has_simd = matches!(w.ty, IqType::Iq4Nl | IqType::Iq4Xs);
        Ok(IqMatMul {
            n,
            k,
            simd: if simd && has_simd { isa() } else { None },
            fma: simd && isa().is_some() && k.is_multiple_of(8),
            w,
        })
    }

    /// What multiplies: "avx2", "dequantize-f32-fma" or "dequantize-f32".
    pub fn kernel_name(&self) -> &'static str {
        match self.simd {
            Some(_) => "avx2",
            None if self.fma => "dequantize-f32-fma",
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
                let fma = self.fma;
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
                            let dots = if fma && r == TILE {
                                #[cfg(target_arch = "x86_64")]
                                // Safety: isa() found AVX2 and FMA; wf holds TILE rows of k
                                // values, a0 and a1 k values each, k a multiple of 8.
                                unsafe {
                                    avx2::dot_tile(&wf, a0, a1, k)
                                }
                                #[cfg(not(target_arch = "x86_64"))]
                                unreachable!("isa() is None off x86_64")
                            } else {
                                let mut d = [[0f32; TILE]; 2];
                                for (i, row) in wf.chunks_exact(k).take(r).enumerate() {
                                    d[0][i] = dot_f32(row, a0);
                                    d[1][i] = dot_f32(row, a1);
                                }
                                d
                            };
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
        match (t, r) {
            (IqType::Iq4Nl, 8) => avx2::iq4_nl::<8>(w, nb, a, j, res),
            (IqType::Iq4Nl, 4) => avx2::iq4_nl::<4>(w, nb, a, j, res),
            (IqType::Iq4Nl, _) => avx2::iq4_nl::<1>(w, nb, a, j, res),
            (IqType::Iq4Xs, 8) => avx2::iq4_xs::<8>(w, nb, a, j, res),
            (IqType::Iq4Xs, 4) => avx2::iq4_xs::<4>(w, nb, a, j, res),
            (IqType::Iq4Xs, _) => avx2::iq4_xs::<1>(w, nb, a, j, res),
            _ => unreachable!("no SIMD kernel for {}", t.name()),
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
    use crate::quant::iq::KVALUES_IQ4NL;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16(p: *const u8) -> f32 {
        let h = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }

    /// The dots of `TILE` dequantized weight rows (`w`, `TILE` × k) with two activation rows:
    /// `[a0 · w_i ..., a1 · w_i ...]`, eight lanes per row pair summed at the end.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_tile(w: &[f32], a0: &[f32], a1: &[f32], k: usize) -> [[f32; super::TILE]; 2] {
        debug_assert!(w.len() >= super::TILE * k && a0.len() >= k && a1.len() >= k);
        let mut acc = [[_mm256_setzero_ps(); super::TILE]; 2];
        let (p0, p1, pw) = (a0.as_ptr(), a1.as_ptr(), w.as_ptr());
        let mut c = 0;
        while c < k {
            let x0 = _mm256_loadu_ps(p0.add(c));
            let x1 = _mm256_loadu_ps(p1.add(c));
            let [s0, s1] = &mut acc;
            for (i, (s0, s1)) in s0.iter_mut().zip(s1.iter_mut()).enumerate() {
                let wv = _mm256_loadu_ps(pw.add(i * k + c));
                *s0 = _mm256_fmadd_ps(wv, x0, *s0);
                *s1 = _mm256_fmadd_ps(wv, x1, *s1);
            }
            c += 8;
        }
        let mut out = [[0f32; super::TILE]; 2];
        for (o, a) in out.iter_mut().zip(acc) {
            for (o, a) in o.iter_mut().zip(a) {
                *o = hsum(a);
            }
        }
        out
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
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 18);
            let wv = values(table, p.add(2));
            let aw = _mm256_sign_epi8(wv, wv);
            let dw = f16(p);
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = a0 + r;
                let av = _mm256_loadu_si256(qs.add(row * k + b * 32) as *const __m256i);
                let prod = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wv));
                let s = _mm256_madd_epi16(prod, ones);
                let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(row * nb + b));
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), *acc);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
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

    /// Blocks of random bytes with sane f16 scales (random bytes make any index valid).
    fn random_blocks(t: IqType, rows: usize, k: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut data: Vec<u8> = (0..rows * k / t.block_elems() * t.block_bytes())
            .map(|_| next() as u8)
            .collect();
        if matches!(t, IqType::Iq4Nl | IqType::Iq4Xs) {
            for b in data.chunks_exact_mut(t.block_bytes()) {
                let d = half::f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5);
                b[..2].copy_from_slice(&d.to_le_bytes());
            }
        }
        // A block whose random scale is huge, infinite or NaN becomes zeros.
        let mut v = vec![0f32; t.block_elems()];
        for b in data.chunks_exact_mut(t.block_bytes()) {
            iq::dequantize_row(t, b, &mut v);
            if v.iter().any(|x| !x.is_finite() || x.abs() > 1e3) {
                b.fill(0);
            }
        }
        data
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
        let (n, k, m) = (6, 512, 5);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0)
            .collect();
        for t in IqType::ALL {
            for simd in [false, true] {
                let w = Arc::new(IqTensor::new(t, vec![n, k], random_blocks(t, n, k, 11)).unwrap());
                let op = IqMatMul::new(w.clone(), simd).unwrap();
                let mut got = vec![0f32; m * n];
                op.matmul(&x, m, &mut got);
                let mut wf = vec![0f32; n * k];
                iq::dequantize(t, &w.data, &mut wf).unwrap();
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
            let w = IqTensor::new(t, vec![n, k], random_blocks(t, n, k, 7)).unwrap();
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
