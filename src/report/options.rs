//! The report's judgement settings: `ReportOptions` (the clap flags shared by `qeval run` and
//! `qeval report`), memory budgets (`--budget`) and the loss thresholds (`--kld-thresholds`,
//! `--acc-thresholds`), with their parsers for clap. It owns the flags' meaning only; it must
//! not read files, and (like everything under `report/`) must not import `crate::cli`.

use clap::{Args, Parser};

/// How reports judge and present the measurements (shared by `qeval run` and `qeval report`).
#[derive(Debug, Clone, Args)]
pub struct ReportOptions {
    /// Memory budgets for the recommendation, comma-separated, optionally named, e.g.
    /// `8GiB,24GiB` or `laptop=8GiB,gpu=24GiB` (units: GiB, GB, MiB, MB). Given budgets are
    /// also drawn on the memory plots. [default: 4GiB,8GiB,16GiB,24GiB,80GiB, not drawn]
    #[arg(long, value_name = "LIST", value_parser = parse_budgets)]
    pub budget: Option<Budgets>,

    /// Context length (tokens) whose KV cache a level must fit in a budget, besides its
    /// weights and its measured overhead.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_context: u64,

    /// Mean-KLD thresholds (nats/token) between negligible, small, noticeable and large losses.
    #[arg(long, value_name = "A,B,C", default_value = "0.01,0.05,0.2", value_parser = parse_thresholds)]
    pub kld_thresholds: Thresholds,

    /// Accuracy-drop thresholds (percentage points) between negligible, small, noticeable and
    /// large losses on tasks.
    #[arg(long, value_name = "A,B,C", default_value = "1,3,10", value_parser = parse_thresholds)]
    pub acc_thresholds: Thresholds,

    /// What the recommendation ranks levels by: `kld` (mean KLD on the eval text),
    /// `prompts-kld` (teacher-forced KLD on the reference's answers to your --prompts), or
    /// `task:NAME` (the accuracy drop on the task NAME, e.g. task:hellaswag).
    #[arg(long, default_value = "kld", value_name = "METRIC", value_parser = parse_quality_metric)]
    pub quality_metric: QualityMetric,

    /// Merge results of different models or eval sets into one report anyway.
    #[arg(long)]
    pub allow_mixed: bool,
}

/// Only to read `ReportOptions`' defaults through clap.
#[derive(Parser)]
struct ReportDefaults {
    #[command(flatten)]
    options: ReportOptions,
}

impl ReportOptions {
    /// The options a report gets when no flag is given.
    pub fn defaults() -> anyhow::Result<Self> {
        ReportDefaults::try_parse_from(["qeval"])
            .map(|d| d.options)
            .map_err(|e| anyhow::anyhow!("default report options: {e}"))
    }
}

/// One memory budget: bytes and the label drawn on the plots ("laptop 8 GiB").
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub name: Option<String>,
    pub bytes: u64,
    /// The size as the user wrote it, normalised ("8 GiB").
    pub size_text: String,
}

impl Budget {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} {}", self.size_text),
            None => self.size_text.clone(),
        }
    }
}

/// The budgets of one `--budget` value, smallest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets(pub Vec<Budget>);

/// The budgets the recommendation uses when none are given.
pub const DEFAULT_BUDGETS: &str = "4GiB,8GiB,16GiB,24GiB,80GiB";

/// What the recommendation ranks levels by (`--quality-metric`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QualityMetric {
    /// Mean KLD on the eval text.
    #[default]
    Kld,
    /// Teacher-forced KLD on the reference level's answers to the users' prompts.
    PromptsKld,
    /// The accuracy drop on one task (its headline metric), in percentage points.
    Task(String),
}

impl QualityMetric {
    /// The flag's spelling: `kld`, `prompts-kld`, `task:NAME`.
    pub fn name(&self) -> String {
        match self {
            QualityMetric::Kld => "kld".into(),
            QualityMetric::PromptsKld => "prompts-kld".into(),
            QualityMetric::Task(t) => format!("task:{t}"),
        }
    }

    /// The loss's short name: "KLD", "KLD on your prompts", "drop on hellaswag (points)".
    pub fn short(&self) -> String {
        match self {
            QualityMetric::Kld => "KLD".into(),
            QualityMetric::PromptsKld => "KLD on your prompts".into(),
            QualityMetric::Task(t) => format!("accuracy drop on {t} (points)"),
        }
    }

    /// The loss in words, for sentences: "KLD", "KLD on your prompts", "hellaswag accuracy drop".
    pub fn describe(&self) -> String {
        match self {
            QualityMetric::Kld => "mean KLD on the eval text".into(),
            QualityMetric::PromptsKld => "teacher-forced KLD on your prompts".into(),
            QualityMetric::Task(t) => format!("accuracy drop on {t}"),
        }
    }
}

/// Parse `--quality-metric`.
pub fn parse_quality_metric(s: &str) -> Result<QualityMetric, String> {
    match s.trim() {
        "kld" => Ok(QualityMetric::Kld),
        "prompts-kld" => Ok(QualityMetric::PromptsKld),
        t => match t.strip_prefix("task:") {
            Some(name) if !name.trim().is_empty() => Ok(QualityMetric::Task(name.trim().into())),
            _ => Err(format!(
                "'{s}': expected kld, prompts-kld or task:NAME (a task of the eval set, e.g. task:hellaswag)"
            )),
        },
    }
}

/// Three increasing cut points between negligible, small, noticeable and large.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds(pub [f64; 3]);

/// How large a quality loss is, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Negligible,
    Small,
    Noticeable,
    Large,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Negligible => "negligible",
            Severity::Small => "small",
            Severity::Noticeable => "noticeable",
            Severity::Large => "large",
        }
    }
}

impl ReportOptions {
    /// The thresholds of the ranking metric: KLD thresholds for `kld` and `prompts-kld`,
    /// accuracy thresholds (points) for `task:NAME`.
    pub fn metric_thresholds(&self) -> Thresholds {
        match self.quality_metric {
            QualityMetric::Task(_) => self.acc_thresholds,
            _ => self.kld_thresholds,
        }
    }
}

impl Thresholds {
    /// Classify a loss (0 = none); a loss below the first cut point is negligible.
    pub fn classify(&self, loss: f64) -> Severity {
        let [a, b, c] = self.0;
        if loss < a {
            Severity::Negligible
        } else if loss < b {
            Severity::Small
        } else if loss < c {
            Severity::Noticeable
        } else {
            Severity::Large
        }
    }
}

/// Parse `8GiB`, `0.5 GB`, `512MiB`, `laptop=8GiB`, ... into a budget.
pub fn parse_budget(s: &str) -> Result<Budget, String> {
    let s = s.trim();
    let (name, size) = match s.split_once('=') {
        Some((n, v)) if !n.trim().is_empty() => (Some(n.trim().to_string()), v.trim()),
        Some(_) => return Err(format!("budget '{s}': the name before '=' is empty")),
        None => (None, s),
    };
    let split = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let (num, unit) = size.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("budget '{s}': expected a number with a unit, like 8GiB, 24GB or 512MiB")
    })?;
    let unit = unit.trim();
    let (mult, unit_text) = match unit.to_ascii_lowercase().as_str() {
        "gib" | "g" => (1u64 << 30, "GiB"),
        "gb" => (1_000_000_000, "GB"),
        "mib" | "m" => (1 << 20, "MiB"),
        "mb" => (1_000_000, "MB"),
        "tib" => (1 << 40, "TiB"),
        "tb" => (1_000_000_000_000, "TB"),
        _ => {
            return Err(format!(
                "budget '{s}': unknown unit '{unit}' (valid: GiB, GB, MiB, MB, TiB, TB)"
            ))
        }
    };
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("budget '{s}': the size must be positive"));
    }
    Ok(Budget {
        name,
        bytes: (value * mult as f64).round() as u64,
        size_text: format!("{num} {unit_text}"),
    })
}

/// Parse a comma-separated `--budget` list (sorted smallest first).
pub fn parse_budgets(s: &str) -> Result<Budgets, String> {
    let mut v = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_budget)
        .collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err("--budget: give at least one size, e.g. 8GiB,24GiB".into());
    }
    v.sort_by_key(|b| b.bytes);
    Ok(Budgets(v))
}

/// Parse three increasing, non-negative cut points `A,B,C`.
pub fn parse_thresholds(s: &str) -> Result<Thresholds, String> {
    let v = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("'{s}': expected three numbers A,B,C, e.g. 0.01,0.05,0.2"))?;
    match v.as_slice() {
        [a, b, c] if *a >= 0.0 && a < b && b < c && c.is_finite() => Ok(Thresholds([*a, *b, *c])),
        _ => Err(format!(
            "'{s}': expected three increasing non-negative numbers A<B<C, e.g. 0.01,0.05,0.2"
        )),
    }
}

impl ReportOptions {
    /// The budgets to recommend for: the given ones, or the defaults.
    pub fn budgets(&self) -> Vec<Budget> {
        match &self.budget {
            Some(b) => b.0.clone(),
            None => parse_budgets(DEFAULT_BUDGETS)
                .map(|b| b.0)
                .unwrap_or_default(),
        }
    }

    /// The budgets drawn on the plots: only those given with --budget.
    pub fn drawn_budgets(&self) -> Vec<Budget> {
        self.budget
            .as_ref()
            .map(|b| b.0.clone())
            .unwrap_or_default()
    }
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            budget: None,
            budget_context: 4096,
            kld_thresholds: Thresholds([0.01, 0.05, 0.2]),
            acc_thresholds: Thresholds([1.0, 3.0, 10.0]),
            quality_metric: QualityMetric::Kld,
            allow_mixed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_units_names_and_sort() {
        let b = parse_budgets("gpu=24GiB, laptop=8GiB,512MB").unwrap().0;
        assert_eq!(b[0].bytes, 512_000_000);
        assert_eq!(b[0].label(), "512 MB");
        assert_eq!(b[1].bytes, 8 << 30);
        assert_eq!(b[1].label(), "laptop 8 GiB");
        assert_eq!(b[2].bytes, 24 << 30);
        assert_eq!(parse_budget("1.5GB").unwrap().bytes, 1_500_000_000);
    }

    #[test]
    fn bad_budgets_name_the_value() {
        let e = parse_budgets("8 parsecs").unwrap_err();
        assert!(e.contains("8 parsecs") && e.contains("GiB"), "{e}");
        assert!(parse_budgets("=8GiB").is_err());
        assert!(parse_budgets("0GiB").is_err());
        assert!(parse_budgets("").is_err());
    }

    #[test]
    fn thresholds_classify_at_the_cut_points() {
        let t = parse_thresholds("0.01,0.05,0.2").unwrap();
        assert_eq!(t.classify(0.0), Severity::Negligible);
        assert_eq!(t.classify(0.00999), Severity::Negligible);
        assert_eq!(t.classify(0.01), Severity::Small);
        assert_eq!(t.classify(0.031), Severity::Small);
        assert_eq!(t.classify(0.05), Severity::Noticeable);
        assert_eq!(t.classify(1.2), Severity::Large);
        assert!(parse_thresholds("0.05,0.01,0.2").is_err());
        assert!(parse_thresholds("0.01,0.05").is_err());
    }

    #[test]
    fn default_options_match_the_clap_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            o: ReportOptions,
        }
        let parsed = T::parse_from(["t"]).o;
        let d = ReportOptions::default();
        assert_eq!(parsed.kld_thresholds, d.kld_thresholds);
        assert_eq!(parsed.acc_thresholds, d.acc_thresholds);
        assert_eq!(parsed.budget_context, d.budget_context);
        assert_eq!(d.budgets().len(), 5);
        assert!(d.drawn_budgets().is_empty());
    }
}
