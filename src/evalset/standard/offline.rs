//! Reading the standard sets' original distribution files under `--data-dir DIR`, laid out like
//! `../shared/evaldata`: owns the [`Reader`] (each file read once, its sha256 kept for the
//! provenance), the shared parsers every set's reader uses (JSON Lines, fields, labels files)
//! and their errors, which name the file, the line and what was expected; a missing file names
//! the path expected under the data dir and the set. It must not know any set's format: each
//! set's own file ([`super::sets`]) reads its files through these.

use super::sets::StandardSet;
use super::{FileDigest, Provenance, Record};
use crate::error::usage;
use anyhow::Result;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// The files read so far, for the provenance record.
pub struct Reader<'a> {
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

    pub(super) fn exists(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// The file's text; a missing file is a usage error naming the expected path and the set.
    pub(super) fn read(&mut self, rel: &str) -> Result<(PathBuf, String)> {
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
pub(super) fn at(path: &Path, line: usize, msg: impl fmt::Display) -> anyhow::Error {
    usage(format!("{}:{line}: {msg}", path.display()))
}

/// The non-empty lines of a JSONL file parsed as JSON objects, with their 1-based line numbers.
pub(super) fn jsonl(path: &Path, text: &str) -> Result<Vec<(usize, Record)>> {
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

pub(super) fn field<'r>(path: &Path, line: usize, r: &'r Record, key: &str) -> Result<&'r Value> {
    r.get(key)
        .ok_or_else(|| at(path, line, format!("missing field `{key}`")))
}

pub(super) fn str_field<'r>(path: &Path, line: usize, r: &'r Record, key: &str) -> Result<&'r str> {
    field(path, line, r, key)?
        .as_str()
        .ok_or_else(|| at(path, line, format!("field `{key}` must be a string")))
}

pub(super) fn str_list(path: &Path, line: usize, v: &Value, what: &str) -> Result<Vec<String>> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| at(path, line, format!("`{what}` must be a list of strings")))
}

/// A labels file (.lst): one integer per line, each one of `allowed`.
pub(super) fn labels(path: &Path, text: &str, allowed: &[usize]) -> Result<Vec<usize>> {
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

pub(super) fn same_count(
    items: &Path,
    n_items: usize,
    labels: &Path,
    n_labels: usize,
) -> Result<()> {
    if n_items != n_labels {
        return Err(usage(format!(
            "{} has {n_items} items but {} has {n_labels} labels; they must match line by line",
            items.display(),
            labels.display()
        )));
    }
    Ok(())
}

/// The items of `set` from its files under `dir`.
pub fn load_records(set: &dyn StandardSet, dir: &Path) -> Result<(Vec<Record>, Provenance)> {
    let name = set.name();
    let mut rd = Reader::new(dir, name);
    let records = set.offline_items(&mut rd)?;
    if records.is_empty() {
        return Err(usage(format!(
            "standard set '{name}': the files under --data-dir {} hold no items",
            dir.display()
        )));
    }
    Ok((records, rd.provenance()))
}

/// The text of text set `set` from its file under `dir`.
pub fn load_text(set: &dyn StandardSet, dir: &Path) -> Result<(String, Provenance)> {
    let mut rd = Reader::new(dir, set.name());
    let text = set.offline_text(&mut rd)?;
    Ok((text, rd.provenance()))
}
