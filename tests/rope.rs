//! Rope scaling read from GGUF metadata, against llama.cpp: the real SmolLM2 file with
//! `llama.rope.scaling.*` keys added (no scaling, linear x2, YaRN x4 over an original context of
//! 2,048) scores the perplexity `llama-perplexity` printed for the same metadata on the f16
//! file it made of this model (`-c 512 --chunks 4`, the default eval set's text; commands in
//! the README's "Rope scaling" note), and a rope type qeval does not implement is refused by
//! name, never ignored.

mod common;

use candle_core::quantized::gguf_file::Value;
use std::path::{Path, PathBuf};

/// A copy of `src` with metadata keys set.
fn with_keys(src: &Path, dst: &Path, keys: &[(&str, Value)]) {
    qeval::model::transplant::with_keys(src, dst, keys).unwrap();
}

/// A name, the metadata keys set, and llama-perplexity's final estimate.
type Case<'a> = (&'a str, Vec<(&'a str, Value)>, f64);

#[test]
fn rope_scaling_from_gguf_matches_llama_cpp() {
    let smol: PathBuf = common::model("smollm2-135m-q4_1");
    let tmp = tempfile::tempdir().unwrap();
    let s = |v: &str| Value::String(v.into());
    // (keys, llama-perplexity's "Final estimate: PPL")
    let cases: [Case; 3] = [
        ("none", vec![], 34.2862),
        (
            "linear",
            vec![
                ("llama.rope.scaling.type", s("linear")),
                ("llama.rope.scaling.factor", Value::F32(2.0)),
            ],
            69.5647,
        ),
        (
            "yarn",
            vec![
                ("llama.rope.scaling.type", s("yarn")),
                ("llama.rope.scaling.factor", Value::F32(4.0)),
                (
                    "llama.rope.scaling.original_context_length",
                    Value::U32(2048),
                ),
            ],
            36.4636,
        ),
    ];
    for (name, keys, llama) in cases {
        let m = tmp.path().join(format!("{name}.gguf"));
        with_keys(&smol, &m, &keys);
        let ppl = common::f16_perplexity(&m, &tmp.path().join(name));
        let rel = (ppl - llama).abs() / llama;
        assert!(rel < 1e-3, "{name}: qeval {ppl} vs llama.cpp {llama}");
    }
    let m = tmp.path().join("longrope.gguf");
    with_keys(&smol, &m, &[("llama.rope.scaling.type", s("longrope"))]);
    let o = common::run(&[
        "run",
        "--model",
        m.to_str().unwrap(),
        "--quants",
        "f16",
        "--no-tasks",
        "--out",
        tmp.path().join("lr").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(
        e.contains("llama.rope.scaling.type") && e.contains("longrope"),
        "{e}"
    );
}
