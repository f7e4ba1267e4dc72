//! Standard benchmark sets by name (`--evalset hellaswag | arc-easy | ... | wikitext2`): owns the
//! catalogue of names and the shape of each set's records, the same whether the items come from
//! files in their original distribution format under `--data-dir` ([`offline`]) or from the set's
//! pinned Hugging Face datasets repo ([`hub_data`]).
//!
//! Every record has an `id` and the fields its `evalsets/<name>/evalset.toml` templates use; the
//! derived fields (`query`, `choices`, `gold`, `prefix`, `suffix`, `A`..`D`, ...) are computed
//! here so that a plain template reproduces lm-evaluation-harness's prompt for the same task:
//!
//! | set | fields (besides `id`) |
//! | --- | --- |
//! | hellaswag | `query` (preprocessed `activity_label: ctx_a Ctx_b`), `choices` (preprocessed endings), `gold`; from the Hub or the original jsonl also `activity_label`, `ctx_a`, `ctx_b`, `ind`, `source_id`, `split_type` |
//! | arc-easy, arc-challenge | `question`, `choices` (texts), `labels`, `answerKey`, `gold` |
//! | mmlu | `subject`, `subject_name` (spaces for `_`), `question` (trimmed), `A`..`D`, `choices`, `letters` (`["A","B","C","D"]`), `answer` = `gold` |
//! | gsm8k | `question`, `answer` (the worked solution), `target` (the number after `####`, commas removed) |
//! | winogrande | `prefix` (sentence up to the blank), `options`, `suffix` (after the blank, trimmed), `gold`; from the Hub also `sentence`, `option1`, `option2`, `answer` |
//! | piqa | `goal`, `sol1`, `sol2`, `choices`, `label` = `gold` |
//! | boolq | `passage`, `question`, `idx`, `label` (0 = false, 1 = true) = `gold`, `choices` (`["no","yes"]`) |
//! | truthfulqa-mc1 | `question`, `choices` (the MC1 targets in order), `gold` |
//!
//! Ids are `<set>/<native id>` where the data has one (ARC, BoolQ's `idx`), else `<set>/<row>`
//! (0-based, in the distribution's order; MMLU `mmlu/<subject>/<row>`), and are the same for
//! the offline and Hub copies of a set, so per-item answers can be compared across sources.

pub mod hub_data;
mod offline;
mod parquet_rows;

use crate::error::usage;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

/// One item: a JSON object whose fields templates substitute by name.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// The names `--evalset` accepts for standard sets.
const NAMES: &[&str] = &[
    "hellaswag",
    "arc-easy",
    "arc-challenge",
    "mmlu",
    "gsm8k",
    "winogrande",
    "piqa",
    "boolq",
    "truthfulqa-mc1",
    "wikitext2",
];

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

/// The names `--evalset` accepts for standard sets:
/// hellaswag, arc-easy, arc-challenge, mmlu, gsm8k, winogrande, piqa, boolq, truthfulqa-mc1, wikitext2
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// Whether `name` is one of [`names`].
pub fn is_standard(name: &str) -> bool {
    NAMES.contains(&name)
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
    check_name(name)?;
    if name == "wikitext2" {
        return Err(usage(
            "standard set 'wikitext2' is a text set (perplexity); it has no items (use it as a text task)",
        ));
    }
    match from {
        DataSource::DataDir(dir) => offline::load_records(name, dir),
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
    check_name(name)?;
    if name != "wikitext2" {
        return Err(usage(format!(
            "standard set '{name}' has items, not a text; the text set is 'wikitext2'"
        )));
    }
    match from {
        DataSource::DataDir(dir) => offline::load_wikitext2(dir),
        DataSource::Hub(cfg) => hub_data::load_wikitext2(cfg),
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_standard(name) {
        Ok(())
    } else {
        Err(usage(format!(
            "'{name}' is not a standard eval set; standard sets: {}",
            NAMES.join(", ")
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Record shapes, shared by the offline readers and the Hub reader.

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn record(pairs: Vec<(&str, Value)>) -> Record {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
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
struct HellaswagDoc {
    ind: Option<i64>,
    activity_label: String,
    ctx_a: String,
    ctx_b: String,
    endings: Vec<String>,
    label: usize,
    source_id: Option<String>,
    split_type: Option<String>,
}

fn hellaswag_from_doc(row: usize, d: HellaswagDoc) -> Record {
    let ctx = format!("{} {}", d.ctx_a, py_capitalize(&d.ctx_b));
    let query = hellaswag_preprocess(&format!("{}: {ctx}", d.activity_label));
    let mut r = hellaswag_record(row, &query, &d.endings, d.label);
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
fn hellaswag_record(row: usize, query: &str, endings: &[String], gold: usize) -> Record {
    let choices: Vec<String> = endings.iter().map(|e| hellaswag_preprocess(e)).collect();
    record(vec![
        ("id", json!(format!("hellaswag/{row}"))),
        ("query", json!(hellaswag_preprocess(query))),
        ("choices", strings(&choices)),
        ("gold", json!(gold)),
    ])
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

/// WinoGrande from the original form (`sentence` with one `_`, two options, answer "1"/"2"),
/// split the way lm-eval's `partial_context` / `partial_target` do.
fn winogrande_from_sentence(
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

fn truthfulqa_mc1_record(
    row: usize,
    question: &str,
    choices: Vec<String>,
    labels: &[i64],
) -> std::result::Result<Record, String> {
    let correct: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == 1)
        .map(|(i, _)| i)
        .collect();
    if correct.len() != 1 || labels.iter().any(|l| *l != 0 && *l != 1) {
        return Err(format!(
            "mc1 targets must have exactly one answer labelled 1 and the rest 0, got labels {labels:?}"
        ));
    }
    if choices.len() < 2 {
        return Err(format!(
            "mc1 targets have {} choice(s); expected at least 2",
            choices.len()
        ));
    }
    Ok(record(vec![
        ("id", json!(format!("truthfulqa-mc1/{row}"))),
        ("question", json!(question)),
        ("choices", strings(&choices)),
        ("gold", json!(correct[0])),
    ]))
}

/// wiki.test.raw from the Hub's one-row-per-line form (`Salesforce/wikitext`): the loader keeps
/// each line with its `\n` and stores blank lines (a lone space in the file) as `""`.
fn wikitext_from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    lines
        .into_iter()
        .map(|l| if l.is_empty() { " \n" } else { l })
        .collect()
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
        let r = hellaswag_from_doc(
            1,
            HellaswagDoc {
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

    #[test]
    fn winogrande_split_agrees_between_forms() {
        let s = winogrande_from_sentence(
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

    #[test]
    fn gsm8k_target_is_the_number_after_hashes() {
        assert_eq!(
            gsm8k_target("So 3 + 4 = 7\n#### 1,234").as_deref(),
            Some("1234")
        );
        assert_eq!(gsm8k_target("no final line"), None);
    }

    #[test]
    fn wikitext_lines_restore_blank_lines() {
        assert_eq!(
            wikitext_from_lines(["", " = Title = \n", "", " Text .\n"]),
            " \n = Title = \n \n Text .\n"
        );
    }

    /// The Hub's one-row-per-line form of the real wiki.test.raw (rows made as the `datasets`
    /// loader makes them) rebuilds the file byte for byte.
    #[test]
    fn wikitext_rows_rebuild_the_real_file() {
        let Some(dir) = std::env::var_os("QEVAL_EVALDATA") else {
            println!("skipped: set QEVAL_EVALDATA to the evaldata folder to check wiki.test.raw");
            return;
        };
        let raw = std::fs::read_to_string(Path::new(&dir).join("wikitext-2-raw/wiki.test.raw"))
            .expect("wiki.test.raw under QEVAL_EVALDATA");
        let rows: Vec<&str> = raw
            .split_inclusive('\n')
            .map(|l| if l.trim().is_empty() { "" } else { l })
            .collect();
        assert_eq!(rows.len(), 4358);
        assert_eq!(wikitext_from_lines(rows), raw);
    }

    #[test]
    fn truthfulqa_gold_is_the_single_true_answer() {
        let r = truthfulqa_mc1_record(3, "Q?", vec!["a".into(), "b".into()], &[0, 1]).unwrap();
        assert_eq!(r["gold"], 1);
        assert!(truthfulqa_mc1_record(3, "Q?", vec!["a".into(), "b".into()], &[1, 1]).is_err());
    }
}
