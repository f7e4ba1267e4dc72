//! The versioned results record: the one interface between running and reporting.
//! Written after every level (atomically), so a crash loses nothing already measured;
//! every report is rendered from this file alone. It owns the record's types (and the
//! `items.jsonl` record, [`ItemRecord`]) and their serde names, which old files must keep
//! loading with; it must not measure, render or import `report`, `runner` or `cli`.

use crate::fsutil::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped whenever a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub qeval_version: String,
    pub qeval_git: String,
    pub candle_version: String,
    pub created_unix: u64,
    pub command_line: Vec<String>,
    pub status: RunStatus,
    pub model: ModelInfo,
    pub device: DeviceInfo,
    pub evalset: EvalsetInfo,
    /// The level every other level is compared with.
    pub reference: String,
    pub reference_note: String,
    /// How quality was measured: "kernel" (through the quantized kernels a deployment runs).
    pub scoring_mode: String,
    pub phases: Phases,
    /// Seed of everything random (bootstrap resampling, --limit sampling).
    #[serde(default)]
    pub seed: u64,
    /// Task items sampled per task (--limit), or None for all.
    #[serde(default)]
    pub limit: Option<usize>,
    /// What was measured: a full run (quality and speed) or `qeval bench` (speed only; every
    /// quality field of every level is None). Files written before this field read as "run".
    #[serde(default)]
    pub mode: RunMode,
    pub levels: Vec<LevelResult>,
    /// `--prompts`: how the users' prompts were rendered (None without prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptsInfo>,
    /// The reference pack this run wrote (`qeval run`, `qeval reference`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_written: Option<PackRef>,
    /// `--reference-pack`: the levels of this file were compared with this pack (KLD over its
    /// top-K tokens and the tail, not the exact streamed distribution). None: exact KLD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kld_from_pack: Option<PackRef>,
}

/// A reference pack as a results file names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackRef {
    pub path: String,
    pub sha256: String,
    pub top_k: usize,
    pub bytes: u64,
    pub scored_tokens: usize,
    pub bytes_per_token: f64,
    /// The perplexity of the pack's reference (for ΔPPL of the levels measured against it).
    #[serde(default)]
    pub reference_perplexity: Option<f64>,
}

/// What a results file measured.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// `qeval run`: quality against the reference, memory and speed.
    #[default]
    Run,
    /// `qeval bench`: speed only (prefill, decode, eval-scoring throughput); no quality fields.
    Bench,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Incomplete,
    /// Stopped by Ctrl-C / SIGTERM: finished levels are kept; re-run the same command to resume.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name given to --model, as typed (a catalog name, hf:ORG/REPO or a local path).
    pub name: String,
    /// The model's name for titles and headings: the catalog name, the Hub repo id, the GGUF's
    /// `general.name` or the file's stem. Empty in files written before it was recorded; read
    /// it through [`ModelInfo::display`].
    #[serde(default)]
    pub display_name: String,
    pub arch: String,
    pub repo: Option<String>,
    pub revision: Option<String>,
    pub format: String,
    pub path: String,
    pub files: Vec<FileInfo>,
    pub n_params: u64,
    pub source_dtype: String,
    pub source_is_quantized: bool,
    pub context_length: usize,
    pub vocab_size: usize,
    pub tokenizer: String,
    /// A shape (`--model shape:...`): the model's exact tensor shapes with seeded random
    /// weights. Its levels have speed and memory, and no quality.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shape_only: bool,
}

/// The compute device a run used (`--device`); serialized as `cpu`, `cuda`, `metal`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
    Metal,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Metal => "metal",
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a level finished; serialized as `ok` or `failed`. A level not known to have
/// finished is failed (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelStatus {
    Ok,
    #[default]
    Failed,
}

impl LevelStatus {
    pub fn name(self) -> &'static str {
        match self {
            LevelStatus::Ok => "ok",
            LevelStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for LevelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How quantized weights are multiplied, which decides what a level's quality numbers include;
/// serialized as `kernel` or `weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoringMode {
    /// Through the quantized kernels a deployment runs, which also quantize the activations
    /// (on CPU to 8 bits): quality includes that error.
    #[default]
    Kernel,
    /// The quantized weights dequantized and multiplied in f32: the error of the weights alone
    /// (costs f32 memory).
    Weights,
}

impl ScoringMode {
    pub fn name(self) -> &'static str {
        match self {
            ScoringMode::Kernel => "kernel",
            ScoringMode::Weights => "weights",
        }
    }

    pub fn parse(s: &str) -> Result<ScoringMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kernel" => Ok(ScoringMode::Kernel),
            "weights" => Ok(ScoringMode::Weights),
            other => {
                anyhow::bail!("unknown scoring mode '{other}': valid modes are kernel, weights")
            }
        }
    }

    /// A level's mode as files store it: files written before modes existed have `""`,
    /// which means kernel.
    fn deserialize_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(ScoringMode::Kernel);
        }
        ScoringMode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for ScoringMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a task scores: a choice among options, or generated text; serialized as `choice` or
/// `generate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    #[default]
    Choice,
    Generate,
}

impl TaskKind {
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Choice => "choice",
            TaskKind::Generate => "generate",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    pub name: String,
    pub threads: usize,
    pub os: String,
    pub arch: String,
    /// A GPU's driver (e.g. `CUDA 13.0`), compute capability (`9.0`) and memory, as its
    /// driver reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalsetInfo {
    pub name: String,
    pub version: String,
    pub path: String,
    pub text_tokens: usize,
    pub ctx: usize,
    pub chunks: usize,
    pub scored_tokens: usize,
    pub add_bos: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    pub download_s: f64,
    pub tokenize_s: f64,
    pub total_s: f64,
}

/// Median and spread of repeated speed measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
    pub samples: Vec<f64>,
}

/// A GPU level's memory, read from the device's driver while the level ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceMemory {
    /// How it was read (e.g. `cuMemGetInfo`, sampled every 2 ms).
    pub source: String,
    /// The device's memory.
    pub total_bytes: u64,
    /// In use on the device once the level's process had opened it (its CUDA context, and
    /// anything else on the device), before any weight was loaded.
    pub baseline_bytes: u64,
    /// Held by the level after loading its weights (over the baseline).
    pub after_load_bytes: u64,
    /// The most held by the level at any sample during the benchmark (over the baseline):
    /// weights, KV cache, activations, the allocator's pool.
    pub peak_bytes: u64,
    /// The same through the evaluation too (full-vocabulary logit windows).
    pub peak_with_eval_bytes: u64,
}

/// What a GGUF file's metadata says of how it was made (llama-quantize writes these keys):
/// its file type (the level it calls itself), quantization version, and the importance matrix
/// it was made with, if any. A key the file lacks stays None.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GgufMade {
    /// `general.file_type` as llama.cpp names it ("q4_k_m", "iq4_xs", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// `general.quantization_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_version: Option<u32>,
    /// `general.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `quantize.imatrix.file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imatrix_file: Option<String>,
    /// `quantize.imatrix.dataset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imatrix_dataset: Option<String>,
    /// `quantize.imatrix.chunks_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imatrix_chunks: Option<u64>,
    /// `quantize.imatrix.entries_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imatrix_entries: Option<u64>,
}

impl GgufMade {
    /// One sentence: "file type iq4_xs, quantization version 2, importance matrix from
    /// calibration.txt (125 chunks, 196 entries)"; "no importance matrix" when the file has none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.file_type {
            parts.push(format!("file type {f}"));
        }
        if let Some(v) = self.quantization_version {
            parts.push(format!("quantization version {v}"));
        }
        if self.imatrix_file.is_some() || self.imatrix_dataset.is_some() {
            let from = self
                .imatrix_dataset
                .as_deref()
                .or(self.imatrix_file.as_deref())
                .unwrap_or("?");
            let mut extra = Vec::new();
            if let Some(c) = self.imatrix_chunks {
                extra.push(format!("{c} chunks"));
            }
            if let Some(e) = self.imatrix_entries {
                extra.push(format!("{e} entries"));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join(", "))
            };
            parts.push(format!("importance matrix from {from}{extra}"));
        } else {
            parts.push("no importance matrix".into());
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LevelResult {
    pub level: String,
    pub status: LevelStatus,
    pub error: Option<String>,
    /// Where the weights came from, in words.
    pub source: String,
    pub is_reference: bool,
    pub weight_bytes: u64,
    pub n_params: u64,
    pub bits_per_weight: f64,
    /// Parameters per storage type (e.g. {"q4_k": 1.2e8, "q6_k": 3e7, "f32": 1e4}).
    pub type_mix: BTreeMap<String, u64>,
    /// For a level quantized in-process: the llama-quantize file type it is made as (the
    /// level's name resolved, e.g. `Q4_K_M` for `q4`, `Q4_K_M --pure` for `q4_k-pure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llama_quantize: Option<String>,
    /// Tensors whose wanted type did not fit and what was used instead.
    pub fallbacks: Vec<crate::quant::recipe::TensorChoice>,
    /// For a level taken from a GGUF file: how the file says it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf_made: Option<GgufMade>,
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_with_eval_bytes: Option<u64>,
    pub peak_rss_method: String,
    /// Memory held on the GPU (CUDA, Metal), from its driver; None for a CPU level. For a GPU
    /// level this, not the host's RSS, is the level's memory in the plots and the
    /// recommendation ([`LevelResult::memory_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory: Option<DeviceMemory>,
    pub kv_cache_bytes: u64,
    pub kv_cache_ctx: usize,
    pub prefill_tokens_per_sec: Option<f64>,
    pub decode_tokens_per_sec: Option<f64>,
    pub prefill: Option<Spread>,
    pub decode: Option<Spread>,
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
    /// Eval-scoring throughput: tokens per second of scoring one `eval_tokens`-long text window
    /// (the forward pass the text evaluation runs per chunk, logits included; llama-perplexity's
    /// tokens/s). Median of `eval`. None in files written before it was measured.
    #[serde(default)]
    pub eval_tokens_per_sec: Option<f64>,
    #[serde(default)]
    pub eval: Option<Spread>,
    /// Window length (--ctx) of the eval-scoring throughput; 0 when not measured.
    #[serde(default)]
    pub eval_tokens: usize,
    /// Which matmul implementation ran this level (see `measure::speed::kernels_in_use`);
    /// empty in files written before it was recorded.
    #[serde(default)]
    pub kernels: String,
    /// `kernel` (quantized kernels, activations quantized too) or `weights` (dequantized
    /// weights multiplied in f32); empty or absent in files written before modes existed
    /// (read as kernel).
    #[serde(default, deserialize_with = "ScoringMode::deserialize_level")]
    pub scoring_mode: ScoringMode,
    pub perplexity: Option<f64>,
    pub perplexity_se: Option<f64>,
    pub kld_mean: Option<f64>,
    pub kld_mean_se: Option<f64>,
    pub kld_median: Option<f64>,
    pub kld_p99: Option<f64>,
    pub kld_max: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub top1_agreement_se: Option<f64>,
    pub rms_delta_p: Option<f64>,
    pub rms_delta_p_se: Option<f64>,
    pub scored_tokens: usize,
    pub times: LevelTimes,
    /// Task accuracy (choice / generate tasks), one entry per task and metric.
    #[serde(default)]
    pub tasks: Vec<TaskResult>,
    /// Users' prompts (`--prompts`): this level's answers against the reference level's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptSummary>,
    /// `--kld-study`: mean KLD as a pack of each top-K would give it, computed from the exact
    /// reference in the same pass ({"8": 0.0491, ...}); empty otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kld_by_top_k: BTreeMap<String, f64>,
}

/// A mean over prompts with its 95% bootstrap interval (prompts resampled, fixed seed).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Free-text metrics of one level on a set of prompts, each prompt weighing the same.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PromptMetrics {
    pub n_prompts: usize,
    /// Teacher-forced KL(reference ‖ level) on the reference's own answer tokens, nats per
    /// token (each prompt's mean, then the mean over prompts).
    pub kld_mean: Interval,
    /// Teacher-forced top-1 agreement on the same positions.
    pub top1_agreement: Interval,
    /// Fraction of prompts whose greedy answer is token for token the reference's.
    pub identical: Interval,
    /// Median token position of the first difference, over the prompts whose answers differ.
    pub first_divergence_median: Option<f64>,
    /// chrF (character 1-6-grams, β = 2, 0-100) of the answer against the reference's answer.
    pub chrf: Interval,
    /// Prompts with a `reference` whose answer matched it (None when no prompt has one).
    pub reference_match: Option<Interval>,
    pub n_with_reference: usize,
}

/// A level's result on the users' prompts: over all prompts and per tag.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PromptSummary {
    pub all: PromptMetrics,
    pub by_tag: BTreeMap<String, PromptMetrics>,
    /// Tokens this level generated, and positions scored teacher-forced.
    pub answer_tokens: usize,
    pub scored_tokens: usize,
    pub seconds: f64,
}

/// How the users' prompts were turned into tokens (`--prompts`), for every level alike.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PromptsInfo {
    /// The `--prompts` argument.
    pub path: String,
    pub n_prompts: usize,
    /// The chat template's name and where it came from; None when every prompt is plain text.
    pub template: Option<String>,
    pub template_origin: Option<String>,
    pub template_sha256: Option<String>,
    /// What `strftime_now` returned in templates (UTC), as YYYY-MM-DD HH:MM:SS.
    pub template_date: String,
    /// Token ids that end an answer.
    pub stop_tokens: Vec<u32>,
    /// Seed of the bootstrap intervals.
    pub seed: u64,
}

/// One task metric at one level, with its interval and the paired comparison with the
/// reference level (the `delta_*`, `mcnemar_p` and `flips_*` fields are `None` at the reference).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    /// Task name, e.g. "hellaswag" or "default/choice".
    pub task: String,
    pub kind: TaskKind,
    /// "acc", "acc_norm" or "exact_match".
    pub metric: String,
    /// Fraction of items right, 0..1.
    pub value: f64,
    /// 95% interval of `value` (Wilson score interval).
    pub ci_low: f64,
    pub ci_high: f64,
    /// Items scored.
    pub n: usize,
    /// value - reference value (same items).
    pub delta_vs_reference: Option<f64>,
    /// 95% paired-bootstrap interval of the difference (fixed seed, see Results::seed).
    pub delta_ci_low: Option<f64>,
    pub delta_ci_high: Option<f64>,
    /// McNemar's exact test on the discordant items.
    pub mcnemar_p: Option<f64>,
    /// Items right at the reference and wrong here.
    pub flips_lost: Option<usize>,
    /// Items wrong at the reference and right here.
    pub flips_gained: Option<usize>,
    /// The smallest drop (absolute, 0..1) that `n` items can detect with 80% power at the
    /// 5% level given the observed disagreement; a drop smaller than this is noise-level.
    pub min_detectable_delta: Option<f64>,
    /// Wall time of this task at this level, and items per second.
    pub seconds: f64,
    pub items_per_sec: f64,
}

/// One line of `items.jsonl`: one task item as one level answered it. The runner writes it,
/// resumes from it and the reports read it; this is the only encoder and decoder of the file.
/// Fields are declared in alphabetical order, which is the order the file has always had.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ItemRecord {
    /// Whether the answer was right by the task's primary (last) metric.
    pub correct: bool,
    /// Whether it was right by each of the task's metrics.
    #[serde(default)]
    pub correct_by_metric: BTreeMap<String, bool>,
    #[serde(default)]
    pub gold: String,
    pub id: String,
    pub level: String,
    /// Choice tasks: summed log-probability of each option.
    #[serde(default)]
    pub logprobs: Vec<f64>,
    /// The primary metric `correct` is judged by.
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub prediction: String,
    #[serde(default)]
    pub prompt: String,
    pub task: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LevelTimes {
    pub quantize_s: f64,
    pub load_s: f64,
    pub evaluate_s: f64,
    pub benchmark_s: f64,
}

/// A model's name for titles and headings, from what is known about it: a `--model` that is
/// not a path (a catalog name) as typed; `hf:ORG/REPO` as its repo id; a path as the GGUF's
/// `general_name` when given, else the file's stem (a directory's name).
pub fn display_name(given: &str, general_name: Option<&str>) -> String {
    if let Some(repo) = given.strip_prefix("hf:") {
        return repo.trim_end_matches('/').to_string();
    }
    let is_path = given.contains(['/', '\\']) || given.to_ascii_lowercase().ends_with(".gguf");
    if !is_path {
        return given.to_string();
    }
    if let Some(g) = general_name.map(str::trim).filter(|g| !g.is_empty()) {
        return g.to_string();
    }
    let file = Path::new(given.trim_end_matches(['/', '\\']))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(given);
    let stem = if file.to_ascii_lowercase().ends_with(".gguf") {
        &file[..file.len() - ".gguf".len()]
    } else {
        file
    };
    if stem.is_empty() {
        given.to_string()
    } else {
        stem.to_string()
    }
}

impl ModelInfo {
    /// The name reports show: the recorded display name, or for files written before it was
    /// recorded, [`display_name`] of the `--model` text.
    pub fn display(&self) -> String {
        if self.display_name.is_empty() {
            display_name(&self.name, None)
        } else {
            self.display_name.clone()
        }
    }

    /// What makes two results files measurements of the same model, whatever `--model` was
    /// typed: the files' hashes (sorted), else the repo and revision, else the name.
    pub fn identity(&self) -> String {
        let mut h: Vec<&str> = self.files.iter().map(|f| f.sha256.as_str()).collect();
        if !h.is_empty() {
            h.sort_unstable();
            return format!("sha256 {}", h.join(","));
        }
        match &self.repo {
            Some(repo) => format!("{repo}@{}", self.revision.as_deref().unwrap_or("")),
            None => self.name.clone(),
        }
    }
}

impl LevelResult {
    /// Whether the level finished (its numbers can be reported).
    pub fn is_ok(&self) -> bool {
        self.status == LevelStatus::Ok
    }

    /// The level's memory as the reports plot it: the device's peak for a GPU level (read
    /// from its driver), else the worker's peak resident memory.
    pub fn memory_bytes(&self) -> Option<u64> {
        match &self.device_memory {
            Some(d) => Some(d.peak_bytes),
            None => self.peak_rss_bytes,
        }
    }

    /// Where [`LevelResult::memory_bytes`] comes from, in a word for tables and axes.
    pub fn memory_kind(&self) -> &'static str {
        if self.device_memory.is_some() {
            "device"
        } else {
            "host RSS"
        }
    }
}

impl Results {
    /// Write `results.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(path, &json)
    }

    /// Read a results file, refusing other schema versions with a clear message.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read results file {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            crate::error::usage(format!("{}: not a JSON results file: {e}", path.display()))
        })?;
        let sv = v.get("schema_version").and_then(|s| s.as_u64());
        if sv != Some(SCHEMA_VERSION as u64) {
            return Err(crate::error::usage(format!(
                "{}: results schema_version {} is not supported by this qeval (it reads version {SCHEMA_VERSION}); re-run the measurement with this version",
                path.display(),
                sv.map(|s| s.to_string()).unwrap_or_else(|| "missing".into())
            )));
        }
        serde_json::from_value(v).map_err(|e| {
            crate::error::usage(format!("{}: malformed results file: {e}", path.display()))
        })
    }

    /// The reference level's entry, if it finished.
    pub fn reference_level(&self) -> Option<&LevelResult> {
        self.levels.iter().find(|l| l.is_reference && l.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(dir: &str) -> Results {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("reports/{dir}/results.json"));
        Results::load(&p).expect("a committed example results file")
    }

    #[test]
    fn committed_results_load_with_typed_fields() {
        let r = committed("example");
        assert_eq!(r.device.kind, DeviceKind::Cpu);
        assert_eq!(r.levels.len(), 4);
        assert!(r.levels.iter().all(|l| l.status == LevelStatus::Ok));
        assert!(r
            .levels
            .iter()
            .all(|l| l.scoring_mode == ScoringMode::Kernel));
        assert_eq!(r.model.display(), "smollm2-135m-q4_1");
        assert!(r.reference_level().is_some());
        // Written with --model as a local path, before display names were recorded.
        let q = committed("prompts-qwen2.5-coder");
        assert_eq!(q.model.display(), "qwen2.5-coder-1.5b-instruct-q4_k_m");
        committed("prompts");
    }

    #[test]
    fn typed_fields_keep_their_serialized_names() {
        let r = committed("example");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["device"]["kind"], "cpu");
        assert_eq!(v["levels"][0]["status"], "ok");
        assert_eq!(v["levels"][0]["scoring_mode"], "kernel");
        assert_eq!(v["model"]["display_name"], "");
        let mut l: serde_json::Value = v["levels"][0].clone();
        l["status"] = "failed".into();
        l["scoring_mode"] = "".into();
        let back: LevelResult = serde_json::from_value(l).unwrap();
        assert_eq!(back.status, LevelStatus::Failed);
        assert_eq!(back.scoring_mode, ScoringMode::Kernel);
        let t: TaskResult = serde_json::from_str(
            r#"{"task":"t","kind":"generate","metric":"exact_match","value":0.5,"ci_low":0.1,"ci_high":0.9,"n":2,"delta_vs_reference":null,"delta_ci_low":null,"delta_ci_high":null,"mcnemar_p":null,"flips_lost":null,"flips_gained":null,"min_detectable_delta":null,"seconds":1.0,"items_per_sec":2.0}"#,
        )
        .unwrap();
        assert_eq!(t.kind, TaskKind::Generate);
        assert_eq!(DeviceKind::Metal.to_string(), "metal");
    }

    #[test]
    fn display_names_are_names_not_paths() {
        assert_eq!(display_name("smollm2-135m-q4_1", None), "smollm2-135m-q4_1");
        assert_eq!(
            display_name("hf:HuggingFaceTB/SmolLM2-135M", None),
            "HuggingFaceTB/SmolLM2-135M"
        );
        assert_eq!(
            display_name("/m/qwen2.5-coder-1.5b-q4_k_m.gguf", None),
            "qwen2.5-coder-1.5b-q4_k_m"
        );
        assert_eq!(
            display_name("./model.GGUF", Some("Qwen2.5 Coder 1.5B")),
            "Qwen2.5 Coder 1.5B"
        );
        assert_eq!(display_name("/models/Qwen2.5-0.5B/", None), "Qwen2.5-0.5B");
        assert_eq!(display_name("model.gguf", Some("  ")), "model");
    }

    #[test]
    fn item_records_keep_the_file_format() {
        let mut r = ItemRecord {
            level: "q8_0".into(),
            task: "t".into(),
            metric: "acc_norm".into(),
            id: "7".into(),
            correct: true,
            prediction: "b".into(),
            gold: "b".into(),
            prompt: "p".into(),
            logprobs: vec![-1.5, -0.25],
            ..Default::default()
        };
        r.correct_by_metric.insert("acc_norm".into(), true);
        r.correct_by_metric.insert("acc".into(), false);
        // The keys in the order serde_json::json! wrote them (sorted) before the record type.
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"correct":true,"correct_by_metric":{"acc":false,"acc_norm":true},"gold":"b","id":"7","level":"q8_0","logprobs":[-1.5,-0.25],"metric":"acc_norm","prediction":"b","prompt":"p","task":"t"}"#
        );
        let back: ItemRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        // Minimal lines (older or hand-written files) read with defaults.
        let m: ItemRecord =
            serde_json::from_str(r#"{"level":"f16","task":"t","id":"1","correct":true}"#).unwrap();
        assert!(m.prediction.is_empty() && m.correct_by_metric.is_empty());
    }
}
