//! Bad input gets a clear message that names the flag, file or value, and a usage exit code
//! (2), never a panic.

mod common;

use std::path::Path;

fn expect_usage_error(args: &[&str], needles: &[&str]) {
    let o = common::run(args);
    let err = common::stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "args {args:?}: exit {:?}, stderr: {err}",
        o.status.code()
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic for {args:?}: {err}"
    );
    // `cargo test --test errors -- --nocapture` lists every bad input with its message.
    eprintln!("BAD INPUT {:?}\n  -> {}", &args[1..], err.trim());
    for n in needles {
        assert!(err.contains(n), "args {args:?}: expected {n:?} in: {err}");
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    let smol = common::model("smollm2-135m-q4_1");
    let smol_s = smol.to_str().unwrap();

    expect_usage_error(
        &["run", "--model", "qwen", "--out", out_s],
        &["unknown model 'qwen'", "qwen3"],
    );
    expect_usage_error(
        &["run", "--model", smol_s, "--quants", "q7", "--out", out_s],
        &["'q7'", "q4_k_m"],
    );
    expect_usage_error(
        &["run", "--model", smol_s, "--quants", ",", "--out", out_s],
        &["--quants is empty"],
    );
    expect_usage_error(
        &[
            "run", "--model", smol_s, "--quants", "q4,q4_k", "--out", out_s,
        ],
        &["twice"],
    );
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--quants",
            "q8_0",
            "--reference",
            "f16",
            "--out",
            out_s,
        ],
        &["--reference f16", "not in the run"],
    );
    expect_usage_error(
        &["run", "--model", "./no/such/model.gguf", "--out", out_s],
        &["no/such/model.gguf"],
    );

    let notmodel = tmp.path().join("empty-dir");
    std::fs::create_dir_all(&notmodel).unwrap();
    expect_usage_error(
        &["run", "--model", notmodel.to_str().unwrap(), "--out", out_s],
        &["not a model", "config.json"],
    );

    let bad_magic = tmp.path().join("bad.gguf");
    std::fs::write(&bad_magic, b"NOPE\x03\x00\x00\x00rest of file").unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            bad_magic.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["bad.gguf", "not a GGUF file"],
    );

    let bad_version = tmp.path().join("v9.gguf");
    std::fs::write(&bad_version, b"GGUF\x09\x00\x00\x00rest").unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            bad_version.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["GGUF version 9"],
    );

    let truncated = tmp.path().join("truncated.gguf");
    let bytes = std::fs::read(&smol).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            truncated.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["truncated.gguf", "truncated"],
    );

    let empty_text = tmp.path().join("empty.txt");
    std::fs::write(&empty_text, "  \n").unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--text",
            empty_text.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["empty"],
    );

    let short_text = tmp.path().join("short.txt");
    std::fs::write(&short_text, "Only a few words here.").unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--quants",
            "q8_0",
            "--text",
            short_text.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["shorter than one chunk", "--ctx"],
    );

    expect_usage_error(
        &[
            "run", "--model", smol_s, "--quants", "q8_0", "--ctx", "100000", "--out", out_s,
        ],
        &["--ctx 100000", "context length"],
    );
    if !cfg!(feature = "cuda") {
        expect_usage_error(
            &["run", "--model", smol_s, "--device", "cuda", "--out", out_s],
            &["--features cuda"],
        );
    }
    let blocker = tmp.path().join("file-not-dir");
    std::fs::write(&blocker, "x").unwrap();
    let unwritable = blocker.join("out");
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--out",
            unwritable.to_str().unwrap(),
        ],
        &["--out", "cannot create"],
    );

    let bad_models = tmp.path().join("models.toml");
    std::fs::write(&bad_models, "schema_version = 1\n[models.x]\nbogus = 1\n").unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            "x",
            "--models",
            bad_models.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["models.toml"],
    );

    let bad_set = tmp.path().join("set");
    std::fs::create_dir_all(&bad_set).unwrap();
    std::fs::write(
        bad_set.join("evalset.toml"),
        "name='s'\nversion='1'\ncolour='red'\n[[task]]\nname='t'\nkind='text'\nfiles=['a.txt']\n",
    )
    .unwrap();
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--evalset",
            bad_set.to_str().unwrap(),
            "--out",
            out_s,
        ],
        &["evalset.toml", "colour"],
    );

    // Eval sets: a missing field, a bad regex, an answer index out of range.
    let set = |name: &str, toml: &str, items: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("evalset.toml"), toml).unwrap();
        std::fs::write(d.join("items.jsonl"), items).unwrap();
        d
    };
    let head = "name='s'\nversion='1'\n[[task]]\nname='mc'\nkind='choice'\nitems='items.jsonl'\n";
    let item = "{\"id\":\"a\",\"q\":\"x?\",\"c\":[\"yes\",\"no\"],\"g\":1}\n";
    for (name, toml, items, needles) in [
        (
            "missing",
            format!("{head}context='{{q}}'\nanswer='g'\n"),
            item.to_string(),
            vec!["evalset.toml:3", "task 'mc'", "missing the key 'choices'"],
        ),
        (
            "regex",
            "name='s'\nversion='1'\n[[task]]\nname='g'\nkind='generate'\nitems='items.jsonl'\nprompt='{q}'\nanswer='g'\nextract='([0-9]+'\n".to_string(),
            item.to_string(),
            vec!["task 'g'", "'extract'", "not a valid regex"],
        ),
        (
            "index",
            format!("{head}context='{{q}}'\nchoices='c'\nanswer='g'\n"),
            format!("{item}{{\"id\":\"b\",\"q\":\"y?\",\"c\":[\"yes\",\"no\"],\"g\":2}}\n"),
            vec!["items.jsonl:2", "'g' = 2 is out of range", "0..=1"],
        ),
    ] {
        let d = set(name, &toml, &items);
        expect_usage_error(
            &["run", "--model", smol_s, "--evalset", d.to_str().unwrap(), "--out", out_s],
            &needles,
        );
    }
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--evalset",
            "hellaswagg",
            "--out",
            out_s,
        ],
        &["--evalset 'hellaswagg'", "hellaswag"],
    );
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--evalset",
            "hellaswag",
            "--data-dir",
            "/no/such/dir",
            "--out",
            out_s,
        ],
        &["--data-dir /no/such/dir", "not a directory"],
    );
    expect_usage_error(
        &["run", "--model", smol_s, "--limit", "0", "--out", out_s],
        &["--limit 0"],
    );
    // Zero and negative counts name their flag.
    expect_usage_error(
        &["run", "--model", smol_s, "--threads", "0", "--out", out_s],
        &["--threads 0", "at least 1"],
    );
    expect_usage_error(
        &["bench", "--model", smol_s, "--threads", "0", "--out", out_s],
        &["--threads 0"],
    );
    expect_usage_error(
        &["run", "--model", smol_s, "--repeats", "0", "--out", out_s],
        &["--repeats 0"],
    );
    expect_usage_error(
        &["run", "--model", smol_s, "--threads", "-2", "--out", out_s],
        &["invalid value '-2' for '--threads"],
    );
    // A model larger than the memory it may use is refused before loading.
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--quants",
            "f32,q8_0",
            "--max-memory",
            "300MB",
            "--out",
            out_s,
        ],
        &["level f32 needs about", "0.30 GB is available", "--force"],
    );
    expect_usage_error(
        &[
            "run",
            "--model",
            smol_s,
            "--max-memory",
            "lots",
            "--out",
            out_s,
        ],
        &["--max-memory", "GiB"],
    );

    // Safetensors directories: config.json missing a key, an unsupported architecture, a
    // truncated weights file.
    let st = |name: &str, config: &str, weights: &[u8]| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), config).unwrap();
        std::fs::write(d.join("model.safetensors"), weights).unwrap();
        d
    };
    let cfg = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_key_value_heads":2,"num_hidden_layers":1,"vocab_size":256,"max_position_embeddings":512,"rms_norm_eps":1e-5,"rope_theta":10000.0}"#;
    let header = br#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[256,64],"data_offsets":[0,65536]}}"#;
    let mut truncated = (header.len() as u64).to_le_bytes().to_vec();
    truncated.extend_from_slice(header);
    truncated.extend_from_slice(&[0u8; 100]);
    let d = st(
        "st-missing",
        &cfg.replace(r#""hidden_size":64,"#, ""),
        &truncated,
    );
    expect_usage_error(
        &["run", "--model", d.to_str().unwrap(), "--out", out_s],
        &["config.json", "hidden_size"],
    );
    let d = st(
        "st-arch",
        &cfg.replace("LlamaForCausalLM", "MambaForCausalLM")
            .replace(r#""llama""#, r#""mamba""#),
        &truncated,
    );
    expect_usage_error(
        &["run", "--model", d.to_str().unwrap(), "--out", out_s],
        &["config.json", "mamba"],
    );
    let d = st("st-trunc", cfg, &truncated);
    expect_usage_error(
        &["run", "--model", d.to_str().unwrap(), "--out", out_s],
        &["model.safetensors"],
    );

    let old = tmp.path().join("old.json");
    std::fs::write(&old, r#"{"schema_version": 0}"#).unwrap();
    expect_usage_error(&["report", old.to_str().unwrap()], &["schema_version 0"]);
    assert!(!Path::new(out_s).join("results.json").exists());
}

/// A bare `qeval` (the README's `cargo run --release`) starts the offline demo: it plans the
/// demo's four levels on SmolLM2 and announces them; stopped once it has said so.
#[test]
fn bare_qeval_runs_the_demo() {
    use std::io::{BufRead, BufReader};
    let _ = common::model("smollm2-135m-q4_1"); // the demo's model, cached by fetch-models.sh
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::qeval()
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut announced = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("qeval: smollm2-135m-q4_1") {
            assert!(line.contains("reference f16"), "{line}");
            assert!(line.contains("in 6 chunks"), "{line}");
            announced = true;
            break;
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        announced,
        "no demo announcement; stderr: {}",
        seen.join("\n")
    );
    // The demo's report folder, in the working directory as the README says.
    let reports: Vec<_> = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        reports.iter().any(|r| r.starts_with("smollm2-135m-q4_1-")),
        "{reports:?}"
    );
    let help = common::run(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout)
        .contains("With no command, qeval runs the offline demo"));
}
