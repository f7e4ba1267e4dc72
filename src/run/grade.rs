//! Grading tasks against the reference: each level's per-item task outcomes become
//! correct/incorrect per metric, the paired statistics against the reference's items
//! (`eval::stats::task_result`), and one `items.jsonl` line per item. Keeps the reference's
//! correctness for the levels after it, and takes back what a resumed run already graded —
//! refusing, with the line, an `items.jsonl` that lacks what it needs rather than guessing.

use super::protocol::TaskOutcome;
use crate::eval::taskprep::PreparedTask;
use crate::results::{ItemRecord, LevelResult, TaskResult};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Per-item correctness of the reference (to compare every level with) and the per-item lines
/// of every level, written to `items.jsonl`.
#[derive(Default)]
pub struct Graded {
    reference: HashMap<(String, String), Vec<bool>>,
    lines: Vec<ItemRecord>,
}

/// The fields of an `items.jsonl` line that resuming needs.
#[derive(Deserialize)]
struct KeptItem {
    level: String,
    task: String,
    correct_by_metric: BTreeMap<String, bool>,
}

impl Graded {
    /// Whether the reference's items are known (graded now or restored).
    pub fn has_reference(&self) -> bool {
        !self.reference.is_empty()
    }

    /// Take the reference's correctness from its items lines (a reference pack's), for the
    /// levels measured against it; the lines themselves stay the pack's.
    pub fn set_reference(&mut self, reference_items: &[ItemRecord]) {
        self.reference.clear();
        for item in reference_items {
            for (metric, c) in &item.correct_by_metric {
                self.reference
                    .entry((item.task.clone(), metric.clone()))
                    .or_default()
                    .push(*c);
            }
        }
    }

    /// The items lines of `level` graded so far (the reference's, for its pack).
    pub fn lines_of(&self, level: &str) -> Vec<ItemRecord> {
        self.lines
            .iter()
            .filter(|l| l.level == level)
            .cloned()
            .collect()
    }

    /// Grade one level's task outcomes; `is_ref` makes them the reference for later levels.
    pub fn grade(
        &mut self,
        tasks: &[PreparedTask],
        outs: &[TaskOutcome],
        level: &str,
        is_ref: bool,
        seed: u64,
    ) -> Result<Vec<TaskResult>> {
        let mut results = Vec::new();
        for t in tasks {
            let Some(o) = outs.iter().find(|o| o.name == t.name) else {
                anyhow::bail!("worker returned no outcome for task {}", t.name);
            };
            let mut by_metric = vec![BTreeMap::new(); t.len()];
            for (mi, metric) in t.metrics.iter().enumerate() {
                let judged = crate::eval::taskprep::judge(t, metric, &o.outcomes)?;
                let correct: Vec<bool> = judged.iter().map(|(c, _)| *c).collect();
                for (m, c) in by_metric.iter_mut().zip(&correct) {
                    m.insert(metric.clone(), *c);
                }
                let key = (t.name.clone(), metric.clone());
                if is_ref {
                    self.reference.insert(key.clone(), correct.clone());
                }
                let reference = if is_ref {
                    None
                } else {
                    self.reference.get(&key).map(|v| v.as_slice())
                };
                let mut tr = crate::eval::stats::task_result(
                    &t.name, t.kind, metric, &correct, reference, seed,
                )?;
                tr.seconds = o.seconds;
                tr.items_per_sec = t.len() as f64 / o.seconds.max(1e-9);
                results.push(tr);
                // One line per item, for the task's last (primary) metric.
                if mi + 1 == t.metrics.len() {
                    for (i, (c, pred)) in judged.into_iter().enumerate() {
                        self.lines.push(ItemRecord {
                            level: level.to_string(),
                            task: t.name.clone(),
                            metric: metric.clone(),
                            id: o.outcomes[i].id.clone(),
                            correct: c,
                            correct_by_metric: std::mem::take(&mut by_metric[i]),
                            prediction: pred,
                            gold: t.golds[i].clone(),
                            prompt: t.prompts[i].clone(),
                            logprobs: o.outcomes[i].logprobs.clone(),
                        });
                    }
                }
            }
        }
        Ok(results)
    }

    /// Take back the per-item lines of the levels kept, and the reference's correctness.
    pub fn restore(path: &Path, kept: &[LevelResult]) -> Result<Graded> {
        let mut graded = Graded::default();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(graded),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let reference = kept.iter().find(|l| l.is_reference).map(|l| &l.level);
        for (n, line) in text.lines().enumerate() {
            // The fields resuming needs are checked strictly (no defaults) before the record.
            let item: KeptItem = serde_json::from_str(line).with_context(|| {
                format!(
                    "{}:{}: not an items.jsonl line of qeval (level, task and correct_by_metric are needed to resume); delete the folder to start over",
                    path.display(),
                    n + 1
                )
            })?;
            if !kept.iter().any(|l| l.level == item.level) {
                continue;
            }
            if Some(&item.level) == reference {
                for (metric, c) in item.correct_by_metric {
                    graded
                        .reference
                        .entry((item.task.clone(), metric))
                        .or_default()
                        .push(c);
                }
            }
            graded
                .lines
                .push(serde_json::from_str(line).with_context(|| {
                    format!("{}:{}: not an items.jsonl record", path.display(), n + 1)
                })?);
        }
        Ok(graded)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&serde_json::to_string(l)?);
            s.push('\n');
        }
        crate::fsutil::write_atomic(path, s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_refuses_a_line_without_its_grades() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("items.jsonl");
        std::fs::write(&p, "{\"level\":\"f16\",\"task\":\"t\"}\n").expect("write");
        let err = format!("{:#}", Graded::restore(&p, &[]).err().expect("refused"));
        assert!(err.contains("items.jsonl:1"), "{err}");
        assert!(err.contains("correct_by_metric"), "{err}");
        let missing = dir.path().join("none.jsonl");
        let g = Graded::restore(&missing, &[]).expect("no file is no items");
        assert!(!g.has_reference());
    }
}
