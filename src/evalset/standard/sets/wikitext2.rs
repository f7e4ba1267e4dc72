//! WikiText-2 raw test split, the text set (perplexity, as llama-perplexity reads
//! `wiki.test.raw`): owns its pin and rebuilding the raw file from the Hub's one-row-per-line
//! form. It must not touch other sets.

use super::{Pin, StandardSet};
use crate::error::usage;
use crate::evalset::standard::offline::Reader;
use crate::evalset::standard::Record;
use anyhow::Result;
use serde_json::Value;

const FILE: &str = "wikitext-2-raw/wiki.test.raw";

pub struct Wikitext2;

/// Its eval set definition (what `--evalset wikitext2` runs): tasks, lm-eval's prompt format as
/// templates over the record fields, metrics and notes, in the evalset.toml format.
const DEFINITION: &str = r#"# WikiText-2 raw, test split: the text llama-perplexity reads as wiki.test.raw. Read by
# src/evalset/standard.rs from --data-dir (wikitext-2-raw/wiki.test.raw) or the Hub
# (Salesforce/wikitext `wikitext-2-raw-v1`, pinned; rebuilt byte for byte from its one-row-per-line form).
name = "wikitext2"
version = "1.0.0"
description = "WikiText-2 raw test split (Merity et al. 2016), 1,290,590 bytes: perplexity, KLD and top-1 as in the core run."

[[task]]
name = "wikitext2"
kind = "text"
source = "wikitext2"
note = "The whole raw test file as one text, as llama-perplexity reads it (not lm-eval's `wikitext` task, which scores documents separately and reports word/byte perplexity)."
"#;

impl StandardSet for Wikitext2 {
    fn definition(&self) -> &'static str {
        DEFINITION
    }

    fn name(&self) -> &'static str {
        "wikitext2"
    }

    fn fields(&self) -> &'static str {
        "none: a text set (the raw test split)"
    }

    // Salesforce/wikitext, config `wikitext-2-raw-v1`, test split: one row per line of
    // wiki.test.raw (4,358 rows).
    fn pin(&self) -> Pin {
        Pin {
            repo: "Salesforce/wikitext",
            revision: "b08601e04326c79dfdd32d625aee71d232d685c3",
            file: "wikitext-2-raw-v1/test-00000-of-00001.parquet",
            sha256: Some("5f1bea067869d04849c0f975a2b29c4ff47d867f484f5010ea5e861eab246d91"),
            bytes: Some(732_610),
        }
    }

    fn offline_files(&self) -> &'static [&'static str] {
        &[FILE]
    }

    fn is_text(&self) -> bool {
        true
    }

    fn hub_text(&self, rows: &[Record]) -> std::result::Result<String, String> {
        let lines = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("row {i}: expected a string column `text`"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(wikitext_from_lines(lines))
    }

    fn offline_text(&self, rd: &mut Reader) -> Result<String> {
        let (path, text) = rd.read(FILE)?;
        if text.trim().is_empty() {
            return Err(usage(format!("{}: the file is empty", path.display())));
        }
        Ok(text)
    }
}

/// wiki.test.raw from the Hub's one-row-per-line form (`Salesforce/wikitext`): the loader keeps
/// each line with its `\n` and stores blank lines (a lone space in the file) as `""`.
fn wikitext_from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    lines
        .into_iter()
        .map(|l| if l.is_empty() { " \n" } else { l })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn wikitext_lines_restore_blank_lines() {
        assert_eq!(
            wikitext_from_lines(["", " = Title = \n", "", " Text .\n"]),
            " \n = Title = \n \n Text .\n"
        );
    }

    /// The Hub's one-row-per-line form of the real wiki.test.raw (rows made as the `datasets`
    /// loader makes them) rebuilds the file byte for byte.
    #[test]
    fn wikitext_rows_rebuild_the_real_file() {
        let Some(dir) = std::env::var_os("QEVAL_EVALDATA") else {
            println!("skipped: set QEVAL_EVALDATA to the evaldata folder to check wiki.test.raw");
            return;
        };
        let raw = std::fs::read_to_string(Path::new(&dir).join("wikitext-2-raw/wiki.test.raw"))
            .expect("wiki.test.raw under QEVAL_EVALDATA");
        let rows: Vec<&str> = raw
            .split_inclusive('\n')
            .map(|l| if l.trim().is_empty() { "" } else { l })
            .collect();
        assert_eq!(rows.len(), 4358);
        assert_eq!(wikitext_from_lines(rows), raw);
    }
}
