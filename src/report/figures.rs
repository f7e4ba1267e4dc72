//! Which figures a report has: quality loss (mean KLD, ΔPPL %, accuracy Δ) against peak
//! memory, weight bytes, decode and prefill speed, and per-task accuracy bars; each built
//! from the merged results and rendered to PNG and SVG by `plot.rs`. It chooses data and
//! words; it must not draw (that is `plot.rs`) or read files.

use super::merge::{Entry, ReportSet};
use super::pareto::Better;
use super::plot::{self, BarMember, Bars, Point, Scatter, Series, VLine};
use super::quality;
use crate::report::options::ReportOptions;
use anyhow::Result;

/// A rendered figure with its file stem ("kld_vs_memory") and words for it.
pub struct Figure {
    pub stem: String,
    pub title: String,
    /// One sentence for alt text and captions.
    pub alt: String,
    /// Shown first in the HTML report (mean KLD plots) or under "more plots".
    pub main: bool,
    pub png: Vec<u8>,
    pub svg: String,
}

#[derive(Clone, Copy)]
enum XAxis {
    Memory,
    Weights,
    Decode,
    Prefill,
}

#[derive(Clone, Copy, PartialEq)]
enum YAxis {
    Kld,
    Ppl,
    Acc,
}

impl XAxis {
    fn stem(self) -> &'static str {
        match self {
            XAxis::Memory => "memory",
            XAxis::Weights => "weights",
            XAxis::Decode => "decode",
            XAxis::Prefill => "prefill",
        }
    }
    fn words(self) -> &'static str {
        match self {
            XAxis::Memory => "peak memory",
            XAxis::Weights => "weight size",
            XAxis::Decode => "decode speed",
            XAxis::Prefill => "prefill speed",
        }
    }
    fn better(self) -> Better {
        match self {
            XAxis::Memory | XAxis::Weights => Better::Lower,
            XAxis::Decode | XAxis::Prefill => Better::Higher,
        }
    }
    fn bytes(self) -> bool {
        matches!(self, XAxis::Memory | XAxis::Weights)
    }
    /// The raw value (bytes or tokens/s).
    fn value(self, e: &Entry) -> Option<f64> {
        let l = e.level;
        match self {
            XAxis::Memory => l.memory_bytes().map(|b| b as f64),
            XAxis::Weights => Some(l.weight_bytes as f64),
            XAxis::Decode => l.decode_tokens_per_sec,
            XAxis::Prefill => l.prefill_tokens_per_sec,
        }
    }
}

impl YAxis {
    fn stem(self) -> &'static str {
        match self {
            YAxis::Kld => "kld",
            YAxis::Ppl => "ppl",
            YAxis::Acc => "acc",
        }
    }
    fn words(self) -> &'static str {
        match self {
            YAxis::Kld => "mean KLD",
            YAxis::Ppl => "perplexity change",
            YAxis::Acc => "accuracy change",
        }
    }
    /// (value, interval low, interval high) in the axis unit.
    fn value(self, set: &ReportSet, e: &Entry) -> Option<(f64, Option<f64>, Option<f64>)> {
        let l = e.level;
        match self {
            YAxis::Kld => {
                let (k, se) = quality::kld(l);
                k.is_finite().then_some({
                    if se > 0.0 {
                        (
                            k,
                            Some(k - crate::eval::stats::Z_95 * se),
                            Some(k + crate::eval::stats::Z_95 * se),
                        )
                    } else {
                        (k, None, None)
                    }
                })
            }
            YAxis::Ppl => quality::dppl_pct(&set.runs[e.run].results, l).map(|d| (d, None, None)),
            YAxis::Acc => quality::acc_delta_pts(l).map(|(m, lo, hi)| {
                if l.is_reference {
                    (m, None, None)
                } else {
                    (m, Some(lo), Some(hi))
                }
            }),
        }
    }
}

fn scatter(set: &ReportSet, opts: &ReportOptions, x: XAxis, y: YAxis) -> Option<Scatter> {
    let multi = set.multi_device();
    let entries = set.ok_entries();
    let max_x = entries
        .iter()
        .filter_map(|e| x.value(e))
        .fold(0.0, f64::max);
    let (div, unit) = if x.bytes() {
        crate::fmt::byte_unit(max_x)
    } else {
        (1.0, "")
    };
    let mut raw: Vec<(String, Vec<Point>)> = Vec::new();
    for d in set.devices() {
        let mut pts = Vec::new();
        for e in entries.iter().filter(|e| e.device == d) {
            let (Some(xv), Some((yv, lo, hi))) = (x.value(e), y.value(set, e)) else {
                continue;
            };
            let mut label = e.label(multi);
            if e.level.is_reference {
                label = match y {
                    YAxis::Kld => format!("{label} (reference, KLD 0)"),
                    _ => format!("{label} (reference)"),
                };
            }
            pts.push(Point {
                x: xv / div,
                y: yv,
                y_lo: lo,
                y_hi: hi,
                label,
                is_ref: e.level.is_reference,
            });
        }
        if !pts.is_empty() {
            raw.push((d.to_string(), pts));
        }
    }
    // Nothing to compare: no points, or only references.
    if !raw.iter().flat_map(|s| &s.1).any(|p| !p.is_ref) {
        return None;
    }
    // Log axis for KLD, and for ΔPPL when every non-reference level lost perplexity.
    let y_log = match y {
        YAxis::Kld => true,
        YAxis::Ppl => raw.iter().flat_map(|s| &s.1).all(|p| p.is_ref || p.y > 0.0),
        YAxis::Acc => false,
    };
    let x_desc = match x {
        XAxis::Memory => format!(
            "peak memory: a GPU level's on the GPU, from its driver; else the level process's resident memory ({unit})"
        ),
        XAxis::Weights => format!("weight storage ({unit})"),
        XAxis::Decode => "decode speed (tokens/s, median; higher is better)".into(),
        XAxis::Prefill => "prefill speed (tokens/s, median; higher is better)".into(),
    };
    let y_desc = match (y, y_log) {
        (YAxis::Kld, _) => "mean KL divergence vs reference (nats/token, log)".to_string(),
        (YAxis::Ppl, true) => "perplexity increase vs reference (%, log)".into(),
        (YAxis::Ppl, false) => "perplexity change vs reference (%)".into(),
        (YAxis::Acc, _) => "accuracy change vs reference (points, 95% CI)".into(),
    };
    let mut vlines = Vec::new();
    let mut off = Vec::new();
    if x.bytes() {
        for b in opts.drawn_budgets() {
            let bx = b.bytes as f64 / div;
            if bx <= max_x / div * 3.0 {
                vlines.push(VLine {
                    x: bx,
                    label: b.label(),
                });
            } else {
                off.push(b.label());
            }
        }
    }
    let note =
        (!off.is_empty()).then(|| format!("off the chart, every level fits: {}", off.join(", ")));
    let r = set.first();
    let title = format!("{}: {} vs {}", r.model.display(), y.words(), x.words());
    Some(Scatter {
        title,
        x_desc,
        y_desc,
        x_better: x.better(),
        y_log,
        y_higher_better: y == YAxis::Acc,
        series: raw
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect(),
        vlines,
        note,
    })
}

/// Per-task accuracy bars: one group per task (headline metric), one bar per level (and
/// device, where a level's results differ between devices).
fn task_bars(set: &ReportSet) -> Option<Bars> {
    let entries = set.ok_entries();
    let mut tasks: Vec<(String, String)> = Vec::new();
    for e in &entries {
        for t in quality::headline_tasks(e.level) {
            if !tasks.iter().any(|(n, _)| *n == t.task) {
                tasks.push((t.task.clone(), t.metric.clone()));
            }
        }
    }
    if tasks.is_empty() {
        return None;
    }
    let mut members: Vec<BarMember> = Vec::new();
    for e in &entries {
        let hs = quality::headline_tasks(e.level);
        let vals: Vec<Option<(f64, f64, f64)>> = tasks
            .iter()
            .map(|(n, _)| {
                hs.iter()
                    .find(|t| t.task == *n)
                    .map(|t| (t.value * 100.0, t.ci_low * 100.0, t.ci_high * 100.0))
            })
            .collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        // The same level with the same answers on another device adds nothing.
        let same_level = |m: &BarMember| m.name.split(" · ").next() == Some(e.level.level.as_str());
        if members.iter().any(|m| same_level(m) && m.values == vals) {
            continue;
        }
        let name = if members.iter().any(same_level) {
            e.label(true)
        } else {
            e.level.level.clone()
        };
        members.push(BarMember {
            name,
            is_ref: e.level.is_reference,
            values: vals,
        });
    }
    Some(Bars {
        title: format!(
            "{}: accuracy per task and level",
            set.first().model.display()
        ),
        y_desc: "accuracy (%, 95% interval)".into(),
        groups: tasks.iter().map(|(n, m)| format!("{n} ({m})")).collect(),
        members,
    })
}

/// Every figure the results support, in reading order.
pub fn all(set: &ReportSet, opts: &ReportOptions) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for y in [YAxis::Kld, YAxis::Ppl, YAxis::Acc] {
        for x in [XAxis::Memory, XAxis::Weights, XAxis::Decode, XAxis::Prefill] {
            let Some(s) = scatter(set, opts, x, y) else {
                continue;
            };
            let r = plot::scatter(&s)?;
            out.push(Figure {
                stem: format!("{}_vs_{}", y.stem(), x.stem()),
                alt: format!(
                    "{} of each level against its {}, one point per level and device, the Pareto frontier drawn as a line, dominated levels in grey",
                    y.words(),
                    x.words()
                ),
                title: format!("{} vs {}", y.words(), x.words()),
                main: y == YAxis::Kld,
                png: r.png,
                svg: r.svg,
            });
        }
    }
    if let Some(b) = task_bars(set) {
        let r = plot::bars(&b)?;
        out.push(Figure {
            stem: "tasks".into(),
            title: "accuracy per task".into(),
            alt: "accuracy of each level on each task, grouped bars with 95% intervals, the reference outlined".into(),
            main: true,
            png: r.png,
            svg: r.svg,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Results;

    fn example() -> Results {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        Results::load(&p).unwrap()
    }

    #[test]
    fn example_has_kld_and_ppl_figures_but_no_task_figures() {
        let set = ReportSet::single(example(), vec![]);
        let opts = ReportOptions::default();
        let s = scatter(&set, &opts, XAxis::Memory, YAxis::Kld).unwrap();
        assert_eq!(s.series.len(), 1);
        assert_eq!(s.series[0].points.len(), 4);
        assert_eq!(s.series[0].points[0].label, "f16 (reference, KLD 0)");
        // 456306688 bytes in MB
        assert!((s.series[0].points[0].x - 456.306688).abs() < 1e-9);
        assert!(s.x_desc.ends_with("(MB)"));
        assert!(scatter(&set, &opts, XAxis::Memory, YAxis::Acc).is_none());
        assert!(task_bars(&set).is_none());
    }

    #[test]
    fn budgets_are_drawn_when_near_the_data() {
        let set = ReportSet::single(example(), vec![]);
        let opts = ReportOptions {
            budget: Some(crate::report::options::parse_budgets("tiny=0.4GB,laptop=8GiB").unwrap()),
            ..Default::default()
        };
        let s = scatter(&set, &opts, XAxis::Memory, YAxis::Kld).unwrap();
        assert_eq!(s.vlines.len(), 1);
        assert_eq!(s.vlines[0].label, "tiny 0.4 GB");
        assert!((s.vlines[0].x - 400.0).abs() < 1e-9);
        assert!(s.note.unwrap().contains("laptop 8 GiB"));
        assert!(scatter(&set, &opts, XAxis::Decode, YAxis::Kld)
            .unwrap()
            .vlines
            .is_empty());
    }
}
