//! ARC-Easy and ARC-Challenge test splits (2,376 / 1,172 items), as lm-eval's `arc_easy` /
//! `arc_challenge`: owns both sets' pins, their AI2 jsonl files and the record (question,
//! choice texts and labels, gold from `answerKey`). It must not touch other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::{get, get_str, get_strs};
use crate::evalset::standard::offline::{at, field, jsonl, str_field, Reader};
use crate::evalset::standard::{record, strings, Record};
use anyhow::Result;
use serde_json::json;

/// One of the two ARC sets; they differ only in name, pin and file.
pub struct Arc {
    name: &'static str,
    /// The test split's file under the data dir.
    file: &'static [&'static str; 1],
    pin: Pin,
    /// Its eval set definition (tasks, lm-eval's prompt as templates, metrics), evalset.toml.
    definition: &'static str,
}

// allenai/ai2_arc test splits (2,376 / 1,172 rows); sha256 agree across independent projects.
pub const ARC_EASY: Arc = Arc {
    name: "arc-easy",
    file: &["arc/ARC-Easy-Test.jsonl"],
    definition: r#"# ARC-Easy test (2,376 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (allenai/ai2_arc, pinned). Same prompt as lm-evaluation-harness's `arc_easy` task.
name = "arc-easy"
version = "1.0.0"
description = "AI2 Reasoning Challenge, Easy set, test split: grade-school science questions, 3-5 choices (Clark et al. 2018)."

[[task]]
name = "arc-easy"
kind = "choice"
source = "arc-easy"
context = "Question: {question}\nAnswer:"
choices = "choices"
continuation = " {choice}"
answer = "gold"
metrics = ["acc", "acc_norm"]
note = "Zero-shot, as lm-eval's default; same prompt and choices."
"#,
    pin: Pin {
        repo: "allenai/ai2_arc",
        revision: "210d026faf9955653af8916fad021475a3f00453",
        file: "ARC-Easy/test-00000-of-00001.parquet",
        sha256: Some("4160597d618ae851c7eb04e281574f3f654776216ac6b6641588d64527b47177"),
        bytes: None,
    },
};

pub const ARC_CHALLENGE: Arc = Arc {
    name: "arc-challenge",
    file: &["arc/ARC-Challenge-Test.jsonl"],
    definition: r#"# ARC-Challenge test (1,172 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (allenai/ai2_arc, pinned). Same prompt as lm-evaluation-harness's `arc_challenge` task.
name = "arc-challenge"
version = "1.0.0"
description = "AI2 Reasoning Challenge, Challenge set, test split: grade-school science questions, 3-5 choices (Clark et al. 2018)."

[[task]]
name = "arc-challenge"
kind = "choice"
source = "arc-challenge"
context = "Question: {question}\nAnswer:"
choices = "choices"
continuation = " {choice}"
answer = "gold"
metrics = ["acc", "acc_norm"]
note = "Zero-shot, as lm-eval's default; same prompt and choices."
"#,
    pin: Pin {
        repo: "allenai/ai2_arc",
        revision: "210d026faf9955653af8916fad021475a3f00453",
        file: "ARC-Challenge/test-00000-of-00001.parquet",
        sha256: Some("62f03257e737aed263f55c6abf87c7bb0028a44a6bdd2a26eb1279eb42c1d1e9"),
        bytes: None,
    },
};

impl StandardSet for Arc {
    fn definition(&self) -> &'static str {
        self.definition
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn fields(&self) -> &'static str {
        "`question`, `choices` (texts), `labels`, `answerKey`, `gold`"
    }

    fn pin(&self) -> Pin {
        self.pin
    }

    fn offline_files(&self) -> &'static [&'static str] {
        self.file
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |_, r| {
            let choices = get(r, "choices")?;
            let texts = get_strs(
                choices.get("text").ok_or("`choices` has no `text`")?,
                "choices.text",
            )?;
            let labels = get_strs(
                choices.get("label").ok_or("`choices` has no `label`")?,
                "choices.label",
            )?;
            if texts.len() != labels.len() {
                return Err("`choices.text` and `choices.label` differ in length".into());
            }
            arc_record(
                self.name,
                get_str(r, "id")?,
                get_str(r, "question")?,
                texts,
                labels,
                get_str(r, "answerKey")?,
            )
        })
    }

    /// AI2 jsonl: `id`, `question.stem`, `question.choices[{text,label}]`, `answerKey`.
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let (path, text) = rd.read(self.file[0])?;
        let mut out = Vec::new();
        for (line, r) in jsonl(&path, &text)? {
            let q = field(&path, line, &r, "question")?
                .as_object()
                .ok_or_else(|| {
                    at(
                        &path,
                        line,
                        "`question` must be an object with `stem` and `choices`",
                    )
                })?;
            let stem = str_field(&path, line, q, "stem")?;
            let choices = field(&path, line, q, "choices")?
                .as_array()
                .ok_or_else(|| at(&path, line, "`question.choices` must be a list"))?;
            let mut texts = Vec::new();
            let mut labels = Vec::new();
            for c in choices {
                let c = c.as_object().ok_or_else(|| {
                    at(&path, line, "each choice must be an object {text, label}")
                })?;
                texts.push(str_field(&path, line, c, "text")?.to_string());
                labels.push(str_field(&path, line, c, "label")?.to_string());
            }
            let id = str_field(&path, line, &r, "id")?;
            let key = str_field(&path, line, &r, "answerKey")?;
            out.push(
                arc_record(self.name, id, stem, texts, labels, key)
                    .map_err(|e| at(&path, line, e))?,
            );
        }
        Ok(out)
    }
}

fn arc_record(
    set: &str,
    id: &str,
    question: &str,
    texts: Vec<String>,
    labels: Vec<String>,
    answer_key: &str,
) -> std::result::Result<Record, String> {
    let gold = labels.iter().position(|l| l == answer_key).ok_or_else(|| {
        format!(
            "answerKey '{answer_key}' is not one of the choice labels [{}]",
            labels.join(", ")
        )
    })?;
    Ok(record(vec![
        ("id", json!(format!("{set}/{id}"))),
        ("question", json!(question)),
        ("choices", strings(&texts)),
        ("labels", strings(&labels)),
        ("answerKey", json!(answer_key)),
        ("gold", json!(gold)),
    ]))
}
