//! Text scoring with llama.cpp's perplexity convention: the tokenized text is cut into
//! non-overlapping chunks of `ctx` tokens, the first token of each chunk is replaced by BOS
//! when the model adds one, and the second half of each chunk is scored.
//!
//! The reference level writes the log-probabilities of every scored position to a spill file
//! (f32, one vocabulary-sized row per position, streamed window by window); each other level
//! reads them back in the same order. No full-vocabulary logits are held in memory beyond one
//! window, and KL divergence is exact (no top-k truncation). The reference can also write the
//! records of a reference pack (top-K, `super::pack`), and a level can be scored against a
//! pack's records instead of the stream.

use super::metrics::{self, Position};
use super::pack::{self, PackRecord};
use crate::model::transformer::Transformer;
use anyhow::{Context, Result};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// How the text is cut and scored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Chunking {
    pub ctx: usize,
    pub n_chunks: usize,
    pub bos_id: Option<u32>,
}

impl Chunking {
    /// Chunks available in `n_tokens` tokens, limited by `max_chunks`.
    pub fn new(
        n_tokens: usize,
        ctx: usize,
        max_chunks: Option<usize>,
        bos_id: Option<u32>,
    ) -> Self {
        let avail = n_tokens / ctx.max(1);
        Chunking {
            ctx,
            n_chunks: max_chunks.map_or(avail, |m| m.min(avail)),
            bos_id,
        }
    }

    /// First scored position within a chunk (llama.cpp: ctx/2).
    pub fn first(&self) -> usize {
        self.ctx / 2
    }

    /// Scored positions per chunk: positions first..ctx-1 predict tokens first+1..ctx.
    pub fn scored_per_chunk(&self) -> usize {
        self.ctx - 1 - self.first()
    }

    pub fn scored_total(&self) -> usize {
        self.n_chunks * self.scored_per_chunk()
    }

    /// The model input of chunk `i`.
    pub fn input(&self, tokens: &[u32], i: usize) -> Vec<u32> {
        let start = i * self.ctx;
        let mut v = tokens[start..start + self.ctx].to_vec();
        if let Some(b) = self.bos_id {
            v[0] = b;
        }
        v
    }
}

/// The forward pass text scoring runs for chunk `c`: reset the cache, run the whole window in
/// one pass, and return the logits (one row per scored position) in host memory. The speed
/// benchmark's eval-scoring throughput times exactly this.
pub fn window_logits(
    model: &mut Transformer,
    tokens: &[u32],
    ch: &Chunking,
    c: usize,
) -> Result<Vec<Vec<f32>>> {
    model.reset();
    let input = ch.input(tokens, c);
    let logits = model.forward(&input, ch.first())?;
    Ok(logits.to_vec2::<f32>()?)
}

/// What the reference leaves for the other levels, or where a level finds it.
pub enum Spill<'a> {
    /// The reference: stream its full log-probabilities to `spill` (for exact KLD in this
    /// run), and/or its pack records (top-`k`) to `pack`.
    Write {
        spill: Option<&'a Path>,
        pack: Option<(&'a Path, usize)>,
    },
    /// A level against the streamed reference (exact KLD); `study` lists top-K values whose
    /// pack KLD is computed beside it (`--kld-study`).
    Read { spill: &'a Path, study: &'a [usize] },
    /// A level against a pack's records (top-`k`).
    Pack { records: &'a Path, k: usize },
}

/// What scoring the text gives: one `Position` per scored token, each window's forward speed,
/// and the mean KLD at each studied top-K.
pub struct Scored {
    pub positions: Vec<Position>,
    pub speeds: Vec<f64>,
    pub kld_by_top_k: Vec<(usize, f64)>,
}

/// Score the text with `model`; returns one `Position` per scored token.
/// `v` as little-endian bytes: the f32s' own memory on a little-endian machine, else through
/// `buf`.
fn f32_bytes<'a>(v: &'a [f32], buf: &'a mut [u8]) -> &'a [u8] {
    if cfg!(target_endian = "little") {
        // Safety: any f32 is 4 plain bytes; the slice covers exactly v's memory.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 4) }
    } else {
        for (k, x) in v.iter().enumerate() {
            buf[k * 4..k * 4 + 4].copy_from_slice(&x.to_le_bytes());
        }
        &buf[..v.len() * 4]
    }
}

/// Fill `v` from little-endian f32s read from `r` (straight into v's memory where the machine
/// is little-endian).
fn read_f32s(r: &mut impl Read, v: &mut [f32], buf: &mut [u8]) -> std::io::Result<()> {
    if cfg!(target_endian = "little") {
        // Safety: every 4-byte pattern is a valid f32; the slice covers exactly v's memory.
        let b = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 4) };
        r.read_exact(b)
    } else {
        r.read_exact(&mut buf[..v.len() * 4])?;
        for (k, x) in v.iter_mut().enumerate() {
            *x = f32::from_le_bytes([buf[k * 4], buf[k * 4 + 1], buf[k * 4 + 2], buf[k * 4 + 3]]);
        }
        Ok(())
    }
}

/// Score the text with `model`, reading or writing the reference as `spill` says. Also returns
/// each window's forward speed (tokens of the window per second of its pass): the
/// eval-scoring throughput of a run, measured on the evaluation itself.
pub fn score(
    model: &mut Transformer,
    tokens: &[u32],
    ch: &Chunking,
    spill: Spill<'_>,
    vocab: usize,
    on_chunk: &dyn Fn(usize),
) -> Result<Scored> {
    let mut writer = None;
    let mut pack_writer = None;
    let mut reader = None;
    let mut pack_reader = None;
    let mut study: &[usize] = &[];
    let expect_len = |p: &Path, expected: u64, what: &str| -> Result<std::fs::File> {
        let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        let len = f.metadata()?.len();
        anyhow::ensure!(
            len == expected,
            "{what} {} hold {len} bytes, expected {expected}; the reference run did not finish",
            p.display()
        );
        Ok(f)
    };
    let create = |p: &Path| -> Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))
    };
    match spill {
        Spill::Write { spill, pack } => {
            if let Some(p) = spill {
                writer = Some(create(p)?);
            }
            if let Some((p, k)) = pack {
                pack_writer = Some((create(p)?, k));
            }
        }
        Spill::Read { spill: p, study: s } => {
            let f = expect_len(
                p,
                (ch.scored_total() * vocab * 4) as u64,
                "reference log-probabilities",
            )?;
            reader = Some(BufReader::with_capacity(1 << 20, f));
            study = s;
        }
        Spill::Pack { records, k } => {
            let f = expect_len(
                records,
                (ch.scored_total() * PackRecord::size(k)) as u64,
                "reference pack records",
            )?;
            pack_reader = Some((BufReader::with_capacity(1 << 20, f), k));
        }
    }
    let first = ch.first();
    let n = ch.scored_per_chunk();
    let mut out = Vec::with_capacity(ch.scored_total());
    let mut speeds = Vec::with_capacity(ch.n_chunks);
    let mut study_sums = vec![0f64; study.len()];
    let mut lp = vec![0f32; vocab];
    let mut ref_lp = vec![0f32; vocab];
    let mut bytes = vec![0u8; vocab * 4];
    for c in 0..ch.n_chunks {
        let t = std::time::Instant::now();
        let rows = window_logits(model, tokens, ch, c)?;
        speeds.push(ch.ctx as f64 / t.elapsed().as_secs_f64());
        for (j, row) in rows.iter().take(n).enumerate() {
            if let Some(bad) = row.iter().position(|x| !x.is_finite()) {
                anyhow::bail!(
                    "non-finite logit (token {bad}) in chunk {c} at position {}: this level produces invalid output",
                    first + j
                );
            }
            metrics::log_softmax(row, &mut lp);
            let target = tokens[c * ch.ctx + first + j + 1] as usize;
            // The position's index among the scored ones: the seed of a pack record's draws.
            let pos = out.len() as u64;
            if let Some(r) = reader.as_mut() {
                read_f32s(r, &mut ref_lp, &mut bytes)?;
                out.push(metrics::compare(&ref_lp, &lp, target));
                // Exactly the record a pack of each K would hold.
                let order = if study.is_empty() {
                    Vec::new()
                } else {
                    pack::sorted(&ref_lp)
                };
                for (sum, &k) in study_sums.iter_mut().zip(study) {
                    let rec = PackRecord::from_sorted(&ref_lp, &order, target, k, pos);
                    *sum += pack::kl_divergence(&rec, &lp);
                }
            } else if let Some((r, k)) = pack_reader.as_mut() {
                let rec = PackRecord::read(r, *k)?;
                out.push(pack::compare(&rec, &lp, target));
            } else {
                if let Some(w) = writer.as_mut() {
                    w.write_all(f32_bytes(&lp, &mut bytes))?;
                }
                if let Some((w, k)) = pack_writer.as_mut() {
                    // Seeded by the position: the draws a study of the same K makes.
                    PackRecord::from_logprobs(&lp, target, *k, pos).write(w)?;
                }
                out.push(Position {
                    nll: -(lp[target] as f64),
                    kld: 0.0,
                    top1_same: true,
                    delta_p: 0.0,
                });
            }
        }
        on_chunk(c + 1);
    }
    if let Some(mut w) = writer {
        w.flush()?;
    }
    if let Some((mut w, _)) = pack_writer {
        w.flush()?;
    }
    let n_pos = out.len().max(1) as f64;
    Ok(Scored {
        positions: out,
        speeds,
        kld_by_top_k: study
            .iter()
            .zip(&study_sums)
            .map(|(&k, s)| (k, s / n_pos))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_follows_llama_cpp() {
        let ch = Chunking::new(1100, 512, None, Some(1));
        assert_eq!(ch.n_chunks, 2);
        assert_eq!(ch.first(), 256);
        assert_eq!(ch.scored_per_chunk(), 255);
        let toks: Vec<u32> = (0..1100).collect();
        let inp = ch.input(&toks, 1);
        assert_eq!(inp[0], 1);
        assert_eq!(inp[1], 513);
        assert_eq!(inp.len(), 512);
        let limited = Chunking::new(1100, 512, Some(1), None);
        assert_eq!(limited.n_chunks, 1);
        assert_eq!(limited.input(&toks, 0)[0], 0);
    }
}
