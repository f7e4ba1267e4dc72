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

    let old = tmp.path().join("old.json");
    std::fs::write(&old, r#"{"schema_version": 0}"#).unwrap();
    expect_usage_error(&["report", old.to_str().unwrap()], &["schema_version 0"]);
    assert!(!Path::new(out_s).join("results.json").exists());
}
