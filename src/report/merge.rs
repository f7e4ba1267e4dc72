//! Several results files as one report: finding them (files or run directories), refusing
//! to mix models or eval sets unless asked (a model is known by `ModelInfo::identity`, its
//! files' hashes, not by how `--model` was typed), and labelling every level by its device.
//! It reads results and their items/prompts files; it must not render or import `cli`.

use super::items::{self, Item};
use crate::results::{LevelResult, Results};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// One results file and what was read next to it.
#[derive(Debug, Clone)]
pub struct Run {
    pub results: Results,
    /// The file it was read from (None when rendered straight from a run in progress).
    pub source: Option<PathBuf>,
    /// Per-item answers from the matching items*.jsonl (empty when absent).
    pub items: Vec<Item>,
    /// Answers to the users' prompts from the matching prompts*.jsonl (empty when absent).
    pub prompts: Vec<crate::prompts::compare::PromptRecord>,
    /// Short device label, unique within the report: "cpu 2t", "cuda 1t (H100)".
    pub label: String,
}

/// The runs of one report, in the order given.
#[derive(Debug, Clone)]
pub struct ReportSet {
    pub runs: Vec<Run>,
    /// Things the reader should know about the merge (different references, chunking, ...).
    pub warnings: Vec<String>,
}

/// One level measured on one device: a point on the plots, a row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub run: usize,
    pub device: &'a str,
    pub level: &'a LevelResult,
}

impl Entry<'_> {
    /// "q4_k_m" when the report has one device, else "q4_k_m · cpu 2t".
    pub fn label(&self, multi_device: bool) -> String {
        if multi_device {
            format!("{} · {}", self.level.level, self.device)
        } else {
            self.level.level.clone()
        }
    }
}

/// The results files a path names: the file itself, or every `results*.json` in a directory.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(crate::error::usage(format!(
                "{}: no such results file or run directory",
                path.display()
            )));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|e| {
        crate::error::usage(format!("{}: cannot list directory: {e}", path.display()))
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("results") && n.ends_with(".json")
        })
        .collect();
    // results.json first, then a reference pack's results-reference.json, then the others by
    // name.
    v.sort_by_key(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (
            n != "results.json",
            n != "results-reference.json",
            p.clone(),
        )
    });
    if v.is_empty() {
        return Err(crate::error::usage(format!(
            "{}: the directory holds no results.json (give a results file or a qeval run directory)",
            path.display()
        )));
    }
    Ok(v)
}

/// `results.json` → `items.jsonl`, `results-gpu.json` → `items-gpu.jsonl`.
pub fn items_path(results: &Path) -> PathBuf {
    let name = results
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("results.json");
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let suffix = stem.strip_prefix("results").unwrap_or("");
    results.with_file_name(format!("items{suffix}.jsonl"))
}

/// `results.json` → `prompts.jsonl`, `results-gpu.json` → `prompts-gpu.jsonl`.
pub fn prompts_path(results: &Path) -> PathBuf {
    let items = items_path(results);
    let name = items
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("items.jsonl");
    results.with_file_name(name.replacen("items", "prompts", 1))
}

fn short_hash(r: &Results) -> String {
    r.model
        .files
        .first()
        .map(|f| format!(", sha256 {}…", &f.sha256[..f.sha256.len().min(12)]))
        .unwrap_or_default()
}

impl ReportSet {
    /// Read every results file the paths name (with their items files), check that they
    /// measure one model on one eval set (unless `allow_mixed`), and label the devices.
    pub fn load(paths: &[PathBuf], allow_mixed: bool) -> Result<Self> {
        let mut runs = Vec::new();
        for p in paths {
            for f in expand(p)? {
                if runs
                    .iter()
                    .any(|r: &Run| r.source.as_deref() == Some(f.as_path()))
                {
                    continue;
                }
                let results = Results::load(&f)?;
                let items = items::load(&items_path(&f))?;
                let prompts = crate::prompts::compare::load_records(&prompts_path(&f))?;
                runs.push(Run {
                    results,
                    source: Some(f),
                    items,
                    prompts,
                    label: String::new(),
                });
            }
        }
        Self::from_runs(runs, allow_mixed)
    }

    /// A report of one run's results (what `qeval run` renders after every level).
    pub fn single(results: Results, items: Vec<Item>) -> Self {
        let mut s = ReportSet {
            runs: vec![Run {
                results,
                source: None,
                items,
                prompts: Vec::new(),
                label: String::new(),
            }],
            warnings: Vec::new(),
        };
        s.label_devices();
        s
    }

    /// Check and label runs already read.
    pub fn from_runs(runs: Vec<Run>, allow_mixed: bool) -> Result<Self> {
        let mut s = ReportSet {
            runs,
            warnings: Vec::new(),
        };
        s.check(allow_mixed)?;
        s.label_devices();
        Ok(s)
    }

    fn name(&self, i: usize) -> String {
        self.runs[i]
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("run {}", i + 1))
    }

    /// Results measured against reference packs must name one pack: the pack the levels
    /// were compared with, or the one a run's reference wrote. Mixing exact KLD (a whole run)
    /// with a pack's is allowed and said.
    fn check_packs(&mut self) -> Result<()> {
        let used: Vec<(usize, &str)> = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.results
                    .kld_from_pack
                    .as_ref()
                    .map(|p| (i, p.sha256.as_str()))
            })
            .collect();
        let Some(&(first, sha)) = used.first() else {
            return Ok(());
        };
        for (i, r) in self.runs.iter().enumerate() {
            let other = r
                .results
                .kld_from_pack
                .as_ref()
                .or(r.results.pack_written.as_ref());
            if let Some(o) = other.filter(|o| o.sha256 != sha) {
                return Err(crate::error::usage(format!(
                    "{} belongs to reference pack {} (sha256 {}…), but {} was measured against {} (sha256 {}…); one report compares levels with one reference: give the results of one pack",
                    self.name(i),
                    o.path,
                    &o.sha256[..o.sha256.len().min(12)],
                    self.name(first),
                    self.runs[first].results.kld_from_pack.as_ref().map(|p| p.path.as_str()).unwrap_or(""),
                    &sha[..sha.len().min(12)]
                )));
            }
        }
        let exact: Vec<String> = (0..self.runs.len())
            .filter(|&i| {
                let r = &self.runs[i].results;
                r.kld_from_pack.is_none() && r.levels.iter().any(|l| !l.is_reference)
            })
            .map(|i| self.name(i))
            .collect();
        if !exact.is_empty() {
            self.warnings.push(format!(
                "KLD of the levels in {} is exact (the streamed reference); of the others it comes from reference pack {} (top-K and tail draws).",
                exact.join(", "),
                self.runs[first].results.kld_from_pack.as_ref().map(|p| p.path.as_str()).unwrap_or("")
            ));
        }
        Ok(())
    }

    fn check(&mut self, allow_mixed: bool) -> Result<()> {
        self.check_packs()?;
        let Some(first) = self.runs.first() else {
            return Err(crate::error::usage("qeval report: no results files given"));
        };
        let (m0, e0) = (
            first.results.model.identity(),
            (&first.results.evalset.name, &first.results.evalset.version),
        );
        for i in 1..self.runs.len() {
            let r = &self.runs[i].results;
            let f = &first.results;
            if r.model.identity() != m0 {
                let msg = format!(
                    "{} measures model {}{}, but {} measures {}{}; a merged report compares one model on one eval set (pass --allow-mixed to merge them anyway)",
                    self.name(i),
                    r.model.display(),
                    short_hash(r),
                    self.name(0),
                    f.model.display(),
                    short_hash(f)
                );
                if !allow_mixed {
                    return Err(crate::error::usage(msg));
                }
                self.warnings
                    .push(format!("Different models merged (--allow-mixed): {msg}"));
            }
            if (&r.evalset.name, &r.evalset.version) != e0 {
                let msg = format!(
                    "{} used eval set {} v{}, but {} used {} v{}; quality numbers on different texts are not comparable (pass --allow-mixed to merge them anyway)",
                    self.name(i),
                    r.evalset.name,
                    r.evalset.version,
                    self.name(0),
                    f.evalset.name,
                    f.evalset.version
                );
                if !allow_mixed {
                    return Err(crate::error::usage(msg));
                }
                self.warnings
                    .push(format!("Different eval sets merged (--allow-mixed): {msg}"));
            }
            if r.reference != f.reference {
                self.warnings.push(format!(
                    "{} compares with reference {}, {} with {}: their KLD and top-token numbers measure distance from different levels.",
                    self.name(i), r.reference, self.name(0), f.reference
                ));
            }
            if (r.evalset.ctx, r.evalset.scored_tokens) != (f.evalset.ctx, f.evalset.scored_tokens)
            {
                self.warnings.push(format!(
                    "{} scored {} tokens at context {}, {} scored {} at context {}.",
                    self.name(i),
                    r.evalset.scored_tokens,
                    r.evalset.ctx,
                    self.name(0),
                    f.evalset.scored_tokens,
                    f.evalset.ctx
                ));
            }
        }
        Ok(())
    }

    /// Give every run a short device label, unique within the report.
    fn label_devices(&mut self) {
        let names_differ = self
            .runs
            .iter()
            .any(|r| r.results.device.name != self.runs[0].results.device.name);
        let models_differ = self
            .runs
            .iter()
            .any(|r| r.results.model.identity() != self.runs[0].results.model.identity());
        // Labels taken so far, with the levels measured under each: a run on the same device
        // with other levels (a second run of more levels) shares its label.
        let mut used: Vec<(String, Vec<String>)> = Vec::new();
        for run in &mut self.runs {
            let levels: Vec<String> = run.results.levels.iter().map(|l| l.level.clone()).collect();
            let d = &run.results.device;
            let mut l = format!("{} {}t", d.kind, d.threads);
            if names_differ {
                l = format!("{l} ({})", short_device_name(&d.name));
            }
            if models_differ {
                l = format!("{} {l}", run.results.model.display());
            }
            if run.results.model.shape_only {
                l = format!("{l} shape-only");
            }
            let base = l.clone();
            let mut k = 2;
            loop {
                match used.iter_mut().find(|(u, _)| *u == l) {
                    None => {
                        used.push((l.clone(), levels));
                        break;
                    }
                    Some((_, seen)) if !levels.iter().any(|x| seen.contains(x)) => {
                        seen.extend(levels);
                        break;
                    }
                    Some(_) => {
                        l = format!("{base} #{k}");
                        k += 1;
                    }
                }
            }
            run.label = l;
        }
    }

    /// More than one device label in the report: point labels then name the device.
    pub fn multi_device(&self) -> bool {
        self.runs.iter().any(|r| r.label != self.runs[0].label)
    }

    /// The distinct device labels, in order of first appearance.
    pub fn devices(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !v.contains(&r.label.as_str()) {
                v.push(&r.label);
            }
        }
        v
    }

    /// Every level of every run, in run order then level order.
    /// Every level of every run: run by run, each run's reference first, then the others by
    /// bits per weight, most first (so files of one nominal level sit side by side with the
    /// levels around them, whatever their labels).
    pub fn entries(&self) -> Vec<Entry<'_>> {
        self.runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let mut levels: Vec<&LevelResult> = r.results.levels.iter().collect();
                levels.sort_by(|a, b| {
                    b.is_reference
                        .cmp(&a.is_reference)
                        .then(b.bits_per_weight.total_cmp(&a.bits_per_weight))
                });
                levels.into_iter().map(move |l| Entry {
                    run: i,
                    device: r.label.as_str(),
                    level: l,
                })
            })
            .collect()
    }

    /// The levels that finished.
    pub fn ok_entries(&self) -> Vec<Entry<'_>> {
        self.entries()
            .into_iter()
            .filter(|e| e.level.is_ok())
            .collect()
    }

    /// The first run's results (model and eval set are shared by all unless --allow-mixed).
    pub fn first(&self) -> &Results {
        &self.runs[0].results
    }
}

/// "Intel(R) Xeon(R) Processor" → "Intel Xeon"; "NVIDIA H100 80GB HBM3" → "NVIDIA H100".
fn short_device_name(name: &str) -> String {
    let cleaned = name.replace("(R)", "").replace("(TM)", "");
    let words: Vec<&str> = cleaned
        .split_whitespace()
        .filter(|w| !matches!(*w, "CPU" | "Processor" | "@"))
        .take(2)
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Results {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        Results::load(&p).expect("the committed example results")
    }

    fn run(r: Results) -> Run {
        Run {
            results: r,
            source: None,
            items: vec![],
            prompts: vec![],
            label: String::new(),
        }
    }

    #[test]
    fn two_thread_counts_get_distinct_labels() {
        let a = example();
        let mut b = example();
        b.device.threads = 1;
        let s = ReportSet::from_runs(vec![run(a), run(b)], false).unwrap();
        assert_eq!(s.runs[0].label, "cpu 2t");
        assert_eq!(s.runs[1].label, "cpu 1t");
        assert!(s.multi_device());
        let e = s.entries();
        assert_eq!(e.len(), 8);
        assert_eq!(e[5].label(true), "q8_0 · cpu 1t");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn identical_devices_are_numbered_and_named_devices_shortened() {
        let a = example();
        let b = example();
        let s = ReportSet::from_runs(vec![run(a.clone()), run(b)], false).unwrap();
        assert_eq!(s.runs[1].label, "cpu 2t #2");
        // A second run of other levels on the same machine joins the first run's device.
        let mut more = example();
        more.levels.retain(|l| l.level == "q2_k");
        let mut fewer = example();
        fewer.levels.retain(|l| l.level != "q2_k");
        let s = ReportSet::from_runs(vec![run(fewer), run(more)], false).unwrap();
        assert_eq!(s.runs[1].label, "cpu 2t");
        assert!(!s.multi_device());
        assert_eq!(s.devices(), vec!["cpu 2t"]);
        let mut g = example();
        g.device.kind = crate::results::DeviceKind::Cuda;
        g.device.name = "NVIDIA H100 80GB HBM3".into();
        let s = ReportSet::from_runs(vec![run(a), run(g)], false).unwrap();
        assert_eq!(s.runs[0].label, "cpu 2t (Intel Xeon)");
        assert_eq!(s.runs[1].label, "cuda 2t (NVIDIA H100)");
    }

    #[test]
    fn different_models_or_evalsets_are_refused_unless_allowed() {
        let a = example();
        let mut b = example();
        b.model.name = "gemma-3-270m".into();
        b.model.files[0].sha256 = "00ff".into();
        let e = ReportSet::from_runs(vec![run(a.clone()), run(b.clone())], false).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        let m = e.to_string();
        assert!(
            m.contains("gemma-3-270m") && m.contains("--allow-mixed"),
            "{m}"
        );
        let s = ReportSet::from_runs(vec![run(a.clone()), run(b)], true).unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(s.runs[1].label.starts_with("gemma-3-270m "));
        let mut c = example();
        c.evalset.version = "2.0.0".into();
        let e = ReportSet::from_runs(vec![run(a), run(c)], false).unwrap_err();
        assert!(e.to_string().contains("v2.0.0"), "{e}");
    }

    #[test]
    fn the_same_files_merge_however_the_model_was_named() {
        // Written before display names were recorded, with --model as a catalog name ...
        let a = example();
        // ... and after, with --model as the local path of the same file.
        let mut b = example();
        b.model.name = b.model.path.clone();
        b.model.display_name = "SmolLM2 135M Instruct".into();
        b.device.threads = 1;
        let s = ReportSet::from_runs(vec![run(a.clone()), run(b.clone())], false).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.runs[1].label, "cpu 1t");
        // The committed example reports of the same model merge with each other (the prompts
        // example measured the same file, on another eval set version).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
        let s = ReportSet::load(
            &[
                dir.join("example/results.json"),
                dir.join("example/results-1thread.json"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(s.runs.len(), 2);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let p = Results::load(&dir.join("prompts/results.json")).unwrap();
        assert_eq!(p.model.identity(), a.model.identity());
        let q = Results::load(&dir.join("prompts-qwen2.5-coder/results.json")).unwrap();
        assert_ne!(q.model.identity(), a.model.identity());
        // Another file is another model, whatever its name.
        b.model.files[0].sha256 = "00ff".into();
        b.model.name = a.model.name.clone();
        assert!(ReportSet::from_runs(vec![run(a), run(b)], false).is_err());
    }

    #[test]
    fn items_file_follows_the_results_file_name() {
        assert_eq!(
            items_path(Path::new("/r/results.json")),
            Path::new("/r/items.jsonl")
        );
        assert_eq!(
            items_path(Path::new("/r/results-1thread.json")),
            Path::new("/r/items-1thread.jsonl")
        );
    }
}
