//! `qeval quantize`: a level written as a GGUF file that llama.cpp and Ollama load, so the
//! level a user picked from a report can be deployed as exactly those bytes.
//!
//! From a GGUF source the file is what llama-quantize writes: the source's metadata copied
//! (its `quantize.*` keys dropped, since they describe how the source was made), then
//! `general.file_type` and `general.quantization_version` set as llama-quantize sets them, the
//! tensors in the source file's order, with the types and bytes of `recipe` and `ggml_quants`.
//! A safetensors source is refused: the metadata llama.cpp's converter writes (tokenizer
//! arrays, architecture keys) is not made here yet.

use super::quantize::{self, LevelWeights};
use super::weight::{write_gguf, Weight};
use super::Level;
use crate::error::usage;
use crate::model::source::{Format, ModelSource};
use anyhow::{Context, Result};
use candle_core::quantized::gguf_file;
use std::io::Write;
use std::path::Path;

/// ggml's `GGML_QNT_VERSION`, which llama-quantize writes as `general.quantization_version`.
pub const GGML_QNT_VERSION: u32 = 2;

/// Quantize `src` to `level` and write it to `out` (through a temporary file beside it, so a
/// failure leaves nothing half-written). Returns the weights written.
pub fn quantize_to_gguf(
    src: &ModelSource,
    level: Level,
    out: &Path,
    on_tensor: &(dyn Fn() + Sync),
) -> Result<LevelWeights> {
    let content = match src.gguf_content() {
        Some(c) if src.format == Format::Gguf => c,
        _ => {
            return Err(usage(format!(
                "qeval quantize: {} is a safetensors model; writing a GGUF needs the metadata \
                 llama.cpp's converter makes (tokenizer, architecture keys), which qeval does \
                 not write yet. Convert it with llama.cpp's convert_hf_to_gguf.py (--outtype f16) \
                 and give that file as --model",
                src.path.display()
            )))
        }
    };
    if matches!(level, Level::F32 | Level::Bf16) {
        return Err(usage(format!(
            "qeval quantize: --quant {level}: qeval writes quantized levels and f16; for {level} \
             use llama.cpp's converter"
        )));
    }
    let weights = quantize::quantize(src, level, on_tensor)?;
    let (_, ftype) = level.ftype();
    let mut metadata: Vec<(String, gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("quantize.")
                && !matches!(
                    k.as_str(),
                    "general.file_type" | "general.quantization_version" | "general.alignment"
                )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Deterministic output: metadata in key order, general.* first as converters write it.
    metadata.sort_by(|a, b| {
        (!a.0.starts_with("general."), &a.0).cmp(&(!b.0.starts_with("general."), &b.0))
    });
    metadata.push((
        "general.quantization_version".into(),
        gguf_file::Value::U32(GGML_QNT_VERSION),
    ));
    metadata.push(("general.file_type".into(), gguf_file::Value::U32(ftype)));
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // The source file's tensor order (llama-quantize keeps it).
    let mut order: Vec<(&str, &Weight, u64)> = weights
        .tensors
        .iter()
        .map(|(n, t)| {
            let off = content.tensor_infos.get(n).map_or(u64::MAX, |i| i.offset);
            (n.as_str(), t, off)
        })
        .collect();
    order.sort_by_key(|(n, _, off)| (*off, n.to_string()));
    let tensors: Vec<(&str, &Weight)> = order.iter().map(|(n, t, _)| (*n, *t)).collect();
    let tmp = out.with_extension("gguf.partial");
    let write = || -> Result<()> {
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        write_gguf(&mut w, &md, &tensors)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
    Ok(weights)
}
