//! WinoGrande dev (`winogrande_xl` validation, 1,267 items), as lm-eval's `winogrande` (partial
//! scoring): owns its pin (no published sha256: the first download's is recorded), its files
//! (the original `dev.jsonl` or llm-foundry's partial-scoring jsonl, with `dev-labels.lst`) and
//! the split of the sentence at its blank into `prefix`, `options`, `suffix`. It must not touch
//! other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::{get_int, get_str};
use crate::evalset::standard::offline::{
    at, field, jsonl, labels, same_count, str_field, str_list, Reader,
};
use crate::evalset::standard::{record, strings, Record};
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

const ORIGINAL: &str = "winogrande/dev.jsonl";
const LLMFOUNDRY: &str = "winogrande/winogrande_dev_llmfoundry.jsonl";
const LABELS: &str = "winogrande/dev-labels.lst";

pub struct Winogrande;

/// Its eval set definition (what `--evalset winogrande` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# WinoGrande dev (1,267 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (allenai/winogrande `winogrande_xl`, pinned). lm-evaluation-harness's partial evaluation.
name = "winogrande"
version = "1.0.0"
description = "WinoGrande v1.1 dev/validation (Sakaguchi et al. 2019): fill-in-the-blank pronoun resolution, 2 options."

[[task]]
name = "winogrande"
kind = "choice"
source = "winogrande"
context = "{prefix}{choice}"
choices = "options"
continuation = " {suffix}"
answer = "gold"
metrics = ["acc"]
note = "Partial scoring as lm-eval: the context differs per option (sentence up to the blank, then the option) and the shared rest of the sentence is scored. With --data-dir and llm-foundry's reformatted file the prefix/option boundary is recovered from the two partial contexts; the scored texts are identical."
"#;

impl StandardSet for Winogrande {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "winogrande"
    }

    fn fields(&self) -> &'static str {
        "`prefix` (sentence up to the blank), `options`, `suffix` (after the blank, trimmed), \
         `gold`; from the Hub also `sentence`, `option1`, `option2`, `answer`"
    }

    // allenai/winogrande, config `winogrande_xl`, validation split (1,267 rows) — as lm-eval.
    // No published sha256 found: recorded on first download (see `crate::fetch::hub::pinned`).
    fn pin(&self) -> Pin {
        Pin {
            repo: "allenai/winogrande",
            revision: "01e74176c63542e6b0bcb004dcdea22d94fb67b5",
            file: "winogrande_xl/validation-00000-of-00001.parquet",
            sha256: None,
            bytes: None,
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[ORIGINAL, LLMFOUNDRY, LABELS]
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |row, r| {
            from_sentence(
                row,
                get_str(r, "sentence")?,
                get_str(r, "option1")?,
                get_str(r, "option2")?,
                &get_int(r, "answer")?.to_string(),
            )
        })
    }

    /// The original `dev.jsonl` (`sentence`, `option1`, `option2`, `answer`) when present, else
    /// llm-foundry's partial-scoring jsonl (`context_options`, `continuation`, `gold`);
    /// `dev-labels.lst` (1/2 per line) must agree with either.
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let (labels_path, labels_text) = rd.read(LABELS)?;
        let gold_labels = labels(&labels_path, &labels_text, &[1, 2])?;
        let original = rd.exists(ORIGINAL);
        let rel = if original { ORIGINAL } else { LLMFOUNDRY };
        let (path, text) = rd.read(rel)?;
        let rows = jsonl(&path, &text)?;
        same_count(&path, rows.len(), &labels_path, gold_labels.len())?;
        let mut out = Vec::with_capacity(rows.len());
        for (row, ((line, r), label)) in rows.into_iter().zip(gold_labels).enumerate() {
            let rec = if original {
                original_row(&path, line, row, &r)?
            } else {
                llmfoundry_row(&path, line, row, &r)?
            };
            if rec["gold"] != label - 1 {
                return Err(at(
                    &labels_path,
                    row + 1,
                    format!(
                        "label {label} disagrees with {}:{line} (answer {})",
                        path.display(),
                        rec["gold"].as_u64().unwrap_or(0) + 1
                    ),
                ));
            }
            out.push(rec);
        }
        Ok(out)
    }
}

/// One line of the original `dev.jsonl`.
fn original_row(path: &Path, line: usize, row: usize, r: &Record) -> Result<Record> {
    let answer = match field(path, line, r, "answer")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(at(path, line, "`answer` must be \"1\" or \"2\"")),
    };
    from_sentence(
        row,
        str_field(path, line, r, "sentence")?,
        str_field(path, line, r, "option1")?,
        str_field(path, line, r, "option2")?,
        &answer,
    )
    .map_err(|e| at(path, line, e))
}

/// One line of llm-foundry's partial-scoring jsonl.
fn llmfoundry_row(path: &Path, line: usize, row: usize, r: &Record) -> Result<Record> {
    let ctx = str_list(
        path,
        line,
        field(path, line, r, "context_options")?,
        "context_options",
    )?;
    if ctx.len() != 2 {
        return Err(at(path, line, "`context_options` must hold 2 strings"));
    }
    let gold = field(path, line, r, "gold")?
        .as_u64()
        .filter(|g| *g < 2)
        .ok_or_else(|| at(path, line, "`gold` must be 0 or 1"))? as usize;
    let (prefix, options) = split_partial_contexts(&ctx[0], &ctx[1]);
    Ok(winogrande_record(
        row,
        &prefix,
        options,
        str_field(path, line, r, "continuation")?.trim(),
        gold,
    ))
}

/// WinoGrande from the original form (`sentence` with one `_`, two options, answer "1"/"2"),
/// split the way lm-eval's `partial_context` / `partial_target` do.
fn from_sentence(
    row: usize,
    sentence: &str,
    option1: &str,
    option2: &str,
    answer: &str,
) -> std::result::Result<Record, String> {
    let blank = sentence
        .find('_')
        .ok_or_else(|| "sentence has no blank '_'".to_string())?;
    let gold = match answer.trim() {
        "1" => 0,
        "2" => 1,
        other => return Err(format!("answer '{other}' is not \"1\" or \"2\"")),
    };
    let mut r = winogrande_record(
        row,
        &sentence[..blank],
        [option1.to_string(), option2.to_string()],
        sentence[blank + 1..].trim(),
        gold,
    );
    r.insert("sentence".into(), json!(sentence));
    r.insert("option1".into(), json!(option1));
    r.insert("option2".into(), json!(option2));
    r.insert("answer".into(), json!(answer));
    Ok(r)
}

fn winogrande_record(
    row: usize,
    prefix: &str,
    options: [String; 2],
    suffix: &str,
    gold: usize,
) -> Record {
    record(vec![
        ("id", json!(format!("winogrande/{row}"))),
        ("prefix", json!(prefix)),
        ("options", strings(&options)),
        ("suffix", json!(suffix)),
        ("gold", json!(gold)),
    ])
}

/// Split two partial contexts `prefix + option_i` (llm-foundry's `context_options`) into the
/// shared prefix and the options: the longest common prefix, cut back to just after its last
/// whitespace so an option is never split inside a word (`... under the sofa` / `... under the
/// stove` give `... under the ` and `sofa` / `stove`, as in the original). Options that share a
/// leading word (`the cat` / `the dog`) lose it to the prefix: the boundary can then differ from
/// the original's, the partial contexts never do.
fn split_partial_contexts(a: &str, b: &str) -> (String, [String; 2]) {
    let mut common = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            break;
        }
        common = i + ca.len_utf8();
    }
    let cut = a[..common]
        .rfind(char::is_whitespace)
        .map(|i| i + a[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(0);
    (
        a[..cut].to_string(),
        [a[cut..].to_string(), b[cut..].to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winogrande_split_agrees_between_forms() {
        let s = from_sentence(
            0,
            "Priya is a much faster runner than Elena, so _ usually finishes the race last.",
            "Priya",
            "Elena",
            "2",
        )
        .unwrap();
        assert_eq!(s["prefix"], "Priya is a much faster runner than Elena, so ");
        assert_eq!(s["suffix"], "usually finishes the race last.");
        assert_eq!(s["gold"], 1);
        let (prefix, options) = split_partial_contexts(
            "Priya is a much faster runner than Elena, so Priya",
            "Priya is a much faster runner than Elena, so Elena",
        );
        assert_eq!(prefix, s["prefix"]);
        assert_eq!(options, ["Priya", "Elena"]);
        let (prefix, options) = split_partial_contexts("I fed the cat", "I fed the dog");
        assert_eq!(
            (prefix.as_str(), &options[0][..], &options[1][..]),
            ("I fed the ", "cat", "dog")
        );
        let (prefix, options) = split_partial_contexts("under the sofa", "under the stove");
        assert_eq!(
            (prefix.as_str(), &options[0][..], &options[1][..]),
            ("under the ", "sofa", "stove")
        );
        let (prefix, options) = split_partial_contexts("John", "James");
        assert_eq!((prefix.as_str(), &options[0][..]), ("", "John"));
    }
}
