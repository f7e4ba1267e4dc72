//! Speed like llama-bench: prefill (pp, a prompt of N tokens in one pass) and decode
//! (tg, N tokens generated one at a time from an empty context), and eval-scoring throughput
//! like llama-perplexity's tokens/s (one text window scored the way the text evaluation scores
//! it), each after a warm-up, repeated, reported as median and spread. The device is
//! synchronised before the clock is read.

use crate::eval::metrics::argmax;
use crate::eval::text::{self, Chunking};
use crate::model::transformer::Transformer;
use crate::results::Spread;
use anyhow::Result;
use candle_core::Device;
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchSettings {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repeats: usize,
}

/// Which matmul implementation runs the levels, as recorded in every level's `kernels`
/// field. The one place it is decided.
pub fn kernels_in_use() -> String {
    crate::kernels::describe()
}

pub struct BenchResult {
    pub prefill: Spread,
    pub decode: Spread,
}

/// Median, min, max and standard deviation of samples.
pub fn spread(samples: &[f64]) -> Spread {
    if samples.is_empty() {
        return Spread::default();
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let mean = v.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Spread {
        median,
        min: v[0],
        max: v[n - 1],
        stddev: sd,
        samples: samples.to_vec(),
    }
}

fn sync(dev: &Device) -> Result<()> {
    dev.synchronize()?;
    Ok(())
}

fn prefill_once(m: &mut Transformer, prompt: &[u32], dev: &Device) -> Result<f64> {
    m.reset();
    sync(dev)?;
    let t = Instant::now();
    let logits = m.forward(prompt, prompt.len() - 1)?;
    let _ = logits.to_vec2::<f32>()?;
    sync(dev)?;
    Ok(prompt.len() as f64 / t.elapsed().as_secs_f64())
}

fn decode_once(m: &mut Transformer, start: u32, n: usize, dev: &Device) -> Result<f64> {
    m.reset();
    let mut tok = start;
    // The first token fills the cache; llama-bench's tg also starts from one token.
    let l = m.forward(&[tok], 0)?;
    tok = argmax(&l.to_vec2::<f32>()?[0]) as u32;
    sync(dev)?;
    let t = Instant::now();
    for _ in 0..n {
        let l = m.forward(&[tok], 0)?;
        tok = argmax(&l.to_vec2::<f32>()?[0]) as u32;
    }
    sync(dev)?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Run the benchmark on `prompt` (at least `prompt_tokens` long).
pub fn run(
    m: &mut Transformer,
    prompt: &[u32],
    s: &BenchSettings,
    dev: &Device,
    progress: &dyn Fn(usize, usize),
) -> Result<BenchResult> {
    let p = &prompt[..s.prompt_tokens.min(prompt.len())];
    anyhow::ensure!(!p.is_empty(), "no prompt tokens for the benchmark");
    // warm-up: caches, thread pools, lazily repacked weights
    prefill_once(m, &p[..p.len().min(64)], dev)?;
    decode_once(m, p[0], 4, dev)?;
    let mut pre = Vec::new();
    let mut dec = Vec::new();
    let n = s.repeats.max(1);
    progress(0, n);
    for i in 0..n {
        pre.push(prefill_once(m, p, dev)?);
        dec.push(decode_once(m, p[0], s.gen_tokens, dev)?);
        progress(i + 1, n);
    }
    m.reset();
    Ok(BenchResult {
        prefill: spread(&pre),
        decode: spread(&dec),
    })
}

/// Eval-scoring throughput: tokens per second of scoring the first `ch.ctx`-token window of
/// `tokens` exactly as the text evaluation does (`text::window_logits`: one forward pass,
/// logits of the scored half copied to host memory; the log-softmax and metrics are not
/// timed, as llama-perplexity's timings leave them out). A short window warms up first.
/// None when `tokens` holds less than one window.
pub fn eval_throughput(
    m: &mut Transformer,
    tokens: &[u32],
    ch: &Chunking,
    repeats: usize,
    dev: &Device,
    progress: &dyn Fn(usize, usize),
) -> Result<Option<Spread>> {
    if ch.ctx < 2 || tokens.len() < ch.ctx {
        return Ok(None);
    }
    let window = Chunking {
        ctx: ch.ctx,
        n_chunks: 1,
        bos_id: ch.bos_id,
    };
    let warm = Chunking {
        ctx: ch.ctx.min(64),
        ..window.clone()
    };
    text::window_logits(m, tokens, &warm, 0)?;
    let n = repeats.max(1);
    let mut samples = Vec::with_capacity(n);
    progress(0, n);
    for i in 0..n {
        sync(dev)?;
        let t = Instant::now();
        let rows = text::window_logits(m, tokens, &window, 0)?;
        sync(dev)?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(!rows.is_empty(), "the eval window returned no logits");
        samples.push(window.ctx as f64 / secs);
        progress(i + 1, n);
    }
    m.reset();
    Ok(Some(spread(&samples)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_of_hand_values() {
        let s = super::spread(&[3.0, 1.0, 2.0]);
        assert_eq!(s.median, 2.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 3.0);
        assert!((s.stddev - 1.0).abs() < 1e-12);
        assert_eq!(super::spread(&[1.0, 2.0, 3.0, 4.0]).median, 2.5);
    }
}
