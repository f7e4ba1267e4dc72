//! llama.cpp's IQ4_NL and IQ4_XS quantizers without an importance matrix, reimplemented:
//! `quantize_iq4_nl` / `quantize_iq4_xs` and their shared `quantize_row_iq4_nl_impl` (ggml's
//! `ggml-quants.c`, with the 7 scale trials llama-quantize's path runs), followed operation by
//! operation so the bytes are llama-quantize's. These are the i-quants that need no imatrix;
//! the others (IQ3/IQ2/IQ1) are only read, never made, by qeval.

use super::ggml_quants::nearest_int;
use super::iq::{IqType, KVALUES_IQ4NL};
use anyhow::{bail, Result};
use half::f16;
use rayon::prelude::*;

const GROUP_MAX_EPS: f32 = 1e-15;
/// Scale trials each side of the first guess (llama.cpp's `ntry` in `quantize_iq4_*`).
const NTRY: i32 = 7;

/// `best_index_int8(16, kvalues_iq4nl, x)`: the index of the table value nearest `x`.
fn best_index(x: f32) -> u8 {
    let v = &KVALUES_IQ4NL;
    if x <= f32::from(v[0]) {
        return 0;
    }
    if x >= f32::from(v[15]) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(v[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(v[mu - 1]) < f32::from(v[mu]) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The best scale for one block of 32 (`L` gets its indices); 0 for a block of zeros.
fn block_scale(xb: &[f32], l_out: &mut [u8]) -> f32 {
    let values = |l: u8| f32::from(KVALUES_IQ4NL[usize::from(l)]);
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    let mut weight = [0f32; 32];
    for (w, &x) in weight.iter_mut().zip(xb) {
        *w = x * x;
    }
    let (mut amax, mut max) = (0f32, 0f32);
    for &x in xb {
        let ax = x.abs();
        if ax > amax {
            amax = ax;
            max = x;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let mut d = -max / v0;
    let mut id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for ((&x, &w), l) in xb.iter().zip(&weight).zip(l_out.iter_mut()) {
        *l = best_index(id * x);
        let q = values(*l);
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for (&x, &w) in xb.iter().zip(&weight) {
            let q = values(best_index(id * x));
            sumqx += w * q * x;
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Pack indices: byte j of each 16 holds value j (low nibble) and value j+16 (high).
fn pack(l: &[u8], q4: &mut [u8]) {
    for (lb, qb) in l.chunks_exact(32).zip(q4.chunks_exact_mut(16)) {
        for j in 0..16 {
            qb[j] = lb[j] | (lb[16 + j] << 4);
        }
    }
}

/// One IQ4_NL block (d, qs[16]) from 32 values.
fn iq4_nl_block(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; 32];
    let scale = block_scale(x, &mut l);
    out[..2].copy_from_slice(&f16::from_f32(scale).to_le_bytes());
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    for (lj, &xj) in l.iter_mut().zip(x) {
        *lj = best_index(id * xj);
    }
    pack(&l, &mut out[2..18]);
}

/// One IQ4_XS block (d, scales_h, scales_l[4], qs[128]) from 256 values.
fn iq4_xs_block(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; 256];
    let mut scales = [0f32; 8];
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        *s = block_scale(&x[ib * 32..(ib + 1) * 32], &mut l[ib * 32..(ib + 1) * 32]);
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = *s;
        }
    }
    let d = -max_scale / 32.0;
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h = 0u16;
    let mut scales_l = [0u8; 4];
    for (ib, s) in scales.iter().enumerate() {
        let li = nearest_int(id * s).clamp(-32, 31);
        let dl = d * li as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for j in 0..32 {
            l[ib * 32 + j] = best_index(idl * x[ib * 32 + j]);
        }
        let lu = (li + 32) as u8;
        if ib % 2 == 0 {
            scales_l[ib / 2] = lu & 0xf;
        } else {
            scales_l[ib / 2] |= (lu & 0xf) << 4;
        }
        scales_h |= u16::from(lu >> 4) << (2 * ib);
    }
    out[2..4].copy_from_slice(&scales_h.to_le_bytes());
    out[4..8].copy_from_slice(&scales_l);
    pack(&l, &mut out[8..136]);
}

/// Quantize `x` (whole blocks) to IQ4_NL or IQ4_XS; returns the raw ggml blocks.
pub fn quantize(t: IqType, x: &[f32]) -> Result<Vec<u8>> {
    let f: fn(&[f32], &mut [u8]) = match t {
        IqType::Iq4Nl => iq4_nl_block,
        IqType::Iq4Xs => iq4_xs_block,
        other => bail!(
            "qeval makes only iq4_nl and iq4_xs (they need no importance matrix), not {}",
            other.name()
        ),
    };
    let (block, bytes) = (t.block_elems(), t.block_bytes());
    if !x.len().is_multiple_of(block) {
        bail!(
            "{} values are not a whole number of {block}-value blocks",
            x.len()
        );
    }
    let mut out = vec![0u8; x.len() / block * bytes];
    x.par_chunks(block * 64)
        .zip(out.par_chunks_mut(bytes * 64))
        .for_each(|(x, o)| {
            for (xb, ob) in x.chunks_exact(block).zip(o.chunks_exact_mut(bytes)) {
                f(xb, ob);
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::iq;

    #[test]
    fn quantized_blocks_dequantize_close_to_the_input() {
        let x: Vec<f32> = (0..1024)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 3000.0)
            .collect();
        for t in [IqType::Iq4Nl, IqType::Iq4Xs] {
            let q = quantize(t, &x).unwrap();
            let mut y = vec![0f32; x.len()];
            iq::dequantize(t, &q, &mut y).unwrap();
            let err: f32 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>();
            let pow: f32 = x.iter().map(|a| a * a).sum();
            // 4-bit non-linear: about 1% of the signal's energy left as error.
            assert!(
                err / pow < 0.02,
                "{}: relative squared error {}",
                t.name(),
                err / pow
            );
        }
        let zeros = quantize(IqType::Iq4Xs, &[0.0; 256]).unwrap();
        assert_eq!(&zeros[..2], &f16::from_f32(-0.0).to_le_bytes());
    }

    #[test]
    fn best_index_picks_the_nearest_value() {
        assert_eq!(best_index(-1000.0), 0);
        assert_eq!(best_index(0.0), 8);
        assert_eq!(best_index(112.0), 15);
        assert_eq!(best_index(-11.0), 7);
    }
}
