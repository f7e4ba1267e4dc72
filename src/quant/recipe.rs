//! Per-tensor type choice for a level: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp
//! of the vendored llama.cpp) for the file types qeval makes, and its fallback when a row width
//! does not fit a type's block size. Every level is a llama-quantize file type:
//! - output (or the token embedding when the output is tied to it): q6_k for every quantized
//!   type but q8_0 (q8_0 if the row does not fit the default type's blocks);
//! - `attn_v`: Q2_K q4_k with n_gqa >= 4, else q3_k; Q3_K_M q5_k for the first 2, else q4_k;
//!   Q3_K_L q5_k; Q4_K_M/Q5_K_M q6_k where `use_more_bits`; Q4_K_S q5_k for the first 4;
//!   80-layer GQA models (llama.cpp's 70B) raise q3_k/q4_k there to q5_k;
//! - `ffn_down`: Q2_K q3_k; Q3_K_M q5_k for the first n/16, else q4_k; Q3_K_L q5_k;
//!   Q4_K_M/Q5_K_M q6_k where `use_more_bits`; Q4_K_S q5_k for the first n/8;
//! - `attn_output`: Q2_K q3_k, Q3_K_M q4_k, Q3_K_L q5_k;
//! - everything else the file type's default type; norms and other 1-D tensors f32.
//!
//! `-pure` levels (llama-quantize `--pure`) and the float levels use the default type for every
//! weight matrix. IQ4_NL/IQ4_XS (no importance matrix): attn_v q5_k with n_gqa >= 4, the first
//! eighth of ffn_down q5_k, output q6_k. Fallback (llama.cpp's `tensor_type_fallback`):
//! q2_k/q3_k -> q4_0, q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, iq4_xs -> iq4_nl, and f16 if
//! even that does not fit.

use super::iq::IqType;
use super::level::Level;
use super::weight::WType;
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
    } else if name.ends_with("attn_v.weight") || name.ends_with("attn_qkv.weight") {
        // llama.cpp's category_is_attn_v: a fused Q/K/V gets attn_v's types.
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
    /// Query heads per key/value head (llama.cpp's `n_gqa`).
    pub n_gqa: usize,
    /// llama.cpp's `LLM_TYPE_70B` (80 layers with grouped-query attention, llama or qwen2):
    /// its attn_v gets q5_k where the recipe says q3_k or q4_k.
    pub is_70b: bool,
    /// Row width of the tensor being chosen for (filled in by [`choose`]).
    pub width: usize,
}

fn wanted_type(level: Level, role: Role, layer: Option<usize>, m: ModelShape) -> WType {
    let base = level.base_type();
    let WType::Candle(candle_base) = base else {
        return wanted_iq(level, base, role, layer, m);
    };
    WType::Candle(wanted_candle(level, candle_base, role, layer, m))
}

/// The IQ4_NL/IQ4_XS file types without an importance matrix: output q6_k (q8_0 if the row
/// does not fit the default type's blocks); attn_v q5_k with n_gqa >= 4; ffn_down q5_k for
/// the first eighth of layers; everything else the default type.
fn wanted_iq(level: Level, base: WType, role: Role, layer: Option<usize>, m: ModelShape) -> WType {
    use GgmlDType::*;
    if role == Role::Vector {
        return WType::Candle(F32);
    }
    if level.is_pure() {
        return base;
    }
    let n = m.n_layer.max(1);
    let i = layer.unwrap_or(0);
    let is_output = role == Role::Output || (role == Role::TokenEmbd && !m.has_output);
    if is_output {
        return WType::Candle(if m.width.is_multiple_of(base.block_size()) {
            Q6K
        } else {
            Q8_0
        });
    }
    match role {
        Role::AttnV if m.n_gqa >= 4 => WType::Candle(Q5K),
        Role::FfnDown if i < n / 8 => WType::Candle(Q5K),
        _ => base,
    }
}

fn wanted_candle(
    level: Level,
    base: GgmlDType,
    role: Role,
    layer: Option<usize>,
    m: ModelShape,
) -> GgmlDType {
    use GgmlDType::*;
    use Level as L;
    if role == Role::Vector {
        return F32;
    }
    // Float levels and single-type levels: the default type everywhere (llama.cpp applies its
    // per-tensor logic only to quantized types, and `--pure` skips it).
    if level.is_pure() {
        return base;
    }
    let n = m.n_layer.max(1);
    let i = layer.unwrap_or(0);
    let is_output = role == Role::Output || (role == Role::TokenEmbd && !m.has_output);
    if is_output {
        // `nx % qk_k` is the row width against the default type's block size.
        return if !m.width.is_multiple_of(base.block_size()) {
            Q8_0
        } else if base != Q8_0 {
            Q6K
        } else {
            base
        };
    }
    match role {
        Role::AttnV => {
            let mut t = match level {
                L::Q2K => {
                    if m.n_gqa >= 4 {
                        Q4K
                    } else {
                        Q3K
                    }
                }
                L::Q3KM => {
                    if i < 2 {
                        Q5K
                    } else {
                        Q4K
                    }
                }
                L::Q3KL => Q5K,
                L::Q4KM | L::Q5KM if use_more_bits(i, n) => Q6K,
                L::Q4KS if i < 4 => Q5K,
                _ => base,
            };
            if m.is_70b && matches!(t, Q3K | Q4K) {
                t = Q5K;
            }
            t
        }
        Role::FfnDown => match level {
            L::Q2K => Q3K,
            L::Q3KM if i < n / 16 => Q5K,
            L::Q3KM => Q4K,
            L::Q3KL => Q5K,
            L::Q4KM | L::Q5KM if use_more_bits(i, n) => Q6K,
            L::Q4KS if i < n / 8 => Q5K,
            _ => base,
        },
        Role::AttnOutput => match level {
            L::Q2K => Q3K,
            L::Q3KM => Q4K,
            L::Q3KL => Q5K,
            _ => base,
        },
        _ => base,
    }
}

/// llama.cpp's `tensor_type_fallback` (this project's vendored llama.cpp): the type used when
/// the row width is not a multiple of the wanted type's block size.
fn fallback(d: WType) -> WType {
    use GgmlDType as G;
    WType::Candle(match d {
        WType::Iq(IqType::Iq4Xs) => return WType::Iq(IqType::Iq4Nl),
        WType::Candle(G::Q2K | G::Q3K) => G::Q4_0,
        WType::Candle(G::Q4K) => G::Q5_0,
        WType::Candle(G::Q5K) => G::Q5_1,
        WType::Candle(G::Q6K) => G::Q8_0,
        _ => G::F16,
    })
}

/// Choose the type of one tensor at `level`. `shape` is in candle order (rows, row width).
pub fn choose(level: Level, name: &str, shape: &[usize], m: ModelShape) -> (WType, TensorChoice) {
    let (r, layer) = role(name, shape.len());
    let width = shape.last().copied().unwrap_or(1);
    let wanted = wanted_type(level, r, layer, ModelShape { width, ..m });
    let mut chosen = wanted;
    let mut reason = None;
    if width % chosen.block_size() != 0 {
        let fb = fallback(chosen);
        let fb = if width % fb.block_size() != 0 {
            WType::Candle(GgmlDType::F16)
        } else {
            fb
        };
        reason = Some(format!(
            "row width {width} is not a multiple of {}'s block size {}; using {}, as llama-quantize does",
            wanted.name(),
            wanted.block_size(),
            fb.name()
        ));
        chosen = fb;
    }
    (
        chosen,
        TensorChoice {
            name: name.to_string(),
            wanted: wanted.name().to_string(),
            chosen: chosen.name().to_string(),
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
        n_gqa: 4,
        is_70b: false,
        width: 0,
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
        assert_eq!(d, WType::Candle(GgmlDType::Q6K));
        let (d, _) = choose(Level::Q4KM, "blk.0.attn_v.weight", &[256, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q6K));
        let (d, _) = choose(Level::Q4KM, "blk.4.ffn_down.weight", &[2048, 8192], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q4K));
        let (d, _) = choose(Level::Q4KM, "blk.4.attn_q.weight", &[2048, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q4K));
        let (d, _) = choose(Level::Q4KM, "blk.4.attn_norm.weight", &[2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::F32));
        // tied output: the token embedding gets q6_k
        let tied = ModelShape {
            has_output: false,
            ..M
        };
        let (d, _) = choose(Level::Q4KM, "token_embd.weight", &[1000, 2048], tied);
        assert_eq!(d, WType::Candle(GgmlDType::Q6K));
    }

    #[test]
    fn narrow_rows_fall_back_and_say_why() {
        let (d, c) = choose(Level::Q4KPure, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q5_0));
        assert!(c.fallback_reason.unwrap().contains("576"));
        let (d, _) = choose(Level::Q2KPure, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q4_0));
        let (d, _) = choose(Level::Q6KPure, "blk.0.attn_q.weight", &[640, 640], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q8_0));
        let (d, c) = choose(Level::Q8_0, "blk.0.attn_q.weight", &[576, 576], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q8_0));
        assert!(c.fallback_reason.is_none());
    }

    #[test]
    fn plain_names_are_llama_quantize_file_types() {
        // Q4_0 and Q6_K keep the output at q6_k; Q2_K raises attn_v (q4_k with n_gqa >= 4,
        // q3_k below), ffn_down and attn_output; pure levels keep one type everywhere.
        let (d, _) = choose(Level::Q4_0, "output.weight", &[1024, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q6K));
        let (d, _) = choose(Level::Q4_0Pure, "output.weight", &[1024, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q4_0));
        let (d, _) = choose(Level::Q8_0, "output.weight", &[1024, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q8_0));
        let (d, _) = choose(Level::Q2K, "blk.3.attn_v.weight", &[256, 2048], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q4K));
        let few = ModelShape { n_gqa: 3, ..M };
        let (d, _) = choose(Level::Q2K, "blk.3.attn_v.weight", &[256, 2048], few);
        assert_eq!(d, WType::Candle(GgmlDType::Q3K));
        for (name, want) in [
            ("blk.3.ffn_down.weight", GgmlDType::Q3K),
            ("blk.3.attn_output.weight", GgmlDType::Q3K),
            ("blk.3.attn_q.weight", GgmlDType::Q2K),
            ("token_embd.weight", GgmlDType::Q2K),
        ] {
            assert_eq!(
                choose(Level::Q2K, name, &[2048, 2048], M).0,
                WType::Candle(want),
                "{name}"
            );
        }
        let (d, _) = choose(Level::Q3KL, "blk.9.ffn_down.weight", &[2048, 8192], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q5K));
        // A 576-wide output at q4_k_m: the default type's blocks do not fit, so q8_0.
        let (d, _) = choose(Level::Q4KM, "output.weight", &[1000, 576], M);
        assert_eq!(d, WType::Candle(GgmlDType::Q8_0));
        // llama.cpp's 70B: attn_v q4_k -> q5_k.
        let big = ModelShape {
            n_layer: 80,
            is_70b: true,
            n_gqa: 8,
            ..M
        };
        let (d, _) = choose(Level::Q4KS, "blk.40.attn_v.weight", &[1024, 8192], big);
        assert_eq!(d, WType::Candle(GgmlDType::Q5K));
    }
}
