//! A weight tensor as a level holds it, whatever its GGUF type: candle's `QTensor` for the
//! types candle has (f32, f16, bf16, q4_0 ... q8_0, the k-quants), qeval's [`IqTensor`] for
//! the ones it has not (the i-quants, TQ1_0/TQ2_0, MXFP4: raw GGUF blocks, see `iq`). This
//! module also owns writing such tensors to a GGUF file, since candle's writer takes only
//! its own types. Multiplying them is `kernels`' business.

use super::iq::{self, IqType};
use super::level::dtype_name;
use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{Device, Tensor};
use std::io::Write;
use std::sync::Arc;

/// A tensor of a type candle cannot hold: its GGUF blocks, row-major, rows of `shape[1]`
/// values (candle's shape order: `[rows, columns]`, or `[n]` for a vector).
#[derive(Debug)]
pub struct IqTensor {
    pub ty: IqType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl IqTensor {
    /// Check that `data` is exactly the blocks `shape` needs.
    pub fn new(ty: IqType, shape: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        let need = Self::bytes_for(ty, &shape).with_context(|| {
            format!(
                "shape {shape:?} does not fit {} blocks of {} values",
                ty.name(),
                ty.block_elems()
            )
        })?;
        if data.len() as u64 != need {
            bail!(
                "{} tensor of shape {shape:?} needs {need} bytes, got {}",
                ty.name(),
                data.len()
            );
        }
        Ok(IqTensor { ty, shape, data })
    }

    /// Bytes of a tensor of `shape` stored as `ty`, or None when its rows do not fit the blocks.
    pub fn bytes_for(ty: IqType, shape: &[usize]) -> Option<u64> {
        let cols = *shape.last()?;
        if cols == 0 || !cols.is_multiple_of(ty.block_elems()) {
            return None;
        }
        let elems = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))?;
        (elems / ty.block_elems() as u64).checked_mul(ty.block_bytes() as u64)
    }

    /// Values per row (the last dimension).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(0)
    }

    /// Rows (every dimension but the last).
    pub fn rows(&self) -> usize {
        let n: usize = self.shape.iter().product();
        n / self.cols().max(1)
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols() / self.ty.block_elems() * self.ty.block_bytes()
    }

    /// The whole tensor as f32 (llama.cpp's `dequantize_row_*`, bit for bit).
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        let mut out = vec![0f32; self.shape.iter().product()];
        iq::dequantize(self.ty, &self.data, &mut out)?;
        Ok(Tensor::from_vec(out, self.shape.as_slice(), device)?)
    }
}

/// A GGUF tensor type: one candle has, or one qeval holds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WType {
    Candle(candle_core::quantized::GgmlDType),
    Iq(IqType),
}

impl WType {
    /// ggml's name ("q4_k", "iq4_xs", ...).
    pub fn name(self) -> &'static str {
        match self {
            WType::Candle(d) => dtype_name(d),
            WType::Iq(t) => t.name(),
        }
    }

    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            WType::Candle(d) => d.block_size(),
            WType::Iq(t) => t.block_elems(),
        }
    }

    /// Bytes per value of storage.
    pub fn bytes_per_value(self) -> f64 {
        match self {
            WType::Candle(d) => d.type_size() as f64 / d.block_size() as f64,
            WType::Iq(t) => t.block_bytes() as f64 / t.block_elems() as f64,
        }
    }
}

/// One weight tensor of a level.
#[derive(Debug, Clone)]
pub enum Weight {
    Candle(Arc<QTensor>),
    Iq(Arc<IqTensor>),
}

impl From<QTensor> for Weight {
    fn from(q: QTensor) -> Self {
        Weight::Candle(Arc::new(q))
    }
}

impl From<IqTensor> for Weight {
    fn from(t: IqTensor) -> Self {
        Weight::Iq(Arc::new(t))
    }
}

impl Weight {
    /// ggml's name of the storage type ("q4_k", "iq4_xs", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Weight::Candle(q) => dtype_name(q.dtype()),
            Weight::Iq(t) => t.ty.name(),
        }
    }

    /// The `enum ggml_type` number GGUF stores.
    pub fn ggml_id(&self) -> u32 {
        match self {
            Weight::Candle(q) => candle_ggml_id(q.dtype()),
            Weight::Iq(t) => t.ty.ggml_id(),
        }
    }

    pub fn dims(&self) -> Vec<usize> {
        match self {
            Weight::Candle(q) => q.shape().dims().to_vec(),
            Weight::Iq(t) => t.shape.clone(),
        }
    }

    pub fn elem_count(&self) -> usize {
        self.dims().iter().product()
    }

    /// Bytes of storage (the file's bytes for this tensor).
    pub fn storage_bytes(&self) -> usize {
        match self {
            Weight::Candle(q) => q.storage_size_in_bytes(),
            Weight::Iq(t) => t.data.len(),
        }
    }

    /// The whole tensor as f32 on `device`.
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        match self {
            Weight::Candle(q) => Ok(q.dequantize(device)?),
            Weight::Iq(t) => t.dequantize(device),
        }
    }

    /// The candle tensor, if this is one.
    pub fn as_candle(&self) -> Option<&Arc<QTensor>> {
        match self {
            Weight::Candle(q) => Some(q),
            Weight::Iq(_) => None,
        }
    }
}

/// ggml's type number of a candle type (ggml.h's `enum ggml_type`).
fn candle_ggml_id(d: candle_core::quantized::GgmlDType) -> u32 {
    use candle_core::quantized::GgmlDType as G;
    match d {
        G::F32 => 0,
        G::F16 => 1,
        G::Q4_0 => 2,
        G::Q4_1 => 3,
        G::Q5_0 => 6,
        G::Q5_1 => 7,
        G::Q8_0 => 8,
        G::Q8_1 => 9,
        G::Q2K => 10,
        G::Q3K => 11,
        G::Q4K => 12,
        G::Q5K => 13,
        G::Q6K => 14,
        G::Q8K => 15,
        G::BF16 => 30,
    }
}

/// GGUF's alignment of tensor data (`GGUF_DEFAULT_ALIGNMENT`).
const ALIGNMENT: usize = 32;

fn write_str<W: Write>(w: &mut W, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// GGUF's number for a metadata value type (`enum gguf_type`).
fn value_type_id(v: &gguf_file::Value) -> u32 {
    use gguf_file::Value as V;
    match v {
        V::U8(_) => 0,
        V::I8(_) => 1,
        V::U16(_) => 2,
        V::I16(_) => 3,
        V::U32(_) => 4,
        V::I32(_) => 5,
        V::F32(_) => 6,
        V::Bool(_) => 7,
        V::String(_) => 8,
        V::Array(_) => 9,
        V::U64(_) => 10,
        V::I64(_) => 11,
        V::F64(_) => 12,
    }
}

fn write_value<W: Write>(w: &mut W, v: &gguf_file::Value) -> Result<()> {
    use gguf_file::Value as V;
    match v {
        V::U8(x) => w.write_all(&[*x])?,
        V::I8(x) => w.write_all(&x.to_le_bytes())?,
        V::U16(x) => w.write_all(&x.to_le_bytes())?,
        V::I16(x) => w.write_all(&x.to_le_bytes())?,
        V::U32(x) => w.write_all(&x.to_le_bytes())?,
        V::I32(x) => w.write_all(&x.to_le_bytes())?,
        V::U64(x) => w.write_all(&x.to_le_bytes())?,
        V::I64(x) => w.write_all(&x.to_le_bytes())?,
        V::F32(x) => w.write_all(&x.to_le_bytes())?,
        V::F64(x) => w.write_all(&x.to_le_bytes())?,
        V::Bool(x) => w.write_all(&[u8::from(*x)])?,
        V::String(s) => write_str(w, s)?,
        V::Array(items) => {
            let ty = items.first().map_or(4, value_type_id);
            if items.iter().any(|i| value_type_id(i) != ty) {
                bail!("a GGUF array must hold values of one type");
            }
            w.write_all(&ty.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            for i in items {
                write_value(w, i)?;
            }
        }
    }
    Ok(())
}

/// Write a GGUF v3 file (as llama.cpp writes it: metadata in the order given, tensor data
/// aligned to 32 bytes in the order given) holding tensors of any type qeval reads.
pub fn write_gguf<W: Write>(
    w: &mut W,
    metadata: &[(&str, &gguf_file::Value)],
    tensors: &[(&str, &Weight)],
) -> Result<()> {
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        write_str(&mut head, k)?;
        head.extend_from_slice(&value_type_id(v).to_le_bytes());
        write_value(&mut head, v)?;
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        write_str(&mut head, name)?;
        let dims = t.dims();
        head.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims.iter().rev() {
            head.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        head.extend_from_slice(&t.ggml_id().to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += t.storage_bytes().next_multiple_of(ALIGNMENT);
    }
    head.resize(head.len().next_multiple_of(ALIGNMENT), 0);
    w.write_all(&head)?;
    for (_, t) in tensors {
        let n = match t {
            Weight::Candle(q) => {
                let data = q.data()?;
                w.write_all(&data)?;
                data.len()
            }
            Weight::Iq(t) => {
                w.write_all(&t.data)?;
                t.data.len()
            }
        };
        w.write_all(&vec![0u8; n.next_multiple_of(ALIGNMENT) - n])?;
    }
    Ok(())
}
