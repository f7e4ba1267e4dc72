//! F16 weights times a few f32 activation rows (decode), AVX2 + F16C + FMA: each weight row is
//! read once from memory and converted in registers. Prefill stays with candle's f16 GEMM.

use super::{for_chunks, OutPtr};
use candle_core::{Tensor, D};

/// The most activation rows this path takes; more go to candle's GEMM.
pub const MAX_ROWS: usize = 4;

/// x (..., k) × wᵀ for an f16 weight `w` (n×k) on the CPU, or `None` where this path does not
/// apply (not f16, not CPU, too many rows, no AVX2/F16C).
pub fn matmul(w: &Tensor, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
    if super::isa().is_none() || w.dtype() != candle_core::DType::F16 || !w.device().is_cpu() {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    let dims = x.dims().to_vec();
    let rows: usize = dims[..dims.len() - 1].iter().product();
    if rows > MAX_ROWS || x.dim(D::Minus1)? != k {
        return Ok(None);
    }
    let xs: Vec<f32> = x
        .reshape((rows, k))?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let ws = cpu.as_slice::<half::f16>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    let ws = &ws[start..end];
    let mut dst = vec![0f32; rows * n];
    gemv(ws, n, k, &xs, rows, &mut dst);
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = n;
    Ok(Some(Tensor::from_vec(dst, out, x.device())?))
}

fn gemv(w: &[half::f16], n: usize, k: usize, x: &[f32], m: usize, dst: &mut [f32]) {
    assert!(w.len() >= n * k && x.len() >= m * k && dst.len() >= m * n);
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads * 4).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    for_chunks(n.div_ceil(chunk), m * n * k, |c| {
        for i in c * chunk..((c + 1) * chunk).min(n) {
            let row = &w[i * k..(i + 1) * k];
            for r in 0..m {
                let v = dot(row, &x[r * k..(r + 1) * k]);
                // Safety: row r < m, column i < n; each column belongs to one chunk.
                unsafe { *out.get().add(r * n + i) = v };
            }
        }
    });
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

    /// Against candle's own f16 matmul of the same weights (f32 activations): one row and
    /// four, k with a tail that is not a multiple of 32.
    #[test]
    fn f16_gemv_matches_candle() {
        if super::super::isa().is_none() {
            eprintln!("no AVX2/F16C: the f16 path does not run here");
            return;
        }
        let dev = Device::Cpu;
        for k in [576usize, 100] {
            let w = Tensor::randn(0f32, 1.0, (40, k), &dev)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap();
            for m in [1usize, 4] {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                let want = x
                    .matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap())
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                let got = matmul(&w, &x).unwrap().unwrap().to_vec2::<f32>().unwrap();
                for (g, e) in got.iter().flatten().zip(want.iter().flatten()) {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "k={k} m={m}: {g} vs {e}"
                    );
                }
            }
            let x5 = Tensor::randn(0f32, 1.0, (5, k), &dev).unwrap();
            assert!(matmul(&w, &x5).unwrap().is_none(), "5 rows go to the GEMM");
        }
    }
}
