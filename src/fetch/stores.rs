//! Models already on this machine in other tools' stores, read without those tools running:
//! Ollama's (`ollama:NAME[:TAG]`: a manifest per tag, content-addressed blobs) and LM Studio's
//! (`lmstudio:PUBLISHER/REPO[/FILE.gguf]`: two folder levels of GGUF files). Resolves a name to
//! the GGUF file with its provenance (Ollama's blob digest, checked against the file: size
//! always, sha256 once per size and modification time), reads Ollama's template, system and
//! params layers, and lists what each store holds. It does not parse the GGUF itself.

use crate::error::usage;
use crate::fsutil::sha256_file;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Ollama's default registry and namespace, as its own model names leave them out.
const OLLAMA_REGISTRY: &str = "registry.ollama.ai";
const OLLAMA_NAMESPACE: &str = "library";
const OLLAMA_TAG: &str = "latest";
/// The media type of the layer holding the GGUF weights.
pub const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";

/// An Ollama manifest, in the shape Ollama writes it (server/manifest.go).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Layer,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// An Ollama model found in the store.
#[derive(Debug, Clone)]
pub struct OllamaModel {
    /// `NAME:TAG` as Ollama shows it (`qwen2.5:1.5b`; `HOST/NAMESPACE/NAME:TAG` off the library).
    pub name: String,
    pub manifest_path: PathBuf,
    /// The GGUF blob and its digest (`sha256:HEX`).
    pub blob: PathBuf,
    pub digest: String,
    pub size: u64,
    /// The chat template Ollama uses (a Go template), its system prompt and parameters (stop
    /// words among them), when the manifest has those layers.
    pub template: Option<String>,
    pub system: Option<String>,
    pub params: Option<serde_json::Value>,
}

/// The Ollama store: `$OLLAMA_MODELS`, else `~/.ollama/models`, else the Linux service's
/// `/usr/share/ollama/.ollama/models`; the first that has a `manifests` folder (or `$OLLAMA_MODELS`
/// as given). Err names every place looked at.
pub fn ollama_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("OLLAMA_MODELS") {
        return Ok(PathBuf::from(d));
    }
    let mut tried = Vec::new();
    if let Some(h) = std::env::var_os("HOME") {
        tried.push(PathBuf::from(h).join(".ollama/models"));
    }
    tried.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
    for d in &tried {
        if d.join("manifests").is_dir() {
            return Ok(d.clone());
        }
    }
    Err(not_found("Ollama store", &tried, "OLLAMA_MODELS"))
}

/// A model's name as Ollama shows it: the default registry and namespace left out.
fn ollama_name(host: &str, ns: &str, name: &str, tag: &str) -> String {
    if host == OLLAMA_REGISTRY && ns == OLLAMA_NAMESPACE {
        format!("{name}:{tag}")
    } else if host == OLLAMA_REGISTRY {
        format!("{ns}/{name}:{tag}")
    } else {
        format!("{host}/{ns}/{name}:{tag}")
    }
}

/// The error for a store found in none of the places looked at.
fn not_found(what: &str, tried: &[PathBuf], var: &str) -> anyhow::Error {
    usage(format!(
        "no {what}: looked in {} (set {var} to it)",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `NAME[:TAG]`, `NAMESPACE/NAME[:TAG]` or `HOST/NAMESPACE/NAME[:TAG]` -> the manifest's path
/// under `manifests/` and the name as Ollama shows it.
fn ollama_manifest_rel(spec: &str) -> Result<(PathBuf, String)> {
    let bad = |why: &str| {
        usage(format!(
            "ollama:{spec}: {why}; expected ollama:NAME[:TAG] (e.g. ollama:qwen2.5:1.5b), ollama:NAMESPACE/NAME[:TAG] or ollama:HOST/NAMESPACE/NAME[:TAG]"
        ))
    };
    let (path, tag) = match spec.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (spec, OLLAMA_TAG),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !parts.iter().all(|p| ok(p)) || !ok(tag) {
        return Err(bad(
            "a part of the name is empty or has characters a model name cannot",
        ));
    }
    let (host, ns, name) = match parts.as_slice() {
        [n] => (OLLAMA_REGISTRY, OLLAMA_NAMESPACE, *n),
        [ns, n] => (OLLAMA_REGISTRY, *ns, *n),
        [h, ns, n] => (*h, *ns, *n),
        _ => return Err(bad("too many '/'")),
    };
    let shown = ollama_name(host, ns, name, tag);
    Ok((Path::new(host).join(ns).join(name).join(tag), shown))
}

/// `sha256:HEX` (64 lowercase hex digits) -> the blob's file name `sha256-HEX`.
pub fn blob_file_name(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| format!("sha256-{hex}"))
}

/// Resolve `ollama:SPEC` in the store at `root`: the model's blob, checked (size against the
/// manifest; sha256 against the digest, once per size and modification time).
pub fn resolve_ollama(root: &Path, spec: &str) -> Result<OllamaModel> {
    let (rel, shown) = ollama_manifest_rel(spec)?;
    let manifest_path = root.join("manifests").join(&rel);
    if !manifest_path.is_file() {
        let tags = rel
            .parent()
            .map(|d| root.join("manifests").join(d))
            .and_then(|d| std::fs::read_dir(d).ok())
            .map(|rd| {
                let mut t: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                t.sort();
                t
            })
            .unwrap_or_default();
        let have = if tags.is_empty() {
            "no tag of that model is there (`qeval models --local` lists what is)".to_string()
        } else {
            format!("tags there: {}", tags.join(", "))
        };
        return Err(usage(format!(
            "ollama:{spec}: no manifest {} in the Ollama store {}; {have}",
            manifest_path.display(),
            root.display()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .map_err(|e| {
        usage(format!(
            "ollama:{spec}: {} is not an Ollama manifest: {e}",
            manifest_path.display()
        ))
    })?;
    let layer = |media: &str| manifest.layers.iter().find(|l| l.media_type == media);
    let model = layer(OLLAMA_MODEL_LAYER).ok_or_else(|| {
        usage(format!(
            "ollama:{spec}: the manifest {} has no layer of type {OLLAMA_MODEL_LAYER} (its layers: {})",
            manifest_path.display(),
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let blob = blob_path(root, &model.digest, spec)?;
    verify_blob(&blob, &model.digest, model.size, &format!("ollama:{spec}"))?;
    let text = |media: &str| -> Result<Option<String>> {
        match layer(media) {
            Some(l) => {
                let p = blob_path(root, &l.digest, spec)?;
                Ok(Some(std::fs::read_to_string(&p).with_context(|| {
                    format!(
                        "ollama:{spec}: cannot read its {media} layer {}",
                        p.display()
                    )
                })?))
            }
            None => Ok(None),
        }
    };
    let params = match text("application/vnd.ollama.image.params")? {
        Some(t) => Some(
            serde_json::from_str(&t)
                .map_err(|e| usage(format!("ollama:{spec}: its params layer is not JSON: {e}")))?,
        ),
        None => None,
    };
    Ok(OllamaModel {
        name: shown,
        manifest_path,
        blob,
        digest: model.digest.clone(),
        size: model.size,
        template: text("application/vnd.ollama.image.template")?,
        system: text("application/vnd.ollama.image.system")?,
        params,
    })
}

fn blob_path(root: &Path, digest: &str, spec: &str) -> Result<PathBuf> {
    let f = blob_file_name(digest).ok_or_else(|| {
        usage(format!(
            "ollama:{spec}: the manifest names the digest '{digest}', not sha256:<64 hex digits>"
        ))
    })?;
    Ok(root.join("blobs").join(f))
}

/// Hashes already checked, by file: size, modification time and the sha256 then found.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Verified {
    files: BTreeMap<String, VerifiedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct VerifiedFile {
    size: u64,
    mtime_ns: u64,
    sha256: String,
}

fn verified_path() -> PathBuf {
    super::pypi::cache_dir().join("verified-blobs.json")
}

/// Check a content-addressed file: its size against `size`, its sha256 against `digest`
/// (hashed once; remembered by path, size and modification time in qeval's cache).
pub fn verify_blob(path: &Path, digest: &str, size: u64, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        usage(format!(
            "{what}: its blob {} is missing ({e}); the store is incomplete (pull the model again)",
            path.display()
        ))
    })?;
    if meta.len() != size {
        return Err(usage(format!(
            "{what}: its blob {} has {} bytes but the manifest says {size}; the file is truncated or changed (pull the model again)",
            path.display(),
            meta.len()
        )));
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let want = digest.strip_prefix("sha256:").unwrap_or(digest);
    let key = path.display().to_string();
    let store = verified_path();
    let mut verified: Verified = std::fs::read(&store)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let known = verified
        .files
        .get(&key)
        .filter(|v| v.size == size && v.mtime_ns == mtime_ns);
    let sha = match known {
        Some(v) => v.sha256.clone(),
        None => {
            let s = sha256_file(path)?;
            // Forget files that are gone (temporary stores, pruned blobs).
            verified.files.retain(|f, _| Path::new(f).exists());
            verified.files.insert(
                key,
                VerifiedFile {
                    size,
                    mtime_ns,
                    sha256: s.clone(),
                },
            );
            if let Some(d) = store.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            // A cache: losing it costs one more hash, so a failed write is not an error.
            let _ = crate::fsutil::write_atomic(&store, &serde_json::to_vec_pretty(&verified)?);
            s
        }
    };
    if sha != want {
        return Err(usage(format!(
            "{what}: its blob {} has sha256 {sha}, not the manifest's {digest}; the file is damaged (pull the model again)",
            path.display()
        )));
    }
    Ok(())
}

/// Every model in the Ollama store at `root` whose manifest has a GGUF layer, by name, with
/// its blob (not verified: listing hashes nothing).
pub fn list_ollama(root: &Path) -> Vec<(String, PathBuf, u64)> {
    let mut out = Vec::new();
    let base = root.join("manifests");
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(rel) = p.strip_prefix(&base) else {
                continue;
            };
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let [host, ns, name, tag] = parts.as_slice() else {
                continue;
            };
            let Some(m) = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
            else {
                continue;
            };
            let Some(l) = m.layers.iter().find(|l| l.media_type == OLLAMA_MODEL_LAYER) else {
                continue;
            };
            let Some(f) = blob_file_name(&l.digest) else {
                continue;
            };
            let shown = ollama_name(host, ns, name, tag);
            out.push((shown, root.join("blobs").join(f), l.size));
        }
    }
    out.sort();
    out
}

/// LM Studio's models folder: `$LMSTUDIO_MODELS`, else `~/.lmstudio/models`, else the older
/// `~/.cache/lm-studio/models`. Err names every place looked at.
pub fn lmstudio_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("LMSTUDIO_MODELS") {
        return Ok(PathBuf::from(d));
    }
    let mut tried = Vec::new();
    if let Some(h) = std::env::var_os("HOME") {
        let h = PathBuf::from(h);
        tried.push(h.join(".lmstudio/models"));
        tried.push(h.join(".cache/lm-studio/models"));
    }
    for d in &tried {
        if d.is_dir() {
            return Ok(d.clone());
        }
    }
    Err(not_found(
        "LM Studio models folder",
        &tried,
        "LMSTUDIO_MODELS",
    ))
}

/// The GGUF files directly in `dir`, sorted by name.
fn ggufs_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "gguf"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `lmstudio:PUBLISHER/REPO[/FILE.gguf]` in the folder at `root` -> the GGUF file. With no FILE
/// the folder must hold exactly one GGUF (an `mmproj-` vision projector does not count).
pub fn resolve_lmstudio(root: &Path, spec: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = spec.split('/').collect();
    let bad = || {
        usage(format!(
            "lmstudio:{spec}: expected lmstudio:PUBLISHER/REPO or lmstudio:PUBLISHER/REPO/FILE.gguf (the two folder levels under {})",
            root.display()
        ))
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad());
    }
    let (dir, file) = match parts.as_slice() {
        [p, r] => (root.join(p).join(r), None),
        [p, r, f] if f.ends_with(".gguf") => (root.join(p).join(r), Some(*f)),
        _ => return Err(bad()),
    };
    if !dir.is_dir() {
        return Err(usage(format!(
            "lmstudio:{spec}: no folder {} in LM Studio's models folder (`qeval models --local` lists what is there)",
            dir.display()
        )));
    }
    let all = ggufs_in(&dir);
    let names = |v: &[PathBuf]| {
        v.iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match file {
        Some(f) => {
            let p = dir.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(usage(format!(
                    "lmstudio:{spec}: no file {f} in {}; its GGUF files: {}",
                    dir.display(),
                    names(&all)
                )))
            }
        }
        None => {
            let models: Vec<PathBuf> = all
                .iter()
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("mmproj"))
                })
                .cloned()
                .collect();
            match models.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(usage(format!(
                    "lmstudio:{spec}: {} holds no GGUF file",
                    dir.display()
                ))),
                many => Err(usage(format!(
                    "lmstudio:{spec}: {} holds {} GGUF files; name one: {}",
                    dir.display(),
                    many.len(),
                    many.iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| format!("lmstudio:{spec}/{}", n.to_string_lossy()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

/// Every GGUF file in LM Studio's folder at `root`, as `lmstudio:PUBLISHER/REPO/FILE.gguf`.
pub fn list_lmstudio(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let sub = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for publisher in sub(root) {
        for repo in sub(&publisher) {
            for f in ggufs_in(&repo) {
                let name = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                out.push((
                    format!("lmstudio:{}/{}/{}", name(&publisher), name(&repo), name(&f)),
                    f,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_manifest_paths_as_ollama_lays_them_out() {
        let (p, s) = ollama_manifest_rel("qwen2.5:1.5b").unwrap();
        assert_eq!(p, Path::new("registry.ollama.ai/library/qwen2.5/1.5b"));
        assert_eq!(s, "qwen2.5:1.5b");
        let (p, _) = ollama_manifest_rel("llama3.2").unwrap();
        assert_eq!(p, Path::new("registry.ollama.ai/library/llama3.2/latest"));
        let (p, s) = ollama_manifest_rel("hf.co/bartowski/Qwen2.5-1.5B-GGUF:Q4_K_M").unwrap();
        assert_eq!(p, Path::new("hf.co/bartowski/Qwen2.5-1.5B-GGUF/Q4_K_M"));
        assert_eq!(s, "hf.co/bartowski/Qwen2.5-1.5B-GGUF:Q4_K_M");
        for bad in ["", "a/../b", "a:b:c/d", "a/b/c/d", "x:"] {
            assert!(ollama_manifest_rel(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_well_formed_digests_name_blobs() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_file_name(&format!("sha256:{hex}")),
            Some(format!("sha256-{hex}"))
        );
        assert_eq!(blob_file_name(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(blob_file_name("sha256:abc"), None);
        assert_eq!(blob_file_name(&format!("md5:{hex}")), None);
        assert_eq!(blob_file_name(&format!("sha256:../{}", &hex[3..])), None);
    }
}
