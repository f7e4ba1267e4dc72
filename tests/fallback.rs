//! With qeval's CPU kernels turned off (`QEVAL_KERNELS=candle`) candle's matmuls and the tensor
//! attention path (repeated K/V heads, an additive −∞ mask built for causal, batched-choice and
//! sliding-window layers) run: what CUDA and Metal run, and CPUs without AVX2. On the real
//! models both paths give the same perplexity and the same per-item log-probabilities.

mod common;

use qeval::results::Results;
use std::collections::HashMap;
use std::path::Path;

/// Run the f16 level of `model` into `out`, with `kernels` as `QEVAL_KERNELS` when given.
fn run(model: &str, out: &Path, ctx: &str, kernels: Option<&str>) -> Results {
    let mut cmd = common::qeval();
    cmd.args([
        "run",
        "--model",
        model,
        "--quants",
        "f16",
        "--out",
        out.to_str().unwrap(),
        "--ctx",
        ctx,
        "--chunks",
        "1",
        "--limit",
        "6",
        "--repeats",
        "1",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "2",
        "--threads",
        "2",
        "--quiet",
    ]);
    match kernels {
        Some(k) => cmd.env("QEVAL_KERNELS", k),
        None => cmd.env_remove("QEVAL_KERNELS"),
    };
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    Results::load(&out.join("results.json")).unwrap()
}

/// Per choice item: its options' summed log-probabilities.
fn logprobs(out: &Path) -> HashMap<String, Vec<f64>> {
    std::fs::read_to_string(out.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| {
            let lp: Vec<f64> = v["logprobs"]
                .as_array()?
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (!lp.is_empty()).then(|| (v["id"].as_str().unwrap().to_string(), lp))
        })
        .collect()
}

#[test]
fn candle_path_agrees_with_qevals_kernels() {
    if qeval::kernels::detect().is_none() {
        eprintln!("no AVX2 here: only the candle path exists");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // Gemma 3's local layers see 512 positions: a 640-token window masks the far keys of the
    // last 128 scored positions.
    for (name, ctx) in [("smollm2-135m-q4_1", "256"), ("gemma3-270m-q4_k_m", "640")] {
        let model = common::model(name);
        let model = model.to_str().unwrap();
        let (a, b) = (
            d.path().join(format!("{name}-qeval")),
            d.path().join(format!("{name}-candle")),
        );
        let ours = run(model, &a, ctx, None);
        let theirs = run(model, &b, ctx, Some("candle"));
        assert!(
            ours.levels[0].kernels.starts_with("qeval"),
            "{}",
            ours.levels[0].kernels
        );
        assert!(
            theirs.levels[0].kernels.starts_with("candle"),
            "{}",
            theirs.levels[0].kernels
        );
        let (p, q) = (
            ours.levels[0].perplexity.unwrap(),
            theirs.levels[0].perplexity.unwrap(),
        );
        assert!(
            ((p - q) / q).abs() < TOL_PPL,
            "{name}: perplexity {p} with qeval's kernels, {q} with candle's"
        );
        let (la, lb) = (logprobs(&a), logprobs(&b));
        assert!(la.len() >= 6, "{name}: {} choice items", la.len());
        for (id, x) in &la {
            let y = &lb[id];
            assert_eq!(x.len(), y.len(), "{name} item {id}: choice counts differ");
            for (u, v) in x.iter().zip(y) {
                assert!(
                    (u - v).abs() < TOL_LP + TOL_PPL * v.abs(),
                    "{name} item {id}: log-probabilities {x:?} vs {y:?}"
                );
            }
        }
    }
}

/// candle's f16 matmul rounds the activations to f16, qeval's keeps them f32. Measured on an
/// AVX-512 Xeon: perplexity 8.4e-4 (SmolLM2) and 3.4e-4 (Gemma 3) apart relative,
/// log-probabilities at most 0.021. On an AVX2-only AMD EPYC (other kernel paths) a choice's
/// summed log-probability of -31.61 came out 0.055 apart (0.17%), so the log-probability
/// tolerance also grows with the sum, at the perplexity's relative rate; a missing causal or
/// window mask moves them by far more.
const TOL_PPL: f64 = 2e-3;
const TOL_LP: f64 = 0.05;
