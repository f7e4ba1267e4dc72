//! GSM8K test split (1,319 items), as lm-eval's `gsm8k`: owns its pin, its jsonl file and the
//! record (the worked solution and its final number as `target`). It must not touch other sets.

use super::{each_row, Pin, StandardSet};
use crate::evalset::standard::columns::get_str;
use crate::evalset::standard::offline::{at, jsonl, str_field, Reader};
use crate::evalset::standard::{record, Record};
use anyhow::Result;
use serde_json::json;

const FILE: &str = "gsm8k/test.jsonl";

pub struct Gsm8k;

/// Its eval set definition (what `--evalset gsm8k` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# GSM8K test (1,319 items), read by src/evalset/standard.rs from --data-dir or the Hub
# (openai/gsm8k `main`, pinned). Prompt of lm-evaluation-harness's `gsm8k` task.
name = "gsm8k"
version = "1.0.0"
description = "GSM8K (Cobbe et al. 2021) test split: grade-school math word problems with a numeric answer."

[[task]]
name = "gsm8k"
kind = "generate"
source = "gsm8k"
prompt = "Question: {question}\nAnswer:"
answer = "target"
max_tokens = 256
stop = ["\n\n", "Question:"]
extract = "(-?[0-9][0-9,]*(?:\\.[0-9]+)?)"
metrics = ["exact_match"]
fewshot = 5
note = "lm-eval: 5-shot from the train split, each example showing the full worked solution, and strict-match on '#### <number>'. qeval: the 5 examples are the first 5 test items (excluded from scoring) and show only the final number (the `target` field), so the model answers directly and the first number of its answer is compared; a direct-answer variant, not directly comparable with lm-eval's chain-of-thought score."
"#;

impl StandardSet for Gsm8k {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "gsm8k"
    }

    fn fields(&self) -> &'static str {
        "`question`, `answer` (the worked solution), `target` (the number after `####`, commas \
         removed)"
    }

    // openai/gsm8k, config `main`, test split (1,319 rows).
    fn pin(&self) -> Pin {
        Pin {
            repo: "openai/gsm8k",
            revision: "740312add88f781978c0658806c59bc2815b9866",
            file: "main/test-00000-of-00001.parquet",
            sha256: Some("ee7b8da9e381df27b9e3f7758a159ab2bdaa4dbaa910546cbbc47e0cb44e4f59"),
            bytes: Some(419_088),
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[FILE]
    }

    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        each_row(rows, |row, r| {
            gsm8k_record(row, get_str(r, "question")?, get_str(r, "answer")?)
        })
    }

    /// `question`, `answer` (worked solution ending in `#### <number>`).
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let (path, text) = rd.read(FILE)?;
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
}

/// The final answer of a GSM8K solution: the text after the last `#### `, trimmed, commas removed.
pub fn gsm8k_target(answer: &str) -> Option<String> {
    let (_, tail) = answer.rsplit_once("####")?;
    let t = tail.trim().replace(',', "");
    (!t.is_empty()).then_some(t)
}

fn gsm8k_record(row: usize, question: &str, answer: &str) -> std::result::Result<Record, String> {
    let target = gsm8k_target(answer)
        .ok_or_else(|| "answer has no final '#### <number>' line".to_string())?;
    Ok(record(vec![
        ("id", json!(format!("gsm8k/{row}"))),
        ("question", json!(question)),
        ("answer", json!(answer)),
        ("target", json!(target)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_target_is_the_number_after_hashes() {
        assert_eq!(
            gsm8k_target("So 3 + 4 = 7\n#### 1,234").as_deref(),
            Some("1234")
        );
        assert_eq!(gsm8k_target("no final line"), None);
    }
}
