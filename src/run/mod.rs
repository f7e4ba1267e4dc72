//! Running a plan, as a pipeline read top to bottom: [`prepare`] what every level shares,
//! [`resume`] what an earlier run into the same folder finished, then for each level (the
//! reference first) run it ([`level`], in a worker process: [`protocol`], [`supervise`],
//! [`worker`]), grade its tasks and prompts against the reference ([`grade`]), and rewrite
//! results.json and the reports after every level. Owns the order of the steps and the run's
//! exit code; what each step does lives in its module.

pub mod console;
pub mod grade;
pub mod level;
pub mod packs;
pub mod prepare;
pub mod protocol;
pub mod resume;
pub mod supervise;
pub mod worker;

use crate::error::EXIT_INCOMPLETE;
use crate::fetch::locate::Located;
use crate::plan::{LevelPlan, Plan};
use crate::results::{LevelResult, Results, RunStatus};
use anyhow::Result;
use console::note;
use grade::Graded;
use prepare::Prepared;
use std::path::PathBuf;
use std::time::Instant;

/// The files a run writes into its --out folder.
pub struct Outputs {
    pub results: PathBuf,
    pub items: PathBuf,
    pub prompts: PathBuf,
}

/// Execute the plan with its files at `loc`; returns the exit code (0, or EXIT_INCOMPLETE when
/// a level failed).
pub fn execute(plan: &Plan, loc: Located) -> Result<i32> {
    crate::interrupt::install();
    let t_all = Instant::now();
    let sfx = &plan.file_suffix;
    let out = Outputs {
        results: plan.out_dir.join(format!("results{sfx}.json")),
        items: plan.out_dir.join(format!("items{sfx}.jsonl")),
        prompts: plan.out_dir.join(format!("prompts{sfx}.jsonl")),
    };
    let started = (|| {
        let mut prep = prepare::prepare(plan, loc)?;
        let mut results = prepare::new_results(plan, &prep)?;
        let mut graded = resume::resume(plan, &mut prep, &mut results, &out)?;
        packs::attach(plan, &prep, &mut results, &mut graded)?;
        Ok::<_, anyhow::Error>((prep, results, graded))
    })();
    let (mut prep, mut results, mut graded) = match started {
        Ok(s) => s,
        Err(e) => {
            packs::record_failure(plan, &out.results, &e)?;
            return Err(e);
        }
    };
    results.save(&out.results)?;
    announce(plan, &prep);

    let t_resume = results.phases.total_s;
    let mut interrupted = false;
    for lp in &plan.levels {
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
        let is_ref = plan.is_reference(lp);
        let Some(lr) = measure_level(plan, &mut prep, &mut graded, lp, is_ref)? else {
            interrupted = true;
            break;
        };
        let ref_failed = is_ref && !lr.is_ok();
        let ref_done = is_ref && lr.is_ok();
        record(&mut results, lr);
        if ref_done {
            packs::write(plan, &prep, &mut results, &graded)?;
        }
        if ref_failed {
            let not_done = |o: &&LevelPlan| {
                !plan.is_reference(o)
                    && !results
                        .levels
                        .iter()
                        .any(|l| l.level == o.key() && l.is_ok())
            };
            let left: Vec<&LevelPlan> = plan.levels.iter().filter(not_done).collect();
            for other in left {
                record(
                    &mut results,
                    level::failed_level(
                        other,
                        false,
                        "not run: the reference level failed, so there is nothing to compare with",
                        plan,
                    ),
                );
            }
        }
        results.phases.total_s = t_resume + t_all.elapsed().as_secs_f64();
        save(plan, &results, &graded, &prep, &out)?;
        if ref_failed {
            break;
        }
    }
    let any_failed = results.levels.iter().any(|l| !l.is_ok());
    results.status = if interrupted {
        RunStatus::Interrupted
    } else if any_failed {
        RunStatus::Incomplete
    } else {
        RunStatus::Complete
    };
    results.phases.total_s = t_resume + t_all.elapsed().as_secs_f64();
    results.save(&out.results)?;
    finish(plan, &results, &prep, interrupted, any_failed)
}

/// Run one level and grade it; a failure becomes a failed row. `None` when interrupted.
fn measure_level(
    plan: &Plan,
    prep: &mut Prepared,
    graded: &mut Graded,
    lp: &LevelPlan,
    is_ref: bool,
) -> Result<Option<LevelResult>> {
    let r = (|| {
        let prompts_file = match prep.prompts.as_ref() {
            Some(p) => Some(p.job_file(&lp.key(), is_ref, &prep.work)?),
            None => None,
        };
        let run = level::run_level(plan, prep, lp, is_ref, prompts_file.as_deref())?;
        let mut lr = run.result;
        lr.tasks = graded.grade(&prep.tasks, &run.tasks, &lr.level, is_ref, plan.seed)?;
        if let Some(p) = prep.prompts.as_mut() {
            lr.prompts = Some(p.grade(run.prompts, &lr.level, is_ref, plan.seed)?);
        }
        Ok::<_, anyhow::Error>(lr)
    })();
    match r {
        Ok(lr) => Ok(Some(lr)),
        Err(e) if e.downcast_ref::<crate::interrupt::Interrupted>().is_some() => Ok(None),
        Err(e) => {
            // An error is not progress: --quiet does not hide it.
            eprintln!("qeval: level {} failed: {e:#}", lp.key());
            Ok(Some(level::failed_level(
                lp,
                is_ref,
                &format!("{e:#}"),
                plan,
            )))
        }
    }
}

/// Put a level's row into the results, replacing any earlier row of the same level.
fn record(results: &mut Results, lr: LevelResult) {
    results.levels.retain(|l| l.level != lr.level);
    results.levels.push(lr);
}

/// Rewrite results.json, items.jsonl, prompts.jsonl and the reports.
fn save(
    plan: &Plan,
    results: &Results,
    graded: &Graded,
    prep: &Prepared,
    out: &Outputs,
) -> Result<()> {
    results.save(&out.results)?;
    graded.save(&out.items)?;
    if let Some(p) = &prep.prompts {
        p.save(&out.prompts)?;
    }
    if plan.render && !plan.bench_only {
        crate::report::render_all(results, &plan.out_dir, &plan.report)?;
    }
    Ok(())
}

/// The run's first line on the terminal: what is measured, on what.
fn announce(plan: &Plan, prep: &Prepared) {
    let (src, cfg) = (&prep.src, &prep.src.config);
    let params = crate::fmt::count(src.n_params());
    let line = if plan.bench_only {
        format!(
            "qeval bench: {} ({}, {params} params, {}), levels {}; pp{} tg{} eval{} on {} thread(s), {} repeat(s)",
            plan.model_name,
            cfg.arch.name(),
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
        )
    } else {
        format!(
            "qeval: {} ({}, {params} params, {}), {} tokens of '{}' in {} chunks of {}; reference {}",
            plan.model_name,
            cfg.arch.name(),
            src.main_dtype(),
            prep.tokens.len(),
            plan.evalset.name,
            prep.chunking.n_chunks,
            plan.ctx,
            plan.reference
        )
    };
    note(plan.quiet, &line);
}

/// The final reports, the work folder, and the exit code.
fn finish(
    plan: &Plan,
    results: &Results,
    prep: &Prepared,
    interrupted: bool,
    any_failed: bool,
) -> Result<i32> {
    if plan.bench_only {
        crate::report::bench::finish(results, &plan.out_dir)?;
    } else if plan.render {
        crate::report::finish_run(results, &plan.out_dir, &plan.report)?;
    } else {
        eprintln!(
            "qeval: wrote {}; for the report of every run in that folder: qeval report {}",
            plan.out_dir
                .join(format!("results{}.json", plan.file_suffix))
                .display(),
            plan.out_dir.display()
        );
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
        let _ = std::fs::remove_dir_all(&prep.work);
    }
    if any_failed {
        let failed: Vec<&str> = results
            .levels
            .iter()
            .filter(|l| !l.is_ok())
            .map(|l| l.level.as_str())
            .collect();
        eprintln!(
            "qeval: level(s) {} failed (their errors are above and in results.json); the others are measured",
            failed.join(", ")
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(0)
}
