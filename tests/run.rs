//! `qeval run` end to end on the real small models: GGUF source, a safetensors directory made
//! from it, a synthetic model whose widths fit the k-quants, and the Hub download path.

mod common;

use candle_core::{DType, Device, Tensor};
use qeval::results::Results;
use std::path::Path;

const FAST: &[&str] = &[
    "--ctx",
    "256",
    "--chunks",
    "2",
    "--repeats",
    "1",
    "--prompt-tokens",
    "64",
    "--gen-tokens",
    "8",
    "--quiet",
    "--no-tasks",
];

fn run_ok(model: &str, quants: &str, out: &Path, extra: &[&str]) -> Results {
    let mut args = vec![
        "run",
        "--model",
        model,
        "--quants",
        quants,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let o = common::run(&args);
    assert!(o.status.success(), "qeval failed: {}", common::stderr(&o));
    Results::load(&out.join("results.json")).unwrap()
}

/// Run `qeval run --model MODEL` with HF_ENDPOINT pointing at the loopback Hub.
fn run_via_hub(
    model: &str,
    extra: &[&str],
    out: &Path,
    endpoint: &str,
    hf_home: &Path,
    offline: bool,
) -> std::process::Output {
    let mut args = vec!["run", "--model", model, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(FAST);
    let mut cmd = common::qeval();
    cmd.args(&args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env_remove("HF_TOKEN");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    } else {
        cmd.env_remove("HF_HUB_OFFLINE");
    }
    cmd.output().unwrap()
}

/// SmolLM2's tokenizer written as tokenizer.json into `dir` (for synthetic models).
fn smol_tokenizer_json(dir: &Path) -> std::path::PathBuf {
    let model = common::model("smollm2-135m-q4_1");
    let tj = dir.join("tokenizer.json");
    qeval::model::tokenizer::gguf_tokenizer(&model)
        .unwrap()
        .save_json(&tj)
        .unwrap();
    tj
}

fn level<'a>(r: &'a Results, name: &str) -> &'a qeval::results::LevelResult {
    r.levels.iter().find(|l| l.level == name).unwrap()
}

#[test]
fn smollm2_gguf_levels_order_by_quality_and_write_every_report() {
    let model = common::model("smollm2-135m-q4_1");
    let out = tempfile::tempdir().unwrap();
    let r = run_ok(
        model.to_str().unwrap(),
        "f16,q8_0,q4_k-pure,q2",
        out.path(),
        &[],
    );
    for f in [
        "results.json",
        "results.csv",
        "kld_vs_memory.png",
        "kld_vs_decode.png",
        "summary.md",
        "report.html",
    ] {
        let p = out.path().join(f);
        assert!(p.metadata().unwrap().len() > 100, "{f} missing or empty");
    }
    assert!(!out.path().join(".work").exists(), "work files left behind");
    assert_eq!(r.reference, "f16");
    assert!(r.model.source_is_quantized && r.reference_note.contains("dequantized"));
    assert_eq!(r.levels.len(), 4);
    let (q8, q4, q2) = (level(&r, "q8_0"), level(&r, "q4_k-pure"), level(&r, "q2_k"));
    // What each name resolved to: llama-quantize's file types, --pure for single-type levels.
    assert_eq!(q4.llama_quantize.as_deref(), Some("Q4_K_M --pure"));
    assert_eq!(q2.llama_quantize.as_deref(), Some("Q2_K"));
    assert_eq!(level(&r, "f16").llama_quantize.as_deref(), Some("F16"));
    let k = |l: &qeval::results::LevelResult| l.kld_mean.unwrap();
    assert!(k(q8) * 5.0 < k(q4), "q8_0 {} vs q4_k {}", k(q8), k(q4));
    assert!(k(q4) * 2.0 < k(q2), "q4_k {} vs q2_k {}", k(q4), k(q2));
    for l in &r.levels {
        assert_eq!(l.status, qeval::results::LevelStatus::Ok);
        let ppl = l.perplexity.unwrap();
        assert!(
            ppl.is_finite() && ppl > 1.0 && ppl < 1000.0,
            "{} ppl {ppl}",
            l.level
        );
        assert!(l.peak_rss_bytes.unwrap() > l.weight_bytes);
        assert!(l.prefill_tokens_per_sec.unwrap() > 0.0 && l.decode_tokens_per_sec.unwrap() > 0.0);
        // eval-scoring throughput: one --ctx window per repeat
        assert!(l.eval_tokens_per_sec.unwrap() > 0.0 && l.eval_tokens == 256);
        assert_eq!(l.kernels, qeval::measure::speed::kernels_in_use());
        assert_eq!(l.scored_tokens, 2 * 127);
    }
    // SmolLM2's 576-wide rows do not fit k-quant blocks: q4_k falls back as llama.cpp does.
    assert!(q4.fallbacks.iter().all(|f| f.chosen == "q5_0"));
    assert!(!q4.fallbacks.is_empty());
    // bits per weight follow the storage types
    assert!(
        q8.bits_per_weight > 8.0 && q8.bits_per_weight < 9.0,
        "{}",
        q8.bits_per_weight
    );
    // the CSV has one row per level
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,") && html.contains("<table id=\"levels\""));
}

/// Write the SmolLM2 GGUF as a safetensors directory (dequantized weights, its tokenizer).
fn smollm2_safetensors(dir: &Path) {
    let model = common::model("smollm2-135m-q4_1");
    let src = qeval::model::source::ModelSource::open(&model).unwrap();
    let tok = qeval::model::tokenizer::gguf_tokenizer(&model).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let tj = dir.join("tokenizer.tmp.json");
    tok.save_json(&tj).unwrap();
    qeval::model::export::export_source(&src, dir, &tj).unwrap();
    std::fs::remove_file(tj).unwrap();
}

#[test]
fn safetensors_directory_gives_the_same_reference_as_the_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("smol-st");
    smollm2_safetensors(&dir);
    let model = common::model("smollm2-135m-q4_1");
    let a = run_ok(model.to_str().unwrap(), "f32", &tmp.path().join("a"), &[]);
    let b = run_ok(
        dir.to_str().unwrap(),
        "f32,q8_0",
        &tmp.path().join("b"),
        &[],
    );
    assert_eq!(b.model.format, "safetensors");
    let (pa, pb) = (
        level(&a, "f32").perplexity.unwrap(),
        level(&b, "f32").perplexity.unwrap(),
    );
    // Same weights through two loaders (Q/K permutation, names): same perplexity.
    assert!((pa - pb).abs() / pa < 1e-4, "gguf {pa} vs safetensors {pb}");
    assert!(level(&b, "q8_0").kld_mean.unwrap() < 0.05);
    assert!(level(&b, "q8_0").source.contains("safetensors"));
}

/// A small random llama model whose matrix widths are multiples of 256, so every k-quant
/// applies without fallback.
fn synthetic_model(dir: &Path, tokenizer_json: &Path, vocab: usize, arch: &str) {
    synthetic_model_with(dir, tokenizer_json, vocab, arch, None)
}

/// As `synthetic_model`, with every weight of `blk.0.ffn_down` set to `big` when given.
fn synthetic_model_with(
    dir: &Path,
    tokenizer_json: &Path,
    vocab: usize,
    arch: &str,
    big: Option<f32>,
) {
    let cfg: qeval::model::ModelConfig = serde_json::from_value(serde_json::json!({
        "arch": arch, "n_layer": 2, "n_embd": 256, "n_head": 4, "n_kv_head": 2, "head_dim": 64,
        "n_ff": 512, "vocab_size": vocab, "rms_eps": 1e-5, "rope_theta": 10000.0, "rope_theta_local": 10000.0,
        "sliding_window": null, "sliding_window_pattern": 6, "context_length": 2048, "rope_freq_factors": null
    }))
    .unwrap();
    let dev = Device::Cpu;
    let mut t = vec![
        (
            "token_embd.weight".to_string(),
            Tensor::randn(0f32, 0.1, (vocab, 256), &dev).unwrap(),
        ),
        (
            "output_norm.weight".to_string(),
            Tensor::ones(256, DType::F32, &dev).unwrap(),
        ),
    ];
    for i in 0..2 {
        let mut add = |n: &str, shape: (usize, usize)| {
            let s = 1.0 / (shape.1 as f32).sqrt();
            t.push((
                format!("blk.{i}.{n}.weight"),
                Tensor::randn(0f32, s, shape, &dev).unwrap(),
            ));
        };
        add("attn_q", (256, 256));
        add("attn_k", (128, 256));
        add("attn_v", (128, 256));
        add("attn_output", (256, 256));
        add("ffn_gate", (512, 256));
        add("ffn_up", (512, 256));
        add("ffn_down", (256, 512));
        if let (0, Some(b)) = (i, big) {
            if let Some(last) = t.last_mut() {
                last.1 = Tensor::full(b, (256, 512), &dev).unwrap();
            }
        }
        t.push((
            format!("blk.{i}.attn_norm.weight"),
            Tensor::ones(256, DType::F32, &dev).unwrap(),
        ));
        t.push((
            format!("blk.{i}.ffn_norm.weight"),
            Tensor::ones(256, DType::F32, &dev).unwrap(),
        ));
        if arch == "qwen3" {
            for n in ["attn_q_norm", "attn_k_norm"] {
                t.push((
                    format!("blk.{i}.{n}.weight"),
                    Tensor::ones(64, DType::F32, &dev).unwrap(),
                ));
            }
        }
    }
    qeval::model::export::write_dir(dir, &cfg, t, tokenizer_json).unwrap();
}

#[test]
fn k_quants_apply_without_fallback_on_256_wide_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let tj = smol_tokenizer_json(tmp.path());
    let dir = tmp.path().join("synthetic");
    synthetic_model(&dir, &tj, 49152, "llama");
    let r = run_ok(
        dir.to_str().unwrap(),
        "f32,q8_0,q6_k,q4_k-pure,q2_k-pure,q4_k_m",
        &tmp.path().join("out"),
        &[],
    );
    for (name, t) in [
        ("q6_k", "q6_k"),
        ("q4_k-pure", "q4_k"),
        ("q2_k-pure", "q2_k"),
    ] {
        let l = level(&r, name);
        assert!(l.fallbacks.is_empty(), "{name}: {:?}", l.fallbacks);
        assert!(l.type_mix.contains_key(t), "{name}: {:?}", l.type_mix);
    }
    let m = level(&r, "q4_k_m");
    assert!(
        m.type_mix.contains_key("q6_k") && m.type_mix.contains_key("q4_k"),
        "{:?}",
        m.type_mix
    );
    let k = |n: &str| level(&r, n).kld_mean.unwrap();
    assert!(
        k("q8_0") < k("q6_k") && k("q6_k") < k("q4_k-pure") && k("q4_k-pure") < k("q2_k-pure"),
        "{} {} {} {}",
        k("q8_0"),
        k("q6_k"),
        k("q4_k-pure"),
        k("q2_k-pure")
    );
    assert!(k("q4_k_m") < k("q4_k-pure"));
}

#[test]
fn hub_model_is_downloaded_through_the_loopback_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hub");
    smollm2_safetensors(&root.join("test-org").join("smol"));
    let server =
        common::hub_server::HubServer::start(&root, "0123456789abcdef0123456789abcdef01234567");
    let hf_home = tmp.path().join("hf-home");
    let out = tmp.path().join("out");
    let o = run_via_hub(
        "hf:test-org/smol",
        &["--quants", "q8_0"],
        &out,
        &server.url,
        &hf_home,
        false,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = Results::load(&out.join("results.json")).unwrap();
    assert_eq!(r.model.repo.as_deref(), Some("test-org/smol"));
    assert_eq!(
        r.model.revision.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let snap = hf_home
        .join("hub/models--test-org--smol/snapshots/0123456789abcdef0123456789abcdef01234567");
    assert!(snap.join("model.safetensors").exists() && snap.join("tokenizer.json").exists());
    // Offline, the cached copy is used and nothing is requested.
    let before = server.requests().len();
    let out2 = tmp.path().join("out2");
    let o = run_via_hub(
        "hf:test-org/smol",
        &["--quants", "q8_0"],
        &out2,
        &server.url,
        &hf_home,
        true,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(server.requests().len(), before);
}

#[test]
fn qwen3_architecture_runs_from_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let tj = smol_tokenizer_json(tmp.path());
    let dir = tmp.path().join("qwen3-synthetic");
    synthetic_model(&dir, &tj, 49152, "qwen3");
    let r = run_ok(
        dir.to_str().unwrap(),
        "bf16,q8_0,q4_k",
        &tmp.path().join("out"),
        &[],
    );
    assert_eq!(r.model.arch, "qwen3");
    assert_eq!(r.reference, "bf16");
    let k8 = level(&r, "q8_0").kld_mean.unwrap();
    // q4_k is llama-quantize's alias of Q4_K_M.
    let k4 = level(&r, "q4_k_m").kld_mean.unwrap();
    assert!(k8 > 0.0 && k8 < k4, "q8_0 {k8} q4_k_m {k4}");
    assert!(level(&r, "bf16").type_mix.contains_key("bf16"));
}

#[test]
fn catalog_gguf_file_is_used_for_its_level() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hub");
    smollm2_safetensors(&root.join("test-org").join("smol"));
    let gguf_repo = root.join("test-org").join("smol-gguf");
    std::fs::create_dir_all(&gguf_repo).unwrap();
    std::fs::copy(
        common::model("smollm2-135m-q4_1"),
        gguf_repo.join("smol-Q4_1.gguf"),
    )
    .unwrap();
    let server =
        common::hub_server::HubServer::start(&root, "89abcdef0123456789abcdef0123456789abcdef");
    let models = tmp.path().join("models.toml");
    std::fs::write(
        &models,
        "schema_version = 1\n[models.smol]\ndescription = \"test\"\narch = \"llama\"\nparams = \"135M\"\nrepo = \"test-org/smol\"\nrevision = \"main\"\n[models.smol.gguf]\nrepo = \"test-org/smol-gguf\"\nrevision = \"main\"\nfiles = { q4_1 = \"smol-Q4_1.gguf\" }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let models_arg = models.to_str().unwrap();
    let o = run_via_hub(
        "smol",
        &["--models", models_arg, "--quants", "f32,q4_1"],
        &out,
        &server.url,
        &tmp.path().join("hf-home"),
        false,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = Results::load(&out.join("results.json")).unwrap();
    let q = level(&r, "q4_1");
    assert!(q.source.contains("GGUF file"), "{}", q.source);
    // The safetensors were made from this very Q4_1 file: the file as stored matches the f32 reference closely.
    assert!(q.kld_mean.unwrap() < 0.01, "{}", q.kld_mean.unwrap());
    assert!(level(&r, "f32").source.contains("safetensors"));
}

#[test]
fn tokenizer_that_does_not_match_the_vocabulary_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tj = smol_tokenizer_json(tmp.path());
    let dir = tmp.path().join("small-vocab");
    synthetic_model(&dir, &tj, 1024, "llama");
    let o = common::run(&[
        "run",
        "--model",
        dir.to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
        "--quiet",
    ]);
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("49152 tokens") && e.contains("1024") && e.contains("do not belong together"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_level_with_non_finite_logits_fails_alone() {
    // Weights of 1e6 overflow f16 (max 65504) to infinity, so the f16 level's logits are not
    // finite; f32 holds them and q8_0 stores them as 127 x a scale of ~7874, which f16 holds.
    let tmp = tempfile::tempdir().unwrap();
    let tj = smol_tokenizer_json(tmp.path());
    let dir = tmp.path().join("spiky");
    synthetic_model_with(&dir, &tj, 49152, "llama", Some(1e6));
    let out = tmp.path().join("out");
    let mut args = vec![
        "run",
        "--model",
        dir.to_str().unwrap(),
        "--quants",
        "f32,f16,q8_0",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(FAST);
    let o = common::run(&args);
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(3), "an incomplete run exits 3: {e}");
    assert!(!e.contains("panicked"), "{e}");
    // FAST has --quiet: progress is hidden, the failure is not.
    assert!(
        e.contains("level f16 failed") && e.contains("non-finite"),
        "the failed level and its error on stderr: {e}"
    );
    let r = Results::load(&out.join("results.json")).unwrap();
    assert_eq!(r.status, qeval::results::RunStatus::Incomplete);
    let f16 = level(&r, "f16");
    assert_eq!(f16.status, qeval::results::LevelStatus::Failed);
    let why = f16.error.as_deref().unwrap_or_default();
    assert!(why.contains("non-finite"), "{why}");
    assert!(
        f16.perplexity.is_none() && f16.kld_mean.is_none(),
        "nothing averaged in"
    );
    for ok in ["f32", "q8_0"] {
        let l = level(&r, ok);
        assert_eq!(
            l.status,
            qeval::results::LevelStatus::Ok,
            "{ok}: {:?}",
            l.error
        );
        assert!(l.perplexity.unwrap().is_finite());
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("failed") && html.contains("non-finite"),
        "the report shows it"
    );
}

/// `--scoring kernel,weights`: every non-reference level runs twice, the weights-mode copy
/// named LEVEL-weights with its mode recorded; it holds f32 weights (more memory); its KLD is
/// the weights' error alone, so at q8_0 (where 8-bit activations are a large share of the
/// kernel's error) it is below the kernel-mode KLD; and the recommendation names no
/// weights-mode level.
#[test]
fn scoring_modes_kernel_and_weights_in_one_sweep() {
    let model = common::model("smollm2-135m-q4_1");
    let out = tempfile::tempdir().unwrap();
    let r = run_ok(
        model.to_str().unwrap(),
        "f16,q8_0",
        out.path(),
        &["--scoring", "kernel,weights"],
    );
    assert_eq!(r.scoring_mode, "kernel,weights");
    let names: Vec<&str> = r.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(names, ["f16", "f16-weights", "q8_0", "q8_0-weights"]);
    let k = level(&r, "q8_0");
    let w = level(&r, "q8_0-weights");
    assert_eq!(k.scoring_mode, qeval::results::ScoringMode::Kernel);
    assert_eq!(w.scoring_mode, qeval::results::ScoringMode::Weights);
    assert!(level(&r, "f16").is_reference && !level(&r, "f16-weights").is_reference);
    assert_eq!(k.weight_bytes, w.weight_bytes, "the same quantized weights");
    assert!(w.peak_rss_bytes.unwrap() > k.peak_rss_bytes.unwrap() + 300_000_000);
    let (kk, kw) = (k.kld_mean.unwrap(), w.kld_mean.unwrap());
    assert!(
        kw > 0.0 && kw < kk,
        "weights-only KLD {kw} vs kernel KLD {kk}"
    );
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    let recs: Vec<&str> = summary.lines().filter(|l| l.starts_with("- On ")).collect();
    assert!(!recs.is_empty(), "no recommendation in summary.md");
    for rec in recs {
        let chosen = rec
            .split_once("): ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_default();
        assert!(!chosen.is_empty() && !chosen.ends_with("-weights"), "{rec}");
    }
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",kernels,scoring_mode,device_peak_bytes,device_after_load_bytes"));
    assert!(csv
        .lines()
        .any(|l| l.contains(",q8_0-weights,") && l.ends_with(",weights,,")));
}
