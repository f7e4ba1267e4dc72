//! Making a level's weights: quantize each canonical tensor of the source to the type the
//! recipe chose (tensors in parallel with rayon), or take a GGUF file's tensors as stored;
//! and write/read the result as a GGUF file that the level's worker process loads.

use super::ggml_quants;
use super::iq4_quants;
use super::level::Level;
use super::recipe::{self, ModelShape, TensorChoice};
use super::weight::{write_gguf, IqTensor, WType, Weight};
use crate::model::source::{read_iq_tensor, ModelSource};
use crate::model::ModelConfig;
use anyhow::{Context, Result};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, gguf_file, QTensor};
use candle_core::Device;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A level's weights, ready to write.
pub struct LevelWeights {
    pub tensors: Vec<(String, Weight)>,
    pub choices: Vec<TensorChoice>,
}

impl LevelWeights {
    /// Bytes of weight storage.
    pub fn weight_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|(_, t)| t.storage_bytes() as u64)
            .sum()
    }

    pub fn n_params(&self) -> u64 {
        self.tensors
            .iter()
            .map(|(_, t)| t.elem_count() as u64)
            .sum()
    }

    /// Parameters per storage type.
    pub fn type_mix(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (_, t) in &self.tensors {
            *m.entry(t.type_name().to_string()).or_default() += t.elem_count() as u64;
        }
        m
    }
}

/// Quantize every tensor of `src` to `level` (in parallel); `on_tensor` is called after each.
pub fn quantize(
    src: &ModelSource,
    level: Level,
    on_tensor: &(dyn Fn() + Sync),
) -> Result<LevelWeights> {
    let shape = model_shape(src);
    let out: Vec<Result<(String, Weight, TensorChoice)>> = src
        .tensors
        .par_iter()
        .map(|meta| {
            let (ty, choice) = recipe::choose(level, &meta.name, &meta.shape, shape);
            let q = quantize_tensor(src, &meta.name, &meta.shape, ty)
                .with_context(|| format!("cannot quantize '{}' to {}", meta.name, choice.chosen))?;
            on_tensor();
            Ok((meta.name.clone(), q, choice))
        })
        .collect();
    let mut tensors = Vec::with_capacity(out.len());
    let mut choices = Vec::with_capacity(out.len());
    for r in out {
        let (n, q, c) = r?;
        tensors.push((n, q));
        choices.push(c);
    }
    Ok(LevelWeights { tensors, choices })
}

/// What the recipe needs to know about the model.
pub fn model_shape(src: &ModelSource) -> ModelShape {
    let c = &src.config;
    let n_gqa = c.n_head / c.n_kv_head.max(1);
    ModelShape {
        n_layer: c.n_layer,
        has_output: src.has_output(),
        n_gqa,
        is_70b: c.n_layer == 80
            && n_gqa > 1
            && matches!(
                c.arch,
                crate::model::config::Arch::Llama | crate::model::config::Arch::Qwen2
            ),
        width: 0,
    }
}

/// One tensor of `src` as `ty`: llama.cpp's reference quantizers for the quantized types
/// (the bytes llama-quantize writes), candle's round-to-nearest-even conversion for f16/bf16.
fn quantize_tensor(src: &ModelSource, name: &str, shape: &[usize], ty: WType) -> Result<Weight> {
    let t = src.load_f32(name)?;
    let dtype = match ty {
        WType::Candle(d) if !ggml_quants::supports(d) => {
            return Ok(QTensor::quantize(&t, d)?.into())
        }
        WType::Candle(d) => Some(d),
        WType::Iq(_) => None,
    };
    let x = t.flatten_all()?.to_vec1::<f32>()?;
    drop(t);
    Ok(match (dtype, ty) {
        (Some(d), _) => {
            let bytes = ggml_quants::quantize(d, &x)?;
            drop(x);
            qtensor_from_ggml(d, &bytes, shape.to_vec(), &Device::Cpu)?.into()
        }
        (None, WType::Iq(t)) => {
            let bytes = iq4_quants::quantize(t, &x)?;
            drop(x);
            IqTensor::new(t, shape.to_vec(), bytes)?.into()
        }
        (None, WType::Candle(_)) => unreachable!("candle types have a dtype"),
    })
}

/// A GGUF source's tensors exactly as stored (the level a GGUF file itself is).
pub fn as_stored(src: &ModelSource) -> Result<LevelWeights> {
    let mut tensors = Vec::new();
    let mut choices = Vec::new();
    for meta in &src.tensors {
        let q = src.load_gguf_as_stored(&meta.name)?;
        choices.push(TensorChoice {
            name: meta.name.clone(),
            wanted: meta.source_dtype.clone(),
            chosen: meta.source_dtype.clone(),
            fallback_reason: None,
        });
        tensors.push((meta.name.clone(), q));
    }
    Ok(LevelWeights { tensors, choices })
}

const CONFIG_KEY: &str = "qeval.config_json";

/// Write a level's weights and the model configuration as a GGUF file.
pub fn write_level_file(path: &Path, cfg: &ModelConfig, w: &LevelWeights) -> Result<()> {
    let cfg_json = gguf_file::Value::String(serde_json::to_string(cfg)?);
    let metadata = [(CONFIG_KEY, &cfg_json)];
    let tensors: Vec<(&str, &Weight)> = w.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = path.with_extension("gguf.tmp");
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        write_gguf(&mut f, &metadata, &tensors)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        use std::io::Write;
        f.flush()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

/// Read a level file written by [`write_level_file`] onto `device`. Tensors of the types
/// candle has no type for stay in the CPU's memory (qeval's kernels multiply them there).
pub fn read_level_file(
    path: &Path,
    device: &Device,
) -> Result<(ModelConfig, HashMap<String, Weight>)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let (ct, iq) = crate::model::source::read_gguf_content_iq(&mut f, path)
        .with_context(|| format!("cannot read level file {}", path.display()))?;
    let cfg_s = ct
        .metadata
        .get(CONFIG_KEY)
        .and_then(|v| v.to_string().ok())
        .with_context(|| format!("{} has no {CONFIG_KEY}", path.display()))?;
    let cfg: ModelConfig = serde_json::from_str(cfg_s)?;
    let mut tensors = HashMap::new();
    let names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
    for n in names {
        let w = match iq.get(&n) {
            Some(t) => read_iq_tensor(&mut f, &ct, &n, *t).map(Weight::from),
            None => ct
                .tensor(&mut f, &n, device)
                .map(Weight::from)
                .map_err(Into::into),
        };
        let w = w.with_context(|| format!("cannot load '{n}' from {}", path.display()))?;
        tensors.insert(n, w);
    }
    Ok((cfg, tensors))
}
