//! Repo, revision and file resolution: owns checking the names that end up in cache paths,
//! one request's context ([`Target`]: config, repo, revision, its cache folder), resolving a
//! revision to a commit through the Hub's model-info API
//! (`/api/models/{repo}/revision/{rev}?blobs=true`, which also gives every file's etag and
//! size), and making one file present in `snapshots/<commit>/` — already there, linked to a
//! blob that is already in `blobs/` (hf-hub would download it again, e.g. the same weights
//! under another commit or tag), or downloaded. It must not retry or resume downloads itself
//! (that is [`super::download`]) nor word errors ([`super::errors`]).

use super::cache::{is_plain_token, remove_dangling, RepoCache};
use super::{download, Fetched, HubConfig};
use anyhow::{Context, Result};
use hf_hub::api::sync::{ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Fetch one file of a model repo at a revision; uses the cache when the file is there;
/// with offline=true never touches the network and fails with a clear error naming
/// repo, revision, file and the cache dir if it is not cached.
///
/// A revision already resolved in the cache (`refs/<revision>`) is not re-resolved, so a
/// cached branch is not updated when it moves on the Hub; pass a commit sha to pin one,
/// or delete the ref file to pick up the branch's new head.
pub fn fetch_file(cfg: &HubConfig, repo: &str, revision: &str, file: &str) -> Result<Fetched> {
    let t = Target::new(cfg, repo, revision, RepoType::Model)?;
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

/// The commit sha the revision resolved to (from the refs file in the cache), if known.
/// A full 40-hex commit sha is its own resolution.
pub fn resolved_commit(cfg: &HubConfig, repo: &str, revision: &str) -> Option<String> {
    if check_repo_id(repo, RepoType::Model).is_err() || check_revision(revision).is_err() {
        return None;
    }
    RepoCache::new(cfg, repo, RepoType::Model).commit_for(revision)
}

// ---------------------------------------------------------------------------------------
// Input checks (the names end up in cache paths)

/// The words for a repo of `kind` in messages: "model repo", "datasets repo".
pub(super) fn kind_name(kind: RepoType) -> &'static str {
    match kind {
        RepoType::Dataset => "datasets repo",
        RepoType::Space => "space",
        _ => "model repo",
    }
}

pub(super) fn check_repo_id(repo: &str, kind: RepoType) -> Result<()> {
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
            "invalid {} id `{repo}`: expected `org/name` (letters, digits, `-`, `_`, `.`)",
            kind_name(kind)
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

pub(super) fn check_revision(revision: &str) -> Result<()> {
    if !check_relative(revision) {
        anyhow::bail!("invalid revision `{revision}`: expected a branch, tag or commit sha");
    }
    Ok(())
}

pub(super) fn check_file_name(file: &str) -> Result<()> {
    if !check_relative(file) || file.contains(':') {
        anyhow::bail!("expected a relative path inside the repo, without `..`");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// One request context: config, repo, revision, cache; error wording is in `errors`.

pub(super) struct Target<'a> {
    pub(super) cfg: &'a HubConfig,
    pub(super) repo: &'a str,
    pub(super) revision: &'a str,
    /// A model or a datasets repo.
    pub(super) kind: RepoType,
    pub(super) cache: RepoCache,
}

impl<'a> Target<'a> {
    pub(super) fn new(
        cfg: &'a HubConfig,
        repo: &'a str,
        revision: &'a str,
        kind: RepoType,
    ) -> Result<Self> {
        check_repo_id(repo, kind)?;
        check_revision(revision)?;
        Ok(Target {
            cfg,
            repo,
            revision,
            kind,
            cache: RepoCache::new(cfg, repo, kind),
        })
    }

    pub(super) fn cached_file(&self, file: &str) -> Option<PathBuf> {
        let commit = self.cache.commit_for(self.revision)?;
        let path = self.cache.snapshot_file(&commit, file);
        path.is_file().then_some(path)
    }

    /// The hf-hub handle of this repo at this revision.
    pub(super) fn api_repo(&self, api: &hf_hub::api::sync::Api) -> ApiRepo {
        api.repo(Repo::with_revision(
            self.repo.to_string(),
            self.kind,
            self.revision.to_string(),
        ))
    }

    pub(super) fn what(&self, file: Option<&str>) -> String {
        let kind = kind_name(self.kind);
        match file {
            Some(f) => format!(
                "`{f}` of {kind} `{}` at revision `{}`",
                self.repo, self.revision
            ),
            None => format!("{kind} `{}` at revision `{}`", self.repo, self.revision),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Online: the Hub's view of the revision

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

/// One file as the Hub announced it.
pub(super) struct RemoteFile {
    pub(super) size: Option<u64>,
    /// Name of the blob in `blobs/`: the LFS sha256, else the git blob id.
    pub(super) etag: Option<String>,
    pub(super) lfs_sha256: Option<String>,
}

/// The Hub's view of one revision: its commit and files.
pub(super) struct RemoteRepo {
    pub(super) commit: String,
    pub(super) files: BTreeMap<String, RemoteFile>,
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

/// A revision resolved on the Hub, with the hf-hub handle that downloads its files.
pub(super) struct Online<'t, 'a> {
    pub(super) t: &'t Target<'a>,
    pub(super) api: ApiRepo,
    pub(super) remote: RemoteRepo,
}

impl<'t, 'a> Online<'t, 'a> {
    /// Build the hf-hub client and ask the Hub which commit the revision is at and which
    /// files (with etags and sizes) it has.
    pub(super) fn connect(t: &'t Target<'a>) -> Result<Self> {
        let cfg = t.cfg;
        let api = download::client(cfg).map_err(|e| t.api_error(e, None))?;
        let api = t.api_repo(&api);
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
    pub(super) fn ensure(&self, file: &str) -> Result<Fetched> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_repo_id("Qwen/Qwen2.5-0.5B-Instruct", RepoType::Model).is_ok());
        assert!(check_repo_id("gpt2", RepoType::Model).is_ok());
        for bad in ["", "a/b/c", "../x", "a/..", "a--b/c", "/a", "a b/c"] {
            assert!(check_repo_id(bad, RepoType::Model).is_err(), "{bad}");
        }
        assert!(check_revision("refs/pr/1").is_ok());
        assert!(check_revision("../../etc").is_err());
        assert!(check_file_name("onnx/model.onnx").is_ok());
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "c:\\x"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }
}
