//! Times the matmul of every GGUF type qeval multiplies itself (i-quants, TQ1_0/TQ2_0, MXFP4):
//! the AVX2 integer kernel against the dequantize-to-f32 path, on one weight shape (default
//! Qwen2.5-1.5B's ffn_down, 1536 × 8960), for one activation row (decode) and a prefill batch,
//! in the threads of the rayon pool (`RAYON_NUM_THREADS`). The weights are random blocks with
//! sane scales (`iq::sample_blocks`; the arithmetic does not depend on the values).
//!
//! cargo run --release --example iq_kernel_speed
//! cargo run --release --example iq_kernel_speed -- iq3_s 1536 8960 512   (one type, n k m)

use qeval::kernels::iq::IqMatMul;
use qeval::quant::iq::{self, IqType};
use qeval::quant::weight::IqTensor;
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (types, n, k, ms): (Vec<IqType>, usize, usize, Vec<usize>) = match args.as_slice() {
        [] => (IqType::ALL.to_vec(), 1536, 8960, vec![1, 64]),
        [t, n, k, m] => {
            let Some(ty) = IqType::ALL.into_iter().find(|x| x.name() == t.as_str()) else {
                let names: Vec<&str> = IqType::ALL.iter().map(|x| x.name()).collect();
                anyhow::bail!("type {t}: use one of {}", names.join(", "));
            };
            (vec![ty], n.parse()?, k.parse()?, vec![m.parse()?])
        }
        _ => anyhow::bail!("arguments: none, or TYPE N K M"),
    };
    println!(
        "{:<8} {:>5} {:>5} {:>5} {:>14} {:>14} {:>7}",
        "type", "n", "k", "rows", "f32 path GOP/s", "avx2 GOP/s", "ratio"
    );
    for t in types {
        let blocks = iq::sample_blocks(t, n * k / t.block_elems(), 0x9E37_79B9_7F4A_7C15);
        let w = Arc::new(IqTensor::new(t, vec![n, k], blocks)?);
        let f32_path = IqMatMul::new(w.clone(), false)?;
        let simd = IqMatMul::new(w, true)?;
        for &m in &ms {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let mut dst = vec![0f32; m * n];
            let ops = 2.0 * (m * n * k) as f64 / 1e9;
            let reps = if m == 1 { 10 } else { 3 };
            let slow = time(&mut || f32_path.matmul(&x, m, &mut dst), reps);
            let fast = time(&mut || simd.matmul(&x, m, &mut dst), reps);
            println!(
                "{:<8} {:>5} {:>5} {:>5} {:>14.2} {:>14.2} {:>7.2} ({})",
                t.name(),
                n,
                k,
                m,
                ops / slow,
                ops / fast,
                slow / fast,
                simd.kernel_name()
            );
        }
    }
    Ok(())
}
