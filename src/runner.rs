//! Running a plan: open the source once, tokenize the text once, then for each level (the
//! reference first) make its weights, run it in a worker process, and fold the outcome into
//! results.json, rewriting it and the reports after every level.

use crate::error::{usage, EXIT_INCOMPLETE};
use crate::eval::text::Chunking;
use crate::fsutil::sha256_file;
use crate::level_worker::{self, Job, Outcome};
use crate::model::source::{Format, ModelSource};
use crate::model::tokenizer::ModelTokenizer;
use crate::plan::{LevelSource, Plan};
use crate::quant::{quantize, Level};
use crate::results::*;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::time::{Duration, Instant};

fn bar(quiet: bool, len: u64, msg: String) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

fn note(quiet: bool, s: &str) {
    if !quiet {
        eprintln!("{s}");
    }
}

/// Execute the plan; returns the exit code (0, or EXIT_INCOMPLETE when a level failed).
pub fn execute(plan: &Plan) -> Result<i32> {
    let t_all = Instant::now();
    let src = ModelSource::open(&plan.model_path)?;
    let tok = match src.format {
        Format::Gguf => crate::model::tokenizer::gguf_tokenizer(&plan.model_path)?,
        Format::Safetensors => ModelTokenizer::from_dir(&plan.model_path)?,
    };
    let cfg = src.config.clone();
    if tok.vocab_size() > cfg.vocab_size {
        return Err(usage(format!(
            "{}: the tokenizer has {} tokens but the model's vocabulary has {}; tokenizer and weights do not belong together",
            plan.model_path.display(),
            tok.vocab_size(),
            cfg.vocab_size
        )));
    }
    if plan.ctx > cfg.context_length {
        return Err(usage(format!(
            "--ctx {}: larger than the model's context length {}",
            plan.ctx, cfg.context_length
        )));
    }
    let t_tok = Instant::now();
    let tokens = tok.encode(&plan.evalset.text, tok.add_bos)?;
    let tokenize_s = t_tok.elapsed().as_secs_f64();
    let chunking = Chunking::new(
        tokens.len(),
        plan.ctx,
        plan.chunks,
        if tok.add_bos { tok.bos_id } else { None },
    );
    if chunking.n_chunks == 0 {
        return Err(usage(format!(
            "eval text '{}' has {} tokens, shorter than one chunk of --ctx {}; give a longer text or a smaller --ctx",
            plan.evalset.name,
            tokens.len(),
            plan.ctx
        )));
    }
    let work = plan.out_dir.join(".work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let tokens_file = work.join("tokens.u32");
    level_worker::write_tokens(&tokens_file, &tokens)?;

    let mut files = Vec::new();
    for f in &src.files {
        files.push(FileInfo {
            name: f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            sha256: sha256_file(f)?,
        });
    }
    let n_params = src.n_params();
    let ref_from_file = plan
        .levels
        .iter()
        .find(|l| l.level == plan.reference)
        .and_then(|l| match &l.source {
            LevelSource::GgufFile(p) => Some(p.clone()),
            LevelSource::Quantize => None,
        });
    let reference_note = if let Some(p) = ref_from_file {
        format!(
            "The reference {} is the GGUF file {} as stored (its quantized tensors run through candle's kernels); levels quantized in-process are made from the {} weights of the source.",
            plan.reference,
            p.display(),
            src.main_dtype()
        )
    } else if src.is_quantized() {
        format!(
            "The source is itself quantized ({} GGUF): the reference {} is the dequantized {} weights, not the original full-precision model, and every other level is made by dequantizing and requantizing them.",
            src.main_dtype(),
            plan.reference,
            src.main_dtype()
        )
    } else {
        format!(
            "The reference {} is made from the {} weights of the source.",
            plan.reference,
            src.main_dtype()
        )
    };
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        qeval_version: env!("CARGO_PKG_VERSION").into(),
        qeval_git: env!("QEVAL_GIT_HASH").into(),
        candle_version: env!("QEVAL_CANDLE_VERSION").into(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        command_line: plan.command_line.clone(),
        status: RunStatus::Running,
        model: ModelInfo {
            name: plan.model_name.clone(),
            arch: cfg.arch.name().into(),
            repo: plan.repo.clone(),
            revision: plan.revision.clone(),
            format: format!("{:?}", src.format).to_lowercase(),
            path: plan.model_path.display().to_string(),
            files,
            n_params,
            source_dtype: src.main_dtype(),
            source_is_quantized: src.is_quantized(),
            context_length: cfg.context_length,
            vocab_size: cfg.vocab_size,
            tokenizer: tok.description.clone(),
        },
        device: DeviceInfo {
            kind: plan.device.clone(),
            name: device_name(&plan.device),
            threads: plan.threads,
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        },
        evalset: EvalsetInfo {
            name: plan.evalset.name.clone(),
            version: plan.evalset.version.clone(),
            path: plan.evalset.dir.display().to_string(),
            text_tokens: tokens.len(),
            ctx: plan.ctx,
            chunks: chunking.n_chunks,
            scored_tokens: chunking.scored_total(),
            add_bos: tok.add_bos,
        },
        reference: plan.reference.name().into(),
        reference_note,
        scoring_mode: "kernel".into(),
        phases: Phases {
            download_s: plan.download_s,
            tokenize_s,
            total_s: 0.0,
        },
        seed: plan.seed,
        limit: None,
        levels: Vec::new(),
    };
    let results_path = plan.out_dir.join("results.json");
    results.save(&results_path)?;
    note(
        plan.quiet,
        &format!(
            "qeval: {} ({}, {} params, {}), {} tokens of '{}' in {} chunks of {}; reference {}",
            plan.model_name,
            cfg.arch.name(),
            crate::report::table::human_count(n_params),
            src.main_dtype(),
            tokens.len(),
            plan.evalset.name,
            chunking.n_chunks,
            plan.ctx,
            plan.reference
        ),
    );

    let spill = work.join("reference.logprobs.f32");
    let mut any_failed = false;
    for lp in &plan.levels {
        let is_ref = lp.level == plan.reference;
        let r = run_level(
            plan,
            &src,
            lp.level,
            &lp.source,
            is_ref,
            &chunking,
            &work,
            &tokens_file,
            &spill,
        );
        let lr = match r {
            Ok(lr) => lr,
            Err(e) => {
                any_failed = true;
                note(plan.quiet, &format!("level {} failed: {e:#}", lp.level));
                failed_level(lp.level, is_ref, &format!("{e:#}"), plan)
            }
        };
        let ref_failed = is_ref && lr.status != "ok";
        results.levels.push(lr);
        results.phases.total_s = t_all.elapsed().as_secs_f64();
        results.save(&results_path)?;
        crate::report::render_all(&results, &plan.out_dir, &plan.report)?;
        if ref_failed {
            for other in plan.levels.iter().filter(|o| o.level != plan.reference) {
                results.levels.push(failed_level(
                    other.level,
                    false,
                    "not run: the reference level failed, so there is nothing to compare with",
                    plan,
                ));
            }
            break;
        }
    }
    results.status = if any_failed {
        RunStatus::Incomplete
    } else {
        RunStatus::Complete
    };
    results.phases.total_s = t_all.elapsed().as_secs_f64();
    results.save(&results_path)?;
    crate::report::finish_run(&results, &plan.out_dir, &plan.report)?;
    if !plan.keep_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(if any_failed { EXIT_INCOMPLETE } else { 0 })
}

fn device_name(kind: &str) -> String {
    if kind == "cpu" {
        if let Ok(s) = std::fs::read_to_string("/proc/cpuinfo") {
            if let Some(l) = s.lines().find(|l| l.starts_with("model name")) {
                if let Some((_, v)) = l.split_once(':') {
                    return v.trim().to_string();
                }
            }
        }
        return "cpu".into();
    }
    kind.to_string()
}

fn failed_level(level: Level, is_ref: bool, err: &str, plan: &Plan) -> LevelResult {
    LevelResult {
        level: level.name().into(),
        status: "failed".into(),
        error: Some(err.to_string()),
        source: String::new(),
        is_reference: is_ref,
        weight_bytes: 0,
        n_params: 0,
        bits_per_weight: 0.0,
        type_mix: Default::default(),
        fallbacks: vec![],
        peak_rss_bytes: None,
        peak_rss_with_eval_bytes: None,
        peak_rss_method: crate::measure::memory::METHOD.into(),
        kv_cache_bytes: 0,
        kv_cache_ctx: plan.ctx,
        prefill_tokens_per_sec: None,
        decode_tokens_per_sec: None,
        prefill: None,
        decode: None,
        prefill_tokens: plan.bench.prompt_tokens,
        decode_tokens: plan.bench.gen_tokens,
        perplexity: None,
        perplexity_se: None,
        kld_mean: None,
        kld_mean_se: None,
        kld_median: None,
        kld_p99: None,
        kld_max: None,
        top1_agreement: None,
        top1_agreement_se: None,
        rms_delta_p: None,
        rms_delta_p_se: None,
        scored_tokens: 0,
        times: Default::default(),
        tasks: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_level(
    plan: &Plan,
    src: &ModelSource,
    level: Level,
    source: &LevelSource,
    is_ref: bool,
    chunking: &Chunking,
    work: &Path,
    tokens_file: &Path,
    spill: &Path,
) -> Result<LevelResult> {
    let t_q = Instant::now();
    let (weights, source_text) = match source {
        LevelSource::Quantize => {
            let pb = bar(
                plan.quiet,
                src.tensors.len() as u64,
                format!("{level}: quantize"),
            );
            let w = quantize::quantize(src, level, &|| pb.inc(1))?;
            pb.finish_and_clear();
            let from = if src.is_quantized() {
                format!("dequantized {} GGUF", src.main_dtype())
            } else {
                format!(
                    "{} {}",
                    src.main_dtype(),
                    if src.format == Format::Gguf {
                        "GGUF"
                    } else {
                        "safetensors"
                    }
                )
            };
            (w, format!("quantized in-process from the {from}"))
        }
        LevelSource::GgufFile(p) => {
            let s = ModelSource::open(p)?;
            anyhow::ensure!(
                s.config.arch == src.config.arch && s.config.n_layer == src.config.n_layer && s.config.vocab_size == src.config.vocab_size,
                "--gguf {level}={}: not the same model as {} (architecture, layers or vocabulary differ)",
                p.display(),
                src.path.display()
            );
            (
                quantize::as_stored(&s)?,
                format!("GGUF file {}", p.display()),
            )
        }
    };
    let quantize_s = t_q.elapsed().as_secs_f64();
    let weight_bytes = weights.weight_bytes();
    let n_params = weights.n_params();
    let type_mix = weights.type_mix();
    let fallbacks: Vec<_> = weights
        .choices
        .iter()
        .filter(|c| c.fallback_reason.is_some())
        .cloned()
        .collect();
    let level_file = work.join(format!("level-{}.gguf", level.name()));
    quantize::write_level_file(&level_file, &src.config, &weights)?;
    drop(weights);

    let job = Job {
        level: level.name().into(),
        level_file: level_file.clone(),
        tokens_file: tokens_file.to_path_buf(),
        spill_file: spill.to_path_buf(),
        is_reference: is_ref,
        chunking: chunking.clone(),
        bench: plan.bench.clone(),
        device: plan.device.clone(),
        outcome_file: work.join(format!("outcome-{}.json", level.name())),
        progress_file: work.join(format!("progress-{}.txt", level.name())),
    };
    let job_path = work.join(format!("job-{}.json", level.name()));
    std::fs::write(&job_path, serde_json::to_vec_pretty(&job)?)?;
    let _ = std::fs::remove_file(&job.outcome_file);
    let outcome = spawn_worker(plan, &job, &job_path, chunking.n_chunks)?;
    if !plan.keep_work {
        let _ = std::fs::remove_file(&level_file);
    }
    let q = outcome.quality;
    Ok(LevelResult {
        level: level.name().into(),
        status: "ok".into(),
        error: None,
        source: source_text,
        is_reference: is_ref,
        weight_bytes,
        n_params,
        bits_per_weight: weight_bytes as f64 * 8.0 / n_params.max(1) as f64,
        type_mix,
        fallbacks,
        peak_rss_bytes: outcome.peak_rss_bytes,
        peak_rss_with_eval_bytes: outcome.peak_rss_with_eval_bytes,
        peak_rss_method: crate::measure::memory::METHOD.into(),
        kv_cache_bytes: outcome.kv_cache_bytes,
        kv_cache_ctx: outcome.kv_cache_ctx,
        prefill_tokens_per_sec: Some(outcome.prefill.median),
        decode_tokens_per_sec: Some(outcome.decode.median),
        prefill: Some(outcome.prefill),
        decode: Some(outcome.decode),
        prefill_tokens: plan.bench.prompt_tokens,
        decode_tokens: plan.bench.gen_tokens,
        perplexity: Some(q.perplexity),
        perplexity_se: Some(q.perplexity_se),
        kld_mean: q.kld_mean,
        kld_mean_se: q.kld_mean_se,
        kld_median: q.kld_median,
        kld_p99: q.kld_p99,
        kld_max: q.kld_max,
        top1_agreement: q.top1_agreement,
        top1_agreement_se: q.top1_agreement_se,
        rms_delta_p: q.rms_delta_p,
        rms_delta_p_se: q.rms_delta_p_se,
        scored_tokens: q.n_tokens,
        times: LevelTimes {
            quantize_s,
            load_s: outcome.load_s,
            evaluate_s: outcome.evaluate_s,
            benchmark_s: outcome.benchmark_s,
        },
        tasks: Vec::new(),
    })
}

fn spawn_worker(plan: &Plan, job: &Job, job_path: &Path, n_chunks: usize) -> Result<Outcome> {
    let exe =
        std::env::current_exe().context("cannot find the qeval executable to start a worker")?;
    let log_path = job_path.with_extension("log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = std::process::Command::new(exe)
        .arg("__level")
        .arg(job_path)
        .env("RAYON_NUM_THREADS", plan.threads.to_string())
        .env("CANDLE_NUM_THREADS", plan.threads.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start a worker process")?;
    let pb = bar(
        plan.quiet,
        n_chunks as u64,
        format!("{}: evaluate", job.level),
    );
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if let Ok(p) = std::fs::read_to_string(&job.progress_file) {
            if let Some((d, _)) = p.split_once('/') {
                if let Ok(d) = d.parse::<u64>() {
                    pb.set_position(d);
                    if d == n_chunks as u64 {
                        pb.set_message(format!("{}: benchmark", job.level));
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    pb.finish_and_clear();
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        let how = match status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal (out of memory?)".to_string(),
        };
        anyhow::bail!(
            "worker for level {} failed ({how}): {}",
            job.level,
            tail.trim()
        );
    }
    let o: Outcome = serde_json::from_slice(
        &std::fs::read(&job.outcome_file)
            .with_context(|| format!("worker wrote no {}", job.outcome_file.display()))?,
    )?;
    Ok(o)
}
