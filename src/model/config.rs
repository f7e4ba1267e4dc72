//! Model hyper-parameters, read from GGUF metadata or a Hugging Face `config.json`.

use crate::error::usage;
use anyhow::{Context, Result};
use candle_core::quantized::gguf_file;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The architectures qeval runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Llama,
    /// Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen: llama with biases on the Q/K/V projections
    /// and NEOX rope.
    Qwen2,
    Qwen3,
    Gemma3,
    /// Phi-3, Phi-3.5 and Phi-4-mini: llama with fused Q/K/V and gate/up projections, NEOX
    /// rope over a part of each head, and LongRoPE scaling.
    Phi3,
}

impl Arch {
    /// An architecture by its models.toml / GGUF name.
    pub fn from_name(s: &str) -> Option<Arch> {
        Some(match s {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            "phi3" => Arch::Phi3,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
        }
    }
}

/// Everything the forward pass needs to know about a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab_size: usize,
    pub rms_eps: f64,
    pub rope_theta: f32,
    /// Gemma 3: rope base of the sliding-window (local) layers.
    pub rope_theta_local: f32,
    /// Window of the sliding-window layers: Gemma 3's local layers (every
    /// `sliding_window_pattern`-th layer is global), every layer of a Mistral or Phi-3 model
    /// that states one (`sliding_window_pattern` is then `n_layer + 1`: no layer is global).
    pub sliding_window: Option<usize>,
    pub sliding_window_pattern: usize,
    /// The context length the model was trained for.
    pub context_length: usize,
    /// Rope scaling as per-dimension frequency divisors: linear, Llama 3.x (GGUF
    /// `rope_freqs.weight`) and YaRN's blend of interpolation and extrapolation.
    pub rope_freq_factors: Option<Vec<f32>>,
    /// YaRN's magnitude scale of the rope's cos and sin (llama.cpp's `mscale`,
    /// 1 + 0.1 ln(factor)); 1 for every other rope.
    #[serde(default = "one")]
    pub rope_mscale: f32,
    /// Dimensions of each head the rope rotates (llama.cpp's `n_rot`, `rope.dimension_count`):
    /// the first `rope_dims`, the rest pass unrotated (Phi-4-mini's partial rotary factor).
    /// None: the whole head.
    #[serde(default)]
    pub rope_dims: Option<usize>,
    /// LongRoPE (Phi-3): the frequency divisors for a context longer than
    /// `rope_original_context`; `rope_freq_factors` then holds the short ones. Which applies
    /// follows the context the model is loaded for, as llama.cpp chooses by `n_ctx`.
    #[serde(default)]
    pub rope_freq_factors_long: Option<Vec<f32>>,
    #[serde(default)]
    pub rope_original_context: Option<usize>,
}

fn one() -> f32 {
    1.0
}

impl ModelConfig {
    /// Weight-layout facts that follow from the architecture: llama GGUFs use interleaved
    /// rope (llama.cpp permutes Q/K at conversion), qwen2, qwen3 and gemma3 use the NEOX layout.
    pub fn rope_interleaved(&self) -> bool {
        self.arch == Arch::Llama
    }

    /// Dimensions of each head the rope rotates.
    pub fn n_rot(&self) -> usize {
        self.rope_dims.unwrap_or(self.head_dim)
    }

    /// The rope's frequency divisors for a model loaded for `max_seq` positions: LongRoPE's
    /// long factors beyond the original context, else the (short) factors.
    pub fn rope_factors_for(&self, max_seq: usize) -> Option<&[f32]> {
        match (&self.rope_freq_factors_long, self.rope_original_context) {
            (Some(long), Some(orig)) if max_seq > orig => Some(long),
            _ => self.rope_freq_factors.as_deref(),
        }
    }

    /// Bytes of a f32 KV cache holding `ctx` positions.
    pub fn kv_cache_bytes(&self, ctx: usize) -> u64 {
        (2 * self.n_layer * self.n_kv_head * self.head_dim * ctx * 4) as u64
    }

    pub(crate) fn check(&self, what: &str) -> Result<()> {
        if self.n_layer == 0
            || self.n_head == 0
            || self.n_kv_head == 0
            || self.n_embd == 0
            || self.head_dim == 0
            || !self.n_head.is_multiple_of(self.n_kv_head)
        {
            return Err(usage(format!(
                "{what}: inconsistent model dimensions (layers {}, heads {}, kv heads {}, embedding {}, head dim {})",
                self.n_layer, self.n_head, self.n_kv_head, self.n_embd, self.head_dim
            )));
        }
        // Far beyond any real model; a corrupt header must not size allocations.
        let limits = [
            ("layers", self.n_layer, 1 << 12),
            ("embedding length", self.n_embd, 1 << 20),
            ("attention heads", self.n_head, 1 << 14),
            ("head dimension", self.head_dim, 1 << 14),
            ("feed-forward length", self.n_ff, 1 << 22),
            ("vocabulary size", self.vocab_size, 1 << 24),
            ("context length", self.context_length, 1 << 28),
            ("sliding window", self.sliding_window.unwrap_or(1), 1 << 28),
        ];
        for (name, value, max) in limits {
            if value == 0 || value > max {
                return Err(usage(format!(
                    "{what}: {name} {value} is out of range (1 to {max}); the model configuration is corrupt"
                )));
            }
        }
        let n_rot = self.n_rot();
        if n_rot == 0 || n_rot > self.head_dim || !n_rot.is_multiple_of(2) {
            return Err(usage(format!(
                "{what}: rope dimension count {n_rot} is invalid (an even number from 2 to the head dimension {})",
                self.head_dim
            )));
        }
        for (name, f) in [
            ("rope frequency factors", &self.rope_freq_factors),
            ("long rope frequency factors", &self.rope_freq_factors_long),
        ] {
            if let Some(f) = f {
                if f.len() != n_rot / 2 || f.iter().any(|x| !x.is_finite() || *x == 0.0) {
                    return Err(usage(format!(
                        "{what}: {name} must be {} finite, non-zero divisors (half the {n_rot} rotated dimensions); found {} values{}",
                        n_rot / 2,
                        f.len(),
                        if f.len() == n_rot / 2 { ", not all finite and non-zero" } else { "" }
                    )));
                }
            }
        }
        if self.sliding_window_pattern == 0 {
            return Err(usage(format!(
                "{what}: sliding-window pattern 0 is invalid (every n-th layer is global; n >= 1)"
            )));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let valid = positive(self.rope_theta.into())
            && positive(self.rope_theta_local.into())
            && self.rms_eps.is_finite()
            && self.rms_eps >= 0.0;
        if !valid {
            return Err(usage(format!(
                "{what}: rope base {} / {} or norm epsilon {} is not a positive finite number",
                self.rope_theta, self.rope_theta_local, self.rms_eps
            )));
        }
        Ok(())
    }

    /// Read the configuration from GGUF metadata.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let arch_s = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| {
                usage(format!(
                    "{}: GGUF metadata has no general.architecture",
                    path.display()
                ))
            })?;
        let arch = match arch_s.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            "phi3" => Arch::Phi3,
            other => {
                return Err(usage(format!(
                "{}: architecture '{other}' is not supported; qeval runs llama (and Mistral, which llama.cpp files as llama), qwen2, qwen3, gemma3 and phi3",
                path.display()
            )))
            }
        };
        let get = |k: &str| -> Result<&gguf_file::Value> {
            let key = format!("{arch_s}.{k}");
            ct.metadata.get(&key).ok_or_else(|| {
                usage(format!(
                    "{}: GGUF metadata is missing key '{key}'",
                    path.display()
                ))
            })
        };
        let u = |k: &str| -> Result<usize> {
            Ok(get(k)?
                .to_u32()
                .with_context(|| format!("{}: '{arch_s}.{k}' is not an integer", path.display()))?
                as usize)
        };
        let f = |k: &str, d: f32| -> f32 { get(k).and_then(|v| Ok(v.to_f32()?)).unwrap_or(d) };
        // Rope scaling changes the rope angles: linear is honoured (as frequency divisors; Llama
        // 3's own scaling arrives as the rope_freqs.weight tensor), any other type refused.
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let head_dim = u("attention.key_length").unwrap_or(n_embd / n_head.max(1));
        // The rotated part of each head (Phi-4-mini rotates 96 of 128).
        let n_rot = u("rope.dimension_count").unwrap_or(head_dim);
        let rope_theta = f(
            "rope.freq_base",
            if arch == Arch::Gemma3 {
                1_000_000.0
            } else {
                10_000.0
            },
        );
        let mut rope_mscale = 1.0;
        let rope_factors = match get("rope.scaling.type") {
            Ok(t) => match t.to_string().map(|s| s.as_str()).unwrap_or("?") {
                "none" => None,
                "yarn" if arch != Arch::Gemma3 => {
                    let key = |k: &str| format!("{arch_s}.rope.scaling.{k}");
                    let factor = f("rope.scaling.factor", 0.0);
                    // llama.cpp writes the original context as u32.
                    let orig = get("rope.scaling.original_context_length")
                        .ok()
                        .and_then(|v| v.to_u32().ok().map(|x| x as f32).or_else(|| v.to_f32().ok()))
                        .unwrap_or(0.0);
                    if !(factor.is_finite() && factor > 0.0 && orig > 0.0) {
                        return Err(usage(format!(
                            "{}: GGUF metadata '{}' is yarn but '{}' or '{}' is missing or not positive",
                            path.display(),
                            key("type"),
                            key("factor"),
                            key("original_context_length")
                        )));
                    }
                    for k in ["attn_factor", "yarn_attn_factor", "yarn_log_multiplier"] {
                        if let Ok(v) = get(&format!("rope.scaling.{k}")) {
                            let v = v.to_f32().unwrap_or(f32::NAN);
                            if v != 1.0 && !(k == "yarn_log_multiplier" && v == 0.0) {
                                return Err(usage(format!(
                                    "{}: GGUF metadata '{}' is {v}; qeval implements YaRN with llama.cpp's default magnitude scale only, and refuses rather than compute a different model",
                                    path.display(),
                                    key(k)
                                )));
                            }
                        }
                    }
                    let y = Yarn {
                        factor,
                        original_context: orig,
                        beta_fast: f("rope.scaling.yarn_beta_fast", 32.0),
                        beta_slow: f("rope.scaling.yarn_beta_slow", 1.0),
                        ext_factor: f("rope.scaling.yarn_ext_factor", 1.0),
                    };
                    let (div, mscale) = y.factors(n_rot, rope_theta);
                    rope_mscale = mscale;
                    Some(div)
                }
                "linear" if arch != Arch::Gemma3 => {
                    let factor = f("rope.scaling.factor", 0.0);
                    if !(factor.is_finite() && factor > 0.0) {
                        return Err(usage(format!(
                            "{}: GGUF metadata '{arch_s}.rope.scaling.type' is linear but '{arch_s}.rope.scaling.factor' is missing or not positive",
                            path.display()
                        )));
                    }
                    Some(vec![factor; n_rot / 2])
                }
                t => {
                    return Err(usage(format!(
                        "{}: GGUF metadata '{arch_s}.rope.scaling.type' is '{t}'; qeval implements linear and yarn rope scaling (and Llama 3's rope_freqs) for {arch_s}, and refuses rather than compute a different model",
                        path.display()
                    )))
                }
            },
            Err(_) => None,
        };
        // llama.cpp multiplies the rope's cos and sin by `rope.scaling.attn_factor` whatever
        // the scaling (Phi-3's LongRoPE writes it); under YaRN a value other than 1 was refused.
        if let Ok(v) = get("rope.scaling.attn_factor") {
            let a = v.to_f32().unwrap_or(f32::NAN);
            if !(a.is_finite() && a > 0.0) {
                return Err(usage(format!(
                    "{}: GGUF metadata '{arch_s}.rope.scaling.attn_factor' is {a}, not a positive number",
                    path.display()
                )));
            }
            rope_mscale *= a;
        }
        // A sliding window: Gemma 3's local layers (512 if unstated); any other architecture's
        // stated window (Mistral, Phi-3) applies to every layer. 0 means none (Phi-4's files).
        let n_layer = u("block_count")?;
        let window = u("attention.sliding_window").ok().filter(|&w| w > 0);
        let (sliding_window, sliding_window_pattern) = match arch {
            // A stated 0 stays, and is refused as out of range by `check`.
            Arch::Gemma3 => (Some(u("attention.sliding_window").unwrap_or(512)), 6),
            _ => (window, n_layer + 1),
        };
        // LongRoPE: the original context decides between the short and the long factors
        // (read from the rope_factors_* tensors with the header).
        let rope_original_context = if arch == Arch::Phi3 {
            get("rope.scaling.original_context_length")
                .ok()
                .and_then(|v| v.to_u32().ok())
                .map(|x| x as usize)
        } else {
            None
        };
        let vocab_size = match ct.metadata.get("tokenizer.ggml.tokens") {
            Some(gguf_file::Value::Array(a)) => a.len(),
            _ => u("vocab_size")?,
        };
        let cfg = ModelConfig {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_kv_head: u("attention.head_count_kv").unwrap_or(n_head),
            head_dim,
            n_ff: u("feed_forward_length")?,
            vocab_size,
            rms_eps: f("attention.layer_norm_rms_epsilon", 1e-6) as f64,
            rope_theta,
            rope_theta_local: if arch == Arch::Gemma3 {
                10_000.0
            } else {
                rope_theta
            },
            sliding_window,
            sliding_window_pattern,
            context_length: u("context_length")?,
            rope_freq_factors: rope_factors,
            rope_mscale,
            rope_dims: (n_rot != head_dim).then_some(n_rot),
            rope_freq_factors_long: None,
            rope_original_context,
        };
        cfg.check(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Read the configuration from a Hugging Face `config.json`.
    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| usage(format!("{}: not valid JSON: {e}", path.display())))?;
        let v = v.get("text_config").cloned().unwrap_or(v);
        let model_type = v
            .get("model_type")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        let arch = match model_type.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" | "gemma3_text" => Arch::Gemma3,
            // Mistral is llama with a sliding window (honoured below), as llama.cpp converts it.
            "mistral" => Arch::Llama,
            "phi3" => Arch::Phi3,
            "" => {
                return Err(usage(format!(
                    "{}: missing key 'model_type'; expected one of llama, mistral, qwen2, qwen3, gemma3_text, phi3",
                    path.display()
                )))
            }
            other => {
                return Err(usage(format!(
                    "{}: model_type '{other}' is not supported; qeval runs llama, mistral, qwen2, qwen3, gemma3 and phi3",
                    path.display()
                )))
            }
        };
        match arch {
            Arch::Qwen2 => refuse_unimplemented_qwen2(&v, path)?,
            Arch::Phi3 | Arch::Llama => refuse_unimplemented_llama_like(&v, path, &model_type)?,
            Arch::Qwen3 | Arch::Gemma3 => {}
        }
        let req = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| {
                    usage(format!(
                        "{}: missing or non-integer key '{k}'",
                        path.display()
                    ))
                })
        };
        let opt_f = |k: &str, d: f64| v.get(k).and_then(|x| x.as_f64()).unwrap_or(d);
        let n_embd = req("hidden_size")?;
        let n_head = req("num_attention_heads")?;
        let head_dim = v
            .get("head_dim")
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .unwrap_or(n_embd / n_head.max(1));
        let n_rot = partial_rotary_dims(&v, path, arch, head_dim)?;
        let rope = rope_from_hf(
            &v,
            path,
            arch,
            n_rot,
            opt_f(
                "rope_theta",
                if arch == Arch::Gemma3 {
                    1_000_000.0
                } else {
                    10_000.0
                },
            ) as f32,
        )?;
        let pattern = v
            .get("sliding_window_pattern")
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .or_else(|| {
                // layer_types: the first full_attention layer index + 1 is the pattern
                v.get("layer_types")
                    .and_then(|lt| lt.as_array())
                    .and_then(|a| {
                        a.iter()
                            .position(|t| t.as_str() == Some("full_attention"))
                            .map(|p| p + 1)
                    })
            })
            .unwrap_or(6);
        let n_layer = req("num_hidden_layers")?;
        // Gemma 3's local layers; every layer of a Mistral or Phi-3 model that states a window.
        let (sliding_window, sliding_window_pattern) = match arch {
            Arch::Gemma3 => (
                Some(
                    v.get("sliding_window")
                        .and_then(|x| x.as_u64())
                        .unwrap_or(512) as usize,
                ),
                pattern,
            ),
            Arch::Llama | Arch::Phi3 => (
                v.get("sliding_window")
                    .and_then(|x| x.as_u64())
                    .filter(|&w| w > 0)
                    .map(|w| w as usize),
                n_layer + 1,
            ),
            Arch::Qwen2 | Arch::Qwen3 => (None, n_layer + 1),
        };
        let cfg = ModelConfig {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_kv_head: v
                .get("num_key_value_heads")
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .unwrap_or(n_head),
            head_dim,
            n_ff: req("intermediate_size")?,
            vocab_size: req("vocab_size")?,
            rms_eps: opt_f("rms_norm_eps", 1e-6),
            rope_theta: rope.theta,
            rope_theta_local: if arch == Arch::Gemma3 {
                opt_f("rope_local_base_freq", 10_000.0) as f32
            } else {
                rope.theta
            },
            sliding_window,
            sliding_window_pattern,
            context_length: req("max_position_embeddings")?,
            rope_freq_factors: rope.factors,
            rope_mscale: rope.mscale,
            rope_dims: (n_rot != head_dim).then_some(n_rot),
            rope_freq_factors_long: rope.long_factors,
            rope_original_context: rope.original_context,
        };
        cfg.check(&path.display().to_string())?;
        Ok(cfg)
    }
}

/// Qwen2 `config.json` keys that change the forward pass in ways qeval does not implement:
/// refused, naming the key, rather than silently computing another model.
fn refuse_unimplemented_qwen2(v: &serde_json::Value, path: &Path) -> Result<()> {
    let refuse = |key: &str, value: &serde_json::Value, why: &str| {
        Err(usage(format!(
            "{}: key '{key}' is {value}, but qeval does not implement {why} for qwen2 and refuses rather than compute a different model",
            path.display()
        )))
    };
    if let Some(x) = v.get("use_sliding_window") {
        if x.as_bool() == Some(true) {
            return refuse("use_sliding_window", x, "sliding-window attention");
        }
    }
    if let Some(lt) = v.get("layer_types").and_then(|x| x.as_array()) {
        if lt.iter().any(|t| t.as_str() != Some("full_attention")) {
            return refuse(
                "layer_types",
                &serde_json::Value::String("not all full_attention".into()),
                "sliding-window attention",
            );
        }
    }
    if let Some(x) = v.get("hidden_act") {
        if x.as_str() != Some("silu") {
            return refuse("hidden_act", x, "activations other than silu");
        }
    }
    Ok(())
}

/// Llama-family `config.json` keys (llama, mistral, phi3) that change the forward pass and
/// qeval does not implement: refused, naming the key.
fn refuse_unimplemented_llama_like(
    v: &serde_json::Value,
    path: &Path,
    model_type: &str,
) -> Result<()> {
    let refuse = |key: &str, value: &serde_json::Value, why: &str| {
        Err(usage(format!(
            "{}: key '{key}' is {value}, but qeval does not implement {why} for {model_type} and refuses rather than compute a different model",
            path.display()
        )))
    };
    if let Some(x) = v.get("hidden_act") {
        if x.as_str() != Some("silu") {
            return refuse("hidden_act", x, "activations other than silu");
        }
    }
    for key in ["attention_bias", "mlp_bias"] {
        if let Some(x) = v.get(key) {
            if x.as_bool() == Some(true) {
                return refuse(key, x, "biases on these projections");
            }
        }
    }
    if let Some(lt) = v.get("layer_types").and_then(|x| x.as_array()) {
        let first = lt.first().and_then(|t| t.as_str());
        if lt.iter().any(|t| t.as_str() != first) {
            return refuse(
                "layer_types",
                &serde_json::Value::String("a mix of layer types".into()),
                "layers of different attention kinds",
            );
        }
    }
    Ok(())
}

/// The rotated dimensions of each head: `partial_rotary_factor` (top level or in
/// `rope_parameters`) of the head dimension, as transformers' Phi-3 computes it; honoured for
/// phi3, refused elsewhere (transformers' llama, qwen and gemma rotate whole heads).
fn partial_rotary_dims(
    v: &serde_json::Value,
    path: &Path,
    arch: Arch,
    head_dim: usize,
) -> Result<usize> {
    let f = v
        .get("partial_rotary_factor")
        .or_else(|| {
            v.get("rope_parameters")
                .and_then(|p| p.get("partial_rotary_factor"))
        })
        .and_then(|x| x.as_f64());
    let Some(f) = f else { return Ok(head_dim) };
    if f == 1.0 {
        return Ok(head_dim);
    }
    let n = (head_dim as f64 * f) as usize;
    if arch != Arch::Phi3 || !(f > 0.0 && f < 1.0) || n < 2 || !n.is_multiple_of(2) {
        return Err(usage(format!(
            "{}: key 'partial_rotary_factor' is {f}; qeval rotates part of each head for phi3 only (a factor in (0, 1) giving an even number of dimensions), and refuses rather than compute a different model",
            path.display()
        )));
    }
    Ok(n)
}

/// A `config.json`'s rope: base, frequency divisors (the short ones under LongRoPE), LongRoPE's
/// long divisors and original context, and the magnitude scale of cos and sin.
#[derive(Debug, Default)]
struct HfRope {
    theta: f32,
    factors: Option<Vec<f32>>,
    long_factors: Option<Vec<f32>>,
    original_context: Option<usize>,
    mscale: f32,
}

/// The rope base and scaling of a `config.json`. transformers >= 5 writes `rope_parameters`
/// (with `rope_theta` inside); older configs write `rope_theta` and `rope_scaling`, whose type
/// is `rope_type` or, older still, `type`. Honoured: `default`, `linear` (every frequency
/// divided by `factor`), `llama3`, `yarn` (Qwen's long-context setting) and, for phi3,
/// `longrope` (older `su`); any other type (dynamic, ...) and YaRN keys beyond llama.cpp's
/// defaults are refused naming the key and the file, since ignoring them computes a different
/// model. `head_dim` is the rotated part of a head.
fn rope_from_hf(
    v: &serde_json::Value,
    path: &Path,
    arch: Arch,
    head_dim: usize,
    theta: f32,
) -> Result<HfRope> {
    let plain = |theta| HfRope {
        theta,
        mscale: 1.0,
        ..Default::default()
    };
    let (key, params) = match (v.get("rope_parameters"), v.get("rope_scaling")) {
        (Some(p), _) if !p.is_null() => ("rope_parameters", p),
        (_, Some(p)) => ("rope_scaling", p),
        _ => return Ok(plain(theta)),
    };
    if params.is_null() {
        return Ok(plain(theta));
    }
    let theta = match params.get("rope_theta").and_then(|x| x.as_f64()) {
        Some(t) => t as f32,
        None => theta,
    };
    let kind = params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let refuse = |why: String| {
        Err(usage(format!(
            "{}: key '{key}' has rope type '{kind}', not implemented for {}: {why}; qeval refuses rather than compute a different model",
            path.display(),
            arch.name()
        )))
    };
    let mut mscale = 1.0;
    let factors = match kind {
        "default" => None,
        "yarn" if arch == Arch::Gemma3 => {
            return refuse("YaRN on Gemma 3's global layers is not implemented".into())
        }
        "yarn" => {
            let g = |k: &str| params.get(k).and_then(|x| x.as_f64());
            for k in ["mscale", "mscale_all_dim", "attention_factor"] {
                if params.get(k).is_some_and(|x| !x.is_null()) {
                    return refuse(format!(
                        "'{k}' (a magnitude scale other than llama.cpp's default) is not implemented"
                    ));
                }
            }
            if params.get("truncate").and_then(|x| x.as_bool()) == Some(false) {
                return refuse("'truncate': false is not implemented".into());
            }
            let factor = match g("factor") {
                Some(f) if f.is_finite() && f > 0.0 => f as f32,
                _ => return refuse("yarn needs a positive 'factor'".into()),
            };
            let orig = g("original_max_position_embeddings")
                .or_else(|| v.get("max_position_embeddings").and_then(|x| x.as_f64()));
            let Some(orig) = orig else {
                return refuse("yarn needs 'original_max_position_embeddings'".into());
            };
            let y = Yarn {
                factor,
                original_context: orig as f32,
                beta_fast: g("beta_fast").unwrap_or(32.0) as f32,
                beta_slow: g("beta_slow").unwrap_or(1.0) as f32,
                ext_factor: 1.0,
            };
            let (div, m) = y.factors(head_dim, theta);
            mscale = m;
            Some(div)
        }
        "longrope" | "su" if arch == Arch::Phi3 => {
            let list = |k: &str| -> Option<Vec<f32>> {
                let a = params.get(k)?.as_array()?;
                a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
            };
            let (Some(short), Some(long)) = (list("short_factor"), list("long_factor")) else {
                return refuse(
                    "longrope needs the number lists 'short_factor' and 'long_factor'".into(),
                );
            };
            if short.len() != head_dim / 2 || long.len() != head_dim / 2 {
                return refuse(format!(
                    "'short_factor' and 'long_factor' must have {} entries (half the rotated dimensions), found {} and {}",
                    head_dim / 2,
                    short.len(),
                    long.len()
                ));
            }
            let max_pos = v.get("max_position_embeddings").and_then(|x| x.as_f64());
            let orig = params
                .get("original_max_position_embeddings")
                .or_else(|| v.get("original_max_position_embeddings"))
                .and_then(|x| x.as_f64());
            let Some(orig) = orig.filter(|o| *o >= 2.0) else {
                return refuse("longrope needs 'original_max_position_embeddings'".into());
            };
            // transformers' _compute_longrope_parameters: the magnitude scale from the context
            // extension unless `attention_factor` states it.
            let factor = match (max_pos, params.get("factor").and_then(|x| x.as_f64())) {
                (Some(m), _) => m / orig,
                (None, Some(f)) => f,
                (None, None) => 1.0,
            };
            mscale = match params.get("attention_factor").and_then(|x| x.as_f64()) {
                Some(a) if a.is_finite() && a > 0.0 => a as f32,
                Some(a) => return refuse(format!("'attention_factor' {a} is not positive")),
                None if factor <= 1.0 => 1.0,
                None => (1.0 + factor.ln() / orig.ln()).sqrt() as f32,
            };
            return Ok(HfRope {
                theta,
                factors: Some(short),
                long_factors: Some(long),
                original_context: Some(orig as usize),
                mscale,
            });
        }
        "llama3" => Some(llama3_freq_factors(params, head_dim, theta)?),
        // Gemma 3 scales only its global layers' rope; one set of divisors would scale all.
        "linear" if arch == Arch::Gemma3 => {
            return refuse("linear scaling of Gemma 3's global layers is not implemented".into())
        }
        "linear" => match params.get("factor").and_then(|x| x.as_f64()) {
            Some(f) if f.is_finite() && f > 0.0 => Some(vec![f as f32; head_dim / 2]),
            _ => return refuse("linear scaling needs a positive 'factor'".into()),
        },
        _ => {
            return refuse(
                "qeval implements default, linear, llama3 and yarn rope (and longrope for phi3)"
                    .into(),
            )
        }
    };
    Ok(HfRope {
        theta,
        factors,
        mscale,
        ..Default::default()
    })
}

/// YaRN rope scaling (llama.cpp's `rope_yarn`, transformers' `_compute_yarn_parameters`): each
/// rope frequency is a blend of the interpolated (divided by `factor`) and the original one,
/// by a ramp between the correction dimensions of `beta_fast` and `beta_slow` rotations over
/// the original context; cos and sin are scaled by 1 + 0.1 ln(factor).
struct Yarn {
    factor: f32,
    original_context: f32,
    beta_fast: f32,
    beta_slow: f32,
    ext_factor: f32,
}

impl Yarn {
    /// Per-dimension frequency divisors and the magnitude scale.
    fn factors(&self, head_dim: usize, theta: f32) -> (Vec<f32>, f32) {
        let n_dims = head_dim as f32;
        let corr_dim = |n_rot: f32| {
            n_dims * (self.original_context / (n_rot * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * theta.ln())
        };
        let low = corr_dim(self.beta_fast).floor().max(0.0);
        let high = corr_dim(self.beta_slow).ceil().min(n_dims - 1.0);
        let freq_scale = 1.0 / self.factor;
        let div = (0..head_dim / 2)
            .map(|i| {
                let y = (i as f32 - low) / (high - low).max(0.001);
                let ramp = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
                // theta = theta_extrap * (freq_scale * (1 - ramp) + ramp)
                1.0 / (freq_scale * (1.0 - ramp) + ramp)
            })
            .collect();
        let mscale = if self.ext_factor != 0.0 {
            1.0 + 0.1 * (1.0 / freq_scale).ln()
        } else {
            1.0
        };
        (div, mscale)
    }
}

/// Llama 3.x rope scaling as per-dimension divisors of the rope frequencies (what llama.cpp's
/// converter stores as `rope_freqs.weight`).
fn llama3_freq_factors(rs: &serde_json::Value, head_dim: usize, theta: f32) -> Result<Vec<f32>> {
    let g = |k: &str| rs.get(k).and_then(|x| x.as_f64());
    let factor = g("factor").unwrap_or(8.0);
    let low = g("low_freq_factor").unwrap_or(1.0);
    let high = g("high_freq_factor").unwrap_or(4.0);
    let old_ctx = g("original_max_position_embeddings").unwrap_or(8192.0);
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    Ok((0..head_dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0 / (theta as f64).powf(i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let f = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            f as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rope(v: serde_json::Value, arch: Arch) -> Result<(f32, Option<Vec<f32>>)> {
        rope_from_hf(&v, Path::new("/m/config.json"), arch, 64, 10_000.0)
            .map(|r| (r.theta, r.factors))
    }

    #[test]
    fn yarn_matches_transformers() {
        // Qwen2.5's long-context setting. Expected values from transformers'
        // _compute_yarn_parameters (truncate=True), run in Python: correction dims 23..40,
        // divisors 1 below, 4 above, 1.44680851 at dimension 30; attention factor 1.13862944.
        for v in [
            json!({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}),
            json!({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "rope_theta": 1e6}}),
        ] {
            let r = rope_from_hf(&v, Path::new("/m/config.json"), Arch::Qwen2, 128, 1e6).unwrap();
            let (theta, f, mscale) = (r.theta, r.factors, r.mscale);
            assert_eq!(theta, 1e6);
            let f = f.unwrap();
            assert_eq!(f.len(), 64);
            for (i, want) in [(0, 1.0), (21, 1.0), (30, 1.446_808_5), (40, 4.0), (63, 4.0)] {
                assert!((f[i] - want).abs() < 1e-5, "dim {i}: {} vs {want}", f[i]);
            }
            assert!((mscale - 1.138_629_4).abs() < 1e-6, "{mscale}");
        }
        // A magnitude scale other than the default is refused by name.
        let err = rope(
            json!({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "attention_factor": 0.8}}),
            Arch::Qwen2,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("attention_factor") && err.contains("/m/config.json"),
            "{err}"
        );
    }

    #[test]
    fn rope_keys_are_honoured_in_every_spelling() {
        // No scaling, or an explicit default, or null.
        assert_eq!(rope(json!({}), Arch::Llama).unwrap(), (10_000.0, None));
        assert_eq!(
            rope(json!({"rope_scaling": null}), Arch::Llama).unwrap(),
            (10_000.0, None)
        );
        // transformers >= 5: rope_parameters carries rope_theta.
        let (theta, f) = rope(
            json!({"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}),
            Arch::Llama,
        )
        .unwrap();
        assert_eq!((theta, f), (500_000.0, None));
        // Linear, in the older `type` spelling: every frequency divided by the factor.
        let (_, f) = rope(
            json!({"rope_scaling": {"type": "linear", "factor": 4.0}}),
            Arch::Qwen2,
        )
        .unwrap();
        assert_eq!(f, Some(vec![4.0; 32]));
        // llama3 in both spellings gives the same divisors, from 1 (high frequencies) to the
        // factor (low ones).
        let l3 = json!({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192});
        let mut a = l3.clone();
        a["rope_type"] = "llama3".into();
        let mut b = l3.clone();
        b["type"] = "llama3".into();
        let fa = rope(json!({"rope_scaling": a}), Arch::Llama)
            .unwrap()
            .1
            .unwrap();
        let fb = rope(
            json!({"rope_parameters": b, "rope_theta": 10_000.0}),
            Arch::Llama,
        )
        .unwrap()
        .1
        .unwrap();
        assert_eq!(fa, fb);
        assert_eq!(fa[0], 1.0);
        assert_eq!(fa[31], 8.0);
    }

    #[test]
    fn rope_types_not_implemented_are_refused_by_key_and_file() {
        for (v, key, kind) in [
            (
                json!({"rope_scaling": {"rope_type": "longrope", "factor": 4.0}}),
                "rope_scaling",
                "longrope",
            ),
            (
                json!({"rope_parameters": {"type": "dynamic", "factor": 2.0}}),
                "rope_parameters",
                "dynamic",
            ),
            (
                json!({"rope_scaling": {"rope_type": "linear"}}),
                "rope_scaling",
                "linear",
            ),
        ] {
            let err = rope(v, Arch::Llama).unwrap_err().to_string();
            assert!(err.contains("/m/config.json"), "{err}");
            assert!(err.contains(&format!("key '{key}'")), "{err}");
            assert!(err.contains(&format!("'{kind}'")), "{err}");
        }
        let err = rope(
            json!({"rope_scaling": {"rope_type": "linear", "factor": 8.0}}),
            Arch::Gemma3,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Gemma 3"), "{err}");
    }
}
