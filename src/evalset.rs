//! Eval-set definitions: a folder with `evalset.toml` (name, version, tasks) and its files, in the
//! spirit of lm-evaluation-harness task configs. Kinds: `text` (perplexity / KLD / top-1 on the
//! joined files), `choice` (log-likelihood of each choice) and `generate` (greedy decoding, answer
//! extraction, exact match). Tasks reuse each other with `extends`. Everything is checked at load:
//! unknown keys, missing fields, bad templates and regexes are errors naming the file, line and key.
//! This module owns finding and loading a set (its text tasks' text, the source of standard
//! sets' data); it must not score anything (that is `eval`) nor fetch by itself (`fetch`).

//!
//! Files by idea: `definition` (the evalset.toml format), `template` (prompt templates),
//! `items` (items files and templated items), [`standard`] (the standard benchmarks).

mod definition;
mod items;
pub mod standard;
mod template;

pub use definition::{parse, ChoiceSpec, FileHeader, GenerateSpec, ItemsFrom, TaskDef, TaskKind};
pub use items::{
    item_origin, prepare_choice, prepare_generate, read_jsonl, value_text, ChoiceItem,
    GenerateItem, Record,
};
pub use template::Template;

use crate::error::usage;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A loaded eval set.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub name: String,
    pub version: String,
    pub description: String,
    pub dir: PathBuf,
    /// The parts of the text of the `text` tasks, in order; empty when there is none.
    pub text: Vec<TextPart>,
    /// The choice and generate tasks.
    pub tasks: Vec<TaskDef>,
}

/// One part of an eval set's text: a local file's contents (read when the set is loaded), or a
/// standard text set, read by [`EvalSet::text`] when the run starts (it may come from the Hub,
/// and planning does not download).
#[derive(Debug, Clone)]
pub enum TextPart {
    Local(String),
    Standard(String),
}

impl EvalSet {
    /// Whether the eval set has any text to score.
    pub fn has_text(&self) -> bool {
        self.text.iter().any(|p| match p {
            TextPart::Local(s) => !s.trim().is_empty(),
            TextPart::Standard(_) => true,
        })
    }

    /// The whole text of the `text` tasks, parts joined by blank lines (standard sets read from
    /// `data`: --data-dir, or the Hub).
    pub fn text(&self, data: &DataOpts) -> Result<String> {
        let mut text = String::new();
        for part in &self.text {
            let s = match part {
                TextPart::Local(s) => s.clone(),
                TextPart::Standard(name) => standard_text(name, data)?,
            };
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&s);
        }
        Ok(text)
    }
}

/// Where an eval set's definition is: a folder with evalset.toml, or a standard benchmark's
/// built-in definition.
#[derive(Debug, Clone)]
pub enum EvalSetSource {
    Dir(PathBuf),
    Standard(&'static dyn standard::StandardSet),
}

impl std::fmt::Debug for dyn standard::StandardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "standard:{}", self.name())
    }
}

/// Find an eval set by path, by name under `evalsets/`, or by a standard benchmark's name (a
/// folder of that name overrides the built-in definition).
pub fn resolve(spec: &str, evalsets_root: &Path) -> Result<EvalSetSource> {
    let p = Path::new(spec);
    if p.join("evalset.toml").exists() {
        return Ok(EvalSetSource::Dir(p.to_path_buf()));
    }
    let named = evalsets_root.join(spec);
    if named.join("evalset.toml").exists() {
        return Ok(EvalSetSource::Dir(named));
    }
    if let Some(set) = standard::sets::find(spec) {
        return Ok(EvalSetSource::Standard(set));
    }
    let mut known: Vec<String> = std::fs::read_dir(evalsets_root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("evalset.toml").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    known.extend(standard::names().iter().map(|n| n.to_string()));
    known.sort();
    known.dedup();
    Err(usage(format!(
        "--evalset '{spec}': no evalset.toml at that path or under {}, and no standard benchmark of that name; known eval sets: {}",
        evalsets_root.display(),
        known.join(", ")
    )))
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

/// Load and validate an eval set folder: its definition and the local files of its text tasks.
/// Standard text sets and the items of choice/generate tasks are read when the run starts
/// ([`EvalSet::text`], `read_jsonl`, or the standard-set readers).
pub fn load(from: &EvalSetSource) -> Result<EvalSet> {
    let (src, def_path, dir) = match from {
        EvalSetSource::Dir(dir) => {
            let def_path = dir.join("evalset.toml");
            let src = std::fs::read_to_string(&def_path)
                .with_context(|| format!("cannot read {}", def_path.display()))?;
            (src, def_path, dir.clone())
        }
        EvalSetSource::Standard(set) => {
            let dir = PathBuf::from(format!("standard:{}", set.name()));
            (set.definition().to_string(), dir.join("evalset.toml"), dir)
        }
    };
    let dir = dir.as_path();
    let (h, tasks) = parse(&src, &def_path, dir)?;
    let mut text = Vec::new();
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
                    text.push(TextPart::Local(s.trim_end().to_string()));
                }
            }
            (TaskKind::Text, ItemsFrom::Standard(s)) => text.push(TextPart::Standard(s.clone())),
            _ => rest.push(t),
        }
    }
    let set = EvalSet {
        name: h.name,
        version: h.version,
        description: h.description,
        dir: dir.to_path_buf(),
        text,
        tasks: rest,
    };
    if !set.has_text() && set.tasks.is_empty() {
        return Err(usage(format!(
            "{}: nothing to evaluate (add a task with kind = \"text\" and non-empty files, or a choice/generate task)",
            def_path.display()
        )));
    }
    Ok(set)
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
        text: vec![TextPart::Local(text)],
        tasks: Vec::new(),
    })
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
        load(&EvalSetSource::Dir(d.path().into()))
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "name='x'\nversion='1'\n";

    /// A standard benchmark's name finds its built-in definition (one file: its set's), and a
    /// folder of that name under evalsets/ overrides it.
    #[test]
    fn standard_names_resolve_to_their_built_in_definition() {
        let root = tempfile::tempdir().unwrap();
        for set in standard::SETS {
            let from = resolve(set.name(), root.path()).unwrap();
            assert!(matches!(from, EvalSetSource::Standard(s) if s.name() == set.name()));
            let es = load(&from).unwrap();
            assert_eq!(es.name, set.name());
            assert!(es.has_text() || !es.tasks.is_empty(), "{}", set.name());
        }
        std::fs::create_dir(root.path().join("hellaswag")).unwrap();
        write_set(
            &root.path().join("hellaswag"),
            &format!("{HEAD}[[task]]\nname='t'\nkind='text'\nfiles=['a.txt']\n"),
        );
        std::fs::write(root.path().join("hellaswag/a.txt"), "words").unwrap();
        assert!(matches!(
            resolve("hellaswag", root.path()).unwrap(),
            EvalSetSource::Dir(_)
        ));
        let err = resolve("hellaswagg", root.path()).unwrap_err().to_string();
        assert!(err.contains("hellaswag") && err.contains("mmlu"), "{err}");
    }

    #[test]
    fn default_set_loads_with_its_tasks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("evalsets/default");
        let s = load(&EvalSetSource::Dir(root)).unwrap();
        assert_eq!(s.name, "default");
        assert!(
            s.text(&DataOpts::default())
                .unwrap()
                .split_whitespace()
                .count()
                >= 6000
        );
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
        let s = load(&EvalSetSource::Dir(d.path().into())).unwrap();
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
