//! The items of choice and generate tasks: owns reading a JSONL items file (ids unique, errors
//! naming file and line), and turning records into templated [`ChoiceItem`]s and
//! [`GenerateItem`]s with the task's spec. It must not parse evalset.toml or fetch data.

use super::{ChoiceSpec, GenerateSpec};
use crate::error::usage;
use anyhow::Result;
use std::path::Path;

/// An item: a JSON object.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// A string or number as text.
pub fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Read a JSONL items file: one JSON object per line, each with an "id". Errors name file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("{}: cannot read items file: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| usage(format!("{at}: not a JSON object: {e}")))?;
        let serde_json::Value::Object(mut m) = v else {
            return Err(usage(format!("{at}: each line must be a JSON object")));
        };
        let id = m
            .get("id")
            .and_then(value_text)
            .ok_or_else(|| usage(format!("{at}: the item has no \"id\" (a string)")))?;
        if !ids.insert(id.clone()) {
            return Err(usage(format!("{at}: duplicate id '{id}'")));
        }
        m.insert("__line".into(), serde_json::Value::from(i + 1));
        out.push(m);
    }
    if out.is_empty() {
        return Err(usage(format!("{}: no items", path.display())));
    }
    Ok(out)
}

/// Where an item came from, for messages: `file:line` when read from a file, else its id.
pub fn item_origin(r: &Record, file: &str) -> String {
    match r.get("__line").and_then(|l| l.as_u64()) {
        Some(l) => format!("{file}:{l}"),
        None => format!(
            "{file}, item '{}'",
            r.get("id").and_then(value_text).unwrap_or_default()
        ),
    }
}

/// One multiple-choice item, templated: each option is a context and the continuation scored after it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChoiceItem {
    pub id: String,
    /// (context, continuation) per choice; the contexts are usually all the same.
    pub options: Vec<(String, String)>,
    pub gold: usize,
}

/// One generation item, templated (few-shot examples already prepended).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerateItem {
    pub id: String,
    pub prompt: String,
    pub answer: String,
}

/// Turn records into choice items; errors name the item's file and line and the field.
pub fn prepare_choice(
    spec: &ChoiceSpec,
    records: &[Record],
    file: &str,
) -> Result<Vec<ChoiceItem>> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let at = item_origin(r, file);
        let id = r.get("id").and_then(value_text).unwrap_or_default();
        let choices: Vec<String> = match r.get(&spec.choices) {
            Some(serde_json::Value::Array(a)) if a.len() >= 2 => a
                .iter()
                .map(|v| {
                    value_text(v).ok_or_else(|| {
                        usage(format!("{at}: field '{}' must list strings", spec.choices))
                    })
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(usage(format!(
                    "{at}: field '{}' must be a list of at least 2 choices",
                    spec.choices
                )))
            }
            None => {
                return Err(usage(format!(
                    "{at}: no field '{}' (the task's 'choices' key names it)",
                    spec.choices
                )))
            }
        };
        let gold = match r.get(&spec.answer) {
            Some(serde_json::Value::Number(n)) => {
                let g = n.as_u64().ok_or_else(|| {
                    usage(format!(
                        "{at}: field '{}' = {n} is not a valid index",
                        spec.answer
                    ))
                })? as usize;
                if g >= choices.len() {
                    return Err(usage(format!(
                        "{at}: field '{}' = {g} is out of range: the item has {} choices (valid: 0..={})",
                        spec.answer,
                        choices.len(),
                        choices.len() - 1
                    )));
                }
                g
            }
            Some(serde_json::Value::String(s)) => {
                choices.iter().position(|c| c == s).ok_or_else(|| {
                    usage(format!(
                        "{at}: field '{}' = '{s}' is not one of the choices",
                        spec.answer
                    ))
                })?
            }
            _ => {
                return Err(usage(format!(
                    "{at}: no field '{}' holding the answer (an index or the right choice's text)",
                    spec.answer
                )))
            }
        };
        let mut options = Vec::with_capacity(choices.len());
        for c in &choices {
            let ctx = spec
                .context
                .render(r, Some(c))
                .map_err(|e| usage(format!("{at}: {e}")))?;
            let cont = spec
                .continuation
                .render(r, Some(c))
                .map_err(|e| usage(format!("{at}: {e}")))?;
            if cont.is_empty() {
                return Err(usage(format!("{at}: a choice's continuation is empty")));
            }
            options.push((ctx, cont));
        }
        out.push(ChoiceItem { id, options, gold });
    }
    Ok(out)
}

/// Turn records into generation items; the first `fewshot` records become the examples.
pub fn prepare_generate(
    spec: &GenerateSpec,
    records: &[Record],
    file: &str,
) -> Result<Vec<GenerateItem>> {
    if spec.fewshot >= records.len() {
        return Err(usage(format!(
            "{file}: fewshot = {} leaves no items to score ({} items)",
            spec.fewshot,
            records.len()
        )));
    }
    let mut all = Vec::with_capacity(records.len());
    for r in records {
        let at = item_origin(r, file);
        let id = r.get("id").and_then(value_text).unwrap_or_default();
        let prompt = spec
            .prompt
            .render(r, None)
            .map_err(|e| usage(format!("{at}: {e}")))?;
        let answer = r.get(&spec.answer).and_then(value_text).ok_or_else(|| {
            usage(format!(
                "{at}: no field '{}' holding the answer (a string or number)",
                spec.answer
            ))
        })?;
        all.push(GenerateItem { id, prompt, answer });
    }
    let shots: String = all[..spec.fewshot]
        .iter()
        .map(|g| format!("{} {}\n\n", g.prompt, g.answer))
        .collect();
    Ok(all
        .into_iter()
        .skip(spec.fewshot)
        .map(|mut g| {
            g.prompt = format!("{shots}{}", g.prompt);
            g
        })
        .collect())
}
