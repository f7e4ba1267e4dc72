//! Sweeps: several models × levels × devices as one plan of plain jobs. Per model, one
//! reference job (`qeval reference`, on the first device listed) writes the model's reference
//! pack; then one job per level and device (`qeval run --reference-pack`, each writing its own
//! results file into the model's folder); then one report job (`qeval report`) that runs
//! whatever happened to the levels, so a failed level shows in the report. The jobs are
//! written as readable shell scripts with `#SBATCH` lines into the sweep folder; [`slurm`]
//! submits them as a Slurm job array per model and device, and without --slurm they run here,
//! one after another, from the same scripts. Re-running a sweep runs only what is missing or
//! failed. Owns the sweep's plan, scripts and state; the runs themselves are `qeval run`.

pub mod slurm;

use crate::cli::SweepArgs;
use crate::error::usage;
use crate::quant::Level;
use crate::results::{DeviceKind, Results};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a sweep runs, written to `DIR/sweep.json` (read back by `--status` and re-runs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepPlan {
    pub out: PathBuf,
    /// The qeval binary every job runs.
    pub qeval: PathBuf,
    pub models: Vec<ModelJobs>,
    /// Flags of what the reference measures (eval set, ctx, chunks, limit, K, --no-tasks):
    /// reference jobs only, since levels take them from the pack.
    pub pack_flags: Vec<String>,
    /// Flags of how every job runs (threads, repeats).
    pub machine_flags: Vec<String>,
    /// Where the jobs download into (HF_HOME), on the sweep's shared folder unless set.
    pub hf_home: PathBuf,
    pub slurm: Option<SlurmOptions>,
}

/// Slurm settings of a sweep (`--partition`, `--time`, `--gpus-per-task`, `--account`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub account: Option<String>,
    pub cpus_per_task: Option<usize>,
}

/// One model's jobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelJobs {
    pub model: String,
    /// `DIR/<model>`: its pack, results files, logs and report.
    pub dir: PathBuf,
    pub reference: String,
    pub reference_device: DeviceKind,
    /// Level jobs, grouped by device (one job array each).
    pub arrays: Vec<LevelArray>,
}

/// The levels one device measures for one model: a job array, one task per level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LevelArray {
    pub device: DeviceKind,
    pub levels: Vec<String>,
}

impl ModelJobs {
    pub fn pack(&self) -> PathBuf {
        self.dir.join("reference.qref")
    }

    /// The results file a level job writes (as `qeval run --reference-pack` names it).
    pub fn level_results(&self, level: &str, device: DeviceKind) -> PathBuf {
        self.dir.join(format!(
            "results-{}.json",
            crate::refpack::shard_suffix(&[level.to_string()], device)
        ))
    }

    fn script(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sbatch"))
    }

    pub fn reference_script(&self) -> PathBuf {
        self.script("reference")
    }

    pub fn array_script(&self, device: DeviceKind) -> PathBuf {
        self.script(&format!("levels-{}", device.name()))
    }
}

/// Where one job stands, from the files it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Done,
    /// Its results say it failed.
    Failed,
    /// A log but no result: running now, or ended before writing one (see the log).
    Started,
    Missing,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Started => "started, no result yet (running, or see its log)",
            JobState::Missing => "missing",
        }
    }
}

/// A folder name for a model name (`hf:Qwen/Qwen3-0.6B` → `hf_Qwen_Qwen3-0.6B`; a local file
/// by its name without the extension).
fn folder_name(model: &str) -> String {
    let p = Path::new(model);
    let model = if p.exists() {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| model.to_string())
    } else {
        model.to_string()
    };
    let s: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

impl SweepPlan {
    /// The plan of `qeval sweep` flags (no I/O).
    pub fn from_args(a: &SweepArgs, qeval: PathBuf) -> Result<SweepPlan> {
        let Some(out) = a.out.clone() else {
            return Err(usage("qeval sweep: give --out DIR, the sweep's folder"));
        };
        if a.models.is_empty() {
            return Err(usage(
                "qeval sweep: give --models NAME,NAME (names from `qeval models`, hf:ORG/REPO or local files)",
            ));
        }
        if a.devices.is_empty() {
            return Err(usage(
                "qeval sweep --devices: give at least one of cpu, cuda, metal",
            ));
        }
        for d in &a.devices {
            if *d != DeviceKind::Cpu && !a.slurm {
                crate::plan::check_device(*d)?;
            }
        }
        let levels = Level::parse_list(a.quants.as_deref().unwrap_or(crate::plan::DEFAULT_QUANTS))?;
        let reference = match &a.reference {
            Some(r) => {
                let l = Level::parse(r)?;
                if !levels.contains(&l) {
                    return Err(usage(format!(
                        "--reference {r}: not among --quants; add it there"
                    )));
                }
                l
            }
            None => *levels
                .iter()
                .max_by_key(|l| l.precision_rank())
                .ok_or_else(|| usage("--quants is empty"))?,
        };
        let out = absolute(&out)?;
        let mut models = Vec::new();
        for m in &a.models {
            let dir = out.join(folder_name(m));
            if models.iter().any(|x: &ModelJobs| x.dir == dir) {
                return Err(usage(format!("--models: {m} is listed twice")));
            }
            let others: Vec<String> = levels
                .iter()
                .filter(|l| **l != reference)
                .map(|l| l.name().to_string())
                .collect();
            models.push(ModelJobs {
                // A local file is named by its absolute path: the jobs run elsewhere.
                model: if Path::new(m).exists() {
                    absolute(Path::new(m))?.display().to_string()
                } else {
                    m.clone()
                },
                dir,
                reference: reference.name().to_string(),
                reference_device: a.devices[0],
                arrays: a
                    .devices
                    .iter()
                    .map(|&device| LevelArray {
                        device,
                        levels: others.clone(),
                    })
                    .filter(|arr| !arr.levels.is_empty())
                    .collect(),
            });
        }
        Ok(SweepPlan {
            hf_home: std::env::var_os("HF_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| out.join("hf-cache")),
            out,
            qeval,
            models,
            pack_flags: pack_flags(a),
            machine_flags: machine_flags(a),
            slurm: a.slurm.then(|| SlurmOptions {
                partition: a.partition.clone(),
                time: a.time.clone(),
                gpus_per_task: a.gpus_per_task,
                account: a.account.clone(),
                cpus_per_task: a.threads,
            }),
        })
    }

    pub fn load(dir: &Path) -> Result<SweepPlan> {
        let p = dir.join("sweep.json");
        let bytes = std::fs::read(&p).map_err(|e| {
            usage(format!(
                "{}: cannot read ({e}); is {} a folder written by qeval sweep?",
                p.display(),
                dir.display()
            ))
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not a sweep plan", p.display()))
    }

    /// Write sweep.json and every job script.
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(&self.out)
            .map_err(|e| usage(format!("--out {}: cannot create: {e}", self.out.display())))?;
        for m in &self.models {
            std::fs::create_dir_all(m.dir.join("logs"))
                .with_context(|| format!("cannot create {}", m.dir.display()))?;
            write_script(&m.reference_script(), &self.reference_script(m))?;
            for arr in &m.arrays {
                write_script(&m.array_script(arr.device), &self.array_script(m, arr))?;
            }
        }
        write_script(&self.report_script_path(), &self.report_script())?;
        crate::fsutil::write_atomic(
            &self.out.join("sweep.json"),
            &serde_json::to_vec_pretty(self)?,
        )
    }

    pub fn report_script_path(&self) -> PathBuf {
        self.out.join("report.sbatch")
    }

    fn header(&self, name: &str, log: &Path, device: Option<DeviceKind>) -> String {
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name={name}\n"));
        s.push_str(&format!("#SBATCH --output={}\n", log.display()));
        if let Some(o) = &self.slurm {
            if let Some(p) = &o.partition {
                s.push_str(&format!("#SBATCH --partition={p}\n"));
            }
            if let Some(t) = &o.time {
                s.push_str(&format!("#SBATCH --time={t}\n"));
            }
            if let Some(a) = &o.account {
                s.push_str(&format!("#SBATCH --account={a}\n"));
            }
            if let (Some(c), Some(_)) = (o.cpus_per_task, device) {
                s.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
            }
            // --gpus-per-task 0 asks for none (a node whose GPUs are not Slurm resources).
            match o.gpus_per_task.unwrap_or(1) {
                0 => {}
                n if device == Some(DeviceKind::Cuda) => {
                    s.push_str(&format!("#SBATCH --gpus-per-task={n}\n"))
                }
                _ => {}
            }
        }
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!(
            "# Downloads land once, in the reference job, in this cache on the shared folder.\nexport HF_HOME=\"${{HF_HOME:-{}}}\"\n",
            self.hf_home.display()
        ));
        s
    }

    fn reference_command(&self, m: &ModelJobs) -> Vec<String> {
        let mut c = vec![
            self.qeval.display().to_string(),
            "reference".into(),
            "--model".into(),
            m.model.clone(),
            "--quants".into(),
            m.reference.clone(),
            "--device".into(),
            m.reference_device.name().into(),
            "--out".into(),
            m.pack().display().to_string(),
        ];
        c.extend(self.pack_flags.iter().cloned());
        c.extend(self.machine_flags.iter().cloned());
        c
    }

    fn level_command(&self, m: &ModelJobs, level: &str, device: DeviceKind) -> Vec<String> {
        let mut c = vec![
            self.qeval.display().to_string(),
            "run".into(),
            "--model".into(),
            m.model.clone(),
            "--reference-pack".into(),
            m.pack().display().to_string(),
            "--quants".into(),
            level.into(),
            "--device".into(),
            device.name().into(),
            "--out".into(),
            m.dir.display().to_string(),
        ];
        // The eval set, chunks, limit and tasks come from the pack.
        c.extend(self.machine_flags.iter().cloned());
        c
    }

    fn reference_script(&self, m: &ModelJobs) -> String {
        let mut s = self.header(
            &format!("qeval-ref-{}", folder_name(&m.model)),
            &m.dir.join("logs/reference-%j.out"),
            Some(m.reference_device),
        );
        s.push_str(&format!(
            "# {}: reference {} on {}, written to its pack.\n",
            m.model, m.reference, m.reference_device
        ));
        s.push_str(&format!(
            "exec {}\n",
            shell_join(&self.reference_command(m))
        ));
        s
    }

    fn array_script(&self, m: &ModelJobs, arr: &LevelArray) -> String {
        let mut s = self.header(
            &format!("qeval-{}-{}", arr.device.name(), folder_name(&m.model)),
            &m.dir
                .join(format!("logs/levels-{}-%A_%a.out", arr.device.name())),
            Some(arr.device),
        );
        s.push_str(&format!(
            "# {}: one array task per level on {}, each against the pack.\n",
            m.model, arr.device
        ));
        s.push_str(
            "case \"${SLURM_ARRAY_TASK_ID:?run as a job array, or set SLURM_ARRAY_TASK_ID}\" in\n",
        );
        for (i, l) in arr.levels.iter().enumerate() {
            s.push_str(&format!(
                "  {i}) exec {} ;;\n",
                shell_join(&self.level_command(m, l, arr.device))
            ));
        }
        s.push_str(&format!(
            "  *) echo \"no level for array task $SLURM_ARRAY_TASK_ID (0..{})\" >&2; exit 2 ;;\nesac\n",
            arr.levels.len().saturating_sub(1)
        ));
        s
    }

    fn report_script(&self) -> String {
        let mut s = self.header("qeval-report", &self.out.join("report-%j.out"), None);
        s.push_str("# Every model's report, from whatever results its levels left (failures included).\nstatus=0\n");
        for m in &self.models {
            s.push_str(&format!(
                "{} report {} || status=$?\n",
                shell_quote(&self.qeval.display().to_string()),
                shell_quote(&m.dir.display().to_string())
            ));
        }
        s.push_str("exit $status\n");
        s
    }

    /// Where the reference of `m` stands.
    pub fn reference_state(&self, m: &ModelJobs) -> JobState {
        // A pack is written to a temporary name and renamed: there means whole.
        if m.pack().is_file() {
            JobState::Done
        } else if has_log(m, "reference-") {
            JobState::Started
        } else {
            JobState::Missing
        }
    }

    /// Where one level of `m` on `device` stands, from its results file.
    pub fn level_state(&self, m: &ModelJobs, level: &str, device: DeviceKind) -> JobState {
        match Results::load(&m.level_results(level, device)) {
            Ok(r) => match r.levels.iter().find(|l| l.level == level) {
                Some(l) if l.is_ok() => JobState::Done,
                Some(_) => JobState::Failed,
                // Its run has started (it writes its results file first).
                None => JobState::Started,
            },
            Err(_) => {
                if has_log(m, &format!("levels-{}-", device.name())) {
                    JobState::Started
                } else {
                    JobState::Missing
                }
            }
        }
    }

    /// The array indices of `arr` still to run (missing or failed).
    pub fn todo(&self, m: &ModelJobs, arr: &LevelArray) -> Vec<usize> {
        arr.levels
            .iter()
            .enumerate()
            .filter(|(_, l)| self.level_state(m, l, arr.device) != JobState::Done)
            .map(|(i, _)| i)
            .collect()
    }

    /// A table of every job's state (from the files present); models by their folder's name.
    pub fn status_table(&self) -> String {
        let mut s = format!(
            "{:<28} {:<10} {:<8} {}\n",
            "model", "level", "device", "state"
        );
        for m in &self.models {
            let name = m
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| m.model.clone());
            s.push_str(&format!(
                "{:<28} {:<10} {:<8} {}\n",
                name,
                format!("{} (ref)", m.reference),
                m.reference_device.name(),
                self.reference_state(m).name()
            ));
            for arr in &m.arrays {
                for l in &arr.levels {
                    s.push_str(&format!(
                        "{:<28} {:<10} {:<8} {}\n",
                        name,
                        l,
                        arr.device.name(),
                        self.level_state(m, l, arr.device).name()
                    ));
                }
            }
        }
        s
    }

    /// Run the sweep here, one job after another, from its scripts (what Slurm would run).
    /// Levels whose reference failed are skipped; the report runs in every case. Returns the
    /// exit code: 0 when every job finished, 3 when some failed.
    pub fn run_local(&self) -> Result<i32> {
        let mut failed = 0;
        for m in &self.models {
            if self.reference_state(m) != JobState::Done {
                eprintln!("qeval sweep: {}: reference {}", m.model, m.reference);
                if !run_script(
                    &m.reference_script(),
                    None,
                    &m.dir.join("logs/reference-local.out"),
                )? {
                    eprintln!(
                        "qeval sweep: {}: the reference failed (log: {}); its levels are skipped",
                        m.model,
                        m.dir.join("logs/reference-local.out").display()
                    );
                    failed += 1;
                    continue;
                }
            }
            for arr in &m.arrays {
                for i in self.todo(m, arr) {
                    eprintln!(
                        "qeval sweep: {}: {} on {}",
                        m.model, arr.levels[i], arr.device
                    );
                    let log = m
                        .dir
                        .join(format!("logs/levels-{}-local_{i}.out", arr.device.name()));
                    if !run_script(&m.array_script(arr.device), Some(i), &log)? {
                        eprintln!("qeval sweep: that level failed (log: {})", log.display());
                        failed += 1;
                    }
                }
            }
        }
        let report_log = self.out.join("report-local.out");
        if !run_script(&self.report_script_path(), None, &report_log)? {
            eprintln!(
                "qeval sweep: a report failed (log: {})",
                report_log.display()
            );
            failed += 1;
        }
        eprint!("{}", self.status_table());
        Ok(if failed == 0 {
            0
        } else {
            crate::error::EXIT_INCOMPLETE
        })
    }
}

/// Whether a job of `m` left a log whose name starts with `prefix` in `m`'s logs folder.
fn has_log(m: &ModelJobs, prefix: &str) -> bool {
    m.dir.join("logs").read_dir().is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix)))
    })
}

/// Run a job script with bash, as Slurm would (array index in SLURM_ARRAY_TASK_ID), its output
/// to `log`; whether it succeeded.
fn run_script(script: &Path, index: Option<usize>, log: &Path) -> Result<bool> {
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(script).stdout(out).stderr(err);
    if let Some(i) = index {
        cmd.env("SLURM_ARRAY_TASK_ID", i.to_string());
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run bash {}", script.display()))?;
    Ok(status.success())
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, text.as_bytes())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
}

/// `FLAG VALUE` for each flag given.
fn flags(given: &[(&str, Option<String>)]) -> Vec<String> {
    given
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| [k.to_string(), v.clone()]))
        .flatten()
        .collect()
}

/// The flags of `qeval sweep` that decide what the reference (and so its pack) measures.
fn pack_flags(a: &SweepArgs) -> Vec<String> {
    let mut f = flags(&[
        ("--evalset", a.evalset.clone()),
        ("--ctx", a.ctx.map(|v| v.to_string())),
        ("--chunks", a.chunks.map(|v| v.to_string())),
        ("--limit", a.limit.map(|v| v.to_string())),
        ("--top-k", a.top_k.map(|v| v.to_string())),
    ]);
    if a.no_tasks {
        f.push("--no-tasks".into());
    }
    f
}

/// The flags of `qeval sweep` that every job takes.
fn machine_flags(a: &SweepArgs) -> Vec<String> {
    flags(&[
        ("--threads", a.threads.map(|v| v.to_string())),
        ("--repeats", a.repeats.map(|v| v.to_string())),
    ])
}

/// A word for the shell: as is when it is plain, else in single quotes.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `qeval sweep`: plan, write the scripts, and run them (Slurm or here); or `--status`.
pub fn main(a: &SweepArgs) -> Result<i32> {
    if let Some(dir) = &a.status {
        let plan = SweepPlan::load(dir)?;
        print!("{}", plan.status_table());
        if plan.slurm.is_some() {
            print!("{}", slurm::queue_status(&plan)?);
        }
        return Ok(0);
    }
    let qeval = std::env::current_exe().context("cannot find the qeval binary")?;
    let plan = SweepPlan::from_args(a, qeval)?;
    if let Ok(prev) = SweepPlan::load(&plan.out) {
        if prev.models != plan.models {
            return Err(usage(format!(
                "--out {}: holds a sweep of other models or levels (sweep.json); give another folder, or the same --models/--quants/--devices to finish it",
                plan.out.display()
            )));
        }
    }
    plan.write()?;
    if plan.slurm.is_some() {
        slurm::submit(&plan, a.dry_run)
    } else if a.dry_run {
        eprintln!(
            "qeval sweep: scripts written to {} (dry run: nothing run)",
            plan.out.display()
        );
        Ok(0)
    } else {
        plan.run_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("/a/b.gguf"), "/a/b.gguf");
        assert_eq!(shell_quote("my model"), "'my model'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(folder_name("hf:Qwen/Qwen3-0.6B"), "hf_Qwen_Qwen3-0.6B");
    }
}
