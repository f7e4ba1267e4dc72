//! PIQA validation (1,838 items), as lm-eval's `piqa`: owns its pin, its jsonl + labels files
//! and the record (`goal`, two solutions, `gold`). It must not touch other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::{get_int, get_str, index};
use crate::evalset::standard::offline::{jsonl, labels, same_count, str_field, Reader};
use crate::evalset::standard::{record, Record};
use anyhow::Result;
use serde_json::json;

const FILE: &str = "piqa/valid.jsonl";
const LABELS: &str = "piqa/valid-labels.lst";

pub struct Piqa;

/// Its eval set definition (what `--evalset piqa` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# PIQA validation (1,838 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (baber/piqa, pinned). Same prompt as lm-evaluation-harness's `piqa` task.
name = "piqa"
version = "1.0.0"
description = "PIQA (Bisk et al. 2020) validation: physical commonsense, 2 solutions."

[[task]]
name = "piqa"
kind = "choice"
source = "piqa"
context = "Question: {goal}\nAnswer:"
choices = "choices"
continuation = " {choice}"
answer = "gold"
metrics = ["acc", "acc_norm"]
note = "Zero-shot, as lm-eval's default; same prompt and choices."
"#;

impl StandardSet for Piqa {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "piqa"
    }

    fn fields(&self) -> &'static str {
        "`goal`, `sol1`, `sol2`, `choices`, `label` = `gold`"
    }

    // baber/piqa: the parquet copy of ybisk/piqa that lm-eval's `piqa` task reads now
    // (validation, 1,838 rows). sha256 from one public project only.
    fn pin(&self) -> Pin {
        Pin {
            repo: "baber/piqa",
            revision: "142f6d7367fd9877f0fb3b5734ea6a545f54cdd1",
            file: "piqa_validation.parquet",
            sha256: Some("2b17ee1215b1ceb2ddabf4c90a05c5a8b833bef9d207960f57d111c43a2080f3"),
            bytes: None,
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[FILE, LABELS]
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |row, r| {
            let label = index(get_int(r, "label")?, 2, "label")?;
            Ok(piqa_record(
                row,
                get_str(r, "goal")?,
                get_str(r, "sol1")?,
                get_str(r, "sol2")?,
                label,
            ))
        })
    }

    /// `valid.jsonl` (`goal`, `sol1`, `sol2`) and `valid-labels.lst` (0/1 per line).
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let (path, text) = rd.read(FILE)?;
        let (labels_path, labels_text) = rd.read(LABELS)?;
        let rows = jsonl(&path, &text)?;
        let gold = labels(&labels_path, &labels_text, &[0, 1])?;
        same_count(&path, rows.len(), &labels_path, gold.len())?;
        rows.into_iter()
            .zip(gold)
            .enumerate()
            .map(|(row, ((line, r), label))| {
                Ok(piqa_record(
                    row,
                    str_field(&path, line, &r, "goal")?,
                    str_field(&path, line, &r, "sol1")?,
                    str_field(&path, line, &r, "sol2")?,
                    label,
                ))
            })
            .collect()
    }
}

fn piqa_record(row: usize, goal: &str, sol1: &str, sol2: &str, label: usize) -> Record {
    record(vec![
        ("id", json!(format!("piqa/{row}"))),
        ("goal", json!(goal)),
        ("sol1", json!(sol1)),
        ("sol2", json!(sol2)),
        ("choices", json!([sol1, sol2])),
        ("label", json!(label)),
        ("gold", json!(label)),
    ])
}
