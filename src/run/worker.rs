//! The worker process that runs one level (`qeval __level JOB.json`): load the level's weights
//! file, benchmark, score the text, the tasks and the prompts, and write the [`Outcome`]. One
//! process per level keeps peak memory honest (peak RSS never goes down inside a process) and
//! keeps a crash of one level from sinking the run. It reads and writes only what its
//! [`Job`] names; grading, results and reports are the parent's.

use super::protocol::{read_tokens, Job, Outcome, ReferenceIo, TaskOutcome};
use crate::eval::checkpoint::{self, Checkpoint};
use crate::eval::metrics::{self, QualitySummary};
use crate::eval::taskprep::PreparedTask;
use crate::eval::tasks;
use crate::eval::text::{self, Spill};
use crate::measure::{memory, speed};
use crate::model::transformer::Transformer;
use crate::results::{DeviceKind, Spread, TaskKind};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// Open the compute device.
pub fn open_device(kind: DeviceKind) -> Result<candle_core::Device> {
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

/// Run a job (the `__level` subcommand) on a thread of the compute pool: a parallel kernel
/// called from a pool thread works on its own share instead of sleeping until the pool's
/// threads are done (one wake-up less per parallel op; it matters for decode).
pub fn run(job_path: &Path) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = job_path.to_path_buf();
    rayon::spawn(move || {
        let _ = tx.send(run_here(&path));
    });
    rx.recv()
        .context("the level worker's compute thread ended without a result")?
}

/// While loading: every block of 1 MiB or more is its own mapping, given back when freed. A
/// fixed threshold turns off glibc's sliding one, which rises to the size of the last freed
/// mapping, after which each tensor's read buffer (freed once the weight is repacked into
/// tiles or converted) came from the heap and left a hole there: Qwen2.5-Coder-1.5B q4_k_m
/// peaked 290 MB higher with its k-quants repacked.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Every op of a forward pass allocates its output; glibc gives large blocks back to the
/// kernel on free (mmap above a threshold, trimming the heap), so the next pass page-faults
/// and zeroes them again (about a tenth of f16 prefill here). Keep freed memory in the heap
/// for reuse: every block stays in the heap and is never trimmed. Peak RSS still counts what
/// is in use at the peak. Set after the model is loaded (see `run_here`).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn run_here(job_path: &Path) -> Result<()> {
    let job = Job::load(job_path)?;
    let device = open_device(job.device)?;
    // A GPU's memory is read from its driver from here on (the baseline first).
    let sampler = crate::measure::device::Sampler::start(&device);
    let t0 = Instant::now();
    return_freed_memory();
    let (cfg, tensors) = crate::quant::quantize::read_level_file(&job.level_file, &device)?;
    let mut model = Transformer::with_mode(&cfg, tensors, job.max_seq, &device, job.mode)?;
    // Only now: while loading, each tensor's read buffer and its converted copy are freed
    // as the next one arrives, and with glibc's defaults those large blocks go back to the
    // system at once. Kept in the heap they left holes: f16 Qwen2.5-Coder-1.5B peaked at
    // 5,050 MB for 3,554 MB of weights.
    keep_freed_memory();
    device.synchronize()?;
    let load_s = t0.elapsed().as_secs_f64();
    let after_load = sampler.as_ref().map(|s| s.now()).unwrap_or(0);
    let tokens = read_tokens(&job.tokens_file)?;

    // Benchmark first, so the peak resident memory read after it is what a deployment of this
    // level uses (weights, KV cache, a 512-token prefill, decoding); scoring holds a window
    // of full-vocabulary logits on top of that and is reported separately.
    let t2 = Instant::now();
    let b = speed::run(&mut model, &tokens, &job.bench, &device, &|done, total| {
        job.progress("benchmark", done, total)
    })?;
    let peak_rss_bytes = memory::peak_rss_bytes();
    let device_peak = sampler.as_ref().map(|s| s.peak()).unwrap_or(0);
    // Eval-scoring throughput after the peak-RSS reading: its window of logits belongs to
    // evaluation, not to a deployment. A run times the windows its evaluation scores (below);
    // `qeval bench`, which scores none, times its own.
    let mut eval = None;
    if job.chunking.n_chunks == 0 {
        eval = speed::eval_throughput(
            &mut model,
            &tokens,
            &job.chunking,
            job.bench.repeats,
            &device,
            &|done, total| job.progress("eval speed", done, total),
        )?;
    }
    let benchmark_s = t2.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let (quality, scoring_speed) = score_text(&mut model, &tokens, &job, cfg.vocab_size)?;
    eval = scoring_speed.or(eval);
    let evaluate_s = t1.elapsed().as_secs_f64();
    let task_outcomes = match &job.tasks_file {
        Some(f) => run_tasks(&mut model, f, &job)?,
        None => Vec::new(),
    };
    let prompt_outcomes = match &job.prompts_file {
        Some(f) => run_prompts(&mut model, f, &job, cfg.vocab_size)?,
        None => Vec::new(),
    };
    Outcome {
        quality,
        prefill: b.prefill,
        decode: b.decode,
        eval,
        kernels: speed::kernels_in_use(),
        peak_rss_bytes,
        peak_rss_with_eval_bytes: memory::peak_rss_bytes(),
        device_memory: sampler.map(|s| s.finish(after_load, device_peak)),
        kv_cache_bytes: model.kv_cache_bytes(),
        kv_cache_ctx: job.max_seq,
        load_s,
        evaluate_s,
        benchmark_s,
        tasks: task_outcomes,
        prompts: prompt_outcomes,
    }
    .save(&job.outcome_file)
}

/// Score the text's chunks (the reference writes its log-probabilities to the spill file, the
/// other levels read them): the quality summary and the speed of the scored windows.
fn score_text(
    model: &mut Transformer,
    tokens: &[u32],
    job: &Job,
    vocab_size: usize,
) -> Result<(Option<QualitySummary>, Option<Spread>)> {
    let total = job.chunking.n_chunks;
    if total == 0 {
        return Ok((None, None));
    }
    let spill = match &job.reference_io {
        ReferenceIo::Write { spill, pack } => Spill::Write {
            spill: spill.as_deref(),
            pack: pack.as_ref().map(|(p, k)| (p.as_path(), *k)),
        },
        ReferenceIo::Read { spill, study } => Spill::Read { spill, study },
        ReferenceIo::Pack { records, k } => Spill::Pack { records, k: *k },
    };
    let scored = text::score(model, tokens, &job.chunking, spill, vocab_size, &|done| {
        job.progress("evaluate", done, total)
    })?;
    let speeds = scored.speeds;
    // The first window pays for cold caches: left out when there are others.
    let warm = if speeds.len() > 1 {
        &speeds[1..]
    } else {
        &speeds[..]
    };
    let mut summary = metrics::summarize(&scored.positions);
    summary.kld_by_top_k = scored.kld_by_top_k;
    Ok((Some(summary), Some(speed::spread(warm))))
}

/// Answer the users' prompts (greedy, with the reference's answers teacher-forced for KLD).
fn run_prompts(
    model: &mut Transformer,
    prompts_file: &Path,
    job: &Job,
    vocab_size: usize,
) -> Result<Vec<crate::eval::prompts::PromptOutcome>> {
    let pj: crate::eval::prompts::PromptJob = serde_json::from_slice(
        &std::fs::read(prompts_file)
            .with_context(|| format!("cannot read {}", prompts_file.display()))?,
    )?;
    let tok = crate::model::tokenizer::load_for(&job.model_path)?;
    crate::eval::prompts::run(model, &tok, &pj, job.max_seq, vocab_size, &|done, total| {
        job.progress("prompts", done, total)
    })
}

/// Score every choice/generate task of the job, one after the other, in checkpointed batches.
fn run_tasks(model: &mut Transformer, tasks_file: &Path, job: &Job) -> Result<Vec<TaskOutcome>> {
    let prepared: Vec<PreparedTask> = serde_json::from_slice(
        &std::fs::read(tasks_file)
            .with_context(|| format!("cannot read {}", tasks_file.display()))?,
    )?;
    let tok = if prepared.iter().any(|t| t.kind == TaskKind::Generate) {
        Some(crate::model::tokenizer::load_for(&job.model_path)?)
    } else {
        None
    };
    let max_seq = job.max_seq;
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
            let progress = |done: usize| job.progress(&t.name, from + done, total);
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
