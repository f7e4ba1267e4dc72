//! `cargo bench`: prefill of 128 tokens and decode of 16 tokens (llama-bench's pp/tg, small) on
//! the real SmolLM2-135M-Instruct file, at q8_0 and q4_0 quantized in-process with qeval's own
//! library API, on the CPU with the thread settings `qeval` applies (`QEVAL_THREADS`, default
//! all cores). The model file is `$QEVAL_SMOLLM2`, default
//! `~/.cache/qeval/models/SmolLM2-135M-Instruct.Q4_1.gguf` (scripts/fetch-models.sh); without it
//! the bench says so and measures nothing. Kept small so `cargo bench` takes a minute or two.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qeval::model::source::ModelSource;
use qeval::model::transformer::Transformer;
use qeval::quant::weight::Weight;
use qeval::quant::{quantize, Level};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PREFILL_TOKENS: usize = 128;
const DECODE_TOKENS: usize = 16;
const LEVELS: [&str; 2] = ["q8_0", "q4_0"];

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("QEVAL_SMOLLM2") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/qeval/models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A real prompt: the default eval set's prose, tokenized as `qeval run` tokenizes it.
fn prompt(path: &std::path::Path) -> anyhow::Result<Vec<u32>> {
    let text_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("evalsets/default/text/01-prose.txt");
    let text = std::fs::read_to_string(&text_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", text_file.display()))?;
    let tok = qeval::model::tokenizer::gguf_tokenizer(path)?;
    let ids = tok.encode(&text, tok.add_bos)?;
    anyhow::ensure!(
        ids.len() >= PREFILL_TOKENS,
        "{} gives only {} tokens",
        text_file.display(),
        ids.len()
    );
    Ok(ids[..PREFILL_TOKENS].to_vec())
}

/// Quantize the source to `level` in-process and build the model on the CPU.
fn model_at(src: &ModelSource, level: &str) -> anyhow::Result<Transformer> {
    let w = quantize::quantize(src, Level::parse(level)?, &|| {})?;
    let tensors: HashMap<String, Weight> = w.tensors.into_iter().collect();
    Transformer::new(
        &src.config,
        tensors,
        PREFILL_TOKENS + DECODE_TOKENS + 8,
        &Device::Cpu,
    )
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in row.iter().enumerate() {
        if *x > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Prefill: the whole prompt in one pass, the last position's logits read back.
fn prefill(m: &mut Transformer, prompt: &[u32]) -> anyhow::Result<()> {
    m.reset();
    let l = m.forward(prompt, prompt.len() - 1)?;
    let _ = l.to_vec2::<f32>()?;
    Ok(())
}

/// Decode as llama-bench's tg: one token fills the cache (not timed), then `n` tokens one at a
/// time, each the argmax of the last. Returns the time of the `n` tokens.
fn decode(m: &mut Transformer, start: u32, n: usize) -> anyhow::Result<Duration> {
    m.reset();
    let l = m.forward(&[start], 0)?;
    let mut tok = argmax(&l.to_vec2::<f32>()?[0]);
    let t = Instant::now();
    for _ in 0..n {
        let l = m.forward(&[tok], 0)?;
        tok = argmax(&l.to_vec2::<f32>()?[0]);
    }
    Ok(t.elapsed())
}

fn speed(c: &mut Criterion) {
    let threads = std::env::var("QEVAL_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(qeval::threads::default_threads);
    qeval::threads::apply(threads);
    let path = model_path();
    if !path.is_file() {
        eprintln!(
            "skipping the speed bench: {} does not exist (run scripts/fetch-models.sh, or set QEVAL_SMOLLM2 to the SmolLM2-135M-Instruct GGUF file)",
            path.display()
        );
        return;
    }
    let setup = ModelSource::open(&path).and_then(|src| Ok((prompt(&path)?, src)));
    let (prompt, src) = match setup {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "skipping the speed bench: cannot read {}: {e:#}",
                path.display()
            );
            return;
        }
    };
    for level in LEVELS {
        let mut m = match model_at(&src, level) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("skipping {level}: {e:#}");
                continue;
            }
        };
        let mut g = c.benchmark_group(format!("smollm2-135m/{level}/{threads}t"));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(PREFILL_TOKENS as u64));
        g.bench_function(format!("prefill_{PREFILL_TOKENS}"), |b| {
            b.iter(|| prefill(&mut m, &prompt).expect("prefill forward pass"))
        });
        g.throughput(Throughput::Elements(DECODE_TOKENS as u64));
        g.bench_function(format!("decode_{DECODE_TOKENS}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| decode(&mut m, prompt[0], DECODE_TOKENS).expect("decode forward pass"))
                    .sum()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, speed);
criterion_main!(benches);
