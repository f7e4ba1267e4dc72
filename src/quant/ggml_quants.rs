//! llama.cpp's reference quantizers, reimplemented: the functions `llama-quantize` runs when it
//! has no importance matrix (`quantize_row_{q4_0,q4_1,q5_0,q5_1,q8_0,q2_K,q3_K,q4_K,q5_K,q6_K}_ref`
//! and their helpers `nearest_int`, `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants` in
//! ggml's `ggml-quants.c`). They are deterministic, and this module follows them operation by
//! operation (the same float expressions in the same order, f16 rounded to nearest even), so
//! qeval's levels hold the same bytes as llama-quantize's files of the same type. The block
//! layouts are ggml's (`block_q4_K` ...), which is what candle reads.
//!
//! Input is a whole tensor in row-major f32 whose row width is a multiple of the type's block
//! size (the recipe's fallback guarantees it); blocks never cross rows, so the tensor is cut
//! into chunks of whole blocks and quantized in parallel.

use anyhow::{bail, Result};
use candle_core::quantized::GgmlDType;
use half::f16;
use rayon::prelude::*;

const QK_K: usize = 256;
const GROUP_MAX_EPS: f32 = 1e-15;

/// Whether this module implements `d` (the types llama-quantize makes without an imatrix).
pub fn supports(d: GgmlDType) -> bool {
    matches!(
        d,
        GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q5_0
            | GgmlDType::Q5_1
            | GgmlDType::Q8_0
            | GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
    )
}

/// Quantize `x` (whole blocks) to `d`; returns the raw ggml blocks.
pub fn quantize(d: GgmlDType, x: &[f32]) -> Result<Vec<u8>> {
    let (block, bytes): (usize, usize) = match d {
        GgmlDType::Q4_0 => (32, 18),
        GgmlDType::Q4_1 => (32, 20),
        GgmlDType::Q5_0 => (32, 22),
        GgmlDType::Q5_1 => (32, 24),
        GgmlDType::Q8_0 => (32, 34),
        GgmlDType::Q2K => (QK_K, 84),
        GgmlDType::Q3K => (QK_K, 110),
        GgmlDType::Q4K => (QK_K, 144),
        GgmlDType::Q5K => (QK_K, 176),
        GgmlDType::Q6K => (QK_K, 210),
        other => bail!("no reference quantizer for {other:?}"),
    };
    if !x.len().is_multiple_of(block) {
        bail!(
            "{} values are not a whole number of {block}-value blocks",
            x.len()
        );
    }
    let f: fn(&[f32], &mut [u8]) = match d {
        GgmlDType::Q4_0 => q4_0,
        GgmlDType::Q4_1 => q4_1,
        GgmlDType::Q5_0 => q5_0,
        GgmlDType::Q5_1 => q5_1,
        GgmlDType::Q8_0 => q8_0,
        GgmlDType::Q2K => q2_k,
        GgmlDType::Q3K => q3_k,
        GgmlDType::Q4K => q4_k,
        GgmlDType::Q5K => q5_k,
        _ => q6_k,
    };
    let n_blocks = x.len() / block;
    let mut out = vec![0u8; n_blocks * bytes];
    // Chunks of 64 blocks: enough work per task, and every block is independent.
    const PER_TASK: usize = 64;
    out.par_chunks_mut(PER_TASK * bytes)
        .zip(x.par_chunks(PER_TASK * block))
        .for_each(|(o, xs)| {
            for (ob, xb) in o.chunks_exact_mut(bytes).zip(xs.chunks_exact(block)) {
                f(xb, ob);
            }
        });
    Ok(out)
}

#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

#[inline]
fn put_f16(o: &mut [u8], v: f32) -> f32 {
    let h = f16::from_f32(v);
    o[..2].copy_from_slice(&h.to_le_bytes());
    h.to_f32()
}

/// The value of largest magnitude (first one on ties, as ggml's `amax < fabsf(v)` scan) and
/// its magnitude.
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

fn q4_0(x: &[f32], o: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(o, d);
    for j in 0..16 {
        let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let xi1 = ((x[16 + j] * id + 8.5) as i8).min(15) as u8;
        o[2 + j] = xi0 | (xi1 << 4);
    }
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn q4_1(x: &[f32], o: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(o, d);
    put_f16(&mut o[2..], min);
    for j in 0..16 {
        let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let xi1 = (((x[16 + j] - min) * id + 0.5) as i8).min(15) as u8;
        o[4 + j] = xi0 | (xi1 << 4);
    }
}

fn q5_0(x: &[f32], o: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(o, d);
    let mut qh = 0u32;
    for j in 0..16 {
        let xi0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let xi1 = ((x[16 + j] * id + 16.5) as i8).min(31) as u8;
        o[6 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
    }
    o[2..6].copy_from_slice(&qh.to_le_bytes());
}

fn q5_1(x: &[f32], o: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(o, d);
    put_f16(&mut o[2..], min);
    let mut qh = 0u32;
    for j in 0..16 {
        let xi0 = ((x[j] - min) * id + 0.5) as u8;
        let xi1 = ((x[16 + j] - min) * id + 0.5) as u8;
        o[8 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
    }
    o[4..8].copy_from_slice(&qh.to_le_bytes());
}

fn q8_0(x: &[f32], o: &mut [u8]) {
    let mut amax = 0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(o, d);
    for j in 0..32 {
        o[2 + j] = ((x[j] * id).round() as i8) as u8;
    }
}

/// ggml's `make_qx_quants` without weights (`qw == NULL`), rmse_type 1 (the only use: q6_K).
fn make_qx_quants_rmse1(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (i, &v) in x.iter().enumerate() {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        l_out[i] = (l + nmax) as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (i, &v) in x.iter().enumerate() {
                let l = nearest_int(iscale * v);
                l_out[i] = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (q3_K's only use).
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (i, &v) in x.iter().enumerate() {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml's `make_qkx2_quants`; returns (scale, the_min).
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.clamp(0, nmax) as u8;
        let diff = scale * l_out[i] as f32 + min - x[i];
        let diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Pack four 2-bit planes (q2_K and q3_K's low bits): byte j/4+l of each 128 holds l, l+32,
/// l+64 and l+96.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

// block_q2_K: scales[16], qs[64], d, dmin.
fn q2_k(x: &[f32], o: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; 16];
    let mut scales = [0f32; 16];
    let q4scale = 15f32;
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (s, m) = make_qkx2_quants(
            3,
            xs,
            &weights,
            &mut l[16 * j..16 * j + 16],
            &mut laux,
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let (sc, rest) = o.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    let d = if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        put_f16(dd, max_scale / q4scale)
    } else {
        sc.iter_mut().for_each(|s| *s = 0);
        put_f16(dd, 0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for j in 0..16 {
            let li = nearest_int(iscale * mins[j]);
            sc[j] |= (li << 4) as u8;
        }
        put_f16(&mut dd[2..], max_min / q4scale)
    } else {
        put_f16(&mut dd[2..], 0.0)
    };
    for j in 0..16 {
        let dj = d * (sc[j] & 0xf) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            let li = nearest_int((x[16 * j + ii] + dm) / dj);
            l[16 * j + ii] = li.clamp(0, 3) as u8;
        }
    }
    pack_2bit(&l, qs);
}

// block_q3_K: hmask[32], qs[64], scales[12], d.
fn q3_k(x: &[f32], o: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0f32, 0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        let s = scales[j].abs();
        if s > amax {
            amax = s;
            max_scale = scales[j];
        }
    }
    let (hmask, rest) = o.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, dd) = rest.split_at_mut(12);
    sc.iter_mut().for_each(|s| *s = 0);
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            let li = nearest_int(iscale * scales[j]) as i8;
            let li = (li.clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = li & 0xf;
            } else {
                sc[j - 8] |= (li & 0xf) << 4;
            }
            sc[j % 4 + 8] |= (li >> 4) << (2 * (j / 4));
        }
        put_f16(dd, 1.0 / iscale)
    } else {
        put_f16(dd, 0.0)
    };
    for j in 0..16 {
        let lo = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
        let s = (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
        let dj = d * s as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let li = nearest_int(x[16 * j + ii] / dj).clamp(-4, 3);
            l[16 * j + ii] = (li + 4) as i8;
        }
    }
    hmask.iter_mut().for_each(|h| *h = 0);
    let mut lu = [0u8; QK_K];
    let (mut m, mut hm) = (0usize, 1u8);
    for j in 0..QK_K {
        let mut v = l[j] as u8;
        if v > 3 {
            hmask[m] |= hm;
            v -= 4;
        }
        lu[j] = v;
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm <<= 1;
        }
    }
    pack_2bit(&lu, qs);
}

/// q4_K and q5_K share everything but nmax, the search grid and the packing of the bits.
fn k_scales_mins(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8; QK_K],
    o_head: &mut [u8],
) {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    // o_head: d (2), dmin (2), scales[12].
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc = &mut o_head[4..16];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = put_f16(o_head, max_scale / 63.0);
    let dmin = put_f16(&mut o_head[2..], max_min / 63.0);
    let sc = &o_head[4..16];
    for j in 0..8 {
        let (s, m) = if j < 4 {
            (sc[j] & 63, sc[j + 4] & 63)
        } else {
            (
                (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4),
                (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
            )
        };
        let dj = d * s as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            let li = nearest_int((x[32 * j + ii] + dm) / dj);
            l[32 * j + ii] = li.clamp(0, nmax) as u8;
        }
    }
}

// block_q4_K: d, dmin, scales[12], qs[128].
fn q4_k(x: &[f32], o: &mut [u8]) {
    let mut l = [0u8; QK_K];
    o[4..16].iter_mut().for_each(|b| *b = 0);
    k_scales_mins(x, 15, -1.0, 20, &mut l, &mut o[..16]);
    let q = &mut o[16..];
    for (k, j) in (0..QK_K).step_by(64).enumerate() {
        for i in 0..32 {
            q[32 * k + i] = l[j + i] | (l[j + i + 32] << 4);
        }
    }
}

// block_q5_K: d, dmin, scales[12], qh[32], qs[128].
fn q5_k(x: &[f32], o: &mut [u8]) {
    let mut l = [0u8; QK_K];
    o[4..16].iter_mut().for_each(|b| *b = 0);
    k_scales_mins(x, 31, -0.5, 15, &mut l, &mut o[..16]);
    let (qh, ql) = o[16..].split_at_mut(32);
    qh.iter_mut().for_each(|b| *b = 0);
    let (mut m1, mut m2) = (1u8, 2u8);
    for (k, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = l[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[32 * k + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

// block_q6_K: ql[128], qh[64], scales[16] (i8), d.
fn q6_k(x: &[f32], o: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for ib in 0..16 {
        let s = make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        o.iter_mut().for_each(|b| *b = 0);
        return;
    }
    let (ql, rest) = o.split_at_mut(128);
    let (qh, rest) = rest.split_at_mut(64);
    let (sc, dd) = rest.split_at_mut(16);
    let iscale = -128.0 / max_scale;
    let d = put_f16(dd, 1.0 / iscale);
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let dj = d * (sc[j] as i8) as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let li = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
            l[16 * j + ii] = (li + 32) as i8;
        }
    }
    for (k, j) in (0..QK_K).step_by(128).enumerate() {
        let (ql, qh) = (&mut ql[64 * k..64 * k + 64], &mut qh[32 * k..32 * k + 32]);
        for i in 0..32 {
            let v = |o: usize| l[j + i + o] as u8;
            ql[i] = (v(0) & 0xf) | ((v(64) & 0xf) << 4);
            ql[i + 32] = (v(32) & 0xf) | ((v(96) & 0xf) << 4);
            qh[i] = (v(0) >> 4) | ((v(32) >> 4) << 2) | ((v(64) >> 4) << 4) | ((v(96) >> 4) << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{ggml_file::qtensor_from_ggml, QTensor};
    use candle_core::{Device, Tensor};

    fn data(n: usize, seed: u64) -> Vec<f32> {
        // A deterministic, weight-like spread: a few large values among many small.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5;
                let big = if (s >> 20).is_multiple_of(61) {
                    8.0
                } else {
                    1.0
                };
                u * 0.05 * big
            })
            .collect()
    }

    fn rms_err(d: GgmlDType, x: &[f32], bytes: &[u8]) -> f32 {
        let q = qtensor_from_ggml(d, bytes, vec![x.len() / 256, 256], &Device::Cpu).unwrap();
        let y = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let y = y.to_vec1::<f32>().unwrap();
        let e: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        (e / x.len() as f32).sqrt()
    }

    #[test]
    fn every_type_round_trips_through_candles_reader() {
        // Reading our bytes with candle's block layout gives back the values within the
        // type's precision, and no worse than candle's own quantizer by more than a little.
        let x = data(256 * 64, 7);
        let t = Tensor::from_vec(x.clone(), (64, 256), &Device::Cpu).unwrap();
        for d in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let ours = quantize(d, &x).unwrap();
            let theirs = QTensor::quantize(&t, d).unwrap();
            let e_ours = rms_err(d, &x, &ours);
            let e_candle = rms_err(d, &x, &theirs.data().unwrap());
            assert!(
                e_ours > 0.0 && e_ours < e_candle * 1.10,
                "{d:?}: rms error {e_ours} against candle's {e_candle}"
            );
        }
    }

    #[test]
    fn simple_types_equal_candles_bytes() {
        // candle's q8_0 and q4_0 follow the same reference: identical blocks.
        let x = data(32 * 256, 3);
        let t = Tensor::from_vec(x.clone(), (32, 256), &Device::Cpu).unwrap();
        for d in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let theirs = QTensor::quantize(&t, d).unwrap();
            assert_eq!(
                quantize(d, &x).unwrap(),
                theirs.data().unwrap().to_vec(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(17.6), 18);
    }

    #[test]
    fn rejects_partial_blocks_and_unknown_types() {
        assert!(quantize(GgmlDType::Q4K, &[0.0; 100]).is_err());
        assert!(quantize(GgmlDType::F16, &[0.0; 256]).is_err());
    }
}
