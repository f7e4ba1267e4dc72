//! Resuming a run into an --out that already holds results: compare the previous results with
//! the new plan (refusing, with every difference named, a folder that measured something
//! else), keep the levels that finished, and take back their graded items and prompt answers.
//! When the reference was kept but its streamed log-probabilities are gone and other levels
//! still need them, the reference is dropped so that it runs again (same numbers). Owns no
//! level running and writes nothing; the scheduler saves what it returns.

use super::console::note;
use super::grade::Graded;
use super::prepare::Prepared;
use super::Outputs;
use crate::error::usage;
use crate::plan::Plan;
use crate::results::{LevelResult, Results};
use anyhow::Result;
use std::path::Path;

/// Fold what an earlier run into the same --out finished into `results`; returns the graded
/// items of the kept levels. With no earlier results, nothing is kept.
pub fn resume(
    plan: &Plan,
    prep: &mut Prepared,
    results: &mut Results,
    out: &Outputs,
) -> Result<Graded> {
    if !out.results.exists() {
        return Ok(Graded::default());
    }
    let prev = Results::load(&out.results)?;
    check_resumable(&prev, results, plan, &out.results)?;
    let reference = results.reference.clone();
    let mut kept: Vec<LevelResult> = prev.levels.into_iter().filter(|l| l.is_ok()).collect();
    let mut graded = Graded::restore(&out.items, &kept)?;
    if let Some(p) = prep.prompts.as_mut() {
        p.restore(&out.prompts, &kept)?;
    }
    let ref_kept = kept.iter().any(|l| l.level == reference);
    let others_left = plan
        .levels
        .iter()
        .any(|l| l.key() != reference && !kept.iter().any(|k| k.level == l.key()));
    let pack_missing = plan.pack.write.as_ref().is_some_and(|p| !p.exists());
    if ref_kept && ((others_left && !reference_inputs_kept(prep, &graded)) || pack_missing) {
        // The reference's log-probabilities (or its pack) are gone: measure it again (same
        // numbers).
        kept.retain(|l| l.level != reference);
        graded = Graded::restore(&out.items, &kept)?;
        if let Some(p) = prep.prompts.as_mut() {
            p.drop_reference();
            p.restore(&out.prompts, &kept)?;
        }
    }
    note(
        false,
        &format!(
            "resuming {}: {} level(s) already done ({})",
            out.results.display(),
            kept.len(),
            kept.iter()
                .map(|l| l.level.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if kept.iter().any(|l| l.level == reference) {
        results.pack_written = prev.pack_written.clone();
    }
    results.created_unix = prev.created_unix;
    results.phases.total_s = prev.phases.total_s;
    results.levels = kept;
    Ok(graded)
}

/// Whether what the reference left for the other levels is all still there: its streamed
/// log-probabilities, its graded items and its prompt answers.
fn reference_inputs_kept(prep: &Prepared, graded: &Graded) -> bool {
    let vocab = prep.src.config.vocab_size;
    let spill_ok = prep.chunking.n_chunks == 0
        || std::fs::metadata(&prep.spill_file).map(|m| m.len()).ok()
            == Some((prep.chunking.scored_total() * vocab * 4) as u64);
    let graded_ok = prep.tasks.is_empty() || graded.has_reference();
    let prompts_ok = prep
        .prompts
        .as_ref()
        .is_none_or(|p| p.reference_ready(vocab));
    spill_ok && graded_ok && prompts_ok
}

/// What must be equal for a run to resume another: (what, how to read it from results.json).
type Key = (&'static str, fn(&Results) -> String);

const SAME_MEASUREMENT: &[Key] = &[
    ("model files", |r| {
        r.model
            .files
            .iter()
            .map(|f| format!("{}={}", f.name, &f.sha256[..f.sha256.len().min(12)]))
            .collect::<Vec<_>>()
            .join(",")
    }),
    ("model revision", |r| format!("{:?}", r.model.revision)),
    ("eval set", |r| {
        format!("{} {}", r.evalset.name, r.evalset.version)
    }),
    ("--ctx/--chunks", |r| {
        format!("{}/{}", r.evalset.ctx, r.evalset.chunks)
    }),
    ("--limit", |r| format!("{:?}", r.limit)),
    ("--seed", |r| r.seed.to_string()),
    ("--prompts", prompts_key),
    ("mode (run or bench)", |r| format!("{:?}", r.mode)),
    ("--reference", |r| r.reference.clone()),
    ("device/threads", |r| {
        format!("{} x{}", r.device.kind, r.device.threads)
    }),
    ("scoring mode", |r| r.scoring_mode.clone()),
];

/// Refuse to resume into an --out whose results measured something else. `now` is the new
/// run's results before any level; the benchmark's lengths come from the plan.
pub fn check_resumable(prev: &Results, now: &Results, plan: &Plan, path: &Path) -> Result<()> {
    let mut diffs: Vec<String> = SAME_MEASUREMENT
        .iter()
        .filter_map(|(what, key)| {
            let (a, b) = (key(prev), key(now));
            (a != b).then(|| format!("{what}: {a} there, {b} now"))
        })
        .collect();
    if let Some(l) = prev.levels.first() {
        let (a, b) = (
            format!("pp{} tg{}", l.prefill_tokens, l.decode_tokens),
            format!("pp{} tg{}", plan.bench.prompt_tokens, plan.bench.gen_tokens),
        );
        if a != b {
            diffs.push(format!("benchmark tokens: {a} there, {b} now"));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "{} holds results of a different measurement, so this run cannot resume it ({}); give another --out, or delete that folder to start over",
        path.display(),
        diffs.join("; ")
    )))
}

/// The prompts a run answered, as compared for resuming.
fn prompts_key(r: &Results) -> String {
    r.prompts
        .as_ref()
        .map(|p| {
            format!(
                "{} ({} prompts, template {})",
                p.path,
                p.n_prompts,
                p.template_sha256
                    .as_deref()
                    .map(|h| &h[..h.len().min(12)])
                    .unwrap_or("none")
            )
        })
        .unwrap_or_else(|| "none".into())
}
