//! Users' prompts on one level, in the worker: greedy decoding of every prompt up to its
//! `max_tokens` (stopping at the model's end-of-generation tokens, the KV cache reused from
//! the prompt on), then a teacher-forced pass over the *reference level's* answer, whose
//! per-position distributions the reference writes to a scratch file and every other level
//! compares with (KL divergence and top-1 agreement on the reference's own answer tokens).

use crate::eval::metrics::{argmax, kl_divergence, log_softmax};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::transformer::Transformer;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

/// One prompt as tokens (chat template applied, BOS handled) and its answer budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromptTokens {
    pub id: String,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
}

/// The reference level's answer to one prompt, as the other levels are teacher-forced on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceAnswer {
    pub id: String,
    pub tokens: Vec<u32>,
    /// The end-of-generation token it stopped on, scored as part of the answer.
    pub stop_token: Option<u32>,
}

impl ReferenceAnswer {
    /// The tokens the teacher-forced pass scores: the answer, then its stop token.
    pub fn targets(&self) -> Vec<u32> {
        self.tokens.iter().copied().chain(self.stop_token).collect()
    }
}

/// What a worker is asked to do with the prompts (written as JSON by the parent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromptJob {
    pub items: Vec<PromptTokens>,
    /// Tokens that end an answer (EOS and end-of-turn).
    pub stop_ids: Vec<u32>,
    /// The reference's answers (None at the reference itself, which writes `spill_file`).
    pub reference: Option<Vec<ReferenceAnswer>>,
    /// The reference's log-probabilities at every target position, f32 little-endian rows.
    pub spill_file: PathBuf,
}

/// Why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    /// An end-of-generation token.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The KV cache is full.
    Context,
}

/// One prompt at one level: its own greedy answer and the teacher-forced comparison on the
/// reference's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PromptOutcome {
    pub id: String,
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
    pub stop_token: Option<u32>,
    /// Positions scored teacher-forced (the reference's answer and its stop token).
    pub scored: usize,
    /// Mean KL(reference ‖ level) over those positions, nats.
    pub kld_mean: f64,
    /// Fraction of those positions where the level's most likely token is the reference's.
    pub top1: f64,
    /// Summed log-probability this level gives the reference's answer tokens.
    pub ref_answer_logprob: f64,
    pub seconds: f64,
}

/// Run every prompt on `model`.
pub fn run(
    model: &mut Transformer,
    tok: &ModelTokenizer,
    job: &PromptJob,
    max_seq: usize,
    vocab: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<PromptOutcome>> {
    let total = job.items.len();
    let mut spill_w = match job.reference {
        None => Some(BufWriter::new(
            std::fs::File::create(&job.spill_file)
                .with_context(|| format!("cannot create {}", job.spill_file.display()))?,
        )),
        Some(_) => None,
    };
    let mut spill_r = match job.reference {
        Some(_) => Some(BufReader::new(
            std::fs::File::open(&job.spill_file)
                .with_context(|| format!("cannot open {}", job.spill_file.display()))?,
        )),
        None => None,
    };
    let mut out = Vec::with_capacity(total);
    let mut lp = vec![0f32; vocab];
    let mut ref_lp = vec![0f32; vocab];
    let mut raw = vec![0u8; vocab * 4];
    for (i, it) in job.items.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let (tokens, finish, stop_token) = generate(model, it, &job.stop_ids, max_seq)?;
        let text = tok.decode(&tokens)?;
        let own = ReferenceAnswer {
            id: it.id.clone(),
            tokens: tokens.clone(),
            stop_token,
        };
        let target_answer = match &job.reference {
            Some(r) => r
                .get(i)
                .filter(|a| a.id == it.id)
                .with_context(|| format!("prompt {}: no reference answer", it.id))?,
            None => &own,
        };
        let targets = target_answer.targets();
        let (mut kld, mut hits, mut ref_logprob) = (0f64, 0usize, 0f64);
        if !targets.is_empty() {
            let input: Vec<u32> = it
                .prompt
                .iter()
                .chain(&targets[..targets.len() - 1])
                .copied()
                .collect();
            anyhow::ensure!(
                input.len() <= max_seq,
                "prompt {}: {} tokens with its answer, more than the {max_seq} positions of the KV cache",
                it.id,
                input.len()
            );
            model.reset();
            let rows = model
                .forward(&input, it.prompt.len() - 1)?
                .to_vec2::<f32>()?;
            anyhow::ensure!(rows.len() == targets.len(), "prompt {}: row count", it.id);
            for (row, &target) in rows.iter().zip(&targets) {
                anyhow::ensure!(
                    row.len() == vocab && row.iter().all(|x| x.is_finite()),
                    "non-finite or misshaped logits at prompt {}",
                    it.id
                );
                log_softmax(row, &mut lp);
                ref_logprob += lp[target as usize] as f64;
                if let Some(w) = spill_w.as_mut() {
                    for x in &lp {
                        w.write_all(&x.to_le_bytes())?;
                    }
                    hits += 1;
                } else if let Some(r) = spill_r.as_mut() {
                    // Rows were written in prompt and position order: read them in that order.
                    r.read_exact(&mut raw).with_context(|| {
                        format!(
                            "{}: the reference's log-probabilities end early",
                            job.spill_file.display()
                        )
                    })?;
                    for (d, c) in ref_lp.iter_mut().zip(raw.chunks_exact(4)) {
                        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                    kld += kl_divergence(&ref_lp, &lp);
                    hits += usize::from(argmax(&ref_lp) == argmax(&lp));
                }
            }
        }
        let n = targets.len().max(1) as f64;
        out.push(PromptOutcome {
            id: it.id.clone(),
            tokens,
            text,
            finish,
            stop_token,
            scored: targets.len(),
            kld_mean: kld / n,
            top1: if targets.is_empty() {
                1.0
            } else {
                hits as f64 / n
            },
            ref_answer_logprob: ref_logprob,
            seconds: t0.elapsed().as_secs_f64(),
        });
        progress(i + 1, total);
    }
    if let Some(mut w) = spill_w {
        w.flush()?;
    }
    model.reset();
    Ok(out)
}

/// Greedy decoding of one prompt: its tokens, why it stopped, and the stop token.
fn generate(
    model: &mut Transformer,
    it: &PromptTokens,
    stop_ids: &[u32],
    max_seq: usize,
) -> Result<(Vec<u32>, Finish, Option<u32>)> {
    anyhow::ensure!(!it.prompt.is_empty(), "prompt {}: no tokens", it.id);
    anyhow::ensure!(
        it.prompt.len() < max_seq,
        "prompt {}: {} tokens, more than the {max_seq} positions of the KV cache",
        it.id,
        it.prompt.len()
    );
    model.reset();
    let mut logits = model.forward(&it.prompt, it.prompt.len() - 1)?;
    let mut gen = Vec::new();
    loop {
        let row = logits.squeeze(0)?.to_vec1::<f32>()?;
        anyhow::ensure!(
            row.iter().all(|x| x.is_finite()),
            "non-finite logits at prompt {}",
            it.id
        );
        let next = argmax(&row) as u32;
        if stop_ids.contains(&next) {
            return Ok((gen, Finish::Stop, Some(next)));
        }
        gen.push(next);
        if gen.len() >= it.max_tokens {
            return Ok((gen, Finish::Length, None));
        }
        // The teacher-forced pass needs room for the prompt, the answer and nothing more.
        if model.position() + 1 >= max_seq {
            return Ok((gen, Finish::Context, None));
        }
        logits = model.forward(&[next], 0)?;
    }
}
