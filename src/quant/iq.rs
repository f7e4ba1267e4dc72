//! Dequantization of the GGUF tensor types candle has no kernels for: the i-quants (IQ1_S, IQ1_M,
//! IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS), the ternary TQ1_0 and TQ2_0, and
//! MXFP4. This module owns their block layouts, sizes and ggml type ids, and turns whole blocks
//! into f32 bit for bit as llama.cpp's `dequantize_row_*` (ggml's `ggml-quants.c`) does: the same
//! float operations in the same order, f16 scales widened exactly, grids read as little-endian
//! bytes. The codebooks the blocks index into are generated data (`iq_tables`). Quantizing to
//! these types, and running the dequantized weights, are other modules' business.

use anyhow::{bail, Result};
use half::f16;
use rayon::prelude::*;

use super::iq_tables::{
    IQ1S_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KMASK_IQ2XS,
    KSIGNS_IQ2XS, KVALUES_FP4,
};

/// Values per super-block (ggml's `QK_K`).
const QK_K: usize = 256;
/// Values per IQ4_NL block (`QK4_NL`).
const QK4_NL: usize = 32;
/// Values per MXFP4 block (`QK_MXFP4`).
const QK_MXFP4: usize = 32;
/// Blocks per parallel work item.
const BLOCKS_PER_TASK: usize = 256;

/// A GGUF tensor type qeval dequantizes itself (candle has no kernels for these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    Iq4Nl,
    Iq4Xs,
    Iq3Xxs,
    Iq3S,
    Iq2Xxs,
    Iq2Xs,
    Iq2S,
    Iq1S,
    Iq1M,
    Tq1_0,
    Tq2_0,
    Mxfp4,
}

impl IqType {
    /// Every type, in the order of the enum.
    pub const ALL: [IqType; 12] = [
        IqType::Iq4Nl,
        IqType::Iq4Xs,
        IqType::Iq3Xxs,
        IqType::Iq3S,
        IqType::Iq2Xxs,
        IqType::Iq2Xs,
        IqType::Iq2S,
        IqType::Iq1S,
        IqType::Iq1M,
        IqType::Tq1_0,
        IqType::Tq2_0,
        IqType::Mxfp4,
    ];

    /// The type whose `enum ggml_type` number (ggml.h) is `id`, if it is one of these.
    pub fn from_ggml_id(id: u32) -> Option<IqType> {
        IqType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// The `enum ggml_type` number (`GGML_TYPE_IQ2_XXS` = 16 ...), as GGUF stores it.
    pub fn ggml_id(self) -> u32 {
        match self {
            IqType::Iq2Xxs => 16,
            IqType::Iq2Xs => 17,
            IqType::Iq3Xxs => 18,
            IqType::Iq1S => 19,
            IqType::Iq4Nl => 20,
            IqType::Iq3S => 21,
            IqType::Iq2S => 22,
            IqType::Iq4Xs => 23,
            IqType::Iq1M => 29,
            IqType::Tq1_0 => 34,
            IqType::Tq2_0 => 35,
            IqType::Mxfp4 => 39,
        }
    }

    /// ggml's name of the type (`type_name` in ggml.c).
    pub fn name(self) -> &'static str {
        match self {
            IqType::Iq4Nl => "iq4_nl",
            IqType::Iq4Xs => "iq4_xs",
            IqType::Iq3Xxs => "iq3_xxs",
            IqType::Iq3S => "iq3_s",
            IqType::Iq2Xxs => "iq2_xxs",
            IqType::Iq2Xs => "iq2_xs",
            IqType::Iq2S => "iq2_s",
            IqType::Iq1S => "iq1_s",
            IqType::Iq1M => "iq1_m",
            IqType::Tq1_0 => "tq1_0",
            IqType::Tq2_0 => "tq2_0",
            IqType::Mxfp4 => "mxfp4",
        }
    }

    /// Values per block.
    pub fn block_elems(self) -> usize {
        match self {
            IqType::Iq4Nl => QK4_NL,
            IqType::Mxfp4 => QK_MXFP4,
            _ => QK_K,
        }
    }

    /// Bytes per block (`sizeof(block_*)` in ggml-common.h).
    pub fn block_bytes(self) -> usize {
        match self {
            // d, qs[16]
            IqType::Iq4Nl => 2 + QK4_NL / 2,
            // d, scales_h, scales_l[4], qs[128]
            IqType::Iq4Xs => 2 + 2 + QK_K / 64 + QK_K / 2,
            // d, qs[96] (grid indices, then 8 scale-and-signs words)
            IqType::Iq3Xxs => 2 + 3 * QK_K / 8,
            // d, qs[64], qh[8], signs[32], scales[4]
            IqType::Iq3S => 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64,
            // d, qs[32 x u16]
            IqType::Iq2Xxs => 2 + QK_K / 4,
            // d, qs[32 x u16], scales[8]
            IqType::Iq2Xs => 2 + QK_K / 4 + QK_K / 32,
            // d, qs[64] (grid indices, then signs), qh[8], scales[8]
            IqType::Iq2S => 2 + QK_K / 4 + QK_K / 32 + QK_K / 32,
            // d, qs[32], qh[8 x u16]
            IqType::Iq1S => 2 + QK_K / 8 + QK_K / 16,
            // qs[32], qh[16], scales[8] (the f16 scale is spread over their top nibbles)
            IqType::Iq1M => QK_K / 8 + QK_K / 16 + QK_K / 32,
            // qs[48], qh[4], d
            IqType::Tq1_0 => (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2,
            // qs[64], d
            IqType::Tq2_0 => QK_K / 4 + 2,
            // e (E8M0), qs[16]
            IqType::Mxfp4 => 1 + QK_MXFP4 / 2,
        }
    }

    fn block_fn(self) -> fn(&[u8], &mut [f32]) {
        match self {
            IqType::Iq4Nl => iq4_nl,
            IqType::Iq4Xs => iq4_xs,
            IqType::Iq3Xxs => iq3_xxs,
            IqType::Iq3S => iq3_s,
            IqType::Iq2Xxs => iq2_xxs,
            IqType::Iq2Xs => iq2_xs,
            IqType::Iq2S => iq2_s,
            IqType::Iq1S => iq1_s,
            IqType::Iq1M => iq1_m,
            IqType::Tq1_0 => tq1_0,
            IqType::Tq2_0 => tq2_0,
            IqType::Mxfp4 => mxfp4,
        }
    }
}

/// `kvalues_iq4nl`: the 16 values IQ4_NL and IQ4_XS indices stand for (the kernels' table).
pub(crate) use super::iq_tables::KVALUES_IQ4NL;

/// Dequantize one row's whole blocks on the calling thread (for kernels that already run
/// one task per row); `out.len()` must be `data.len() / block_bytes * block_elems`.
pub fn dequantize_row(t: IqType, data: &[u8], out: &mut [f32]) {
    let f = t.block_fn();
    for (b, v) in data
        .chunks_exact(t.block_bytes())
        .zip(out.chunks_exact_mut(t.block_elems()))
    {
        f(b, v);
    }
}

/// Dequantize `data` (whole blocks) into `out` (len = blocks * block_elems). Err if sizes disagree.
pub fn dequantize(t: IqType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let (bytes, elems) = (t.block_bytes(), t.block_elems());
    if !data.len().is_multiple_of(bytes) {
        bail!(
            "{} bytes are not a whole number of {}-byte {} blocks",
            data.len(),
            bytes,
            t.name()
        );
    }
    let blocks = data.len() / bytes;
    if out.len() != blocks * elems {
        bail!(
            "{blocks} {} blocks hold {} values, but the output has room for {}",
            t.name(),
            blocks * elems,
            out.len()
        );
    }
    let f = t.block_fn();
    data.par_chunks(bytes * BLOCKS_PER_TASK)
        .zip(out.par_chunks_mut(elems * BLOCKS_PER_TASK))
        .for_each(|(x, y)| {
            for (b, v) in x.chunks_exact(bytes).zip(y.chunks_exact_mut(elems)) {
                f(b, v);
            }
        });
    Ok(())
}

/// `blocks` blocks of type `t` from seeded random bytes, each with a sane scale written where
/// its layout keeps it (a random f16 scale is often huge, NaN or subnormal); a block whose
/// values still come out non-finite or above 1e3 is zeroed. For kernel tests and benchmarks,
/// whose arithmetic must not depend on real weights.
pub fn sample_blocks(t: IqType, blocks: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.max(1);
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut data: Vec<u8> = (0..blocks * t.block_bytes())
        .map(|_| next() as u8)
        .collect();
    for b in data.chunks_exact_mut(t.block_bytes()) {
        let d = f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5);
        let bits = d.to_bits();
        match t {
            IqType::Mxfp4 => b[0] = 118 + (next() % 8) as u8,
            // The f16 scale is spread over the top nibbles of the four scale words.
            IqType::Iq1M => {
                for i in 0..4 {
                    let o = 48 + 2 * i;
                    let w = u16_at(b, o) & 0x0fff | (((bits >> (4 * i)) & 0xf) << 12);
                    b[o..o + 2].copy_from_slice(&w.to_le_bytes());
                }
            }
            IqType::Tq1_0 => b[52..54].copy_from_slice(&d.to_le_bytes()),
            IqType::Tq2_0 => b[64..66].copy_from_slice(&d.to_le_bytes()),
            _ => b[..2].copy_from_slice(&d.to_le_bytes()),
        }
    }
    let mut v = vec![0f32; t.block_elems()];
    for b in data.chunks_exact_mut(t.block_bytes()) {
        t.block_fn()(b, &mut v);
        if v.iter().any(|x| !x.is_finite() || x.abs() > 1e3) {
            b.fill(0);
        }
    }
    data
}

/// The f16 (`ggml_half`) at byte `i`, widened to f32 (exact).
fn f16_at(x: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([x[i], x[i + 1]]).to_f32()
}

fn u16_at(x: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([x[i], x[i + 1]])
}

fn u32_at(x: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]])
}

/// `kvalues_iq4nl[q]` as a float.
fn iq4nl_value(q: u8) -> f32 {
    f32::from(KVALUES_IQ4NL[usize::from(q)])
}

/// A group of 8 values from a grid of unsigned magnitudes and a sign byte:
/// `y[j] = db * grid[j] * (signs & kmask_iq2xs[j] ? -1.f : 1.f)`.
fn signed_grid(v: &mut [f32], db: f32, grid: &[u8; 8], signs: u8) {
    for ((v, &g), &mask) in v.iter_mut().zip(grid).zip(&KMASK_IQ2XS) {
        *v = db * f32::from(g) * if signs & mask != 0 { -1.0 } else { 1.0 };
    }
}

/// Two 4-value grid entries side by side (iq3xxs_grid, iq3s_grid: `grid1[j]`, then `grid2[j]`).
fn grid_pair(grid1: u32, grid2: u32) -> [u8; 8] {
    (u64::from(grid1) | (u64::from(grid2) << 32)).to_le_bytes()
}

/// A group of 8 IQ1 values: `y[j] = dl * (grid[j] + delta)`, the grid's bytes being `int8_t`
/// in {-1, 0, 1}.
fn shifted_grid(v: &mut [f32], dl: f32, idx: usize, delta: f32) {
    let grid = IQ1S_GRID[idx].to_le_bytes();
    for (v, &g) in v.iter_mut().zip(&grid) {
        *v = dl * (f32::from(g as i8) + delta);
    }
}

/// `IQ1S_DELTA`, negated when `negative`.
fn iq1_delta(negative: bool) -> f32 {
    if negative {
        -IQ1S_DELTA
    } else {
        IQ1S_DELTA
    }
}

/// `ggml_e8m0_to_fp32_half`: 2^(x-128), half the E8M0 scale (the fp4 values are doubled).
pub(crate) fn e8m0_to_f32_half(x: u8) -> f32 {
    let bits = if x < 2 {
        0x0020_0000u32 << x
    } else {
        u32::from(x - 1) << 23
    };
    f32::from_bits(bits)
}

/// `dequantize_row_iq4_nl`, one block: d, then 16 bytes of two 4-bit indices.
fn iq4_nl(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let (lo, hi) = y.split_at_mut(QK4_NL / 2);
    for ((&q, a), b) in x[2..2 + QK4_NL / 2].iter().zip(lo).zip(hi) {
        *a = d * iq4nl_value(q & 0xf);
        *b = d * iq4nl_value(q >> 4);
    }
}

/// `dequantize_row_iq4_xs`, one block: d, 2 high scale bits per sub-block (`scales_h`), 4 low
/// ones (`scales_l`), then IQ4_NL-style indices, 16 bytes per sub-block of 32.
fn iq4_xs(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let scales_h = u16_at(x, 2);
    let scales_l = &x[4..4 + QK_K / 64];
    let qs = &x[4 + QK_K / 64..];
    for (ib, (q, v)) in qs.chunks_exact(16).zip(y.chunks_exact_mut(32)).enumerate() {
        let lo = i32::from((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf);
        let hi = i32::from((scales_h >> (2 * ib)) & 3);
        let ls = lo | (hi << 4);
        let dl = d * (ls - 32) as f32;
        let (v_lo, v_hi) = v.split_at_mut(16);
        for ((&q, a), b) in q.iter().zip(v_lo).zip(v_hi) {
            *a = dl * iq4nl_value(q & 0xf);
            *b = dl * iq4nl_value(q >> 4);
        }
    }
}

/// `dequantize_row_iq2_xxs`, one block: d, then per sub-block of 32 two little-endian words:
/// four grid indices (one byte each), then 4 x 7 sign-pattern bits and a 4-bit scale.
fn iq2_xxs(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    for (ib32, v32) in y.chunks_exact_mut(32).enumerate() {
        let o = 2 + 8 * ib32;
        let aux1 = u32_at(x, o + 4);
        let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let grid = IQ2XXS_GRID[usize::from(x[o + l])].to_le_bytes();
            let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
            signed_grid(v, db, &grid, signs);
        }
    }
}

/// `dequantize_row_iq2_xs`, one block: d, 32 little-endian u16 (9-bit grid index, 7-bit sign
/// pattern), then two 4-bit scales per sub-block of 32.
fn iq2_xs(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let scales = &x[2 + QK_K / 4..];
    for (ib32, v32) in y.chunks_exact_mut(32).enumerate() {
        let db = [
            d * (0.5 + f32::from(scales[ib32] & 0xf)) * 0.25,
            d * (0.5 + f32::from(scales[ib32] >> 4)) * 0.25,
        ];
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let q = u16_at(x, 2 + 2 * (4 * ib32 + l));
            let grid = IQ2XS_GRID[usize::from(q & 511)].to_le_bytes();
            let signs = KSIGNS_IQ2XS[usize::from(q >> 9)];
            signed_grid(v, db[l / 2], &grid, signs);
        }
    }
}

/// `dequantize_row_iq2_s`, one block: d, 32 low grid-index bytes, 32 sign bytes, 2 high index
/// bits per group of 8 (`qh`), then two 4-bit scales per sub-block of 32.
fn iq2_s(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qs = &x[2..2 + QK_K / 8];
    let signs = &x[2 + QK_K / 8..2 + QK_K / 4];
    let qh = &x[2 + QK_K / 4..2 + QK_K / 4 + QK_K / 32];
    let scales = &x[2 + QK_K / 4 + QK_K / 32..];
    for (ib32, v32) in y.chunks_exact_mut(32).enumerate() {
        let db = [
            d * (0.5 + f32::from(scales[ib32] & 0xf)) * 0.25,
            d * (0.5 + f32::from(scales[ib32] >> 4)) * 0.25,
        ];
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let high = (usize::from(qh[ib32]) << (8 - 2 * l)) & 0x300;
            let grid = IQ2S_GRID[usize::from(qs[4 * ib32 + l]) | high].to_le_bytes();
            signed_grid(v, db[l / 2], &grid, signs[4 * ib32 + l]);
        }
    }
}

/// `dequantize_row_iq3_xxs`, one block: d, 64 grid-index bytes (4 values each), then per
/// sub-block of 32 a little-endian word of 4 x 7 sign-pattern bits and a 4-bit scale.
fn iq3_xxs(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qs = &x[2..2 + QK_K / 4];
    for (ib32, v32) in y.chunks_exact_mut(32).enumerate() {
        let aux = u32_at(x, 2 + QK_K / 4 + 4 * ib32);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
            let grid = grid_pair(
                IQ3XXS_GRID[usize::from(qs[8 * ib32 + 2 * l])],
                IQ3XXS_GRID[usize::from(qs[8 * ib32 + 2 * l + 1])],
            );
            signed_grid(v, db, &grid, signs);
        }
    }
}

/// `dequantize_row_iq3_s`, one block: d, 64 low grid-index bytes, 1 high index bit each (`qh`),
/// 32 sign bytes, then a 4-bit scale per sub-block of 32. ggml walks the sub-blocks in pairs
/// sharing a scale byte (low nibble, then high); one by one with the matching nibble is the same.
fn iq3_s(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qs = &x[2..2 + QK_K / 4];
    let qh = &x[2 + QK_K / 4..2 + QK_K / 4 + QK_K / 32];
    let signs = &x[2 + QK_K / 4 + QK_K / 32..2 + QK_K / 4 + QK_K / 32 + QK_K / 8];
    let scales = &x[2 + QK_K / 4 + QK_K / 32 + QK_K / 8..];
    for (ib32, v32) in y.chunks_exact_mut(32).enumerate() {
        let sc = (scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xf;
        let db = d * (1 + 2 * i32::from(sc)) as f32;
        let h = usize::from(qh[ib32]);
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let i1 = usize::from(qs[8 * ib32 + 2 * l]) | ((h << (8 - 2 * l)) & 256);
            let i2 = usize::from(qs[8 * ib32 + 2 * l + 1]) | ((h << (7 - 2 * l)) & 256);
            let grid = grid_pair(IQ3S_GRID[i1], IQ3S_GRID[i2]);
            signed_grid(v, db, &grid, signs[4 * ib32 + l]);
        }
    }
}

/// `dequantize_row_iq1_s`, one block: d, 32 low grid-index bytes, then per sub-block of 32 a
/// little-endian u16: 4 x 3 high index bits, a 3-bit scale, and the sign of the delta.
fn iq1_s(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qs = &x[2..2 + QK_K / 8];
    for (ib, v32) in y.chunks_exact_mut(32).enumerate() {
        let qh = u16_at(x, 2 + QK_K / 8 + 2 * ib);
        let dl = d * (2 * i32::from((qh >> 12) & 7) + 1) as f32;
        let delta = iq1_delta(qh & 0x8000 != 0);
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let idx = usize::from(qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
            shifted_grid(v, dl, idx, delta);
        }
    }
}

/// `dequantize_row_iq1_m`, one block: 32 low grid-index bytes, a byte per two groups of 8
/// (3 high index bits and the delta's sign for each), then four little-endian u16 holding two
/// 3-bit scales per sub-block of 32 and, in their top nibbles, the block's f16 scale.
fn iq1_m(x: &[u8], y: &mut [f32]) {
    let qs = &x[..QK_K / 8];
    let qh = &x[QK_K / 8..QK_K / 8 + QK_K / 16];
    let o = QK_K / 8 + QK_K / 16;
    let sc = [
        u16_at(x, o),
        u16_at(x, o + 2),
        u16_at(x, o + 4),
        u16_at(x, o + 6),
    ];
    let scale =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = f16::from_bits(scale).to_f32();
    for (ib, v32) in y.chunks_exact_mut(32).enumerate() {
        let s = sc[ib / 2];
        let shift = 6 * (ib % 2);
        let dl1 = d * (2 * i32::from((s >> shift) & 0x7) + 1) as f32;
        let dl2 = d * (2 * i32::from((s >> (shift + 3)) & 0x7) + 1) as f32;
        let (h0, h1) = (usize::from(qh[2 * ib]), usize::from(qh[2 * ib + 1]));
        let q = &qs[4 * ib..4 * ib + 4];
        let idx = [
            usize::from(q[0]) | ((h0 << 8) & 0x700),
            usize::from(q[1]) | ((h0 << 4) & 0x700),
            usize::from(q[2]) | ((h1 << 8) & 0x700),
            usize::from(q[3]) | ((h1 << 4) & 0x700),
        ];
        let delta = [
            iq1_delta(h0 & 0x08 != 0),
            iq1_delta(h0 & 0x80 != 0),
            iq1_delta(h1 & 0x08 != 0),
            iq1_delta(h1 & 0x80 != 0),
        ];
        for (l, v) in v32.chunks_exact_mut(8).enumerate() {
            let dl = if l < 2 { dl1 } else { dl2 };
            shifted_grid(v, dl, idx[l], delta[l]);
        }
    }
}

/// One base-3 digit of a TQ1_0 byte: the byte times 3^n (wrapping, as `uint8_t`), then the top
/// of `q * 3` (`((uint16_t) q * 3) >> 8`), shifted to {-1, 0, 1}.
fn tq1_digit(byte: u8, pow3: u8) -> f32 {
    let q = byte.wrapping_mul(pow3);
    let xi = ((u16::from(q) * 3) >> 8) as i16;
    f32::from(xi - 1)
}

/// `dequantize_row_tq1_0`, one block: 48 bytes of 5 base-3 digits, 4 bytes of 4, then d.
/// Output order: for each run of bytes (32, then 16, then the 4 of `qh`), digit by digit.
fn tq1_0(x: &[u8], y: &mut [f32]) {
    const QS: usize = (QK_K - 4 * QK_K / 64) / 5;
    const QH: usize = QK_K / 64;
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let (qs, qh) = (&x[..QS], &x[QS..QS + QH]);
    let d = f16_at(x, QS + QH);
    let split = QS - QS % 32;
    let runs = qs[..split]
        .chunks_exact(32)
        .chain(qs[split..].chunks_exact(16))
        .map(|run| (run, 5))
        .chain([(qh, 4)]);
    let mut k = 0;
    for (run, digits) in runs {
        for &p in &POW3[..digits] {
            for &q in run {
                y[k] = tq1_digit(q, p) * d;
                k += 1;
            }
        }
    }
}

/// `dequantize_row_tq2_0`, one block: 64 bytes of four 2-bit values, then d. Each run of 32
/// bytes gives 128 values, bit pair by bit pair.
fn tq2_0(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, QK_K / 4);
    for (run, v128) in x[..QK_K / 4].chunks_exact(32).zip(y.chunks_exact_mut(128)) {
        for (l, v) in v128.chunks_exact_mut(32).enumerate() {
            for (v, &q) in v.iter_mut().zip(run) {
                let q = ((q >> (2 * l)) & 3) as i8;
                *v = f32::from(q - 1) * d;
            }
        }
    }
}

/// `dequantize_row_mxfp4`, one block: the E8M0 exponent, then 16 bytes of two 4-bit indices
/// into the (doubled) E2M1 values.
fn mxfp4(x: &[u8], y: &mut [f32]) {
    let d = e8m0_to_f32_half(x[0]);
    let (lo, hi) = y.split_at_mut(QK_MXFP4 / 2);
    for ((&q, a), b) in x[1..1 + QK_MXFP4 / 2].iter().zip(lo).zip(hi) {
        *a = f32::from(KVALUES_FP4[usize::from(q & 0x0f)]) * d;
        *b = f32::from(KVALUES_FP4[usize::from(q >> 4)]) * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/iq")
            .join(name)
    }

    /// Dequantizes `STEM.bin` as `t` and compares it bit for bit with `STEM.f32`.
    fn check_fixture(t: IqType, stem: &str) {
        let data = std::fs::read(fixture(&format!("{stem}.bin")))
            .expect("generated fixture missing: run scripts/make-fixtures.sh (.ci/run does)");
        let want: Vec<u32> = std::fs::read(fixture(&format!("{stem}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert!(!data.is_empty());
        assert_eq!(
            data.len() / t.block_bytes() * t.block_elems(),
            want.len(),
            "{stem}: fixture sizes disagree"
        );
        let mut out = vec![f32::NAN; want.len()];
        dequantize(t, &data, &mut out).unwrap();
        let bad: Vec<String> = out
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (got, want))| got.to_bits() != **want)
            .map(|(i, (got, want))| format!("[{i}] {got:e} vs {:e}", f32::from_bits(*want)))
            .collect();
        assert!(
            bad.is_empty(),
            "{stem}: {} of {} values differ, first: {:?}",
            bad.len(),
            want.len(),
            &bad[..bad.len().min(8)]
        );
    }

    macro_rules! fixture_tests {
        ($($test:ident: $t:ident,)*) => {$(
            #[test]
            fn $test() {
                check_fixture(IqType::$t, IqType::$t.name());
            }
        )*};
    }

    fixture_tests! {
        matches_gguf_py_iq4_nl: Iq4Nl,
        matches_gguf_py_iq4_xs: Iq4Xs,
        matches_gguf_py_iq3_xxs: Iq3Xxs,
        matches_gguf_py_iq3_s: Iq3S,
        matches_gguf_py_iq2_xxs: Iq2Xxs,
        matches_gguf_py_iq2_xs: Iq2Xs,
        matches_gguf_py_iq2_s: Iq2S,
        matches_gguf_py_iq1_s: Iq1S,
        matches_gguf_py_iq1_m: Iq1M,
        matches_gguf_py_tq1_0: Tq1_0,
        matches_gguf_py_tq2_0: Tq2_0,
        matches_gguf_py_mxfp4: Mxfp4,
    }

    /// Rows of a real tensor llama-quantize wrote (SmolLM2-135M: `--pure IQ4_NL` / `IQ4_XS`,
    /// and the other types forced onto ffn_down with `--tensor-type`, with an importance matrix
    /// from llama-imatrix), made by scripts/make-fixtures.sh where llama.cpp is built; says it
    /// is skipped elsewhere.
    fn check_real_fixture(t: IqType, stem: &str) {
        if !fixture(&format!("{stem}.bin")).is_file() {
            println!(
                "skipped: {} is not made (scripts/make-fixtures.sh makes it where llama-quantize is built)",
                fixture(&format!("{stem}.bin")).display()
            );
            return;
        }
        check_fixture(t, stem);
    }

    macro_rules! real_fixture_tests {
        ($($test:ident: $t:ident,)*) => {$(
            #[test]
            fn $test() {
                check_real_fixture(IqType::$t, &format!("real_{}", IqType::$t.name()));
            }
        )*};
    }

    real_fixture_tests! {
        matches_llama_quantize_iq4_nl_tensor: Iq4Nl,
        matches_llama_quantize_iq4_xs_tensor: Iq4Xs,
        matches_llama_quantize_iq3_xxs_tensor: Iq3Xxs,
        matches_llama_quantize_iq3_s_tensor: Iq3S,
        matches_llama_quantize_iq2_xxs_tensor: Iq2Xxs,
        matches_llama_quantize_iq2_xs_tensor: Iq2Xs,
        matches_llama_quantize_iq2_s_tensor: Iq2S,
        matches_llama_quantize_iq1_s_tensor: Iq1S,
        matches_llama_quantize_iq1_m_tensor: Iq1M,
        matches_llama_quantize_tq1_0_tensor: Tq1_0,
        matches_llama_quantize_tq2_0_tensor: Tq2_0,
        matches_llama_quantize_mxfp4_tensor: Mxfp4,
    }

    #[test]
    fn wrong_sizes_are_refused() {
        for t in IqType::ALL {
            let (bb, be) = (t.block_bytes(), t.block_elems());
            let data = vec![0u8; 3 * bb];
            let mut out = vec![0f32; 3 * be];
            assert!(dequantize(t, &data, &mut out).is_ok(), "{}", t.name());
            // Part of a block.
            assert!(dequantize(t, &data[..3 * bb - 1], &mut out).is_err());
            assert!(dequantize(t, &data[..1], &mut out[..be]).is_err());
            // Output too short, too long.
            assert!(dequantize(t, &data, &mut out[..3 * be - 1]).is_err());
            assert!(dequantize(t, &data[..2 * bb], &mut out).is_err());
            let mut long = vec![0f32; 3 * be + 1];
            assert!(dequantize(t, &data, &mut long).is_err());
            // Nothing is fine.
            assert!(dequantize(t, &[], &mut []).is_ok());
        }
    }

    #[test]
    fn ids_names_and_sizes_are_ggmls() {
        // (name, ggml_type id, values per block, bytes per block), from ggml.h / ggml-common.h.
        let want = [
            ("iq4_nl", 20, 32, 18),
            ("iq4_xs", 23, 256, 136),
            ("iq3_xxs", 18, 256, 98),
            ("iq3_s", 21, 256, 110),
            ("iq2_xxs", 16, 256, 66),
            ("iq2_xs", 17, 256, 74),
            ("iq2_s", 22, 256, 82),
            ("iq1_s", 19, 256, 50),
            ("iq1_m", 29, 256, 56),
            ("tq1_0", 34, 256, 54),
            ("tq2_0", 35, 256, 66),
            ("mxfp4", 39, 32, 17),
        ];
        for (t, (name, id, elems, bytes)) in IqType::ALL.into_iter().zip(want) {
            assert_eq!(
                (t.name(), t.ggml_id(), t.block_elems(), t.block_bytes()),
                (name, id, elems, bytes)
            );
            assert_eq!(IqType::from_ggml_id(id), Some(t));
        }
        // F32, F16, Q4_0, Q8_0, Q6_K, BF16 (handled elsewhere), NVFP4, past the end.
        for id in [0, 1, 2, 8, 14, 30, 40, 43, 1000] {
            assert_eq!(IqType::from_ggml_id(id), None, "{id}");
        }
    }

    #[test]
    fn tables_have_ggmls_shape() {
        // Each ksigns entry is 7 sign bits plus an eighth that makes the count even.
        for (i, &s) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(usize::from(s & 127), i);
            assert_eq!(s.count_ones() % 2, 0);
        }
        let bytes_in = |grid: &[u64], allowed: &[u8]| {
            grid.iter()
                .all(|g| g.to_le_bytes().iter().all(|b| allowed.contains(b)))
        };
        assert!(bytes_in(&IQ2XXS_GRID, &[0x08, 0x19, 0x2b]));
        assert!(bytes_in(&IQ2XS_GRID, &[0x08, 0x19, 0x2b]));
        assert!(bytes_in(&IQ2S_GRID, &[0x08, 0x19, 0x2b]));
        assert!(bytes_in(&IQ1S_GRID, &[0xff, 0x00, 0x01]));
        let iq3: Vec<u64> = IQ3XXS_GRID.iter().map(|&g| u64::from(g)).collect();
        assert!(bytes_in(
            &iq3,
            &[0, 0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e]
        ));
        let iq3s: Vec<u64> = IQ3S_GRID.iter().map(|&g| u64::from(g)).collect();
        assert!(bytes_in(&iq3s, &[0, 1, 3, 5, 7, 9, 11, 13, 15]));
        assert_eq!(e8m0_to_f32_half(0), 2f64.powi(-128) as f32);
        assert_eq!(e8m0_to_f32_half(1), 2f64.powi(-127) as f32);
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(254), 2f32.powi(126));
    }
}
