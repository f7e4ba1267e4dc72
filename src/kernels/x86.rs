//! The SIMD inner loops of the quantized matmul: one weight row against one or four
//! quantized activation rows, block by block, in AVX2 or AVX-512 VNNI (llama.cpp's arithmetic).

use super::{Isa, Kind, QActs};

/// Dot products of weight row `w` with activation rows `a0..a0+r` (r is 1 or 4) into `res`.
pub fn dot_rows(
    kind: Kind,
    isa: Isa,
    w: &[u8],
    a: &QActs,
    a0: usize,
    r: usize,
    res: &mut [f32; 4],
) {
    assert!(a0 + r <= a.m && (r == 1 || r == 4));
    let nb = a.k / kind.block();
    assert!(w.len() >= nb * kind.block_bytes());
    #[cfg(target_arch = "x86_64")]
    // Safety: `isa` comes from run-time detection (`super::detect`), so the CPU has the
    // features each function is compiled for; the asserts above bound every pointer read.
    unsafe {
        let w = w.as_ptr();
        match (kind, isa, r) {
            (Kind::Q2K, _, _) => unreachable!("q2_k runs only in tiles (QMatMulOp::with_isa)"),
            (Kind::Q4K, _, 4) => avx2::q4k::<4>(w, nb, a, a0, res),
            (Kind::Q4K, _, _) => avx2::q4k::<1>(w, nb, a, a0, res),
            (Kind::Q6K, _, 4) => avx2::q6k::<4>(w, nb, a, a0, res),
            (Kind::Q6K, _, _) => avx2::q6k::<1>(w, nb, a, a0, res),
            (_, Isa::Avx2, 4) => avx2::blocks32::<4>(kind, w, nb, a, a0, res),
            (_, Isa::Avx2, _) => avx2::blocks32::<1>(kind, w, nb, a, a0, res),
            (_, Isa::Avx512Vnni, 4) => vnni::blocks32::<4>(kind, w, nb, a, a0, res),
            (_, Isa::Avx512Vnni, _) => vnni::blocks32::<1>(kind, w, nb, a, a0, res),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, res);
        unreachable!("qeval's kernels exist only on x86-64; detect() returns None elsewhere")
    }
}

/// The 32-value block types, generated once per instruction set; `$dot` is the unsigned ×
/// signed byte dot product into eight i32 lanes.
#[cfg(target_arch = "x86_64")]
macro_rules! blocks32_impl {
    ($feat:literal, |$x:ident, $y:ident| $dot:expr) => {
        use crate::kernels::{Kind, QActs};
        use std::arch::x86_64::*;

        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn dot_us($x: __m256i, $y: __m256i) -> __m256i {
            $dot
        }

        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn f16(p: *const u8) -> f32 {
            let h = u16::from_le_bytes([*p, *p.add(1)]);
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn hsum(x: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }

        /// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn nibbles(p: *const u8) -> __m256i {
            let t = _mm_loadu_si128(p as *const __m128i);
            let b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
            _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
        }

        /// 32 bits → 32 bytes, 0xFF where the bit is set.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn bits(p: *const u8) -> __m256i {
            let x = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
            let shuf = _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0,
            );
            let b = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
            let b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
            _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1))
        }

        /// One block: its 32 values as bytes (signed types: i8; Q4_1/Q5_1: u8), scale, minimum.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn unpack(kind: Kind, p: *const u8) -> (__m256i, f32, f32) {
            match kind {
                Kind::Q4_0 => {
                    let v = _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8));
                    (v, f16(p), 0.0)
                }
                Kind::Q4_1 => (nibbles(p.add(4)), f16(p), f16(p.add(2))),
                Kind::Q5_0 => {
                    let hi = _mm256_andnot_si256(bits(p.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
                    (_mm256_or_si256(nibbles(p.add(6)), hi), f16(p), 0.0)
                }
                Kind::Q5_1 => {
                    let hi = _mm256_and_si256(bits(p.add(4)), _mm256_set1_epi8(0x10));
                    (
                        _mm256_or_si256(nibbles(p.add(8)), hi),
                        f16(p),
                        f16(p.add(2)),
                    )
                }
                _ => (_mm256_loadu_si256(p.add(2) as *const __m256i), f16(p), 0.0),
            }
        }

        #[target_feature(enable = $feat)]
        pub unsafe fn blocks32<const R: usize>(
            kind: Kind,
            w: *const u8,
            nb: usize,
            a: &QActs,
            a0: usize,
            res: &mut [f32; 4],
        ) {
            let bb = kind.block_bytes();
            let signed = !matches!(kind, Kind::Q4_1 | Kind::Q5_1);
            let k = a.k;
            let qs = a.qs.as_ptr();
            let mut acc = [_mm256_setzero_ps(); R];
            let mut summ = [0f32; R];
            for b in 0..nb {
                let (wx, dw, mw) = unpack(kind, w.add(b * bb));
                let ax = if signed { _mm256_sign_epi8(wx, wx) } else { wx };
                for r in 0..R {
                    let row = a0 + r;
                    let y = _mm256_loadu_si256(qs.add(row * k + b * 32) as *const __m256i);
                    let sy = if signed { _mm256_sign_epi8(y, wx) } else { y };
                    let p = _mm256_cvtepi32_ps(dot_us(ax, sy));
                    let dy = *a.d.get_unchecked(row * nb + b);
                    acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dy), acc[r]);
                    if !signed {
                        summ[r] += mw * *a.s.get_unchecked(row * nb + b);
                    }
                }
            }
            for r in 0..R {
                res[r] = hsum(acc[r]) + summ[r];
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    blocks32_impl!("avx2,fma,f16c,avx512vnni,avx512vl", |x, y| {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y)
    });
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    blocks32_impl!("avx2,fma,f16c", |x, y| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
    });

    /// 8 i16 lanes of `lo` then 8 of `hi`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scale_pair(lo: i16, hi: i16) -> __m256i {
        _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
    }

    /// Q4_K (256 values: f16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
    /// nibbles) against Q8_K activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 4],
    ) {
        let k = a.k;
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut summ = [0f32; R];
        for b in 0..nb {
            let p = w.add(b * 144);
            let d = f16(p);
            let dmin = f16(p.add(2));
            let q = std::slice::from_raw_parts(p.add(4), 12);
            let mut sc = [0u8; 8];
            let mut mn = [0u8; 8];
            for j in 0..8 {
                if j < 4 {
                    sc[j] = q[j] & 63;
                    mn[j] = q[j + 4] & 63;
                } else {
                    sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
                    mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
                }
            }
            let q4 = p.add(16);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..4 {
                let bits = _mm256_loadu_si256(q4.add(32 * j) as *const __m256i);
                let lo = _mm256_and_si256(bits, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                let sl = _mm256_set1_epi16(sc[2 * j] as i16);
                let sh = _mm256_set1_epi16(sc[2 * j + 1] as i16);
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 64 * j);
                    let yl = _mm256_loadu_si256(y as *const __m256i);
                    let yh = _mm256_loadu_si256(y.add(32) as *const __m256i);
                    let pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, yl));
                    let ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, yh));
                    *sum = _mm256_add_epi32(*sum, _mm256_add_epi32(pl, ph));
                }
            }
            for r in 0..R {
                let row = a0 + r;
                let dy = *a.d.get_unchecked(row * nb + b);
                let bs = a.bsums.as_ptr().add((row * nb + b) * 16);
                let mut m = 0i32;
                for (j, &mj) in mn.iter().enumerate() {
                    m += mj as i32 * (*bs.add(2 * j) as i32 + *bs.add(2 * j + 1) as i32);
                }
                acc[r] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
                summ[r] -= dmin * dy * m as f32;
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]) + summ[r];
        }
    }

    /// Q6_K (256 values: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 i8 scales, f16 d)
    /// against Q8_K activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 4],
    ) {
        let k = a.k;
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        let m32 = _mm256_set1_epi8(32);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 210);
            let d = f16(p.add(208));
            let scales = std::slice::from_raw_parts(p.add(192) as *const i8, 16);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..2 {
                let ql = p.add(64 * j);
                let qh = p.add(128 + 32 * j);
                let b1 = _mm256_loadu_si256(ql as *const __m256i);
                let b2 = _mm256_loadu_si256(ql.add(32) as *const __m256i);
                let bh = _mm256_loadu_si256(qh as *const __m256i);
                let h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4);
                let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4);
                let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4);
                let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4);
                let v = [
                    _mm256_or_si256(_mm256_and_si256(b1, m4), h0),
                    _mm256_or_si256(_mm256_and_si256(b2, m4), h1),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3),
                ];
                let s = 8 * j;
                let sv = [
                    scale_pair(scales[s] as i16, scales[s + 1] as i16),
                    scale_pair(scales[s + 2] as i16, scales[s + 3] as i16),
                    scale_pair(scales[s + 4] as i16, scales[s + 5] as i16),
                    scale_pair(scales[s + 6] as i16, scales[s + 7] as i16),
                ];
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 128 * j);
                    for t in 0..4 {
                        let yt = _mm256_loadu_si256(y.add(32 * t) as *const __m256i);
                        let p16 = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(v[t], yt),
                            _mm256_maddubs_epi16(m32, yt),
                        );
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(sv[t], p16));
                    }
                }
            }
            for r in 0..R {
                let dy = *a.d.get_unchecked((a0 + r) * nb + b);
                acc[r] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }
}
