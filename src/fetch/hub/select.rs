//! Which files of a model repo make a model: owns the selection of a full-precision
//! safetensors checkpoint (config, tokenizer, optional tokenizer/generation configs, and
//! either one `model.safetensors` or an index plus every shard it names), whether a cached
//! snapshot is complete, and the error for repos without such a checkpoint. It must not
//! download or resolve anything itself (that goes through [`super::resolve`]).

use super::cache::RepoCache;
use super::resolve::{check_file_name, Online, Target};
use super::HubConfig;
use anyhow::{Context, Result};
use hf_hub::RepoType;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files every model needs.
const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json"];
/// Files used when the repo has them.
const OPTIONAL_FILES: &[&str] = &["tokenizer_config.json", "generation_config.json"];
const SINGLE_WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// Fetch a full-precision safetensors model: config.json, tokenizer.json,
/// (tokenizer_config.json and generation_config.json if present — absent is fine), and
/// either model.safetensors or model.safetensors.index.json plus every shard it names.
/// Returns the snapshot directory that holds them all.
pub fn fetch_safetensors_model(cfg: &HubConfig, repo: &str, revision: &str) -> Result<PathBuf> {
    let t = Target::new(cfg, repo, revision, RepoType::Model)?;
    match t.cache.commit_for(revision) {
        Some(commit) => {
            let missing = cached_model_missing(&t.cache, &commit, cfg.offline)?;
            if missing.is_empty() {
                return Ok(t.cache.snapshot_dir(&commit));
            }
            if cfg.offline {
                return Err(t.error(format!(
                    "offline mode (HF_HUB_OFFLINE) is on and model repo `{repo}` at revision \
                     `{revision}` (commit {commit}) is incomplete in the Hugging Face cache at \
                     {}: missing {}. Run once with network access (HF_HUB_OFFLINE unset) to \
                     download it, or point HF_HUB_CACHE/HF_HOME at the cache that has it.",
                    cfg.cache_dir.display(),
                    missing.join(", ")
                )));
            }
        }
        None if cfg.offline => {
            return Err(t.error(format!(
                "offline mode (HF_HUB_OFFLINE) is on and model repo `{repo}` at revision \
                 `{revision}` is not in the Hugging Face cache at {} (no {}). Run once with \
                 network access (HF_HUB_OFFLINE unset) to download it, or point \
                 HF_HUB_CACHE/HF_HOME at the cache that has it.",
                cfg.cache_dir.display(),
                t.cache.ref_path(revision).display()
            )));
        }
        None => {}
    }

    let online = Online::connect(&t)?;
    let commit = online.remote.commit.clone();
    for file in REQUIRED_FILES {
        online.ensure(file)?;
    }
    for file in OPTIONAL_FILES {
        if online.remote.files.contains_key(*file) {
            online.ensure(file)?;
        } else {
            t.cache
                .mark_missing(&commit, file)
                .with_context(|| format!("writing to the cache at {}", cfg.cache_dir.display()))?;
        }
    }
    if online.remote.files.contains_key(SINGLE_WEIGHTS) {
        online.ensure(SINGLE_WEIGHTS)?;
    } else if online.remote.files.contains_key(WEIGHTS_INDEX) {
        let index = online.ensure(WEIGHTS_INDEX)?;
        for shard in shards_of(&index.path)? {
            online.ensure(&shard)?;
        }
    } else {
        let others: Vec<&str> = online
            .remote
            .files
            .keys()
            .map(String::as_str)
            .filter(|f| {
                [".bin", ".gguf", ".pt", ".pth", ".safetensors", ".onnx"]
                    .iter()
                    .any(|ext| f.ends_with(ext))
            })
            .collect();
        return Err(t.error(format!(
            "model repo `{repo}` at revision `{revision}` has neither {SINGLE_WEIGHTS} nor \
             {WEIGHTS_INDEX}; a full-precision safetensors checkpoint is needed (weight files \
             in the repo: {}). Use the original model repo rather than a GGUF/GPTQ/AWQ or \
             PyTorch-only conversion.",
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            }
        )));
    }
    Ok(t.cache.snapshot_dir(&commit))
}

/// What of the model is missing from `snapshots/<commit>/` (empty: complete). Optional
/// files count as missing only online and only when not marked absent in `.no_exist/`.
fn cached_model_missing(cache: &RepoCache, commit: &str, offline: bool) -> Result<Vec<String>> {
    let has = |f: &str| cache.snapshot_file(commit, f).is_file();
    let mut missing: Vec<String> = REQUIRED_FILES
        .iter()
        .filter(|f| !has(f))
        .map(|f| f.to_string())
        .collect();
    if !offline {
        missing.extend(
            OPTIONAL_FILES
                .iter()
                .filter(|f| !has(f) && !cache.no_exist_path(commit, f).exists())
                .map(|f| f.to_string()),
        );
    }
    if !has(SINGLE_WEIGHTS) {
        if has(WEIGHTS_INDEX) {
            let shards = shards_of(&cache.snapshot_file(commit, WEIGHTS_INDEX))?;
            missing.extend(shards.into_iter().filter(|s| !has(s)));
        } else {
            missing.push(format!(
                "{SINGLE_WEIGHTS} (or {WEIGHTS_INDEX} and its shards)"
            ));
        }
    }
    Ok(missing)
}

#[derive(Deserialize)]
struct WeightsIndex {
    weight_map: BTreeMap<String, String>,
}

/// The distinct shard files named by a `model.safetensors.index.json`.
fn shards_of(index_path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let index: WeightsIndex = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid safetensors index (expected a `weight_map` object); delete it \
             to have it downloaded again",
            index_path.display()
        )
    })?;
    let shards: BTreeSet<String> = index.weight_map.into_values().collect();
    if shards.is_empty() {
        anyhow::bail!("{} names no shard files", index_path.display());
    }
    for shard in &shards {
        check_file_name(shard).with_context(|| {
            format!("{} names an invalid shard `{shard}`", index_path.display())
        })?;
    }
    Ok(shards.into_iter().collect())
}
