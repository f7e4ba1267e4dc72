//! MMLU test split, all 57 subjects (14,042 items), as lm-eval's `mmlu`: owns its pin, the
//! subject list, the per-subject csv files and the record (`A`..`D`, `subject_name`, ...). It
//! must not touch other sets.

use super::{Pin, StandardSet};
use crate::evalset::standard::columns::{get, get_int, get_str, get_strs, index};
use crate::evalset::standard::offline::{at, Reader};
use crate::evalset::standard::{record, strings, Record};
use anyhow::Result;
use serde_json::json;
use std::collections::HashMap;

/// The folder of the per-subject files under the data dir: `<subject>_test.csv`.
const DIR: &str = "mmlu/test";

/// The 57 MMLU subjects, in the order of the Hub's `all` config (alphabetical).
pub const MMLU_SUBJECTS: &[&str] = &[
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
];

pub struct Mmlu;

/// Its eval set definition (what `--evalset mmlu` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# MMLU test, all 57 subjects (14,042 items), read by src/evalset/standard.rs from --data-dir or the
# Hub (cais/mmlu `all`, pinned). Prompt of lm-evaluation-harness's `mmlu` default template.
name = "mmlu"
version = "1.0.0"
description = "MMLU (Hendrycks et al. 2021) test split, 57 subjects, 4 lettered choices."

[[task]]
name = "mmlu"
kind = "choice"
source = "mmlu"
context = "The following are multiple choice questions (with answers) about {subject_name}.\n\n{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:"
choices = "letters"
continuation = " {choice}"
answer = "gold"
metrics = ["acc"]
note = "Zero-shot (lm-eval's `mmlu` group is zero-shot by default; the Open LLM Leaderboard used 5-shot). One task over all 57 subjects, so its accuracy is the mean over items; lm-eval reports the same item mean for the `mmlu` group and also per-subject and per-category scores, which qeval does not split out."
"#;

impl StandardSet for Mmlu {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "mmlu"
    }

    fn fields(&self) -> &'static str {
        "`subject`, `subject_name` (spaces for `_`), `question` (trimmed), `A`..`D`, `choices`, \
         `letters` (`[\"A\",\"B\",\"C\",\"D\"]`), `answer` = `gold`"
    }

    // cais/mmlu, config `all`, test split (14,042 rows, all 57 subjects).
    fn pin(&self) -> Pin {
        Pin {
            repo: "cais/mmlu",
            revision: "c30699e8356da336a370243923dbaf21066bb9fe",
            file: "all/test-00000-of-00001.parquet",
            sha256: Some("74a41822ce7d3def56e1682f958469c04642a5336a5ce912fa375fdb90fb25d7"),
            bytes: Some(3_504_718),
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &["mmlu/test/<subject>_test.csv (57 subjects)"]
    }

    /// Rows of all subjects; ids count rows per subject.
    fn hub_items(&self, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
        let mut per_subject: HashMap<String, usize> = HashMap::new();
        super::each_row(rows, |_, r| {
            let subject = get_str(r, "subject")?;
            let choices = get_strs(get(r, "choices")?, "choices")?;
            if choices.len() != 4 {
                return Err(format!("expected 4 choices, found {}", choices.len()));
            }
            let answer = index(get_int(r, "answer")?, 4, "answer")?;
            let n = per_subject.entry(subject.to_string()).or_insert(0);
            let rec = mmlu_record(subject, *n, get_str(r, "question")?, choices, answer);
            *n += 1;
            Ok(rec)
        })
    }

    /// `mmlu/test/<subject>_test.csv` for all 57 subjects, header
    /// `question,choice0,choice1,choice2,choice3,answer` (answer 0-3). The original header-less
    /// form with a letter answer (`question,A,B,C,D,<letter>`) is read too.
    fn offline_items(&self, rd: &mut Reader) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for subject in MMLU_SUBJECTS {
            read_subject(rd, subject, &mut out)?;
        }
        Ok(out)
    }
}

/// One subject's csv file, appended to `out`.
fn read_subject(rd: &mut Reader, subject: &str, out: &mut Vec<Record>) -> Result<()> {
    let rel = format!("{DIR}/{subject}_test.csv");
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
    Ok(())
}

fn mmlu_record(
    subject: &str,
    row: usize,
    question: &str,
    choices: Vec<String>,
    answer: usize,
) -> Record {
    let mut r = record(vec![
        ("id", json!(format!("mmlu/{subject}/{row}"))),
        ("subject", json!(subject)),
        ("subject_name", json!(subject.replace('_', " "))),
        ("question", json!(question.trim())),
    ]);
    for (letter, text) in ["A", "B", "C", "D"].iter().zip(&choices) {
        r.insert(letter.to_string(), json!(text));
    }
    r.insert("choices".into(), strings(&choices));
    r.insert("letters".into(), json!(["A", "B", "C", "D"]));
    r.insert("answer".into(), json!(answer));
    r.insert("gold".into(), json!(answer));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_57_subjects_in_order() {
        assert_eq!(MMLU_SUBJECTS.len(), 57);
        let mut sorted = MMLU_SUBJECTS.to_vec();
        sorted.sort();
        assert_eq!(sorted, MMLU_SUBJECTS);
    }
}
