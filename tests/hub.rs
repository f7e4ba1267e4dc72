//! Integration tests for `qeval::fetch::hub`: real hf-hub client code against a loopback
//! stand-in for the Hugging Face Hub (`common::hub_server`), into temporary caches.

mod common;

use common::hub_server::HubServer;
use qeval::fetch::hub::{fetch_file, fetch_safetensors_model, resolved_commit, HubConfig};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
const REPO: &str = "test-org/tiny-model";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

/// Deterministic, non-trivial bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The repos served: `test-org/tiny-model` (sharded), `test-org/single` (one
/// model.safetensors) and `test-org/pytorch-only` (no safetensors).
struct Fixture {
    root: TempDir,
    /// file name → content, for `test-org/tiny-model`.
    files: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let index = serde_json::json!({
            "metadata": { "total_size": 300_000 },
            "weight_map": {
                "model.embed.weight": SHARD1,
                "model.layer0.weight": SHARD1,
                "lm_head.weight": SHARD2,
            }
        });
        let mut files = BTreeMap::new();
        files.insert(
            "config.json".to_string(),
            br#"{"architectures":["LlamaForCausalLM"],"hidden_size":64}"#.to_vec(),
        );
        files.insert(
            "tokenizer.json".to_string(),
            br#"{"version":"1.0","model":{"type":"BPE"}}"#.to_vec(),
        );
        files.insert(
            "generation_config.json".to_string(),
            br#"{"eos_token_id":2}"#.to_vec(),
        );
        files.insert(
            "model.safetensors.index.json".to_string(),
            index.to_string().into_bytes(),
        );
        files.insert(SHARD1.to_string(), pseudo_random(200_000, 1));
        files.insert(SHARD2.to_string(), pseudo_random(100_000, 2));
        files.insert("README.md".to_string(), b"# tiny model\n".to_vec());
        write_repo(root.path(), REPO, &files);

        let mut single = BTreeMap::new();
        single.insert("config.json".to_string(), b"{}".to_vec());
        single.insert("tokenizer.json".to_string(), b"{}".to_vec());
        single.insert("tokenizer_config.json".to_string(), b"{}".to_vec());
        single.insert("model.safetensors".to_string(), pseudo_random(50_000, 3));
        write_repo(root.path(), "test-org/single", &single);

        let mut pytorch = BTreeMap::new();
        pytorch.insert("config.json".to_string(), b"{}".to_vec());
        pytorch.insert("tokenizer.json".to_string(), b"{}".to_vec());
        pytorch.insert("pytorch_model.bin".to_string(), pseudo_random(1000, 4));
        write_repo(root.path(), "test-org/pytorch-only", &pytorch);

        Fixture { root, files }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }
}

fn write_repo(root: &Path, repo: &str, files: &BTreeMap<String, Vec<u8>>) {
    for (name, data) in files {
        let path = root.join(repo).join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write fixture");
    }
}

fn config(endpoint: &str, cache: &TempDir) -> HubConfig {
    HubConfig {
        endpoint: endpoint.to_string(),
        token: None,
        cache_dir: cache.path().join("hub"),
        offline: false,
        progress: false,
    }
}

fn repo_cache(cfg: &HubConfig, repo: &str) -> PathBuf {
    cfg.cache_dir
        .join(format!("models--{}", repo.replace('/', "--")))
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn error_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn downloads_sharded_model_into_hf_cache_layout() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    assert_eq!(resolved_commit(&cfg, REPO, "main"), None);

    let dir = fetch_safetensors_model(&cfg, REPO, "main")?;

    let repo_dir = repo_cache(&cfg, REPO);
    assert_eq!(dir, repo_dir.join("snapshots").join(COMMIT));
    for name in [
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "model.safetensors.index.json",
        SHARD1,
        SHARD2,
    ] {
        let got = std::fs::read(dir.join(name))?;
        assert!(got == fx.files[name], "bytes of {name} differ");
        // Snapshot entries are relative symlinks into blobs/, as huggingface_hub makes them.
        #[cfg(unix)]
        {
            let link = std::fs::read_link(dir.join(name))?;
            assert!(link.is_relative(), "{name} -> {}", link.display());
            assert!(
                link.starts_with("../../blobs"),
                "{name} -> {}",
                link.display()
            );
        }
    }
    // Files the model does not need are not downloaded.
    assert!(!dir.join("README.md").exists());
    // LFS files are stored under their sha256, like the Hub's x-linked-etag.
    let blobs = repo_dir.join("blobs");
    assert_eq!(
        std::fs::read(blobs.join(sha256_hex(&fx.files[SHARD1])))?,
        fx.files[SHARD1]
    );
    assert_eq!(
        std::fs::read(blobs.join(sha256_hex(&fx.files[SHARD2])))?,
        fx.files[SHARD2]
    );
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs").join("main"))?,
        COMMIT
    );
    // The optional file the repo lacks is recorded as absent (huggingface_hub's marker).
    assert!(repo_dir
        .join(".no_exist")
        .join(COMMIT)
        .join("tokenizer_config.json")
        .exists());
    assert!(!dir.join("tokenizer_config.json").exists());
    assert_eq!(resolved_commit(&cfg, REPO, "main").as_deref(), Some(COMMIT));

    // Every needed file was actually requested from the server.
    let file_requests = server.file_requests();
    for name in ["config.json", "tokenizer.json", SHARD1, SHARD2] {
        assert!(
            file_requests
                .iter()
                .any(|r| r.starts_with("GET ") && r.ends_with(&format!("/resolve/main/{name}"))),
            "no GET for {name}: {file_requests:?}"
        );
    }
    assert!(
        !file_requests.iter().any(|r| r.contains("README.md")),
        "{file_requests:?}"
    );
    Ok(())
}

#[test]
fn second_fetch_is_served_from_cache_without_requests() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);

    let first = fetch_safetensors_model(&cfg, REPO, "main")?;
    let served = server.requests().len();
    assert!(served > 0);

    let second = fetch_safetensors_model(&cfg, REPO, "main")?;
    assert_eq!(first, second);
    let config = fetch_file(&cfg, REPO, "main", "config.json")?;
    assert!(config.from_cache);
    assert_eq!(config.path, first.join("config.json"));
    let shard = fetch_file(&cfg, REPO, "main", SHARD2)?;
    assert!(shard.from_cache);
    assert_eq!(std::fs::read(&shard.path)?, fx.files[SHARD2]);

    let after = server.requests();
    assert_eq!(
        after.len(),
        served,
        "cached fetches made requests: {:?}",
        &after[served..]
    );
    Ok(())
}

#[test]
fn fetch_file_downloads_once_then_uses_cache() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);

    let first = fetch_file(&cfg, "test-org/single", "main", "model.safetensors")?;
    assert!(!first.from_cache);
    let data_gets = server
        .file_requests()
        .iter()
        .filter(|r| r.starts_with("GET "))
        .count();
    assert!(data_gets > 0);

    let second = fetch_file(&cfg, "test-org/single", "main", "model.safetensors")?;
    assert!(second.from_cache);
    assert_eq!(first.path, second.path);
    assert_eq!(
        std::fs::read(&second.path)?,
        pseudo_random(50_000, 3),
        "single-file weights"
    );
    let data_gets_after = server
        .file_requests()
        .iter()
        .filter(|r| r.starts_with("GET "))
        .count();
    assert_eq!(data_gets, data_gets_after);

    // A single-file model is accepted too.
    let dir = fetch_safetensors_model(&cfg, "test-org/single", "main")?;
    assert!(dir.join("model.safetensors").is_file());
    assert!(dir.join("tokenizer_config.json").is_file());
    Ok(())
}

#[test]
fn offline_mode_uses_cache_and_names_what_is_missing() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let online = config(&server.url, &cache);
    let dir = fetch_safetensors_model(&online, REPO, "main")?;
    let served = server.requests().len();

    let offline = HubConfig {
        offline: true,
        ..online.clone()
    };
    assert_eq!(fetch_safetensors_model(&offline, REPO, "main")?, dir);
    let cfg_file = fetch_file(&offline, REPO, "main", "config.json")?;
    assert!(cfg_file.from_cache);
    assert_eq!(std::fs::read(cfg_file.path)?, fx.files["config.json"]);

    // A file that was never downloaded (it exists on the server) fails offline.
    let msg = error_text(fetch_file(&offline, REPO, "main", "README.md"));
    for needle in [
        "README.md",
        REPO,
        "`main`",
        "HF_HUB_OFFLINE",
        &offline.cache_dir.display().to_string(),
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    // So does a revision that was never resolved, and a whole uncached model.
    let msg = error_text(fetch_file(&offline, REPO, "v2.0", "config.json"));
    assert!(msg.contains("v2.0") && msg.contains("config.json"), "{msg}");
    let msg = error_text(fetch_safetensors_model(&offline, "test-org/single", "main"));
    assert!(
        msg.contains("test-org/single") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
    assert!(
        msg.contains(&offline.cache_dir.display().to_string()),
        "{msg}"
    );

    assert_eq!(
        server.requests().len(),
        served,
        "offline mode touched the network"
    );
    Ok(())
}

#[test]
fn offline_mode_never_connects() -> anyhow::Result<()> {
    // Nothing listens on the endpoint: any connection attempt would fail differently.
    let cache = tempfile::tempdir()?;
    let cfg = HubConfig {
        offline: true,
        ..config("http://127.0.0.1:9", &cache)
    };
    let msg = error_text(fetch_file(&cfg, REPO, "main", "config.json"));
    assert!(msg.contains("offline"), "{msg}");
    assert!(!msg.contains("cannot reach"), "{msg}");
    Ok(())
}

#[test]
fn missing_file_is_reported_by_name() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);

    let msg = error_text(fetch_file(&cfg, REPO, "main", "does-not-exist.json"));
    assert!(msg.contains("does-not-exist.json"), "{msg}");
    assert!(msg.contains(REPO) && msg.contains("`main`"), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    // No data request was made for it.
    assert!(server.file_requests().is_empty(), "{:?}", server.requests());

    let msg = error_text(fetch_file(
        &cfg,
        "test-org/no-such-repo",
        "main",
        "config.json",
    ));
    assert!(msg.contains("test-org/no-such-repo"), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    Ok(())
}

#[test]
fn repo_without_safetensors_weights_is_rejected() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    let msg = error_text(fetch_safetensors_model(
        &cfg,
        "test-org/pytorch-only",
        "main",
    ));
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("pytorch_model.bin"), "{msg}");
    Ok(())
}

#[test]
fn token_protected_repo() -> anyhow::Result<()> {
    const TOKEN: &str = "hf_testsecret_0123456789abcdef";
    const WRONG: &str = "hf_wrongsecret_9876543210fedcba";
    let fx = Fixture::new();
    let server = HubServer::start_with_token(fx.path(), COMMIT, TOKEN);

    // Without a token: refused, and the message says what to do.
    let cache = tempfile::tempdir()?;
    let anonymous = config(&server.url, &cache);
    let msg = error_text(fetch_safetensors_model(&anonymous, REPO, "main"));
    assert!(msg.contains("HF_TOKEN"), "{msg}");
    assert!(msg.contains("licence"), "{msg}");
    assert!(msg.contains("401"), "{msg}");

    // With a wrong token: refused, the token value never shows.
    let wrong = HubConfig {
        token: Some(WRONG.to_string()),
        ..anonymous.clone()
    };
    let msg = error_text(fetch_safetensors_model(&wrong, REPO, "main"));
    assert!(msg.contains("HF_TOKEN"), "{msg}");
    assert!(
        !msg.contains(WRONG) && !msg.contains(TOKEN),
        "token leaked: {msg}"
    );
    let msg = error_text(fetch_file(&wrong, REPO, "main", "config.json"));
    assert!(!msg.contains(WRONG), "token leaked: {msg}");

    // With the right token: works, including the redirected LFS shards.
    let authed = HubConfig {
        token: Some(TOKEN.to_string()),
        ..anonymous.clone()
    };
    let dir = fetch_safetensors_model(&authed, REPO, "main")?;
    assert_eq!(std::fs::read(dir.join(SHARD1))?, fx.files[SHARD1]);
    assert_eq!(std::fs::read(dir.join(SHARD2))?, fx.files[SHARD2]);
    // Errors with a valid token do not show it either.
    let msg = error_text(fetch_file(&authed, REPO, "main", "nope.json"));
    assert!(msg.contains("nope.json"), "{msg}");
    assert!(!msg.contains(TOKEN), "token leaked: {msg}");
    assert!(!format!("{authed:?}").contains(TOKEN));
    Ok(())
}

#[test]
fn blobs_are_reused_across_commits_and_revisions() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let cache = tempfile::tempdir()?;
    {
        let server = HubServer::start(fx.path(), COMMIT);
        fetch_safetensors_model(&config(&server.url, &cache), REPO, "main")?;
    }

    // Same content under a new commit (a revision not yet in the cache): the existing
    // blobs are linked into the new snapshot, no file is downloaded again.
    let server = HubServer::start(fx.path(), OTHER_COMMIT);
    let cfg = config(&server.url, &cache);
    let dir = fetch_safetensors_model(&cfg, REPO, "v2.0")?;
    assert_eq!(
        dir,
        repo_cache(&cfg, REPO).join("snapshots").join(OTHER_COMMIT)
    );
    assert_eq!(std::fs::read(dir.join(SHARD1))?, fx.files[SHARD1]);
    assert_eq!(
        std::fs::read(dir.join("config.json"))?,
        fx.files["config.json"]
    );
    assert_eq!(
        resolved_commit(&cfg, REPO, "v2.0").as_deref(),
        Some(OTHER_COMMIT)
    );
    // The branch already in the cache keeps its commit (a cached revision is not
    // re-resolved; that is what makes cached fetches network-free).
    assert_eq!(resolved_commit(&cfg, REPO, "main").as_deref(), Some(COMMIT));
    assert!(server.requests().iter().any(|r| r.contains("/api/models/")));
    assert!(
        server.file_requests().is_empty(),
        "re-downloaded: {:?}",
        server.file_requests()
    );

    // Another name for a commit already in the cache: only the API is asked.
    let file = fetch_file(&cfg, REPO, "v1.0", "config.json")?;
    assert!(file.from_cache);
    assert_eq!(
        resolved_commit(&cfg, REPO, "v1.0").as_deref(),
        Some(OTHER_COMMIT)
    );
    assert_eq!(file.path, dir.join("config.json"));
    // A commit sha as revision is looked up directly in snapshots/.
    assert!(fetch_file(&cfg, REPO, COMMIT, SHARD2)?.from_cache);
    assert!(server.file_requests().is_empty(), "{:?}", server.requests());
    Ok(())
}

/// `blobs/` of `repo` in the cache of `cfg`.
fn blobs_dir(cfg: &HubConfig, repo: &str) -> PathBuf {
    repo_cache(cfg, repo).join("blobs")
}

/// Partial-download files (`*.part`, `*.incomplete`) left in `blobs/`.
fn partial_files(cfg: &HubConfig, repo: &str) -> Vec<String> {
    std::fs::read_dir(blobs_dir(cfg, repo))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".part") || n.ends_with(".incomplete"))
                .collect()
        })
        .unwrap_or_default()
}

/// Body bytes the server sent for `file`'s data transfers.
fn data_bytes_sent(server: &HubServer, file: &str) -> usize {
    server
        .data_transfers(file)
        .iter()
        .map(|s| s.body_bytes)
        .sum()
}

#[test]
fn interrupted_download_is_resumed() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    // A partial blob left by an earlier run (hf-hub's blobs/<etag>.part) is continued
    // with a `Range: bytes=<len>-` request.
    let blobs = blobs_dir(&cfg, REPO);
    std::fs::create_dir_all(&blobs)?;
    let data = &fx.files[SHARD1];
    std::fs::write(
        blobs.join(format!("{}.part", sha256_hex(data))),
        &data[..77_777],
    )?;

    let fetched = fetch_file(&cfg, REPO, "main", SHARD1)?;
    assert!(!fetched.from_cache);
    assert!(
        std::fs::read(&fetched.path)? == *data,
        "resumed bytes differ"
    );
    let transfers = server.data_transfers(SHARD1);
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].range.as_deref(), Some("bytes=77777-"));
    assert_eq!(data_bytes_sent(&server, SHARD1), data.len() - 77_777);
    assert!(partial_files(&cfg, REPO).is_empty());
    Ok(())
}

#[test]
fn download_cut_mid_file_resumes_where_it_stopped() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    const CUT: usize = 123_456;
    server.cut_download_once(SHARD1, CUT);

    let fetched = fetch_file(&cfg, REPO, "main", SHARD1)?;

    let data = &fx.files[SHARD1];
    assert_eq!(sha256_hex(&std::fs::read(&fetched.path)?), sha256_hex(data));
    let transfers = server.data_transfers(SHARD1);
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert!(
        transfers[0].cut && transfers[0].body_bytes == CUT,
        "{transfers:?}"
    );
    assert_eq!(transfers[0].range_start(), Some(0));
    // The second attempt asks for the rest, starting exactly where the first stopped.
    assert_eq!(transfers[1].range.as_deref(), Some("bytes=123456-"));
    assert_eq!(transfers[1].status, 206);
    assert!(!transfers[1].cut);
    // About one file went over the wire, not two.
    assert_eq!(data_bytes_sent(&server, SHARD1), data.len());
    assert!(partial_files(&cfg, REPO).is_empty());

    // A non-LFS file (served directly, no redirect) resumes the same way.
    let tokenizer = "tokenizer.json";
    server.cut_download_once(tokenizer, 10);
    let fetched = fetch_file(&cfg, REPO, "main", tokenizer)?;
    assert_eq!(std::fs::read(&fetched.path)?, fx.files[tokenizer]);
    let t = server.data_transfers(tokenizer);
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[1].range.as_deref(), Some("bytes=10-"));
    Ok(())
}

#[test]
fn download_cut_in_an_earlier_run_resumes_in_the_next() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    let data = &fx.files[SHARD1];
    // Every attempt of the first run is cut after 7000 bytes: the run fails, and says
    // that running again resumes.
    server.cut_downloads(SHARD1, 7_000, usize::MAX);
    let msg = error_text(fetch_file(&cfg, REPO, "main", SHARD1));
    assert!(msg.contains(SHARD1) && msg.contains("resume"), "{msg}");
    let first_run = server.data_transfers(SHARD1);
    assert_eq!(
        first_run.len(),
        qeval::fetch::hub::DOWNLOAD_ATTEMPTS as usize
    );
    // Each attempt continued the previous one.
    for (i, t) in first_run.iter().enumerate() {
        assert_eq!(t.range_start(), Some(7_000 * i as u64), "{first_run:?}");
    }
    let part = blobs_dir(&cfg, REPO).join(format!("{}.part", sha256_hex(data)));
    let kept = std::fs::metadata(&part)?.len();
    assert_eq!(kept, 7_000 * first_run.len() as u64);
    assert!(std::fs::read(&part)? == data[..kept as usize]);

    // The next run continues from the partial file.
    server.clear_cuts();
    let fetched = fetch_file(&cfg, REPO, "main", SHARD1)?;
    assert_eq!(sha256_hex(&std::fs::read(&fetched.path)?), sha256_hex(data));
    let all = server.data_transfers(SHARD1);
    let second_run = &all[first_run.len()..];
    assert_eq!(second_run.len(), 1, "{all:?}");
    assert_eq!(second_run[0].range_start(), Some(kept));
    assert_eq!(data_bytes_sent(&server, SHARD1), data.len());
    Ok(())
}

#[test]
fn resume_survives_a_connection_lost_before_the_first_byte() -> anyhow::Result<()> {
    // hf-hub's own retry restarts from its file handle's position, which is 0 when the
    // first attempt of a run dies before writing: it would append the whole file to the
    // partial one. qeval's retries continue from the partial file's length instead.
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    let data = &fx.files[SHARD2];
    let blobs = blobs_dir(&cfg, REPO);
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(
        blobs.join(format!("{}.part", sha256_hex(data))),
        &data[..40_000],
    )?;
    server.cut_download_once(SHARD2, 0);

    let fetched = fetch_file(&cfg, REPO, "main", SHARD2)?;
    assert!(std::fs::read(&fetched.path)? == *data);
    let transfers = server.data_transfers(SHARD2);
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    for t in &transfers {
        assert_eq!(t.range.as_deref(), Some("bytes=40000-"), "{transfers:?}");
    }
    assert_eq!(data_bytes_sent(&server, SHARD2), data.len() - 40_000);
    Ok(())
}

#[test]
fn python_incomplete_download_is_continued() -> anyhow::Result<()> {
    // huggingface_hub leaves an interrupted download in blobs/<etag>.incomplete.
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    let data = &fx.files[SHARD1];
    let blobs = blobs_dir(&cfg, REPO);
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(
        blobs.join(format!("{}.incomplete", sha256_hex(data))),
        &data[..150_000],
    )?;

    let fetched = fetch_file(&cfg, REPO, "main", SHARD1)?;
    assert!(std::fs::read(&fetched.path)? == *data);
    let transfers = server.data_transfers(SHARD1);
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].range.as_deref(), Some("bytes=150000-"));
    assert!(partial_files(&cfg, REPO).is_empty());
    Ok(())
}

#[test]
fn partial_files_that_cannot_be_continued_are_settled() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    let blobs = blobs_dir(&cfg, REPO);
    std::fs::create_dir_all(&blobs)?;

    // Longer than the file (hf-hub would fail with "invalid resume" on every run):
    // removed and downloaded again from the start.
    let d1 = &fx.files[SHARD1];
    let mut longer = d1.clone();
    longer.extend_from_slice(b"garbage");
    std::fs::write(blobs.join(format!("{}.part", sha256_hex(d1))), &longer)?;
    let fetched = fetch_file(&cfg, REPO, "main", SHARD1)?;
    assert!(std::fs::read(&fetched.path)? == *d1);
    let t = server.data_transfers(SHARD1);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].range_start(), Some(0));

    // Complete but never moved into place (killed right at the end): checked against
    // the announced sha256 and used without another request.
    let d2 = &fx.files[SHARD2];
    std::fs::write(blobs.join(format!("{}.part", sha256_hex(d2))), d2)?;
    let fetched = fetch_file(&cfg, REPO, "main", SHARD2)?;
    assert!(std::fs::read(&fetched.path)? == *d2);
    assert!(server.data_transfers(SHARD2).is_empty());
    assert!(partial_files(&cfg, REPO).is_empty());
    Ok(())
}

#[test]
fn unreachable_endpoint_suggests_offline_mode() -> anyhow::Result<()> {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cache = tempfile::tempdir()?;
    let cfg = config(&endpoint, &cache);
    let msg = error_text(fetch_file(&cfg, REPO, "main", "config.json"));
    assert!(msg.contains(&endpoint), "{msg}");
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
    Ok(())
}

#[test]
fn invalid_names_are_rejected_before_any_request() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);
    let cache = tempfile::tempdir()?;
    let cfg = config(&server.url, &cache);
    assert!(fetch_file(&cfg, "../../etc", "main", "passwd").is_err());
    assert!(fetch_file(&cfg, REPO, "../../x", "config.json").is_err());
    assert!(fetch_file(&cfg, REPO, "main", "../../../config.json").is_err());
    assert!(server.requests().is_empty());
    Ok(())
}

/// Send one raw HTTP request to the test server; returns (status line, headers, body).
fn raw_get(url: &str, path: &str, extra: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn test_server_speaks_the_hub_download_protocol() {
    let fx = Fixture::new();
    let server = HubServer::start(fx.path(), COMMIT);

    // hf-hub's metadata probe: GET with Range: bytes=0-0.
    let len = fx.files["config.json"].len();
    let (status, h, body) = raw_get(
        &server.url,
        &format!("/{REPO}/resolve/main/config.json"),
        "Range: bytes=0-0\r\n",
    );
    assert!(status.contains(" 206 "), "{status}");
    assert_eq!(header(&h, "x-repo-commit"), Some(COMMIT));
    assert!(header(&h, "etag").is_some_and(|e| e.starts_with('"')));
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 0-0/{len}").as_str())
    );
    assert_eq!(body, fx.files["config.json"][..1]);

    // LFS files: redirect carrying the linked etag (sha256) and the commit.
    let (status, h, _) = raw_get(
        &server.url,
        &format!("/{REPO}/resolve/main/{SHARD1}"),
        "Range: bytes=0-0\r\n",
    );
    assert!(status.contains(" 302 "), "{status}");
    let expected_etag = format!("\"{}\"", sha256_hex(&fx.files[SHARD1]));
    assert_eq!(header(&h, "x-linked-etag"), Some(expected_etag.as_str()));
    assert_eq!(header(&h, "x-repo-commit"), Some(COMMIT));
    let location = header(&h, "location").expect("location").to_string();
    let path = location.trim_start_matches(&server.url);
    let (status, h, body) = raw_get(&server.url, path, "Range: bytes=100-\r\n");
    assert!(status.contains(" 206 "), "{status}");
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 100-199999/{}", fx.files[SHARD1].len()).as_str())
    );
    assert!(body == fx.files[SHARD1][100..]);

    // Missing files: 404 with EntryNotFound.
    let (status, h, _) = raw_get(&server.url, &format!("/{REPO}/resolve/main/nope.bin"), "");
    assert!(status.contains(" 404 "), "{status}");
    assert_eq!(header(&h, "x-error-code"), Some("EntryNotFound"));

    // Model info API.
    let (status, _, body) = raw_get(
        &server.url,
        &format!("/api/models/{REPO}/revision/main"),
        "",
    );
    assert!(status.contains(" 200 "), "{status}");
    let info: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(info["sha"], COMMIT);
    let names: Vec<&str> = info["siblings"]
        .as_array()
        .expect("siblings")
        .iter()
        .filter_map(|s| s["rfilename"].as_str())
        .collect();
    assert!(
        names.contains(&"config.json") && names.contains(&SHARD2),
        "{names:?}"
    );

    // Token-protected server: 401 without the bearer token.
    let guarded = HubServer::start_with_token(fx.path(), COMMIT, "hf_x_token");
    let p = format!("/{REPO}/resolve/main/config.json");
    let (status, h, _) = raw_get(&guarded.url, &p, "");
    assert!(status.contains(" 401 "), "{status}");
    assert_eq!(header(&h, "x-error-code"), Some("GatedRepo"));
    let (status, _, _) = raw_get(&guarded.url, &p, "Authorization: Bearer hf_x_token\r\n");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(guarded.requests().len(), 2);
}

const SECRET: &str = "hf_qevalSecretToken_5f3a9c0d2e71";

/// Fails the test if `text` shows the token (whole, or its distinctive middle).
fn assert_no_token(text: &str, where_: &str) {
    assert!(
        !text.contains(SECRET) && !text.contains("qevalSecretToken"),
        "HF_TOKEN leaked in {where_}: {text}"
    );
}

#[test]
fn token_never_appears_in_download_errors() -> anyhow::Result<()> {
    let fx = Fixture::new();
    let server = HubServer::start_with_token(fx.path(), COMMIT, SECRET);
    let cache = tempfile::tempdir()?;
    let with_token = HubConfig {
        token: Some(SECRET.to_string()),
        ..config(&server.url, &cache)
    };
    // 404s: a missing file, a missing repo.
    let msg = error_text(fetch_file(&with_token, REPO, "main", "missing.bin"));
    assert!(msg.contains("missing.bin"), "{msg}");
    assert_no_token(&msg, "a 404 error");
    let msg = error_text(fetch_safetensors_model(
        &with_token,
        "test-org/no-such-repo",
        "main",
    ));
    assert!(msg.contains("no-such-repo"), "{msg}");
    assert_no_token(&msg, "a repo-not-found error");
    // A download that keeps breaking off.
    server.cut_downloads(SHARD2, 1_000, usize::MAX);
    let msg = error_text(fetch_file(&with_token, REPO, "main", SHARD2));
    assert!(msg.contains(SHARD2), "{msg}");
    assert_no_token(&msg, "a network error");
    server.clear_cuts();
    // 401: the server expects another token than the one sent.
    let other = HubServer::start_with_token(fx.path(), COMMIT, "hf_someone_elses_token");
    let refused = HubConfig {
        endpoint: other.url.clone(),
        ..with_token.clone()
    };
    let msg = error_text(fetch_safetensors_model(&refused, REPO, "main"));
    assert!(msg.contains("401") && msg.contains("HF_TOKEN"), "{msg}");
    assert_no_token(&msg, "a 401 error");
    let msg = error_text(fetch_file(
        &refused,
        "test-org/single",
        "main",
        "config.json",
    ));
    assert_no_token(&msg, "a 401 error");
    // Offline, nothing cached.
    let offline = HubConfig {
        offline: true,
        cache_dir: cache.path().join("empty"),
        ..with_token.clone()
    };
    let msg = error_text(fetch_safetensors_model(&offline, REPO, "main"));
    assert_no_token(&msg, "an offline error");
    assert_no_token(&format!("{with_token:?}"), "HubConfig's Debug output");
    Ok(())
}

/// The real SmolLM2-135M (from its GGUF) written as a safetensors model directory.
fn smollm2_safetensors(dir: &Path) -> anyhow::Result<()> {
    let model = common::model("smollm2-135m-q4_1");
    let src = qeval::model::source::ModelSource::open(&model)?;
    let tok = qeval::model::tokenizer::gguf_tokenizer(&model)?;
    std::fs::create_dir_all(dir)?;
    let tj = dir.join("tokenizer.tmp.json");
    tok.save_json(&tj)?;
    qeval::model::export::export_source(&src, dir, &tj)?;
    std::fs::remove_file(tj)?;
    Ok(())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn binary_never_shows_the_token_and_resumes_a_cut_download() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("hub");
    smollm2_safetensors(&root.join("test-org").join("smol"))?;
    let server = HubServer::start_with_token(&root, COMMIT, SECRET);
    let hf_home = tmp.path().join("hf-home");
    let run = |model: &str, token: &str, out: &Path| {
        common::qeval()
            .args(["run", "--model", model, "--quants", "q8_0"])
            .args(["--out", &out.to_string_lossy()])
            .args(["--ctx", "128", "--chunks", "1", "--repeats", "1"])
            .args(["--prompt-tokens", "16", "--gen-tokens", "4"])
            .env("HF_ENDPOINT", &server.url)
            .env("HF_HOME", &hf_home)
            .env("HF_TOKEN", token)
            .env("RUST_BACKTRACE", "1")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_HUB_CACHE")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .output()
            .expect("run qeval")
    };

    // Refused (the server wants another token), and a repo that does not exist.
    let o = run(
        "hf:test-org/smol",
        "hf_wrong_token_123456",
        &tmp.path().join("o1"),
    );
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(err.contains("HF_TOKEN") && err.contains("401"), "{err}");
    assert!(
        !err.contains("hf_wrong_token_123456"),
        "token leaked: {err}"
    );
    let o = run("hf:test-org/nope", SECRET, &tmp.path().join("o2"));
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(err.contains("test-org/nope"), "{err}");
    assert_no_token(&err, "stderr of a failed run");
    assert_no_token(
        &String::from_utf8_lossy(&o.stdout),
        "stdout of a failed run",
    );

    // A run that used the token, with the weights download cut mid-file once.
    let weights_len = std::fs::metadata(root.join("test-org/smol/model.safetensors"))?.len();
    server.cut_download_once("model.safetensors", 1 << 20);
    let out = tmp.path().join("o3");
    let o = run("hf:test-org/smol", SECRET, &out);
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_no_token(&err, "stderr of a run");
    assert_no_token(&String::from_utf8_lossy(&o.stdout), "stdout of a run");
    let t = server.data_transfers("model.safetensors");
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[1].range_start(), Some(1 << 20));
    assert_eq!(
        data_bytes_sent(&server, "model.safetensors") as u64,
        weights_len
    );
    let written = files_under(&out);
    assert!(
        written.iter().any(|p| p.ends_with("results.json")),
        "{written:?}"
    );
    for p in written {
        let bytes = std::fs::read(&p)?;
        assert_no_token(&String::from_utf8_lossy(&bytes), &p.display().to_string());
    }
    Ok(())
}
