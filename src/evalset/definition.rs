//! The evalset.toml format: owns parsing and checking a definition — the set's header, each
//! task's keys per kind (`text`, `choice`, `generate`), `extends`, templates and regexes, and
//! that files stay inside the set's folder — into [`TaskDef`]s. Every error names the file, the
//! line and the key. It must not read items or text (that is [`super::items`] and `load`).

use super::template::Template;
use crate::error::usage;
use anyhow::Result;
use regex::Regex;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "task")]
    tasks: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRaw {
    name: String,
    kind: String,
    /// Resolved before deserializing (see `parse`); kept so the key is known.
    #[serde(default, rename = "extends")]
    _extends: Option<String>,
    #[serde(default)]
    files: Option<Vec<String>>,
    #[serde(default)]
    items: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    choices: Option<String>,
    #[serde(default)]
    continuation: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    metrics: Option<Vec<String>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    stop: Option<Vec<String>>,
    #[serde(default)]
    extract: Option<String>,
    #[serde(default)]
    fewshot: Option<usize>,
    #[serde(default)]
    ignore_case: Option<bool>,
}

/// Where a task's items or text come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemsFrom {
    /// Files inside the eval set folder (text files for `text`, one JSONL file otherwise).
    Files(Vec<PathBuf>),
    /// A standard set read from --data-dir or the Hub.
    Standard(String),
}

#[derive(Debug, Clone)]
pub struct ChoiceSpec {
    pub context: Template,
    pub choices: String,
    pub continuation: Template,
    pub answer: String,
    /// Subset of "acc", "acc_norm".
    pub metrics: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub prompt: Template,
    pub answer: String,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub extract: Option<Regex>,
    pub fewshot: usize,
    pub ignore_case: bool,
}

#[derive(Debug, Clone)]
pub enum TaskKind {
    Text,
    Choice(ChoiceSpec),
    Generate(GenerateSpec),
}

impl TaskKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Text => "text",
            TaskKind::Choice(_) => "choice",
            TaskKind::Generate(_) => "generate",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TaskDef {
    pub name: String,
    pub kind: TaskKind,
    pub from: ItemsFrom,
    pub note: String,
    /// `evalset.toml:LINE` of the task, for messages.
    pub origin: String,
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// Parse an `evalset.toml` text (the folder is only used to resolve and check file paths).
pub fn parse(src: &str, def_path: &Path, dir: &Path) -> Result<(FileHeader, Vec<TaskDef>)> {
    let def: FileDef =
        toml::from_str(src).map_err(|e| usage(format!("{}: {e}", def_path.display())))?;
    let mut by_name: std::collections::BTreeMap<String, toml::Table> = Default::default();
    let mut tasks = Vec::new();
    for spanned in &def.tasks {
        let line = line_of(src, spanned.span().start);
        let origin = format!("{}:{line}", def_path.display());
        let mut table = spanned.get_ref().clone();
        if let Some(base) = table.get("extends").cloned() {
            let base = base.as_str().ok_or_else(|| {
                usage(format!(
                    "{origin}: key 'extends' must be a task name (a string)"
                ))
            })?;
            let mut merged = by_name.get(base).cloned().ok_or_else(|| {
                usage(format!(
                    "{origin}: key 'extends' names task '{base}', which is not defined above it in this file (defined: {})",
                    by_name.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            for (k, v) in table {
                merged.insert(k, v);
            }
            table = merged;
        }
        let raw: TaskRaw = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| usage(format!("{origin}: task: {}", first_line(&e.to_string()))))?;
        if by_name.contains_key(&raw.name) {
            return Err(usage(format!(
                "{origin}: a second task named '{}'; task names must be unique",
                raw.name
            )));
        }
        let task = task_def(raw, dir, &origin)?;
        by_name.insert(task.name.clone(), table);
        tasks.push(task);
    }
    Ok((
        FileHeader {
            name: def.name,
            version: def.version,
            description: def.description,
        },
        tasks,
    ))
}

/// The set-level keys of evalset.toml.
#[derive(Debug, Clone)]
pub struct FileHeader {
    pub name: String,
    pub version: String,
    pub description: String,
}

fn first_line(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn need<T>(v: Option<T>, key: &str, origin: &str, name: &str, kind: &str) -> Result<T> {
    v.ok_or_else(|| {
        usage(format!(
            "{origin}: task '{name}' (kind '{kind}') is missing the key '{key}'"
        ))
    })
}

fn template(s: &str, key: &str, origin: &str, name: &str) -> Result<Template> {
    Template::parse(s).map_err(|e| usage(format!("{origin}: task '{name}', key '{key}': {e}")))
}

fn forbid(present: bool, key: &str, origin: &str, name: &str, kind: &str) -> Result<()> {
    if present {
        return Err(usage(format!(
            "{origin}: task '{name}': key '{key}' does not apply to kind '{kind}'"
        )));
    }
    Ok(())
}

fn task_def(t: TaskRaw, dir: &Path, origin: &str) -> Result<TaskDef> {
    let name = t.name.clone();
    let from = items_from(&t, dir, origin)?;
    let note = t.note.clone().unwrap_or_default();
    let kind = match t.kind.clone().as_str() {
        "text" => text_spec(&t, origin)?,
        "choice" => choice_spec(t, origin)?,
        "generate" => generate_spec(t, origin)?,
        other => {
            return Err(usage(format!(
                "{origin}: task '{name}' has kind '{other}'; valid kinds: text, choice, generate"
            )))
        }
    };
    Ok(TaskDef {
        name,
        kind,
        from,
        note,
        origin: origin.to_string(),
    })
}

/// Where a task's items or text come from: files in the folder or a standard set.
fn items_from(t: &TaskRaw, dir: &Path, origin: &str) -> Result<ItemsFrom> {
    let name = &t.name;
    Ok(match (&t.files, &t.items, &t.source) {
        (Some(files), None, None) if t.kind == "text" => {
            let mut v = Vec::new();
            for f in files {
                v.push(
                    inside(dir, f)
                        .map_err(|e| usage(format!("{origin}: task '{name}', key 'files': {e}")))?,
                );
            }
            ItemsFrom::Files(v)
        }
        (None, Some(items), None) if t.kind != "text" => ItemsFrom::Files(vec![inside(dir, items)
            .map_err(|e| usage(format!("{origin}: task '{name}', key 'items': {e}")))?]),
        (None, None, Some(s)) => ItemsFrom::Standard(s.clone()),
        _ => {
            let want = if t.kind == "text" {
                "'files' (a list of text files in this folder) or 'source' (a standard set)"
            } else {
                "'items' (a JSONL file in this folder) or 'source' (a standard set)"
            };
            return Err(usage(format!(
                "{origin}: task '{name}' (kind '{}') needs exactly one of {want}",
                t.kind
            )));
        }
    })
}

/// The checks of a `text` task: no keys of the other kinds.
fn text_spec(t: &TaskRaw, origin: &str) -> Result<TaskKind> {
    let (name, k) = (&t.name, "text");
    for (present, key) in [
        (t.context.is_some(), "context"),
        (t.choices.is_some(), "choices"),
        (t.answer.is_some(), "answer"),
        (t.prompt.is_some(), "prompt"),
        (t.metrics.is_some(), "metrics"),
    ] {
        forbid(present, key, origin, name, k)?;
    }
    Ok(TaskKind::Text)
}

/// A `choice` task's spec: context and continuation templates (one must use `{choice}`), the
/// choices and answer fields, and its metrics.
fn choice_spec(t: TaskRaw, origin: &str) -> Result<TaskKind> {
    let (name, k) = (t.name.clone(), "choice");
    for (present, key) in [
        (t.prompt.is_some(), "prompt"),
        (t.max_tokens.is_some(), "max_tokens"),
        (t.stop.is_some(), "stop"),
        (t.extract.is_some(), "extract"),
        (t.fewshot.is_some(), "fewshot"),
    ] {
        forbid(present, key, origin, &name, k)?;
    }
    let metrics = t
        .metrics
        .unwrap_or_else(|| vec!["acc".into(), "acc_norm".into()]);
    for m in &metrics {
        if m != "acc" && m != "acc_norm" {
            return Err(usage(format!(
                    "{origin}: task '{name}', key 'metrics': '{m}' is not a choice metric (valid: acc, acc_norm)"
                )));
        }
    }
    let continuation = t.continuation.unwrap_or_else(|| " {choice}".into());
    let continuation = template(&continuation, "continuation", origin, &name)?;
    let context = template(
        &need(t.context, "context", origin, &name, k)?,
        "context",
        origin,
        &name,
    )?;
    if !continuation.uses("choice") && !context.uses("choice") {
        return Err(usage(format!(
                "{origin}: task '{name}': neither 'context' nor 'continuation' uses {{choice}}, so every choice would score the same text"
            )));
    }
    Ok(TaskKind::Choice(ChoiceSpec {
        context,
        choices: need(t.choices, "choices", origin, &name, k)?,
        continuation,
        answer: need(t.answer, "answer", origin, &name, k)?,
        metrics,
    }))
}

/// A `generate` task's spec: prompt template, answer field, decoding limits and extraction.
fn generate_spec(t: TaskRaw, origin: &str) -> Result<TaskKind> {
    let (name, k) = (t.name.clone(), "generate");
    for (present, key) in [
        (t.context.is_some(), "context"),
        (t.choices.is_some(), "choices"),
        (t.continuation.is_some(), "continuation"),
    ] {
        forbid(present, key, origin, &name, k)?;
    }
    let metrics = t.metrics.unwrap_or_else(|| vec!["exact_match".into()]);
    if metrics != ["exact_match"] {
        return Err(usage(format!(
                "{origin}: task '{name}', key 'metrics': {metrics:?}; generate tasks have the metric \"exact_match\""
            )));
    }
    let extract = match &t.extract {
        Some(r) => Some(Regex::new(r).map_err(|e| {
            usage(format!(
                "{origin}: task '{name}', key 'extract': not a valid regex: {}",
                first_line(&e.to_string())
            ))
        })?),
        None => None,
    };
    let max_tokens = t.max_tokens.unwrap_or(32);
    if max_tokens == 0 || max_tokens > 4096 {
        return Err(usage(format!(
            "{origin}: task '{name}', key 'max_tokens': {max_tokens}; give 1..=4096"
        )));
    }
    if t.stop
        .as_ref()
        .is_some_and(|s| s.iter().any(|x| x.is_empty()))
    {
        return Err(usage(format!(
            "{origin}: task '{name}', key 'stop': an empty stop string would stop at once"
        )));
    }
    Ok(TaskKind::Generate(GenerateSpec {
        prompt: template(
            &need(t.prompt, "prompt", origin, &name, k)?,
            "prompt",
            origin,
            &name,
        )?,
        answer: need(t.answer, "answer", origin, &name, k)?,
        max_tokens,
        stop: t.stop.unwrap_or_default(),
        extract,
        fewshot: t.fewshot.unwrap_or(0),
        ignore_case: t.ignore_case.unwrap_or(false),
    }))
}

/// Resolve `rel` inside `dir`, refusing absolute paths and `..` (files cannot escape the set).
fn inside(dir: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "file '{rel}' must be a relative path inside the eval set folder"
        ));
    }
    Ok(dir.join(p))
}
