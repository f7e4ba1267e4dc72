//! A run's reference packs: checking that a run against `--reference-pack` measures what the
//! pack measured (model files, tokenizer, text, chunks, task items) and taking the reference's
//! graded items and results row from it; and, after the reference level of a run finishes,
//! writing its pack. The file format is `crate::refpack`; the records' numbers `eval::pack`.

use super::console::note;
use super::grade::Graded;
use super::prepare::Prepared;
use crate::error::usage;
use crate::plan::Plan;
use crate::refpack::{self, PackHeader};
use crate::results::Results;
use anyhow::Result;

/// With --reference-pack: refuse a run that does not match the pack, take the reference's
/// items into `graded`, say in `results` which pack the KLD comes from, and put the
/// reference's results into --out beside the levels' (once).
pub fn attach(
    plan: &Plan,
    prep: &Prepared,
    results: &mut Results,
    graded: &mut Graded,
) -> Result<()> {
    let (Some(path), Some(h)) = (&plan.pack.read, plan.pack.read_header()) else {
        return Ok(());
    };
    refpack::check_matches(
        path,
        h,
        &results.model,
        &prep.tokenizer_sha256,
        &prep.tokens,
        &prep.chunking,
    )?;
    check_tasks(path, h, prep)?;
    graded.set_reference(&h.items);
    let pref = refpack::pack_ref(path, h)?;
    results.reference = h.reference().to_string();
    results.reference_note = format!(
        "{} The levels of this file were measured against the reference pack {} (per scored token its top {} tokens exactly and as many drawn from the rest, {:.0} bytes a token): perplexity, top-1 agreement and Δp are exact; KLD sums the top tokens exactly and estimates the rest from the draws, unbiased, measured within 1% of the exact mean KLD (README: reference packs).",
        h.results.reference_note,
        path.display(),
        h.top_k,
        pref.bytes_per_token
    );
    results.kld_from_pack = Some(pref.clone());
    refpack::place_reference(&plan.out_dir, h, &pref)?;
    Ok(())
}

/// The pack's task items are the ones this run prepared (same items, same prompts, same order:
/// the same --limit, --seed and eval set).
fn check_tasks(path: &std::path::Path, h: &PackHeader, prep: &Prepared) -> Result<()> {
    for t in &prep.tasks {
        let pack: Vec<&str> = h
            .items
            .iter()
            .filter(|i| i.task == t.name)
            .map(|i| i.prompt.as_str())
            .collect();
        let here: Vec<&str> = t.prompts.iter().map(String::as_str).collect();
        if pack != here {
            return Err(usage(format!(
                "--reference-pack {}: task '{}' has {} items here and {} in the pack, or other ones; give the pack's --limit ({}) and --seed ({}), or --no-tasks",
                path.display(),
                t.name,
                here.len(),
                pack.len(),
                h.results
                    .limit
                    .map_or("none".to_string(), |l| l.to_string()),
                h.results.seed
            )));
        }
    }
    let here: Vec<&str> = prep.tasks.iter().map(|t| t.name.as_str()).collect();
    if let Some(missing) = h.items.iter().find(|i| !here.contains(&i.task.as_str())) {
        note(
            false,
            &format!(
                "note: the pack also holds task '{}', which this run does not measure",
                missing.task
            ),
        );
    }
    Ok(())
}

/// After the reference level finished: write its pack (header from the results as they stand,
/// with the reference's row only) and record it in `results`.
pub fn write(plan: &Plan, prep: &Prepared, results: &mut Results, graded: &Graded) -> Result<()> {
    let Some(path) = &plan.pack.write else {
        return Ok(());
    };
    if prep.chunking.n_chunks == 0 && prep.tasks.is_empty() {
        return Ok(());
    }
    let mut r = results.clone();
    r.levels.retain(|l| l.level == results.reference);
    r.pack_written = None;
    r.kld_from_pack = None;
    let header = PackHeader {
        format: refpack::FORMAT,
        top_k: plan.pack.top_k,
        vocab_size: prep.src.config.vocab_size,
        tokenizer_sha256: prep.tokenizer_sha256.clone(),
        tokens: prep.tokens.clone(),
        chunking: prep.chunking.clone(),
        items: graded.lines_of(&results.reference),
        results: r,
    };
    if prep.chunking.n_chunks == 0 {
        // Tasks only: no records.
        std::fs::File::create(&prep.pack_raw)?;
    }
    refpack::write(path, &header, &prep.pack_raw)?;
    let pref = refpack::pack_ref(path, &header)?;
    note(
        plan.quiet,
        &format!(
            "reference pack: {} ({}, top-{}, {:.0} bytes a scored token)",
            path.display(),
            crate::fmt::bytes(pref.bytes),
            pref.top_k,
            pref.bytes_per_token
        ),
    );
    results.pack_written = Some(pref);
    let _ = std::fs::remove_file(&prep.pack_raw);
    Ok(())
}

/// A run against a pack that failed before its levels ran (no CUDA on this node, a damaged
/// pack, a model that cannot be fetched): its results file still says so, one failed row per
/// level with the reason, so that the merged report of a sweep shows the failure.
pub fn record_failure(
    plan: &Plan,
    results_path: &std::path::Path,
    err: &anyhow::Error,
) -> Result<()> {
    let Some(h) = plan.pack.read_header() else {
        return Ok(());
    };
    // Levels an earlier run finished stay as they were.
    if Results::load(results_path).is_ok_and(|r| r.levels.iter().any(|l| l.is_ok())) {
        return Ok(());
    }
    let mut r = h.results.clone();
    r.command_line = plan.command_line.clone();
    r.status = crate::results::RunStatus::Incomplete;
    r.device.kind = plan.device;
    let facts = crate::measure::device::describe(plan.device);
    r.device.name = facts.name;
    r.device.driver = facts.driver;
    r.device.compute_capability = facts.compute_capability;
    r.device.memory_bytes = facts.memory_bytes;
    r.device.threads = plan.threads;
    r.pack_written = None;
    if let Some(path) = &plan.pack.read {
        r.kld_from_pack = refpack::pack_ref(path, h).ok();
    }
    r.levels = plan
        .levels
        .iter()
        .map(|lp| super::level::failed_level(lp, false, &format!("{err:#}"), plan))
        .collect();
    r.save(results_path)
}
