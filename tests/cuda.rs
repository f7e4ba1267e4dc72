//! The CUDA build (`--features cuda`). Without a GPU (CI, development machines): the binary
//! runs, `--device cuda` is refused up front with exit 2 when the driver is NVIDIA's stub (the
//! one scripts/cuda-toolkit.sh builds, standing where the toolkit's `stubs/libcuda.so` does)
//! and `--device cpu` works. On a GPU (`cargo test --features cuda -- --ignored`, or the
//! prepared device check, scripts/device-check.sh): every weight type's matrix product on
//! CUDA against the CPU's on the same weights, and a model's perplexity and KLD on CUDA against
//! the CPU's at each level.
#![cfg(feature = "cuda")]

mod common;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of the libcuda stub scripts/cuda-toolkit.sh compiled.
fn stub_dir() -> PathBuf {
    let d = match std::env::var_os("QEVAL_CUDA_HOME") {
        Some(h) => PathBuf::from(h),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/qeval-cuda/13.0")
        }
    }
    .join("stub");
    assert!(
        d.join("libcuda.so.1").is_file(),
        "{}: no libcuda stub; run scripts/cuda-toolkit.sh (.ci/run does)",
        d.display()
    );
    d
}

#[test]
fn without_a_driver_cuda_is_refused_up_front_and_the_cpu_still_runs() {
    let lib_path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) => format!("{}:{p}", stub_dir().display()),
        Err(_) => stub_dir().display().to_string(),
    };
    let dir = tempfile::tempdir().unwrap();
    let bench = |device: &str| {
        common::qeval()
            .env("LD_LIBRARY_PATH", &lib_path)
            .args([
                "bench",
                "--model",
                "shape:smollm2-135m",
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
                "--device",
                device,
                "--out",
            ])
            .arg(dir.path().join(device))
            .output()
            .unwrap()
    };
    let o = bench("cuda");
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no CUDA driver") && err.contains("stub"),
        "{err}"
    );
    // Refused before anything was loaded or written.
    assert!(!dir.path().join("cuda").join("results.json").exists());
    let o = bench("cpu");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = qeval::results::Results::load(&dir.path().join("cpu").join("results.json")).unwrap();
    assert!(r.levels[0].is_ok() && r.levels[0].device_memory.is_none());
}

fn cuda() -> Device {
    Device::new_cuda(0).expect("a CUDA device (these tests run with --ignored on a GPU)")
}

/// Root-mean-square of a - b over that of b.
fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut n) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += (*x as f64 - *y as f64).powi(2);
        n += (*y as f64).powi(2);
    }
    (d / n.max(1e-30)).sqrt()
}

// Needs a CUDA device, which CI's machines do not have: run with `--ignored` on a GPU
// (scripts/device-check.sh does). The CPU kernels it compares against are tested in CI by the
// kernel unit tests (src/kernels).
#[test]
#[ignore = "needs a CUDA GPU: cargo test --features cuda -- --ignored"]
fn every_weight_type_multiplies_on_cuda_as_on_the_cpu() {
    let gpu = cuda();
    let (n, k) = (96, 1024);
    let w = qeval::model::shape::values(1, "w", n * k);
    let w = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
    let types = [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q8_0,
        GgmlDType::Q2K,
        GgmlDType::Q3K,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ];
    for m in [1usize, 7, 64] {
        let x = qeval::model::shape::values(2, "x", m * k);
        let x: Vec<f32> = x.iter().map(|v| v * 50.0).collect();
        let xc = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
        let xg = xc.to_device(&gpu).unwrap();
        for t in types {
            let q = QTensor::quantize(&w, t).unwrap();
            let bytes = q.data().unwrap().into_owned();
            let qg = qtensor_from_ggml(t, &bytes, vec![n, k], &gpu).unwrap();
            let cpu = QMatMul::from_arc(Arc::new(q))
                .unwrap()
                .forward(&xc)
                .unwrap();
            let got = QMatMul::from_arc(Arc::new(qg))
                .unwrap()
                .forward(&xg)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap();
            let a = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = cpu
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let e = rel_rms(&a, &b);
            println!("matmul {t:?} m={m}: relative RMS difference CUDA vs CPU {e:.2e}");
            // Both quantize the activations to 8 bits (CPU per 32 or 256 values, CUDA per 32
            // as q8_1) or multiply in f16/bf16: within 2% of the output's RMS.
            assert!(e < 0.02, "{t:?} m={m}: {e}");
        }
    }
}

/// One row of log-probabilities per position.
type LogProbs = Vec<Vec<f32>>;

/// Log-probabilities of the next token at every position, on `device`.
fn logprobs(level_file: &std::path::Path, tokens: &[u32], device: &Device) -> LogProbs {
    let (cfg, tensors) = qeval::quant::quantize::read_level_file(level_file, device).unwrap();
    let mut m =
        qeval::model::transformer::Transformer::new(&cfg, tensors, tokens.len(), device).unwrap();
    let logits = m.forward(tokens, 0).unwrap();
    let rows = logits
        .to_device(&Device::Cpu)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    rows.iter()
        .map(|r| {
            let mx = r.iter().cloned().fold(f32::MIN, f32::max);
            let lse = mx + r.iter().map(|v| (v - mx).exp()).sum::<f32>().ln();
            r.iter().map(|v| v - lse).collect()
        })
        .collect()
}

/// Perplexity of `tokens` and the mean KL divergence from `reference`.
fn quality(lp: &[Vec<f32>], reference: &[Vec<f32>], tokens: &[u32]) -> (f64, f64) {
    let n = tokens.len() - 1;
    let mut nll = 0f64;
    let mut kld = 0f64;
    for i in 0..n {
        nll -= lp[i][tokens[i + 1] as usize] as f64;
        kld += reference[i]
            .iter()
            .zip(&lp[i])
            .map(|(r, q)| (r.exp() * (r - q)) as f64)
            .sum::<f64>();
    }
    ((nll / n as f64).exp(), kld / n as f64)
}

const LEVELS: [&str; 6] = ["f16", "q8_0", "q6_k", "q4_k_m", "q4_0", "q2_k"];

/// Perplexity and KLD against f16 of each of [`LEVELS`] on each device, on a Qwen2.5-0.5B-like
/// shape four layers deep (biases, GQA, 256-aligned k-quant rows): `[level][device]`.
fn quality_by_level(devices: &[Device]) -> Vec<Vec<(f64, f64)>> {
    use qeval::model::shape::{Shape, ShapeSpec};
    let spec = ShapeSpec {
        layers: 4,
        hidden: 896,
        ffn: 4864,
        heads: 14,
        kv_heads: 2,
        head_dim: 64,
        vocab: 151936,
        tied: true,
        context: 4096,
        rope_theta: 1_000_000.0,
        sliding_window: None,
        sliding_window_pattern: None,
    };
    let shape = Shape {
        name: "shape:qwen2.5-0.5b-4-layers".into(),
        config: spec.config(qeval::model::Arch::Qwen2, "test").unwrap(),
        tied: true,
    };
    let src = qeval::model::source::ModelSource::from_shape(&shape, 1234);
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<u32> = (0..256u32).map(|i| (i * 7919 + 13) % 151936).collect();
    // The f16 reference's log-probabilities, per device.
    let mut refs: Option<Vec<LogProbs>> = None;
    let mut out = Vec::new();
    for name in LEVELS {
        let level = qeval::quant::Level::parse(name).unwrap();
        let w = qeval::quant::quantize::quantize(&src, level, &|| {}).unwrap();
        let f = dir.path().join(format!("{name}.gguf"));
        qeval::quant::quantize::write_level_file(&f, &src.config, &w).unwrap();
        let lps: Vec<LogProbs> = devices.iter().map(|d| logprobs(&f, &tokens, d)).collect();
        let refs = refs.get_or_insert_with(|| lps.clone());
        out.push(
            lps.iter()
                .zip(refs.iter())
                .map(|(lp, r)| quality(lp, r, &tokens))
                .collect(),
        );
    }
    out
}

/// Runs in CI: the measure the GPU test below compares, on the CPU alone (the reference scores
/// itself exactly; coarser levels lose more; every perplexity is a number).
#[test]
fn the_agreement_measure_runs_on_the_cpu() {
    let q = quality_by_level(&[Device::Cpu]);
    for (name, l) in LEVELS.iter().zip(&q) {
        println!("{name:<8} PPL {:.3}  KLD {:.6}", l[0].0, l[0].1);
        assert!(l[0].0.is_finite() && l[0].0 > 1.0, "{name}: {:?}", l[0]);
    }
    assert_eq!(q[0][0].1, 0.0, "f16 against itself");
    assert!(
        q[1][0].1 > 0.0 && q[1][0].1 < q[5][0].1,
        "q8_0 {:?} q2_k {:?}",
        q[1],
        q[5]
    );
}

// Needs a CUDA device, which CI's machines do not have: run with `--ignored` on a GPU
// (scripts/device-check.sh does). Its CPU half runs in CI above.
#[test]
#[ignore = "needs a CUDA GPU: cargo test --features cuda -- --ignored"]
fn a_model_scores_alike_on_cuda_and_on_the_cpu() {
    let q = quality_by_level(&[Device::Cpu, cuda()]);
    println!("level    ppl cpu     ppl cuda    ΔPPL     KLD cpu     KLD cuda    ΔKLD");
    for (name, l) in LEVELS.iter().zip(&q) {
        let ((ppl_c, kld_c), (ppl_g, kld_g)) = (l[0], l[1]);
        let dppl = ppl_g / ppl_c - 1.0;
        let dkld = if kld_c > 0.0 {
            kld_g / kld_c - 1.0
        } else {
            0.0
        };
        println!(
            "{name:<8} {ppl_c:<11.3} {ppl_g:<11.3} {:+.3}%  {kld_c:<11.6} {kld_g:<11.6} {:+.1}%",
            dppl * 100.0,
            dkld * 100.0
        );
        assert!(
            dppl.abs() < 0.005,
            "{name}: PPL {ppl_c} on the CPU, {ppl_g} on CUDA"
        );
        if *name != "f16" {
            assert!(
                dkld.abs() < 0.05,
                "{name}: KLD {kld_c} on the CPU, {kld_g} on CUDA"
            );
        }
    }
}
