//! BoolQ validation (3,270 items), as lm-eval's `boolq` (SuperGLUE): owns its pin (no published
//! sha256: the first download's is recorded), its jsonl file and the record (`passage`,
//! `question`, yes/no `gold`). It must not touch other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::{get, get_int, get_str, index};
use crate::evalset::standard::offline::{at, field, jsonl, str_field, Reader};
use crate::evalset::standard::{record, Record};
use anyhow::Result;
use serde_json::{json, Value};

const FILE: &str = "boolq/val.jsonl";

pub struct Boolq;

/// Its eval set definition (what `--evalset boolq` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# BoolQ validation (3,270 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (aps/super_glue `boolq`, pinned). Same prompt as lm-evaluation-harness's `boolq` task.
name = "boolq"
version = "1.0.0"
description = "BoolQ (Clark et al. 2019) validation, SuperGLUE packaging: yes/no questions about a passage."

[[task]]
name = "boolq"
kind = "choice"
source = "boolq"
context = "{passage}\nQuestion: {question}?\nAnswer:"
choices = "choices"
continuation = " {choice}"
answer = "gold"
metrics = ["acc"]
note = "Zero-shot, as lm-eval's default; same prompt and the choices ' no' / ' yes'."
"#;

impl StandardSet for Boolq {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "boolq"
    }

    fn fields(&self) -> &'static str {
        "`passage`, `question`, `idx`, `label` (0 = false, 1 = true) = `gold`, `choices` \
         (`[\"no\",\"yes\"]`)"
    }

    // aps/super_glue (lm-eval's `super_glue`), config `boolq`, validation split (3,270 rows).
    // No published sha256 found: recorded on first download (see `crate::fetch::hub::pinned`).
    fn pin(&self) -> Pin {
        Pin {
            repo: "aps/super_glue",
            revision: "3de24cf8022e94f4ee4b9d55a6f539891524d646",
            file: "boolq/validation-00000-of-00001.parquet",
            sha256: None,
            bytes: None,
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[FILE]
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |row, r| {
            let label = match get(r, "label")? {
                Value::Bool(b) => *b,
                _ => index(get_int(r, "label")?, 2, "label")? == 1,
            };
            let idx = match r.get("idx") {
                Some(_) => get_int(r, "idx")?,
                None => row as i64,
            };
            Ok(boolq_record(
                idx,
                get_str(r, "question")?,
                get_str(r, "passage")?,
                label,
            ))
        })
    }

    /// SuperGLUE `val.jsonl`: `question`, `passage`, `idx`, `label` (true/false, as a JSON
    /// boolean or the string "true"/"false").
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let (path, text) = rd.read(FILE)?;
        jsonl(&path, &text)?
            .into_iter()
            .enumerate()
            .map(|(row, (line, r))| {
                let label = match field(&path, line, &r, "label")? {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" => true,
                    Value::String(s) if s == "false" => false,
                    other => {
                        return Err(at(
                            &path,
                            line,
                            format!("`label` must be true or false, found {other}"),
                        ))
                    }
                };
                let idx = match r.get("idx") {
                    Some(v) => v
                        .as_i64()
                        .ok_or_else(|| at(&path, line, "`idx` must be an integer"))?,
                    None => row as i64,
                };
                Ok(boolq_record(
                    idx,
                    str_field(&path, line, &r, "question")?,
                    str_field(&path, line, &r, "passage")?,
                    label,
                ))
            })
            .collect()
    }
}

fn boolq_record(idx: i64, question: &str, passage: &str, label: bool) -> Record {
    let label = usize::from(label);
    record(vec![
        ("id", json!(format!("boolq/{idx}"))),
        ("question", json!(question)),
        ("passage", json!(passage)),
        ("idx", json!(idx)),
        ("label", json!(label)),
        ("gold", json!(label)),
        ("choices", json!(["no", "yes"])),
    ])
}
