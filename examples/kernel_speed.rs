//! Times qeval's quantized matmul kernels against candle's on one matrix shape per type
//! (SmolLM2's ffn_up: 1536×576, and 1536×1536 for k-quants), for one row (decode) and 128 rows
//! (prefill), in the threads of the rayon pool (`RAYON_NUM_THREADS`).
//!
//! cargo run --release --example kernel_speed
//! cargo run --release --example kernel_speed -- q4k 8960 1536 512   (one type, n k m)
//! cargo run --release --example kernel_speed -- f16 8960 1536 512   (f16 weights against candle's f32 matmul)

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use qeval::kernels::QMatMulOp;
use std::sync::Arc;
use std::time::Instant;

fn time(f: &mut dyn FnMut(), reps: usize) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    println!("isa: {}", qeval::kernels::describe());
    println!(
        "{:<6} {:>5} {:>5} {:>12} {:>12} {:>7}",
        "type", "k", "rows", "candle GOP/s", "qeval GOP/s", "ratio"
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [t, n, k, m] = args.as_slice() {
        if t == "f16" {
            return f16(n.parse()?, k.parse()?, m.parse()?);
        }
    }
    let one: Option<(GgmlDType, usize, usize, usize)> = match args.as_slice() {
        [] => None,
        [t, n, k, m] => {
            let dt = match t.as_str() {
                "q4_0" => GgmlDType::Q4_0,
                "q8_0" => GgmlDType::Q8_0,
                "q5_0" => GgmlDType::Q5_0,
                "q2k" => GgmlDType::Q2K,
                "q3k" => GgmlDType::Q3K,
                "q4k" => GgmlDType::Q4K,
                "q5k" => GgmlDType::Q5K,
                "q6k" => GgmlDType::Q6K,
                other => {
                    anyhow::bail!(
                        "type {other}: use f16, q4_0, q5_0, q8_0, q2k, q3k, q4k, q5k or q6k"
                    )
                }
            };
            Some((dt, n.parse()?, k.parse()?, m.parse()?))
        }
        _ => anyhow::bail!("arguments: none, or TYPE N K M"),
    };
    let all = [
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
    let types: Vec<GgmlDType> = match one {
        Some((dt, ..)) => vec![dt],
        None => all.to_vec(),
    };
    for dt in types {
        let given;
        let shapes: &[(usize, usize)] = match (one, dt) {
            (Some((_, n, k, _)), _) => {
                given = [(n, k)];
                &given
            }
            (None, GgmlDType::Q2K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K) => {
                &[(576, 1536)]
            }
            _ => &[(1536, 576), (576, 1536)],
        };
        let ms: Vec<usize> = match one {
            Some((.., m)) => vec![m],
            None => vec![1, 128],
        };
        for &(n, k) in shapes {
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let q = Arc::new(QTensor::quantize(&w, dt)?);
            let cand = QMatMul::QTensor(q.clone());
            let Some(ours) =
                qeval::kernels::isa().and_then(|isa| QMatMulOp::with_isa(q.clone(), isa, true))
            else {
                println!("{dt:?}: no kernel on this CPU");
                continue;
            };
            for &m in &ms {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
                let reps = if m == 1 { 200 } else { 5 };
                let tc = time(
                    &mut || {
                        let _ = cand.forward(&x);
                    },
                    reps,
                );
                let to = time(
                    &mut || {
                        let _ = ours.forward(&x);
                    },
                    reps,
                );
                print_row(&format!("{dt:?}"), n, k, m, tc, to);
            }
        }
    }
    Ok(())
}

/// f16 weights (n×k) times m f32 activation rows: qeval's f16 kernel against candle's f32
/// matmul of the same weights converted to f32 (candle has no f16 × f32 product).
fn f16(n: usize, k: usize, m: usize) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
    let w16 = w.to_dtype(candle_core::DType::F16)?;
    let w32t = w16.to_dtype(candle_core::DType::F32)?.t()?;
    let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
    let reps = if m == 1 { 50 } else { 5 };
    let tc = time(
        &mut || {
            let _ = x.matmul(&w32t);
        },
        reps,
    );
    let to = time(
        &mut || {
            let _ = qeval::kernels::f16::matmul(&w16, &x);
        },
        reps,
    );
    print_row("F16", n, k, m, tc, to);
    Ok(())
}

/// One line of the table: GOP/s of both kernels from their best times, and the ratio.
fn print_row(label: &str, n: usize, k: usize, m: usize, tc: f64, to: f64) {
    let ops = 2.0 * (m * n * k) as f64 / 1e9;
    println!(
        "{:<6} {:>5} {:>5} {:>12.1} {:>12.1} {:>7.2}",
        label,
        k,
        m,
        ops / tc,
        ops / to,
        tc / to
    );
}
