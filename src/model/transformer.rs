//! The forward pass of llama (and Mistral), qwen2, qwen3, gemma3 and phi3, returning the logits
//! of every requested position in one pass.
//!
//! Why this exists instead of candle-transformers' `quantized_llama` & co: those return only
//! the last position's logits (enough for generation, not for scoring a window), keep an
//! extra f32 copy of the token embedding, convert f16/bf16 weights to f32 at load, and grow
//! the KV cache by concatenation. Here one implementation serves the three architectures
//! (they differ in a few switches: Q/K/V biases, Q/K norms, Gemma's extra norms, GELU,
//! embedding scale, sliding-window layers, the rope layout and how much of a head it rotates,
//! Phi-3's fused Q/K/V and gate/up matrices), weights keep the type the level gave them,
//! a tied output shares the embedding's storage, and the KV cache is allocated once.

use super::config::{Arch, ModelConfig};
use crate::kernels::attention::{self, Visibility};
use crate::kernels::iq::IqMatMul;
use crate::kernels::QMatMulOp;
use crate::quant::weight::{IqTensor, Weight};
use anyhow::{Context, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// How quantized weights are multiplied (defined with the results record it is stored in).
pub use crate::results::ScoringMode;

/// A weight matrix: a quantized one multiplied by qeval's kernels (`crate::kernels`) where it
/// has one for the type and CPU, else by candle's; or a dense one (f32, f16 or bf16, kept in
/// that type) multiplied in its own type.
#[derive(Debug, Clone)]
pub enum Linear {
    Kernel(QMatMulOp),
    Quant(QMatMul),
    /// A type candle has no kernel for (i-quants, TQ, MXFP4): qeval's, CPU only.
    Iq(IqMatMul),
    /// f16 weights on the CPU, multiplied by qeval's f16 kernel straight from the stored
    /// tensor's bytes (no copy: a copy is a transient the size of the largest matrix).
    F16(Arc<QTensor>),
    Dense(Tensor),
}

impl Linear {
    /// Any weight: candle's types as [`Self::with_mode`], the others with qeval's CPU kernel
    /// (refused on another device, since it would run on the CPU there).
    pub fn from_weight(w: Weight, mode: ScoringMode, device: &Device) -> Result<Self> {
        match w {
            Weight::Candle(q) => Self::with_mode(q, mode),
            Weight::Iq(t) => {
                ensure_cpu(&t, device)?;
                if mode == ScoringMode::Weights {
                    return Ok(Linear::Dense(t.dequantize(device)?));
                }
                Ok(Linear::Iq(IqMatMul::new(t, true)?))
            }
        }
    }

    pub fn with_mode(q: Arc<QTensor>, mode: ScoringMode) -> Result<Self> {
        let dev = q.device();
        if mode == ScoringMode::Weights {
            return Ok(Linear::Dense(q.dequantize(&dev)?));
        }
        Ok(match q.dtype() {
            GgmlDType::F32 => Linear::Dense(q.dequantize(&dev)?),
            GgmlDType::F16 if dev.is_cpu() && crate::kernels::isa().is_some() => Linear::F16(q),
            GgmlDType::F16 | GgmlDType::BF16 => Linear::Dense(dense_16bit(q)?),
            _ => match QMatMulOp::new(q) {
                Ok(op) => Linear::Kernel(op),
                Err(q) => Linear::Quant(QMatMul::QTensor(q)),
            },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Kernel(k) => Ok(k.forward(x)?),
            Linear::Quant(m) => Ok(m.forward(x)?),
            Linear::Iq(m) => Ok(m.forward(x)?),
            Linear::F16(q) => {
                let (n, k) = q.shape().dims2()?;
                let bytes = q.data()?;
                Ok(crate::kernels::f16::matmul_bytes(&bytes, n, k, x)?)
            }
            Linear::Dense(w) => {
                if let Some(y) = crate::kernels::f16::matmul(w, x)? {
                    return Ok(y);
                }
                let dims = x.dims().to_vec();
                let in_dim = dims[dims.len() - 1];
                let rows: usize = dims[..dims.len() - 1].iter().product();
                let x2 = x.reshape((rows, in_dim))?.to_dtype(w.dtype())?;
                let y = x2.matmul(&w.t()?)?.to_dtype(DType::F32)?;
                let mut out = dims;
                let last = out.len() - 1;
                out[last] = w.dim(0)?;
                Ok(y.reshape(out)?)
            }
        }
    }
}

/// An f16 or bf16 weight as a tensor of its own type, built from its bytes on the CPU.
/// candle's `dequantize_f16` goes through f32: a transient copy twice the tensor's size
/// (0.9 GB for Qwen2.5-1.5B's 151,936 × 1,536 embedding), which set f16's peak memory.
fn dense_16bit(q: Arc<QTensor>) -> Result<Tensor> {
    let dev = q.device();
    let shape = q.shape().clone();
    if !dev.is_cpu() {
        return Ok(match q.dtype() {
            GgmlDType::F16 => q.dequantize_f16(&dev)?,
            _ => q.dequantize(&dev)?.to_dtype(DType::BF16)?,
        });
    }
    let bytes = q.data()?;
    let pairs = bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
    let t = match q.dtype() {
        GgmlDType::F16 => {
            let v: Vec<half::f16> = pairs.map(half::f16::from_le_bytes).collect();
            Tensor::from_vec(v, shape, &dev)?
        }
        _ => {
            let v: Vec<half::bf16> = pairs.map(half::bf16::from_le_bytes).collect();
            Tensor::from_vec(v, shape, &dev)?
        }
    };
    Ok(t)
}

/// The token embedding, looked up from the level's own storage (no f32 copy).
#[derive(Debug, Clone)]
enum Embedding {
    Quant(Arc<QTensor>),
    /// A type candle has no kernel for: rows dequantized as looked up.
    Iq(IqMatMul),
    /// Read from the tiles the tied output layer multiplies (one copy for both).
    Tiled(QMatMulOp),
    Dense(Tensor),
}

impl Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Embedding::Quant(q) => q.embedding(ids)?,
            Embedding::Iq(op) => op.embedding(&ids.to_vec1::<u32>()?, ids.device())?,
            Embedding::Tiled(op) => op.embedding(&ids.to_vec1::<u32>()?)?,
            Embedding::Dense(w) => {
                let n = ids.dim(0)?;
                w.index_select(ids, 0)?
                    .to_dtype(DType::F32)?
                    .reshape((n, w.dim(1)?))?
            }
        })
    }
}

/// The Q/K/V projections: three matrices, or Phi-3's one whose output rows are Q, K then V.
enum Qkv {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

struct Layer {
    attn_norm: Tensor,
    qkv: Qkv,
    wo: Linear,
    /// Qwen2: biases added to the Q/K/V projections (f32 at every level).
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    /// None for Phi-3, whose `up` holds the gate rows and then the up rows.
    gate: Option<Linear>,
    up: Linear,
    down: Linear,
    post_ffw_norm: Option<Tensor>,
    /// Gemma 3 local layers: attention window.
    window: Option<usize>,
    cache: Kv,
}

/// A KV cache allocated once for `max` positions, written in place; `truncate` rolls it back
/// (choice scoring continues every choice from the same cached context).
struct Kv {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    max: usize,
}

impl Kv {
    fn new(max: usize) -> Self {
        Kv {
            k: None,
            v: None,
            len: 0,
            max,
        }
    }

    /// Append (b, heads, s, hd) keys and values; return all cached keys and values.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = k.dim(2)?;
        anyhow::ensure!(self.len + s <= self.max, "KV cache full");
        if self.k.is_none() {
            let (b, h, _, d) = k.dims4()?;
            self.k = Some(Tensor::zeros((b, h, self.max, d), k.dtype(), k.device())?);
            self.v = Some(Tensor::zeros((b, h, self.max, d), v.dtype(), v.device())?);
        }
        let (Some(kc), Some(vc)) = (&self.k, &self.v) else {
            anyhow::bail!("KV cache not allocated");
        };
        kc.slice_set(k, 2, self.len)?;
        vc.slice_set(v, 2, self.len)?;
        self.len += s;
        Ok((kc.narrow(2, 0, self.len)?, vc.narrow(2, 0, self.len)?))
    }
}

/// Where the new tokens of one forward call sit: their positions, and which segment each
/// belongs to (tokens attend to the cached positions and to earlier tokens of their own segment).
struct Placement {
    pos0: usize,
    positions: Vec<usize>,
    segments: Vec<usize>,
}

impl Placement {
    fn contiguous(pos0: usize, s: usize) -> Self {
        Placement {
            pos0,
            positions: (pos0..pos0 + s).collect(),
            segments: vec![0; s],
        }
    }

    /// For each new token, the index of the first new token of its segment.
    fn seg_start(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.segments.len());
        let mut start = 0;
        for (i, &g) in self.segments.iter().enumerate() {
            if i > 0 && g != self.segments[i - 1] {
                start = i;
            }
            v.push(start);
        }
        v
    }

    fn is_contiguous(&self) -> bool {
        self.segments.iter().all(|&g| g == 0)
    }

    /// Additive attention mask (s, pos0 + s), or None when nothing is masked.
    fn mask(&self, window: Option<usize>, dev: &Device) -> Result<Option<Tensor>> {
        let s = self.positions.len();
        let t = self.pos0 + s;
        let mut m = vec![0f32; s * t];
        let mut any = false;
        for i in 0..s {
            let qp = self.positions[i];
            for j in 0..t {
                let (kp, visible) = if j < self.pos0 {
                    (j, true)
                } else {
                    let jj = j - self.pos0;
                    (
                        self.positions[jj],
                        self.segments[jj] == self.segments[i] && jj <= i,
                    )
                };
                let masked = !visible || kp > qp || window.is_some_and(|w| qp - kp >= w);
                if masked {
                    m[i * t + j] = f32::NEG_INFINITY;
                    any = true;
                }
            }
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(Tensor::from_vec(m, (s, t), dev)?))
    }
}

/// The keys each new token sees for one kind of layer (global or sliding window): given to the
/// fused CPU attention as ranges, built as an additive mask tensor only if the tensor path runs.
struct LayerMask<'a> {
    placement: &'a Placement,
    seg_start: &'a [usize],
    window: Option<usize>,
    device: &'a Device,
    mask: std::cell::OnceCell<Option<Tensor>>,
}

impl<'a> LayerMask<'a> {
    fn new(
        placement: &'a Placement,
        seg_start: &'a [usize],
        window: Option<usize>,
        device: &'a Device,
    ) -> Self {
        LayerMask {
            placement,
            seg_start,
            window,
            device,
            mask: std::cell::OnceCell::new(),
        }
    }

    fn visibility(&self) -> Visibility<'a> {
        Visibility {
            pos0: self.placement.pos0,
            positions: &self.placement.positions,
            seg_start: self.seg_start,
            window: self.window,
        }
    }

    /// The additive mask, built on first use.
    fn tensor(&self) -> Result<Option<&Tensor>> {
        if let Some(m) = self.mask.get() {
            return Ok(m.as_ref());
        }
        let m = self.placement.mask(self.window, self.device)?;
        Ok(self.mask.get_or_init(|| m).as_ref())
    }
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// The angles of the rotated part of a head (`cfg.n_rot()` dimensions, whose frequencies
    /// are counted over that part, as llama.cpp's `n_dims`).
    fn new(cfg: &ModelConfig, theta: f32, max_seq: usize, dev: &Device) -> Result<Self> {
        let d = cfg.n_rot();
        let factors = cfg.rope_factors_for(max_seq);
        let inv: Vec<f32> = (0..d)
            .step_by(2)
            .enumerate()
            .map(|(k, i)| {
                let f = 1.0 / theta.powf(i as f32 / d as f32);
                match factors {
                    Some(ff) => f / ff.get(k).copied().unwrap_or(1.0),
                    None => f,
                }
            })
            .collect();
        let n = inv.len();
        let inv = Tensor::from_vec(inv, (1, n), dev)?;
        let pos = Tensor::arange(0u32, max_seq as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((max_seq, 1))?;
        let freqs = pos.matmul(&inv)?;
        // YaRN scales both cos and sin (so q and k) by its magnitude scale, as llama.cpp does.
        let m = cfg.rope_mscale as f64;
        Ok(Rope {
            cos: (freqs.cos()? * m)?,
            sin: (freqs.sin()? * m)?,
        })
    }
}

/// A loaded model at one quantization level.
pub struct Transformer {
    cfg: ModelConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    rope_global: Rope,
    rope_local: Option<Rope>,
    max_seq: usize,
    device: Device,
    pos: usize,
}

/// qeval's kernels for the types candle lacks run on the CPU only.
fn ensure_cpu(t: &IqTensor, device: &Device) -> Result<()> {
    if !device.is_cpu() {
        return Err(crate::error::usage(format!(
            "this level holds {} weights, which qeval multiplies on the CPU only (candle has no GPU kernels for them); run it with --device cpu",
            t.ty.name()
        )));
    }
    Ok(())
}

fn rms(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?)
}

impl Transformer {
    /// Build the model from canonical tensors already on `device`. `max_seq` is the most
    /// positions one sequence will hold (the KV cache is allocated for it once).
    pub fn new(
        cfg: &ModelConfig,
        tensors: HashMap<String, Weight>,
        max_seq: usize,
        device: &Device,
    ) -> Result<Self> {
        Self::with_mode(cfg, tensors, max_seq, device, ScoringMode::Kernel)
    }

    /// As `new`, multiplying quantized weights as `mode` says.
    ///
    /// Long (~120 lines) for a reason: it is the one place that maps each architecture's tensor
    /// names to layers (llama, qwen2/3, gemma3: biases, norms, tied output), and reads best as
    /// one table from top to bottom.
    pub fn with_mode(
        cfg: &ModelConfig,
        mut tensors: HashMap<String, Weight>,
        max_seq: usize,
        device: &Device,
        mode: ScoringMode,
    ) -> Result<Self> {
        let lin = |w: Weight| Linear::from_weight(w, mode, device);
        let tied = !tensors.contains_key("output.weight");
        let mut take = |name: &str| -> Result<Weight> {
            tensors
                .remove(name)
                .with_context(|| format!("missing tensor '{name}'"))
        };
        let vec = |w: Weight| -> Result<Tensor> { w.dequantize(device) };
        // The dense conversion consumes the stored tensor, so no second copy stays alive.
        let embed = match take("token_embd.weight")? {
            Weight::Iq(t) => {
                ensure_cpu(&t, device)?;
                Embedding::Iq(IqMatMul::new(t, true)?)
            }
            Weight::Candle(embd_q) => match embd_q.dtype() {
                // Looked up row by row from the stored f16, and shared with a tied output.
                GgmlDType::F16
                    if mode == ScoringMode::Kernel
                        && device.is_cpu()
                        && crate::kernels::isa().is_some() =>
                {
                    Embedding::Quant(embd_q)
                }
                // Scoring mode `weights`, another device, or no qeval kernel: a dense tensor
                // of the stored type (f32 stays f32).
                GgmlDType::F32 => Embedding::Dense(embd_q.dequantize(device)?),
                GgmlDType::F16 | GgmlDType::BF16 => Embedding::Dense(dense_16bit(embd_q)?),
                // A tied output multiplies the embedding: tile it once and read the lookups
                // from the tiles too.
                _ if mode == ScoringMode::Kernel && tied => match QMatMulOp::tied(embd_q) {
                    Ok(op) => Embedding::Tiled(op),
                    Err(q) => Embedding::Quant(q),
                },
                _ => Embedding::Quant(embd_q),
            },
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |t: &str| format!("blk.{i}.{t}.weight");
            // Biases: required where the architecture has them, added wherever present.
            let needs_bias = cfg.arch == Arch::Qwen2;
            let mut bias = |t: &str| -> Result<Option<Tensor>> {
                let name = format!("blk.{i}.{t}.bias");
                let q = if needs_bias {
                    Some(take(&name)?)
                } else {
                    take(&name).ok()
                };
                q.map(|q| vec(q)?.to_dtype(DType::F32).map_err(Into::into))
                    .transpose()
            };
            let (bq, bk, bv) = (bias("attn_q")?, bias("attn_k")?, bias("attn_v")?);
            let is_gemma = cfg.arch == Arch::Gemma3;
            let fused = cfg.arch == Arch::Phi3;
            let has_qk_norm = matches!(cfg.arch, Arch::Qwen3 | Arch::Gemma3);
            let window = match cfg.sliding_window {
                Some(w) if (i + 1) % cfg.sliding_window_pattern.max(1) != 0 => Some(w),
                _ => None,
            };
            layers.push(Layer {
                attn_norm: vec(take(&p("attn_norm"))?)?,
                qkv: if fused {
                    Qkv::Fused(lin(take(&p("attn_qkv"))?)?)
                } else {
                    Qkv::Separate {
                        q: lin(take(&p("attn_q"))?)?,
                        k: lin(take(&p("attn_k"))?)?,
                        v: lin(take(&p("attn_v"))?)?,
                    }
                },
                wo: lin(take(&p("attn_output"))?)?,
                bq,
                bk,
                bv,
                q_norm: if has_qk_norm {
                    Some(vec(take(&p("attn_q_norm"))?)?)
                } else {
                    None
                },
                k_norm: if has_qk_norm {
                    Some(vec(take(&p("attn_k_norm"))?)?)
                } else {
                    None
                },
                post_attn_norm: if is_gemma {
                    Some(vec(take(&p("post_attention_norm"))?)?)
                } else {
                    None
                },
                ffn_norm: vec(take(&p("ffn_norm"))?)?,
                gate: if fused {
                    None
                } else {
                    Some(lin(take(&p("ffn_gate"))?)?)
                },
                up: lin(take(&p("ffn_up"))?)?,
                down: lin(take(&p("ffn_down"))?)?,
                post_ffw_norm: if is_gemma {
                    Some(vec(take(&p("post_ffw_norm"))?)?)
                } else {
                    None
                },
                window,
                cache: Kv::new(max_seq),
            });
        }
        let norm = vec(take("output_norm.weight")?)?;
        let output = match tensors.remove("output.weight") {
            Some(q) => lin(q)?,
            None => match &embed {
                Embedding::Quant(q) => lin(Weight::Candle(q.clone()))?,
                Embedding::Tiled(op) => Linear::Kernel(op.clone()),
                Embedding::Iq(op) => lin(Weight::Iq(op.weight().clone()))?,
                Embedding::Dense(t) => match mode {
                    ScoringMode::Weights => Linear::Dense(t.to_dtype(DType::F32)?),
                    ScoringMode::Kernel => Linear::Dense(t.clone()),
                },
            },
        };
        let rope_global = Rope::new(cfg, cfg.rope_theta, max_seq, device)?;
        let rope_local = if cfg.sliding_window.is_some() {
            Some(Rope::new(cfg, cfg.rope_theta_local, max_seq, device)?)
        } else {
            None
        };
        Ok(Transformer {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            output,
            rope_global,
            rope_local,
            max_seq,
            device: device.clone(),
            pos: 0,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Forget the KV cache (keeps its allocation).
    pub fn reset(&mut self) {
        self.truncate(0);
        self.pos = 0;
    }

    /// Positions already in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes allocated by the KV cache (allocated on first use, for `max_seq` positions).
    pub fn kv_cache_bytes(&self) -> u64 {
        self.cfg.kv_cache_bytes(self.max_seq)
    }

    /// Roll the KV cache back to its first `len` positions (keeps its allocation).
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.pos);
        for l in &mut self.layers {
            l.cache.len = len;
        }
        self.pos = len;
    }

    /// Run `tokens` after the cached positions; return the logits (f32, shape
    /// `(tokens.len() - logits_from, vocab)`) of positions `logits_from..` of this call.
    pub fn forward(&mut self, tokens: &[u32], logits_from: usize) -> Result<Tensor> {
        let placement = Placement::contiguous(self.pos, tokens.len());
        let x = self.hidden(tokens, &placement)?;
        self.pos += tokens.len();
        self.logits(&x, logits_from, tokens.len() - logits_from)
    }

    /// Score several continuations of the cached context in one batched call: each segment
    /// continues the cache at the same positions and sees only the cache and itself. Returns
    /// each segment's logits `(len, vocab)`; the cache is rolled back to the context afterwards.
    pub fn forward_segments(&mut self, segments: &[Vec<u32>]) -> Result<Vec<Tensor>> {
        let pos0 = self.pos;
        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        let mut segs = Vec::new();
        for (i, sg) in segments.iter().enumerate() {
            anyhow::ensure!(!sg.is_empty(), "empty segment");
            tokens.extend_from_slice(sg);
            positions.extend(pos0..pos0 + sg.len());
            segs.extend(std::iter::repeat_n(i, sg.len()));
        }
        let placement = Placement {
            pos0,
            positions,
            segments: segs,
        };
        let r = self.hidden(&tokens, &placement);
        // Roll back even when the forward failed half-way.
        for l in &mut self.layers {
            l.cache.len = pos0;
        }
        let x = r?;
        let logits = self.logits(&x, 0, tokens.len())?;
        let mut out = Vec::with_capacity(segments.len());
        let mut at = 0;
        for sg in segments {
            out.push(logits.narrow(0, at, sg.len())?);
            at += sg.len();
        }
        Ok(out)
    }

    fn logits(&self, x: &Tensor, from: usize, n: usize) -> Result<Tensor> {
        let x = x.narrow(1, from, n)?;
        let x = rms(&x, &self.norm, self.cfg.rms_eps)?;
        let logits = self.output.forward(&x)?;
        Ok(logits
            .reshape((n, self.cfg.vocab_size))?
            .to_dtype(DType::F32)?)
    }

    /// The hidden states (1, s, d) of `tokens` placed after the cache; appends to the cache.
    fn hidden(&mut self, tokens: &[u32], placement: &Placement) -> Result<Tensor> {
        let s = tokens.len();
        anyhow::ensure!(s > 0, "forward on an empty sequence");
        anyhow::ensure!(
            placement.pos0 + s <= self.max_seq,
            "sequence of {} positions exceeds the {} this model was loaded for",
            placement.pos0 + s,
            self.max_seq
        );
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.forward(&ids)?.unsqueeze(0)?; // (1, s, d)
        if self.cfg.arch == Arch::Gemma3 {
            x = (x * (self.cfg.n_embd as f64).sqrt())?;
        }
        let seg_start = placement.seg_start();
        let mask_global = LayerMask::new(placement, &seg_start, None, &self.device);
        let mask_local = self
            .cfg
            .sliding_window
            .map(|w| LayerMask::new(placement, &seg_start, Some(w), &self.device));
        let idx = if placement.is_contiguous() {
            None
        } else {
            let p: Vec<u32> = placement.positions.iter().map(|&p| p as u32).collect();
            Some(Tensor::new(p.as_slice(), &self.device)?)
        };
        let angles = |r: &Rope| -> Result<(Tensor, Tensor)> {
            Ok(match &idx {
                None => (
                    r.cos.narrow(0, placement.pos0, s)?,
                    r.sin.narrow(0, placement.pos0, s)?,
                ),
                Some(i) => (r.cos.index_select(i, 0)?, r.sin.index_select(i, 0)?),
            })
        };
        let global = angles(&self.rope_global)?;
        let local = match &self.rope_local {
            Some(r) => Some(angles(r)?),
            None => None,
        };
        let cfg = self.cfg.clone();
        for layer in self.layers.iter_mut() {
            let (rope, mask) = match (&local, layer.window, &mask_local) {
                (Some(r), Some(_), Some(m)) => (r, m),
                _ => (&global, &mask_global),
            };
            x = layer_forward(&cfg, layer, rope, mask, &x)?;
        }
        Ok(x)
    }
}

fn layer_forward(
    cfg: &ModelConfig,
    l: &mut Layer,
    (cos, sin): &(Tensor, Tensor),
    mask: &LayerMask<'_>,
    x: &Tensor,
) -> Result<Tensor> {
    let (b, s, _) = x.dims3()?;
    let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
    let h = rms(x, &l.attn_norm, cfg.rms_eps)?;
    let proj = |w: &Linear, bias: &Option<Tensor>| -> Result<Tensor> {
        let y = w.forward(&h)?;
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    };
    let (q, k, v) = match &l.qkv {
        Qkv::Separate { q, k, v } => (proj(q, &l.bq)?, proj(k, &l.bk)?, proj(v, &l.bv)?),
        Qkv::Fused(w) => {
            let y = w.forward(&h)?;
            (
                y.narrow(2, 0, nh * hd)?,
                y.narrow(2, nh * hd, nkv * hd)?,
                y.narrow(2, (nh + nkv) * hd, nkv * hd)?,
            )
        }
    };
    let q = q.reshape((b, s, nh, hd))?.transpose(1, 2)?;
    let k = k.reshape((b, s, nkv, hd))?.transpose(1, 2)?;
    let v = v.reshape((b, s, nkv, hd))?.transpose(1, 2)?;
    let q = match &l.q_norm {
        Some(w) => rms(&q, w, cfg.rms_eps)?,
        None => q.contiguous()?,
    };
    let k = match &l.k_norm {
        Some(w) => rms(&k, w, cfg.rms_eps)?,
        None => k.contiguous()?,
    };
    let (q, k) = (rotate(cfg, &q, cos, sin)?, rotate(cfg, &k, cos, sin)?);
    let (k, v) = l.cache.append(&k.contiguous()?, &v.contiguous()?)?;
    let scale = 1.0 / (hd as f64).sqrt();
    let o = match attention::attention(&q, &k, &v, &mask.visibility(), scale as f32)? {
        Some(o) => o,
        None => {
            let rep = nh / nkv;
            let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
            let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
            let mut att = (q.matmul(&k.t()?)? * scale)?; // (b, nh, s, t)
            if let Some(m) = mask.tensor()? {
                att = att.broadcast_add(m)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            att.matmul(&v)?.transpose(1, 2)?.reshape((b, s, nh * hd))?
        }
    };
    let mut o = l.wo.forward(&o)?;
    if let Some(w) = &l.post_attn_norm {
        o = rms(&o, w, cfg.rms_eps)?;
    }
    let x = (x + o)?;
    let h = rms(&x, &l.ffn_norm, cfg.rms_eps)?;
    let (g, u) = match &l.gate {
        Some(gate) => (gate.forward(&h)?, l.up.forward(&h)?),
        None => {
            let y = l.up.forward(&h)?;
            let n = cfg.n_ff;
            (y.narrow(2, 0, n)?, y.narrow(2, n, n)?)
        }
    };
    let act = if cfg.arch == Arch::Gemma3 {
        (g.gelu()? * u)?
    } else {
        match crate::kernels::swiglu::silu_mul(&g, &u)? {
            Some(t) => t,
            None => (candle_nn::ops::silu(&g)? * u)?,
        }
    };
    let mut m = l.down.forward(&act)?;
    if let Some(w) = &l.post_ffw_norm {
        m = rms(&m, w, cfg.rms_eps)?;
    }
    Ok((x + m)?)
}

/// Rope on (b, heads, s, head_dim) queries or keys: the first `cfg.n_rot()` dimensions of each
/// head rotated (interleaved pairs for llama GGUFs, halves for the NEOX layout), the rest as
/// they are.
fn rotate(cfg: &ModelConfig, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let r = |x: &Tensor| -> Result<Tensor> {
        Ok(if cfg.rope_interleaved() {
            candle_nn::rotary_emb::rope_i(x, cos, sin)?
        } else {
            candle_nn::rotary_emb::rope(x, cos, sin)?
        })
    };
    let (hd, n_rot) = (cfg.head_dim, cfg.n_rot());
    if n_rot == hd {
        return r(x);
    }
    let rot = r(&x.narrow(3, 0, n_rot)?.contiguous()?)?;
    let pass = x.narrow(3, n_rot, hd - n_rot)?;
    Ok(Tensor::cat(&[&rot, &pass], 3)?.contiguous()?)
}
