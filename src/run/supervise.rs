//! Starting and supervising one level's worker process: spawn this binary's `__level`
//! subcommand with the job file, show its [`Progress`] as a bar, stop it on Ctrl-C, and turn
//! its exit into an [`Outcome`] or an error carrying the tail of its log. Owns the process, not
//! the job's content ([`super::protocol`]) nor what the outcome means ([`super::level`]).

use super::console::bar;
use super::protocol::{Job, Outcome, Progress};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// Run `job` (saved at `job_path`) in a worker process with `threads` compute threads.
pub fn run_worker(
    job: &Job,
    job_path: &Path,
    threads: usize,
    quiet: bool,
    n_chunks: usize,
) -> Result<Outcome> {
    let _ = std::fs::remove_file(&job.outcome_file);
    let _ = std::fs::remove_file(&job.progress_file);
    let log_path = job_path.with_extension("log");
    let child = spawn(job_path, &log_path, threads)?;
    let status = watch(child, job, quiet, n_chunks)?;
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
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
    Outcome::load(&job.outcome_file)
}

fn spawn(job_path: &Path, log_path: &Path, threads: usize) -> Result<Child> {
    // On Linux /proc/self/exe runs this very binary even if the file was replaced (e.g. rebuilt)
    // while the run goes on; elsewhere, the path it was started from.
    let proc_exe = Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().context("cannot find the qeval executable to start a worker")?
    };
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    std::process::Command::new(exe)
        .arg("__level")
        .arg(job_path)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("CANDLE_NUM_THREADS", threads.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start a worker process")
}

/// Wait for the worker, drawing its progress; kill it and return `Interrupted` on Ctrl-C.
fn watch(mut child: Child, job: &Job, quiet: bool, n_chunks: usize) -> Result<ExitStatus> {
    let pb = bar(quiet, n_chunks as u64, format!("{}: load", job.level));
    let mut shown: Option<String> = None;
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
        if let Some(p) = Progress::read(&job.progress_file) {
            if shown.as_deref() != Some(p.phase.as_str()) {
                pb.reset();
                pb.set_message(format!("{}: {}", job.level, p.phase));
                shown = Some(p.phase);
            }
            pb.set_length(p.total);
            pb.set_position(p.done);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    pb.finish_and_clear();
    Ok(status)
}
