//! Eval-set definitions: a folder with `evalset.toml` (name, version, tasks) and its files.
//! This version knows `text` tasks (perplexity / KLD / top-1 on the concatenated files).

pub mod standard;

use crate::error::usage;
use anyhow::{Context, Result};
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
    tasks: Vec<TaskDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskDef {
    name: String,
    kind: String,
    files: Vec<String>,
}

/// A loaded eval set.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub name: String,
    pub version: String,
    pub description: String,
    pub dir: PathBuf,
    /// The text of the `text` task (files joined by blank lines).
    pub text: String,
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
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("evalset.toml").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
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

/// Load and validate an eval set folder.
pub fn load(dir: &Path) -> Result<EvalSet> {
    let def_path = dir.join("evalset.toml");
    let src = std::fs::read_to_string(&def_path)
        .with_context(|| format!("cannot read {}", def_path.display()))?;
    let def: FileDef =
        toml::from_str(&src).map_err(|e| usage(format!("{}: {e}", def_path.display())))?;
    let mut text = String::new();
    let mut n_text = 0;
    for t in &def.tasks {
        match t.kind.as_str() {
            "text" => {
                n_text += 1;
                for f in &t.files {
                    let p = inside(dir, f).map_err(|e| {
                        usage(format!("{}: task '{}': {e}", def_path.display(), t.name))
                    })?;
                    let s = std::fs::read_to_string(&p).map_err(|e| {
                        usage(format!(
                            "{}: task '{}': cannot read '{f}': {e}",
                            def_path.display(),
                            t.name
                        ))
                    })?;
                    if !text.is_empty() {
                        text.push_str("\n\n");
                    }
                    text.push_str(s.trim_end());
                }
            }
            other => {
                return Err(usage(format!(
                    "{}: task '{}' has kind '{other}'; this version of qeval runs kind 'text'",
                    def_path.display(),
                    t.name
                )))
            }
        }
    }
    if n_text == 0 || text.trim().is_empty() {
        return Err(usage(format!(
            "{}: no text to evaluate (add a task with kind = \"text\" and non-empty files)",
            def_path.display()
        )));
    }
    Ok(EvalSet {
        name: def.name,
        version: def.version,
        description: def.description,
        dir: dir.to_path_buf(),
        text,
    })
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

    #[test]
    fn default_set_loads_and_is_long_enough() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("evalsets/default");
        let s = load(&root).unwrap();
        assert_eq!(s.name, "default");
        assert!(s.text.split_whitespace().count() >= 6000);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "name='x'\nversion='1'\nbogus=1\n[[task]]\nname='t'\nkind='text'\nfiles=[]\n",
        );
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("evalset.toml") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn files_cannot_escape_the_folder() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "name='x'\nversion='1'\n[[task]]\nname='t'\nkind='text'\nfiles=['../etc/passwd']\n",
        );
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("inside the eval set folder"), "{e}");
    }
}
