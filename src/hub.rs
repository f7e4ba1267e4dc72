//! Hugging Face Hub access: owns fetching model files from the Hub (or a mirror at
//! `HF_ENDPOINT`) into the standard Hugging Face cache, so downloads made by Python
//! `huggingface_hub`/`transformers` are reused and nothing is fetched twice.
//!
//! Cache layout (identical to `huggingface_hub`): the cache root is `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; a model repo `org/name` lives in
//! `models--org--name/` with `blobs/<etag>` (file contents), `snapshots/<commit>/<file>`
//! (relative symlinks into `blobs/`), `refs/<revision>` (the commit a branch/tag
//! resolved to) and `.no_exist/<commit>/<file>` (markers for files known to be absent).
//!
//! Downloads go through `hf-hub`'s blocking API (`hf_hub::api::sync`), which writes the
//! blob, the snapshot symlink and the ref. Things hf-hub 0.4.3 does not do, handled here:
//!
//! * Offline lookups and lookups by commit sha: `CacheRepo::get` only follows
//!   `refs/<revision>`; Python does not write a ref for a sha revision, so a sha is
//!   looked up directly in `snapshots/<sha>/`, and offline mode never builds a client.
//! * Blob reuse: hf-hub downloads a file again even when its blob is already in
//!   `blobs/` (e.g. the same weights under another commit or tag). Before downloading we
//!   ask the Hub's model-info API (`/api/models/{repo}/revision/{rev}?blobs=true`) for
//!   the commit and every file's etag (LFS sha256 or git blob id) and link an existing
//!   blob into the snapshot instead of downloading it.
//! * Known-absent files: hf-hub does not read or write `.no_exist/` markers; this module
//!   does both (for the optional files of a model), so a complete cached model needs no
//!   network at all.
//! * Resuming: hf-hub downloads into `blobs/<etag>.part` and continues an existing
//!   `.part` with `Range: bytes=<len>-`. Its own retry loop, though, restarts from the
//!   file position of its handle, which is 0 when the first attempt of a run fails before
//!   writing a byte, so the whole file would be appended to the partial one. Retries are
//!   therefore done here ([`DOWNLOAD_ATTEMPTS`]): each attempt is a fresh hf-hub download
//!   that continues the `.part` from its length. Before downloading, a partial file that
//!   cannot be continued is settled: `huggingface_hub`'s `blobs/<etag>.incomplete` is
//!   adopted as the `.part` (unless Python holds its lock), a `.part` longer than the file
//!   is removed, and one of exactly the file's size is checked and moved into place (hf-hub
//!   would ask for a range past the end and fail every time).
//! * Integrity: hf-hub does not check what it downloaded; freshly downloaded files are
//!   checked against the size and (for LFS files) the sha256 the Hub announced.
//! * Error messages: hf-hub's errors are raw HTTP/transport errors; they are mapped here
//!   to messages that say what to do (HF_TOKEN, the licence page, HF_HUB_OFFLINE, ...).
//!   The token never appears in a message (and is redacted defensively).

use anyhow::{anyhow, Context, Result};
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The public Hugging Face Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files every model needs.
const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json"];
/// Files used when the repo has them.
const OPTIONAL_FILES: &[&str] = &["tokenizer_config.json", "generation_config.json"];
const SINGLE_WEIGHTS: &str = "model.safetensors";
/// Attempts per file download; every attempt after the first continues the partial file.
pub const DOWNLOAD_ATTEMPTS: u32 = 5;
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// Where and how to talk to the Hub, and where the cache is.
#[derive(Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Base URL of the Hub, e.g. `https://huggingface.co` (no trailing slash needed).
    pub endpoint: String,
    /// Access token for gated/private repos. Never printed.
    pub token: Option<String>,
    /// The hub cache root (the directory holding `models--org--name/`).
    pub cache_dir: PathBuf,
    /// Never touch the network; only use what is in the cache.
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .finish()
    }
}

impl HubConfig {
    /// Configuration from the environment, with the same variables and precedence as
    /// `huggingface_hub`: `HF_ENDPOINT` (default `https://huggingface.co`); token from
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file (`$HF_TOKEN_PATH`,
    /// default `$HF_HOME/token`); cache from `HF_HUB_CACHE` (or the legacy
    /// `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, with `HF_HOME` defaulting to
    /// `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`; offline when
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is `1`/`true`/`yes`/`on`; progress
    /// bars unless `HF_HUB_DISABLE_PROGRESS_BARS` is set to such a value.
    pub fn from_env() -> HubConfig {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> HubConfig {
        let get = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let home = get("HOME")
            .or_else(|| get("USERPROFILE"))
            .map(PathBuf::from);
        let expand = |v: String| -> PathBuf {
            match (&home, v.strip_prefix('~')) {
                (Some(h), Some("")) => h.clone(),
                (Some(h), Some(rest)) if rest.starts_with('/') || rest.starts_with('\\') => {
                    h.join(&rest[1..])
                }
                _ => PathBuf::from(v),
            }
        };
        let hf_home = get("HF_HOME").map(&expand).unwrap_or_else(|| {
            get("XDG_CACHE_HOME")
                .map(&expand)
                .or_else(|| home.as_ref().map(|h| h.join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(&expand)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = get("HF_TOKEN")
            .or_else(|| get("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = get("HF_TOKEN_PATH")
                    .map(&expand)
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let endpoint = get("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let truthy = |k: &str| {
            get(k).is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
            })
        };
        HubConfig {
            endpoint,
            token,
            cache_dir,
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
            progress: !truthy("HF_HUB_DISABLE_PROGRESS_BARS"),
        }
    }

    fn endpoint(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }
}

/// A file made available locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Path of the file inside `snapshots/<commit>/` of the cache.
    pub path: PathBuf,
    /// True when nothing was downloaded (the file or its blob was already cached).
    pub from_cache: bool,
}

/// Fetch one file of a model repo at a revision; uses the cache when the file is there;
/// with offline=true never touches the network and fails with a clear error naming
/// repo, revision, file and the cache dir if it is not cached.
///
/// A revision already resolved in the cache (`refs/<revision>`) is not re-resolved, so a
/// cached branch is not updated when it moves on the Hub; pass a commit sha to pin one,
/// or delete the ref file to pick up the branch's new head.
pub fn fetch_file(cfg: &HubConfig, repo: &str, revision: &str, file: &str) -> Result<Fetched> {
    let t = Target::new(cfg, repo, revision)?;
    check_file_name(file).with_context(|| format!("invalid file name `{file}`"))?;
    if let Some(path) = t.cached_file(file) {
        return Ok(Fetched {
            path,
            from_cache: true,
        });
    }
    if cfg.offline {
        return Err(t.offline_file_error(file));
    }
    let online = Online::connect(&t)?;
    online.ensure(file)
}

/// Fetch a full-precision safetensors model: config.json, tokenizer.json,
/// (tokenizer_config.json and generation_config.json if present — absent is fine), and
/// either model.safetensors or model.safetensors.index.json plus every shard it names.
/// Returns the snapshot directory that holds them all.
pub fn fetch_safetensors_model(cfg: &HubConfig, repo: &str, revision: &str) -> Result<PathBuf> {
    let t = Target::new(cfg, repo, revision)?;
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

/// The commit sha the revision resolved to (from the refs file in the cache), if known.
/// A full 40-hex commit sha is its own resolution.
pub fn resolved_commit(cfg: &HubConfig, repo: &str, revision: &str) -> Option<String> {
    if check_repo_id(repo).is_err() || check_revision(revision).is_err() {
        return None;
    }
    RepoCache::new(cfg, repo).commit_for(revision)
}

// ---------------------------------------------------------------------------------------
// The cache

fn is_commit_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A string safe to use as one path component (commit shas, etags).
fn is_plain_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    fn new(cfg: &HubConfig, repo: &str) -> Self {
        let folder = Repo::new(repo.to_string(), RepoType::Model).folder_name();
        RepoCache {
            dir: cfg.cache_dir.join(folder),
        }
    }

    fn ref_path(&self, revision: &str) -> PathBuf {
        self.dir.join("refs").join(revision)
    }

    fn commit_for(&self, revision: &str) -> Option<String> {
        if is_commit_sha(revision) {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.ref_path(revision)).ok()?;
        let commit = text.trim();
        is_plain_token(commit).then(|| commit.to_string())
    }

    fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    fn snapshot_file(&self, commit: &str, file: &str) -> PathBuf {
        self.snapshot_dir(commit).join(file)
    }

    fn no_exist_path(&self, commit: &str, file: &str) -> PathBuf {
        self.dir.join(".no_exist").join(commit).join(file)
    }

    fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    fn write_ref(&self, revision: &str, commit: &str) -> std::io::Result<()> {
        // Like huggingface_hub: no ref for a revision that is the commit itself.
        if revision == commit {
            return Ok(());
        }
        let path = self.ref_path(revision);
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, commit)
    }

    fn mark_missing(&self, commit: &str, file: &str) -> std::io::Result<()> {
        let path = self.no_exist_path(commit, file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(path).map(drop)
    }

    /// True while `huggingface_hub` holds its download lock for `etag`
    /// (`<cache>/.locks/models--org--name/<etag>.lock`, an flock).
    fn python_download_running(&self, etag: &str) -> bool {
        let (Some(root), Some(folder)) = (self.dir.parent(), self.dir.file_name()) else {
            return false;
        };
        let lock = root
            .join(".locks")
            .join(folder)
            .join(format!("{etag}.lock"));
        let Ok(f) = std::fs::File::open(&lock) else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this function owns; released when `f` closes.
            let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            got != 0
        }
        #[cfg(not(unix))]
        {
            drop(f);
            false
        }
    }

    /// Make `snapshots/<commit>/<file>` point at the existing `blobs/<etag>`.
    fn link_blob(&self, etag: &str, commit: &str, file: &str) -> std::io::Result<PathBuf> {
        let snap = self.snapshot_file(commit, file);
        if snap.is_file() {
            return Ok(snap);
        }
        remove_dangling(&snap)?;
        if let Some(parent) = snap.parent() {
            std::fs::create_dir_all(parent)?;
        }
        #[cfg(unix)]
        let made = std::os::unix::fs::symlink(relative_blob_target(file, etag), &snap);
        #[cfg(not(unix))]
        let made = std::fs::copy(self.blob_path(etag), &snap).map(drop);
        match made {
            Ok(()) => Ok(snap),
            // Another process linked it meanwhile.
            Err(_) if snap.is_file() => Ok(snap),
            Err(e) => Err(e),
        }
    }
}

/// `snapshots/<commit>/<file>` → `../../blobs/<etag>` (one more `..` per subdirectory).
#[cfg_attr(not(unix), allow(dead_code))]
fn relative_blob_target(file: &str, etag: &str) -> PathBuf {
    let depth = file.split('/').count() + 1;
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.push("blobs");
    target.push(etag);
    target
}

/// Remove a symlink whose blob is gone, so it can be recreated.
fn remove_dangling(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata().is_ok() && !path.exists() {
        std::fs::remove_file(path)?;
    }
    Ok(())
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

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

// ---------------------------------------------------------------------------------------
// Input checks (the names end up in cache paths)

fn check_repo_id(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['.', '-'])
            && !p.ends_with(['.', '-'])
            && !p.contains("--")
            && !p.contains("..")
    };
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        anyhow::bail!(
            "invalid model repo id `{repo}`: expected `org/name` (letters, digits, `-`, `_`, `.`)"
        );
    }
    Ok(())
}

fn check_relative(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn check_revision(revision: &str) -> Result<()> {
    if !check_relative(revision) {
        anyhow::bail!("invalid revision `{revision}`: expected a branch, tag or commit sha");
    }
    Ok(())
}

fn check_file_name(file: &str) -> Result<()> {
    if !check_relative(file) || file.contains(':') {
        anyhow::bail!("expected a relative path inside the repo, without `..`");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// One request context: config, repo, revision, cache; error wording lives here.

struct Target<'a> {
    cfg: &'a HubConfig,
    repo: &'a str,
    revision: &'a str,
    cache: RepoCache,
}

impl<'a> Target<'a> {
    fn new(cfg: &'a HubConfig, repo: &'a str, revision: &'a str) -> Result<Self> {
        check_repo_id(repo)?;
        check_revision(revision)?;
        Ok(Target {
            cfg,
            repo,
            revision,
            cache: RepoCache::new(cfg, repo),
        })
    }

    fn cached_file(&self, file: &str) -> Option<PathBuf> {
        let commit = self.cache.commit_for(self.revision)?;
        let path = self.cache.snapshot_file(&commit, file);
        path.is_file().then_some(path)
    }

    /// An error whose text has the token (if any) redacted.
    fn error(&self, msg: String) -> anyhow::Error {
        anyhow!(redact(&msg, self.cfg.token.as_deref()))
    }

    fn what(&self, file: Option<&str>) -> String {
        match file {
            Some(f) => format!(
                "`{f}` of model repo `{}` at revision `{}`",
                self.repo, self.revision
            ),
            None => format!("model repo `{}` at revision `{}`", self.repo, self.revision),
        }
    }

    fn offline_file_error(&self, file: &str) -> anyhow::Error {
        let known_absent = self
            .cache
            .commit_for(self.revision)
            .filter(|c| self.cache.no_exist_path(c, file).exists())
            .map(|c| format!(" (the Hub reported that it does not exist at commit {c})"))
            .unwrap_or_default();
        self.error(format!(
            "offline mode (HF_HUB_OFFLINE) is on and {} is not in the Hugging Face cache at \
             {}{known_absent}. Run once with network access (HF_HUB_OFFLINE unset) to download \
             it, or point HF_HUB_CACHE/HF_HOME at the cache that has it.",
            self.what(Some(file)),
            self.cfg.cache_dir.display()
        ))
    }

    fn not_found_error(&self, file: &str, remote: &RemoteRepo) -> anyhow::Error {
        let mut listing: Vec<&str> = remote.files.keys().map(String::as_str).take(20).collect();
        if remote.files.len() > listing.len() {
            listing.push("...");
        }
        self.error(format!(
            "{} not found (404): the repo at commit {} has no such file; files there: {}. \
             See {}/{}/tree/{}",
            self.what(Some(file)),
            remote.commit,
            if listing.is_empty() {
                "none".to_string()
            } else {
                listing.join(", ")
            },
            self.cfg.endpoint(),
            self.repo,
            self.revision
        ))
    }

    /// Turn an hf-hub error into a message that says what went wrong and what to do.
    fn api_error(&self, err: ApiError, file: Option<&str>) -> anyhow::Error {
        let what = self.what(file);
        let endpoint = self.cfg.endpoint();
        let msg = match err {
            ApiError::RequestError(e) => {
                let summary = e.to_string();
                let kind = format!("{:?}", e.kind());
                let io_kind = io_error_kind(&*e);
                match (*e).into_response() {
                    Some(resp) => {
                        let code = resp.header("x-error-code").unwrap_or_default().to_string();
                        let server = resp
                            .header("x-error-message")
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default();
                        self.http_error_message(resp.status(), &code, &server, file, &what)
                    }
                    None => self.transport_message(&kind, io_kind, &summary, &what),
                }
            }
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => format!(
                "{endpoint} did not answer like the Hugging Face Hub while fetching {what}: \
                 response header `{h}` is missing or invalid. Check HF_ENDPOINT (it must point \
                 at the Hub or a Hub mirror) and any proxy in between."
            ),
            ApiError::LockAcquisition(p) => format!(
                "could not lock {} to download {what}: another process is downloading the same \
                 file. Wait for it to finish (or delete the lock file if no such process runs).",
                p.display()
            ),
            ApiError::TooManyRetries(inner) => {
                let inner = self.api_error(*inner, file);
                format!("download kept failing after retries: {inner}")
            }
            ApiError::IoError(e) if is_network_io(e.kind()) => {
                self.transport_message("Io", Some(e.kind()), &e.to_string(), &what)
            }
            ApiError::InvalidResume => format!(
                "the partial download of {what} in {} is corrupt (larger than the file); delete \
                 the `*.part` files there and try again",
                self.cache.dir.join("blobs").display()
            ),
            other => format!(
                "failed to fetch {what} from {endpoint} into the cache at {}: {other}",
                self.cfg.cache_dir.display()
            ),
        };
        self.error(msg)
    }

    fn http_error_message(
        &self,
        status: u16,
        code: &str,
        server: &str,
        file: Option<&str>,
        what: &str,
    ) -> String {
        let endpoint = self.cfg.endpoint();
        let (repo, revision) = (self.repo, self.revision);
        let token_state = if self.cfg.token.is_some() {
            "a token was sent (from HF_TOKEN or the token file) but it was refused or has no \
             access to this repo"
        } else {
            "no token was sent (HF_TOKEN is not set and there is no token file)"
        };
        match (status, code) {
            (401 | 403, "RepoNotFound") => format!(
                "cannot access {what}: HTTP {status}, repository not found or private on \
                 {endpoint}{server}; {token_state}. Check the repo id; for a private repo set \
                 HF_TOKEN to a token with read access."
            ),
            (401 | 403, _) => format!(
                "access to {what} was denied: HTTP {status}{server}; {token_state}. If the model \
                 is gated, open {endpoint}/{repo} while logged in, accept its licence, then set \
                 HF_TOKEN to a read token of that account (https://huggingface.co/settings/tokens)."
            ),
            (404, "RepoNotFound") => format!(
                "model repo `{repo}` not found on {endpoint} (HTTP 404){server}. Check the repo id \
                 (a private repo also needs HF_TOKEN)."
            ),
            (404, "RevisionNotFound") => format!(
                "revision `{revision}` not found in model repo `{repo}` on {endpoint} (HTTP \
                 404){server}. Check the branch, tag or commit sha."
            ),
            (404, _) => match file {
                Some(f) => format!(
                    "`{f}` not found (HTTP 404) in model repo `{repo}` at revision `{revision}` on \
                     {endpoint}{server}. See {endpoint}/{repo}/tree/{revision}"
                ),
                None => format!(
                    "{what} not found on {endpoint} (HTTP 404){server}. Check the repo id, the \
                     revision, and HF_ENDPOINT."
                ),
            },
            (429, _) => format!(
                "the Hub at {endpoint} is rate-limiting requests (HTTP 429) while fetching \
                 {what}. Wait a bit and retry; authenticated requests (HF_TOKEN) get higher \
                 limits."
            ),
            (500..=599, _) => format!(
                "the Hub at {endpoint} failed with HTTP {status} while fetching {what}{server}. \
                 Retry later, or set HF_HUB_OFFLINE=1 to use only files already in the cache \
                 ({}).",
                self.cfg.cache_dir.display()
            ),
            _ => format!(
                "unexpected HTTP {status} from {endpoint} while fetching {what}{server}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" [x-error-code: {code}]")
                }
            ),
        }
    }

    fn transport_message(
        &self,
        kind: &str,
        io_kind: Option<std::io::ErrorKind>,
        summary: &str,
        what: &str,
    ) -> String {
        use std::io::ErrorKind as K;
        let endpoint = self.cfg.endpoint();
        let cache = self.cfg.cache_dir.display();
        let unreachable = matches!(kind, "ConnectionFailed" | "Dns" | "ProxyConnect")
            || matches!(
                io_kind,
                Some(K::ConnectionRefused | K::TimedOut | K::AddrNotAvailable | K::NotConnected)
            );
        if unreachable {
            format!(
                "cannot reach the Hugging Face Hub at {endpoint} to fetch {what}: {summary}. \
                 Check the network, proxy settings and HF_ENDPOINT; to use only files already \
                 in the cache ({cache}) set HF_HUB_OFFLINE=1."
            )
        } else {
            format!(
                "network error while fetching {what} from {endpoint}: {summary}. Run again to \
                 resume (partial downloads are kept in the cache at {cache}); set \
                 HF_HUB_OFFLINE=1 to use only cached files."
            )
        }
    }
}

/// I/O error kinds of a connection that broke; worth another attempt.
fn is_network_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::UnexpectedEof
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::ConnectionRefused
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::NotConnected
    )
}

/// A failure another attempt may get past: a broken connection, a transport error, or
/// the Hub being busy (429, 5xx). Refusals (401, 403, 404, ...) are final.
fn is_transient(err: &ApiError) -> bool {
    match err {
        ApiError::IoError(e) => is_network_io(e.kind()),
        ApiError::RequestError(e) => match &**e {
            ureq::Error::Status(code, _) => *code == 429 || *code >= 500,
            ureq::Error::Transport(_) => true,
        },
        ApiError::TooManyRetries(inner) => is_transient(inner),
        _ => false,
    }
}

fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}

fn redact(msg: &str, token: Option<&str>) -> String {
    match token.map(str::trim) {
        Some(t) if t.len() >= 4 => msg.replace(t, "<redacted>"),
        _ => msg.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Online: the Hub's view of the revision, and downloads through hf-hub

#[derive(Deserialize)]
struct InfoJson {
    sha: String,
    #[serde(default)]
    siblings: Vec<SiblingJson>,
}

#[derive(Deserialize)]
struct SiblingJson {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<LfsJson>,
}

#[derive(Deserialize)]
struct LfsJson {
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
}

struct RemoteFile {
    size: Option<u64>,
    /// Name of the blob in `blobs/`: the LFS sha256, else the git blob id.
    etag: Option<String>,
    lfs_sha256: Option<String>,
}

struct RemoteRepo {
    commit: String,
    files: BTreeMap<String, RemoteFile>,
}

impl RemoteRepo {
    fn from_info(info: InfoJson) -> Option<Self> {
        if !is_plain_token(&info.sha) {
            return None;
        }
        let files = info
            .siblings
            .into_iter()
            .map(|s| {
                let lfs_sha256 = s
                    .lfs
                    .as_ref()
                    .map(|l| l.sha256.to_ascii_lowercase())
                    .filter(|h| h.len() == 64 && is_plain_token(h));
                let etag = match &s.lfs {
                    Some(_) => lfs_sha256.clone(),
                    None => s.blob_id.filter(|b| is_plain_token(b)),
                };
                let size = s.lfs.as_ref().and_then(|l| l.size).or(s.size);
                (
                    s.rfilename,
                    RemoteFile {
                        size,
                        etag,
                        lfs_sha256,
                    },
                )
            })
            .collect();
        Some(RemoteRepo {
            commit: info.sha,
            files,
        })
    }
}

struct Online<'t, 'a> {
    t: &'t Target<'a>,
    api: ApiRepo,
    remote: RemoteRepo,
}

impl<'t, 'a> Online<'t, 'a> {
    /// Build the hf-hub client and ask the Hub which commit the revision is at and which
    /// files (with etags and sizes) it has.
    fn connect(t: &'t Target<'a>) -> Result<Self> {
        let cfg = t.cfg;
        // `from_cache` rather than `ApiBuilder::new().with_cache_dir(..)`: `new()` builds
        // the default cache first, which panics when there is no home directory.
        let api = ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
            .with_endpoint(cfg.endpoint().to_string())
            .with_token(cfg.token.clone())
            .with_progress(cfg.progress)
            // Retried here, each attempt resuming the `.part` file (see the module docs).
            .with_retries(0)
            .with_user_agent(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| t.api_error(e, None))?;
        let api = api.repo(Repo::with_revision(
            t.repo.to_string(),
            RepoType::Model,
            t.revision.to_string(),
        ));
        let info: InfoJson = match api.info_request().query("blobs", "true").call() {
            Ok(resp) => serde_json::from_reader(resp.into_reader()).map_err(|e| {
                t.error(format!(
                    "{} did not answer like the Hugging Face Hub for the info of {}: {e}. \
                     Check HF_ENDPOINT.",
                    cfg.endpoint(),
                    t.what(None)
                ))
            })?,
            Err(e) => return Err(t.api_error(ApiError::from(Box::new(e)), None)),
        };
        let remote = RemoteRepo::from_info(info).ok_or_else(|| {
            t.error(format!(
                "{} answered with an invalid commit sha for {}",
                cfg.endpoint(),
                t.what(None)
            ))
        })?;
        t.cache
            .write_ref(t.revision, &remote.commit)
            .with_context(|| format!("writing to the cache at {}", cfg.cache_dir.display()))?;
        Ok(Online { t, api, remote })
    }

    /// Make `file` present in `snapshots/<commit>/`: already there, linked to an existing
    /// blob, or downloaded through hf-hub.
    fn ensure(&self, file: &str) -> Result<Fetched> {
        let t = self.t;
        let cache = &t.cache;
        let commit = &self.remote.commit;
        let cache_ctx = || format!("writing to the cache at {}", t.cfg.cache_dir.display());
        let snap = cache.snapshot_file(commit, file);
        if snap.is_file() {
            return Ok(Fetched {
                path: snap,
                from_cache: true,
            });
        }
        let Some(remote) = self.remote.files.get(file) else {
            // Remember the absence like huggingface_hub does; failing to is harmless.
            let _ = cache.mark_missing(commit, file);
            return Err(t.not_found_error(file, &self.remote));
        };
        remove_dangling(&snap).with_context(cache_ctx)?;
        if let Some(etag) = &remote.etag {
            let blob = cache.blob_path(etag);
            let size_ok = |len: u64| remote.size.is_none_or(|s| s == len);
            if std::fs::metadata(&blob).is_ok_and(|m| m.is_file() && size_ok(m.len())) {
                let path = cache
                    .link_blob(etag, commit, file)
                    .with_context(cache_ctx)?;
                return Ok(Fetched {
                    path,
                    from_cache: true,
                });
            }
        }
        if let (Some(etag), Some(size)) = (&remote.etag, remote.size) {
            if let Some(path) = self.settle_partial(remote, etag, size, file)? {
                return Ok(Fetched {
                    path,
                    from_cache: false,
                });
            }
        }
        let path = self.download(file)?;
        // hf-hub resolves the revision again (x-repo-commit); if the branch moved since
        // the info request the file lands in another snapshot.
        if !path.starts_with(cache.snapshot_dir(commit)) {
            return Err(t.error(format!(
                "revision `{}` of `{}` moved to a new commit while downloading (expected {commit}, \
                 got {}); run again",
                t.revision,
                t.repo,
                path.display()
            )));
        }
        self.verify(remote, file, &path)?;
        Ok(Fetched {
            path,
            from_cache: false,
        })
    }

    /// Download through hf-hub, retrying transient failures; every attempt continues the
    /// `blobs/<etag>.part` file the previous one left.
    fn download(&self, file: &str) -> Result<PathBuf> {
        let mut attempt = 1;
        loop {
            match self.api.download(file) {
                Ok(path) => return Ok(path),
                Err(e) if attempt < DOWNLOAD_ATTEMPTS && is_transient(&e) => {
                    std::thread::sleep(std::time::Duration::from_millis(200 << (attempt - 1)));
                    attempt += 1;
                }
                Err(e) => return Err(self.t.api_error(e, Some(file))),
            }
        }
    }

    /// Make a partial download of `etag` continuable by hf-hub (see the module docs).
    /// Returns the snapshot path when the partial file was already the complete file.
    fn settle_partial(
        &self,
        remote: &RemoteFile,
        etag: &str,
        size: u64,
        file: &str,
    ) -> Result<Option<PathBuf>> {
        let cache = &self.t.cache;
        let cache_ctx = || format!("writing to the cache at {}", self.t.cfg.cache_dir.display());
        let blob = cache.blob_path(etag);
        let part = blob.with_extension("part");
        let incomplete = blob.with_extension("incomplete");
        if !part.exists() && incomplete.is_file() && !cache.python_download_running(etag) {
            std::fs::rename(&incomplete, &part).with_context(cache_ctx)?;
        }
        let Ok(len) = std::fs::metadata(&part).map(|m| m.len()) else {
            return Ok(None);
        };
        if len < size {
            return Ok(None);
        }
        let complete = len == size
            && match &remote.lfs_sha256 {
                Some(expected) => sha256_file(&part).is_ok_and(|got| got == *expected),
                None => false,
            };
        if !complete {
            std::fs::remove_file(&part).with_context(cache_ctx)?;
            return Ok(None);
        }
        std::fs::rename(&part, &blob).with_context(cache_ctx)?;
        let path = cache
            .link_blob(etag, &self.remote.commit, file)
            .with_context(cache_ctx)?;
        Ok(Some(path))
    }

    /// Check a fresh download against the size and sha256 the Hub announced; remove it
    /// when it does not match so the next run downloads it again.
    fn verify(&self, remote: &RemoteFile, file: &str, path: &Path) -> Result<()> {
        let t = self.t;
        let read_ctx = || format!("reading {}", path.display());
        let len = std::fs::metadata(path).with_context(read_ctx)?.len();
        let problem = match remote.size {
            Some(size) if size != len => Some(format!("{len} bytes instead of {size}")),
            _ => match &remote.lfs_sha256 {
                Some(expected) => {
                    let got = sha256_file(path).with_context(read_ctx)?;
                    (got != *expected).then(|| format!("sha256 {got} instead of {expected}"))
                }
                None => None,
            },
        };
        let Some(problem) = problem else {
            return Ok(());
        };
        if let Ok(blob) = std::fs::canonicalize(path) {
            let _ = std::fs::remove_file(blob);
        }
        let _ = std::fs::remove_file(path);
        Err(t.error(format!(
            "download of {} is corrupt ({problem}); it was removed from the cache, run again",
            t.what(Some(file))
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg_from(vars: &[(&str, &str)]) -> HubConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn env_defaults_follow_huggingface_hub() {
        let cfg = cfg_from(&[("HOME", "/home/u")]);
        assert_eq!(cfg.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(
            cfg.cache_dir,
            PathBuf::from("/home/u/.cache/huggingface/hub")
        );
        assert!(!cfg.offline);
        assert!(cfg.progress);
        let cfg = cfg_from(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(cfg.cache_dir, PathBuf::from("/x/huggingface/hub"));
    }

    #[test]
    fn env_overrides() {
        let cfg = cfg_from(&[
            ("HOME", "/home/u"),
            ("HF_HOME", "~/hf"),
            ("HF_ENDPOINT", "http://mirror.local/"),
            ("HF_HUB_OFFLINE", "True"),
            ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
        ]);
        assert_eq!(cfg.cache_dir, PathBuf::from("/home/u/hf/hub"));
        assert_eq!(cfg.endpoint, "http://mirror.local");
        assert!(cfg.offline);
        assert!(!cfg.progress);
        assert_eq!(cfg.token.as_deref(), Some("hf_legacy"));
        let cfg = cfg_from(&[
            ("HF_HOME", "/h"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_TOKEN", "hf_new"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(cfg.cache_dir, PathBuf::from("/c"));
        assert_eq!(cfg.token.as_deref(), Some("hf_new"));
        assert!(cfg.offline);
        assert!(!cfg_from(&[("HF_HUB_OFFLINE", "0")]).offline);
    }

    #[test]
    fn token_file_is_read_from_hf_home() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("token"), "hf_from_file\n")?;
        let home = dir.path().to_string_lossy().into_owned();
        let cfg = cfg_from(&[("HF_HOME", &home)]);
        assert_eq!(cfg.token.as_deref(), Some("hf_from_file"));
        assert_eq!(cfg.cache_dir, dir.path().join("hub"));
        Ok(())
    }

    #[test]
    fn debug_output_hides_the_token() {
        let cfg = cfg_from(&[("HF_TOKEN", "hf_secret_value"), ("HOME", "/h")]);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hf_secret_value"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_repo_id("Qwen/Qwen2.5-0.5B-Instruct").is_ok());
        assert!(check_repo_id("gpt2").is_ok());
        for bad in ["", "a/b/c", "../x", "a/..", "a--b/c", "/a", "a b/c"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        assert!(check_revision("refs/pr/1").is_ok());
        assert!(check_revision("../../etc").is_err());
        assert!(check_file_name("onnx/model.onnx").is_ok());
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "c:\\x"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_links_are_relative() {
        assert_eq!(
            relative_blob_target("config.json", "abc"),
            PathBuf::from("../../blobs/abc")
        );
        assert_eq!(
            relative_blob_target("sub/dir/x.bin", "abc"),
            PathBuf::from("../../../../blobs/abc")
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("token hf_abcdef in text", Some("hf_abcdef")),
            "token <redacted> in text"
        );
        assert_eq!(redact("text", None), "text");
    }
}
