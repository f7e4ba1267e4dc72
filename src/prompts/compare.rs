//! Comparing a level's answers to users' prompts with the reference level's: whether the
//! greedy answer is identical and where it first differs, chrF between the two answers, the
//! teacher-forced KLD and top-1 agreement the worker measured on the reference's answer,
//! and the match against a prompt's own `reference` — per prompt (the `prompts.jsonl`
//! records) and as means over prompts with bootstrap intervals, over all and per tag.

use crate::eval::prompts::{Finish, PromptOutcome};
use crate::prompts::file::{MatchKind, PromptItem};
use crate::prompts::prepare::Prepared;
use crate::results::{Interval, PromptMetrics, PromptSummary};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Bootstrap resamples of the intervals.
const BOOTSTRAP_ITERS: usize = 2000;

/// One prompt as one level answered it: a line of `prompts.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PromptRecord {
    pub level: String,
    pub is_reference: bool,
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The prompt as the model saw it (chat template applied).
    pub prompt: String,
    pub answer: String,
    /// The answer's token ids (the reference's are what other levels are teacher-forced on).
    pub tokens: Vec<u32>,
    pub finish: Finish,
    pub stop_token: Option<u32>,
    pub identical: bool,
    /// Token position of the first difference from the reference's answer (None: identical).
    pub first_divergence: Option<usize>,
    pub chrf: f64,
    pub kld_mean: f64,
    pub top1: f64,
    pub scored: usize,
    pub reference: Option<String>,
    pub reference_match: Option<bool>,
    pub seconds: f64,
}

/// Token position where two answers first differ; None when they are identical.
pub fn first_divergence(a: &[u32], b: &[u32]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).take_while(|(x, y)| x == y).count())
}

/// chrF (Popović 2015): character n-gram precision and recall averaged over n = 1..6,
/// whitespace ignored, combined as an F-score with β = 2; 0-100. Two empty texts score 100.
pub fn chrf(hypothesis: &str, reference: &str) -> f64 {
    let h: Vec<char> = hypothesis.chars().filter(|c| !c.is_whitespace()).collect();
    let r: Vec<char> = reference.chars().filter(|c| !c.is_whitespace()).collect();
    if h.is_empty() && r.is_empty() {
        return 100.0;
    }
    let (mut p_sum, mut r_sum, mut orders) = (0.0, 0.0, 0usize);
    for n in 1..=6 {
        let (hc, rc) = (ngrams(&h, n), ngrams(&r, n));
        let (nh, nr) = (hc.values().sum::<usize>(), rc.values().sum::<usize>());
        if nh == 0 && nr == 0 {
            continue;
        }
        let matched: usize = hc
            .iter()
            .map(|(g, c)| (*c).min(rc.get(g).copied().unwrap_or(0)))
            .sum();
        p_sum += if nh > 0 {
            matched as f64 / nh as f64
        } else {
            0.0
        };
        r_sum += if nr > 0 {
            matched as f64 / nr as f64
        } else {
            0.0
        };
        orders += 1;
    }
    let (p, rc) = (p_sum / orders as f64, r_sum / orders as f64);
    let b2 = 4.0;
    if p + rc == 0.0 {
        0.0
    } else {
        100.0 * (1.0 + b2) * p * rc / (b2 * p + rc)
    }
}

fn ngrams(c: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut m = HashMap::new();
    if c.len() >= n {
        for w in c.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Whether `answer` matches a prompt's `reference` the way the prompt asks.
pub fn reference_matches(answer: &str, reference: &str, kind: MatchKind) -> Result<bool> {
    Ok(match kind {
        MatchKind::Exact => crate::eval::tasks::exact_match(
            &crate::eval::tasks::normalize(answer),
            reference,
            false,
        ),
        MatchKind::Contains => answer.to_lowercase().contains(&reference.to_lowercase()),
        MatchKind::Regex => regex::Regex::new(reference)
            .with_context(|| format!("reference regex '{reference}'"))?
            .is_match(answer),
    })
}

/// Mean of `xs` with a 95% bootstrap interval (resampling the values, seeded).
pub fn bootstrap_mean(xs: &[f64], seed: u64) -> Interval {
    let n = xs.len();
    if n == 0 {
        return Interval::default();
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if xs.iter().all(|&x| x == xs[0]) {
        return Interval {
            mean,
            low: mean,
            high: mean,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..BOOTSTRAP_ITERS)
        .map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Interval {
        mean,
        low: crate::eval::stats::percentile_sorted(&means, 0.025),
        high: crate::eval::stats::percentile_sorted(&means, 0.975),
    }
}

/// Grade one level's outcomes against the reference's: the records and the summary.
pub fn grade(
    prep: &Prepared,
    reference: &[PromptOutcome],
    level: &[PromptOutcome],
    level_name: &str,
    is_reference: bool,
    seed: u64,
) -> Result<(PromptSummary, Vec<PromptRecord>)> {
    anyhow::ensure!(
        level.len() == prep.items.len() && reference.len() == prep.items.len(),
        "prompts: {} answers from level {level_name} and {} from the reference for {} prompts",
        level.len(),
        reference.len(),
        prep.items.len()
    );
    let mut records = Vec::with_capacity(level.len());
    for ((it, o), (r, text)) in prep
        .items
        .iter()
        .zip(level)
        .zip(reference.iter().zip(&prep.rendered))
    {
        anyhow::ensure!(
            o.id == it.id && r.id == it.id,
            "prompts: answers out of order at '{}'",
            it.id
        );
        let reference_match = match &it.reference {
            Some(rf) => Some(reference_matches(&o.text, rf, it.match_kind)?),
            None => None,
        };
        let div = first_divergence(&o.tokens, &r.tokens);
        records.push(PromptRecord {
            level: level_name.to_string(),
            is_reference,
            id: it.id.clone(),
            tags: it.tags.clone(),
            prompt: text.clone(),
            answer: o.text.clone(),
            tokens: o.tokens.clone(),
            finish: o.finish,
            stop_token: o.stop_token,
            identical: div.is_none(),
            first_divergence: div,
            chrf: chrf(&o.text, &r.text),
            kld_mean: o.kld_mean,
            top1: o.top1,
            scored: o.scored,
            reference: it.reference.clone(),
            reference_match,
            seconds: o.seconds,
        });
    }
    let summary = summarize(&prep.items, &records, seed);
    Ok((summary, records))
}

/// Means and intervals over all prompts and per tag.
pub fn summarize(items: &[PromptItem], records: &[PromptRecord], seed: u64) -> PromptSummary {
    let all: Vec<&PromptRecord> = records.iter().collect();
    let mut tags: BTreeMap<String, Vec<&PromptRecord>> = BTreeMap::new();
    for (it, r) in items.iter().zip(records) {
        for t in &it.tags {
            tags.entry(t.clone()).or_default().push(r);
        }
    }
    PromptSummary {
        all: metrics(&all, seed),
        by_tag: tags
            .into_iter()
            .map(|(t, rs)| (t, metrics(&rs, seed)))
            .collect(),
        answer_tokens: records.iter().map(|r| r.tokens.len()).sum(),
        scored_tokens: records.iter().map(|r| r.scored).sum(),
        seconds: records.iter().map(|r| r.seconds).sum(),
    }
}

fn metrics(rs: &[&PromptRecord], seed: u64) -> PromptMetrics {
    let col = |f: &dyn Fn(&PromptRecord) -> f64| -> Vec<f64> { rs.iter().map(|r| f(r)).collect() };
    let div: Vec<f64> = rs
        .iter()
        .filter_map(|r| r.first_divergence.map(|d| d as f64))
        .collect();
    let median = (!div.is_empty()).then(|| crate::eval::metrics::quantile(&div, 0.5));
    let matched: Vec<f64> = rs
        .iter()
        .filter_map(|r| r.reference_match.map(|m| f64::from(u8::from(m))))
        .collect();
    PromptMetrics {
        n_prompts: rs.len(),
        kld_mean: bootstrap_mean(&col(&|r| r.kld_mean), seed),
        top1_agreement: bootstrap_mean(&col(&|r| r.top1), seed),
        identical: bootstrap_mean(&col(&|r| f64::from(u8::from(r.identical))), seed),
        first_divergence_median: median,
        chrf: bootstrap_mean(&col(&|r| r.chrf), seed),
        reference_match: (!matched.is_empty()).then(|| bootstrap_mean(&matched, seed)),
        n_with_reference: matched.len(),
    }
}

/// Read `prompts.jsonl`; a missing file is no records.
pub fn load_records(path: &std::path::Path) -> Result<Vec<PromptRecord>> {
    crate::fsutil::read_jsonl(path, "a prompt record")
}

/// Write `prompts.jsonl` (atomically).
pub fn save_records(path: &std::path::Path, records: &[PromptRecord]) -> Result<()> {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r)?);
        s.push('\n');
    }
    crate::fsutil::write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_positions() {
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_divergence(&[1, 2, 4], &[1, 2, 3]), Some(2));
        assert_eq!(first_divergence(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(first_divergence(&[], &[7]), Some(0));
    }

    #[test]
    fn chrf_values() {
        assert_eq!(chrf("the cat", "the cat"), 100.0);
        assert_eq!(chrf("", ""), 100.0);
        assert_eq!(chrf("abc", ""), 0.0);
        assert_eq!(chrf("xyz", "abc"), 0.0);
        // "ab" vs "abc": 1-grams P=1 R=2/3, 2-grams P=1 R=1/2, 3-grams P=0 (none) R=0 →
        // P = 2/3, R = 7/18; F2 = 5·P·R / (4P + R).
        let (p, r) = (2.0 / 3.0, 7.0 / 18.0);
        let want = 100.0 * 5.0 * p * r / (4.0 * p + r);
        assert!(
            (chrf("ab", "abc") - want).abs() < 1e-9,
            "{}",
            chrf("ab", "abc")
        );
        // Whitespace does not count; closer answers score higher.
        assert_eq!(chrf("a b c", "abc"), 100.0);
        assert!(
            chrf("Paris is the capital", "Paris is the capital.")
                > chrf("Lyon", "Paris is the capital.")
        );
    }

    #[test]
    fn reference_matching() {
        assert!(reference_matches(" 47.", "47", MatchKind::Exact).unwrap());
        assert!(!reference_matches("It is 47", "47", MatchKind::Exact).unwrap());
        assert!(reference_matches("The capital is PARIS.", "Paris", MatchKind::Contains).unwrap());
        assert!(reference_matches("costs €68.00", r"\b68(\.00)?\b", MatchKind::Regex).unwrap());
        assert!(
            !reference_matches("costs 68.5", r"\b68(\.00)?\b(?:[^.]|$)", MatchKind::Regex).unwrap()
        );
    }

    #[test]
    fn bootstrap_interval_holds_the_mean_and_is_seeded() {
        let xs: Vec<f64> = (0..40).map(|i| (i % 7) as f64).collect();
        let a = bootstrap_mean(&xs, 1);
        assert!(a.low < a.mean && a.mean < a.high);
        assert_eq!(a, bootstrap_mean(&xs, 1));
        assert_eq!(
            bootstrap_mean(&[2.0, 2.0], 1),
            Interval {
                mean: 2.0,
                low: 2.0,
                high: 2.0
            }
        );
        assert_eq!(bootstrap_mean(&[], 1), Interval::default());
    }
}
