//! The Hugging Face cache layout, identical to `huggingface_hub`: owns the paths inside one
//! repo's cache folder and the small writes into it (refs, `.no_exist/` markers, snapshot
//! links to existing blobs). It must not talk to the network or decide what to download.
//!
//! The cache root is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`
//! (see [`super::HubConfig`]); a repo `org/name` lives in `models--org--name/` (or
//! `datasets--org--name/`) with `blobs/<etag>` (file contents), `snapshots/<commit>/<file>`
//! (relative symlinks into `blobs/`), `refs/<revision>` (the commit a branch/tag resolved to)
//! and `.no_exist/<commit>/<file>` (markers for files known to be absent). `CacheRepo::get` of
//! hf-hub only follows `refs/<revision>`; Python writes no ref for a sha revision, so a sha is
//! looked up directly in `snapshots/<sha>/`.

use super::HubConfig;
use hf_hub::{Repo, RepoType};
use std::path::{Path, PathBuf};

pub(super) fn is_commit_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A string safe to use as one path component (commit shas, etags).
pub(super) fn is_plain_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(super) struct RepoCache {
    pub(super) dir: PathBuf,
}

impl RepoCache {
    /// The cache folder of `repo` (a model or datasets repo, `kind`).
    pub(super) fn new(cfg: &HubConfig, repo: &str, kind: RepoType) -> Self {
        let folder = Repo::new(repo.to_string(), kind).folder_name();
        RepoCache {
            dir: cfg.cache_dir.join(folder),
        }
    }

    pub(super) fn ref_path(&self, revision: &str) -> PathBuf {
        self.dir.join("refs").join(revision)
    }

    pub(super) fn commit_for(&self, revision: &str) -> Option<String> {
        if is_commit_sha(revision) {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.ref_path(revision)).ok()?;
        let commit = text.trim();
        is_plain_token(commit).then(|| commit.to_string())
    }

    pub(super) fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    pub(super) fn snapshot_file(&self, commit: &str, file: &str) -> PathBuf {
        self.snapshot_dir(commit).join(file)
    }

    pub(super) fn no_exist_path(&self, commit: &str, file: &str) -> PathBuf {
        self.dir.join(".no_exist").join(commit).join(file)
    }

    pub(super) fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub(super) fn write_ref(&self, revision: &str, commit: &str) -> std::io::Result<()> {
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

    pub(super) fn mark_missing(&self, commit: &str, file: &str) -> std::io::Result<()> {
        let path = self.no_exist_path(commit, file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(path).map(drop)
    }

    /// True while `huggingface_hub` holds its download lock for `etag`
    /// (`<cache>/.locks/models--org--name/<etag>.lock`, an flock).
    pub(super) fn python_download_running(&self, etag: &str) -> bool {
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
    pub(super) fn link_blob(
        &self,
        etag: &str,
        commit: &str,
        file: &str,
    ) -> std::io::Result<PathBuf> {
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
pub(super) fn remove_dangling(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata().is_ok() && !path.exists() {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
