//! The AVX-512 VNNI path for the 32-value block types, Q2_K, Q3_K, Q4_K and Q6_K: weights repacked once into tiles of 16
//! rows (same bytes as the GGUF blocks, only reordered), so that one `vpdpbusd` multiplies four
//! weights of 16 rows by four activation bytes broadcast, and 16 outputs come out together.
//! Where the CPU has GFNI, Q2_K's and Q3_K's 2-bit fields come out of their bytes with one
//! `vgf2p8affineqb` (`gf_bits`) instead of a shift and an AND.
//!
//! Tile layout for one block of 32 values of 16 rows (`Kind::block_bytes` × 16 bytes):
//! the 16 f16 scales, the 16 f16 minimums (Q4_1, Q5_1), the 16 u32 high-bit words (Q5_0,
//! Q5_1), then the values: for 4-bit types four 64-byte groups whose byte `4r+i` of group `g`
//! is row r's `qs[4g+i]` (low nibble: value 4g+i, high nibble: value 16+4g+i); for Q8_0 eight
//! groups of row r's values `4g..4g+4`, stored +128 (unsigned for `vpdpbusd`).

#[cfg(target_arch = "x86_64")]
use super::prefetch_stream;
use super::{Kind, QActs};

/// Bytes of one tile-block: the 16 rows' blocks, reordered (Q4_K: its 6-bit scales and mins
/// unpacked to a byte each, 64 bytes more than the GGUF blocks, 2.8%; Q3_K: its 12 packed scale
/// bytes unpacked to 16, 3.6%).
pub fn tile_bytes(kind: Kind) -> usize {
    match kind {
        Kind::Q4K => 2368,
        Kind::Q3K => 1824,
        _ => kind.block_bytes() * 16,
    }
}

/// Whether weights of this kind are repacked into tiles on AVX-512 VNNI.
pub fn has_tiles(kind: Kind) -> bool {
    kind.block() == 32 || matches!(kind, Kind::Q2K | Kind::Q3K | Kind::Q4K | Kind::Q6K)
}

/// Reorder a GGUF weight matrix (n rows, a multiple of 16, of `nb` blocks) into tiles.
pub fn repack(kind: Kind, data: &[u8], n: usize, nb: usize) -> Vec<u8> {
    match kind {
        Kind::Q2K => return repack_q2k(data, n, nb),
        Kind::Q3K => return repack_q3k(data, n, nb),
        Kind::Q4K => return repack_q4k(data, n, nb),
        Kind::Q6K => return repack_q6k(data, n, nb),
        _ => {}
    }
    let bb = kind.block_bytes();
    let mut out = vec![0u8; n * nb * bb];
    for t in 0..n / 16 {
        for b in 0..nb {
            let o = &mut out[(t * nb + b) * 16 * bb..(t * nb + b + 1) * 16 * bb];
            for r in 0..16 {
                let blk = &data[((t * 16 + r) * nb + b) * bb..][..bb];
                o[2 * r..2 * r + 2].copy_from_slice(&blk[0..2]);
                let (mut off, qs) = match kind {
                    Kind::Q4_0 => (32, &blk[2..18]),
                    Kind::Q4_1 => {
                        o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[2..4]);
                        (64, &blk[4..20])
                    }
                    Kind::Q5_0 => {
                        o[32 + 4 * r..32 + 4 * r + 4].copy_from_slice(&blk[2..6]);
                        (96, &blk[6..22])
                    }
                    Kind::Q5_1 => {
                        o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[2..4]);
                        o[64 + 4 * r..64 + 4 * r + 4].copy_from_slice(&blk[4..8]);
                        (128, &blk[8..24])
                    }
                    _ => (32, &blk[2..34]),
                };
                let groups = qs.len() / 4;
                for g in 0..groups {
                    for i in 0..4 {
                        let v = qs[4 * g + i];
                        o[off + 4 * r + i] = if kind == Kind::Q8_0 { v ^ 0x80 } else { v };
                    }
                    off += 64;
                }
            }
        }
    }
    out
}

/// Q2_K tile-block (16 rows × 84 bytes): the 16 f16 d, the 16 f16 dmin, the scale/min bytes
/// as [sub-block][row] (16 × 16), then the 2-bit values: for each half j (128 values) and
/// group g (0..8), row r's bytes `qs[32j+4g..32j+4g+4]`, whose bit pair t holds values
/// `128j+32t+4g..+4` (GGUF order, regrouped by 4 bytes across rows).
fn repack_q2k(data: &[u8], n: usize, nb: usize) -> Vec<u8> {
    let bb = 84;
    let mut out = vec![0u8; n * nb * bb];
    for t in 0..n / 16 {
        for b in 0..nb {
            let o = &mut out[(t * nb + b) * 16 * bb..(t * nb + b + 1) * 16 * bb];
            for r in 0..16 {
                let blk = &data[((t * 16 + r) * nb + b) * bb..][..bb];
                o[2 * r..2 * r + 2].copy_from_slice(&blk[80..82]);
                o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[82..84]);
                for s in 0..16 {
                    o[64 + 16 * s + r] = blk[s];
                }
                for j in 0..2 {
                    for g in 0..8 {
                        let dst = 320 + (j * 8 + g) * 64 + 4 * r;
                        let src = 16 + 32 * j + 4 * g;
                        o[dst..dst + 4].copy_from_slice(&blk[src..src + 4]);
                    }
                }
            }
        }
    }
    out
}

/// Q3_K tile-block (16 rows, 1,824 bytes): the 16 f16 d, the 16 scales unpacked to i8 as
/// [sub-block][row] (the 12 packed bytes become 16: 3.6% more than the GGUF blocks), the
/// 2-bit values as Q2_K's tiles hold them (for each half j and group g, row r's bytes
/// `qs[32j+4g..+4]`), then the high bits: for each group g, row r's bytes `hmask[4g..+4]`,
/// whose bit 4j+t belongs to the values at bit pair t of half j.
fn repack_q3k(data: &[u8], n: usize, nb: usize) -> Vec<u8> {
    let (bb, tb) = (110, tile_bytes(Kind::Q3K));
    let mut out = vec![0u8; n / 16 * nb * tb];
    for t in 0..n / 16 {
        for b in 0..nb {
            let o = &mut out[(t * nb + b) * tb..(t * nb + b + 1) * tb];
            for r in 0..16 {
                let blk = &data[((t * 16 + r) * nb + b) * bb..][..bb];
                o[2 * r..2 * r + 2].copy_from_slice(&blk[108..110]);
                let words =
                    super::q3k_scale_words(blk[96..108].try_into().expect("12 scale bytes"));
                for s in 0..16 {
                    // stored +32 (0..63): the tile holds them as i8 with the 32 taken off
                    o[32 + 16 * s + r] = words[s / 4].to_le_bytes()[s % 4].wrapping_sub(32);
                }
                for j in 0..2 {
                    for g in 0..8 {
                        let dst = 288 + (j * 8 + g) * 64 + 4 * r;
                        let src = 32 + 32 * j + 4 * g;
                        o[dst..dst + 4].copy_from_slice(&blk[src..src + 4]);
                    }
                }
                for g in 0..8 {
                    let dst = 1312 + g * 64 + 4 * r;
                    o[dst..dst + 4].copy_from_slice(&blk[4 * g..4 * g + 4]);
                }
            }
        }
    }
    out
}

/// Q4_K's 6-bit scale and minimum of sub-block `j` (llama.cpp's `get_scale_min_k4`).
fn q4k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K tile-block (16 rows, 2,368 bytes): the 16 f16 d, the 16 f16 dmin, the 8 scales and
/// the 8 minimums unpacked as [sub-block][row] bytes, then the nibbles: for each 64 values j
/// and group g (0..8), row r's bytes `qs[32j+4g..32j+4g+4]` (low nibbles: values
/// `64j+4g..+4`, high nibbles: `64j+32+4g..+4`).
fn repack_q4k(data: &[u8], n: usize, nb: usize) -> Vec<u8> {
    let (bb, tb) = (144, tile_bytes(Kind::Q4K));
    let mut out = vec![0u8; n / 16 * nb * tb];
    for t in 0..n / 16 {
        for b in 0..nb {
            let o = &mut out[(t * nb + b) * tb..(t * nb + b + 1) * tb];
            for r in 0..16 {
                let blk = &data[((t * 16 + r) * nb + b) * bb..][..bb];
                o[2 * r..2 * r + 2].copy_from_slice(&blk[0..2]);
                o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[2..4]);
                for j in 0..8 {
                    let (sc, mn) = q4k_scale_min(j, &blk[4..16]);
                    o[64 + 16 * j + r] = sc;
                    o[192 + 16 * j + r] = mn;
                }
                for j in 0..4 {
                    for g in 0..8 {
                        let dst = 320 + (j * 8 + g) * 64 + 4 * r;
                        let src = 16 + 32 * j + 4 * g;
                        o[dst..dst + 4].copy_from_slice(&blk[src..src + 4]);
                    }
                }
            }
        }
    }
    out
}

/// Q6_K tile-block (16 rows × 210 bytes): the 16 f16 d, the 16 i8 scales as [sub-block][row],
/// the low nibbles: for each half n, 32 bytes h and group g, row r's bytes
/// `ql[64n+32h+4g..+4]`, then the high bit pairs: for each half n and group g, row r's bytes
/// `qh[32n+4g..+4]`.
fn repack_q6k(data: &[u8], n: usize, nb: usize) -> Vec<u8> {
    let bb = 210;
    let mut out = vec![0u8; n * nb * bb];
    for t in 0..n / 16 {
        for b in 0..nb {
            let o = &mut out[(t * nb + b) * 16 * bb..(t * nb + b + 1) * 16 * bb];
            for r in 0..16 {
                let blk = &data[((t * 16 + r) * nb + b) * bb..][..bb];
                o[2 * r..2 * r + 2].copy_from_slice(&blk[208..210]);
                for s in 0..16 {
                    o[32 + 16 * s + r] = blk[192 + s];
                }
                for grp in 0..32 {
                    let dst = 288 + grp * 64 + 4 * r;
                    o[dst..dst + 4].copy_from_slice(&blk[4 * grp..4 * grp + 4]);
                }
                for grp in 0..16 {
                    let dst = 2336 + grp * 64 + 4 * r;
                    let src = 128 + 4 * grp;
                    o[dst..dst + 4].copy_from_slice(&blk[src..src + 4]);
                }
            }
        }
    }
    out
}

/// Two sub-blocks' bytes of 16 rows (`p[0..16]` and `p[16..32]`, one per row) as one i16 pair
/// per row's 32-bit lane, for `vpdpwssd` against a broadcast pair of activation sums: one
/// instruction then does what two `vpmulld` (two micro-ops each) and two adds did. `signed`
/// extends as i8, else as u8; `shift` takes the high nibble (Q2_K's minimums).
///
/// # Safety
/// AVX-512 F/BW; `p` must hold 32 readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn row_pairs(p: *const u8, signed: bool, shift: bool) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    const IDX: [i16; 32] = {
        let mut t = [0i16; 32];
        let mut r = 0;
        while r < 16 {
            t[2 * r] = r as i16;
            t[2 * r + 1] = 16 + r as i16;
            r += 1;
        }
        t
    };
    let raw = _mm256_loadu_si256(p as *const __m256i);
    let mut v = if signed {
        _mm512_cvtepi8_epi16(raw)
    } else {
        _mm512_cvtepu8_epi16(raw)
    };
    if shift {
        v = _mm512_srli_epi16(v, 4);
    }
    _mm512_permutexvar_epi16(_mm512_loadu_si512(IDX.as_ptr() as *const _), v)
}

/// One row's dot product of two sub-blocks of 4N values (`lo`, `hi`: four values of the 16
/// tile rows per vector) with the activations at `y` (`lo`'s 4N bytes, then `hi`'s), weighted
/// by the sub-blocks' scales `f0`, `f1` (as f32) and added to `acc`:
/// acc + f0·(lo·y[0..4N]) + f1·(hi·y[4N..8N]) per row. The integer sums (at most
/// 32 × 127 × 128) are exact in f32, and one `vcvtdq2ps` + FMA per sub-block costs half the
/// micro-ops of a `vpmulld` + add. With `two` (one row: decode, bound by latency) there are
/// two chains per sub-block, so it does not wait on each `vpdpbusd`, and one add, not two
/// FMAs, on `acc`'s chain; several rows interleave their chains anyway.
///
/// # Safety
/// AVX-512 F/BW/VNNI; `y` must hold 8N readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
#[inline]
unsafe fn sub_block_pair<const N: usize>(
    lo: &[std::arch::x86_64::__m512i; N],
    hi: &[std::arch::x86_64::__m512i; N],
    y: *const i32,
    f0: std::arch::x86_64::__m512,
    f1: std::arch::x86_64::__m512,
    acc: std::arch::x86_64::__m512,
    two: bool,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let (l, h) = sub_block_dots(lo, hi, y, two);
    if two {
        // one add on the loop-carried chain instead of two FMAs (decode is latency-bound)
        let t = _mm512_mul_ps(_mm512_cvtepi32_ps(l), f0);
        _mm512_add_ps(acc, _mm512_fmadd_ps(_mm512_cvtepi32_ps(h), f1, t))
    } else {
        let acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), f0, acc);
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(h), f1, acc)
    }
}

/// The two sub-blocks' integer dot products of the 16 rows (`lo`·y[0..4N], `hi`·y[4N..8N]),
/// with two chains each when `two` (one row: decode, bound by `vpdpbusd`'s latency).
///
/// # Safety
/// AVX-512 F/BW/VNNI; `y` must hold 8N readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn sub_block_dots<const N: usize>(
    lo: &[std::arch::x86_64::__m512i; N],
    hi: &[std::arch::x86_64::__m512i; N],
    y: *const i32,
    two: bool,
) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i) {
    use std::arch::x86_64::*;
    let chains = if two { 2 } else { 1 };
    let mut l = [_mm512_setzero_si512(); 2];
    let mut h = [_mm512_setzero_si512(); 2];
    for g in 0..N {
        let yl = _mm512_set1_epi32(y.add(g).read_unaligned());
        let yh = _mm512_set1_epi32(y.add(N + g).read_unaligned());
        l[g % chains] = _mm512_dpbusd_epi32(l[g % chains], lo[g], yl);
        h[g % chains] = _mm512_dpbusd_epi32(h[g % chains], hi[g], yh);
    }
    if two {
        (_mm512_add_epi32(l[0], l[1]), _mm512_add_epi32(h[0], h[1]))
    } else {
        (l[0], h[0])
    }
}

/// As `sub_block_pair` for Q2_K and Q3_K, in integers: the two sub-blocks' sums (at most
/// 16 × 7 × 128, an i16) packed as one i16 pair per row's lane, then one `vpdpwssd` against the
/// rows' scale pairs `sc` (as `row_pairs` makes them) adds s0·lo·y + s1·hi·y to `acc`. Three
/// micro-ops where the float form takes two scale conversions, two `vcvtdq2ps`, a multiply,
/// an FMA and an add; the sum is the same (both exact).
///
/// # Safety
/// AVX-512 F/BW/VNNI; `y` must hold 8N readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn sub_block_pair_int<const N: usize>(
    lo: &[std::arch::x86_64::__m512i; N],
    hi: &[std::arch::x86_64::__m512i; N],
    y: *const i32,
    sc: std::arch::x86_64::__m512i,
    acc: std::arch::x86_64::__m512i,
    two: bool,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let (l, h) = sub_block_dots(lo, hi, y, two);
    // low half of each lane: l's low 16 bits; high half: h's
    let packed = _mm512_mask_blend_epi16(0xAAAA_AAAA, l, _mm512_slli_epi32::<16>(h));
    _mm512_dpwssd_epi32(acc, packed, sc)
}

/// Every activation row `a0..a0+R` against one pair of sub-blocks (`lo`, `hi` as
/// `sub_block_pair` takes them), the activations from column `col` of each row, the sums
/// added to `fsum`.
///
/// # Safety
/// AVX-512 F/BW/VNNI; `col + 8N <= a.k` and `a0 + R <= a.m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_pair<const N: usize, const R: usize>(
    lo: &[std::arch::x86_64::__m512i; N],
    hi: &[std::arch::x86_64::__m512i; N],
    f0: std::arch::x86_64::__m512,
    f1: std::arch::x86_64::__m512,
    a: &QActs,
    a0: usize,
    col: usize,
    fsum: &mut [std::arch::x86_64::__m512; R],
) {
    for (r, fs) in fsum.iter_mut().enumerate() {
        let y = a.qs.as_ptr().add((a0 + r) * a.k + col) as *const i32;
        *fs = sub_block_pair(lo, hi, y, f0, f1, *fs, R == 1);
    }
}

/// Halves of eight vectors: values 0..16 and 16..32 of a 32-value span.
#[cfg(target_arch = "x86_64")]
#[inline]
fn halves(
    v: [std::arch::x86_64::__m512i; 8],
) -> (
    [std::arch::x86_64::__m512i; 4],
    [std::arch::x86_64::__m512i; 4],
) {
    ([v[0], v[1], v[2], v[3]], [v[4], v[5], v[6], v[7]])
}

/// Whether the CPU has GFNI, whose `vgf2p8affineqb` moves and masks bit fields within each
/// byte in one instruction (a shift and an AND without it). std caches the answer.
#[cfg(target_arch = "x86_64")]
fn gfni() -> bool {
    #[cfg(test)]
    if NO_GFNI.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    is_x86_feature_detected!("gfni")
}

/// Set by a test to run the kernels' path for CPUs without GFNI on one that has it.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) static NO_GFNI: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Each byte of `x` times the bit matrix `a` (`vgf2p8affineqb`, GFNI): output bit i is the
/// parity of the byte AND-ed with `a`'s byte 7 − i, so a matrix with one bit per row moves
/// bits and clears the rest. Inline assembly, so that only this instruction needs GFNI: the
/// kernels around it stay compiled for AVX-512 alone (a `gfni` target feature on them would let
/// the compiler use GFNI anywhere in them, also on the CPUs without it, which never get here).
///
/// # Safety
/// AVX-512 F and GFNI (`gfni()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gf_bits(x: std::arch::x86_64::__m512i, a: u64) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let m = _mm512_set1_epi64(a as i64);
    let out: __m512i;
    std::arch::asm!(
        "vgf2p8affineqb {o}, {x}, {m}, 0",
        o = lateout(zmm_reg) out,
        x = in(zmm_reg) x,
        m = in(zmm_reg) m,
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}

/// The 16 rows' scale bytes at `p` (one per row) as f32: signed, or unsigned with only the
/// low nibble kept (`low_nibble`, Q2_K's packed scale/min bytes).
///
/// # Safety
/// AVX-512 F; `p` must hold 16 readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row_scales(p: *const u8, low_nibble: bool) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let raw = _mm_loadu_si128(p as *const __m128i);
    let v = if low_nibble {
        _mm512_and_si512(_mm512_cvtepu8_epi32(raw), _mm512_set1_epi32(0xF))
    } else {
        _mm512_cvtepi8_epi32(raw)
    };
    _mm512_cvtepi32_ps(v)
}

/// The 2-bit field `T` (bits 2T, 2T+1) of every byte of the eight 64-byte vectors at `qs`,
/// as bytes 0..3: Q2_K's values, Q3_K's low bits. The shifts are immediates (one micro-op;
/// a shift by a register count is two).
///
/// # Safety
/// AVX-512 F/BW; `qs` must hold 512 readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn two_bit_values<const T: usize, const GF: bool>(
    qs: *const u8,
) -> [std::arch::x86_64::__m512i; 8] {
    use std::arch::x86_64::*;
    let m3 = _mm512_set1_epi8(3);
    std::array::from_fn(|g| {
        let raw = _mm512_loadu_si512(qs.add(64 * g) as *const _);
        if T == 0 {
            return _mm512_and_si512(raw, m3);
        }
        if GF {
            // bits 2T, 2T+1 to bits 0, 1, the rest cleared: one instruction for two
            return gf_bits(
                raw,
                ((1u64 << (2 * T)) << 56) | ((1u64 << (2 * T + 1)) << 48),
            );
        }
        let v = match T {
            1 => _mm512_srli_epi16::<2>(raw),
            2 => _mm512_srli_epi16::<4>(raw),
            _ => _mm512_srli_epi16::<6>(raw),
        };
        _mm512_and_si512(v, m3)
    })
}

/// Σ over sub-blocks of (per-row value in `pairs`, as `row_pairs` packs two sub-blocks) ×
/// the activations' sum of 16 at `bs` (one i16 per sub-block, in the same order).
///
/// # Safety
/// AVX-512 F/BW/VNNI; `bs` must hold `2 * N` readable i16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn pair_sums<const N: usize>(
    pairs: &[std::arch::x86_64::__m512i; N],
    bs: *const i16,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_si512();
    for (j, p) in pairs.iter().enumerate() {
        let y = _mm512_set1_epi32((bs.add(2 * j) as *const i32).read_unaligned());
        acc = _mm512_dpwssd_epi32(acc, *p, y);
    }
    acc
}

/// Q4_K tile of 16 rows against Q8_K activation rows `a0..a0+R`.
///
/// # Safety
/// As `tile`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma")]
unsafe fn tile_q4k<const R: usize>(
    w: *const u8,
    nb: usize,
    a: &QActs,
    a0: usize,
    res: &mut [[f32; 16]; 4],
) {
    use std::arch::x86_64::*;
    let tb = tile_bytes(Kind::Q4K);
    let m4 = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..nb {
        let p = w.add(b * tb);
        if R == 1 {
            prefetch_stream(p, tb);
        }
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
        let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32) as *const __m256i));
        let qs = p.add(320);
        let mut fsum = [_mm512_setzero_ps(); R];
        for j in 0..4 {
            // sub-block 2j in the low nibbles, 2j+1 in the high
            let raw: [__m512i; 8] =
                std::array::from_fn(|g| _mm512_loadu_si512(qs.add((j * 8 + g) * 64) as *const _));
            let lo: [__m512i; 8] = std::array::from_fn(|g| _mm512_and_si512(raw[g], m4));
            let hi: [__m512i; 8] =
                std::array::from_fn(|g| _mm512_and_si512(_mm512_srli_epi16::<4>(raw[g]), m4));
            let f0 = row_scales(p.add(64 + 32 * j), false);
            let f1 = row_scales(p.add(64 + 32 * j + 16), false);
            rows_pair(&lo, &hi, f0, f1, a, a0, b * 256 + 64 * j, &mut fsum);
        }
        let min_pairs: [__m512i; 4] =
            std::array::from_fn(|j| row_pairs(p.add(192 + 32 * j), false, false));
        for (r, accr) in acc.iter_mut().enumerate() {
            let blk = (a0 + r) * nb + b;
            let bs = a.bsums.as_ptr().add(blk * 16);
            let mut msum = _mm512_setzero_si512();
            for (j, mp) in min_pairs.iter().enumerate() {
                // sums of 32 activations (at most 32 × 128) fit an i16
                let s0 = (*bs.add(4 * j) as i32 + *bs.add(4 * j + 1) as i32) as u16 as u32;
                let s1 = (*bs.add(4 * j + 2) as i32 + *bs.add(4 * j + 3) as i32) as u16 as u32;
                let y = _mm512_set1_epi32((s0 | (s1 << 16)) as i32);
                msum = _mm512_dpwssd_epi32(msum, *mp, y);
            }
            let dy = _mm512_set1_ps(*a.d.get_unchecked(blk));
            *accr = _mm512_fmadd_ps(fsum[r], _mm512_mul_ps(d, dy), *accr);
            *accr = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmin, dy), *accr);
        }
    }
    for (r, v) in acc.iter().enumerate() {
        _mm512_storeu_ps(res[r].as_mut_ptr(), *v);
    }
}

/// The 16-value sub-block kinds as const parameters of their shared kernel (`tile_k16`).
#[cfg(target_arch = "x86_64")]
const K2: u8 = 2;
#[cfg(target_arch = "x86_64")]
const K3: u8 = 3;
#[cfg(target_arch = "x86_64")]
const K6: u8 = 6;

#[cfg(target_arch = "x86_64")]
fn k16_kind(k: u8) -> Kind {
    match k {
        K2 => Kind::Q2K,
        K3 => Kind::Q3K,
        _ => Kind::Q6K,
    }
}

/// Bytes of one tile-block's values unpacked to one byte each (Q2_K, Q3_K, Q6_K): eight
/// quarters of eight 64-byte vectors, in the order the kernels take them.
pub const UNPACKED_BLOCK: usize = 4096;

/// Whether `unpack` exists for this kind: prefill then unpacks each tile once for all its
/// activation rows instead of once per four.
pub fn has_unpack(kind: Kind) -> bool {
    matches!(kind, Kind::Q2K | Kind::Q3K | Kind::Q6K)
}

/// The values of quarter `T` (32 values) of half `h` of a Q2_K, Q3_K or Q6_K tile-block at
/// `p`, one byte each, four values of the 16 rows per vector:
/// - Q6_K: 0..63. The low nibbles come from `ql` (shifted for T >= 2); the bit pair T of `qh`
///   is moved to bits 4..5 by one immediate shift (none for T = 2) and merged by one
///   `vpternlogd`.
/// - Q3_K: 0..7, the high bit (`hm`, bit 4h+T) added as 4 by `vpaddb` under a `vptestmb`
///   mask.
/// - Q2_K: 0..3.
///
/// # Safety
/// AVX-512 F/BW; `p` is a whole tile-block of `kind`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn quarter_values<const T: usize, const K: u8, const GF: bool>(
    p: *const u8,
    h: usize,
    hm: &[std::arch::x86_64::__m512i; 8],
) -> [std::arch::x86_64::__m512i; 8] {
    use std::arch::x86_64::*;
    match K {
        K6 => {
            let m4 = _mm512_set1_epi8(0x0F);
            let m30 = _mm512_set1_epi8(0x30);
            let ql = p.add(288 + (h * 2 + T % 2) * 512);
            let qh = p.add(2336 + h * 512);
            std::array::from_fn(|g| {
                let l = _mm512_loadu_si512(ql.add(64 * g) as *const _);
                let q = _mm512_loadu_si512(qh.add(64 * g) as *const _);
                let l = if T >= 2 { _mm512_srli_epi16::<4>(l) } else { l };
                let hb = match T {
                    0 => _mm512_slli_epi16::<4>(q),
                    1 => _mm512_slli_epi16::<2>(q),
                    2 => q,
                    _ => _mm512_srli_epi16::<2>(q),
                };
                // bits 0..3 from l, 4..5 from hb
                _mm512_ternarylogic_epi32::<0xCA>(m4, l, _mm512_and_si512(hb, m30))
            })
        }
        K3 => {
            let four = _mm512_set1_epi8(4);
            let bit = _mm512_set1_epi8((1u8 << (4 * h + T)) as i8);
            let lo = two_bit_values::<T, GF>(p.add(288 + 512 * h));
            std::array::from_fn(|g| {
                _mm512_mask_add_epi8(lo[g], _mm512_test_epi8_mask(hm[g], bit), lo[g], four)
            })
        }
        _ => two_bit_values::<T, GF>(p.add(320 + 512 * h)),
    }
}

/// Quarter `T` of half `h` of tile-block `b` (at `p`): its values (from `pre`, `unpack`'s
/// output for the whole tile, unless null), its two sub-blocks' scales, then every activation
/// row `a0..a0+R` against them into `fsum`.
///
/// # Safety
/// As `tile`; `p` is a whole tile-block of `kind`, `pre` null or `unpack`'s output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn quarter<const T: usize, const R: usize, const K: u8, const PRE: bool, const GF: bool>(
    p: *const u8,
    pre: *const u8,
    b: usize,
    h: usize,
    hm: &[std::arch::x86_64::__m512i; 8],
    a: &QActs,
    a0: usize,
    fsum: &mut [std::arch::x86_64::__m512; R],
    isum: &mut [std::arch::x86_64::__m512i; R],
) {
    use std::arch::x86_64::*;
    let v = if !PRE {
        quarter_values::<T, K, GF>(p, h, hm)
    } else {
        let q = pre.add(b * UNPACKED_BLOCK + (4 * h + T) * 512);
        std::array::from_fn(|g| _mm512_loadu_si512(q.add(64 * g) as *const _))
    };
    let s = 8 * h + 2 * T;
    let (lo, hi) = halves(v);
    let col = b * 256 + 128 * h + 32 * T;
    if K == K6 {
        // Q6_K's sums of 16 (up to 16 × 63 × 128) do not fit an i16: scaled in f32
        let f0 = row_scales(p.add(32 + 16 * s), false);
        let f1 = row_scales(p.add(48 + 16 * s), false);
        rows_pair(&lo, &hi, f0, f1, a, a0, col, fsum);
        return;
    }
    let sc = if K == K2 {
        // the scale is the low nibble of Q2_K's scale/min byte
        _mm512_and_si512(
            row_pairs(p.add(64 + 16 * s), false, false),
            _mm512_set1_epi16(0xF),
        )
    } else {
        row_pairs(p.add(32 + 16 * s), true, false)
    };
    for (r, is) in isum.iter_mut().enumerate() {
        let y = a.qs.as_ptr().add((a0 + r) * a.k + col) as *const i32;
        *is = sub_block_pair_int(&lo, &hi, y, sc, *is, R == 1);
    }
}

/// Unpack the `nb` tile-blocks of one Q2_K, Q3_K or Q6_K tile at `w` into `out`
/// (`nb * UNPACKED_BLOCK` bytes), for `tile` to read instead of unpacking per activation rows.
///
/// # Safety
/// AVX-512 F/BW; `w` must hold the tile's `nb` tile-blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn unpack(kind: Kind, w: *const u8, nb: usize, out: &mut [u8]) {
    assert!(out.len() >= nb * UNPACKED_BLOCK);
    match (kind, gfni()) {
        (Kind::Q2K, false) => unpack_k::<K2, false>(w, nb, out),
        (Kind::Q2K, true) => unpack_k::<K2, true>(w, nb, out),
        (Kind::Q3K, false) => unpack_k::<K3, false>(w, nb, out),
        (Kind::Q3K, true) => unpack_k::<K3, true>(w, nb, out),
        (Kind::Q6K, _) => unpack_k::<K6, false>(w, nb, out),
        _ => panic!("no unpack for {kind:?}"),
    }
}

/// `unpack` for one kind (`K2`, `K3`, `K6`).
///
/// # Safety
/// As `unpack`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_k<const K: u8, const GF: bool>(w: *const u8, nb: usize, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let kind = k16_kind(K);
    let tb = tile_bytes(kind);
    for b in 0..nb {
        let p = w.add(b * tb);
        let hm = block_high_bits::<K>(p);
        let o = out.as_mut_ptr().add(b * UNPACKED_BLOCK);
        for h in 0..2 {
            let vs = [
                quarter_values::<0, K, GF>(p, h, &hm),
                quarter_values::<1, K, GF>(p, h, &hm),
                quarter_values::<2, K, GF>(p, h, &hm),
                quarter_values::<3, K, GF>(p, h, &hm),
            ];
            for (t, v) in vs.iter().enumerate() {
                for (g, x) in v.iter().enumerate() {
                    _mm512_storeu_si512(o.add((4 * h + t) * 512 + 64 * g) as *mut _, *x);
                }
            }
        }
    }
}

/// Q3_K's high-bit vectors of the tile-block at `p` (zeros for other kinds).
///
/// # Safety
/// AVX-512 F; `p` is a whole tile-block of `kind`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block_high_bits<const K: u8>(p: *const u8) -> [std::arch::x86_64::__m512i; 8] {
    use std::arch::x86_64::*;
    if K == K3 {
        std::array::from_fn(|g| _mm512_loadu_si512(p.add(1312 + 64 * g) as *const _))
    } else {
        [_mm512_setzero_si512(); 8]
    }
}

/// Q2_K, Q3_K or Q6_K tile of 16 rows against Q8_K activation rows `a0..a0+R`, the values
/// unpacked here or read from `pre` (`unpack`'s output, or null). Values go unsigned through
/// `vpdpbusd`; what that leaves out comes off through the activations' sums of 16: Q6_K's
/// stored +32 (32 × Σ scale × sum), Q3_K's −4 where the high bit is clear (llama.cpp's
/// convention; 4 × Σ scale × sum), Q2_K's minimums (dmin × Σ min × sum).
///
/// # Safety
/// As `tile`; `pre` null or `unpack`'s output for this tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_k16<const R: usize, const K: u8, const PRE: bool, const GF: bool>(
    w: *const u8,
    pre: *const u8,
    nb: usize,
    a: &QActs,
    a0: usize,
    res: &mut [[f32; 16]; 4],
) {
    use std::arch::x86_64::*;
    let kind = k16_kind(K);
    let tb = tile_bytes(kind);
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..nb {
        let p = w.add(b * tb);
        if R == 1 {
            prefetch_stream(p, tb);
        }
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
        let hm = if !PRE {
            block_high_bits::<K>(p)
        } else {
            [_mm512_setzero_si512(); 8]
        };
        let mut fsum = [_mm512_setzero_ps(); R];
        let mut isum = [_mm512_setzero_si512(); R];
        for h in 0..2 {
            quarter::<0, R, K, PRE, GF>(p, pre, b, h, &hm, a, a0, &mut fsum, &mut isum);
            quarter::<1, R, K, PRE, GF>(p, pre, b, h, &hm, a, a0, &mut fsum, &mut isum);
            quarter::<2, R, K, PRE, GF>(p, pre, b, h, &hm, a, a0, &mut fsum, &mut isum);
            quarter::<3, R, K, PRE, GF>(p, pre, b, h, &hm, a, a0, &mut fsum, &mut isum);
        }
        if K == K2 {
            let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32) as *const __m256i));
            let min_pairs: [__m512i; 8] =
                std::array::from_fn(|j| row_pairs(p.add(64 + 32 * j), false, true));
            for (r, accr) in acc.iter_mut().enumerate() {
                let blk = (a0 + r) * nb + b;
                let msum = pair_sums(&min_pairs, a.bsums.as_ptr().add(blk * 16));
                let dy = _mm512_set1_ps(*a.d.get_unchecked(blk));
                let sum = _mm512_cvtepi32_ps(isum[r]);
                *accr = _mm512_fmadd_ps(sum, _mm512_mul_ps(d, dy), *accr);
                *accr = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmin, dy), *accr);
            }
        } else {
            let scale_pairs: [__m512i; 8] =
                std::array::from_fn(|j| row_pairs(p.add(32 + 32 * j), true, false));
            for (r, accr) in acc.iter_mut().enumerate() {
                let blk = (a0 + r) * nb + b;
                let off = pair_sums(&scale_pairs, a.bsums.as_ptr().add(blk * 16));
                let sum = if K == K6 {
                    // Q6_K's values are stored +32: 32 × Σ scale × sum of 16 off
                    _mm512_fnmadd_ps(_mm512_cvtepi32_ps(off), _mm512_set1_ps(32.0), fsum[r])
                } else {
                    // Q3_K: all integer, 4 × Σ scale × sum of 16 off (at most 16 × 32 × 14336)
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r], _mm512_slli_epi32::<2>(off)))
                };
                let dy = _mm512_set1_ps(*a.d.get_unchecked(blk));
                *accr = _mm512_fmadd_ps(sum, _mm512_mul_ps(d, dy), *accr);
            }
        }
    }
    for (r, v) in acc.iter().enumerate() {
        _mm512_storeu_ps(res[r].as_mut_ptr(), *v);
    }
}

/// Row `i` of a tiled matrix of `nb` blocks, dequantized into `out` (a token-embedding
/// lookup from the same bytes the output layer multiplies).
pub fn dequantize_row(kind: Kind, w: &[u8], nb: usize, i: usize, out: &mut [f32]) {
    let tb = tile_bytes(kind);
    let (t, r) = (i / 16, i % 16);
    let f16 = |b: &[u8], j: usize| half::f16::from_le_bytes([b[2 * j], b[2 * j + 1]]).to_f32();
    for b in 0..nb {
        let p = &w[(t * nb + b) * tb..][..tb];
        let d = f16(p, r);
        let (m, qh, qs) = match kind {
            Kind::Q4_0 => (0.0, 0u32, &p[32..]),
            Kind::Q4_1 => (f16(&p[32..], r), 0, &p[64..]),
            Kind::Q5_0 => (
                0.0,
                u32::from_le_bytes([p[32 + 4 * r], p[33 + 4 * r], p[34 + 4 * r], p[35 + 4 * r]]),
                &p[96..],
            ),
            Kind::Q5_1 => (
                f16(&p[32..], r),
                u32::from_le_bytes([p[64 + 4 * r], p[65 + 4 * r], p[66 + 4 * r], p[67 + 4 * r]]),
                &p[128..],
            ),
            _ => (0.0, 0, &p[32..]),
        };
        let o = &mut out[b * 32..(b + 1) * 32];
        for (j, v) in o.iter_mut().enumerate() {
            *v = if kind == Kind::Q8_0 {
                d * ((qs[(j / 4) * 64 + 4 * r + j % 4] ^ 0x80) as i8) as f32
            } else {
                let byte = qs[((j % 16) / 4) * 64 + 4 * r + j % 4];
                let nib = if j < 16 { byte & 0x0F } else { byte >> 4 } as i32;
                let q = nib | ((((qh >> j) & 1) as i32) << 4);
                match kind {
                    Kind::Q4_0 => d * (q - 8) as f32,
                    Kind::Q5_0 => d * (q - 16) as f32,
                    _ => d * q as f32 + m,
                }
            };
        }
    }
}

/// Outputs of tile `t` (16 rows) for activation rows `a0..a0+R` into `res[r][0..16]`; for
/// the kinds of `has_unpack`, the values from `pre` (`unpack`'s output for this tile) unless
/// it is null.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `w` must hold the tile's `nb` tile-blocks,
/// `pre` be null or `unpack`'s output for them, and `a0 + R <= a.m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma")]
pub unsafe fn tile<const R: usize>(
    kind: Kind,
    w: *const u8,
    pre: *const u8,
    nb: usize,
    a: &QActs,
    a0: usize,
    res: &mut [[f32; 16]; 4],
) {
    use std::arch::x86_64::*;
    match kind {
        Kind::Q2K | Kind::Q3K | Kind::Q6K => {
            // kind and `pre`'s presence as const parameters: each instance compiles without
            // the other kinds' branches and without a test per quarter
            return match (kind, pre.is_null(), gfni()) {
                (Kind::Q2K, true, false) => tile_k16::<R, K2, false, false>(w, pre, nb, a, a0, res),
                (Kind::Q2K, false, false) => tile_k16::<R, K2, true, false>(w, pre, nb, a, a0, res),
                (Kind::Q2K, true, true) => tile_k16::<R, K2, false, true>(w, pre, nb, a, a0, res),
                (Kind::Q2K, false, true) => tile_k16::<R, K2, true, true>(w, pre, nb, a, a0, res),
                (Kind::Q3K, true, false) => tile_k16::<R, K3, false, false>(w, pre, nb, a, a0, res),
                (Kind::Q3K, false, false) => tile_k16::<R, K3, true, false>(w, pre, nb, a, a0, res),
                (Kind::Q3K, true, true) => tile_k16::<R, K3, false, true>(w, pre, nb, a, a0, res),
                (Kind::Q3K, false, true) => tile_k16::<R, K3, true, true>(w, pre, nb, a, a0, res),
                // Q6_K's fields are nibbles and bit pairs at other places: shifts measured
                // faster there than `vgf2p8affineqb` (94 against 80 GOP/s, one row, 1536×1536)
                (_, true, _) => tile_k16::<R, K6, false, false>(w, pre, nb, a, a0, res),
                (_, false, _) => tile_k16::<R, K6, true, false>(w, pre, nb, a, a0, res),
            };
        }
        Kind::Q4K => return tile_q4k::<R>(w, nb, a, a0, res),
        _ => {}
    }
    let tb = tile_bytes(kind);
    let k = a.k;
    let m4 = _mm512_set1_epi8(0x0F);
    let spread = _mm512_set1_epi32(0x0020_4081);
    let ones = _mm512_set1_epi32(0x0101_0101);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut wg = [_mm512_setzero_si512(); 8];
    for b in 0..nb {
        let p = w.add(b * tb);
        if R == 1 {
            prefetch_stream(p, tb);
        }
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
        let (mw, hi, qs, offset) = match kind {
            Kind::Q4_0 => (None, None, p.add(32), 8),
            Kind::Q4_1 => (Some(p.add(32)), None, p.add(64), 0),
            Kind::Q5_0 => (None, Some(p.add(32)), p.add(96), 16),
            Kind::Q5_1 => (Some(p.add(32)), Some(p.add(64)), p.add(128), 0),
            _ => (None, None, p.add(32), 128),
        };
        if kind == Kind::Q8_0 {
            for (g, v) in wg.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(qs.add(64 * g) as *const _);
            }
        } else {
            for g in 0..4 {
                let v = _mm512_loadu_si512(qs.add(64 * g) as *const _);
                wg[g] = _mm512_and_si512(v, m4);
                wg[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
            if let Some(h) = hi {
                let h = _mm512_loadu_si512(h as *const _);
                for (g, v) in wg.iter_mut().enumerate() {
                    // bits 4g..4g+3 of each row's word → 0x10 in bytes 0..3 of its lane
                    let t = _mm512_and_si512(
                        _mm512_srlv_epi32(h, _mm512_set1_epi32(4 * g as i32)),
                        _mm512_set1_epi32(0xF),
                    );
                    let s = _mm512_and_si512(_mm512_mullo_epi32(t, spread), ones);
                    *v = _mm512_or_si512(*v, _mm512_slli_epi32(s, 4));
                }
            }
        }
        let mwv = mw.map(|m| _mm512_cvtph_ps(_mm256_loadu_si256(m as *const __m256i)));
        for (r, accr) in acc.iter_mut().enumerate() {
            let row = a0 + r;
            let y = a.qs.as_ptr().add(row * k + b * 32) as *const i32;
            // Four independent chains of two: one chain of eight waits on each vpdpbusd's
            // latency, which is what bounds a single row (decode).
            let mut s = [_mm512_setzero_si512(); 4];
            for (g, v) in wg.iter().enumerate() {
                let yg = _mm512_set1_epi32(y.add(g).read_unaligned());
                s[g % 4] = _mm512_dpbusd_epi32(s[g % 4], *v, yg);
            }
            let mut isum =
                _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(s[2], s[3]));
            let blk = row * (k / 32) + b;
            if offset != 0 {
                let corr = offset * *a.sum.get_unchecked(blk);
                isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(corr));
            }
            let dy = _mm512_set1_ps(*a.d.get_unchecked(blk));
            *accr = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, dy), *accr);
            if let Some(m) = mwv {
                *accr = _mm512_fmadd_ps(m, _mm512_set1_ps(*a.s.get_unchecked(blk)), *accr);
            }
        }
    }
    for (r, v) in acc.iter().enumerate() {
        _mm512_storeu_ps(res[r].as_mut_ptr(), *v);
    }
}
