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
    check_resumable(&prev, results, &out.results)?;
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
    if ref_kept && others_left && !reference_inputs_kept(prep, &graded) {
        // The reference's log-probabilities are gone: measure it again (same numbers).
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

/// Refuse to resume into an --out whose results measured something else.
pub fn check_resumable(prev: &Results, now: &Results, path: &Path) -> Result<()> {
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: {a} there, {b} now"));
        }
    };
    let hashes = |r: &Results| {
        r.model
            .files
            .iter()
            .map(|f| format!("{}={}", f.name, &f.sha256[..f.sha256.len().min(12)]))
            .collect::<Vec<_>>()
            .join(",")
    };
    cmp("model files", hashes(prev), hashes(now));
    cmp(
        "model revision",
        format!("{:?}", prev.model.revision),
        format!("{:?}", now.model.revision),
    );
    cmp(
        "eval set",
        format!("{} {}", prev.evalset.name, prev.evalset.version),
        format!("{} {}", now.evalset.name, now.evalset.version),
    );
    cmp(
        "--ctx/--chunks",
        format!("{}/{}", prev.evalset.ctx, prev.evalset.chunks),
        format!("{}/{}", now.evalset.ctx, now.evalset.chunks),
    );
    cmp(
        "--limit",
        format!("{:?}", prev.limit),
        format!("{:?}", now.limit),
    );
    cmp("--seed", prev.seed.to_string(), now.seed.to_string());
    cmp("--prompts", prompts_key(prev), prompts_key(now));
    cmp(
        "mode (run or bench)",
        format!("{:?}", prev.mode),
        format!("{:?}", now.mode),
    );
    cmp("--reference", prev.reference.clone(), now.reference.clone());
    cmp(
        "device/threads",
        format!("{} x{}", prev.device.kind, prev.device.threads),
        format!("{} x{}", now.device.kind, now.device.threads),
    );
    cmp(
        "scoring mode",
        prev.scoring_mode.clone(),
        now.scoring_mode.clone(),
    );
    if let (Some(a), Some(b)) = (prev.levels.first(), now.levels.first()) {
        cmp(
            "benchmark tokens",
            format!("pp{} tg{}", a.prefill_tokens, a.decode_tokens),
            format!("pp{} tg{}", b.prefill_tokens, b.decode_tokens),
        );
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
