//! The one Hugging Face Hub client: owns where and how to talk to the Hub ([`HubConfig`]:
//! endpoint, token, offline mode, progress bars, cache root, all from the same environment
//! variables as `huggingface_hub`) and the entry points every Hub download goes through —
//! model files ([`fetch_file`], [`fetch_safetensors_model`]) and pinned evaluation-data files
//! ([`fetch_pinned`]). Files land in the standard Hugging Face cache, so downloads made by
//! Python `huggingface_hub`/`transformers` are reused and nothing is fetched twice. It must not
//! read the files it fetches beyond checking them (sizes, sha256, the safetensors index);
//! turning them into models or records belongs to `model` and `evalset`.
//!
//! Downloads go through `hf-hub`'s blocking API (`hf_hub::api::sync`), which writes the blob,
//! the snapshot symlink and the ref. What hf-hub 0.4.3 does not do is done here, one idea per
//! file:
//!
//! * `cache`: the cache layout (`models--org--name/`, `datasets--org--name/`: `blobs/`,
//!   `snapshots/<commit>/`, `refs/`, `.no_exist/`), lookups by commit sha and offline lookups,
//!   blob reuse and known-absent markers.
//! * `resolve`: repo / revision / file names, resolving a revision to a commit (the Hub's
//!   model-info API) and making one file present in its snapshot.
//! * `download`: the one retry/resume policy and progress bars for every download, and the
//!   integrity check of what was downloaded.
//! * `errors`: hf-hub's raw HTTP/transport errors mapped to messages that say what to do
//!   (HF_TOKEN, the licence page, HF_HUB_OFFLINE, ...); the token never appears in a message.
//! * `select`: which files of a model repo make a full-precision safetensors model
//!   (config, tokenizer, single file or index + shards).
//! * `pinned`: files pinned to a commit and a sha256 (the standard evaluation sets).

mod cache;
mod download;
mod errors;
mod pinned;
mod resolve;
mod select;

pub use download::DOWNLOAD_ATTEMPTS;
pub use pinned::{fetch_pinned, HubPin, PinnedFile};
pub use resolve::{fetch_file, resolved_commit};
pub use select::fetch_safetensors_model;

use std::fmt;
use std::path::PathBuf;

/// The public Hugging Face Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

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
    fn token_file_is_read_from_hf_home() -> anyhow::Result<()> {
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
}
