//! Turning an eval set's choice and generate tasks into token ids, once per run in the parent
//! process (so every level scores the same tokens), and judging the workers' outcomes into
//! per-item correctness. Tokenization follows lm-evaluation-harness: the continuation's tokens
//! are those of `context + continuation` after the context's own tokens, with trailing
//! whitespace of the context moved into the continuation.

use crate::eval::tasks::{
    exact_match, extract_answer, ChoiceTokens, GenerateParams, GenerateTokens, ItemOutcome,
};
use crate::evalset::{self, EvalSet, ItemsFrom, Record, TaskKind};
use crate::model::tokenizer::ModelTokenizer;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// A task ready to run: its items as tokens and, for reports, as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedTask {
    pub name: String,
    pub kind: crate::results::TaskKind,
    pub note: String,
    pub metrics: Vec<String>,
    pub choice: Vec<ChoiceTokens>,
    pub generate: Vec<GenerateTokens>,
    pub params: Option<GenerateParams>,
    pub extract: Option<String>,
    pub ignore_case: bool,
    /// Per item: the prompt (for reports), the gold answer text, and each choice's text.
    pub prompts: Vec<String>,
    pub golds: Vec<String>,
    pub choice_texts: Vec<Vec<String>>,
    /// Items available before --limit sampling.
    pub n_available: usize,
}

impl PreparedTask {
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// Longest input (context + continuation, or prompt + generation budget), in tokens.
    pub fn max_positions(&self) -> usize {
        // Choices are scored together: the shared prefix once, then every option's tail.
        let c = self
            .choice
            .iter()
            .map(|i| {
                let p = crate::eval::tasks::shared_prefix(&i.options);
                p + i
                    .options
                    .iter()
                    .map(|(a, b)| a.len() - p + b.len())
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0);
        let g = self
            .generate
            .iter()
            .map(|i| i.prompt.len())
            .max()
            .unwrap_or(0)
            + self.params.as_ref().map(|p| p.max_tokens).unwrap_or(0);
        c.max(g)
    }
}

/// Records of a task: its JSONL file, or a standard set.
fn records(t: &evalset::TaskDef, data: &DataOpts) -> Result<(Vec<Record>, String)> {
    match &t.from {
        ItemsFrom::Files(f) if f.len() == 1 => {
            Ok((evalset::read_jsonl(&f[0])?, f[0].display().to_string()))
        }
        ItemsFrom::Files(_) => anyhow::bail!("{}: task '{}': one items file", t.origin, t.name),
        ItemsFrom::Standard(name) => crate::evalset::standard_records(name, data),
    }
}

/// Where standard sets come from.
pub use crate::evalset::DataOpts;

/// Prepare every choice/generate task of `set`; `limit` samples that many items per task with
/// `seed` (the same items for every level).
pub fn prepare(
    set: &EvalSet,
    tok: &ModelTokenizer,
    data: &DataOpts,
    limit: Option<usize>,
    seed: u64,
) -> Result<Vec<PreparedTask>> {
    let mut out = Vec::new();
    for t in &set.tasks {
        let (recs, file) = records(t, data)?;
        out.push(prepare_task(t, recs, &file, tok, limit, seed)?);
    }
    Ok(out)
}

fn prepare_task(
    t: &evalset::TaskDef,
    recs: Vec<Record>,
    file: &str,
    tok: &ModelTokenizer,
    limit: Option<usize>,
    seed: u64,
) -> Result<PreparedTask> {
    let mut pt = PreparedTask {
        name: t.name.clone(),
        kind: match &t.kind {
            TaskKind::Generate(_) => crate::results::TaskKind::Generate,
            _ => crate::results::TaskKind::Choice,
        },
        note: t.note.clone(),
        metrics: Vec::new(),
        choice: Vec::new(),
        generate: Vec::new(),
        params: None,
        extract: None,
        ignore_case: false,
        prompts: Vec::new(),
        golds: Vec::new(),
        choice_texts: Vec::new(),
        n_available: 0,
    };
    match &t.kind {
        TaskKind::Choice(spec) => {
            let items = evalset::prepare_choice(spec, &recs, file)?;
            pt.n_available = items.len();
            pt.metrics = spec.metrics.clone();
            for i in pick(items.len(), limit, seed) {
                let it = &items[i];
                let mut options = Vec::new();
                let mut bytes = Vec::new();
                let mut texts = Vec::new();
                for (ctx, cont) in &it.options {
                    let (c, k) = split_tokens(tok, ctx, cont)?;
                    bytes.push(cont.len());
                    texts.push(cont.trim().to_string());
                    options.push((c, k));
                }
                pt.prompts.push(it.options[it.gold].0.clone());
                pt.golds.push(texts[it.gold].clone());
                pt.choice_texts.push(texts);
                pt.choice.push(ChoiceTokens {
                    id: it.id.clone(),
                    options,
                    cont_bytes: bytes,
                    gold: it.gold,
                });
            }
        }
        TaskKind::Generate(spec) => {
            let items = evalset::prepare_generate(spec, &recs, file)?;
            pt.n_available = items.len();
            pt.metrics = vec!["exact_match".into()];
            pt.params = Some(GenerateParams {
                max_tokens: spec.max_tokens,
                stop: spec.stop.clone(),
            });
            pt.extract = spec.extract.as_ref().map(|r| r.as_str().to_string());
            pt.ignore_case = spec.ignore_case;
            for i in pick(items.len(), limit, seed) {
                let it = &items[i];
                pt.generate.push(GenerateTokens {
                    id: it.id.clone(),
                    prompt: tok.encode(&it.prompt, tok.add_bos)?,
                });
                pt.prompts.push(it.prompt.clone());
                pt.golds.push(it.answer.clone());
                pt.choice_texts.push(Vec::new());
            }
        }
        TaskKind::Text => anyhow::bail!("text tasks are not prepared here"),
    }
    Ok(pt)
}

fn pick(len: usize, limit: Option<usize>, seed: u64) -> Vec<usize> {
    match limit {
        Some(n) if n < len => crate::eval::stats::sample_indices(len, n, seed),
        _ => (0..len).collect(),
    }
}

/// Context and continuation tokens, lm-evaluation-harness style.
fn split_tokens(tok: &ModelTokenizer, ctx: &str, cont: &str) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = ctx.trim_end();
    let (ctx, cont) = (trimmed, format!("{}{cont}", &ctx[trimmed.len()..]));
    let whole = tok.encode(&format!("{ctx}{cont}"), tok.add_bos)?;
    let c = tok.encode(ctx, tok.add_bos)?;
    let k = if whole.len() > c.len() && whole[..c.len()] == c[..] {
        whole[c.len()..].to_vec()
    } else {
        tok.encode(&cont, false)?
    };
    let c = if c.is_empty() {
        // A context needs one token to predict from: fall back to BOS, or the continuation's first.
        match tok.bos_id {
            Some(b) => vec![b],
            None => anyhow::bail!("an item has an empty context and the model has no BOS token"),
        }
    } else {
        c
    };
    Ok((c, k))
}

/// Per-item correctness of a task's outcomes for one metric, and the prediction text.
pub fn judge(
    task: &PreparedTask,
    metric: &str,
    outcomes: &[ItemOutcome],
) -> Result<Vec<(bool, String)>> {
    anyhow::ensure!(
        outcomes.len() == task.len(),
        "task {}: {} outcomes for {} items",
        task.name,
        outcomes.len(),
        task.len()
    );
    let re = match &task.extract {
        Some(r) => Some(regex::Regex::new(r)?),
        None => None,
    };
    let mut v = Vec::with_capacity(outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        v.push(match task.kind {
            crate::results::TaskKind::Choice => {
                let pick = if metric == "acc_norm" {
                    o.pick_norm
                } else {
                    o.pick_acc
                };
                let text = task.choice_texts[i].get(pick).cloned().unwrap_or_default();
                (pick == task.choice[i].gold, text)
            }
            crate::results::TaskKind::Generate => {
                let ans = extract_answer(&o.generated, re.as_ref());
                (
                    exact_match(&ans, &task.golds[i], task.ignore_case),
                    o.generated.clone(),
                )
            }
        });
    }
    Ok(v)
}
