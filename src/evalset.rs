//! Eval-set definitions: a folder with `evalset.toml` (name, version, tasks) and its files, in the
//! spirit of lm-evaluation-harness task configs. Kinds: `text` (perplexity / KLD / top-1 on the
//! joined files), `choice` (log-likelihood of each choice) and `generate` (greedy decoding, answer
//! extraction, exact match). Tasks reuse each other with `extends`. Everything is checked at load:
//! unknown keys, missing fields, bad templates and regexes are errors naming the file, line and key.

pub mod standard;

use crate::error::usage;
use anyhow::{Context, Result};
use regex::Regex;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// A prompt template: literal text and `{field}` holes; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Template {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_alphanumeric() || c == '_' || c == '-' => name.push(c),
                            Some(c) => {
                                return Err(format!(
                                    "template '{s}': '{c}' inside {{...}}; a field name is letters, digits, '_' or '-' (write {{{{ for a literal brace)"
                                ))
                            }
                            None => return Err(format!("template '{s}': unclosed '{{'")),
                        }
                    }
                    if name.is_empty() {
                        return Err(format!("template '{s}': empty {{}}"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => {
                    return Err(format!(
                        "template '{s}': unmatched '}}' (write }}}} for a literal brace)"
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            parts,
            source: s.to_string(),
        })
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Lit(_) => None,
        })
    }

    pub fn uses(&self, field: &str) -> bool {
        self.fields().any(|f| f == field)
    }

    /// Fill the holes from `item`; `choice` fills `{choice}` when given. Err names the missing field.
    pub fn render(
        &self,
        item: &Record,
        choice: Option<&str>,
    ) -> std::result::Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Field(f) if f == "choice" && choice.is_some() => {
                    out.push_str(choice.unwrap_or_default())
                }
                Part::Field(f) => match item.get(f) {
                    Some(v) => out.push_str(&value_text(v).ok_or_else(|| {
                        format!(
                            "field '{f}' is not a string or number (template '{}')",
                            self.source
                        )
                    })?),
                    None => {
                        return Err(format!(
                            "no field '{f}' (template '{}' uses it)",
                            self.source
                        ))
                    }
                },
            }
        }
        Ok(out)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

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

/// A loaded eval set.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub name: String,
    pub version: String,
    pub description: String,
    pub dir: PathBuf,
    /// The text of the `text` tasks (files joined by blank lines); empty when there is none.
    pub text: String,
    /// The choice and generate tasks.
    pub tasks: Vec<TaskDef>,
}

/// Find an eval set by name (a folder under `evalsets/`) or path.
pub fn resolve(spec: &str, evalsets_root: &Path) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.join("evalset.toml").exists() {
        return Ok(p.to_path_buf());
    }
    let named = evalsets_root.join(spec);
    if named.join("evalset.toml").exists() {
        return Ok(named);
    }
    let known: Vec<String> = std::fs::read_dir(evalsets_root)
        .map(|rd| {
            let mut v: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("evalset.toml").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    Err(usage(format!(
        "--evalset '{spec}': no evalset.toml at that path or under {}; known eval sets: {}",
        evalsets_root.display(),
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    )))
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
    let from = match (&t.files, &t.items, &t.source) {
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
    };
    let k = t.kind.as_str();
    let kind = match k {
        "text" => {
            for (present, key) in [
                (t.context.is_some(), "context"),
                (t.choices.is_some(), "choices"),
                (t.answer.is_some(), "answer"),
                (t.prompt.is_some(), "prompt"),
                (t.metrics.is_some(), "metrics"),
            ] {
                forbid(present, key, origin, &name, k)?;
            }
            TaskKind::Text
        }
        "choice" => {
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
            TaskKind::Choice(ChoiceSpec {
                context,
                choices: need(t.choices, "choices", origin, &name, k)?,
                continuation,
                answer: need(t.answer, "answer", origin, &name, k)?,
                metrics,
            })
        }
        "generate" => {
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
            TaskKind::Generate(GenerateSpec {
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
            })
        }
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
        note: t.note.unwrap_or_default(),
        origin: origin.to_string(),
    })
}

/// Where standard sets (`source = "hellaswag"` etc.) are read from: `--data-dir` holding the
/// original distribution files, or else the Hugging Face Hub.
#[derive(Debug, Clone, Default)]
pub struct DataOpts {
    pub data_dir: Option<PathBuf>,
}

/// The records of a standard set, and a name for messages.
pub fn standard_records(name: &str, data: &DataOpts) -> Result<(Vec<Record>, String)> {
    let hub = crate::fetch::hub::HubConfig::from_env();
    let from = match &data.data_dir {
        Some(d) => standard::DataSource::DataDir(d),
        None => standard::DataSource::Hub(&hub),
    };
    let recs = standard::load_records(name, &from)?;
    let origin = match &data.data_dir {
        Some(d) => format!("{name} (from {})", d.display()),
        None => format!("{name} (from the Hub)"),
    };
    Ok((recs, origin))
}

/// The text of a standard text set (wikitext2).
pub fn standard_text(name: &str, data: &DataOpts) -> Result<String> {
    let hub = crate::fetch::hub::HubConfig::from_env();
    let from = match &data.data_dir {
        Some(d) => standard::DataSource::DataDir(d),
        None => standard::DataSource::Hub(&hub),
    };
    standard::load_text(name, &from)
}

/// Load and validate an eval set folder: its definition and the text of its text tasks. The items
/// of choice/generate tasks are read later (`read_jsonl`, or the standard-set readers).
pub fn load(dir: &Path, data: &DataOpts) -> Result<EvalSet> {
    let def_path = dir.join("evalset.toml");
    let src = std::fs::read_to_string(&def_path)
        .with_context(|| format!("cannot read {}", def_path.display()))?;
    let (h, tasks) = parse(&src, &def_path, dir)?;
    let mut text = String::new();
    let mut rest = Vec::new();
    for t in tasks {
        match (&t.kind, &t.from) {
            (TaskKind::Text, ItemsFrom::Files(files)) => {
                for p in files {
                    let s = std::fs::read_to_string(p).map_err(|e| {
                        usage(format!(
                            "{}: task '{}': cannot read '{}': {e}",
                            t.origin,
                            t.name,
                            p.display()
                        ))
                    })?;
                    if !text.is_empty() {
                        text.push_str("\n\n");
                    }
                    text.push_str(s.trim_end());
                }
            }
            (TaskKind::Text, ItemsFrom::Standard(s)) => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&standard_text(s, data)?);
            }
            _ => rest.push(t),
        }
    }
    if text.trim().is_empty() && rest.is_empty() {
        return Err(usage(format!(
            "{}: nothing to evaluate (add a task with kind = \"text\" and non-empty files, or a choice/generate task)",
            def_path.display()
        )));
    }
    Ok(EvalSet {
        name: h.name,
        version: h.version,
        description: h.description,
        dir: dir.to_path_buf(),
        text,
        tasks: rest,
    })
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

/// A text file given with `--text` as a one-file eval set.
pub fn from_text_file(path: &Path) -> Result<EvalSet> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--text {}: cannot read: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Err(usage(format!(
            "--text {}: the file is empty",
            path.display()
        )));
    }
    let version = crate::fsutil::sha256_file(path)?[..12].to_string();
    Ok(EvalSet {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "text".into()),
        version: format!("sha256:{version}"),
        description: format!("text file {}", path.display()),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        text,
        tasks: Vec::new(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(dir: &Path, toml: &str) {
        std::fs::write(dir.join("evalset.toml"), toml).unwrap();
    }

    fn err_of(toml: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), toml);
        load(d.path(), &DataOpts::default())
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "name='x'\nversion='1'\n";

    #[test]
    fn default_set_loads_with_its_tasks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("evalsets/default");
        let s = load(&root, &DataOpts::default()).unwrap();
        assert_eq!(s.name, "default");
        assert!(s.text.split_whitespace().count() >= 6000);
        let kinds: Vec<&str> = s.tasks.iter().map(|t| t.kind.name()).collect();
        assert!(
            kinds.contains(&"choice") && kinds.contains(&"generate"),
            "{kinds:?}"
        );
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = err_of(&format!(
            "{HEAD}bogus=1\n[[task]]\nname='t'\nkind='text'\nfiles=[]\n"
        ));
        assert!(e.contains("evalset.toml") && e.contains("bogus"), "{e}");
        let e = err_of(&format!(
            "{HEAD}\n[[task]]\nname='t'\nkind='choice'\nitems='i.jsonl'\ncontext='{{q}}'\nchoices='c'\nanswer='a'\ncolour='red'\n"
        ));
        assert!(e.contains("evalset.toml:4") && e.contains("colour"), "{e}");
    }

    #[test]
    fn missing_key_names_task_line_and_key() {
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='t'\nkind='choice'\nitems='i.jsonl'\ncontext='{{q}}'\nanswer='a'\n"
        ));
        assert!(
            e.contains("evalset.toml:3") && e.contains("'choices'") && e.contains("task 't'"),
            "{e}"
        );
    }

    #[test]
    fn bad_regex_and_bad_template_are_named() {
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='g'\nkind='generate'\nitems='i.jsonl'\nprompt='{{q}}'\nanswer='a'\nextract='([0-9]+'\n"
        ));
        assert!(e.contains("'extract'") && e.contains("regex"), "{e}");
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='g'\nkind='generate'\nitems='i.jsonl'\nprompt='{{q'\nanswer='a'\n"
        ));
        assert!(e.contains("'prompt'") && e.contains("unclosed"), "{e}");
    }

    #[test]
    fn extends_overrides_and_unknown_base_is_named() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            &format!("{HEAD}[[task]]\nname='a'\nkind='choice'\nitems='i.jsonl'\ncontext='Q: {{q}}'\nchoices='c'\nanswer='g'\n[[task]]\nname='b'\nextends='a'\nitems='j.jsonl'\n"),
        );
        let s = load(d.path(), &DataOpts::default()).unwrap();
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(
            s.tasks[1].from,
            ItemsFrom::Files(vec![d.path().join("j.jsonl")])
        );
        match &s.tasks[1].kind {
            TaskKind::Choice(c) => assert_eq!(c.context.source(), "Q: {q}"),
            k => panic!("{k:?}"),
        }
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='b'\nextends='zzz'\nkind='choice'\n"
        ));
        assert!(e.contains("'zzz'") && e.contains("extends"), "{e}");
    }

    #[test]
    fn files_cannot_escape_the_folder() {
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='t'\nkind='text'\nfiles=['../etc/passwd']\n"
        ));
        assert!(e.contains("inside the eval set folder"), "{e}");
        let e = err_of(&format!(
            "{HEAD}[[task]]\nname='t'\nkind='choice'\nitems='/etc/passwd'\ncontext='{{q}}'\nchoices='c'\nanswer='a'\n"
        ));
        assert!(e.contains("inside the eval set folder"), "{e}");
    }

    #[test]
    fn templates_render_fields_and_braces() {
        let t = Template::parse("Q: {q} {{x}} -> {choice}").unwrap();
        let mut r = Record::new();
        r.insert("q".into(), serde_json::json!("why?"));
        assert_eq!(
            t.render(&r, Some("because")).unwrap(),
            "Q: why? {x} -> because"
        );
        let e = t.render(&Record::new(), Some("c")).unwrap_err();
        assert!(e.contains("'q'"), "{e}");
        let n = Template::parse("{n} apples").unwrap();
        r.insert("n".into(), serde_json::json!(3));
        assert_eq!(n.render(&r, None).unwrap(), "3 apples");
    }

    #[test]
    fn jsonl_errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.jsonl");
        std::fs::write(&p, "{\"id\":\"a\"}\n{\"id\":\"b\"\n").unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("i.jsonl:2"), "{e}");
        std::fs::write(&p, "{\"id\":\"a\"}\n{\"x\":1}\n").unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("i.jsonl:2") && e.contains("id"), "{e}");
        std::fs::write(&p, "{\"id\":\"a\"}\n\n{\"id\":\"a\"}\n").unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("i.jsonl:3") && e.contains("duplicate"), "{e}");
    }
}
