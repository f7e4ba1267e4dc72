//! Item checkpoints of one task at one level: outcomes appended to a JSON-lines file batch by
//! batch, so a level stopped half-way through a long task (HellaSwag's 10,042 items take about
//! an hour per level on two cores) resumes from its last batch instead of from the start.
//!
//! The file's first line names what was being scored (a fingerprint of the task's prepared
//! tokens, the level and the model); a file for anything else is discarded. A batch cut short
//! by the stop (a partial last line) is dropped.

use crate::eval::tasks::ItemOutcome;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    fingerprint: String,
    items: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    seconds: f64,
    outcomes: Vec<ItemOutcome>,
}

/// The outcomes scored so far and the file that keeps them.
pub struct Checkpoint {
    path: PathBuf,
    file: std::fs::File,
    /// Outcomes of the first items, in item order.
    pub outcomes: Vec<ItemOutcome>,
    /// Seconds spent scoring them (batches cut short not counted).
    pub seconds: f64,
}

/// A fingerprint of what a checkpoint holds: SHA-256 over the given parts.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

impl Checkpoint {
    /// Open the checkpoint at `path` for items `ids`, keeping what an earlier, stopped worker
    /// scored for the same fingerprint (its outcomes must be those items, in order).
    pub fn open(path: &Path, fingerprint: &str, ids: &[&str]) -> Result<Checkpoint> {
        let header = Header {
            fingerprint: fingerprint.to_string(),
            items: ids.len(),
        };
        let mut outcomes = Vec::new();
        let mut seconds = 0.0;
        let mut kept = Vec::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            let mut lines = text.split_inclusive('\n');
            let same = lines
                .next()
                .and_then(|l| serde_json::from_str::<Header>(l.trim_end()).ok())
                .is_some_and(|h| h == header);
            if same {
                for line in lines {
                    // A line without its newline was cut short by the stop.
                    if !line.ends_with('\n') {
                        break;
                    }
                    let Ok(b) = serde_json::from_str::<Batch>(line.trim_end()) else {
                        break;
                    };
                    let at = outcomes.len();
                    let fits = at + b.outcomes.len() <= ids.len()
                        && b.outcomes.iter().zip(&ids[at..]).all(|(o, id)| o.id == *id);
                    if !fits {
                        break;
                    }
                    seconds += b.seconds;
                    outcomes.extend(b.outcomes);
                    kept.push(line.to_string());
                }
            }
        }
        let mut text = serde_json::to_string(&header)?;
        text.push('\n');
        for l in &kept {
            text.push_str(l);
        }
        crate::fsutil::write_atomic(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} to append", path.display()))?;
        Ok(Checkpoint {
            path: path.to_path_buf(),
            file,
            outcomes,
            seconds,
        })
    }

    /// Items already scored.
    pub fn done(&self) -> usize {
        self.outcomes.len()
    }

    /// Keep a batch: written and synced before it counts.
    pub fn append(&mut self, seconds: f64, outcomes: Vec<ItemOutcome>) -> Result<()> {
        let batch = Batch { seconds, outcomes };
        let mut line = serde_json::to_string(&batch)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.seconds += batch.seconds;
        self.outcomes.extend(batch.outcomes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, pick: usize) -> ItemOutcome {
        ItemOutcome {
            id: id.to_string(),
            pick_acc: pick,
            pick_norm: pick,
            logprobs: vec![-1.5, -2.25],
            generated: String::new(),
        }
    }

    #[test]
    fn batches_survive_a_stop_and_a_cut_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcome-q8_0.task0.jsonl");
        let ids = ["a", "b", "c", "d", "e"];
        let fp = fingerprint(&[b"task", b"q8_0"]);
        let mut cp = Checkpoint::open(&path, &fp, &ids).unwrap();
        assert_eq!(cp.done(), 0);
        cp.append(1.5, vec![outcome("a", 0), outcome("b", 1)])
            .unwrap();
        cp.append(2.0, vec![outcome("c", 1)]).unwrap();
        drop(cp);
        // A stop in the middle of writing the next batch leaves a line without its newline.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"seconds\":3.0,\"outcomes\":[{\"id\":\"d\"")
            .unwrap();
        drop(f);

        let mut cp = Checkpoint::open(&path, &fp, &ids).unwrap();
        assert_eq!(cp.done(), 3);
        assert_eq!(cp.seconds, 3.5);
        assert_eq!(cp.outcomes[1], outcome("b", 1));
        cp.append(1.0, vec![outcome("d", 0), outcome("e", 0)])
            .unwrap();
        drop(cp);
        let cp = Checkpoint::open(&path, &fp, &ids).unwrap();
        let got: Vec<&str> = cp.outcomes.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(got, ids);
        assert_eq!(cp.seconds, 4.5);
    }

    #[test]
    fn another_task_or_other_items_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcome-f16.task0.jsonl");
        let fp = fingerprint(&[b"task", b"f16"]);
        let mut cp = Checkpoint::open(&path, &fp, &["a", "b"]).unwrap();
        cp.append(1.0, vec![outcome("a", 0)]).unwrap();
        drop(cp);
        let other = fingerprint(&[b"task", b"q8_0"]);
        assert_eq!(
            Checkpoint::open(&path, &other, &["a", "b"]).unwrap().done(),
            0
        );
        // The first file is gone now; write it again, then ask for different items.
        let mut cp = Checkpoint::open(&path, &fp, &["a", "b"]).unwrap();
        cp.append(1.0, vec![outcome("a", 0)]).unwrap();
        drop(cp);
        assert_eq!(Checkpoint::open(&path, &fp, &["x", "b"]).unwrap().done(), 0);
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
