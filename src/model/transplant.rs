//! Architecture transplants: a real llama GGUF's weights rewritten as a phi3 file (Q/K/V fused
//! into `attn_qkv`, gate and up fused into `ffn_up`, Q/K rows back in the NEOX layout phi3's
//! rope uses), optionally with a partial rotary dimension count, LongRoPE factors or a sliding
//! window. With none of those options the phi3 file computes exactly the llama model; with
//! them it is a model of its own that qeval and llama.cpp can both run. No phi3 file can be
//! downloaded here, so this is how the phi3 forward pass is checked against
//! `llama-perplexity` (`examples/transplant.rs` writes the files the comparison uses; the
//! tests write the same ones).

use super::config::Arch;
use super::source::{unpermute_qk, ModelSource};
use crate::error::usage;
use anyhow::{Context, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

/// LongRoPE factors and the context they apply beyond.
#[derive(Debug, Clone)]
pub struct LongRope {
    pub original_context: u32,
    pub short: Vec<f32>,
    pub long: Vec<f32>,
    /// `rope.scaling.attn_factor`, the magnitude scale of cos and sin.
    pub attn_factor: f32,
}

impl LongRope {
    /// A deterministic pair for `n_rot` rotated dimensions: short factors rising from 1 to
    /// 1.5, long ones from 1 to `stretch` (the shape of Phi-3's: the low frequencies
    /// stretched most), and the attention factor transformers computes for a context
    /// extension of `stretch`.
    pub fn ramp(n_rot: usize, original_context: u32, stretch: f32) -> Self {
        let half = n_rot / 2;
        let t = |i: usize| i as f32 / (half.max(2) - 1) as f32;
        let short = (0..half).map(|i| 1.0 + 0.5 * t(i)).collect();
        let long = (0..half).map(|i| 1.0 + (stretch - 1.0) * t(i)).collect();
        let attn_factor =
            (1.0 + (stretch as f64).ln() / (original_context as f64).ln()).sqrt() as f32;
        LongRope {
            original_context,
            short,
            long,
            attn_factor,
        }
    }
}

/// What the phi3 file adds to the llama model.
#[derive(Debug, Clone, Default)]
pub struct Phi3Options {
    /// Rotated dimensions of each head (`phi3.rope.dimension_count`); None: the whole head.
    pub rope_dims: Option<usize>,
    pub longrope: Option<LongRope>,
    /// `phi3.attention.sliding_window` (llama.cpp ignores it for phi3; qeval honours it).
    pub sliding_window: Option<u32>,
}

/// The phi3 files the comparison with llama.cpp uses, for a llama model of `head_dim`-wide
/// heads scored with a 512-token context: the plain transplant (the llama model itself), three
/// quarters of each head rotated (Phi-4-mini's factor), and LongRoPE over that with an original
/// context above 512 (short factors apply) and below it (long factors apply).
pub fn phi3_checks(head_dim: usize) -> Vec<(&'static str, Phi3Options)> {
    let part = head_dim * 3 / 4 / 2 * 2;
    vec![
        ("phi3", Phi3Options::default()),
        (
            "phi3-partial",
            Phi3Options {
                rope_dims: Some(part),
                ..Default::default()
            },
        ),
        (
            "phi3-longrope-short",
            Phi3Options {
                rope_dims: Some(part),
                longrope: Some(LongRope::ramp(part, 4096, 8.0)),
                ..Default::default()
            },
        ),
        (
            "phi3-longrope-long",
            Phi3Options {
                rope_dims: Some(part),
                longrope: Some(LongRope::ramp(part, 256, 32.0)),
                ..Default::default()
            },
        ),
    ]
}

/// Write `src` (a llama GGUF) as a phi3 GGUF at `dst`: matrices f16, norms f32, metadata
/// copied with `llama.` keys renamed `phi3.`.
pub fn llama_to_phi3(src: &Path, dst: &Path, opts: &Phi3Options) -> Result<()> {
    let model = ModelSource::open(src)?;
    let cfg = &model.config;
    if cfg.arch != Arch::Llama {
        return Err(usage(format!(
            "{}: a phi3 transplant starts from a llama GGUF; this is {}",
            src.display(),
            cfg.arch.name()
        )));
    }
    let content = model
        .gguf_content()
        .with_context(|| format!("{} is not a GGUF file", src.display()))?;
    let n_rot = opts.rope_dims.unwrap_or(cfg.head_dim);
    let mut md: Vec<(String, Value)> = Vec::new();
    for (k, v) in &content.metadata {
        let k = match k.strip_prefix("llama.") {
            Some(rest) => format!("phi3.{rest}"),
            None => k.clone(),
        };
        if k.starts_with("phi3.rope.") || k == "general.file_type" {
            continue;
        }
        md.push((k, v.clone()));
    }
    md.retain(|(k, _)| k != "general.architecture");
    md.push(("general.architecture".into(), Value::String("phi3".into())));
    md.push(("general.file_type".into(), Value::U32(1)));
    md.push(("phi3.rope.freq_base".into(), Value::F32(cfg.rope_theta)));
    md.push(("phi3.rope.dimension_count".into(), Value::U32(n_rot as u32)));
    if let Some(w) = opts.sliding_window {
        md.push(("phi3.attention.sliding_window".into(), Value::U32(w)));
    }
    let f16 = |t: &Tensor| QTensor::quantize(t, GgmlDType::F16);
    let f32q = |t: &Tensor| QTensor::quantize(t, GgmlDType::F32);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    if let Some(lr) = &opts.longrope {
        if lr.short.len() != n_rot / 2 || lr.long.len() != n_rot / 2 {
            return Err(usage(format!(
                "LongRoPE factors must have {} entries (half of {n_rot} rotated dimensions)",
                n_rot / 2
            )));
        }
        md.push((
            "phi3.rope.scaling.original_context_length".into(),
            Value::U32(lr.original_context),
        ));
        md.push((
            "phi3.rope.scaling.attn_factor".into(),
            Value::F32(lr.attn_factor),
        ));
        let dev = &Device::Cpu;
        tensors.push((
            "rope_factors_long.weight".into(),
            f32q(&Tensor::new(lr.long.as_slice(), dev)?)?,
        ));
        tensors.push((
            "rope_factors_short.weight".into(),
            f32q(&Tensor::new(lr.short.as_slice(), dev)?)?,
        ));
    }
    let load = |n: &str| model.load_f32(n);
    for t in &model.tensors {
        let name = &t.name;
        let layer = name.strip_prefix("blk.").and_then(|r| r.split_once('.'));
        match layer {
            Some((i, "attn_q.weight")) => {
                let p = |s: &str| format!("blk.{i}.{s}.weight");
                // Canonical llama Q/K rows are permuted for interleaved rope: back to the
                // halves layout that phi3's NEOX rope rotates.
                let q = unpermute_qk(&load(&p("attn_q"))?, cfg.n_head)?;
                let k = unpermute_qk(&load(&p("attn_k"))?, cfg.n_kv_head)?;
                let v = load(&p("attn_v"))?;
                tensors.push((p("attn_qkv"), f16(&Tensor::cat(&[&q, &k, &v], 0)?)?));
            }
            Some((i, "ffn_gate.weight")) => {
                let p = |s: &str| format!("blk.{i}.{s}.weight");
                let g = load(&p("ffn_gate"))?;
                let u = load(&p("ffn_up"))?;
                tensors.push((p("ffn_up"), f16(&Tensor::cat(&[&g, &u], 0)?)?));
            }
            Some((_, "attn_k.weight" | "attn_v.weight" | "ffn_up.weight")) => {}
            Some((_, rest)) if rest.ends_with(".bias") => {
                return Err(usage(format!(
                    "{}: tensor '{name}': phi3 has no biases",
                    src.display()
                )))
            }
            _ => {
                let x = load(name)?;
                let q = if t.shape.len() < 2 {
                    f32q(&x)?
                } else {
                    f16(&x)?
                };
                tensors.push((name.clone(), q));
            }
        }
    }
    let mdr: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tr: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = dst.with_extension("gguf.partial");
    let mut o = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    gguf_file::write(&mut o, &mdr, &tr)?;
    drop(o);
    std::fs::rename(&tmp, dst).with_context(|| format!("cannot write {}", dst.display()))?;
    Ok(())
}

/// A copy of a GGUF with metadata keys set (the rest, and every tensor, as they are).
pub fn with_keys(src: &Path, dst: &Path, keys: &[(&str, Value)]) -> Result<()> {
    let mut f =
        std::fs::File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
    let ct = gguf_file::Content::read(&mut f)?;
    let mut md: Vec<(String, Value)> = ct
        .metadata
        .iter()
        .filter(|(k, _)| !keys.iter().any(|(n, _)| n == k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    md.extend(keys.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort_by_key(|n| ct.tensor_infos[*n].offset);
    let mut tensors = Vec::new();
    for n in names {
        tensors.push((n.to_string(), ct.tensor(&mut f, n, &Device::Cpu)?));
    }
    let mdr: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tr: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut o = std::io::BufWriter::new(
        std::fs::File::create(dst).with_context(|| format!("cannot create {}", dst.display()))?,
    );
    gguf_file::write(&mut o, &mdr, &tr)?;
    Ok(())
}
