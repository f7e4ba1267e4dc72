//! Reference packs (`.qref`): what a reference level leaves for levels measured later, in
//! another process or on another machine. A pack holds, compressed with zstd, a JSON header
//! (the reference's results row, its graded task items, the model's file hashes, the
//! tokenizer's fingerprint, the eval set and its version, the context settings and the token
//! ids of the text) and then one [`PackRecord`] per scored token (the reference's top-K
//! tokens, the tail mass, the target's log-probability and the argmax). Owns the file format,
//! reading and writing it, and the checks that a level run matches a pack (same model files,
//! tokenizer and text), refusing with the difference named. The numbers computed from a record
//! are `eval::pack`.

use crate::error::usage;
use crate::eval::pack::PackRecord;
use crate::eval::text::Chunking;
use crate::results::{ItemRecord, Results};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every pack.
const MAGIC: &[u8; 8] = b"QEVALREF";
/// The layout of what follows the magic; bumped when it changes.
pub const FORMAT: u32 = 1;
/// K when none is given: the smallest K whose KLD stays within 1% of the exact one at every
/// q4-class level and better on the three test models (README, "Reference packs").
pub const DEFAULT_TOP_K: usize = 64;

/// Everything in a pack but its records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackHeader {
    pub format: u32,
    pub top_k: usize,
    pub vocab_size: usize,
    /// sha256 of the tokenizer's vocabulary and special-token settings
    /// (`ModelTokenizer::fingerprint`).
    pub tokenizer_sha256: String,
    /// The token ids of the evaluated text, as the reference tokenized it.
    pub tokens: Vec<u32>,
    pub chunking: Chunking,
    /// The reference's run: model, device, eval set (name, version) and its one level row.
    pub results: Results,
    /// The reference's graded task items (items.jsonl lines), for the paired statistics.
    pub items: Vec<ItemRecord>,
}

impl PackHeader {
    /// The reference level's name (`f16`, ...).
    pub fn reference(&self) -> &str {
        &self.results.reference
    }

    pub fn scored_tokens(&self) -> usize {
        self.chunking.scored_total()
    }
}

/// Write a pack: `header`, then the records of `raw` (records as `PackRecord::write` wrote
/// them, `scored_tokens` of them), zstd-compressed; atomically (a temporary sibling renamed).
pub fn write(path: &Path, header: &PackHeader, raw: &Path) -> Result<()> {
    let want = (header.scored_tokens() * PackRecord::size(header.top_k)) as u64;
    let have = std::fs::metadata(raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .len();
    anyhow::ensure!(
        have == want,
        "{}: {have} bytes of reference records, expected {want}; the reference did not finish",
        raw.display()
    );
    crate::fsutil::write_atomic_with(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        let mut z = zstd::Encoder::new(w, 19)?;
        let json = serde_json::to_vec(header)?;
        z.write_all(&(json.len() as u64).to_le_bytes())?;
        z.write_all(&json)?;
        let mut records = BufReader::new(std::fs::File::open(raw)?);
        std::io::copy(&mut records, &mut z)?;
        z.finish()?;
        Ok(())
    })
    .with_context(|| format!("cannot write reference pack {}", path.display()))
}

/// An open pack: its header read, its records next in `records`.
pub struct PackReader {
    pub header: PackHeader,
    records: zstd::Decoder<'static, BufReader<std::fs::File>>,
}

impl PackReader {
    pub fn open(path: &Path) -> Result<PackReader> {
        let f = std::fs::File::open(path).map_err(|e| {
            usage(format!(
                "--reference-pack {}: cannot open: {e}",
                path.display()
            ))
        })?;
        let mut r = BufReader::new(f);
        let mut magic = [0u8; 12];
        r.read_exact(&mut magic).map_err(|_| not_a_pack(path))?;
        if &magic[..8] != MAGIC {
            return Err(not_a_pack(path));
        }
        let format = u32::from_le_bytes([magic[8], magic[9], magic[10], magic[11]]);
        if format != FORMAT {
            return Err(usage(format!(
                "{}: reference pack format {format}, this qeval reads format {FORMAT}; make the pack again with this qeval",
                path.display()
            )));
        }
        let mut z = zstd::Decoder::with_buffer(r)?;
        let mut len = [0u8; 8];
        z.read_exact(&mut len)
            .with_context(|| format!("{}: the pack is cut short", path.display()))?;
        let len = u64::from_le_bytes(len) as usize;
        anyhow::ensure!(
            len < (1 << 34),
            "{}: a header of {len} bytes; not a qeval pack",
            path.display()
        );
        let mut json = vec![0u8; len];
        z.read_exact(&mut json)
            .with_context(|| format!("{}: the pack is cut short", path.display()))?;
        let header: PackHeader = serde_json::from_slice(&json)
            .with_context(|| format!("{}: the pack's header is not readable", path.display()))?;
        Ok(PackReader { header, records: z })
    }

    /// Copy every record into `raw` (uncompressed, as the worker reads them), checking that
    /// the pack holds exactly as many as its header says.
    pub fn extract(mut self, path: &Path, raw: &Path) -> Result<PackHeader> {
        let want = (self.header.scored_tokens() * PackRecord::size(self.header.top_k)) as u64;
        let mut out = BufWriter::new(
            std::fs::File::create(raw)
                .with_context(|| format!("cannot create {}", raw.display()))?,
        );
        let n = std::io::copy(&mut (&mut self.records).take(want + 1), &mut out)
            .with_context(|| format!("{}: the pack's records are damaged", path.display()))?;
        out.flush()?;
        if n != want {
            return Err(usage(format!(
                "{}: {n} bytes of records where the header promises {want}; the pack is damaged or cut short",
                path.display()
            )));
        }
        Ok(self.header)
    }
}

fn not_a_pack(path: &Path) -> anyhow::Error {
    usage(format!(
        "{}: not a qeval reference pack (made by `qeval reference` or `qeval run`)",
        path.display()
    ))
}

/// Where a pack is, its hash and size, as results.json records it.
pub fn pack_ref(path: &Path, header: &PackHeader) -> Result<crate::results::PackRef> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let n = header.scored_tokens().max(1);
    Ok(crate::results::PackRef {
        path: path.display().to_string(),
        sha256: crate::fsutil::sha256_file(path)?,
        top_k: header.top_k,
        bytes,
        scored_tokens: header.scored_tokens(),
        bytes_per_token: bytes as f64 / n as f64,
        reference_perplexity: header.results.reference_level().and_then(|l| l.perplexity),
    })
}

/// Refuse a level run whose model, tokenizer or text differ from the pack's, naming the
/// difference. `tokens` and `chunking` are the run's own.
pub fn check_matches(
    pack: &Path,
    h: &PackHeader,
    model: &crate::results::ModelInfo,
    tokenizer_sha256: &str,
    tokens: &[u32],
    chunking: &Chunking,
) -> Result<()> {
    let p = pack.display();
    if tokenizer_sha256 != h.tokenizer_sha256 {
        return Err(usage(format!(
            "--reference-pack {p}: the model's tokenizer differs from the pack's (vocabulary or special tokens: fingerprint {} here, {} in the pack, made from {}); KLD over different vocabularies means nothing",
            short(tokenizer_sha256),
            short(&h.tokenizer_sha256),
            h.results.model.display()
        )));
    }
    if model.identity() != h.results.model.identity() {
        return Err(usage(format!(
            "--reference-pack {p}: made from {} ({}), but --model is {} ({}); a pack compares levels of the model it was made from",
            h.results.model.display(),
            files(&h.results.model),
            model.display(),
            files(model)
        )));
    }
    if tokens != h.tokens.as_slice() {
        let at = tokens
            .iter()
            .zip(&h.tokens)
            .position(|(a, b)| a != b)
            .unwrap_or(tokens.len().min(h.tokens.len()));
        return Err(usage(format!(
            "--reference-pack {p}: the text differs from the pack's ({} tokens here, {} in the pack, first difference at token {at}); give the eval set the pack was made with ({} v{})",
            tokens.len(),
            h.tokens.len(),
            h.results.evalset.name,
            h.results.evalset.version
        )));
    }
    if (chunking.ctx, chunking.n_chunks, chunking.bos_id)
        != (h.chunking.ctx, h.chunking.n_chunks, h.chunking.bos_id)
    {
        return Err(usage(format!(
            "--reference-pack {p}: the pack scored {} chunks of {} tokens, this run {} of {}; leave --ctx and --chunks out to use the pack's",
            h.chunking.n_chunks, h.chunking.ctx, chunking.n_chunks, chunking.ctx
        )));
    }
    Ok(())
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn files(m: &crate::results::ModelInfo) -> String {
    m.files
        .iter()
        .map(|f| format!("{} sha256 {}…", f.name, short(&f.sha256)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The files a run against a pack writes into a shared --out folder: its own
/// `results-<levels>.json` (and items, prompts), so that shards never write the same file.
pub fn shard_suffix(levels: &[String], device: crate::results::DeviceKind) -> String {
    let mut s = levels.join("+");
    if device != crate::results::DeviceKind::Cpu {
        s = format!("{}-{s}", device.name());
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Put the pack's reference into `dir` as `results-reference.json` and
/// `items-reference.jsonl` (once: a shard that finds them there leaves them), so that
/// `qeval report DIR` shows the reference beside the levels measured against it.
pub fn place_reference(dir: &Path, h: &PackHeader, pack: &crate::results::PackRef) -> Result<()> {
    let results = dir.join("results-reference.json");
    if let Ok(prev) = Results::load(&results) {
        if prev.pack_written.as_ref().map(|p| &p.sha256) == Some(&pack.sha256) {
            return Ok(());
        }
    }
    let mut r = h.results.clone();
    r.pack_written = Some(pack.clone());
    r.save(&results)?;
    let mut s = String::new();
    for it in &h.items {
        s.push_str(&serde_json::to_string(it)?);
        s.push('\n');
    }
    let items = dir.join("items-reference.jsonl");
    if s.is_empty() {
        let _ = std::fs::remove_file(&items);
        Ok(())
    } else {
        crate::fsutil::write_atomic(&items, s.as_bytes())
    }
}

/// The raw records of a pack, extracted into the work folder for the workers.
pub fn records_file(work: &Path) -> PathBuf {
    work.join("reference.pack.raw")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        let results = Results::load(&ex).unwrap();
        let chunking = Chunking {
            ctx: 16,
            n_chunks: 2,
            bos_id: None,
        };
        let lp: Vec<f32> = {
            let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
            let mut out = vec![0f32; 100];
            crate::eval::metrics::log_softmax(&logits, &mut out);
            out
        };
        let raw = dir.path().join("raw");
        let mut w = std::fs::File::create(&raw).unwrap();
        let recs: Vec<PackRecord> = (0..chunking.scored_total())
            .map(|t| PackRecord::from_logprobs(&lp, t, 8, t as u64))
            .collect();
        for r in &recs {
            r.write(&mut w).unwrap();
        }
        drop(w);
        let h = PackHeader {
            format: FORMAT,
            top_k: 8,
            vocab_size: 100,
            tokenizer_sha256: "ab".repeat(32),
            tokens: (0..40).collect(),
            chunking,
            results,
            items: vec![],
        };
        let pack = dir.path().join("ref.qref");
        write(&pack, &h, &raw).unwrap();
        let back = dir.path().join("back");
        let h2 = PackReader::open(&pack)
            .unwrap()
            .extract(&pack, &back)
            .unwrap();
        assert_eq!(h2.tokens, h.tokens);
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&raw).unwrap());
        // A raw file of the wrong length is not packed.
        std::fs::write(&raw, b"short").unwrap();
        assert!(write(&dir.path().join("bad.qref"), &h, &raw).is_err());
        // A cut pack is refused when read, not half-used.
        let bytes = std::fs::read(&pack).unwrap();
        let cut = dir.path().join("cut.qref");
        std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
        let e = PackReader::open(&cut).and_then(|r| r.extract(&cut, &back));
        assert!(e.is_err());
        let e = PackReader::open(&ex).err().unwrap().to_string();
        assert!(e.contains("not a qeval reference pack"), "{e}");
    }
}
