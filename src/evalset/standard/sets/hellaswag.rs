//! HellaSwag validation (10,042 items), as lm-eval's `hellaswag` task: owns its pin, its
//! distribution files (the original `hellaswag_val.jsonl`, or llama.cpp's 6-lines-per-task
//! text) and lm-eval's `preprocess` of the query and endings. It must not touch other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::{get, get_int, get_str, get_strs, index};
use crate::evalset::standard::offline::{at, field, jsonl, str_field, str_list, Reader};
use crate::evalset::standard::{record, strings, Record};
use anyhow::Result;
use serde_json::{json, Value};

/// Where its files are expected, relative to the data dir.
const TEXT: &str = "hellaswag/hellaswag_val_full.txt";
const JSONL: &str = "hellaswag/hellaswag_val.jsonl";

pub struct Hellaswag;

/// Its eval set definition (what `--evalset hellaswag` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# HellaSwag validation (10,042 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (Rowan/hellaswag, pinned). Same prompt as lm-evaluation-harness's `hellaswag` task.
name = "hellaswag"
version = "1.0.0"
description = "HellaSwag validation: commonsense sentence completion, 4 endings (Zellers et al. 2019)."

[[task]]
name = "hellaswag"
kind = "choice"
source = "hellaswag"
context = "{query}"
choices = "choices"
continuation = " {choice}"
answer = "gold"
metrics = ["acc", "acc_norm"]
note = "Zero-shot, as lm-eval's default. From the Hub, `query` is lm-eval's preprocessed `activity_label: ctx_a Ctx_b`. With --data-dir the data is llama.cpp's 6-lines-per-task text, which joins ctx_a and ctx_b without lm-eval's capitalisation of ctx_b ('... a frozen lake. he' where lm-eval has '... a frozen lake. He'); if hellaswag/hellaswag_val.jsonl (the original) is in the data dir it is used instead and the prompt is lm-eval's exactly."
"#;

impl StandardSet for Hellaswag {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "hellaswag"
    }

    fn fields(&self) -> &'static str {
        "`query` (preprocessed `activity_label: ctx_a Ctx_b`), `choices` (preprocessed endings), \
         `gold`; from the Hub or the original jsonl also `activity_label`, `ctx_a`, `ctx_b`, \
         `ind`, `source_id`, `split_type`"
    }

    // lm-eval's `hellaswag` task reads Rowan/hellaswag; validation split, 10,042 rows.
    // sha256 and size agree across several independent projects that pin this file.
    fn pin(&self) -> Pin {
        Pin {
            repo: "Rowan/hellaswag",
            revision: "218ec52e09a7e7462a5400043bb9a69a41d06b76",
            file: "data/validation-00000-of-00001.parquet",
            sha256: Some("899813071e1e95efafec90f856e1987d2150fa4d020fc005df6962c259f660cd"),
            bytes: Some(6_315_951),
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[JSONL, TEXT]
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |row, r| {
            let endings = get_strs(get(r, "endings")?, "endings")?;
            let label = index(get_int(r, "label")?, endings.len(), "label")?;
            Ok(from_doc(
                row,
                Doc {
                    ind: r.get("ind").and_then(Value::as_i64),
                    activity_label: get_str(r, "activity_label")?.to_string(),
                    ctx_a: get_str(r, "ctx_a")?.to_string(),
                    ctx_b: get_str(r, "ctx_b")?.to_string(),
                    endings,
                    label,
                    source_id: opt_str(r, "source_id"),
                    split_type: opt_str(r, "split_type"),
                },
            ))
        })
    }

    /// The original `hellaswag_val.jsonl` when present, else llama.cpp's text form: 6 lines
    /// per task (`<activity_label>: <ctx>`, the gold index 0-3, four endings).
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        if rd.exists(JSONL) {
            return from_jsonl(rd);
        }
        let (path, text) = rd.read(TEXT)?;
        let lines: Vec<&str> = text.lines().collect();
        // A trailing empty line is not a truncated task.
        let n = lines.len() - lines.iter().rev().take_while(|l| l.is_empty()).count();
        if !n.is_multiple_of(6) {
            let start = n - n % 6 + 1;
            return Err(at(
                &path,
                start,
                format!(
                    "truncated task: expected 6 lines per task (context, gold index, 4 endings) \
                     but the last task starting here has only {} line(s)",
                    n % 6
                ),
            ));
        }
        let mut out = Vec::with_capacity(n / 6);
        for (row, task) in lines[..n].chunks(6).enumerate() {
            let line = row * 6 + 1;
            let gold = match task[1].trim().parse::<usize>() {
                Ok(g) if g < 4 => g,
                _ => {
                    return Err(at(
                        &path,
                        line + 1,
                        format!("gold label '{}' is not 0, 1, 2 or 3", task[1].trim()),
                    ))
                }
            };
            if task[0].trim().is_empty() {
                return Err(at(&path, line, "empty context line"));
            }
            let endings: Vec<String> = task[2..].iter().map(|s| s.to_string()).collect();
            out.push(from_query(row, task[0], &endings, gold));
        }
        Ok(out)
    }
}

fn opt_str(r: &Record, key: &str) -> Option<String> {
    r.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The original HellaSwag jsonl (`ind`, `activity_label`, `ctx_a`, `ctx_b`, `endings`, `label`).
fn from_jsonl(rd: &mut Reader) -> Result<Vec<Record>> {
    let (path, text) = rd.read(JSONL)?;
    let mut out = Vec::new();
    for (row, (line, r)) in jsonl(&path, &text)?.into_iter().enumerate() {
        let endings = str_list(&path, line, field(&path, line, &r, "endings")?, "endings")?;
        let label = field(&path, line, &r, "label")?;
        let label = label
            .as_u64()
            .or_else(|| label.as_str().and_then(|s| s.parse().ok()))
            .filter(|l| (*l as usize) < endings.len())
            .ok_or_else(|| at(&path, line, "`label` must be an index into `endings`"))?;
        out.push(from_doc(
            row,
            Doc {
                ind: r.get("ind").and_then(Value::as_i64),
                activity_label: str_field(&path, line, &r, "activity_label")?.to_string(),
                ctx_a: str_field(&path, line, &r, "ctx_a")?.to_string(),
                ctx_b: str_field(&path, line, &r, "ctx_b")?.to_string(),
                endings,
                label: label as usize,
                source_id: opt_str(&r, "source_id"),
                split_type: opt_str(&r, "split_type"),
            },
        ));
    }
    Ok(out)
}

/// lm-evaluation-harness's HellaSwag `preprocess`: trim, `" [title]"` → `". "`, drop `[...]`
/// (non-greedy), then replace each double space by one space (one pass, like Python's
/// `str.replace`).
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        match rest[open..].find(']') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// Python's `str.capitalize()`: first character upper-case, the rest lower-case.
fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// HellaSwag fields as in the original data (Hub parquet or the original jsonl).
struct Doc {
    ind: Option<i64>,
    activity_label: String,
    ctx_a: String,
    ctx_b: String,
    endings: Vec<String>,
    label: usize,
    source_id: Option<String>,
    split_type: Option<String>,
}

fn from_doc(row: usize, d: Doc) -> Record {
    let ctx = format!("{} {}", d.ctx_a, py_capitalize(&d.ctx_b));
    let query = hellaswag_preprocess(&format!("{}: {ctx}", d.activity_label));
    let mut r = from_query(row, &query, &d.endings, d.label);
    r.insert("activity_label".into(), json!(d.activity_label));
    r.insert("ctx_a".into(), json!(d.ctx_a));
    r.insert("ctx_b".into(), json!(d.ctx_b));
    if let Some(ind) = d.ind {
        r.insert("ind".into(), json!(ind));
    }
    if let Some(s) = d.source_id {
        r.insert("source_id".into(), json!(s));
    }
    if let Some(s) = d.split_type {
        r.insert("split_type".into(), json!(s));
    }
    r
}

/// A HellaSwag record from an already-joined query (`activity_label: ctx`) and the endings;
/// both go through lm-eval's `preprocess`.
fn from_query(row: usize, query: &str, endings: &[String], gold: usize) -> Record {
    let choices: Vec<String> = endings.iter().map(|e| hellaswag_preprocess(e)).collect();
    record(vec![
        ("id", json!(format!("hellaswag/{row}"))),
        ("query", json!(hellaswag_preprocess(query))),
        ("choices", strings(&choices)),
        ("gold", json!(gold)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellaswag_preprocess_matches_lm_eval() {
        // Worked by hand with lm-eval's utils.preprocess.
        assert_eq!(
            hellaswag_preprocess(" Home and Garden: [header] How to clean a grill [title] Heat it. [step] Scrub  it. "),
            "Home and Garden: How to clean a grill. Heat it. Scrub it."
        );
        assert_eq!(hellaswag_preprocess("a [b"), "a [b");
        assert_eq!(py_capitalize("the LADY"), "The lady");
        assert_eq!(py_capitalize(""), "");
    }

    #[test]
    fn hellaswag_doc_capitalizes_ctx_b_like_lm_eval() {
        let r = from_doc(
            1,
            Doc {
                ind: Some(24),
                activity_label: "Ice fishing".into(),
                ctx_a: "A man sits on a small stool beside a hole in a frozen lake.".into(),
                ctx_b: "he".into(),
                endings: vec![
                    "sings to the fish.".into(),
                    "lowers a short line into the hole.".into(),
                ],
                label: 1,
                source_id: None,
                split_type: None,
            },
        );
        assert_eq!(
            r["query"],
            "Ice fishing: A man sits on a small stool beside a hole in a frozen lake. He"
        );
        assert_eq!(r["id"], "hellaswag/1");
        assert_eq!(r["gold"], 1);
        assert_eq!(r["ind"], 24);
    }
}
