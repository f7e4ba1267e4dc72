//! Running a plan: open the source once, tokenize the text once, then for each level (the
//! reference first) make its weights, run it in a worker process, and fold the outcome into
//! results.json, rewriting it and the reports after every level.

use crate::error::{usage, EXIT_INCOMPLETE};
use crate::eval::text::Chunking;
use crate::fsutil::sha256_file;
use crate::level_worker::{self, Job, Outcome};
use crate::model::source::{Format, ModelSource};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::transformer::ScoringMode;
use crate::plan::{LevelPlan, LevelSource, Plan};
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
    crate::interrupt::install();
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
    // An eval set of tasks only (e.g. --evalset hellaswag) has no text to score.
    let has_text = !plan.evalset.text.trim().is_empty();
    let mut tokens = if has_text {
        tok.encode(&plan.evalset.text, tok.add_bos)?
    } else {
        Vec::new()
    };
    let tokenize_s = t_tok.elapsed().as_secs_f64();
    let mut chunking = Chunking::new(
        tokens.len(),
        plan.ctx,
        plan.chunks,
        if tok.add_bos { tok.bos_id } else { None },
    );
    if has_text && chunking.n_chunks == 0 {
        return Err(usage(format!(
            "eval text '{}' has {} tokens, shorter than one chunk of --ctx {}; give a longer text or a smaller --ctx",
            plan.evalset.name,
            tokens.len(),
            plan.ctx
        )));
    }
    if plan.bench_only {
        // Speed only: the text supplies the prompt and the eval-speed window, nothing is scored.
        chunking.n_chunks = 0;
    }
    let work = plan.out_dir.join(".work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let tokens_file = work.join("tokens.u32");
    level_worker::write_tokens(&tokens_file, &tokens)?;
    let t_prep = Instant::now();
    let tasks =
        crate::eval::taskprep::prepare(&plan.evalset, &tok, &plan.data, plan.limit, plan.seed)?;
    let tasks_file = if tasks.is_empty() {
        None
    } else {
        let f = work.join("tasks.json");
        crate::fsutil::write_atomic(&f, &serde_json::to_vec(&tasks)?)?;
        Some(f)
    };
    let task_positions = tasks.iter().map(|t| t.max_positions()).max().unwrap_or(0);
    let mut prompts = match &plan.prompts {
        Some(p) if !plan.bench_only => Some(crate::prompts::stage::Stage::new(
            p,
            &plan.model_path,
            &tok,
            &work,
        )?),
        _ => None,
    };
    let prompt_positions = prompts
        .as_ref()
        .map(|p| p.prep.max_positions())
        .unwrap_or(0);
    if prompt_positions > cfg.context_length {
        return Err(usage(format!(
            "--prompts {}: the longest prompt with its max_tokens needs {prompt_positions} positions, more than the model's context length {}; shorten it or lower its max_tokens",
            plan.prompts.as_ref().map(|p| p.path.as_str()).unwrap_or_default(),
            cfg.context_length
        )));
    }
    if !has_text {
        // The speed benchmark's prompt then comes from the tasks' own inputs.
        chunking.n_chunks = 0;
        for t in &tasks {
            for c in &t.choice {
                tokens.extend(c.options.iter().flat_map(|(a, b)| a.iter().chain(b)));
            }
            for g in &t.generate {
                tokens.extend_from_slice(&g.prompt);
            }
            if tokens.len() >= plan.bench.prompt_tokens {
                break;
            }
        }
        level_worker::write_tokens(&tokens_file, &tokens)?;
    }
    let max_seq = plan
        .ctx
        .max(plan.bench.prompt_tokens)
        .max(plan.bench.gen_tokens + 8)
        .max(task_positions.min(cfg.context_length))
        .max(prompt_positions);
    check_memory(plan, &src, max_seq)?;
    let mut graded = Graded::default();
    if !tasks.is_empty() {
        note(
            plan.quiet,
            &format!(
                "tasks: {} (prepared in {:.1}s)",
                tasks
                    .iter()
                    .map(|t| format!("{} {} ({} items)", t.name, t.kind, t.len()))
                    .collect::<Vec<_>>()
                    .join(", "),
                t_prep.elapsed().as_secs_f64()
            ),
        );
    }

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
        .find(|l| plan.is_reference(l))
        .and_then(|l| match &l.source {
            LevelSource::GgufFile(p) => Some(p.clone()),
            LevelSource::Quantize => None,
        });
    let reference_note = if plan.bench_only {
        format!(
            "qeval bench: speed only. No quality was measured, so no level is compared with the reference {}; levels quantized in-process are made from the {} weights of the source.",
            plan.reference,
            src.main_dtype()
        )
    } else if let Some(p) = ref_from_file {
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
            display_name: display_name(&plan.model_name, src.general_name().as_deref()),
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
            kind: plan.device,
            name: device_name(plan.device),
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
        scoring_mode: if plan.bench_only {
            "none".into()
        } else {
            plan.scoring_name()
        },
        phases: Phases {
            download_s: plan.download_s,
            tokenize_s,
            total_s: 0.0,
        },
        seed: plan.seed,
        limit: plan.limit,
        mode: if plan.bench_only {
            RunMode::Bench
        } else {
            RunMode::Run
        },
        levels: Vec::new(),
        prompts: prompts.as_ref().map(|p| p.info(plan.seed)),
    };
    let results_path = plan.out_dir.join("results.json");
    let items_path = plan.out_dir.join("items.jsonl");
    let prompts_path = plan.out_dir.join("prompts.jsonl");
    let spill = work.join("reference.logprobs.f32");
    // Resume: keep what an earlier run of the same measurement into this --out finished.
    if results_path.exists() {
        let prev = Results::load(&results_path)?;
        check_resumable(&prev, &results, &results_path)?;
        let reference = results.reference.clone();
        let mut kept: Vec<LevelResult> = prev.levels.into_iter().filter(|l| l.is_ok()).collect();
        graded.restore(&items_path, &kept)?;
        if let Some(p) = prompts.as_mut() {
            p.restore(&prompts_path, &kept)?;
        }
        let ref_kept = kept.iter().any(|l| l.level == reference);
        let others_left = plan
            .levels
            .iter()
            .any(|l| l.key() != reference && !kept.iter().any(|k| k.level == l.key()));
        let spill_ok = chunking.n_chunks == 0
            || std::fs::metadata(&spill).map(|m| m.len()).ok()
                == Some((chunking.scored_total() * cfg.vocab_size * 4) as u64);
        let graded_ok = tasks.is_empty() || !graded.reference.is_empty();
        let prompts_ok = prompts
            .as_ref()
            .is_none_or(|p| p.reference_ready(cfg.vocab_size));
        if ref_kept && others_left && !(spill_ok && graded_ok && prompts_ok) {
            // The reference's log-probabilities are gone: measure it again (same numbers).
            kept.retain(|l| l.level != reference);
            graded = Graded::default();
            graded.restore(&items_path, &kept)?;
            if let Some(p) = prompts.as_mut() {
                p.drop_reference();
                p.restore(&prompts_path, &kept)?;
            }
        }
        note(
            false,
            &format!(
                "resuming {}: {} level(s) already done ({})",
                results_path.display(),
                kept.len(),
                kept.iter()
                    .map(|l| l.level.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        results.created_unix = prev.created_unix;
        results.phases.total_s = prev.phases.total_s;
        results.levels = kept;
    }
    results.save(&results_path)?;
    if plan.bench_only {
        note(
            plan.quiet,
            &format!(
                "qeval bench: {} ({}, {} params, {}), levels {}; pp{} tg{} eval{} on {} thread(s), {} repeat(s)",
                plan.model_name,
                cfg.arch.name(),
                crate::fmt::count(n_params),
                src.main_dtype(),
                plan.levels
                    .iter()
                    .map(|l| l.key())
                    .collect::<Vec<_>>()
                    .join(","),
                plan.bench.prompt_tokens,
                plan.bench.gen_tokens,
                plan.ctx,
                plan.threads,
                plan.bench.repeats
            ),
        );
    } else {
        note(
            plan.quiet,
            &format!(
                "qeval: {} ({}, {} params, {}), {} tokens of '{}' in {} chunks of {}; reference {}",
                plan.model_name,
                cfg.arch.name(),
                crate::fmt::count(n_params),
                src.main_dtype(),
                tokens.len(),
                plan.evalset.name,
                chunking.n_chunks,
                plan.ctx,
                plan.reference
            ),
        );
    }

    let mut any_failed = false;
    let mut interrupted = false;
    let t_resume = results.phases.total_s;
    for lp in &plan.levels {
        let is_ref = plan.is_reference(lp);
        if results
            .levels
            .iter()
            .any(|l| l.level == lp.key() && l.is_ok())
        {
            continue;
        }
        if crate::interrupt::requested() {
            interrupted = true;
            break;
        }
        let prompts_file = match prompts.as_ref() {
            Some(p) => Some(p.job_file(&lp.key(), is_ref, &work)?),
            None => None,
        };
        let r = run_level(
            plan,
            &src,
            lp,
            is_ref,
            &chunking,
            &work,
            &tokens_file,
            &spill,
            &Ctx {
                tasks: &tasks,
                tasks_file: tasks_file.as_deref(),
                prompts_file: prompts_file.as_deref(),
                max_seq,
            },
        );
        let lr = match r.and_then(|(mut lr, outs, answers)| {
            lr.tasks = graded.grade(&tasks, &outs, &lr.level, is_ref, plan.seed)?;
            if let Some(p) = prompts.as_mut() {
                lr.prompts = Some(p.grade(answers, &lr.level, is_ref, plan.seed)?);
            }
            Ok(lr)
        }) {
            Ok(lr) => lr,
            Err(e) if e.downcast_ref::<crate::interrupt::Interrupted>().is_some() => {
                interrupted = true;
                break;
            }
            Err(e) => {
                any_failed = true;
                note(plan.quiet, &format!("level {} failed: {e:#}", lp.key()));
                failed_level(lp, is_ref, &format!("{e:#}"), plan)
            }
        };
        let ref_failed = is_ref && !lr.is_ok();
        results.levels.retain(|l| l.level != lr.level);
        results.levels.push(lr);
        results.phases.total_s = t_resume + t_all.elapsed().as_secs_f64();
        results.save(&results_path)?;
        graded.save(&items_path)?;
        if let Some(p) = &prompts {
            p.save(&prompts_path)?;
        }
        if !plan.bench_only {
            crate::report::render_all(&results, &plan.out_dir, &plan.report)?;
        }
        if ref_failed {
            for other in plan.levels.iter().filter(|o| !plan.is_reference(o)) {
                results.levels.push(failed_level(
                    other,
                    false,
                    "not run: the reference level failed, so there is nothing to compare with",
                    plan,
                ));
            }
            break;
        }
    }
    any_failed |= results.levels.iter().any(|l| !l.is_ok());
    results.status = if interrupted {
        RunStatus::Interrupted
    } else if any_failed {
        RunStatus::Incomplete
    } else {
        RunStatus::Complete
    };
    results.phases.total_s = t_resume + t_all.elapsed().as_secs_f64();
    results.save(&results_path)?;
    if plan.bench_only {
        crate::report::bench::finish(&results, &plan.out_dir)?;
    } else {
        crate::report::finish_run(&results, &plan.out_dir, &plan.report)?;
    }
    if interrupted {
        eprintln!(
            "qeval: interrupted with {} of {} levels done; run the same command again to finish the rest",
            results.levels.iter().filter(|l| l.is_ok()).count(),
            plan.levels.len()
        );
        // Keep .work: the reference's log-probabilities let a resumed run skip it.
        return Ok(crate::interrupt::EXIT_INTERRUPTED);
    }
    if !plan.keep_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(if any_failed { EXIT_INCOMPLETE } else { 0 })
}

fn device_name(kind: DeviceKind) -> String {
    if kind == DeviceKind::Cpu {
        if let Ok(s) = std::fs::read_to_string("/proc/cpuinfo") {
            if let Some(l) = s.lines().find(|l| l.starts_with("model name")) {
                if let Some((_, v)) = l.split_once(':') {
                    return v.trim().to_string();
                }
            }
        }
        return "cpu".into();
    }
    kind.name().to_string()
}

fn failed_level(lp: &LevelPlan, is_ref: bool, err: &str, plan: &Plan) -> LevelResult {
    LevelResult {
        level: lp.key(),
        scoring_mode: lp.mode,
        status: LevelStatus::Failed,
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
        eval_tokens_per_sec: None,
        eval: None,
        eval_tokens: 0,
        kernels: String::new(),
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
        prompts: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_level(
    plan: &Plan,
    src: &ModelSource,
    lp: &LevelPlan,
    is_ref: bool,
    chunking: &Chunking,
    work: &Path,
    tokens_file: &Path,
    spill: &Path,
    ctx: &Ctx,
) -> Result<LevelRun> {
    let (level, key) = (lp.level, lp.key());
    let t_q = Instant::now();
    let (weights, source_text) = match &lp.source {
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
    let level_file = work.join(format!("level-{key}.gguf"));
    quantize::write_level_file(&level_file, &src.config, &weights)?;
    drop(weights);

    let job = Job {
        level: key.clone(),
        mode: lp.mode,
        level_file: level_file.clone(),
        tokens_file: tokens_file.to_path_buf(),
        spill_file: spill.to_path_buf(),
        is_reference: is_ref,
        chunking: chunking.clone(),
        bench: plan.bench.clone(),
        device: plan.device,
        outcome_file: work.join(format!("outcome-{key}.json")),
        progress_file: work.join(format!("progress-{key}.txt")),
        tasks_file: ctx.tasks_file.map(Path::to_path_buf),
        prompts_file: ctx.prompts_file.map(Path::to_path_buf),
        model_path: src.path.clone(),
        max_seq: ctx.max_seq,
    };
    let job_path = work.join(format!("job-{key}.json"));
    std::fs::write(&job_path, serde_json::to_vec_pretty(&job)?)?;
    let _ = std::fs::remove_file(&job.outcome_file);
    let _ = ctx.tasks;
    let outcome = spawn_worker(plan, &job, &job_path, chunking.n_chunks)?;
    if !plan.keep_work {
        let _ = std::fs::remove_file(&level_file);
    }
    let q = outcome.quality.unwrap_or_default();
    let scored = q.n_tokens > 0;
    let task_outcomes = outcome.tasks;
    let prompt_outcomes = outcome.prompts;
    Ok((
        LevelResult {
            level: key,
            scoring_mode: lp.mode,
            status: LevelStatus::Ok,
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
            eval_tokens_per_sec: outcome.eval.as_ref().map(|s| s.median),
            eval_tokens: if outcome.eval.is_some() {
                chunking.ctx
            } else {
                0
            },
            eval: outcome.eval,
            kernels: outcome.kernels,
            perplexity: scored.then_some(q.perplexity),
            perplexity_se: scored.then_some(q.perplexity_se),
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
            prompts: None,
        },
        task_outcomes,
        prompt_outcomes,
    ))
}

/// A level's result and what its worker answered, for grading.
type LevelRun = (
    LevelResult,
    Vec<level_worker::TaskOutcome>,
    Vec<crate::eval::prompts::PromptOutcome>,
);

fn spawn_worker(plan: &Plan, job: &Job, job_path: &Path, n_chunks: usize) -> Result<Outcome> {
    // On Linux /proc/self/exe runs this very binary even if the file was replaced (e.g. rebuilt)
    // while the run goes on; elsewhere, the path it was started from.
    let proc_exe = Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().context("cannot find the qeval executable to start a worker")?
    };
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
    let pb = bar(plan.quiet, n_chunks as u64, format!("{}: load", job.level));
    let mut shown = String::from("load");
    let status = loop {
        if crate::interrupt::requested() {
            let _ = child.kill();
            let _ = child.wait();
            pb.finish_and_clear();
            return Err(anyhow::Error::new(crate::interrupt::Interrupted));
        }
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if let Ok(p) = std::fs::read_to_string(&job.progress_file) {
            if let Some((phase, rest)) = p.split_once('|') {
                if let Some((d, t)) = rest.split_once('/') {
                    if let (Ok(d), Ok(t)) = (d.parse::<u64>(), t.parse::<u64>()) {
                        if phase != shown {
                            pb.reset();
                            shown = phase.to_string();
                        }
                        pb.set_length(t);
                        pb.set_position(d);
                        pb.set_message(format!("{}: {phase}", job.level));
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

/// What every level's worker shares: the prepared tasks and the KV capacity.
struct Ctx<'a> {
    tasks: &'a [crate::eval::taskprep::PreparedTask],
    tasks_file: Option<&'a Path>,
    prompts_file: Option<&'a Path>,
    max_seq: usize,
}

/// Per-item correctness of the reference (to compare every level with) and the per-item lines
/// of every level, written to `items.jsonl`.
#[derive(Default)]
struct Graded {
    reference: std::collections::HashMap<(String, String), Vec<bool>>,
    lines: Vec<ItemRecord>,
}

impl Graded {
    fn grade(
        &mut self,
        tasks: &[crate::eval::taskprep::PreparedTask],
        outs: &[level_worker::TaskOutcome],
        level: &str,
        is_ref: bool,
        seed: u64,
    ) -> Result<Vec<TaskResult>> {
        let mut results = Vec::new();
        for t in tasks {
            let Some(o) = outs.iter().find(|o| o.name == t.name) else {
                anyhow::bail!("worker returned no outcome for task {}", t.name);
            };
            let mut by_metric = vec![std::collections::BTreeMap::new(); t.len()];
            for (mi, metric) in t.metrics.iter().enumerate() {
                let judged = crate::eval::taskprep::judge(t, metric, &o.outcomes)?;
                let correct: Vec<bool> = judged.iter().map(|(c, _)| *c).collect();
                for (m, c) in by_metric.iter_mut().zip(&correct) {
                    m.insert(metric.clone(), *c);
                }
                let key = (t.name.clone(), metric.clone());
                if is_ref {
                    self.reference.insert(key.clone(), correct.clone());
                }
                let reference = if is_ref {
                    None
                } else {
                    self.reference.get(&key).map(|v| v.as_slice())
                };
                let mut tr = crate::eval::stats::task_result(
                    &t.name, t.kind, metric, &correct, reference, seed,
                )?;
                tr.seconds = o.seconds;
                tr.items_per_sec = t.len() as f64 / o.seconds.max(1e-9);
                results.push(tr);
                // One line per item, for the task's last (primary) metric.
                if mi + 1 == t.metrics.len() {
                    for (i, (c, pred)) in judged.into_iter().enumerate() {
                        self.lines.push(ItemRecord {
                            level: level.to_string(),
                            task: t.name.clone(),
                            metric: metric.clone(),
                            id: o.outcomes[i].id.clone(),
                            correct: c,
                            correct_by_metric: std::mem::take(&mut by_metric[i]),
                            prediction: pred,
                            gold: t.golds[i].clone(),
                            prompt: t.prompts[i].clone(),
                            logprobs: o.outcomes[i].logprobs.clone(),
                        });
                    }
                }
            }
        }
        Ok(results)
    }

    /// Take back the per-item lines of levels already done, and the reference's correctness.
    fn restore(&mut self, path: &Path, kept: &[LevelResult]) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let reference = kept
            .iter()
            .find(|l| l.is_reference)
            .map(|l| l.level.clone());
        let mut by_key: std::collections::HashMap<(String, String), Vec<bool>> = Default::default();
        for line in text.lines() {
            let v: ItemRecord = serde_json::from_str(line)
                .with_context(|| format!("{}: a line is not an item record", path.display()))?;
            if !kept.iter().any(|l| l.level == v.level) {
                continue;
            }
            if Some(&v.level) == reference.as_ref() {
                for (metric, c) in &v.correct_by_metric {
                    by_key
                        .entry((v.task.clone(), metric.clone()))
                        .or_default()
                        .push(*c);
                }
            }
            self.lines.push(v);
        }
        self.reference = by_key;
        Ok(())
    }

    fn save(&self, path: &Path) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&serde_json::to_string(l)?);
            s.push('\n');
        }
        crate::fsutil::write_atomic(path, s.as_bytes())
    }
}

/// Refuse to resume into an --out whose results measured something else.
fn check_resumable(prev: &Results, now: &Results, path: &Path) -> Result<()> {
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: {a} there, {b} now"));
        }
    };
    let hashes = |r: &Results| {
        r.model
            .files
            .iter()
            .map(|f| format!("{}={}", f.name, &f.sha256[..f.sha256.len().min(12)]))
            .collect::<Vec<_>>()
            .join(",")
    };
    cmp("model files", hashes(prev), hashes(now));
    cmp(
        "model revision",
        format!("{:?}", prev.model.revision),
        format!("{:?}", now.model.revision),
    );
    cmp(
        "eval set",
        format!("{} {}", prev.evalset.name, prev.evalset.version),
        format!("{} {}", now.evalset.name, now.evalset.version),
    );
    cmp(
        "--ctx/--chunks",
        format!("{}/{}", prev.evalset.ctx, prev.evalset.chunks),
        format!("{}/{}", now.evalset.ctx, now.evalset.chunks),
    );
    cmp(
        "--limit",
        format!("{:?}", prev.limit),
        format!("{:?}", now.limit),
    );
    cmp("--seed", prev.seed.to_string(), now.seed.to_string());
    let prompts = |r: &Results| {
        r.prompts
            .as_ref()
            .map(|p| {
                format!(
                    "{} ({} prompts, template {})",
                    p.path,
                    p.n_prompts,
                    p.template_sha256
                        .as_deref()
                        .map(|h| &h[..12])
                        .unwrap_or("none")
                )
            })
            .unwrap_or_else(|| "none".into())
    };
    cmp("--prompts", prompts(prev), prompts(now));
    cmp(
        "mode (run or bench)",
        format!("{:?}", prev.mode),
        format!("{:?}", now.mode),
    );
    cmp("--reference", prev.reference.clone(), now.reference.clone());
    cmp(
        "device/threads",
        format!("{} x{}", prev.device.kind, prev.device.threads),
        format!("{} x{}", now.device.kind, now.device.threads),
    );
    cmp(
        "scoring mode",
        prev.scoring_mode.clone(),
        now.scoring_mode.clone(),
    );
    if let (Some(a), Some(b)) = (prev.levels.first(), now.levels.first()) {
        cmp(
            "benchmark tokens",
            format!("pp{} tg{}", a.prefill_tokens, a.decode_tokens),
            format!("pp{} tg{}", b.prefill_tokens, b.decode_tokens),
        );
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "{} holds results of a different measurement, so this run cannot resume it ({}); give another --out, or delete that folder to start over",
        path.display(),
        diffs.join("; ")
    )))
}

/// Refuse, before anything is loaded, levels estimated to need more memory than the run may use.
fn check_memory(plan: &Plan, src: &ModelSource, max_seq: usize) -> Result<()> {
    let Some(limit) = plan.max_memory else {
        return Ok(());
    };
    let cfg = &src.config;
    let n = src.n_params();
    let mut worst: Option<(Level, u64)> = None;
    for lp in &plan.levels {
        let t = match lp.mode {
            ScoringMode::Kernel => lp.level.base_dtype(),
            ScoringMode::Weights => candle_core::quantized::GgmlDType::F32,
        };
        let weights = (n as f64 * t.type_size() as f64 / t.block_size() as f64) as u64;
        let need = crate::measure::memory::estimate_level_bytes(
            weights,
            cfg.kv_cache_bytes(max_seq),
            plan.ctx,
            cfg.vocab_size,
        );
        if worst.is_none_or(|(_, w)| need > w) {
            worst = Some((lp.level, need));
        }
    }
    let Some((level, need)) = worst else {
        return Ok(());
    };
    if need <= limit {
        return Ok(());
    }
    let msg = format!(
        "level {level} needs about {} (weights of {} parameters, KV cache for {max_seq} positions, logits and runtime) but {} is available",
        crate::fmt::gb(need),
        crate::fmt::count(n),
        crate::fmt::gb(limit),
    );
    if plan.force {
        note(
            plan.quiet,
            &format!("warning: {msg}; going on because of --force"),
        );
        return Ok(());
    }
    Err(usage(format!(
        "{msg}; drop that level from --quants, free memory, or pass --force to try anyway"
    )))
}
