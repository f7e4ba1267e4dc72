//! Per-item answers (`items.jsonl` next to a results file, records of
//! [`crate::results::ItemRecord`]) read for reports, and the items where a level disagreed
//! with the reference level. It reads; it must not write the file (the runner does).

use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

/// One task item as one level answered it (the record `items.jsonl` holds).
pub use crate::results::ItemRecord as Item;

/// Read an items file; a missing file is no items.
pub fn load(path: &Path) -> Result<Vec<Item>> {
    crate::fsutil::read_jsonl(
        path,
        "an item record ({\"level\", \"task\", \"id\", \"correct\", ...})",
    )
}

/// A level's answer next to the reference's on the same item.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement<'a> {
    pub item: &'a Item,
    pub reference: &'a Item,
}

/// Up to `max` items of `level` whose correctness differs from the reference's on the same
/// task and id: lost items (reference right, level wrong) first, in file order.
pub fn disagreements<'a>(
    items: &'a [Item],
    level: &str,
    reference: &str,
    max: usize,
) -> Vec<Disagreement<'a>> {
    let refs: HashMap<(&str, &str), &Item> = items
        .iter()
        .filter(|i| i.level == reference)
        .map(|i| ((i.task.as_str(), i.id.as_str()), i))
        .collect();
    let mut v: Vec<Disagreement> = items
        .iter()
        .filter(|i| i.level == level)
        .filter_map(|i| {
            let r = refs.get(&(i.task.as_str(), i.id.as_str()))?;
            (r.correct != i.correct).then_some(Disagreement {
                item: i,
                reference: r,
            })
        })
        .collect();
    v.sort_by_key(|d| d.item.correct);
    v.truncate(max);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(level: &str, id: &str, correct: bool) -> Item {
        Item {
            level: level.into(),
            task: "t".into(),
            id: id.into(),
            correct,
            prediction: format!("{level}-{id}"),
            gold: "g".into(),
            prompt: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_lost_items_first_then_gained() {
        let items = vec![
            it("f16", "1", true),
            it("f16", "2", false),
            it("f16", "3", true),
            it("q4", "1", true),
            it("q4", "2", true),
            it("q4", "3", false),
            it("q4", "4", false),
        ];
        let d = disagreements(&items, "q4", "f16", 5);
        let ids: Vec<&str> = d.iter().map(|d| d.item.id.as_str()).collect();
        assert_eq!(ids, vec!["3", "2"]);
        assert!(d[0].reference.correct && !d[0].item.correct);
        assert_eq!(disagreements(&items, "q4", "f16", 1).len(), 1);
        assert!(disagreements(&items, "f16", "f16", 5).is_empty());
    }

    #[test]
    fn missing_file_is_empty_and_bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("items.jsonl")).unwrap().is_empty());
        let p = dir.path().join("items.jsonl");
        std::fs::write(
            &p,
            "{\"level\":\"f16\",\"task\":\"t\",\"id\":\"1\",\"correct\":true}\n\nnot json\n",
        )
        .unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }
}
