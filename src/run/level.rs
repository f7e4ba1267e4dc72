//! One level, start to finish in the parent: make its weights (quantized in-process, or taken
//! as stored from a GGUF file), write them to the level file the worker loads, run the worker
//! ([`super::supervise`]) and turn its [`Outcome`] into the level's row of results.json. Also
//! the row of a level that failed. Grading tasks and prompts against the reference happens
//! after, in the scheduler ([`super::grade`]).

use super::console::bar;
use super::prepare::Prepared;
use super::protocol::{Job, Outcome, ReferenceIo, TaskOutcome};
use crate::eval::prompts::PromptOutcome;
use crate::model::source::{Format, ModelSource};
use crate::plan::{LevelPlan, LevelSource, Plan};
use crate::quant::quantize::{self, LevelWeights};
use crate::results::{GgufMade, LevelResult, LevelStatus, LevelTimes};
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// A level's result and what its worker answered, for grading.
pub struct LevelRun {
    pub result: LevelResult,
    pub tasks: Vec<TaskOutcome>,
    pub prompts: Vec<PromptOutcome>,
}

/// Make, run and measure one level. `prompts_file` is this level's prompt job, if any.
pub fn run_level(
    plan: &Plan,
    prep: &Prepared,
    lp: &LevelPlan,
    is_ref: bool,
    prompts_file: Option<&Path>,
) -> Result<LevelRun> {
    let key = lp.key();
    let t_q = Instant::now();
    let (weights, source_text, made) = make_weights(plan, prep, lp)?;
    let quantize_s = t_q.elapsed().as_secs_f64();
    let mut result = empty_row(lp, is_ref, LevelStatus::Ok, None, plan);
    result.source = source_text;
    result.weight_bytes = weights.weight_bytes();
    result.n_params = weights.n_params();
    result.bits_per_weight = result.weight_bytes as f64 * 8.0 / result.n_params.max(1) as f64;
    result.type_mix = weights.type_mix();
    result.gguf_made = made;
    if matches!(lp.source, LevelSource::Quantize) {
        result.llama_quantize = Some(lp.level.llama_quantize());
    }
    result.fallbacks = weights
        .choices
        .iter()
        .filter(|c| c.fallback_reason.is_some())
        .cloned()
        .collect();
    let level_file = prep.work.join(format!("level-{key}.gguf"));
    quantize::write_level_file(&level_file, &prep.src.config, &weights)?;
    drop(weights);

    let job = Job {
        level: key.clone(),
        mode: lp.mode,
        level_file: level_file.clone(),
        tokens_file: prep.tokens_file.clone(),
        reference_io: reference_io(plan, prep, is_ref),
        is_reference: is_ref,
        chunking: prep.chunking.clone(),
        bench: plan.bench.clone(),
        device: plan.device,
        outcome_file: prep.work.join(format!("outcome-{key}.json")),
        progress_file: prep.work.join(format!("progress-{key}.json")),
        tasks_file: prep.tasks_file.clone(),
        prompts_file: prompts_file.map(Path::to_path_buf),
        model_path: prep.src.path.clone(),
        max_seq: prep.max_seq,
    };
    let job_path = prep.work.join(format!("job-{key}.json"));
    job.save(&job_path)?;
    let outcome = super::supervise::run_worker(
        &job,
        &job_path,
        plan.threads,
        plan.quiet,
        prep.chunking.n_chunks,
    )?;
    if !plan.keep_work {
        let _ = std::fs::remove_file(&level_file);
    }
    result.times.quantize_s = quantize_s;
    Ok(measured(result, outcome, prep))
}

/// What this level writes for, or reads of, the reference.
fn reference_io(plan: &Plan, prep: &Prepared, is_ref: bool) -> ReferenceIo {
    if is_ref {
        return ReferenceIo::Write {
            spill: prep.spill_needed.then(|| prep.spill_file.clone()),
            pack: plan
                .pack
                .write
                .as_ref()
                .map(|_| (prep.pack_raw.clone(), plan.pack.top_k)),
        };
    }
    match (&prep.pack_records, plan.pack.read_header()) {
        (Some(records), Some(h)) => ReferenceIo::Pack {
            records: records.clone(),
            k: h.top_k,
        },
        _ => ReferenceIo::Read {
            spill: prep.spill_file.clone(),
            study: plan.pack.study.clone(),
        },
    }
}

/// The weights of a level, a sentence saying where they came from, and for a GGUF file what
/// its metadata says of how it was made.
fn make_weights(
    plan: &Plan,
    prep: &Prepared,
    lp: &LevelPlan,
) -> Result<(LevelWeights, String, Option<GgufMade>)> {
    let (level, src) = (lp.level, &prep.src);
    match &lp.source {
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
            Ok((w, format!("quantized in-process from the {from}"), None))
        }
        LevelSource::GgufFile(f) => {
            let p = prep.loc.path_of(f)?;
            let s = ModelSource::open(p)?;
            anyhow::ensure!(
                s.config.arch == src.config.arch && s.config.n_layer == src.config.n_layer && s.config.vocab_size == src.config.vocab_size,
                "--gguf {}={}: not the same model as {} (architecture, layers or vocabulary differ)",
                lp.key(),
                p.display(),
                src.path.display()
            );
            let note = prep
                .level_notes
                .iter()
                .find(|(f, _)| f == p)
                .map(|(_, n)| format!("; {n}"))
                .unwrap_or_default();
            Ok((
                quantize::as_stored(&s)?,
                format!("GGUF file {}{note}", p.display()),
                Some(s.gguf_made()),
            ))
        }
    }
}

/// Fold the worker's outcome into the level's row.
fn measured(mut r: LevelResult, outcome: Outcome, prep: &Prepared) -> LevelRun {
    let q = outcome.quality.unwrap_or_default();
    let scored = q.n_tokens > 0;
    r.peak_rss_bytes = outcome.peak_rss_bytes;
    r.peak_rss_with_eval_bytes = outcome.peak_rss_with_eval_bytes;
    r.device_memory = outcome.device_memory;
    r.kv_cache_bytes = outcome.kv_cache_bytes;
    r.kv_cache_ctx = outcome.kv_cache_ctx;
    r.prefill_tokens_per_sec = Some(outcome.prefill.median);
    r.decode_tokens_per_sec = Some(outcome.decode.median);
    r.prefill = Some(outcome.prefill);
    r.decode = Some(outcome.decode);
    r.eval_tokens_per_sec = outcome.eval.as_ref().map(|s| s.median);
    r.eval_tokens = if outcome.eval.is_some() {
        prep.chunking.ctx
    } else {
        0
    };
    r.eval = outcome.eval;
    r.kernels = outcome.kernels;
    r.perplexity = scored.then_some(q.perplexity);
    r.perplexity_se = scored.then_some(q.perplexity_se);
    r.kld_mean = q.kld_mean;
    r.kld_mean_se = q.kld_mean_se;
    r.kld_median = q.kld_median;
    r.kld_p99 = q.kld_p99;
    r.kld_max = q.kld_max;
    r.top1_agreement = q.top1_agreement;
    r.top1_agreement_se = q.top1_agreement_se;
    r.rms_delta_p = q.rms_delta_p;
    r.rms_delta_p_se = q.rms_delta_p_se;
    r.scored_tokens = q.n_tokens;
    r.kld_by_top_k = q
        .kld_by_top_k
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    r.times = LevelTimes {
        quantize_s: r.times.quantize_s,
        load_s: outcome.load_s,
        evaluate_s: outcome.evaluate_s,
        benchmark_s: outcome.benchmark_s,
    };
    LevelRun {
        result: r,
        tasks: outcome.tasks,
        prompts: outcome.prompts,
    }
}

/// The row of a level that did not run to the end, with the reason.
pub fn failed_level(lp: &LevelPlan, is_ref: bool, err: &str, plan: &Plan) -> LevelResult {
    empty_row(lp, is_ref, LevelStatus::Failed, Some(err.to_string()), plan)
}

/// A level's row with nothing measured yet.
fn empty_row(
    lp: &LevelPlan,
    is_ref: bool,
    status: LevelStatus,
    error: Option<String>,
    plan: &Plan,
) -> LevelResult {
    LevelResult {
        level: lp.key(),
        scoring_mode: lp.mode,
        status,
        error,
        source: String::new(),
        is_reference: is_ref,
        weight_bytes: 0,
        n_params: 0,
        bits_per_weight: 0.0,
        type_mix: Default::default(),
        llama_quantize: None,
        fallbacks: vec![],
        gguf_made: None,
        peak_rss_bytes: None,
        peak_rss_with_eval_bytes: None,
        device_memory: None,
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
        kld_by_top_k: Default::default(),
    }
}
