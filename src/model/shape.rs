//! A model's exact tensor shapes without its weights (`--model shape:NAME` or
//! `shape:CONFIG.json`): the architecture fields of a models.toml entry (`[models.NAME.shape]`)
//! or a Hugging Face config.json become a [`ModelConfig`] and the list of canonical tensors that
//! model has, and each tensor's values are made on demand from a seed: uniform noise of the
//! scale of trained weights (σ = 0.02) for matrices and embeddings, ones for norms. Speed and
//! memory do not depend on the values, so every level of such a model measures what the real
//! one would; its quality means nothing and is never measured.

use super::config::{Arch, ModelConfig};
use super::source::{required_layer_biases, required_layer_tensors, TensorMeta};
use crate::error::usage;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Deserialize;
use std::path::Path;

/// The architecture fields of a models.toml entry (`[models.NAME.shape]`): what a model's
/// tensor shapes follow from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeSpec {
    /// Transformer blocks.
    pub layers: usize,
    /// Embedding width (hidden size).
    pub hidden: usize,
    /// Feed-forward (intermediate) width.
    pub ffn: usize,
    /// Attention (query) heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding and the output).
    pub vocab: usize,
    /// Whether the output layer reuses the token embedding (no `output.weight`).
    pub tied: bool,
    /// Trained context length.
    pub context: usize,
    /// Rope base.
    pub rope_theta: f32,
    /// Gemma 3: the local layers' window (every `sliding_window_pattern`-th layer is global).
    pub sliding_window: Option<usize>,
    pub sliding_window_pattern: Option<usize>,
}

/// A model known by its shape only.
#[derive(Debug, Clone)]
pub struct Shape {
    /// How `--model` named it (`shape:qwen3-8b`, `shape:path/config.json`).
    pub name: String,
    pub config: ModelConfig,
    pub tied: bool,
}

impl ShapeSpec {
    /// The model configuration of an architecture with these fields.
    pub fn config(&self, arch: Arch, what: &str) -> Result<ModelConfig> {
        let gemma = arch == Arch::Gemma3;
        let cfg = ModelConfig {
            arch,
            n_layer: self.layers,
            n_embd: self.hidden,
            n_head: self.heads,
            n_kv_head: self.kv_heads,
            head_dim: self.head_dim,
            n_ff: self.ffn,
            vocab_size: self.vocab,
            rms_eps: 1e-6,
            rope_theta: self.rope_theta,
            rope_theta_local: 10_000.0,
            sliding_window: if gemma {
                Some(self.sliding_window.unwrap_or(512))
            } else {
                None
            },
            // Read only where there is a window; as the GGUF and config.json readers default
            // (6 for Gemma 3; no global layer for the others).
            sliding_window_pattern: if gemma {
                self.sliding_window_pattern.unwrap_or(6)
            } else {
                self.layers + 1
            },
            context_length: self.context,
            rope_freq_factors: None,
            rope_mscale: 1.0,
            rope_dims: None,
            rope_freq_factors_long: None,
            rope_original_context: None,
        };
        if self.sliding_window.is_some() && !gemma {
            return Err(usage(format!(
                "{what}: sliding_window is set but architecture {} has no sliding-window layers",
                arch.name()
            )));
        }
        cfg.check(what)?;
        Ok(cfg)
    }
}

impl Shape {
    /// `shape:CONFIG.json`: a Hugging Face config.json (the output is tied when
    /// `tie_word_embeddings` says so; when absent, transformers' default for the architecture:
    /// tied for Gemma 3, untied for the others).
    pub fn from_hf_config(name: &str, path: &Path) -> Result<Self> {
        let config = ModelConfig::from_hf_config(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| usage(format!("{}: not valid JSON: {e}", path.display())))?;
        let v = v.get("text_config").cloned().unwrap_or(v);
        let tied = v
            .get("tie_word_embeddings")
            .and_then(|t| t.as_bool())
            .unwrap_or(config.arch == Arch::Gemma3);
        Ok(Shape {
            name: name.to_string(),
            config,
            tied,
        })
    }

    /// Every tensor of the model: canonical names, candle shapes (rows first), stored as f32.
    pub fn tensors(&self) -> Vec<TensorMeta> {
        let c = &self.config;
        let (h, q, kv) = (c.n_embd, c.n_head * c.head_dim, c.n_kv_head * c.head_dim);
        let t = |name: String, shape: Vec<usize>| TensorMeta {
            name,
            shape,
            source_dtype: "f32".into(),
        };
        let mut out = vec![t("token_embd.weight".into(), vec![c.vocab_size, h])];
        for i in 0..c.n_layer {
            for kind in required_layer_tensors(c.arch) {
                let shape = match *kind {
                    "attn_q" => vec![q, h],
                    "attn_k" | "attn_v" => vec![kv, h],
                    "attn_output" => vec![h, q],
                    "attn_q_norm" | "attn_k_norm" => vec![c.head_dim],
                    "attn_qkv" => vec![q + 2 * kv, h],
                    "ffn_up" if c.arch == Arch::Phi3 => vec![2 * c.n_ff, h],
                    "ffn_gate" | "ffn_up" => vec![c.n_ff, h],
                    "ffn_down" => vec![h, c.n_ff],
                    _ => vec![h],
                };
                out.push(t(format!("blk.{i}.{kind}.weight"), shape));
            }
            for kind in required_layer_biases(c.arch) {
                let n = if *kind == "attn_q" { q } else { kv };
                out.push(t(format!("blk.{i}.{kind}.bias"), vec![n]));
            }
        }
        out.push(t("output_norm.weight".into(), vec![h]));
        if !self.tied {
            out.push(t("output.weight".into(), vec![c.vocab_size, h]));
        }
        out
    }
}

/// The values of one tensor, the same for the same seed, name and size on every machine:
/// ones for norms, uniform noise of standard deviation 0.02 for everything else.
pub fn values(seed: u64, name: &str, n: usize) -> Vec<f32> {
    if name.ends_with("norm.weight") {
        return vec![1.0; n];
    }
    // FNV-1a of the name, mixed with the seed: each tensor its own stream.
    let mut key = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        key = (key ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let half_width = 0.02 * 3f32.sqrt();
    let mut v = vec![0f32; n];
    // Chunks of 1 Mi values, each from its own stream, so large tensors fill in parallel.
    v.par_chunks_mut(1 << 20).enumerate().for_each(|(i, c)| {
        let mut rng = ChaCha8Rng::seed_from_u64(key.wrapping_add(i as u64));
        for x in c {
            *x = rng.random_range(-half_width..half_width);
        }
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_seeded_and_scaled() {
        let a = values(7, "blk.0.attn_q.weight", 3 << 20);
        assert_eq!(a, values(7, "blk.0.attn_q.weight", 3 << 20));
        assert_ne!(a[..64], values(8, "blk.0.attn_q.weight", 64)[..]);
        assert_ne!(a[..64], values(7, "blk.0.attn_k.weight", 64)[..]);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd = (a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-4 && (sd - 0.02).abs() < 2e-4, "{mean} {sd}");
        assert!(values(7, "blk.3.ffn_norm.weight", 5)
            .iter()
            .all(|&x| x == 1.0));
    }

    #[test]
    fn inconsistent_fields_are_refused_by_name() {
        let s = ShapeSpec {
            layers: 2,
            hidden: 64,
            ffn: 128,
            heads: 3,
            kv_heads: 2,
            head_dim: 16,
            vocab: 100,
            tied: true,
            context: 128,
            rope_theta: 10000.0,
            sliding_window: Some(16),
            sliding_window_pattern: None,
        };
        let e = s.config(Arch::Gemma3, "m.toml: x").unwrap_err().to_string();
        assert!(e.contains("m.toml: x") && e.contains("kv heads 2"), "{e}");
        let e = ShapeSpec { heads: 4, ..s }
            .config(Arch::Llama, "m.toml: x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sliding_window"), "{e}");
    }
}
