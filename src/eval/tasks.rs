//! Task scoring on one level: multiple choice (log-likelihood of each choice after a cached
//! context, all choices of an item batched in one call) and generation (greedy decoding with
//! stop strings, then answer extraction and exact match). Inputs are token ids prepared once by
//! the parent process, so every level scores exactly the same tokens.

use crate::eval::metrics::{argmax, log_softmax};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::transformer::Transformer;
use anyhow::Result;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// One choice item as tokens: per option the context and the continuation scored after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChoiceTokens {
    pub id: String,
    pub options: Vec<(Vec<u32>, Vec<u32>)>,
    /// Bytes of each continuation's text (acc_norm divides by it, as lm-evaluation-harness does).
    pub cont_bytes: Vec<usize>,
    pub gold: usize,
}

/// One generation item as tokens, with what judging needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateTokens {
    pub id: String,
    pub prompt: Vec<u32>,
}

/// How to decode and when to stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub stop: Vec<String>,
}

/// The outcome of one item at one level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemOutcome {
    pub id: String,
    /// Choice: the option picked by summed log-probability (acc) and by log-probability per
    /// byte (acc_norm). Generate: unused (0).
    pub pick_acc: usize,
    pub pick_norm: usize,
    /// Choice: summed log-probability of each option's continuation.
    pub logprobs: Vec<f64>,
    /// Generate: the text generated (cut before the first stop string).
    pub generated: String,
}

/// Score choice items. `max_seq` is the model's KV capacity; longer inputs lose context from
/// the left (as lm-evaluation-harness truncates).
pub fn score_choice(
    model: &mut Transformer,
    items: &[ChoiceTokens],
    max_seq: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<ItemOutcome>> {
    let mut out = Vec::with_capacity(items.len());
    for (n, it) in items.iter().enumerate() {
        anyhow::ensure!(
            it.options.len() >= 2 && it.options.len() == it.cont_bytes.len(),
            "item {}: malformed choice item",
            it.id
        );
        // Fit every option into the cache: drop context from the left if needed.
        let opts: Vec<(Vec<u32>, Vec<u32>)> = it
            .options
            .iter()
            .map(|(c, k)| {
                let over = (c.len() + k.len()).saturating_sub(max_seq);
                let c = c[over.min(c.len().saturating_sub(1))..].to_vec();
                (c, k.clone())
            })
            .collect();
        for (c, k) in &opts {
            anyhow::ensure!(
                !c.is_empty() && !k.is_empty() && c.len() + k.len() <= max_seq,
                "item {}: an option has an empty context or continuation, or does not fit in {max_seq} positions",
                it.id
            );
        }
        // The shared prefix is cached once; each option continues it with its own tail.
        let p = shared_prefix(&opts);
        model.reset();
        if p > 0 {
            model.forward(&opts[0].0[..p], p - 1)?;
        }
        let segments: Vec<Vec<u32>> = opts
            .iter()
            .map(|(c, k)| c[p..].iter().chain(k.iter()).copied().collect())
            .collect();
        // All choices in one call when they fit in the cache together, else one at a time.
        let packed = p + segments.iter().map(Vec::len).sum::<usize>();
        let logits = if packed <= max_seq {
            model.forward_segments(&segments)?
        } else {
            let mut v = Vec::with_capacity(segments.len());
            for sg in &segments {
                v.extend(model.forward_segments(std::slice::from_ref(sg))?);
            }
            v
        };
        let mut lps = Vec::with_capacity(opts.len());
        for ((c, k), lg) in opts.iter().zip(&logits) {
            let rows = lg.to_vec2::<f32>()?;
            let first = c.len() - p - 1; // row predicting k[0]
            let mut sum = 0f64;
            let mut buf = vec![0f32; rows.first().map(|r| r.len()).unwrap_or(0)];
            for (j, &tok) in k.iter().enumerate() {
                let row = &rows[first + j];
                anyhow::ensure!(
                    row.iter().all(|x| x.is_finite()),
                    "non-finite logits at item {}",
                    it.id
                );
                log_softmax(row, &mut buf);
                sum += buf[tok as usize] as f64;
            }
            lps.push(sum);
        }
        let pick = |score: &dyn Fn(usize) -> f64| -> usize {
            let mut best = 0;
            for i in 1..lps.len() {
                if score(i) > score(best) {
                    best = i;
                }
            }
            best
        };
        let pick_acc = pick(&|i| lps[i]);
        let pick_norm = pick(&|i| lps[i] / it.cont_bytes[i].max(1) as f64);
        out.push(ItemOutcome {
            id: it.id.clone(),
            pick_acc,
            pick_norm,
            logprobs: lps,
            generated: String::new(),
        });
        progress(n + 1);
    }
    model.reset();
    Ok(out)
}

/// Tokens the options' contexts share at the start, leaving each context at least one token
/// (the one whose logits predict the continuation's first token).
pub fn shared_prefix(options: &[(Vec<u32>, Vec<u32>)]) -> usize {
    let min_ctx = options.iter().map(|(c, _)| c.len()).min().unwrap_or(1);
    let mut p = 0;
    while p + 1 < min_ctx && options.iter().all(|(c, _)| c[p] == options[0].0[p]) {
        p += 1;
    }
    p
}

/// Greedy generation for each item, cut before the first stop string, or at EOS or the limit.
pub fn score_generate(
    model: &mut Transformer,
    tok: &ModelTokenizer,
    items: &[GenerateTokens],
    params: &GenerateParams,
    max_seq: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<ItemOutcome>> {
    let mut out = Vec::with_capacity(items.len());
    for (n, it) in items.iter().enumerate() {
        let budget = params.max_tokens.min(max_seq.saturating_sub(1));
        let keep = max_seq.saturating_sub(budget).max(1);
        let prompt = &it.prompt[it.prompt.len().saturating_sub(keep)..];
        anyhow::ensure!(!prompt.is_empty(), "item {}: empty prompt", it.id);
        model.reset();
        let mut logits = model.forward(prompt, prompt.len() - 1)?;
        let mut gen: Vec<u32> = Vec::new();
        let mut text = String::new();
        for _ in 0..budget {
            let row = logits.squeeze(0)?.to_vec1::<f32>()?;
            anyhow::ensure!(
                row.iter().all(|x| x.is_finite()),
                "non-finite logits at item {}",
                it.id
            );
            let next = argmax(&row) as u32;
            if tok.eos_ids.contains(&next) {
                break;
            }
            gen.push(next);
            text = tok.decode(&gen)?;
            if let Some(cut) = first_stop(&text, &params.stop) {
                text.truncate(cut);
                break;
            }
            if model.position() >= max_seq {
                break;
            }
            logits = model.forward(&[next], 0)?;
        }
        out.push(ItemOutcome {
            id: it.id.clone(),
            pick_acc: 0,
            pick_norm: 0,
            logprobs: Vec::new(),
            generated: text,
        });
        progress(n + 1);
    }
    model.reset();
    Ok(out)
}

fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// The answer a generation gives: the regex's first match (its group 1 when it has groups), or
/// the whole text; then trimmed, a final '.' dropped, and commas inside numbers removed.
pub fn extract_answer(generated: &str, extract: Option<&Regex>) -> String {
    let raw = match extract {
        Some(re) => match re.captures(generated) {
            Some(c) => c
                .get(1)
                .or_else(|| c.get(0))
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            None => String::new(),
        },
        None => generated.to_string(),
    };
    normalize(&raw)
}

/// Trim, drop a final '.', remove thousands separators in numbers ("1,234" -> "1234").
pub fn normalize(s: &str) -> String {
    let t = s.trim();
    let t = t.strip_suffix('.').unwrap_or(t).trim();
    let is_number = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.' || c == '-' || c == '$');
    if is_number {
        t.replace([',', '$'], "")
    } else {
        t.to_string()
    }
}

/// Exact match of an extracted answer against the gold answer (both normalized).
pub fn exact_match(extracted: &str, gold: &str, ignore_case: bool) -> bool {
    let g = normalize(gold);
    if ignore_case {
        extracted.to_lowercase() == g.to_lowercase()
    } else {
        extracted == g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_and_matching() {
        let re = Regex::new(r"#### (\-?[0-9\.\,]+)").unwrap();
        assert_eq!(
            extract_answer("so she has 1,234 left.\n#### 1,234", Some(&re)),
            "1234"
        );
        assert_eq!(extract_answer("no answer here", Some(&re)), "");
        assert_eq!(extract_answer(" 15.", None), "15");
        assert_eq!(extract_answer(" tenalp", None), "tenalp");
        assert!(exact_match("HELLO", "HELLO", false));
        assert!(!exact_match("hello", "HELLO", false));
        assert!(exact_match("hello", "HELLO", true));
        assert!(exact_match(&normalize("$1,000"), "1000", false));
        assert!(exact_match(&normalize("0.75"), "0.75", false));
    }

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        assert_eq!(
            first_stop("15\nQuestion: x", &["Question:".into(), "\n".into()]),
            Some(2)
        );
        assert_eq!(first_stop("15", &["\n".into()]), None);
    }
}
