//! The worker process that runs one level: load its weights file, score the text, benchmark,
//! and write the outcome. One process per level keeps peak memory honest (peak RSS never goes
//! down inside a process) and keeps a crash of one level from sinking the run.

use crate::eval::checkpoint::{self, Checkpoint};
use crate::eval::metrics::{self, QualitySummary};
use crate::eval::taskprep::PreparedTask;
use crate::eval::tasks::{self, ItemOutcome};
use crate::eval::text::{self, Chunking, Spill};
use crate::measure::{memory, speed};
use crate::model::transformer::Transformer;
use crate::results::{Spread, TaskKind};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the parent asks a worker to do (written as JSON, path passed on the command line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub level: String,
    /// How quantized weights are multiplied (`--scoring`).
    #[serde(default)]
    pub mode: crate::model::transformer::ScoringMode,
    pub level_file: PathBuf,
    pub tokens_file: PathBuf,
    pub spill_file: PathBuf,
    pub is_reference: bool,
    pub chunking: Chunking,
    pub bench: speed::BenchSettings,
    pub device: crate::results::DeviceKind,
    pub outcome_file: PathBuf,
    /// Path of a progress file the worker updates with "PHASE|done/total".
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

/// Open the compute device.
pub fn open_device(kind: crate::results::DeviceKind) -> Result<candle_core::Device> {
    use crate::results::DeviceKind;
    Ok(match kind {
        DeviceKind::Cpu => candle_core::Device::Cpu,
        DeviceKind::Cuda => {
            candle_core::Device::new_cuda(0).context("cannot open CUDA device 0")?
        }
        DeviceKind::Metal => {
            candle_core::Device::new_metal(0).context("cannot open Metal device 0")?
        }
    })
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

/// Run a job (the `__level` subcommand) on a thread of the compute pool: a parallel kernel
/// called from a pool thread works on its own share instead of sleeping until the pool's
/// threads are done (one wake-up less per parallel op; it matters for decode).
pub fn run(job_path: &Path) -> Result<()> {
    keep_freed_memory();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = job_path.to_path_buf();
    rayon::spawn(move || {
        let _ = tx.send(run_here(&path));
    });
    rx.recv()
        .context("the level worker's compute thread ended without a result")?
}

/// Every op of a forward pass allocates its output; glibc gives large blocks back to the
/// kernel on free (mmap above a threshold, trimming the heap), so the next pass page-faults
/// and zeroes them again (about a tenth of f16 prefill here). Keep freed memory in the heap
/// for reuse: every block stays in the heap and is never trimmed. Peak RSS still counts what
/// is in use at the peak.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only sets allocator parameters; called before the compute threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn run_here(job_path: &Path) -> Result<()> {
    let job: Job = serde_json::from_slice(
        &std::fs::read(job_path).with_context(|| format!("cannot read {}", job_path.display()))?,
    )?;
    let device = open_device(job.device)?;
    let t0 = Instant::now();
    let (cfg, tensors) = crate::quant::quantize::read_level_file(&job.level_file, &device)?;
    let max_seq = job.max_seq;
    let mut model = Transformer::with_mode(&cfg, tensors, max_seq, &device, job.mode)?;
    let load_s = t0.elapsed().as_secs_f64();
    let tokens = read_tokens(&job.tokens_file)?;

    // Benchmark first, so the peak resident memory read after it is what a deployment of this
    // level uses (weights, KV cache, a 512-token prefill, decoding); scoring holds a window
    // of full-vocabulary logits on top of that and is reported separately.
    let t2 = Instant::now();
    let pf = job.progress_file.clone();
    let b = speed::run(&mut model, &tokens, &job.bench, &device, &|done, total| {
        let _ = std::fs::write(&pf, format!("benchmark|{done}/{total}"));
    })?;
    let peak_rss_bytes = memory::peak_rss_bytes();
    // Eval-scoring throughput after the peak-RSS reading: its window of logits belongs to
    // evaluation, not to a deployment. A run times the windows its evaluation scores (below);
    // `qeval bench`, which scores none, times its own.
    let mut eval = None;
    if job.chunking.n_chunks == 0 {
        let pf = job.progress_file.clone();
        eval = speed::eval_throughput(
            &mut model,
            &tokens,
            &job.chunking,
            job.bench.repeats,
            &device,
            &|done, total| {
                let _ = std::fs::write(&pf, format!("eval speed|{done}/{total}"));
            },
        )?;
    }
    let benchmark_s = t2.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let spill = if job.is_reference {
        Spill::Write(&job.spill_file)
    } else {
        Spill::Read(&job.spill_file)
    };
    let total = job.chunking.n_chunks;
    let pf = job.progress_file.clone();
    let positions = if total == 0 {
        Vec::new()
    } else {
        let (positions, speeds) = text::score(
            &mut model,
            &tokens,
            &job.chunking,
            spill,
            cfg.vocab_size,
            &|done| {
                let _ = std::fs::write(&pf, format!("evaluate|{done}/{total}"));
            },
        )?;
        // The first window pays for cold caches: left out when there are others.
        let warm = if speeds.len() > 1 {
            &speeds[1..]
        } else {
            &speeds[..]
        };
        eval = Some(speed::spread(warm));
        positions
    };
    let quality = (total > 0).then(|| metrics::summarize(&positions));
    let evaluate_s = t1.elapsed().as_secs_f64();
    let task_outcomes = match &job.tasks_file {
        Some(f) => run_tasks(&mut model, f, &job, max_seq)?,
        None => Vec::new(),
    };
    let prompt_outcomes = match &job.prompts_file {
        Some(f) => {
            let pj: crate::eval::prompts::PromptJob = serde_json::from_slice(
                &std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
            )?;
            let tok = crate::model::tokenizer::load_for(&job.model_path)?;
            let pf = job.progress_file.clone();
            crate::eval::prompts::run(
                &mut model,
                &tok,
                &pj,
                max_seq,
                cfg.vocab_size,
                &|done, total| {
                    let _ = std::fs::write(&pf, format!("prompts|{done}/{total}"));
                },
            )?
        }
        None => Vec::new(),
    };
    let outcome = Outcome {
        quality,
        prefill: b.prefill,
        decode: b.decode,
        eval,
        kernels: speed::kernels_in_use(),
        peak_rss_bytes,
        peak_rss_with_eval_bytes: memory::peak_rss_bytes(),
        kv_cache_bytes: model.kv_cache_bytes(),
        kv_cache_ctx: max_seq,
        load_s,
        evaluate_s,
        benchmark_s,
        tasks: task_outcomes,
        prompts: prompt_outcomes,
    };
    crate::fsutil::write_atomic(&job.outcome_file, &serde_json::to_vec_pretty(&outcome)?)
}

/// Score every choice/generate task of the job, one after the other, in checkpointed batches.
fn run_tasks(
    model: &mut Transformer,
    tasks_file: &Path,
    job: &Job,
    max_seq: usize,
) -> Result<Vec<TaskOutcome>> {
    let prepared: Vec<PreparedTask> = serde_json::from_slice(
        &std::fs::read(tasks_file)
            .with_context(|| format!("cannot read {}", tasks_file.display()))?,
    )?;
    let tok = if prepared.iter().any(|t| t.kind == TaskKind::Generate) {
        Some(crate::model::tokenizer::load_for(&job.model_path)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for (ti, t) in prepared.iter().enumerate() {
        let total = t.len();
        let ids: Vec<&str> = match t.kind {
            TaskKind::Choice => t.choice.iter().map(|c| c.id.as_str()).collect(),
            _ => t.generate.iter().map(|g| g.id.as_str()).collect(),
        };
        // Outcomes are kept batch by batch, so a level stopped half-way resumes mid-task.
        let fp = checkpoint::fingerprint(&[
            &serde_json::to_vec(t)?,
            job.level.as_bytes(),
            job.model_path.to_string_lossy().as_bytes(),
            &(max_seq as u64).to_le_bytes(),
        ]);
        let cp_path = job.outcome_file.with_extension(format!("task{ti}.jsonl"));
        let mut cp = Checkpoint::open(&cp_path, &fp, &ids)?;
        let batch = if t.kind == TaskKind::Generate { 16 } else { 64 };
        while cp.done() < total {
            let (from, to) = (cp.done(), (cp.done() + batch).min(total));
            let t0 = Instant::now();
            let pf = job.progress_file.clone();
            let name = t.name.clone();
            let progress = move |done: usize| {
                let _ = std::fs::write(&pf, format!("{name}|{}/{total}", from + done));
            };
            let outcomes = match (t.kind, &tok, &t.params) {
                (TaskKind::Choice, _, _) => {
                    tasks::score_choice(model, &t.choice[from..to], max_seq, &progress)?
                }
                (TaskKind::Generate, Some(tok), Some(p)) => {
                    tasks::score_generate(model, tok, &t.generate[from..to], p, max_seq, &progress)?
                }
                (k, _, _) => anyhow::bail!("task {}: cannot run kind '{k}'", t.name),
            };
            cp.append(t0.elapsed().as_secs_f64(), outcomes)?;
        }
        out.push(TaskOutcome {
            name: t.name.clone(),
            seconds: cp.seconds,
            outcomes: cp.outcomes,
        });
    }
    Ok(out)
}
