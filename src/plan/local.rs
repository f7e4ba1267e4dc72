//! `qeval models --local`: the models this machine already holds, in the Hugging Face cache,
//! Ollama's store and LM Studio's folder, each with the name `--model` (or `--gguf`) takes,
//! its architecture, the type mix of its weights, its size and its path. Reads headers only
//! (no hashing, no network); a file that cannot be read is listed with the reason.

use crate::fetch::stores;
use crate::model::source::ModelSource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One model found on this machine.
#[derive(Debug, Clone)]
pub struct LocalModel {
    /// As `--model` takes it (`ollama:qwen2.5:1.5b`, `lmstudio:P/R/F.gguf`, `hf:ORG/REPO`;
    /// for a GGUF in the Hub cache `hf:ORG/REPO/FILE.gguf`, as `--gguf LEVEL=` takes it).
    pub name: String,
    pub store: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    /// Architecture and type mix, or why the header could not be read.
    pub arch: String,
    pub types: String,
}

fn describe(path: &Path) -> (String, String) {
    match ModelSource::open(path) {
        Ok(src) => {
            let mut mix: BTreeMap<&str, u64> = BTreeMap::new();
            for t in &src.tensors {
                *mix.entry(t.source_dtype.as_str()).or_default() +=
                    t.shape.iter().product::<usize>() as u64;
            }
            let total: u64 = mix.values().sum::<u64>().max(1);
            let mut v: Vec<(&str, u64)> = mix.into_iter().collect();
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            let types = v
                .iter()
                .map(|(t, n)| format!("{t} {:.0}%", 100.0 * *n as f64 / total as f64))
                .collect::<Vec<_>>()
                .join(" ");
            let ft = src
                .file_type
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            (src.config.arch.name().to_string(), format!("{ft}{types}"))
        }
        Err(e) => (
            "?".into(),
            format!("unreadable: {}", e.to_string().lines().next().unwrap_or("")),
        ),
    }
}

fn size(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::metadata(e.path()).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// The Hub cache's models: GGUF files and safetensors snapshots (newest snapshot of each repo).
fn hub(root: &Path) -> Vec<LocalModel> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    let mut repos: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    repos.sort();
    for dir in repos {
        let Some(folder) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(rest) = folder.strip_prefix("models--") else {
            continue;
        };
        let repo = rest.replacen("--", "/", 1);
        let Ok(snaps) = std::fs::read_dir(dir.join("snapshots")) else {
            continue;
        };
        let mut snaps: Vec<PathBuf> = snaps.filter_map(|e| e.ok().map(|e| e.path())).collect();
        snaps.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let Some(snap) = snaps.last() else {
            continue;
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(snap)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "gguf"))
        {
            let file = f.file_name().map(|n| n.to_string_lossy().into_owned());
            out.push(LocalModel {
                name: format!("hf:{repo}/{}", file.unwrap_or_default()),
                store: "hub",
                path: f.clone(),
                bytes: size(f),
                arch: String::new(),
                types: String::new(),
            });
        }
        if snap.join("config.json").is_file()
            && files
                .iter()
                .any(|f| f.extension().is_some_and(|x| x == "safetensors"))
        {
            out.push(LocalModel {
                name: format!("hf:{repo}"),
                store: "hub",
                path: snap.clone(),
                bytes: size(snap),
                arch: String::new(),
                types: String::new(),
            });
        }
    }
    out
}

/// Everything the three stores hold, with the headers read.
pub fn scan(hub_root: &Path) -> Vec<LocalModel> {
    let mut all = hub(hub_root);
    if let Ok(root) = stores::ollama_root() {
        for (name, blob, bytes) in stores::list_ollama(&root) {
            all.push(LocalModel {
                name: format!("ollama:{name}"),
                store: "ollama",
                path: blob,
                bytes,
                arch: String::new(),
                types: String::new(),
            });
        }
    }
    if let Ok(root) = stores::lmstudio_root() {
        for (name, path) in stores::list_lmstudio(&root) {
            all.push(LocalModel {
                name,
                store: "lmstudio",
                bytes: size(&path),
                path,
                arch: String::new(),
                types: String::new(),
            });
        }
    }
    for m in &mut all {
        (m.arch, m.types) = describe(&m.path);
    }
    all
}

/// The `qeval models --local` table.
pub fn table(models: &[LocalModel]) -> String {
    if models.is_empty() {
        return "no local models: nothing in the Hugging Face cache, Ollama's store or LM Studio's folder (HF_HUB_CACHE, OLLAMA_MODELS, LMSTUDIO_MODELS point elsewhere)\n".into();
    }
    let heads: Vec<String> = ["name", "arch", "size", "types", "path"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.arch.clone(),
                crate::fmt::bytes(m.bytes),
                m.types.clone(),
                m.path.display().to_string(),
            ]
        })
        .collect();
    crate::report::table::aligned(&heads, &rows, false)
}
