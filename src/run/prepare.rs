//! Everything a run does once, before its first level: open the model source and its
//! tokenizer, tokenize the text and cut it into chunks, prepare the tasks and the prompts,
//! size the KV cache, refuse levels that would not fit in memory, write the worker's shared
//! inputs into the work folder, and start results.json with the run's provenance. Owns no
//! level ([`super::level`]) and no resuming ([`super::resume`]).

use super::console::note;
use super::protocol::write_tokens;
use crate::error::usage;
use crate::eval::taskprep::PreparedTask;
use crate::eval::text::Chunking;
use crate::fetch::locate::Located;
use crate::fsutil::sha256_file;
use crate::model::source::{Format, ModelSource};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::transformer::ScoringMode;
use crate::plan::{LevelPlan, LevelSource, ModelRef, Plan};
use crate::prompts::stage::Stage;
use crate::results::*;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// What every level shares: the source, the tokens and tasks (also as files in `work`), the
/// prompts and the KV capacity.
pub struct Prepared {
    /// Where the plan's files are on this machine.
    pub loc: Located,
    pub src: ModelSource,
    /// None for a shape (random weights, no tokenizer).
    pub tok: Option<ModelTokenizer>,
    pub tokens: Vec<u32>,
    pub chunking: Chunking,
    pub tasks: Vec<PreparedTask>,
    pub prompts: Option<Stage>,
    /// Positions the KV cache must hold: the longest of the chunks, benchmark, tasks, prompts.
    pub max_seq: usize,
    pub work: PathBuf,
    pub tokens_file: PathBuf,
    pub tasks_file: Option<PathBuf>,
    /// The reference's log-probabilities, streamed by the reference and read by every level.
    pub spill_file: PathBuf,
    /// Whether the reference streams them (levels other than the reference run here, against
    /// it rather than a pack).
    pub spill_needed: bool,
    /// The reference's pack records as the reference writes them (packed into
    /// `plan.pack.write` once it is done).
    pub pack_raw: PathBuf,
    /// With --reference-pack: the pack's records, extracted for the workers.
    pub pack_records: Option<PathBuf>,
    /// `ModelTokenizer::fingerprint`, which a pack records and checks.
    pub tokenizer_sha256: String,
    pub tokenize_s: f64,
    /// What a level's GGUF file differs in from the source, allowed but worth saying (its
    /// chat template), by file.
    pub level_notes: Vec<(PathBuf, String)>,
}

/// Load, tokenize and check everything the levels share.
pub fn prepare(plan: &Plan, loc: Located) -> Result<Prepared> {
    crate::plan::check_device(plan.device)?;
    let src = match &plan.model {
        ModelRef::Shape(sh) => ModelSource::from_shape(sh, plan.seed),
        _ => ModelSource::open(&loc.model_path)?,
    };
    // A shape has no tokenizer: its benchmark reads seeded random token ids.
    let tok = match src.format {
        Format::Gguf => Some(crate::model::tokenizer::gguf_tokenizer(&loc.model_path)?),
        Format::Safetensors => Some(ModelTokenizer::from_dir(&loc.model_path)?),
        Format::Shape => None,
    };
    let cfg = &src.config;
    if let Some(tok) = tok.as_ref().filter(|t| t.vocab_size() > cfg.vocab_size) {
        return Err(usage(format!(
            "{}: the tokenizer has {} tokens but the model's vocabulary has {}; tokenizer and weights do not belong together",
            loc.model_path.display(),
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
    let has_text = plan.evalset.has_text() && tok.is_some();
    let mut tokens = match &tok {
        Some(tok) if has_text => tok.encode(&plan.evalset.text(&plan.data)?, tok.add_bos)?,
        Some(_) => Vec::new(),
        None => random_tokens(
            plan.seed,
            2 * plan.ctx.max(plan.bench.prompt_tokens) + 16,
            cfg.vocab_size,
        ),
    };
    let tokenize_s = t_tok.elapsed().as_secs_f64();
    let bos = tok.as_ref().filter(|t| t.add_bos).and_then(|t| t.bos_id);
    let mut chunking = Chunking::new(tokens.len(), plan.ctx, plan.chunks, bos);
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
    let work = plan.out_dir.join(format!(".work{}", plan.file_suffix));
    let spill_file = work.join("reference.logprobs.f32");
    let spill_needed = plan.pack.read.is_none()
        && chunking.n_chunks > 0
        && plan.levels.iter().any(|l| !plan.is_reference(l));
    if spill_needed {
        check_scratch(&chunking, cfg.vocab_size, &plan.out_dir, &spill_file)?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let pack_records = match &plan.pack.read {
        Some(p) => {
            let raw = crate::refpack::records_file(&work);
            crate::refpack::PackReader::open(p)?.extract(p, &raw)?;
            Some(raw)
        }
        None => None,
    };
    let t_prep = Instant::now();
    let tasks = match &tok {
        Some(tok) => {
            crate::eval::taskprep::prepare(&plan.evalset, tok, &plan.data, plan.limit, plan.seed)?
        }
        None => Vec::new(),
    };
    let tasks_file = if tasks.is_empty() {
        None
    } else {
        let f = work.join("tasks.json");
        crate::fsutil::write_atomic(&f, &serde_json::to_vec(&tasks)?)?;
        Some(f)
    };
    let prompts = match &plan.prompts {
        Some(p) if !plan.bench_only => {
            let tok = tok
                .as_ref()
                .ok_or_else(|| usage("--prompts: this model has no tokenizer"))?;
            Some(Stage::new(p, &loc.model_path, tok, &work)?)
        }
        _ => None,
    };
    if !has_text && tok.is_some() {
        // The speed benchmark's prompt then comes from the tasks' own inputs.
        chunking.n_chunks = 0;
        tokens = prompt_from_tasks(&tasks, plan.bench.prompt_tokens);
    }
    let level_notes = check_level_files(plan, &loc, &src, tok.as_ref())?;
    let tokens_file = work.join("tokens.u32");
    write_tokens(&tokens_file, &tokens)?;
    let max_seq = kv_positions(plan, &src, &tasks, prompts.as_ref())?;
    check_memory(plan, &loc, &src, max_seq)?;
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
    Ok(Prepared {
        loc,
        spill_file,
        spill_needed,
        pack_raw: work.join("reference.pack.new"),
        pack_records,
        tokenizer_sha256: tok
            .as_ref()
            .map(|t| t.fingerprint())
            .unwrap_or_else(|| "none".into()),
        src,
        tok,
        tokens,
        chunking,
        tasks,
        prompts,
        max_seq,
        tokens_file,
        tasks_file,
        work,
        tokenize_s,
        level_notes,
    })
}

/// Refuse, before any level runs, a level's GGUF file of the source's shape whose tokenizer
/// differs (token ids would mean other things, and KL divergence across vocabularies means
/// nothing); note one whose chat template differs. A file of another model altogether fails
/// its own level when it runs (`super::level`).
fn check_level_files(
    plan: &Plan,
    loc: &Located,
    src: &ModelSource,
    tok: Option<&ModelTokenizer>,
) -> Result<Vec<(PathBuf, String)>> {
    let mut notes = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for lp in &plan.levels {
        let LevelSource::GgufFile(f) = &lp.source else {
            continue;
        };
        let p = loc.path_of(f)?.to_path_buf();
        if p == loc.model_path || seen.contains(&p) {
            continue;
        }
        seen.push(p.clone());
        let what = format!("--gguf {}={}", lp.key(), p.display());
        let s = ModelSource::open(&p)?;
        let (a, b) = (&s.config, &src.config);
        if (a.arch, a.n_layer, a.n_embd, a.vocab_size)
            != (b.arch, b.n_layer, b.n_embd, b.vocab_size)
        {
            // Not the same model at all: that level fails with the reason when it runs, and
            // the others go on.
            continue;
        }
        if let Some(tok) = tok {
            // From the header already read (the file is not opened again).
            let ct = s
                .gguf_content()
                .ok_or_else(|| usage(format!("{what}: not a GGUF file")))?;
            let other = ModelTokenizer::from_gguf(ct, &p)?;
            if let Some(d) = tok.difference(&other) {
                return Err(usage(format!(
                    "{what}: its tokenizer differs from {}'s: {d}. Token ids would mean other things in the two files, and KL divergence over different vocabularies means nothing, so they are not compared",
                    loc.model_path.display()
                )));
            }
        }
        let template = |c: Option<&candle_core::quantized::gguf_file::Content>| {
            c.and_then(|c| c.metadata.get("tokenizer.chat_template"))
                .and_then(|v| v.to_string().ok().cloned())
        };
        if src.format == Format::Gguf && template(s.gguf_content()) != template(src.gguf_content())
        {
            notes.push((
                p,
                "its chat template differs from the source's (the tokenizer is the same)".into(),
            ));
        }
    }
    Ok(notes)
}

/// `n` token ids drawn uniformly from the vocabulary with `seed`: a shape's benchmark input.
fn random_tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// The tasks' own inputs, up to about `want` tokens: the benchmark's prompt when the eval set
/// has no text.
fn prompt_from_tasks(tasks: &[PreparedTask], want: usize) -> Vec<u32> {
    let mut tokens = Vec::new();
    for t in tasks {
        for c in &t.choice {
            tokens.extend(c.options.iter().flat_map(|(a, b)| a.iter().chain(b)));
        }
        for g in &t.generate {
            tokens.extend_from_slice(&g.prompt);
        }
        if tokens.len() >= want {
            break;
        }
    }
    tokens
}

/// Positions the KV cache must hold; refuses prompts longer than the model's context.
fn kv_positions(
    plan: &Plan,
    src: &ModelSource,
    tasks: &[PreparedTask],
    prompts: Option<&Stage>,
) -> Result<usize> {
    let cfg = &src.config;
    let task_positions = tasks.iter().map(|t| t.max_positions()).max().unwrap_or(0);
    let prompt_positions = prompts.map(|p| p.prep.max_positions()).unwrap_or(0);
    if prompt_positions > cfg.context_length {
        return Err(usage(format!(
            "--prompts {}: the longest prompt with its max_tokens needs {prompt_positions} positions, more than the model's context length {}; shorten it or lower its max_tokens",
            plan.prompts.as_ref().map(|p| p.path.as_str()).unwrap_or_default(),
            cfg.context_length
        )));
    }
    Ok(plan
        .ctx
        .max(plan.bench.prompt_tokens)
        .max(plan.bench.gen_tokens + 8)
        .max(task_positions.min(cfg.context_length))
        .max(prompt_positions))
}

/// results.json as it starts: the run's provenance, no level yet.
pub fn new_results(plan: &Plan, prep: &Prepared) -> Result<Results> {
    let (src, cfg, tok) = (&prep.src, &prep.src.config, &prep.tok);
    let facts = crate::measure::device::describe(plan.device);
    let mut files = Vec::new();
    for f in &src.files {
        files.push(FileInfo {
            name: f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: std::fs::metadata(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .len(),
            sha256: sha256_file(f)?,
        });
    }
    Ok(Results {
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
            repo: prep.loc.repo.clone(),
            revision: prep.loc.revision.clone(),
            format: format!("{:?}", src.format).to_lowercase(),
            path: prep.loc.model_path.display().to_string(),
            files,
            n_params: src.n_params(),
            source_dtype: src.main_dtype(),
            source_is_quantized: src.is_quantized(),
            context_length: cfg.context_length,
            vocab_size: cfg.vocab_size,
            tokenizer: match tok {
                Some(t) => t.description.clone(),
                None => "none (a shape: seeded random token ids)".into(),
            },
            shape_only: src.format == Format::Shape,
        },
        device: DeviceInfo {
            kind: plan.device,
            name: facts.name,
            threads: plan.threads,
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            driver: facts.driver,
            compute_capability: facts.compute_capability,
            memory_bytes: facts.memory_bytes,
        },
        evalset: EvalsetInfo {
            name: plan.evalset.name.clone(),
            version: plan.evalset.version.clone(),
            path: plan.evalset.dir.display().to_string(),
            text_tokens: prep.tokens.len(),
            ctx: plan.ctx,
            chunks: prep.chunking.n_chunks,
            scored_tokens: prep.chunking.scored_total(),
            add_bos: tok.as_ref().is_some_and(|t| t.add_bos),
        },
        reference: plan.reference.name().into(),
        reference_note: reference_note(plan, prep)?,
        scoring_mode: if plan.bench_only {
            "none".into()
        } else {
            plan.scoring_name()
        },
        phases: Phases {
            download_s: prep.loc.download_s,
            tokenize_s: prep.tokenize_s,
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
        prompts: prep.prompts.as_ref().map(|p| p.info(plan.seed)),
        pack_written: None,
        kld_from_pack: None,
    })
}

/// What the reference is, in a sentence for the reports.
fn reference_note(plan: &Plan, prep: &Prepared) -> Result<String> {
    let src = &prep.src;
    let ref_from_file = match plan.levels.iter().find(|l| plan.is_reference(l)) {
        Some(LevelPlan {
            source: LevelSource::GgufFile(f),
            ..
        }) => Some(prep.loc.path_of(f)?),
        _ => None,
    };
    let note = if src.format == Format::Shape {
        format!(
            "{}: a shape, the model's exact tensor shapes with seeded random weights (seed {}), quantized in-process to each level. Speed and memory are what the real model's would be; there is no quality to measure, so none is reported.",
            plan.model_name,
            plan.seed
        )
    } else if plan.bench_only {
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
    Ok(if plan.device == DeviceKind::Cuda {
        format!(
            "{note} On CUDA, candle's kernels quantize the activations of quantized weights to 8 bits per 32 values (q8_1) and multiply f16/bf16 weights in that type, where qeval's CPU kernels use q8_0/q8_K blocks and f32 sums: a level's GPU and CPU numbers differ slightly for that reason."
        )
    } else {
        note
    })
}

/// Refuse, before anything is loaded, levels estimated to need more memory than the run may use.
fn check_memory(plan: &Plan, loc: &Located, src: &ModelSource, max_seq: usize) -> Result<()> {
    let Some(limit) = plan.max_memory else {
        return Ok(());
    };
    let cfg = &src.config;
    let n = src.n_params();
    let mut worst: Option<(String, u64)> = None;
    for lp in &plan.levels {
        let weights = match (lp.mode, &lp.label, &lp.source) {
            (ScoringMode::Weights, _, _) => n * 4,
            // A labelled file's level is its own: its size stands for its weights.
            (ScoringMode::Kernel, Some(_), LevelSource::GgufFile(f)) => {
                std::fs::metadata(loc.path_of(f)?).map_or(0, |m| m.len())
            }
            (ScoringMode::Kernel, _, _) => {
                (n as f64 * lp.level.base_type().bytes_per_value()) as u64
            }
        };
        let need = crate::measure::memory::estimate_level_bytes(
            weights,
            cfg.kv_cache_bytes(max_seq),
            plan.ctx,
            cfg.vocab_size,
        );
        if worst.as_ref().is_none_or(|(_, w)| need > *w) {
            worst = Some((lp.key(), need));
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

/// Refuse, before any level runs, a text whose streamed reference log-probabilities (every
/// scored token's full distribution, 4 bytes per vocabulary entry: 608 KB a token at Qwen's
/// 151,936 tokens) would not fit the free disk of the output folder.
fn check_scratch(
    chunking: &Chunking,
    vocab: usize,
    out_dir: &std::path::Path,
    spill: &std::path::Path,
) -> Result<()> {
    let need = scratch_bytes(chunking.scored_total(), vocab);
    // A resumed run's file is already there and is rewritten in place.
    let have = std::fs::metadata(spill).map(|m| m.len()).unwrap_or(0);
    let dir = out_dir;
    let Some(free) = crate::fsutil::free_disk_bytes(dir) else {
        return Ok(());
    };
    scratch_fits(need, free + have, chunking, vocab, dir)
}

/// Bytes of the reference's streamed log-probabilities.
fn scratch_bytes(scored_tokens: usize, vocab: usize) -> u64 {
    scored_tokens as u64 * vocab as u64 * 4
}

fn scratch_fits(
    need: u64,
    free: u64,
    chunking: &Chunking,
    vocab: usize,
    dir: &std::path::Path,
) -> Result<()> {
    if need <= free {
        return Ok(());
    }
    let per_chunk = scratch_bytes(chunking.scored_total() / chunking.n_chunks.max(1), vocab);
    let fit = match free / per_chunk.max(1) {
        0 => "not one fits".to_string(),
        n => format!("{n} would fit"),
    };
    Err(usage(format!(
        "the reference's log-probabilities for KLD need {} of scratch in {} ({} scored tokens x {vocab}-token vocabulary x 4 bytes) but that disk has {} free; lower --chunks (each chunk takes {}; {fit}) or --ctx, or give --out on a larger disk",
        crate::fmt::gb(need),
        dir.display(),
        chunking.scored_total(),
        crate::fmt::gb(free),
        crate::fmt::gb(per_chunk),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_that_does_not_fit_names_its_size_and_the_flag() {
        // Qwen2.5's vocabulary: 608 KB a scored token.
        let ch = Chunking::new(512 * 80, 512, None, None);
        let need = scratch_bytes(ch.scored_total(), 151_936);
        assert_eq!(scratch_bytes(1, 151_936), 607_744);
        let dir = std::path::Path::new("/data/out/.work");
        let err = scratch_fits(need, need / 2, &ch, 151_936, dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--chunks"), "{err}");
        assert!(err.contains("/data/out/.work"), "{err}");
        assert!(err.contains(&crate::fmt::gb(need)), "{err}");
        assert!(scratch_fits(need, need, &ch, 151_936, dir).is_ok());
        let free = crate::fsutil::free_disk_bytes(std::path::Path::new("/"));
        assert!(
            free.is_some_and(|b| b > 0),
            "statvfs of / answered {free:?}"
        );
    }
}
