//! Readers of the standard sets' original distribution formats under `--data-dir DIR`, laid out
//! like `../shared/evaldata`: HellaSwag's 6-lines-per-task text (or the original
//! `hellaswag_val.jsonl`), ARC jsonl, MMLU csv per subject, GSM8K jsonl, WinoGrande jsonl +
//! labels, PIQA jsonl + labels .lst, BoolQ jsonl, TruthfulQA mc_task.json, WikiText-2 raw.
//! Errors name the file, the line and what was expected; a missing file names the path expected
//! under the data dir and the set.

use super::{
    arc_record, boolq_record, gsm8k_record, hellaswag_from_doc, hellaswag_record, mmlu_record,
    piqa_record, split_partial_contexts, truthfulqa_mc1_record, winogrande_from_sentence,
    winogrande_record, FileDigest, HellaswagDoc, Provenance, Record, MMLU_SUBJECTS,
};
use crate::error::usage;
use anyhow::Result;
use serde::de::{MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where each set's files are expected, relative to the data dir.
pub const HELLASWAG_TEXT: &str = "hellaswag/hellaswag_val_full.txt";
pub const HELLASWAG_JSONL: &str = "hellaswag/hellaswag_val.jsonl";
pub const ARC_EASY: &str = "arc/ARC-Easy-Test.jsonl";
pub const ARC_CHALLENGE: &str = "arc/ARC-Challenge-Test.jsonl";
pub const MMLU_DIR: &str = "mmlu/test";
pub const GSM8K: &str = "gsm8k/test.jsonl";
pub const WINOGRANDE_ORIGINAL: &str = "winogrande/dev.jsonl";
pub const WINOGRANDE_LLMFOUNDRY: &str = "winogrande/winogrande_dev_llmfoundry.jsonl";
pub const WINOGRANDE_LABELS: &str = "winogrande/dev-labels.lst";
pub const PIQA: &str = "piqa/valid.jsonl";
pub const PIQA_LABELS: &str = "piqa/valid-labels.lst";
pub const BOOLQ: &str = "boolq/val.jsonl";
pub const TRUTHFULQA: &str = "truthfulqa/mc_task.json";
pub const WIKITEXT2: &str = "wikitext-2-raw/wiki.test.raw";

/// The files read so far, for the provenance record.
struct Reader<'a> {
    dir: &'a Path,
    set: &'a str,
    files: Vec<FileDigest>,
}

impl<'a> Reader<'a> {
    fn new(dir: &'a Path, set: &'a str) -> Self {
        Reader {
            dir,
            set,
            files: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// The file's text; a missing file is a usage error naming the expected path and the set.
    fn read(&mut self, rel: &str) -> Result<(PathBuf, String)> {
        let path = self.path(rel);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(usage(format!(
                    "standard set '{}': expected {} under --data-dir {} (missing: {})",
                    self.set,
                    rel,
                    self.dir.display(),
                    path.display()
                )))
            }
            Err(e) => return Err(usage(format!("cannot read {}: {e}", path.display()))),
        };
        self.files.push(FileDigest {
            path: rel.to_string(),
            sha256: Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            bytes: bytes.len() as u64,
            verified: false,
        });
        let text = String::from_utf8(bytes)
            .map_err(|e| usage(format!("{}: not UTF-8 text: {e}", path.display())))?;
        // A BOM is not part of the data.
        let text = text
            .strip_prefix('\u{feff}')
            .map(str::to_string)
            .unwrap_or(text);
        Ok((path, text))
    }

    fn provenance(self) -> Provenance {
        Provenance {
            source: "data-dir".into(),
            location: self.dir.display().to_string(),
            repo: None,
            revision: None,
            commit: None,
            files: self.files,
        }
    }
}

/// An error at `file:line`, as a usage error (the user can fix or replace the file).
fn at(path: &Path, line: usize, msg: impl fmt::Display) -> anyhow::Error {
    usage(format!("{}:{line}: {msg}", path.display()))
}

/// The non-empty lines of a JSONL file parsed as JSON objects, with their 1-based line numbers.
fn jsonl(path: &Path, text: &str) -> Result<Vec<(usize, Record)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push((i + 1, m)),
            Ok(_) => return Err(at(path, i + 1, "expected a JSON object")),
            Err(e) => return Err(at(path, i + 1, format!("invalid JSON: {e}"))),
        }
    }
    Ok(out)
}

fn field<'r>(path: &Path, line: usize, r: &'r Record, key: &str) -> Result<&'r Value> {
    r.get(key)
        .ok_or_else(|| at(path, line, format!("missing field `{key}`")))
}

fn str_field<'r>(path: &Path, line: usize, r: &'r Record, key: &str) -> Result<&'r str> {
    field(path, line, r, key)?
        .as_str()
        .ok_or_else(|| at(path, line, format!("field `{key}` must be a string")))
}

fn str_list(path: &Path, line: usize, v: &Value, what: &str) -> Result<Vec<String>> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| at(path, line, format!("`{what}` must be a list of strings")))
}

/// A labels file (.lst): one integer per line, each one of `allowed`.
fn labels(path: &Path, text: &str, allowed: &[usize]) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<usize>() {
            Ok(v) if allowed.contains(&v) => out.push(v),
            _ => {
                return Err(at(
                    path,
                    i + 1,
                    format!(
                        "label '{t}' is not one of {}",
                        allowed
                            .iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn same_count(items: &Path, n_items: usize, labels: &Path, n_labels: usize) -> Result<()> {
    if n_items != n_labels {
        return Err(usage(format!(
            "{} has {n_items} items but {} has {n_labels} labels; they must match line by line",
            items.display(),
            labels.display()
        )));
    }
    Ok(())
}

pub fn load_records(name: &str, dir: &Path) -> Result<(Vec<Record>, Provenance)> {
    let mut rd = Reader::new(dir, name);
    let records = match name {
        "hellaswag" => hellaswag(&mut rd)?,
        "arc-easy" => arc(&mut rd, ARC_EASY)?,
        "arc-challenge" => arc(&mut rd, ARC_CHALLENGE)?,
        "mmlu" => mmlu(&mut rd)?,
        "gsm8k" => gsm8k(&mut rd)?,
        "winogrande" => winogrande(&mut rd)?,
        "piqa" => piqa(&mut rd)?,
        "boolq" => boolq(&mut rd)?,
        "truthfulqa-mc1" => truthfulqa_mc1(&mut rd)?,
        other => anyhow::bail!("no offline reader for standard set '{other}'"),
    };
    if records.is_empty() {
        return Err(usage(format!(
            "standard set '{name}': the files under --data-dir {} hold no items",
            dir.display()
        )));
    }
    Ok((records, rd.provenance()))
}

pub fn load_wikitext2(dir: &Path) -> Result<(String, Provenance)> {
    let mut rd = Reader::new(dir, "wikitext2");
    let (path, text) = rd.read(WIKITEXT2)?;
    if text.trim().is_empty() {
        return Err(usage(format!("{}: the file is empty", path.display())));
    }
    Ok((text, rd.provenance()))
}

/// HellaSwag: the original `hellaswag_val.jsonl` when present, else llama.cpp's text form:
/// 6 lines per task (`<activity_label>: <ctx>`, the gold index 0-3, four endings).
fn hellaswag(rd: &mut Reader) -> Result<Vec<Record>> {
    if rd.exists(HELLASWAG_JSONL) {
        return hellaswag_jsonl(rd);
    }
    let (path, text) = rd.read(HELLASWAG_TEXT)?;
    let lines: Vec<&str> = text.lines().collect();
    // A trailing empty line is not a truncated task.
    let n = lines.len() - lines.iter().rev().take_while(|l| l.is_empty()).count();
    if !n.is_multiple_of(6) {
        let start = n - n % 6 + 1;
        return Err(at(
            &path,
            start,
            format!(
                "truncated task: expected 6 lines per task (context, gold index, 4 endings) but the \
                 last task starting here has only {} line(s)",
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
        out.push(hellaswag_record(row, task[0], &endings, gold));
    }
    Ok(out)
}

/// The original HellaSwag jsonl (`ind`, `activity_label`, `ctx_a`, `ctx_b`, `endings`, `label`).
fn hellaswag_jsonl(rd: &mut Reader) -> Result<Vec<Record>> {
    let (path, text) = rd.read(HELLASWAG_JSONL)?;
    let mut out = Vec::new();
    for (row, (line, r)) in jsonl(&path, &text)?.into_iter().enumerate() {
        let endings = str_list(&path, line, field(&path, line, &r, "endings")?, "endings")?;
        let label = field(&path, line, &r, "label")?;
        let label = label
            .as_u64()
            .or_else(|| label.as_str().and_then(|s| s.parse().ok()))
            .filter(|l| (*l as usize) < endings.len())
            .ok_or_else(|| at(&path, line, "`label` must be an index into `endings`"))?;
        out.push(hellaswag_from_doc(
            row,
            HellaswagDoc {
                ind: r.get("ind").and_then(Value::as_i64),
                activity_label: str_field(&path, line, &r, "activity_label")?.to_string(),
                ctx_a: str_field(&path, line, &r, "ctx_a")?.to_string(),
                ctx_b: str_field(&path, line, &r, "ctx_b")?.to_string(),
                endings,
                label: label as usize,
                source_id: r
                    .get("source_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                split_type: r
                    .get("split_type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        ));
    }
    Ok(out)
}

/// ARC (AI2 jsonl): `id`, `question.stem`, `question.choices[{text,label}]`, `answerKey`.
fn arc(rd: &mut Reader, rel: &str) -> Result<Vec<Record>> {
    let set = rd.set.to_string();
    let (path, text) = rd.read(rel)?;
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
            let c = c
                .as_object()
                .ok_or_else(|| at(&path, line, "each choice must be an object {text, label}"))?;
            texts.push(str_field(&path, line, c, "text")?.to_string());
            labels.push(str_field(&path, line, c, "label")?.to_string());
        }
        let id = str_field(&path, line, &r, "id")?;
        let key = str_field(&path, line, &r, "answerKey")?;
        out.push(arc_record(&set, id, stem, texts, labels, key).map_err(|e| at(&path, line, e))?);
    }
    Ok(out)
}

/// MMLU: `mmlu/test/<subject>_test.csv` for all 57 subjects, header
/// `question,choice0,choice1,choice2,choice3,answer` (answer 0-3). The original header-less form
/// with a letter answer (`question,A,B,C,D,<letter>`) is read too.
fn mmlu(rd: &mut Reader) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for subject in MMLU_SUBJECTS {
        let rel = format!("{MMLU_DIR}/{subject}_test.csv");
        let (path, text) = rd.read(&rel)?;
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut row = 0;
        for (i, rec) in csv.records().enumerate() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(i + 1, |p| p.line() as usize);
                at(&path, line, format!("invalid CSV: {e}"))
            })?;
            let line = rec.position().map_or(i + 1, |p| p.line() as usize);
            if i == 0 && rec.get(0) == Some("question") && rec.get(5) == Some("answer") {
                continue; // the header
            }
            if rec.len() != 6 {
                return Err(at(
                    &path,
                    line,
                    format!(
                        "expected 6 columns (question, 4 choices, answer), found {}",
                        rec.len()
                    ),
                ));
            }
            let answer = match rec[5].trim() {
                "0" | "A" => 0,
                "1" | "B" => 1,
                "2" | "C" => 2,
                "3" | "D" => 3,
                other => {
                    return Err(at(
                        &path,
                        line,
                        format!("answer '{other}' is not 0-3 (or A-D)"),
                    ))
                }
            };
            let choices = (1..5).map(|c| rec[c].to_string()).collect();
            out.push(mmlu_record(subject, row, &rec[0], choices, answer));
            row += 1;
        }
    }
    Ok(out)
}

/// GSM8K: `question`, `answer` (worked solution ending in `#### <number>`).
fn gsm8k(rd: &mut Reader) -> Result<Vec<Record>> {
    let (path, text) = rd.read(GSM8K)?;
    jsonl(&path, &text)?
        .into_iter()
        .enumerate()
        .map(|(row, (line, r))| {
            let q = str_field(&path, line, &r, "question")?;
            let a = str_field(&path, line, &r, "answer")?;
            gsm8k_record(row, q, a).map_err(|e| at(&path, line, e))
        })
        .collect()
}

/// WinoGrande dev: the original `dev.jsonl` (`sentence`, `option1`, `option2`, `answer`) when
/// present, else llm-foundry's partial-scoring jsonl (`context_options`, `continuation`,
/// `gold`); `dev-labels.lst` (1/2 per line) must agree with either.
fn winogrande(rd: &mut Reader) -> Result<Vec<Record>> {
    let (labels_path, labels_text) = rd.read(WINOGRANDE_LABELS)?;
    let gold_labels = labels(&labels_path, &labels_text, &[1, 2])?;
    let original = rd.exists(WINOGRANDE_ORIGINAL);
    let rel = if original {
        WINOGRANDE_ORIGINAL
    } else {
        WINOGRANDE_LLMFOUNDRY
    };
    let (path, text) = rd.read(rel)?;
    let rows = jsonl(&path, &text)?;
    same_count(&path, rows.len(), &labels_path, gold_labels.len())?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, ((line, r), label)) in rows.into_iter().zip(gold_labels).enumerate() {
        let rec = if original {
            let answer = match field(&path, line, &r, "answer")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(at(&path, line, "`answer` must be \"1\" or \"2\"")),
            };
            winogrande_from_sentence(
                row,
                str_field(&path, line, &r, "sentence")?,
                str_field(&path, line, &r, "option1")?,
                str_field(&path, line, &r, "option2")?,
                &answer,
            )
            .map_err(|e| at(&path, line, e))?
        } else {
            let ctx = str_list(
                &path,
                line,
                field(&path, line, &r, "context_options")?,
                "context_options",
            )?;
            if ctx.len() != 2 {
                return Err(at(&path, line, "`context_options` must hold 2 strings"));
            }
            let gold = field(&path, line, &r, "gold")?
                .as_u64()
                .filter(|g| *g < 2)
                .ok_or_else(|| at(&path, line, "`gold` must be 0 or 1"))?
                as usize;
            let (prefix, options) = split_partial_contexts(&ctx[0], &ctx[1]);
            winogrande_record(
                row,
                &prefix,
                options,
                str_field(&path, line, &r, "continuation")?.trim(),
                gold,
            )
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

/// PIQA: `valid.jsonl` (`goal`, `sol1`, `sol2`) and `valid-labels.lst` (0/1 per line).
fn piqa(rd: &mut Reader) -> Result<Vec<Record>> {
    let (path, text) = rd.read(PIQA)?;
    let (labels_path, labels_text) = rd.read(PIQA_LABELS)?;
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

/// BoolQ (SuperGLUE `val.jsonl`): `question`, `passage`, `idx`, `label` (true/false, as a JSON
/// boolean or the string "true"/"false").
fn boolq(rd: &mut Reader) -> Result<Vec<Record>> {
    let (path, text) = rd.read(BOOLQ)?;
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

/// TruthfulQA's `mc_task.json`: a JSON array of `{question, mc1_targets: {answer: 0|1, ...}}`.
/// The answers' order is the object's key order, so `mc1_targets` is read in file order.
fn truthfulqa_mc1(rd: &mut Reader) -> Result<Vec<Record>> {
    #[derive(Deserialize)]
    struct Item {
        question: String,
        mc1_targets: Ordered,
    }
    let (path, text) = rd.read(TRUTHFULQA)?;
    let items: Vec<Item> = serde_json::from_str(&text).map_err(|e| {
        at(
            &path,
            e.line(),
            format!("expected a JSON array of {{question, mc1_targets}} objects: {e}"),
        )
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(row, it)| {
            let (choices, labels): (Vec<String>, Vec<i64>) = it.mc1_targets.0.into_iter().unzip();
            truthfulqa_mc1_record(row, &it.question, choices, &labels).map_err(|e| {
                usage(format!(
                    "{}: item {} (\"{}\"): {e}",
                    path.display(),
                    row + 1,
                    it.question
                ))
            })
        })
        .collect()
}

/// A JSON object `{text: int}` kept in file order (serde_json's map would sort it).
struct Ordered(Vec<(String, i64)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping answer text to 0 or 1")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, i64>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}
