//! Files pinned to a commit and a sha256 — the standard evaluation sets' parquet files in their
//! datasets repos: owns fetching such a file once into the Hugging Face cache
//! (`datasets--org--name/`, the layout `huggingface_hub` uses, so a download made by Python is
//! reused) through the one download policy, and checking it after every download and on every
//! use from the cache. It must not read the file's contents (rows, columns): that is
//! `evalset::standard`.
//!
//! A pin without a published sha256 is trusted on first use: the digest of the first download
//! (or of the first copy found in the cache) is recorded next to the cached file, in
//! `snapshots/<commit>/<file>.sha256` (`sha256sum` format), and every later use is checked
//! against it. Such a file is reported as not verified ([`PinnedFile::verified`] is false).

use super::download::{client, download_with_retries};
use super::resolve::{check_file_name, Target};
use super::HubConfig;
use crate::fsutil::sha256_file;
use anyhow::{anyhow, Context, Result};
use hf_hub::RepoType;
use std::path::{Path, PathBuf};

/// Where a pinned file lives on the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPin {
    /// Datasets repo, `org/name`.
    pub repo: String,
    /// A commit of that repo.
    pub revision: String,
    /// Path of the file inside the repo.
    pub file: String,
    /// Its sha256, when published; checked after every download and on every use from the
    /// cache. Without it the digest recorded at the first download is checked instead.
    pub sha256: Option<String>,
    /// Its size in bytes, when known; checked with the sha256.
    pub bytes: Option<u64>,
}

/// A pinned file in the cache, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// Path of the file inside `snapshots/<commit>/` of the cache.
    pub path: PathBuf,
    /// The commit it was fetched at.
    pub commit: String,
    /// Its sha256 and size.
    pub sha256: String,
    pub bytes: u64,
    /// True when it matched a published sha256 (the pin's); false when it was checked only
    /// against the digest recorded at its first download.
    pub verified: bool,
}

/// The pinned file in the Hugging Face cache, downloaded once (unless offline) and checked.
/// `alternative` says what the user can do instead when the Hub cannot be used (it ends the
/// offline error and the download errors).
pub fn fetch_pinned(cfg: &HubConfig, pin: &HubPin, alternative: &str) -> Result<PinnedFile> {
    let t = Target::new(cfg, &pin.repo, &pin.revision, RepoType::Dataset)?;
    check_file_name(&pin.file).with_context(|| format!("invalid file name `{}`", pin.file))?;
    if let Some(commit) = t.cache.commit_for(&pin.revision) {
        let cached = t.cache.snapshot_file(&commit, &pin.file);
        if cached.is_file() {
            return from_cache(pin, cached, commit);
        }
    }
    let what = t.what(Some(&pin.file));
    if cfg.offline {
        anyhow::bail!(
            "offline mode (HF_HUB_OFFLINE) is on and {what} is not in the Hugging Face cache at {}. \
             Run once with network access, or {alternative}.",
            cfg.cache_dir.display()
        );
    }
    let fail = |e| {
        t.api_error(e, Some(&pin.file))
            .context(format!("cannot fetch {what}; {alternative}"))
    };
    let api = client(cfg).map_err(fail)?;
    let path = download_with_retries(&t.api_repo(&api), &pin.file).map_err(fail)?;
    let commit = commit_of(&path, &pin.file);
    match check(&path, pin) {
        Ok((sha256, bytes)) => {
            if pin.sha256.is_none() {
                let record = record_path(&path);
                write_record(&record, &path, &sha256).with_context(|| {
                    format!("writing to the cache at {}", cfg.cache_dir.display())
                })?;
                eprintln!(
                    "note: {what} has no sha256 pin in qeval; downloaded file has sha256 {sha256} \
                     ({bytes} bytes), recorded in {} and checked on every later use",
                    record.display()
                );
            }
            Ok(PinnedFile {
                path,
                commit,
                sha256,
                bytes,
                verified: pin.sha256.is_some(),
            })
        }
        Err(e) => {
            // Do not leave a wrong file where the next run would pick it up.
            if let Ok(blob) = std::fs::canonicalize(&path) {
                let _ = std::fs::remove_file(&blob);
            }
            let _ = std::fs::remove_file(&path);
            Err(e.context(format!(
                "downloaded {what} from {}, but it is not the pinned file (removed it from the \
                 cache)",
                cfg.endpoint
            )))
        }
    }
}

/// A cached copy, checked against the pin, else against (or into) the recorded digest.
fn from_cache(pin: &HubPin, cached: PathBuf, commit: String) -> Result<PinnedFile> {
    let (sha256, bytes) = check(&cached, pin).map_err(|e| {
        e.context(format!(
            "the cached copy is not the pinned file; delete {} to fetch it again",
            cached.display()
        ))
    })?;
    if pin.sha256.is_none() {
        let record = record_path(&cached);
        match read_record(&record)? {
            Some(recorded) if !recorded.eq_ignore_ascii_case(&sha256) => anyhow::bail!(
                "`{}` of datasets repo `{}` at revision `{}` changed since its first download: \
                 sha256 {sha256} ({bytes} bytes) in {}, but {recorded} was recorded in {}; \
                 delete both files to fetch it again",
                pin.file,
                pin.repo,
                pin.revision,
                cached.display(),
                record.display()
            ),
            Some(_) => {}
            // A copy from before digests were recorded, or from Python: record it now.
            None => write_record(&record, &cached, &sha256)
                .with_context(|| format!("cannot write {}", record.display()))?,
        }
    }
    Ok(PinnedFile {
        path: cached,
        commit,
        sha256,
        bytes,
        verified: pin.sha256.is_some(),
    })
}

/// `snapshots/<commit>/<file>` → the commit (the folder `depth` levels above the file).
fn commit_of(path: &Path, file: &str) -> String {
    let depth = Path::new(file).components().count();
    path.ancestors()
        .nth(depth)
        .and_then(|p| p.file_name())
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Check a file against the pin; the sha256 and size it has.
fn check(path: &Path, pin: &HubPin) -> Result<(String, u64)> {
    let sha = sha256_file(path)?;
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let size_ok = pin.bytes.is_none_or(|b| b == bytes);
    let sha_ok = pin
        .sha256
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case(&sha));
    if !(size_ok && sha_ok) {
        anyhow::bail!(
            "`{}` of datasets repo `{}` at revision `{}` does not match its pin: expected sha256 \
             {} ({} bytes), got {sha} ({bytes} bytes) in {}",
            pin.file,
            pin.repo,
            pin.revision,
            pin.sha256.as_deref().unwrap_or("(none)"),
            pin.bytes.map_or("any".to_string(), |b| b.to_string()),
            path.display()
        );
    }
    Ok((sha, bytes))
}

/// Where the digest of an unpinned file is recorded: next to it, `<file>.sha256`.
fn record_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The digest recorded in `record`, if there is one.
fn read_record(record: &Path) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(record) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!(e).context(format!("reading {}", record.display()))),
    };
    let sha = text.split_whitespace().next().unwrap_or_default();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "{} does not hold a sha256 (expected `<64 hex digits>  <file name>`); delete it to \
             record the cached file's digest again",
            record.display()
        );
    }
    Ok(Some(sha.to_ascii_lowercase()))
}

fn write_record(record: &Path, file: &Path, sha256: &str) -> Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::fsutil::write_atomic(record, format!("{sha256}  {name}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_read_from_the_snapshot_path() {
        let p = Path::new("/c/datasets--a--b/snapshots/abc/boolq/validation.parquet");
        assert_eq!(commit_of(p, "boolq/validation.parquet"), "abc");
        let p = Path::new("/c/datasets--a--b/snapshots/abc/x.parquet");
        assert_eq!(commit_of(p, "x.parquet"), "abc");
    }

    #[test]
    fn a_recorded_digest_is_read_back_and_a_bad_one_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("v.parquet");
        std::fs::write(&file, b"rows")?;
        let record = record_path(&file);
        assert_eq!(record, dir.path().join("v.parquet.sha256"));
        assert_eq!(read_record(&record)?, None);
        let sha = sha256_file(&file)?;
        write_record(&record, &file, &sha)?;
        assert_eq!(read_record(&record)?, Some(sha.clone()));
        assert_eq!(
            std::fs::read_to_string(&record)?,
            format!("{sha}  v.parquet\n")
        );
        std::fs::write(&record, "not a digest\n")?;
        assert!(read_record(&record).is_err());
        Ok(())
    }

    #[test]
    fn an_unpinned_cached_file_is_recorded_then_checked() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let commit = "0123456789abcdef0123456789abcdef01234567".to_string();
        let file = dir.path().join("v.parquet");
        std::fs::write(&file, b"rows")?;
        let pin = HubPin {
            repo: "a/b".into(),
            revision: commit.clone(),
            file: "v.parquet".into(),
            sha256: None,
            bytes: None,
        };
        let got = from_cache(&pin, file.clone(), commit.clone())?;
        assert!(!got.verified);
        assert_eq!(read_record(&record_path(&file))?, Some(got.sha256.clone()));
        // Same bytes: still fine.
        from_cache(&pin, file.clone(), commit.clone())?;
        // Other bytes: refused, naming both files.
        std::fs::write(&file, b"other rows")?;
        let e = format!("{:#}", from_cache(&pin, file.clone(), commit).unwrap_err());
        assert!(e.contains("changed since its first download"), "{e}");
        assert!(e.contains("v.parquet.sha256"), "{e}");
        Ok(())
    }
}
