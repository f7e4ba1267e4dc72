//! The standard benchmarks, one file each: owns the [`StandardSet`] trait and [`SETS`], the one
//! list of them. A set's file holds everything about it — its name, the fields its records
//! carry, its eval set definition (tasks and templates that reproduce lm-eval's prompt), its Hub
//! pin, the files of its original distribution under `--data-dir`, how one Hub row becomes one
//! item and how the distribution files become items. Adding a set is one file here plus its
//! line in [`SETS`] (and the file's `mod` line). This module must not
//! fetch or open files itself: the shared readers (`super::offline`, `super::columns`,
//! [`crate::fetch::hub`]) do that.

mod arc;
mod boolq;
mod gsm8k;
mod hellaswag;
mod mmlu;
mod piqa;
mod truthfulqa;
mod wikitext2;
mod winogrande;

pub use gsm8k::gsm8k_target;
pub use hellaswag::hellaswag_preprocess;
pub use mmlu::MMLU_SUBJECTS;

use super::offline::Reader;
use super::Record;
use crate::fetch::hub::HubPin;
use anyhow::Result;

/// Every standard set, in the order `--evalset` lists them.
pub const SETS: &[&dyn StandardSet] = &[
    &hellaswag::Hellaswag,
    &arc::ARC_EASY,
    &arc::ARC_CHALLENGE,
    &mmlu::Mmlu,
    &gsm8k::Gsm8k,
    &winogrande::Winogrande,
    &piqa::Piqa,
    &boolq::Boolq,
    &truthfulqa::TruthfulqaMc1,
    &wikitext2::Wikitext2,
];

/// The set called `name`.
pub fn find(name: &str) -> Option<&'static dyn StandardSet> {
    SETS.iter().copied().find(|s| s.name() == name)
}

/// Where a set's file lives on the Hub, as written in its file (see [`HubPin`]).
#[derive(Debug, Clone, Copy)]
pub struct Pin {
    /// Datasets repo, `org/name`.
    pub repo: &'static str,
    /// A commit of that repo.
    pub revision: &'static str,
    /// The parquet file inside the repo.
    pub file: &'static str,
    /// Its published sha256; `None` when none could be found (the first download's digest is
    /// then recorded next to the cached file and later uses are checked against it).
    pub sha256: Option<&'static str>,
    /// Its size in bytes, when known.
    pub bytes: Option<u64>,
}

impl Pin {
    pub fn to_hub_pin(self) -> HubPin {
        HubPin {
            repo: self.repo.into(),
            revision: self.revision.into(),
            file: self.file.into(),
            sha256: self.sha256.map(str::to_string),
            bytes: self.bytes,
        }
    }
}

/// One standard benchmark. Item sets implement [`StandardSet::hub_items`] and
/// [`StandardSet::offline_items`]; the text set (wikitext2) implements the `_text` pair and
/// says so with [`StandardSet::is_text`].
pub trait StandardSet {
    /// The name `--evalset` accepts and the `source` of its evalset.toml tasks.
    fn name(&self) -> &'static str;
    /// The fields its records have besides `id` — what its templates may use to reproduce
    /// lm-eval's prompt (see the table in [`super`]).
    fn fields(&self) -> &'static str;
    /// Its pinned file on the Hub.
    fn pin(&self) -> Pin;
    /// Its eval set definition in the evalset.toml format: the tasks, lm-eval's prompt format
    /// as templates over [`StandardSet::fields`], metrics and notes (what `--evalset NAME`
    /// runs when no `evalsets/NAME` folder overrides it).
    fn definition(&self) -> &'static str;
    /// The files of its original distribution it reads, relative to `--data-dir` (alternatives
    /// included).
    fn offline_files(&self) -> &'static [&'static str];
    /// A text set (perplexity) rather than a set of items.
    fn is_text(&self) -> bool {
        false
    }
    /// The items from the rows of its Hub parquet file, in order.
    fn hub_items(&self, _rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        Err(format!(
            "no Hub column mapping for standard set '{}'",
            self.name()
        ))
    }
    /// The items from its distribution files under the data dir.
    fn offline_items(&self, _rd: &mut Reader) -> Result<Vec<Record>> {
        anyhow::bail!("no offline reader for standard set '{}'", self.name())
    }
    /// The text from the rows of its Hub parquet file (text sets).
    fn hub_text(&self, _rows: &[Record]) -> std::result::Result<String, String> {
        Err(format!("standard set '{}' has no text", self.name()))
    }
    /// The text from its distribution file under the data dir (text sets).
    fn offline_text(&self, _rd: &mut Reader) -> Result<String> {
        anyhow::bail!("standard set '{}' has no text", self.name())
    }
}

/// Map each Hub row to an item with `f` (given the 0-based row); an error names the row, and a
/// file without rows is refused.
pub(super) fn each_row(
    rows: &[Record],
    mut f: impl FnMut(usize, &Record) -> std::result::Result<Record, String>,
) -> std::result::Result<Vec<Record>, String> {
    let mut out = Vec::with_capacity(rows.len());
    for (row, r) in rows.iter().enumerate() {
        out.push(f(row, r).map_err(|e| format!("row {row}: {e}"))?);
    }
    if out.is_empty() {
        return Err("the file has no rows".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_name_and_every_pin_at_a_commit() {
        let mut names: Vec<&str> = SETS.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SETS.len());
        for s in SETS {
            let pin = s.pin();
            assert_eq!(pin.revision.len(), 40, "{}", s.name());
            assert!(pin.sha256.is_none_or(|h| h.len() == 64), "{}", s.name());
            assert!(!s.offline_files().is_empty() && !s.fields().is_empty());
        }
        // The two sets without a published sha256 (the README says so).
        let unpinned: Vec<&str> = SETS
            .iter()
            .filter(|s| s.pin().sha256.is_none())
            .map(|s| s.name())
            .collect();
        assert_eq!(unpinned, ["winogrande", "boolq"]);
    }
}
