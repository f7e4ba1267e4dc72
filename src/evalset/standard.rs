//! Standard benchmark sets by name (`--evalset hellaswag | arc-easy | ... | wikitext2`): owns the
//! catalogue API (names, loading records or text with their [`Provenance`]) and the choice of
//! source — files in their original distribution format under `--data-dir` ([`offline`]) or the
//! set's pinned Hugging Face datasets repo ([`hub_data`]). Each set itself — its pin, its files,
//! its record shape — lives in one file under [`sets`], listed once in [`SETS`]; this module
//! must not know any one set's format.
//!
//! Every record has an `id` and the fields its definition's templates use
//! ([`StandardSet::fields`]); the derived fields (`query`, `choices`, `gold`, `prefix`,
//! `suffix`, `A`..`D`, ...) are computed by the set so that a plain template reproduces
//! lm-evaluation-harness's prompt for the same task.
//!
//! Ids are `<set>/<native id>` where the data has one (ARC, BoolQ's `idx`), else `<set>/<row>`
//! (0-based, in the distribution's order; MMLU `mmlu/<subject>/<row>`), and are the same for
//! the offline and Hub copies of a set, so per-item answers can be compared across sources.

mod columns;
pub mod hub_data;
mod offline;
mod parquet_rows;
pub mod sets;

pub use sets::{gsm8k_target, hellaswag_preprocess, StandardSet, MMLU_SUBJECTS, SETS};

use crate::error::usage;
use anyhow::Result;
use serde_json::Value;
use std::path::Path;

/// One item: a JSON object whose fields templates substitute by name.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// The names `--evalset` accepts for standard sets:
/// hellaswag, arc-easy, arc-challenge, mmlu, gsm8k, winogrande, piqa, boolq, truthfulqa-mc1, wikitext2
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// [`SETS`]' names, in order.
static NAMES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| SETS.iter().map(|s| s.name()).collect());

/// Whether `name` is one of [`names`].
pub fn is_standard(name: &str) -> bool {
    sets::find(name).is_some()
}

/// Where to read from: a data dir laid out like `../shared/evaldata` (offline), or the Hub.
pub enum DataSource<'a> {
    DataDir(&'a Path),
    Hub(&'a crate::fetch::hub::HubConfig),
}

/// Where a standard set's data came from, for results.json and reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// `"data-dir"` or `"hub"`.
    pub source: String,
    /// The data dir (offline) or the Hub endpoint.
    pub location: String,
    /// Hub datasets repo, the pinned revision and the commit it resolved to (Hub only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Every file read, with its sha256.
    pub files: Vec<FileDigest>,
}

/// One file read for a standard set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDigest {
    /// Path relative to the data dir, or inside the Hub repo.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Whether the sha256 was checked against a pin (Hub files with a known pin).
    pub verified: bool,
}

/// The items of a standard choice/generate set, in the file's order, each with an "id" field and
/// the fields its evalset.toml templates use.
pub fn load_records(name: &str, from: &DataSource) -> Result<Vec<Record>> {
    Ok(load_records_with_provenance(name, from)?.0)
}

/// [`load_records`], plus where the items came from.
pub fn load_records_with_provenance(
    name: &str,
    from: &DataSource,
) -> Result<(Vec<Record>, Provenance)> {
    let set = check_name(name)?;
    if set.is_text() {
        return Err(usage(format!(
            "standard set '{name}' is a text set (perplexity); it has no items (use it as a text task)",
        )));
    }
    match from {
        DataSource::DataDir(dir) => offline::load_records(set, dir),
        DataSource::Hub(cfg) => hub_data::load_records(name, cfg),
    }
}

/// The text of a standard text set (wikitext2: the raw test split, as llama-perplexity reads
/// wiki.test.raw).
pub fn load_text(name: &str, from: &DataSource) -> Result<String> {
    Ok(load_text_with_provenance(name, from)?.0)
}

/// [`load_text`], plus where the text came from.
pub fn load_text_with_provenance(name: &str, from: &DataSource) -> Result<(String, Provenance)> {
    let set = check_name(name)?;
    if !set.is_text() {
        return Err(usage(format!(
            "standard set '{name}' has items, not a text; the text set is 'wikitext2'"
        )));
    }
    match from {
        DataSource::DataDir(dir) => offline::load_text(set, dir),
        DataSource::Hub(cfg) => hub_data::load_text(name, cfg),
    }
}

fn check_name(name: &str) -> Result<&'static dyn StandardSet> {
    sets::find(name).ok_or_else(|| {
        usage(format!(
            "'{name}' is not a standard eval set; standard sets: {}",
            names().join(", ")
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Record shapes, shared by the offline readers and the Hub reader.

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn record(pairs: Vec<(&str, Value)>) -> Record {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_documented_ten() {
        assert_eq!(names().len(), 10);
        assert!(is_standard("hellaswag") && is_standard("wikitext2"));
        assert!(!is_standard("default") && !is_standard("HellaSwag"));
        assert_eq!(MMLU_SUBJECTS.len(), 57);
        let mut sorted = MMLU_SUBJECTS.to_vec();
        sorted.sort();
        assert_eq!(sorted, MMLU_SUBJECTS);
    }
}
