//! The standard sets from their Hugging Face datasets repos: owns turning a set's pin into its
//! records or text — the file is fetched and checked against the pin (or against the sha256
//! recorded at its first download, for the pins without a published one: WinoGrande and BoolQ)
//! by the one Hub client ([`crate::fetch::hub::fetch_pinned`]), read as parquet rows, and each
//! row mapped by the set's own file ([`super::sets`]). It must not hold pins or column mappings
//! itself: those live with each set.

use super::parquet_rows::read_rows;
use super::sets::{self, StandardSet};
use super::{FileDigest, Provenance, Record};
use crate::fetch::hub::{fetch_pinned, HubConfig, HubPin, PinnedFile};
use anyhow::{anyhow, Result};

/// What to do instead when the Hub cannot be used (ends the fetch errors).
const ALTERNATIVE: &str = "read the set from files in its original format with --data-dir DIR";

/// The built-in pin of a standard set.
pub fn pin(name: &str) -> Option<HubPin> {
    sets::find(name).map(|s| s.pin().to_hub_pin())
}

fn set(name: &str) -> Result<&'static dyn StandardSet> {
    sets::find(name).ok_or_else(|| anyhow!("no Hub pin for standard set '{name}'"))
}

pub fn load_records(name: &str, cfg: &HubConfig) -> Result<(Vec<Record>, Provenance)> {
    load_records_pinned(name, cfg, &set(name)?.pin().to_hub_pin())
}

/// The text of text set `name` (wikitext2) from its built-in pin.
pub fn load_text(name: &str, cfg: &HubConfig) -> Result<(String, Provenance)> {
    load_text_pinned(name, cfg, &set(name)?.pin().to_hub_pin())
}

pub fn load_wikitext2(cfg: &HubConfig) -> Result<(String, Provenance)> {
    load_text("wikitext2", cfg)
}

/// The records of standard set `name` from the parquet file that `pin` names (the built-in
/// pin, or another copy laid out the same way).
pub fn load_records_pinned(
    name: &str,
    cfg: &HubConfig,
    pin: &HubPin,
) -> Result<(Vec<Record>, Provenance)> {
    let fetched = fetch_pinned(cfg, pin, ALTERNATIVE)?;
    let rows = read_rows(&fetched.path)?;
    let records = records_from_rows(name, &rows)
        .map_err(|e| anyhow!("{} `{}` at {}: {e}", pin.repo, pin.file, pin.revision))?;
    Ok((records, provenance(&fetched, cfg, pin)))
}

/// wiki.test.raw rebuilt from the pinned parquet copy (one row per line).
pub fn load_wikitext2_pinned(cfg: &HubConfig, pin: &HubPin) -> Result<(String, Provenance)> {
    load_text_pinned("wikitext2", cfg, pin)
}

/// The text of text set `name` from the parquet file that `pin` names.
pub fn load_text_pinned(name: &str, cfg: &HubConfig, pin: &HubPin) -> Result<(String, Provenance)> {
    let fetched = fetch_pinned(cfg, pin, ALTERNATIVE)?;
    let rows = read_rows(&fetched.path)?;
    let text = set(name)?
        .hub_text(&rows)
        .map_err(|e| anyhow!("{} `{}`: {e}", pin.repo, pin.file))?;
    Ok((text, provenance(&fetched, cfg, pin)))
}

/// Map the Hub's columns of set `name` to its records.
pub fn records_from_rows(name: &str, rows: &[Record]) -> std::result::Result<Vec<Record>, String> {
    match sets::find(name) {
        Some(set) => set.hub_items(rows),
        None => Err(format!("no Hub column mapping for standard set '{name}'")),
    }
}

/// Where the records came from: the Hub, the pin, and the file's digest.
fn provenance(fetched: &PinnedFile, cfg: &HubConfig, pin: &HubPin) -> Provenance {
    Provenance {
        source: "hub".into(),
        location: cfg.endpoint.trim_end_matches('/').to_string(),
        repo: Some(pin.repo.clone()),
        revision: Some(pin.revision.clone()),
        commit: Some(fetched.commit.clone()),
        files: vec![FileDigest {
            path: pin.file.clone(),
            sha256: fetched.sha256.clone(),
            bytes: fetched.bytes,
            verified: fetched.verified,
        }],
    }
}
