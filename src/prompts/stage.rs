//! The prompt stage of a run, in the parent process: the prompts rendered and tokenized once,
//! each level's worker job (the reference first, whose answers every later level is
//! teacher-forced on), grading each level's answers, and `prompts.jsonl` — written after every
//! level and read back when a run resumes.

use crate::eval::prompts::{PromptJob, PromptOutcome, ReferenceAnswer};
use crate::model::tokenizer::ModelTokenizer;
use crate::plan::PromptsPlan;
use crate::prompts::compare::{self, PromptRecord};
use crate::prompts::prepare::{self, Prepared};
use crate::prompts::template::{self, DateTime};
use crate::results::{LevelResult, PromptSummary, PromptsInfo};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The prompt stage's state across levels.
pub struct Stage {
    pub prep: Prepared,
    /// The reference level's answers, once it has run (or been restored).
    reference: Option<Vec<PromptOutcome>>,
    records: Vec<PromptRecord>,
    spill: PathBuf,
    stop_ids: Vec<u32>,
    path: String,
}

impl Stage {
    /// Render and tokenize the prompts with the model's template (`model` is the GGUF file or
    /// the safetensors folder).
    pub fn new(p: &PromptsPlan, model: &Path, tok: &ModelTokenizer, work: &Path) -> Result<Self> {
        let templates = if model.is_dir() {
            template::from_dir(model)?
        } else {
            template::from_gguf(model)?
        };
        let chosen = template::choose(templates, p.chat_template.as_deref(), model)?;
        let prep = prepare::prepare(
            p.items.clone(),
            chosen,
            tok,
            DateTime::now_utc(),
            &model.display().to_string(),
        )?;
        Ok(Stage {
            prep,
            reference: None,
            records: Vec::new(),
            spill: work.join("reference.prompts.f32"),
            stop_ids: tok.eos_ids.clone(),
            path: p.path.clone(),
        })
    }

    /// What results.json records of how the prompts were rendered.
    pub fn info(&self, seed: u64) -> PromptsInfo {
        let t = self.prep.template.as_ref();
        let d = self.prep.now;
        PromptsInfo {
            path: self.path.clone(),
            n_prompts: self.prep.items.len(),
            template: t.map(|t| t.name.clone()),
            template_origin: t.map(|t| t.origin.clone()),
            template_sha256: t.map(|t| {
                use sha2::Digest;
                format!("{:x}", sha2::Sha256::digest(t.source.as_bytes()))
            }),
            template_date: format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                d.year, d.month, d.day, d.hour, d.minute, d.second
            ),
            stop_tokens: self.stop_ids.clone(),
            seed,
        }
    }

    /// Take back the records of levels an earlier run finished, and the reference's answers.
    pub fn restore(&mut self, path: &Path, kept: &[LevelResult]) -> Result<()> {
        let records = compare::load_records(path)?;
        let reference = kept.iter().find(|l| l.is_reference).map(|l| &l.level);
        let ref_records: Vec<&PromptRecord> = records
            .iter()
            .filter(|r| Some(&r.level) == reference)
            .collect();
        let ids: Vec<&str> = self.prep.items.iter().map(|i| i.id.as_str()).collect();
        if ref_records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            == ids
        {
            self.reference = Some(
                ref_records
                    .iter()
                    .map(|r| PromptOutcome {
                        id: r.id.clone(),
                        tokens: r.tokens.clone(),
                        text: r.answer.clone(),
                        finish: r.finish,
                        stop_token: r.stop_token,
                        scored: r.scored,
                        kld_mean: r.kld_mean,
                        top1: r.top1,
                        ref_answer_logprob: 0.0,
                        seconds: r.seconds,
                    })
                    .collect(),
            );
        }
        self.records = records
            .into_iter()
            .filter(|r| kept.iter().any(|l| l.level == r.level))
            .collect();
        Ok(())
    }

    /// Whether the reference's answers and log-probabilities are there for the levels left.
    pub fn reference_ready(&self, vocab: usize) -> bool {
        let Some(r) = &self.reference else {
            return false;
        };
        let positions: usize = r
            .iter()
            .map(|o| o.tokens.len() + usize::from(o.stop_token.is_some()))
            .sum();
        std::fs::metadata(&self.spill).map(|m| m.len()).ok() == Some((positions * vocab * 4) as u64)
    }

    /// Forget the reference (it runs again).
    pub fn drop_reference(&mut self) {
        self.reference = None;
    }

    /// Write the worker's prompt job for one level; returns its path.
    pub fn job_file(&self, key: &str, is_ref: bool, work: &Path) -> Result<PathBuf> {
        let reference = if is_ref {
            None
        } else {
            let r = self.reference.as_ref().ok_or_else(|| {
                anyhow::anyhow!("level {key}: the reference's answers to the prompts are missing")
            })?;
            Some(
                r.iter()
                    .map(|o| ReferenceAnswer {
                        id: o.id.clone(),
                        tokens: o.tokens.clone(),
                        stop_token: o.stop_token,
                    })
                    .collect(),
            )
        };
        let job = PromptJob {
            items: self.prep.tokens.clone(),
            stop_ids: self.stop_ids.clone(),
            reference,
            spill_file: self.spill.clone(),
        };
        let f = work.join(format!("prompts-{key}.json"));
        crate::fsutil::write_atomic(&f, &serde_json::to_vec(&job)?)?;
        Ok(f)
    }

    /// Grade one level's answers (the reference's are kept for the levels after it).
    pub fn grade(
        &mut self,
        outcomes: Vec<PromptOutcome>,
        level: &str,
        is_ref: bool,
        seed: u64,
    ) -> Result<PromptSummary> {
        if is_ref {
            self.reference = Some(outcomes.clone());
        }
        let reference = self.reference.as_ref().ok_or_else(|| {
            anyhow::anyhow!("level {level}: no reference answers to grade against")
        })?;
        let (summary, records) =
            compare::grade(&self.prep, reference, &outcomes, level, is_ref, seed)?;
        self.records.retain(|r| r.level != level);
        self.records.extend(records);
        Ok(summary)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        compare::save_records(path, &self.records)
    }
}
