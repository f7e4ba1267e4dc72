//! Submitting a sweep to Slurm and reading its state back: per model, the reference job, then
//! one job array per device whose tasks are the levels still to run (`afterok` on the
//! reference, `--kill-on-invalid-dep=yes` so a failed reference cancels them rather than
//! leaving them pending), then one report job (`afterany` on all of them, so it runs whatever
//! happened). Job ids go to `DIR/jobs.json`; `--status` asks `squeue` about them. Nothing here
//! decides what to run: that is the sweep plan's.

use super::{JobState, SweepPlan};
use crate::error::usage;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The jobs a submission made, by name (`MODEL reference`, `MODEL levels cpu`, `report`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Submitted {
    pub jobs: BTreeMap<String, String>,
}

fn jobs_file(plan: &SweepPlan) -> std::path::PathBuf {
    plan.out.join("jobs.json")
}

fn load_jobs(plan: &SweepPlan) -> Submitted {
    std::fs::read(jobs_file(plan))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Record the jobs submitted so far (after each one: a submission that stops half-way still
/// leaves what it submitted for --status and the next run to see).
fn save_jobs(plan: &SweepPlan, jobs: &Submitted, dry_run: bool) -> Result<()> {
    if dry_run {
        return Ok(());
    }
    crate::fsutil::write_atomic(&jobs_file(plan), &serde_json::to_vec_pretty(jobs)?)
}

/// Whether a Slurm command is on PATH; the error names Slurm and the way out.
fn require(cmd: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()));
    if found {
        Ok(())
    } else {
        Err(usage(format!(
            "--slurm: `{cmd}` was not found on PATH; Slurm's client commands (sbatch, squeue) are needed to submit a sweep (scripts/slurm-local.sh starts a one-node Slurm on Debian), or leave --slurm out to run the sweep here, one job after another"
        )))
    }
}

/// `sbatch --parsable ARGS SCRIPT`: the job id.
fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("cannot run sbatch")?;
    if !out.status.success() {
        anyhow::bail!(
            "sbatch {} {} failed: {}",
            args.join(" "),
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // "ID" or "ID;CLUSTER".
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    anyhow::ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch answered '{}', not a job id",
        text.trim()
    );
    Ok(id)
}

/// The jobs of `ids` that Slurm still has pending or running.
fn active(ids: &[&String]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i|%T", "-j", &list.join(",")])
        .output()
        .context("cannot run squeue")?;
    // Unknown (long finished) ids make squeue fail: none of them is active then.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.contains("PENDING") || l.contains("RUNNING") || l.contains("CONFIGURING"))
        .map(|l| l.split('|').next().unwrap_or("").to_string())
        .collect())
}

/// Submit what is missing or failed; print what was submitted. With `dry_run`, print the
/// sbatch commands instead.
pub fn submit(plan: &SweepPlan, dry_run: bool) -> Result<i32> {
    if !dry_run {
        require("sbatch")?;
        require("squeue")?;
        let prev = load_jobs(plan);
        let running = active(&prev.jobs.values().collect::<Vec<_>>())?;
        if !running.is_empty() {
            return Err(usage(format!(
                "{}: jobs {} of this sweep are still pending or running; wait for them (qeval sweep --status {}) or scancel them before submitting again",
                plan.out.display(),
                running.join(", "),
                plan.out.display()
            )));
        }
    }
    let mut n = 0;
    let mut submit_one = |name: String, args: Vec<String>, script: &Path| -> Result<String> {
        n += 1;
        if dry_run {
            let mut words = vec!["sbatch".to_string(), "--parsable".into()];
            words.extend(args.iter().cloned());
            words.push(script.display().to_string());
            println!("{}", words.join(" "));
            Ok(format!("<job {n}>"))
        } else {
            let id = sbatch(&args, script)?;
            println!("submitted {name}: job {id}");
            Ok(id)
        }
    };
    let mut jobs = Submitted::default();
    let mut report_after: Vec<String> = Vec::new();
    for m in &plan.models {
        let ref_id = if plan.reference_state(m) == JobState::Done {
            None
        } else {
            let id = submit_one(
                format!("{} reference {}", m.model, m.reference),
                vec![],
                &m.reference_script(),
            )?;
            jobs.jobs
                .insert(format!("{} reference", m.model), id.clone());
            report_after.push(id.clone());
            Some(id)
        };
        for arr in &m.arrays {
            let todo = plan.todo(m, arr);
            if todo.is_empty() {
                continue;
            }
            let mut args = vec![format!(
                "--array={}",
                todo.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )];
            if let Some(r) = &ref_id {
                args.push(format!("--dependency=afterok:{r}"));
                args.push("--kill-on-invalid-dep=yes".into());
            }
            let id = submit_one(
                format!(
                    "{} levels {} on {}",
                    m.model,
                    todo.iter()
                        .map(|&i| arr.levels[i].as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    arr.device
                ),
                args,
                &m.array_script(arr.device),
            )?;
            jobs.jobs
                .insert(format!("{} levels {}", m.model, arr.device), id.clone());
            save_jobs(plan, &jobs, dry_run)?;
            report_after.push(id);
        }
    }
    if report_after.is_empty() {
        println!(
            "qeval sweep: every job of {} has finished; nothing to submit",
            plan.out.display()
        );
        return Ok(0);
    }
    let id = submit_one(
        "report".into(),
        vec![format!("--dependency=afterany:{}", report_after.join(":"))],
        &plan.report_script_path(),
    )?;
    jobs.jobs.insert("report".into(), id);
    save_jobs(plan, &jobs, dry_run)?;
    if !dry_run {
        println!(
            "qeval sweep: follow it with `qeval sweep --status {}`; reports land in each model's folder",
            plan.out.display()
        );
    }
    Ok(0)
}

/// What Slurm says of the sweep's recorded jobs (one line per job or array task).
pub fn queue_status(plan: &SweepPlan) -> Result<String> {
    let jobs = load_jobs(plan);
    if jobs.jobs.is_empty() {
        return Ok("slurm: no jobs submitted yet\n".into());
    }
    if require("squeue").is_err() {
        return Ok("slurm: squeue is not on PATH; job states unknown\n".into());
    }
    let mut s = String::from("slurm jobs (squeue -t all):\n");
    for (name, id) in &jobs.jobs {
        let out = Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i %T %r", "-j", id])
            .output()
            .context("cannot run squeue")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            s.push_str(&format!("  {name}: job {id}: no longer known to Slurm\n"));
        }
        for l in text.lines() {
            s.push_str(&format!("  {name}: {l}\n"));
        }
    }
    Ok(s)
}
