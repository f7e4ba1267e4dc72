//! Per-tensor type choice for a level, following llama.cpp's `llama_tensor_get_type`
//! (src/llama-quant.cpp) for the mixtures, and its fallback when a row width does not fit
//! a type's block size.
//!
//! Plain levels (`q4_k`, `q2_k`, ...) use one type for every weight matrix, the token
//! embedding and the output included; norms and other 1-D tensors stay f32. The mixtures
//! (`q4_k_m`, `q4_k_s`, `q5_k_m`, `q3_k_m`) raise some tensors as llama.cpp does:
//! - output (or the token embedding when the output is tied to it): q6_k;
//! - `attn_v`: q4_k_m/q5_k_m q6_k where `use_more_bits`; q4_k_s q5_k for the first 4;
//!   q3_k_m q5_k for the first 2, else q4_k;
//! - `ffn_down`: q4_k_m/q5_k_m q6_k where `use_more_bits`; q4_k_s q5_k for the first n/8;
//!   q3_k_m q5_k for the first n/16, else q4_k;
//! - `attn_output`: q3_k_m q4_k.
//!
//! Fallback (llama.cpp's table) when the row width is not a multiple of the block size:
//! q2_k/q3_k -> iq4_nl in llama.cpp, which candle lacks, so q4_0 here (recorded as such);
//! q4_k -> q5_0; q5_k -> q5_1; q6_k -> q8_0; and f16 if even that does not fit.

use super::level::{dtype_name, Level};
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};

/// What kind of tensor a canonical (GGUF-named) tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    TokenEmbd,
    Output,
    AttnV,
    AttnOutput,
    FfnDown,
    OtherMatrix,
    Vector,
}

/// Classify a canonical tensor name; returns the role and the layer index if any.
pub fn role(name: &str, rank: usize) -> (Role, Option<usize>) {
    let layer = name
        .strip_prefix("blk.")
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse::<usize>().ok());
    if rank < 2 {
        return (Role::Vector, layer);
    }
    let r = if name == "token_embd.weight" {
        Role::TokenEmbd
    } else if name == "output.weight" {
        Role::Output
    } else if name.ends_with("attn_v.weight") {
        Role::AttnV
    } else if name.ends_with("attn_output.weight") {
        Role::AttnOutput
    } else if name.ends_with("ffn_down.weight") {
        Role::FfnDown
    } else {
        Role::OtherMatrix
    };
    (r, layer)
}

/// llama.cpp's `use_more_bits`: the first and last eighth of layers, and every third between.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type chosen for one tensor, and the fallback taken if its width did not fit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorChoice {
    pub name: String,
    pub wanted: String,
    pub chosen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Context the recipe needs about the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelShape {
    pub n_layer: usize,
    pub has_output: bool,
}

fn wanted_type(level: Level, role: Role, layer: Option<usize>, m: ModelShape) -> GgmlDType {
    let base = level.base_dtype();
    if role == Role::Vector {
        return GgmlDType::F32;
    }
    if !level.is_mixture() {
        return base;
    }
    let n = m.n_layer.max(1);
    let i = layer.unwrap_or(0);
    let is_output = role == Role::Output || (role == Role::TokenEmbd && !m.has_output);
    if is_output {
        return GgmlDType::Q6K;
    }
    match (level, role) {
        (Level::Q4KM, Role::AttnV) | (Level::Q4KM, Role::FfnDown) if use_more_bits(i, n) => {
            GgmlDType::Q6K
        }
        (Level::Q5KM, Role::AttnV) | (Level::Q5KM, Role::FfnDown) if use_more_bits(i, n) => {
            GgmlDType::Q6K
        }
        (Level::Q4KS, Role::AttnV) if i < 4 => GgmlDType::Q5K,
        (Level::Q4KS, Role::FfnDown) if i < n / 8 => GgmlDType::Q5K,
        (Level::Q3KM, Role::AttnV) => {
            if i < 2 {
                GgmlDType::Q5K
            } else {
                GgmlDType::Q4K
            }
        }
        (Level::Q3KM, Role::FfnDown) => {
            if i < n / 16 {
                GgmlDType::Q5K
            } else {
                GgmlDType::Q4K
            }
        }
        (Level::Q3KM, Role::AttnOutput) => GgmlDType::Q4K,
        _ => base,
    }
}

fn fallback(d: GgmlDType) -> GgmlDType {
    match d {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    }
}

/// Choose the type of one tensor at `level`. `shape` is in candle order (rows, row width).
pub fn choose(
    level: Level,
    name: &str,
    shape: &[usize],
    m: ModelShape,
) -> (GgmlDType, TensorChoice) {
    let (r, layer) = role(name, shape.len());
    let wanted = wanted_type(level, r, layer, m);
    let width = shape.last().copied().unwrap_or(1);
    let mut chosen = wanted;
    let mut reason = None;
    if width % chosen.block_size() != 0 {
        let fb = fallback(chosen);
        let fb = if width % fb.block_size() != 0 {
            GgmlDType::F16
        } else {
            fb
        };
        let extra = if matches!(wanted, GgmlDType::Q2K | GgmlDType::Q3K) {
            " (llama.cpp would use iq4_nl, which candle does not have)"
        } else {
            ""
        };
        reason = Some(format!(
            "row width {width} is not a multiple of {}'s block size {}; using {}{extra}",
            dtype_name(wanted),
            wanted.block_size(),
            dtype_name(fb)
        ));
        chosen = fb;
    }
    (
        chosen,
        TensorChoice {
            name: name.to_string(),
            wanted: dtype_name(wanted).to_string(),
            chosen: dtype_name(chosen).to_string(),
            fallback_reason: reason,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: ModelShape = ModelShape {
        n_layer: 32,
        has_output: true,
    };

    #[test]
    fn use_more_bits_matches_llama_cpp() {
        // n = 32: first 4, last 4, and layers 4 + 3k + 2 between.
        let more: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            more,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn q4_k_m_raises_output_attn_v_and_ffn_down() {
        let (d, _) = choose(Level::Q4KM, "output.weight", &[1024, 2048], M);
        assert_eq!(d, GgmlDType::Q6K);
        let (d, _) = choose(Level::Q4KM, "blk.0.attn_v.weight", &[256, 2048], M);
        assert_eq!(d, GgmlDType::Q6K);
        let (d, _) = choose(Level::Q4KM, "blk.4.ffn_down.weight", &[2048, 8192], M);
        assert_eq!(d, GgmlDType::Q4K);
        let (d, _) = choose(Level::Q4KM, "blk.4.attn_q.weight", &[2048, 2048], M);
        assert_eq!(d, GgmlDType::Q4K);
        let (d, _) = choose(Level::Q4KM, "blk.4.attn_norm.weight", &[2048], M);
        assert_eq!(d, GgmlDType::F32);
        // tied output: the token embedding gets q6_k
        let tied = ModelShape {
            n_layer: 32,
            has_output: false,
        };
        let (d, _) = choose(Level::Q4KM, "token_embd.weight", &[1000, 2048], tied);
        assert_eq!(d, GgmlDType::Q6K);
    }

    #[test]
    fn narrow_rows_fall_back_and_say_why() {
        let (d, c) = choose(Level::Q4K, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, GgmlDType::Q5_0);
        assert!(c.fallback_reason.unwrap().contains("576"));
        let (d, _) = choose(Level::Q2K, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, GgmlDType::Q4_0);
        let (d, _) = choose(Level::Q6K, "blk.0.attn_q.weight", &[640, 640], M);
        assert_eq!(d, GgmlDType::Q8_0);
        let (d, c) = choose(Level::Q8_0, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, GgmlDType::Q8_0);
        assert!(c.fallback_reason.is_none());
    }
}
