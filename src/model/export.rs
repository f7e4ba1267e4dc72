//! Writing a model as a Hugging Face safetensors directory (config.json, tokenizer.json,
//! model.safetensors) from any source: used to turn the GGUF test models into safetensors
//! models, and to build small synthetic models for the tests of the k-quant paths.

use super::config::{Arch, ModelConfig};
use super::source::{hf_name, unpermute_bias, unpermute_qk, ModelSource};
use anyhow::{Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// The `config.json` a Hugging Face checkpoint of `cfg` would have.
pub fn hf_config_json(cfg: &ModelConfig, tied: bool) -> serde_json::Value {
    let model_type = match cfg.arch {
        // transformers' llama has no sliding window; Mistral is llama with one.
        Arch::Llama if cfg.sliding_window.is_some() => "mistral",
        Arch::Llama => "llama",
        Arch::Phi3 => "phi3",
        Arch::Qwen2 => "qwen2",
        Arch::Qwen3 => "qwen3",
        Arch::Gemma3 => "gemma3_text",
    };
    let mut v = serde_json::json!({
        "model_type": model_type,
        "hidden_size": cfg.n_embd,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "intermediate_size": cfg.n_ff,
        "vocab_size": cfg.vocab_size,
        "rms_norm_eps": cfg.rms_eps,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.context_length,
        "tie_word_embeddings": tied,
    });
    if cfg.arch == Arch::Qwen2 {
        v["use_sliding_window"] = false.into();
        v["hidden_act"] = "silu".into();
    }
    if cfg.arch == Arch::Phi3 || (cfg.arch == Arch::Llama && cfg.sliding_window.is_some()) {
        v["hidden_act"] = "silu".into();
        v["sliding_window"] = cfg.sliding_window.into();
    }
    if cfg.arch == Arch::Phi3 {
        if cfg.n_rot() != cfg.head_dim {
            v["partial_rotary_factor"] = (cfg.n_rot() as f64 / cfg.head_dim as f64).into();
        }
        if let (Some(short), Some(long), Some(orig)) = (
            &cfg.rope_freq_factors,
            &cfg.rope_freq_factors_long,
            cfg.rope_original_context,
        ) {
            v["original_max_position_embeddings"] = orig.into();
            v["rope_scaling"] = serde_json::json!({
                "type": "longrope",
                "short_factor": short,
                "long_factor": long,
                "attention_factor": cfg.rope_mscale,
            });
        }
    }
    if cfg.arch == Arch::Gemma3 {
        v["rope_local_base_freq"] = cfg.rope_theta_local.into();
        v["sliding_window"] = cfg.sliding_window.unwrap_or(512).into();
        v["sliding_window_pattern"] = cfg.sliding_window_pattern.into();
    }
    v
}

/// Convert canonical tensors to Hugging Face names and layout.
pub fn to_hf(
    cfg: &ModelConfig,
    canonical: Vec<(String, Tensor)>,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, t) in canonical {
        let Some(h) = hf_name(&name, cfg.arch) else {
            continue;
        };
        let t = match cfg.arch {
            Arch::Llama if name.ends_with("attn_q.weight") => unpermute_qk(&t, cfg.n_head)?,
            Arch::Llama if name.ends_with("attn_k.weight") => unpermute_qk(&t, cfg.n_kv_head)?,
            Arch::Llama if name.ends_with("attn_q.bias") => unpermute_bias(&t, cfg.n_head)?,
            Arch::Llama if name.ends_with("attn_k.bias") => unpermute_bias(&t, cfg.n_kv_head)?,
            Arch::Gemma3 if name.ends_with("norm.weight") => (t - 1.0)?,
            _ => t,
        };
        out.insert(h, t);
    }
    Ok(out)
}

/// Write a safetensors model directory from canonical f32 tensors.
pub fn write_dir(
    dir: &Path,
    cfg: &ModelConfig,
    canonical: Vec<(String, Tensor)>,
    tokenizer_json: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tied = !canonical.iter().any(|(n, _)| n == "output.weight");
    let tensors = to_hf(cfg, canonical)?;
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&hf_config_json(cfg, tied))?,
    )?;
    std::fs::copy(tokenizer_json, dir.join("tokenizer.json"))
        .with_context(|| format!("cannot copy {}", tokenizer_json.display()))?;
    Ok(())
}

/// Dequantize every tensor of `src` and write it as a safetensors directory.
pub fn export_source(src: &ModelSource, dir: &Path, tokenizer_json: &Path) -> Result<()> {
    let mut v = Vec::new();
    for m in &src.tensors {
        v.push((m.name.clone(), src.load_f32(&m.name)?));
    }
    write_dir(dir, &src.config, v, tokenizer_json)
}
