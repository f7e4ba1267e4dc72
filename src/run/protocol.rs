//! The worker protocol: what the scheduler asks one level's worker process to do ([`Job`], a
//! JSON file whose path is the worker's only argument) and what the worker says back — typed
//! [`Progress`] messages while it works and one [`Outcome`] when it is done, both serde JSON in
//! files the job names. Both sides use these types and nothing else, so the protocol is read
//! and changed in one place. Owns no process handling ([`super::supervise`]) and no evaluation
//! ([`super::worker`]).

use crate::eval::metrics::QualitySummary;
use crate::eval::tasks::ItemOutcome;
use crate::eval::text::Chunking;
use crate::measure::speed;
use crate::results::ScoringMode;
use crate::results::Spread;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the parent asks a worker to do (written as JSON, path passed on the command line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub level: String,
    /// How quantized weights are multiplied (`--scoring`).
    #[serde(default)]
    pub mode: ScoringMode,
    pub level_file: PathBuf,
    pub tokens_file: PathBuf,
    /// What the level leaves for or takes from the reference.
    pub reference_io: ReferenceIo,
    pub is_reference: bool,
    pub chunking: Chunking,
    pub bench: speed::BenchSettings,
    pub device: crate::results::DeviceKind,
    pub outcome_file: PathBuf,
    /// Where the worker keeps its latest [`Progress`] (JSON, replaced at every step).
    pub progress_file: PathBuf,
    /// Choice/generate tasks (JSON list of `PreparedTask`), when the eval set has any.
    #[serde(default)]
    pub tasks_file: Option<PathBuf>,
    /// Users' prompts (JSON `eval::prompts::PromptJob`), with --prompts.
    #[serde(default)]
    pub prompts_file: Option<PathBuf>,
    /// The source model, for the tokenizer generation tasks decode with.
    pub model_path: PathBuf,
    /// Positions the KV cache must hold.
    pub max_seq: usize,
}

impl Job {
    pub fn load(path: &Path) -> Result<Job> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a qeval worker job", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }

    /// Report a step of a phase to the parent. Best effort: a progress line that cannot be
    /// written only leaves the bar behind, so errors are not the run's concern.
    pub fn progress(&self, phase: &str, done: usize, total: usize) {
        let msg = Progress {
            phase: phase.to_string(),
            done: done as u64,
            total: total as u64,
        };
        let tmp = self.progress_file.with_extension("tmp");
        if let Ok(bytes) = serde_json::to_vec(&msg) {
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &self.progress_file);
            }
        }
    }
}

/// How a level's text scoring meets the reference (`eval::text::Spill`, as files).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceIo {
    /// The reference: stream its full log-probabilities (when this run's other levels need
    /// them) and/or write its pack records (top-K).
    Write {
        spill: Option<PathBuf>,
        pack: Option<(PathBuf, usize)>,
    },
    /// Exact KLD against the streamed reference; `study`: top-K values whose pack KLD is
    /// computed beside it.
    Read { spill: PathBuf, study: Vec<usize> },
    /// KLD against a pack's records.
    Pack { records: PathBuf, k: usize },
}

/// One step of a worker's work: `done` of `total` in `phase` (`benchmark`, `evaluate`, a
/// task's name, `prompts`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    /// The latest progress a worker wrote, if any (none yet, or a file being replaced).
    pub fn read(path: &Path) -> Option<Progress> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// A task's per-item outcomes at this level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub name: String,
    pub outcomes: Vec<ItemOutcome>,
    pub seconds: f64,
}

/// What a worker reports back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// None when the eval set has no text (tasks only).
    pub quality: Option<QualitySummary>,
    pub prefill: Spread,
    pub decode: Spread,
    /// Eval-scoring throughput (None when the tokens hold less than one window).
    #[serde(default)]
    pub eval: Option<Spread>,
    /// The matmul implementation that ran (`speed::kernels_in_use`).
    #[serde(default)]
    pub kernels: String,
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_with_eval_bytes: Option<u64>,
    /// A GPU level's memory from the device's driver.
    #[serde(default)]
    pub device_memory: Option<crate::results::DeviceMemory>,
    pub kv_cache_bytes: u64,
    /// Positions the KV cache was allocated for.
    pub kv_cache_ctx: usize,
    pub load_s: f64,
    pub evaluate_s: f64,
    pub benchmark_s: f64,
    #[serde(default)]
    pub tasks: Vec<TaskOutcome>,
    /// Answers to the users' prompts, in prompt order.
    #[serde(default)]
    pub prompts: Vec<crate::eval::prompts::PromptOutcome>,
}

impl Outcome {
    pub fn load(path: &Path) -> Result<Outcome> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("the worker wrote no {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a worker outcome", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

/// Read the little-endian u32 token file.
pub fn read_tokens(path: &Path) -> Result<Vec<u32>> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Write tokens as little-endian u32.
pub fn write_tokens(path: &Path, toks: &[u32]) -> Result<()> {
    let b: Vec<u8> = toks.iter().flat_map(|t| t.to_le_bytes()).collect();
    crate::fsutil::write_atomic(path, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_through_the_job_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = Job {
            level: "q8_0".into(),
            mode: ScoringMode::Kernel,
            level_file: dir.path().join("l.gguf"),
            tokens_file: dir.path().join("t.u32"),
            reference_io: ReferenceIo::Read {
                spill: dir.path().join("s.f32"),
                study: vec![],
            },
            is_reference: false,
            chunking: Chunking::new(100, 32, Some(2), None),
            bench: speed::BenchSettings {
                prompt_tokens: 8,
                gen_tokens: 4,
                repeats: 1,
            },
            device: crate::results::DeviceKind::Cpu,
            outcome_file: dir.path().join("o.json"),
            progress_file: dir.path().join("p.json"),
            tasks_file: None,
            prompts_file: None,
            model_path: dir.path().join("m.gguf"),
            max_seq: 64,
        };
        assert_eq!(Progress::read(&job.progress_file), None);
        job.progress("evaluate", 3, 7);
        let p = Progress::read(&job.progress_file).expect("progress written");
        assert_eq!(
            p,
            Progress {
                phase: "evaluate".into(),
                done: 3,
                total: 7
            }
        );
        let path = dir.path().join("job.json");
        job.save(&path).expect("save");
        let back = Job::load(&path).expect("load");
        assert_eq!(back.level, "q8_0");
        assert_eq!(back.chunking.n_chunks, job.chunking.n_chunks);
        std::fs::write(&path, b"{\"level\": 3}").expect("write");
        let err = format!("{:#}", Job::load(&path).unwrap_err());
        assert!(err.contains("not a qeval worker job"), "{err}");
    }

    #[test]
    fn tokens_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.u32");
        write_tokens(&p, &[1, 70_000, u32::MAX]).expect("write");
        assert_eq!(read_tokens(&p).expect("read"), vec![1, 70_000, u32::MAX]);
    }
}
