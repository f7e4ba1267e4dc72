//! The one download policy for every Hub file, models and data sets alike: owns building the
//! hf-hub client (endpoint, token, user agent, progress bars), retries, resuming, and checking
//! what arrived. It must not resolve revisions or pick files.
//!
//! Resuming: hf-hub downloads into `blobs/<etag>.part` and continues an existing `.part` with
//! `Range: bytes=<len>-`. Its own retry loop, though, restarts from the file position of its
//! handle, which is 0 when the first attempt of a run fails before writing a byte, so the whole
//! file would be appended to the partial one. The client is therefore built with no retries
//! and retries are done here ([`DOWNLOAD_ATTEMPTS`]): each attempt is a fresh hf-hub download
//! that continues the `.part` from its length. Before downloading, a partial file that cannot
//! be continued is settled: `huggingface_hub`'s `blobs/<etag>.incomplete` is adopted as the
//! `.part` (unless Python holds its lock), a `.part` longer than the file is removed, and one
//! of exactly the file's size is checked and moved into place (hf-hub would ask for a range
//! past the end and fail every time).
//!
//! Integrity: hf-hub does not check what it downloaded; freshly downloaded model files are
//! checked against the size and (for LFS files) the sha256 the Hub announced, pinned files
//! against their pin (see [`super::pinned`]).

use super::errors::is_transient;
use super::resolve::{Online, RemoteFile};
use super::HubConfig;
use crate::fsutil::sha256_file;
use anyhow::{Context, Result};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::Cache;
use std::path::{Path, PathBuf};

/// Attempts per file download; every attempt after the first continues the partial file.
pub const DOWNLOAD_ATTEMPTS: u32 = 5;

/// The hf-hub client for `cfg`: its endpoint, token, cache and progress bars, and no retries
/// of its own (they are done by [`download_with_retries`]).
pub(super) fn client(cfg: &HubConfig) -> std::result::Result<Api, ApiError> {
    // `from_cache` rather than `ApiBuilder::new().with_cache_dir(..)`: `new()` builds
    // the default cache first, which panics when there is no home directory.
    ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
        .with_endpoint(cfg.endpoint().to_string())
        .with_token(cfg.token.clone())
        .with_progress(cfg.progress)
        // Retried here, each attempt resuming the `.part` file (see the module docs).
        .with_retries(0)
        .with_user_agent(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .build()
}

/// Download `file` through hf-hub, retrying transient failures; every attempt continues the
/// `blobs/<etag>.part` file the previous one left.
pub(super) fn download_with_retries(
    api: &ApiRepo,
    file: &str,
) -> std::result::Result<PathBuf, ApiError> {
    let mut attempt = 1;
    loop {
        match api.download(file) {
            Ok(path) => return Ok(path),
            Err(e) if attempt < DOWNLOAD_ATTEMPTS && is_transient(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(200 << (attempt - 1)));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Online<'_, '_> {
    /// Download through the one retry policy, with the error worded for this request.
    pub(super) fn download(&self, file: &str) -> Result<PathBuf> {
        download_with_retries(&self.api, file).map_err(|e| self.t.api_error(e, Some(file)))
    }

    /// Make a partial download of `etag` continuable by hf-hub (see the module docs).
    /// Returns the snapshot path when the partial file was already the complete file.
    pub(super) fn settle_partial(
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
    pub(super) fn verify(&self, remote: &RemoteFile, file: &str, path: &Path) -> Result<()> {
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
