//! Ollama's store and LM Studio's folder, laid out for real in a temporary folder with the real
//! SmolLM2 GGUF (its blob named by its real sha256, the manifest committed as Ollama writes it),
//! run from with `qeval run`, listed by `qeval models --local`, and their errors: a missing
//! tag, a wrong digest, a truncated blob, two GGUF files and no FILE.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

const SMOL_SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ollama")
        .join(name)
}

/// A hard link where the file system allows one (the model is 98 MB), else a copy.
fn place(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).unwrap();
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}

/// An Ollama store with smollm2:135m (and its template, params and config blobs).
fn ollama_store(root: &Path) {
    let manifest = std::fs::read_to_string(fixture("smollm2-135m.manifest.json")).unwrap();
    let m = root.join("manifests/registry.ollama.ai/library/smollm2/135m");
    std::fs::create_dir_all(m.parent().unwrap()).unwrap();
    std::fs::write(&m, &manifest).unwrap();
    place(
        &common::model("smollm2-135m-q4_1"),
        &root.join(format!("blobs/sha256-{SMOL_SHA}")),
    );
    for f in ["template", "params", "config"] {
        let b = std::fs::read(fixture(f)).unwrap();
        let digest = sha256_hex(&b);
        assert!(
            manifest.contains(&digest),
            "{f}: the fixture manifest names its digest"
        );
        std::fs::write(root.join(format!("blobs/sha256-{digest}")), b).unwrap();
    }
}

fn qeval_in(env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = common::qeval();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

#[test]
fn a_run_from_ollamas_store_records_the_blob_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ollama");
    ollama_store(&store);
    let cache = dir.path().join("cache");
    let out = dir.path().join("run");
    let env = [
        ("OLLAMA_MODELS", store.as_path()),
        ("QEVAL_CACHE", cache.as_path()),
    ];
    let o = qeval_in(
        &env,
        &[
            "run",
            "--model",
            "ollama:smollm2:135m",
            "--quants",
            "q8_0",
            "--chunks",
            "1",
            "--no-tasks",
            "--repeats",
            "1",
            "--prompt-tokens",
            "16",
            "--gen-tokens",
            "4",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = qeval::results::Results::load(&out.join("results.json")).unwrap();
    assert_eq!(r.model.repo.as_deref(), Some("ollama:smollm2:135m"));
    assert_eq!(
        r.model.revision.as_deref(),
        Some(format!("sha256:{SMOL_SHA}").as_str())
    );
    assert_eq!(r.model.files[0].sha256, SMOL_SHA);
    assert!(r.levels[0].is_ok() && r.levels[0].perplexity.unwrap() > 1.0);
    // The hash is remembered by size and modification time: checked once. A remembered hash
    // is what the next run compares (here made wrong on purpose, so the run must refuse).
    let v = std::fs::read_to_string(cache.join("verified-blobs.json")).unwrap();
    assert!(v.contains(SMOL_SHA), "{v}");
    std::fs::write(
        cache.join("verified-blobs.json"),
        // The value only: the blob's path, the key, holds the digest too.
        v.replace(
            &format!("\"sha256\": \"{SMOL_SHA}\""),
            &format!("\"sha256\": \"{}\"", "e".repeat(64)),
        ),
    )
    .unwrap();
    let o = qeval_in(
        &env,
        &[
            "bench",
            "--model",
            "ollama:smollm2:135m",
            "--quiet",
            "--out",
            dir.path().join("again").to_str().unwrap(),
        ],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains(&format!("has sha256 {}", "e".repeat(64))), "{e}");

    // The template and params layers are read.
    let m = qeval::fetch::stores::resolve_ollama(&store, "smollm2:135m").unwrap();
    assert!(m.template.unwrap().contains("<|im_start|>assistant"));
    assert_eq!(m.params.unwrap()["stop"][1], "<|im_end|>");
}

#[test]
fn ollama_errors_name_the_tag_the_file_and_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ollama");
    ollama_store(&store);
    let cache = dir.path().join("cache");
    let env = [
        ("OLLAMA_MODELS", store.as_path()),
        ("QEVAL_CACHE", cache.as_path()),
    ];
    let bench = |model: &str| {
        qeval_in(
            &env,
            &[
                "bench",
                "--model",
                model,
                "--quants",
                "q8_0",
                "--quiet",
                "--out",
                dir.path().join("b").to_str().unwrap(),
            ],
        )
    };
    // A tag that is not there: the tags that are.
    let o = bench("ollama:smollm2:360m");
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("smollm2:360m") && e.contains("tags there: 135m"),
        "{e}"
    );
    // A digest that is not sha256:<64 hex>.
    let manifest = std::fs::read_to_string(fixture("smollm2-135m.manifest.json")).unwrap();
    let tag = |t: &str, text: &str| {
        std::fs::write(
            store
                .join("manifests/registry.ollama.ai/library/smollm2")
                .join(t),
            text,
        )
        .unwrap()
    };
    tag("bad", &manifest.replace(SMOL_SHA, "1234"));
    let e = common::stderr(&bench("ollama:smollm2:bad"));
    assert!(e.contains("not sha256:<64 hex digits>"), "{e}");
    // A blob whose content is not its digest (same size, other bytes).
    let fake = "0".repeat(64);
    let smol = std::fs::read(common::model("smollm2-135m-q4_1")).unwrap();
    let mut other = smol.clone();
    let n = other.len();
    other[n - 1] ^= 1;
    std::fs::write(store.join(format!("blobs/sha256-{fake}")), &other).unwrap();
    tag("damaged", &manifest.replace(SMOL_SHA, &fake));
    let o = bench("ollama:smollm2:damaged");
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("damaged") && e.contains(&format!("not the manifest's sha256:{fake}")),
        "{e}"
    );
    // A truncated blob: its size is not the manifest's.
    let short = "1".repeat(64);
    std::fs::write(store.join(format!("blobs/sha256-{short}")), &smol[..1000]).unwrap();
    tag("short", &manifest.replace(SMOL_SHA, &short));
    let e = common::stderr(&bench("ollama:smollm2:short"));
    assert!(
        e.contains("has 1000 bytes but the manifest says 98362432"),
        "{e}"
    );
    // No store at all; the refused run leaves no empty output folder behind.
    let out = dir.path().join("out-none");
    let o = qeval_in(
        &[("OLLAMA_MODELS", dir.path().join("none").as_path())],
        &[
            "bench",
            "--model",
            "ollama:x",
            "--quiet",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("no manifest"));
    assert!(!out.exists(), "{} left behind", out.display());
}

#[test]
fn lm_studio_files_run_and_list_and_ambiguity_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lms = dir.path().join("lmstudio");
    let repo = lms.join("bartowski/SmolLM2-135M-Instruct-GGUF");
    let smol = common::model("smollm2-135m-q4_1");
    place(&smol, &repo.join("SmolLM2-135M-Instruct-Q4_1.gguf"));
    place(&smol, &repo.join("SmolLM2-135M-Instruct-Q4_1-copy.gguf"));
    let store = dir.path().join("ollama");
    ollama_store(&store);
    let hub = dir.path().join("hub");
    std::fs::create_dir_all(&hub).unwrap();
    let env = [
        ("LMSTUDIO_MODELS", lms.as_path()),
        ("OLLAMA_MODELS", store.as_path()),
        ("HF_HUB_CACHE", hub.as_path()),
        ("QEVAL_CACHE", dir.path()),
    ];
    let o = qeval_in(
        &env,
        &[
            "bench",
            "--model",
            "lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF",
            "--quiet",
        ],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("holds 2 GGUF files")
            && e.contains("lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1-copy.gguf"),
        "{e}"
    );
    let out = dir.path().join("b");
    let o = qeval_in(
        &env,
        &[
            "bench",
            "--model",
            "lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
            "--quants",
            "q4_0",
            "--repeats",
            "1",
            "--prompt-tokens",
            "16",
            "--gen-tokens",
            "4",
            "--ctx",
            "16",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = qeval::results::Results::load(&out.join("results.json")).unwrap();
    assert_eq!(
        r.model.repo.as_deref(),
        Some("lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf")
    );
    // What a user sees from `qeval models --local`.
    let o = qeval_in(&env, &["models", "--local"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    println!("{t}");
    for want in [
        "ollama:smollm2:135m",
        "lmstudio:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
        "llama",
        "q4_1: q4_1",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    assert_eq!(t.lines().count(), 2 + 3, "{t}");
}

#[test]
fn a_file_with_another_tokenizer_is_refused_and_another_template_noted() {
    let dir = tempfile::tempdir().unwrap();
    let smol = common::model("smollm2-135m-q4_1");
    let set = |name: &str, kv: &str| {
        let p = dir.path().join(name);
        let o = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gguf_tensors.py"))
            .args(["--set", smol.to_str().unwrap(), p.to_str().unwrap(), kv])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        p
    };
    let eos = set("eos.gguf", "tokenizer.ggml.eos_token_id=u32:5");
    let tmpl = set("tmpl.gguf", "tokenizer.chat_template=str:{{ messages }}");
    let bench = |file: &Path, out: &str| {
        common::run(&[
            "bench",
            "--model",
            smol.to_str().unwrap(),
            "--quants",
            "q8_0",
            "--gguf",
            &format!("q4_1={}", file.display()),
            "--repeats",
            "1",
            "--prompt-tokens",
            "16",
            "--gen-tokens",
            "4",
            "--ctx",
            "16",
            "--quiet",
            "--out",
            dir.path().join(out).to_str().unwrap(),
        ])
    };
    let o = bench(&eos, "eos");
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("its tokenizer differs")
            && e.contains("end-of-generation tokens [0, 2, 5], not [0, 2]"),
        "{e}"
    );
    let o = bench(&tmpl, "tmpl");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = qeval::results::Results::load(&dir.path().join("tmpl/results.json")).unwrap();
    let l = r.levels.iter().find(|l| l.level == "q4_1").unwrap();
    assert!(l.source.contains("chat template differs"), "{}", l.source);
}
