//! The SIMD inner loops of the quantized matmul: one weight row (four for the 32-value block
//! types) against one, four or eight quantized activation rows, block by block, in AVX2 or
//! AVX-512 VNNI (llama.cpp's arithmetic).

use super::{Isa, Kind, QActs};

/// Dot products of weight row `w` with activation rows `a0..a0+r` (r is 1 or 4, or 8 for the k-quants) into `res`.
pub fn dot_rows(
    kind: Kind,
    isa: Isa,
    w: &[u8],
    a: &QActs,
    a0: usize,
    r: usize,
    res: &mut [f32; 8],
) {
    assert!(a0 + r <= a.m && (r == 1 || r == 4 || (r == 8 && kind.block() == 256)));
    let nb = a.k / kind.block();
    assert!(w.len() >= nb * kind.block_bytes());
    #[cfg(target_arch = "x86_64")]
    // Safety: `isa` comes from run-time detection (`super::detect`), so the CPU has the
    // features each function is compiled for; the asserts above bound every pointer read.
    unsafe {
        let w = w.as_ptr();
        match (kind, isa, r) {
            (Kind::Q2K, _, 8) => avx2::q2k::<8>(w, nb, a, a0, res),
            (Kind::Q2K, _, 4) => avx2::q2k::<4>(w, nb, a, a0, res),
            (Kind::Q2K, _, _) => avx2::q2k::<1>(w, nb, a, a0, res),
            (Kind::Q3K, _, 8) => avx2::q3k::<8>(w, nb, a, a0, res),
            (Kind::Q3K, _, 4) => avx2::q3k::<4>(w, nb, a, a0, res),
            (Kind::Q3K, _, _) => avx2::q3k::<1>(w, nb, a, a0, res),
            (Kind::Q5K, _, 8) => avx2::q5k::<8>(w, nb, a, a0, res),
            (Kind::Q5K, _, 4) => avx2::q5k::<4>(w, nb, a, a0, res),
            (Kind::Q5K, _, _) => avx2::q5k::<1>(w, nb, a, a0, res),
            (Kind::Q4K, _, 8) => avx2::q4k::<8>(w, nb, a, a0, res),
            (Kind::Q4K, _, 4) => avx2::q4k::<4>(w, nb, a, a0, res),
            (Kind::Q4K, _, _) => avx2::q4k::<1>(w, nb, a, a0, res),
            (Kind::Q6K, _, 8) => avx2::q6k::<8>(w, nb, a, a0, res),
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

/// Dot products of four weight rows (`w`, `stride` bytes apart; 32-value block types only)
/// with activation rows `a0..a0+r` (r is 1, 2 or 4): `res[row][weight row]`.
#[allow(clippy::too_many_arguments)]
pub fn dot_rows4(
    kind: Kind,
    isa: Isa,
    w: &[u8],
    stride: usize,
    a: &QActs,
    a0: usize,
    r: usize,
    res: &mut [[f32; 4]; 4],
) {
    assert!(kind.block() == 32 && a0 + r <= a.m && (r == 1 || r == 2 || r == 4));
    let nb = a.k / 32;
    assert!(stride >= nb * kind.block_bytes() && w.len() >= 3 * stride + nb * kind.block_bytes());
    #[cfg(target_arch = "x86_64")]
    // Safety: as `dot_rows`; the asserts bound the four rows' reads.
    unsafe {
        let w = w.as_ptr();
        match (isa, r) {
            (Isa::Avx2, 4) => avx2::blocks32x4::<4>(kind, w, stride, nb, a, a0, res),
            (Isa::Avx2, 2) => avx2::blocks32x4::<2>(kind, w, stride, nb, a, a0, res),
            (Isa::Avx2, _) => avx2::blocks32x4::<1>(kind, w, stride, nb, a, a0, res),
            (Isa::Avx512Vnni, 4) => vnni::blocks32x4::<4>(kind, w, stride, nb, a, a0, res),
            (Isa::Avx512Vnni, 2) => vnni::blocks32x4::<2>(kind, w, stride, nb, a, a0, res),
            (Isa::Avx512Vnni, _) => vnni::blocks32x4::<1>(kind, w, stride, nb, a, a0, res),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, stride, res);
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

        /// As `unpack`, with Q4_0 and Q5_0 left unsigned (0..15, 0..31) and their offset (8,
        /// 16) returned apart: the byte dot product then needs no sign trick, and the offset
        /// comes off as offset × Σy (the activations' block sums).
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn unpack_u(kind: Kind, p: *const u8) -> (__m256i, f32, f32) {
            match kind {
                Kind::Q4_0 => (nibbles(p.add(2)), f16(p), 0.0),
                Kind::Q5_0 => {
                    let hi = _mm256_and_si256(bits(p.add(2)), _mm256_set1_epi8(0x10));
                    (_mm256_or_si256(nibbles(p.add(6)), hi), f16(p), 0.0)
                }
                _ => unpack(kind, p),
            }
        }

        #[target_feature(enable = $feat)]
        pub unsafe fn blocks32<const R: usize>(
            kind: Kind,
            w: *const u8,
            nb: usize,
            a: &QActs,
            a0: usize,
            res: &mut [f32; 8],
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

        /// Four weight rows (`w`, `w + stride`, `w + 2·stride`, `w + 3·stride`) against `R`
        /// activation rows. A block's four integer dot products are merged by horizontal adds
        /// into one vector (lanes: rows 0-3 twice), so each block and activation row costs one
        /// conversion and one FMA for all four weight rows, and one activation load.
        #[target_feature(enable = $feat)]
        pub unsafe fn blocks32x4<const R: usize>(
            kind: Kind,
            w: *const u8,
            stride: usize,
            nb: usize,
            a: &QActs,
            a0: usize,
            res: &mut [[f32; 4]; 4],
        ) {
            let bb = kind.block_bytes();
            // Only Q8_0's values need the sign trick; Q4_0/Q5_0 go unsigned with an offset.
            let signed = kind == Kind::Q8_0;
            let offset = match kind {
                Kind::Q4_0 => 8,
                Kind::Q5_0 => 16,
                _ => 0,
            };
            let with_min = matches!(kind, Kind::Q4_1 | Kind::Q5_1);
            let k = a.k;
            let qs = a.qs.as_ptr();
            let mut acc = [_mm256_setzero_ps(); R];
            let mut macc = [_mm_setzero_ps(); R];
            // The next four rows, a line per block, so memory runs ahead of the arithmetic.
            // (A prefetch never faults, so past the matrix's end it is harmless.)
            let next = w.wrapping_add(4 * stride);
            let three = 4 * bb > 128;
            for b in 0..nb {
                let p = w.add(b * bb);
                let ahead = next.wrapping_add(b * 4 * bb) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                if three {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
                }
                let (x0, d0, m0) = unpack_u(kind, p);
                let (x1, d1, m1) = unpack_u(kind, p.add(stride));
                let (x2, d2, m2) = unpack_u(kind, p.add(2 * stride));
                let (x3, d3, m3) = unpack_u(kind, p.add(3 * stride));
                let dw = _mm_setr_ps(d0, d1, d2, d3);
                let dw = _mm256_set_m128(dw, dw);
                let mw = _mm_setr_ps(m0, m1, m2, m3);
                let ax = if signed {
                    [
                        _mm256_sign_epi8(x0, x0),
                        _mm256_sign_epi8(x1, x1),
                        _mm256_sign_epi8(x2, x2),
                        _mm256_sign_epi8(x3, x3),
                    ]
                } else {
                    [x0, x1, x2, x3]
                };
                for r in 0..R {
                    let row = a0 + r;
                    let y = _mm256_loadu_si256(qs.add(row * k + b * 32) as *const __m256i);
                    let (p0, p1, p2, p3) = if signed {
                        (
                            dot_us(ax[0], _mm256_sign_epi8(y, x0)),
                            dot_us(ax[1], _mm256_sign_epi8(y, x1)),
                            dot_us(ax[2], _mm256_sign_epi8(y, x2)),
                            dot_us(ax[3], _mm256_sign_epi8(y, x3)),
                        )
                    } else {
                        (
                            dot_us(ax[0], y),
                            dot_us(ax[1], y),
                            dot_us(ax[2], y),
                            dot_us(ax[3], y),
                        )
                    };
                    // Lanes 0-3: the four rows' sums over values 0..16; lanes 4-7: 16..32.
                    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
                    let h = if offset != 0 {
                        let c = offset * *a.sum.get_unchecked(row * nb + b);
                        let c = _mm256_set_m128i(_mm_setzero_si128(), _mm_set1_epi32(c));
                        _mm256_sub_epi32(h, c)
                    } else {
                        h
                    };
                    let dy = *a.d.get_unchecked(row * nb + b);
                    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(dy));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), scale, acc[r]);
                    if with_min {
                        let s = *a.s.get_unchecked(row * nb + b);
                        macc[r] = _mm_fmadd_ps(mw, _mm_set1_ps(s), macc[r]);
                    }
                }
            }
            for r in 0..R {
                let v = _mm256_castps256_ps128(acc[r]);
                let v = _mm_add_ps(v, _mm256_extractf128_ps(acc[r], 1));
                _mm_storeu_ps(res[r].as_mut_ptr(), _mm_add_ps(v, macc[r]));
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

    /// Decode reads each weight once, straight from memory: ask for the bytes `PREFETCH`
    /// ahead of block `p` (`bb` bytes long) now, so the memory runs ahead of the arithmetic.
    /// (A prefetch never faults, so past the matrix's end it is harmless.)
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn ahead(p: *const u8, bb: usize) {
        const PREFETCH: usize = 1024;
        let mut o = 0;
        while o < bb {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + o) as *const i8);
            o += 64;
        }
    }

    /// Q4_K's 12 bytes of 6-bit scales and mins → 8 scales (bytes 0..8) and 8 mins (bytes
    /// 8..16), as llama.cpp's `utmp` shuffle unpacks them.
    #[inline]
    fn q4k_scales(q: &[u8; 12]) -> [u32; 4] {
        const KMASK1: u32 = 0x3f3f3f3f;
        const KMASK2: u32 = 0x0f0f0f0f;
        const KMASK3: u32 = 0x03030303;
        let u0 = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
        let u1 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
        let u2 = u32::from_le_bytes([q[8], q[9], q[10], q[11]]);
        [
            u0 & KMASK1,
            (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
            u1 & KMASK1,
            ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
        ]
    }

    /// Q4_K/Q5_K's packed scales and mins at `p` as vectors: the 8 scales as i16 in both
    /// halves (for `spread16`), and the 8 mins doubled, one per sum of 16, as 16 i16.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q4k_scale_vectors(p: *const u8) -> (__m256i, __m256i) {
        let u = q4k_scales(&*(p as *const [u8; 12]));
        let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(
            0,
            0,
            u[1] as i32,
            u[0] as i32,
        )));
        let mn8 = _mm_set_epi32(0, 0, u[3] as i32, u[2] as i32);
        (sc, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8)))
    }

    /// One block's result for one activation row (its scale and sums of 16 at index `ab` of
    /// the `QActs` arrays): `acc + d·dy·Σ − dmin·dy·Σ mins × bsums`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn add_block_with_min(
        acc: __m256,
        sumi: __m256i,
        d: f32,
        dmin: f32,
        mins: __m256i,
        a: &QActs,
        ab: usize,
    ) -> __m256 {
        let dy = *a.d.get_unchecked(ab);
        let bs = _mm256_loadu_si256(a.bsums.as_ptr().add(ab * 16) as *const __m256i);
        let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bs));
        let acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi), acc);
        _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy), m, acc)
    }

    /// 16 i8 scales broadcast in `sb`, shuffled by a `pair_spread`: the two scales of 32
    /// values as 8 + 8 i16 lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn pair_scales(sb: __m256i, spread: __m256i) -> __m256i {
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(_mm256_shuffle_epi8(sb, spread)))
    }

    /// Shuffles that spread i16 lane `i` of a 128-bit vector over 16 i16 lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn spread16(i: usize) -> __m256i {
        let lo = (2 * i) as i8;
        let hi = (2 * i + 1) as i8;
        _mm256_setr_epi8(
            lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
            lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
        )
    }

    /// Q4_K (256 values: f16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
    /// nibbles) against Q8_K activations. The minimum's term goes through the activations'
    /// sums of 16 (`bsums`), all in vectors.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let k = a.k;
        let m4 = _mm256_set1_epi8(0x0F);
        let spread: [__m256i; 8] = std::array::from_fn(|i| spread16(i));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 144);
            if R == 1 {
                ahead(p, 144);
            }
            let d = f16(p);
            let dmin = f16(p.add(2));
            let (sc, mins) = q4k_scale_vectors(p.add(4));
            let q4 = p.add(16);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..4 {
                let bits = _mm256_loadu_si256(q4.add(32 * j) as *const __m256i);
                let lo = _mm256_and_si256(bits, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                let sl = _mm256_shuffle_epi8(sc, spread[2 * j]);
                let sh = _mm256_shuffle_epi8(sc, spread[2 * j + 1]);
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 64 * j);
                    let yl = _mm256_loadu_si256(y as *const __m256i);
                    let yh = _mm256_loadu_si256(y.add(32) as *const __m256i);
                    let pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, yl));
                    let ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, yh));
                    *sum = _mm256_add_epi32(*sum, _mm256_add_epi32(pl, ph));
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                *acc = add_block_with_min(*acc, sumi, d, dmin, mins, a, (a0 + r) * nb + b);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// Q5_K (256 values: f16 d and dmin, 12 bytes of 6-bit scales and mins as Q4_K's, 32 bytes
    /// of fifth bits, 128 bytes of nibbles) against Q8_K activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q5k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let k = a.k;
        let m4 = _mm256_set1_epi8(0x0F);
        let sixteen = _mm256_set1_epi8(16);
        let spread: [__m256i; 8] = std::array::from_fn(|i| spread16(i));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 176);
            if R == 1 {
                ahead(p, 176);
            }
            let d = f16(p);
            let dmin = f16(p.add(2));
            let (sc, mins) = q4k_scale_vectors(p.add(4));
            let hbits = _mm256_loadu_si256(p.add(16) as *const __m256i);
            let q5 = p.add(48);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..4 {
                let bits = _mm256_loadu_si256(q5.add(32 * j) as *const __m256i);
                // Bit 2j of each qh byte is the fifth bit of the low nibbles, 2j+1 of the high.
                let hl = _mm256_set1_epi8(1 << (2 * j));
                let hh = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
                let fl = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hl), hl);
                let fh = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hh), hh);
                let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_and_si256(fl, sixteen));
                let hi = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                    _mm256_and_si256(fh, sixteen),
                );
                let sl = _mm256_shuffle_epi8(sc, spread[2 * j]);
                let sh = _mm256_shuffle_epi8(sc, spread[2 * j + 1]);
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 64 * j);
                    let yl = _mm256_loadu_si256(y as *const __m256i);
                    let yh = _mm256_loadu_si256(y.add(32) as *const __m256i);
                    let pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, yl));
                    let ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, yh));
                    *sum = _mm256_add_epi32(*sum, _mm256_add_epi32(pl, ph));
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                *acc = add_block_with_min(*acc, sumi, d, dmin, mins, a, (a0 + r) * nb + b);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// Q2_K (256 values: 16 bytes of 4-bit scales and mins, one pair per 16 values, 64 bytes
    /// of 2-bit values, f16 d and dmin) against Q8_K activations.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q2k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let k = a.k;
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0x0F);
        let spread: [__m256i; 8] = std::array::from_fn(|i| pair_spread(2 * i));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 84);
            if R == 1 {
                ahead(p, 84);
            }
            let d = f16(p.add(80));
            let dmin = f16(p.add(82));
            let ms = _mm_loadu_si128(p as *const __m128i);
            let sb = _mm256_broadcastsi128_si256(_mm_and_si128(ms, m4));
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(ms, 4), m4));
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..2 {
                let bits = _mm256_loadu_si256(p.add(16 + 32 * j) as *const __m256i);
                let v = [
                    _mm256_and_si256(bits, m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
                ];
                let sv: [__m256i; 4] = std::array::from_fn(|t| pair_scales(sb, spread[4 * j + t]));
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 128 * j);
                    for t in 0..4 {
                        let yt = _mm256_loadu_si256(y.add(32 * t) as *const __m256i);
                        let p16 = _mm256_maddubs_epi16(v[t], yt);
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(sv[t], p16));
                    }
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                *acc = add_block_with_min(*acc, sumi, d, dmin, mins, a, (a0 + r) * nb + b);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// Q3_K's 12 bytes of 6-bit scales → 16 scales as bytes, as llama.cpp's `aux` shuffle
    /// unpacks them (still +32).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q3k_scales(p: *const u8) -> __m128i {
        let w = super::super::q3k_scale_words(&*(p as *const [u8; 12]));
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    /// Q3_K (256 values: 32 bytes of high bits, 64 of 2-bit values, 12 of 6-bit scales, f16 d)
    /// against Q8_K activations. A value is its three bits minus 4 (llama.cpp subtracts 4 where
    /// the high bit is clear): the three bits go through the byte dot product unsigned, and the
    /// 4 × scale × Σy term through the activations' sums of 16, as Q6_K's offset.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q3k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let k = a.k;
        let m3 = _mm256_set1_epi8(3);
        let four = _mm256_set1_epi8(4);
        let m32 = _mm_set1_epi8(32);
        let spread: [__m256i; 8] = std::array::from_fn(|i| pair_spread(2 * i));
        let hmask: [__m256i; 8] = std::array::from_fn(|i| _mm256_set1_epi8((1u8 << i) as i8));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 110);
            if R == 1 {
                ahead(p, 110);
            }
            let d = f16(p.add(108));
            let s8 = _mm_sub_epi8(q3k_scales(p.add(96)), m32);
            let s16 = _mm256_cvtepi8_epi16(s8);
            let sb = _mm256_broadcastsi128_si256(s8);
            let hbits = _mm256_loadu_si256(p as *const __m256i);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..2 {
                let bits = _mm256_loadu_si256(p.add(32 + 32 * j) as *const __m256i);
                let lo = [
                    _mm256_and_si256(bits, m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                    _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
                ];
                // Bit 4j+t of each hmask byte is the high bit of the values at shift 2t.
                let v: [__m256i; 4] = std::array::from_fn(|t| {
                    let hm = hmask[4 * j + t];
                    let h = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm), hm);
                    _mm256_or_si256(lo[t], _mm256_and_si256(h, four))
                });
                let sv: [__m256i; 4] = std::array::from_fn(|t| pair_scales(sb, spread[4 * j + t]));
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 128 * j);
                    for t in 0..4 {
                        let yt = _mm256_loadu_si256(y.add(32 * t) as *const __m256i);
                        let p16 = _mm256_maddubs_epi16(v[t], yt);
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(sv[t], p16));
                    }
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                let row = a0 + r;
                let dy = *a.d.get_unchecked(row * nb + b);
                let bs = _mm256_loadu_si256(a.bsums.as_ptr().add((row * nb + b) * 16) as *const _);
                let off = _mm256_slli_epi32(_mm256_madd_epi16(s16, bs), 2);
                let sumi = _mm256_sub_epi32(sumi, off);
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi), *acc);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// Q6_K (256 values: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 i8 scales, f16 d)
    /// against Q8_K activations. Values are stored +32; the 32 × scale × Σy term goes through
    /// the activations' sums of 16.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q6k<const R: usize>(
        w: *const u8,
        nb: usize,
        a: &QActs,
        a0: usize,
        res: &mut [f32; 8],
    ) {
        let k = a.k;
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        let spread: [__m256i; 8] = std::array::from_fn(|i| pair_spread(2 * i));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let p = w.add(b * 210);
            if R == 1 {
                ahead(p, 210);
            }
            let d = f16(p.add(208));
            // 16 i8 scales → 16 i16 (for the offset term) and, per 32 values, a pair spread.
            let s8 = _mm_loadu_si128(p.add(192) as *const __m128i);
            let s16 = _mm256_cvtepi8_epi16(s8);
            let sb = _mm256_broadcastsi128_si256(s8);
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
                let sv: [__m256i; 4] = std::array::from_fn(|t| pair_scales(sb, spread[4 * j + t]));
                for (r, sum) in sumi.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((a0 + r) * k + b * 256 + 128 * j);
                    for t in 0..4 {
                        let yt = _mm256_loadu_si256(y.add(32 * t) as *const __m256i);
                        let p16 = _mm256_maddubs_epi16(v[t], yt);
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(sv[t], p16));
                    }
                }
            }
            for (r, (acc, sumi)) in acc.iter_mut().zip(sumi).enumerate() {
                let row = a0 + r;
                let dy = *a.d.get_unchecked(row * nb + b);
                let bs = _mm256_loadu_si256(a.bsums.as_ptr().add((row * nb + b) * 16) as *const _);
                let off = _mm256_slli_epi32(_mm256_madd_epi16(s16, bs), 5);
                let sumi = _mm256_sub_epi32(sumi, off);
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi), *acc);
            }
        }
        for r in 0..R {
            res[r] = hsum(acc[r]);
        }
    }

    /// A shuffle whose low 16 bytes are byte `s` eight times, then byte `s + 1` eight times.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn pair_spread(s: usize) -> __m256i {
        let lo = s as i8;
        let hi = (s + 1) as i8;
        _mm256_setr_epi8(
            lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi, lo, lo, lo, lo, lo, lo,
            lo, lo, hi, hi, hi, hi, hi, hi, hi, hi,
        )
    }
}
