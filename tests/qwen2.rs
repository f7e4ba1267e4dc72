//! qwen2 (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen) against an independent numpy forward pass
//! (scripts/qwen2_reference.py, whose outputs are committed under tests/fixtures/qwen2/):
//! - a tiny synthetic qwen2, built here with the script's counter-hash weights, read as a GGUF
//!   and as a safetensors directory: logits equal numpy's; biases stay f32 at a quantized level;
//!   unimplemented config keys are refused by name;
//! - when `scripts/fetch-models.sh --qwen` has cached Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB;
//!   skipped with a note otherwise): its logits with the weights dequantized equal numpy's on the
//!   same dequantized weights, and `qeval run` gives it a sane perplexity.

mod common;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use qeval::model::source::ModelSource;
use qeval::model::transformer::{ScoringMode, Transformer};
use qeval::model::Arch;
use qeval::quant::{quantize, Level};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

// The synthetic model: the numbers of CFG in scripts/qwen2_reference.py.
const VOCAB: usize = 96;
const N_EMBD: usize = 64;
const N_HEAD: usize = 4;
const N_KV_HEAD: usize = 2;
const N_FF: usize = 96;
const N_LAYER: usize = 2;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qwen2")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// The script's `hashed`: lowbias32 of seed * 0x9E3779B9 + i, as f32 in [-0.5, 0.5).
fn hashed(seed: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let mut x = (i as u32).wrapping_add(seed.wrapping_mul(0x9E37_79B9));
            x ^= x >> 16;
            x = x.wrapping_mul(0x7FEB_352D);
            x ^= x >> 15;
            x = x.wrapping_mul(0x846C_A68B);
            x ^= x >> 16;
            (x >> 8) as f32 / 16_777_216.0 - 0.5
        })
        .collect()
}

/// The script's `synthetic_tensors`: (canonical name, f32 tensor) in its order.
fn synthetic_tensors() -> Vec<(String, Tensor)> {
    let (d, hd) = (N_EMBD, N_EMBD / N_HEAD);
    let kvd = N_KV_HEAD * hd;
    const NORM: f32 = -1.0;
    let mut spec: Vec<(String, Vec<usize>, f32)> =
        vec![("token_embd.weight".into(), vec![VOCAB, d], 1.0)];
    for i in 0..N_LAYER {
        let p = |t: &str| format!("blk.{i}.{t}");
        spec.extend([
            (p("attn_norm.weight"), vec![d], NORM),
            (p("attn_q.weight"), vec![d, d], 0.25),
            (p("attn_q.bias"), vec![d], 1.0),
            (p("attn_k.weight"), vec![kvd, d], 0.25),
            (p("attn_k.bias"), vec![kvd], 1.0),
            (p("attn_v.weight"), vec![kvd, d], 0.25),
            (p("attn_v.bias"), vec![kvd], 1.0),
            (p("attn_output.weight"), vec![d, d], 0.25),
            (p("ffn_norm.weight"), vec![d], NORM),
            (p("ffn_gate.weight"), vec![N_FF, d], 0.25),
            (p("ffn_up.weight"), vec![N_FF, d], 0.25),
            (p("ffn_down.weight"), vec![d, N_FF], 0.25),
        ]);
    }
    spec.push(("output_norm.weight".into(), vec![d], NORM));
    spec.push(("output.weight".into(), vec![VOCAB, d], 0.5));
    spec.into_iter()
        .enumerate()
        .map(|(k, (name, shape, scale))| {
            let n = shape.iter().product();
            let v: Vec<f32> = hashed(k as u32 + 1, n)
                .into_iter()
                .map(|x| {
                    if scale == NORM {
                        1.0 + x * 0.5
                    } else {
                        x * scale
                    }
                })
                .collect();
            (name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
        })
        .collect()
}

/// Write the synthetic model as a GGUF with llama.cpp's qwen2 metadata keys.
fn write_synthetic_gguf(path: &Path, tensors: &[(String, Tensor)]) {
    use gguf_file::Value as V;
    let md = [
        ("general.architecture", V::String("qwen2".into())),
        ("qwen2.block_count", V::U32(N_LAYER as u32)),
        ("qwen2.context_length", V::U32(256)),
        ("qwen2.embedding_length", V::U32(N_EMBD as u32)),
        ("qwen2.feed_forward_length", V::U32(N_FF as u32)),
        ("qwen2.attention.head_count", V::U32(N_HEAD as u32)),
        ("qwen2.attention.head_count_kv", V::U32(N_KV_HEAD as u32)),
        ("qwen2.rope.freq_base", V::F32(10_000.0)),
        ("qwen2.attention.layer_norm_rms_epsilon", V::F32(1e-6)),
        ("qwen2.vocab_size", V::U32(VOCAB as u32)),
    ];
    let md: Vec<(&str, &V)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let q: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), QTensor::quantize(t, GgmlDType::F32).unwrap()))
        .collect();
    let q: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md, &q).unwrap();
}

/// `src` at `level`, through a level file as the level worker loads it.
fn load_level(src: &ModelSource, level: Level, dir: &Path, max_seq: usize) -> Transformer {
    let w = quantize::quantize(src, level, &|| {}).unwrap();
    let f = dir.join(format!("{}.gguf", level.name()));
    quantize::write_level_file(&f, &src.config, &w).unwrap();
    let (cfg, t) = quantize::read_level_file(&f, &Device::Cpu).unwrap();
    for i in 0..cfg.n_layer {
        for b in ["attn_q", "attn_k", "attn_v"] {
            let n = format!("blk.{i}.{b}.bias");
            assert_eq!(t[&n].type_name(), "f32", "{n} in the {level} level file");
        }
    }
    Transformer::new(&cfg, t, max_seq, &Device::Cpu).unwrap()
}

/// Largest |qeval - numpy| over all logits of the fixture's tokens.
fn max_diff_to_reference(m: &mut Transformer, reference: &Value) -> f32 {
    let tokens: Vec<u32> = reference["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    m.reset();
    let got = m.forward(&tokens, 0).unwrap().to_vec2::<f32>().unwrap();
    let want = reference["logits"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    let mut max = 0f32;
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w.as_array().unwrap()) {
            max = max.max((a - b.as_f64().unwrap() as f32).abs());
        }
    }
    max
}

#[test]
fn synthetic_qwen2_matches_numpy_from_gguf_and_safetensors() {
    let reference = fixture("synthetic.json");
    let tensors = synthetic_tensors();
    // The weights are the script's (checked per tensor before any logits are compared).
    for (name, t) in &tensors {
        let sum = t
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want = reference["sums"][name].as_f64().unwrap();
        assert!(
            (sum - want).abs() < 1e-6,
            "{name}: sum {sum}, script {want}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("qwen2.gguf");
    write_synthetic_gguf(&gguf, &tensors);
    let src = ModelSource::open(&gguf).unwrap();
    assert_eq!(src.config.arch, Arch::Qwen2);
    assert!(!src.config.rope_interleaved());
    assert!(src.has_output());
    let mut m = load_level(&src, Level::F32, tmp.path(), 64);
    let d = max_diff_to_reference(&mut m, &reference);
    println!("synthetic qwen2 GGUF, f32: max |logit - numpy| = {d:.2e}");
    assert!(d < 1e-3, "GGUF f32 logits differ from numpy by {d}");

    // The same model as a Hugging Face checkpoint (config.json model_type qwen2, *_proj.bias).
    let tj = tmp.path().join("tokenizer.json");
    std::fs::write(&tj, "{}").unwrap(); // not read: this test compares logits of given ids
    let dir = tmp.path().join("qwen2-st");
    qeval::model::export::write_dir(&dir, &src.config, tensors.clone(), &tj).unwrap();
    let st: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(st.contains_key("model.layers.1.self_attn.v_proj.bias"));
    let back = ModelSource::open(&dir).unwrap();
    assert_eq!(back.config.arch, Arch::Qwen2);
    assert_eq!(back.tensors.len(), src.tensors.len());
    let mut m = load_level(&back, Level::F32, tmp.path(), 64);
    let d = max_diff_to_reference(&mut m, &reference);
    println!("synthetic qwen2 safetensors, f32: max |logit - numpy| = {d:.2e}");
    assert!(d < 1e-3, "safetensors f32 logits differ from numpy by {d}");

    // A quantized level keeps the biases f32 (load_level checks) and stays close.
    let mut m = load_level(&src, Level::Q8_0, tmp.path(), 64);
    let d = max_diff_to_reference(&mut m, &reference);
    println!("synthetic qwen2 GGUF, q8_0: max |logit - numpy| = {d:.2e}");
    assert!(d < 0.1, "q8_0 logits differ from numpy by {d}");

    // Optional: the GGUF that llama.cpp's gguf-py writes for the same model
    // (`scripts/qwen2_reference.py synthetic --gguf PATH`).
    if let Some(p) = std::env::var_os("QEVAL_QWEN2_GGUFPY") {
        let src = ModelSource::open(Path::new(&p)).unwrap();
        let mut m = load_level(&src, Level::F32, tmp.path(), 64);
        let d = max_diff_to_reference(&mut m, &reference);
        println!("gguf-py's synthetic qwen2, f32: max |logit - numpy| = {d:.2e}");
        assert!(d < 1e-3, "gguf-py file: logits differ from numpy by {d}");
    }
}

#[test]
fn qwen2_without_biases_is_refused_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors: Vec<(String, Tensor)> = synthetic_tensors()
        .into_iter()
        .filter(|(n, _)| n != "blk.1.attn_k.bias")
        .collect();
    let gguf = tmp.path().join("nobias.gguf");
    write_synthetic_gguf(&gguf, &tensors);
    let e = format!("{:#}", ModelSource::open(&gguf).err().unwrap());
    assert!(
        e.contains("blk.1.attn_k.bias") && e.contains("qwen2"),
        "{e}"
    );
}

#[test]
fn qwen2_config_keys_that_change_the_math_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src_gguf = tmp.path().join("qwen2.gguf");
    let tensors = synthetic_tensors();
    write_synthetic_gguf(&src_gguf, &tensors);
    let cfg = ModelSource::open(&src_gguf).unwrap().config;
    let tj = tmp.path().join("tokenizer.json");
    std::fs::write(&tj, "{}").unwrap();
    let dir = tmp.path().join("st");
    qeval::model::export::write_dir(&dir, &cfg, tensors, &tj).unwrap();
    let config_path = dir.join("config.json");
    let base: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    // What real Qwen2.5 / DeepSeek-R1-Distill-Qwen configs say is accepted.
    let mut ok = base.clone();
    ok["use_sliding_window"] = false.into();
    ok["sliding_window"] = 4096.into();
    ok["max_window_layers"] = 21.into();
    ok["rope_scaling"] = Value::Null;
    ok["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
    std::fs::write(&config_path, serde_json::to_vec(&ok).unwrap()).unwrap();
    assert_eq!(ModelSource::open(&dir).unwrap().config.arch, Arch::Qwen2);
    // Qwen's long-context YaRN setting is honoured: frequency divisors and magnitude scale.
    let mut yarn = ok.clone();
    yarn["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768});
    std::fs::write(&config_path, serde_json::to_vec(&yarn).unwrap()).unwrap();
    let c = ModelSource::open(&dir).unwrap().config;
    assert!((c.rope_mscale - (1.0 + 0.1 * 4f32.ln())).abs() < 1e-6);
    assert!(c
        .rope_freq_factors
        .as_ref()
        .is_some_and(|f| f.iter().any(|&x| x > 1.0)));
    let cases = [
        ("use_sliding_window", Value::Bool(true)),
        (
            "rope_scaling",
            serde_json::json!({"type": "longrope", "factor": 4.0, "original_max_position_embeddings": 32768}),
        ),
        ("hidden_act", Value::String("gelu".into())),
        (
            "layer_types",
            serde_json::json!(["full_attention", "sliding_attention"]),
        ),
    ];
    for (key, value) in cases {
        let mut v = ok.clone();
        v[key] = value;
        std::fs::write(&config_path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = format!("{:#}", ModelSource::open(&dir).err().unwrap());
        assert!(
            e.contains(key) && e.contains("config.json") && e.contains("qwen2"),
            "{key}: {e}"
        );
    }
}

/// The text whose tokens coder-1.5b.json holds.
const CODER_TEXT: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n";

#[test]
fn qwen25_coder_logits_match_numpy_on_the_dequantized_weights() {
    let Some(path) = common::cached_coder() else {
        return;
    };
    let reference = fixture("coder-1.5b.json");
    let tokens: Vec<u32> = reference["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let tok = qeval::model::tokenizer::gguf_tokenizer(&path).unwrap();
    assert_eq!(tok.encode(CODER_TEXT, false).unwrap(), tokens);
    let src = ModelSource::open(&path).unwrap();
    assert_eq!(src.config.arch, Arch::Qwen2);
    assert_eq!(src.main_dtype(), "q4_k_m");
    // The file's own tensors, multiplied dequantized in f32 (what numpy does in float64).
    let mut t = HashMap::new();
    for meta in &src.tensors {
        let q = src.load_gguf_as_stored(&meta.name).unwrap();
        t.insert(meta.name.clone(), q);
    }
    let mut m = Transformer::with_mode(
        &src.config,
        t,
        tokens.len(),
        &Device::Cpu,
        ScoringMode::Weights,
    )
    .unwrap();
    let logits = m.forward(&tokens, 0).unwrap().to_vec2::<f32>().unwrap();
    let ids: Vec<usize> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect();
    let mut max = 0f32;
    let mut top1 = 0;
    for (row, want) in logits
        .iter()
        .zip(reference["positions"].as_array().unwrap())
    {
        for (&i, w) in ids.iter().zip(want["at_ids"].as_array().unwrap()) {
            max = max.max((row[i] - w.as_f64().unwrap() as f32).abs());
        }
        for (i, w) in want["top"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["top_logits"].as_array().unwrap())
        {
            max = max.max((row[i.as_u64().unwrap() as usize] - w.as_f64().unwrap() as f32).abs());
        }
        let argmax = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        top1 += usize::from(argmax as u64 == want["top"][0].as_u64().unwrap());
    }
    println!(
        "qwen2.5-coder-1.5b q4_k_m (weights dequantized): max |logit - numpy| = {max:.2e}, top-1 agrees at {top1}/{} positions",
        tokens.len()
    );
    assert!(max < 1e-3, "logits differ from numpy by {max}");
    assert!(top1 + 1 >= tokens.len(), "top-1 agrees at {top1} positions");
}

#[test]
fn qwen25_coder_perplexity_is_sane() {
    let Some(path) = common::cached_coder() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let level = format!("q4_k_m={}", path.display());
    let o = common::run(&[
        "run",
        "--model",
        path.to_str().unwrap(),
        "--gguf",
        &level,
        "--quants",
        "q4_k_m",
        "--no-tasks",
        "--chunks",
        "2",
        "--ctx",
        "256",
        "--repeats",
        "1",
        "--prompt-tokens",
        "64",
        "--gen-tokens",
        "16",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let ppl = perplexity(&r).expect("a perplexity in results.json");
    println!("qwen2.5-coder-1.5b q4_k_m: perplexity {ppl:.3} (2 chunks of 256)");
    assert!((2.0..40.0).contains(&ppl), "perplexity {ppl}");
}

/// The q4_k_m level's perplexity in results.json.
fn perplexity(r: &Value) -> Option<f64> {
    let levels = r["levels"].as_array()?;
    let l = levels.iter().find(|l| l["level"] == "q4_k_m")?;
    l["perplexity"].as_f64()
}
