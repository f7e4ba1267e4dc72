//! Drawing (plotters): a scatter chart with a Pareto frontier per device and a grouped-bar
//! chart, each rendered to PNG and SVG from one description. Palette (Okabe–Ito, safe for
//! colour-blind readers), marker shapes (devices apart in greyscale), fonts and label
//! placement live here; which figures exist is `figures.rs`'s business, and this module must
//! not read results.

use super::pareto::{self, Better};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

const SIZE: (u32, u32) = (1100, 720);
const FONT: &str = "sans-serif";
/// Okabe–Ito: blue, vermillion, bluish green, reddish purple, orange, sky blue.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];
const GREY: RGBColor = RGBColor(170, 170, 170);
const DARK: RGBColor = RGBColor(40, 40, 40);

static FONT_INIT: Once = Once::new();

fn init_font() {
    FONT_INIT.call_once(|| {
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

trait PlotErr<T> {
    fn pe(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> PlotErr<T> for std::result::Result<T, E> {
    fn pe(self) -> Result<T> {
        self.map_err(|e| anyhow!("plot: {e}"))
    }
}

/// One point of a scatter chart (y in data units; log axes are handled here).
#[derive(Debug, Clone)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// Error bar (data units), when the metric has an interval.
    pub y_lo: Option<f64>,
    pub y_hi: Option<f64>,
    pub label: String,
    pub is_ref: bool,
}

/// The points of one device: one colour and marker shape, one frontier.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// A vertical rule with a label (a memory budget).
#[derive(Debug, Clone)]
pub struct VLine {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Scatter {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub x_better: Better,
    /// Log y axis; the reference (loss 0) is drawn on its own row under the lowest decade.
    pub y_log: bool,
    /// Larger y is better (an accuracy change); otherwise y is a loss.
    pub y_higher_better: bool,
    pub series: Vec<Series>,
    pub vlines: Vec<VLine>,
    /// A line under the legend for what could not be drawn (budgets off the chart).
    pub note: Option<String>,
}

/// Grouped bars: one group per category (task), one bar per member (level) with an interval.
#[derive(Debug, Clone)]
pub struct Bars {
    pub title: String,
    pub y_desc: String,
    pub groups: Vec<String>,
    pub members: Vec<BarMember>,
}

/// One member of every group (a level): its name, whether it is the reference, and per group
/// (value, low, high) in %.
#[derive(Debug, Clone, PartialEq)]
pub struct BarMember {
    pub name: String,
    pub is_ref: bool,
    pub values: Vec<Option<(f64, f64, f64)>>,
}

/// A figure rendered both ways.
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

/// Render a scatter chart.
pub fn scatter(s: &Scatter) -> Result<Rendered> {
    init_font();
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        draw_scatter(&root, s)?;
        root.present().pe()?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw_scatter(&root, s)?;
        root.present().pe()?;
    }
    Ok(Rendered {
        png: encode_png(&buf, SIZE)?,
        svg,
    })
}

/// Render a grouped-bar chart.
pub fn bars(b: &Bars) -> Result<Rendered> {
    init_font();
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        draw_bars(&root, b)?;
        root.present().pe()?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw_bars(&root, b)?;
        root.present().pe()?;
    }
    Ok(Rendered {
        png: encode_png(&buf, SIZE)?,
        svg,
    })
}

fn encode_png(rgb: &[u8], size: (u32, u32)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().context("png header")?;
        w.write_image_data(rgb).context("png data")?;
    }
    Ok(out)
}

type Rect = (i32, i32, i32, i32);

fn overlap(a: Rect, b: Rect) -> i64 {
    let w = (a.2.min(b.2) - a.0.max(b.0)).max(0) as i64;
    let h = (a.3.min(b.3) - a.1.max(b.1)).max(0) as i64;
    w * h
}

/// Place a label of size (w, h) near pixel `p`: the first of several spots around it that
/// overlaps nothing placed yet and stays inside `bounds`, else the least-overlapping spot.
fn place(p: (i32, i32), w: i32, h: i32, taken: &[Rect], bounds: Rect) -> Rect {
    let (x, y) = p;
    let spots = [
        (x + 12, y - h - 4),
        (x + 12, y + 4),
        (x - w - 12, y - h - 4),
        (x - w - 12, y + 4),
        (x - w / 2, y - h - 14),
        (x - w / 2, y + 14),
        (x + 14, y - h / 2),
        (x - w - 14, y - h / 2),
        (x + 12, y - 2 * h - 10),
        (x + 12, y + h + 10),
        (x - w - 12, y - 2 * h - 10),
        (x - w - 12, y + h + 10),
        (x - w / 2, y - 2 * h - 20),
        (x - w / 2, y + h + 20),
    ];
    let mut best: Option<(i64, Rect)> = None;
    for (sx, sy) in spots {
        let r = (sx, sy, sx + w, sy + h);
        let outside = (bounds.0 - r.0).max(0)
            + (r.2 - bounds.2).max(0)
            + (bounds.1 - r.1).max(0)
            + (r.3 - bounds.3).max(0);
        let cost: i64 = taken.iter().map(|t| overlap(*t, r)).sum::<i64>() + outside as i64 * 1000;
        if cost == 0 {
            return r;
        }
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, r));
        }
    }
    best.map(|b| b.1).unwrap_or((x, y, x + w, y + h))
}

fn marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    shape: usize,
    at: (i32, i32),
    fill: ShapeStyle,
    edge: ShapeStyle,
) -> Result<()> {
    let (x, y) = at;
    match shape % 4 {
        0 => {
            root.draw(&Circle::new(at, 7, fill)).pe()?;
            root.draw(&Circle::new(at, 7, edge)).pe()?;
        }
        1 => {
            let pts = vec![(x, y - 9), (x + 8, y + 6), (x - 8, y + 6), (x, y - 9)];
            root.draw(&Polygon::new(pts.clone(), fill)).pe()?;
            root.draw(&PathElement::new(pts, edge)).pe()?;
        }
        2 => {
            root.draw(&Rectangle::new([(x - 6, y - 6), (x + 6, y + 6)], fill))
                .pe()?;
            root.draw(&Rectangle::new([(x - 6, y - 6), (x + 6, y + 6)], edge))
                .pe()?;
        }
        _ => {
            let pts = vec![(x, y - 9), (x + 9, y), (x, y + 9), (x - 9, y), (x, y - 9)];
            root.draw(&Polygon::new(pts.clone(), fill)).pe()?;
            root.draw(&PathElement::new(pts, edge)).pe()?;
        }
    }
    Ok(())
}

/// "1e-3" style labels at whole decades, nothing between.
/// The scatter chart's pixel mapping: data x and transformed y (see [`YScale::ty`]).
type Coord =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// The y axis of a scatter chart: its range, and on a log axis the decade the data starts at
/// and the row the reference (a loss of 0) is drawn on.
struct YScale {
    log: bool,
    decade: f64,
    zero_row: f64,
    lo: f64,
    hi: f64,
}

impl YScale {
    /// Log axis: a loss of 0 (the reference) cannot sit on it, so it gets its own row below
    /// the lowest decade holding data, under a dashed rule and labelled "0".
    fn new(s: &Scatter) -> YScale {
        let all = s.series.iter().flat_map(|s| &s.points);
        let pos_min = all
            .clone()
            .filter(|p| p.y > 0.0 && p.y.is_finite())
            .map(|p| p.y)
            .fold(f64::INFINITY, f64::min);
        let decade = if pos_min.is_finite() {
            pos_min.log10().floor()
        } else {
            -3.0
        };
        let mut y = YScale {
            log: s.y_log,
            decade,
            zero_row: decade - 0.35,
            lo: 0.0,
            hi: 1.0,
        };
        let (mut lo, mut hi) = all
            .flat_map(|p| [Some(p.y), p.y_lo, p.y_hi])
            .flatten()
            .filter(|v| v.is_finite())
            .map(|v| y.ty(v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if s.y_log {
            lo = decade - 0.6;
            hi = (hi + 0.35).ceil();
        } else {
            let pad = ((hi - lo).abs() * 0.12).max(0.5);
            lo -= pad;
            hi += pad;
        }
        (y.lo, y.hi) = (lo, hi);
        y
    }

    /// A data y on the chart's y axis (log10 on a log axis, 0 on the zero row).
    fn ty(&self, v: f64) -> f64 {
        if !self.log {
            v
        } else if v <= 0.0 {
            self.zero_row
        } else {
            v.log10().max(self.decade - 0.12)
        }
    }
}

/// The x axis' end: the largest point or budget rule, with room for labels.
fn scatter_x_max(s: &Scatter) -> f64 {
    let xmax_data = s
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.x)
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    s.vlines
        .iter()
        .map(|v| v.x)
        .fold(xmax_data, f64::max)
        .max(1e-9)
        * 1.22
}

fn draw_scatter<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Scatter) -> Result<()> {
    root.fill(&WHITE).pe()?;
    let y = YScale::new(s);
    let xmax = scatter_x_max(s);
    let coord = draw_scatter_axes(root, s, &y, xmax)?;
    let (x0, y0) = coord.translate(&(0.0, y.hi));
    let (x1, y1) = coord.translate(&(xmax, y.lo));
    let bounds = (x0, y0, x1, y1);
    if s.y_log && s.series.iter().flat_map(|s| &s.points).any(|p| p.y <= 0.0) {
        draw_zero_row(root, &coord, &y, bounds)?;
    }
    let legend = draw_scatter_legend(root, s, bounds)?;
    let mut taken: Vec<Rect> = vec![legend];
    draw_budgets(root, s, &coord, &y, bounds, legend, &mut taken)?;
    let on_frontier = frontiers(s);
    draw_frontiers(root, s, &coord, &y, &on_frontier)?;
    draw_points(root, s, &coord, &y, &on_frontier, &mut taken, bounds)
}

/// Caption, axes, tick labels and grid; returns the pixel mapping.
fn draw_scatter_axes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter,
    y: &YScale,
    xmax: f64,
) -> Result<Coord> {
    let (ylo, yhi) = (y.lo, y.hi);
    let mut chart = ChartBuilder::on(root)
        .caption(&s.title, (FONT, 28))
        .margin(18)
        .x_label_area_size(62)
        .y_label_area_size(92)
        .build_cartesian_2d(0f64..xmax, ylo..yhi)
        .pe()?;
    let fmt_y = |v: &f64| -> String {
        if s.y_log {
            crate::fmt::decade(*v)
        } else if yhi - ylo > 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let fmt_x = |v: &f64| -> String {
        if xmax >= 20.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    chart
        .configure_mesh()
        .x_label_formatter(&fmt_x)
        .x_desc(&s.x_desc)
        .y_desc(&s.y_desc)
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 19))
        .y_labels(if s.y_log {
            ((yhi - ylo) * 2.0) as usize + 1
        } else {
            10
        })
        .y_label_formatter(&fmt_y)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()
        .pe()?;
    Ok(chart.as_coord_spec().clone())
}

/// The zero row of a log axis: a dashed rule above it and a "0" at the axis.
fn draw_zero_row<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    coord: &Coord,
    y: &YScale,
    (x0, _, x1, _): Rect,
) -> Result<()> {
    let (_, ry) = coord.translate(&(0.0, y.decade - 0.18));
    let mut xx = x0;
    while xx < x1 {
        root.draw(&PathElement::new(
            vec![(xx, ry), ((xx + 6).min(x1), ry)],
            RGBColor(150, 150, 150).stroke_width(1),
        ))
        .pe()?;
        xx += 10;
    }
    let zero_font = (FONT, 18).into_font().color(&BLACK);
    let (_, zy) = coord.translate(&(0.0, y.zero_row));
    let (w, h) = root.estimate_text_size("0", &zero_font).pe()?;
    root.draw(&Text::new(
        "0",
        (x0 - 8 - w as i32, zy - h as i32 / 2),
        zero_font,
    ))
    .pe()
    .map(|_| ())
}

/// The legend, top right of the plot area: one line per device, the dominated points' grey
/// and the note. Returns the box it covers.
fn draw_scatter_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter,
    (_, y0, x1, _): Rect,
) -> Result<Rect> {
    let legend_font = (FONT, 17).into_font().color(&BLACK);
    let mut lines: Vec<(Option<usize>, String)> = s
        .series
        .iter()
        .enumerate()
        .map(|(i, se)| (Some(i), format!("{} (line: Pareto frontier)", se.name)))
        .collect();
    lines.push((
        None,
        "grey: dominated (another level is better on both axes)".into(),
    ));
    if let Some(n) = &s.note {
        lines.push((None, n.clone()));
    }
    let lw = lines
        .iter()
        .map(|(_, t)| {
            root.estimate_text_size(t, &legend_font)
                .map(|s| s.0)
                .unwrap_or(300)
        })
        .max()
        .unwrap_or(300) as i32
        + 44;
    let lh = 24 * lines.len() as i32 + 10;
    let legend = (x1 - lw - 8, y0 + 8, x1 - 8, y0 + 8 + lh);
    root.draw(&Rectangle::new(
        [(legend.0, legend.1), (legend.2, legend.3)],
        WHITE.mix(0.9).filled(),
    ))
    .pe()?;
    root.draw(&Rectangle::new(
        [(legend.0, legend.1), (legend.2, legend.3)],
        RGBColor(190, 190, 190),
    ))
    .pe()?;
    for (k, (idx, t)) in lines.iter().enumerate() {
        let ly = legend.1 + 8 + 24 * k as i32;
        match idx {
            Some(i) => {
                let c = PALETTE[i % PALETTE.len()];
                root.draw(&PathElement::new(
                    vec![(legend.0 + 6, ly + 9), (legend.0 + 34, ly + 9)],
                    c.stroke_width(3),
                ))
                .pe()?;
                marker(
                    root,
                    *i,
                    (legend.0 + 20, ly + 9),
                    c.filled(),
                    BLACK.stroke_width(1),
                )?;
            }
            None if k == s.series.len() => {
                marker(
                    root,
                    0,
                    (legend.0 + 20, ly + 9),
                    GREY.filled(),
                    GREY.stroke_width(1),
                )?;
            }
            None => {}
        }
        root.draw(&Text::new(
            t.clone(),
            (legend.0 + 40, ly),
            legend_font.clone(),
        ))
        .pe()?;
    }
    Ok(legend)
}

/// Budget rules: dashed, labelled at the top (below the legend where they cross it).
fn draw_budgets<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter,
    coord: &Coord,
    y: &YScale,
    (x0, y0, _, y1): Rect,
    legend: Rect,
    taken: &mut Vec<Rect>,
) -> Result<()> {
    let budget_font = (FONT, 17).into_font().color(&DARK);
    for v in &s.vlines {
        let (bx, _) = coord.translate(&(v.x, y.lo));
        let mut yy = y0;
        let in_legend = bx >= legend.0 && bx <= legend.2;
        while yy < y1 {
            if !(in_legend && yy + 8 >= legend.1 && yy <= legend.3) {
                root.draw(&PathElement::new(
                    vec![(bx, yy), (bx, (yy + 8).min(y1))],
                    DARK.stroke_width(2),
                ))
                .pe()?;
            }
            yy += 14;
        }
        let (w, h) = root.estimate_text_size(&v.label, &budget_font).pe()?;
        let (w, h) = (w as i32, h as i32);
        let mut r = (bx - w - 8, y0 + 6, bx - 4, y0 + 6 + h);
        if r.0 < x0 {
            r = (bx + 4, r.1, bx + 8 + w, r.3);
        }
        if taken.iter().any(|t| overlap(*t, r) > 0) {
            r = (r.0, legend.3 + 6, r.2, legend.3 + 6 + h);
        }
        root.draw(&Rectangle::new(
            [(r.0 - 2, r.1 - 2), (r.2 + 2, r.3 + 2)],
            WHITE.filled(),
        ))
        .pe()?;
        root.draw(&Text::new(v.label.clone(), (r.0, r.1), budget_font.clone()))
            .pe()?;
        taken.push(r);
        taken.push((bx - 2, y0, bx + 2, y1));
    }
    Ok(())
}

/// Which points are on their device's frontier (loss = y, or -y when higher is better).
fn frontiers(s: &Scatter) -> Vec<Vec<bool>> {
    s.series
        .iter()
        .map(|se| {
            let key: Vec<(f64, f64)> = se
                .points
                .iter()
                .map(|p| (p.x, if s.y_higher_better { -p.y } else { p.y }))
                .collect();
            pareto::frontier(&key, s.x_better)
        })
        .collect()
}

/// Frontier lines (drawn before the markers, so under them), one per device.
fn draw_frontiers<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter,
    coord: &Coord,
    y: &YScale,
    on_frontier: &[Vec<bool>],
) -> Result<()> {
    for (i, se) in s.series.iter().enumerate() {
        let mut line: Vec<(f64, f64)> = se
            .points
            .iter()
            .zip(&on_frontier[i])
            .filter(|(_, on)| **on)
            .map(|(p, _)| (p.x, y.ty(p.y)))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        line.dedup();
        if line.len() > 1 {
            let pix: Vec<(i32, i32)> = line
                .iter()
                .map(|(x, y)| coord.translate(&(*x, *y)))
                .collect();
            root.draw(&PathElement::new(
                pix,
                PALETTE[i % PALETTE.len()].stroke_width(3),
            ))
            .pe()?;
        }
    }
    Ok(())
}

/// Markers, error bars and labels; every marker is an obstacle for every label.
fn draw_points<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter,
    coord: &Coord,
    y: &YScale,
    on_frontier: &[Vec<bool>],
    taken: &mut Vec<Rect>,
    bounds: Rect,
) -> Result<()> {
    let px = |x: f64, v: f64| coord.translate(&(x, y.ty(v)));
    for se in &s.series {
        for p in &se.points {
            let (a, b) = px(p.x, p.y);
            taken.push((a - 10, b - 10, a + 10, b + 10));
        }
    }
    let label_font = (FONT, 17).into_font();
    for (i, se) in s.series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        for (p, &on) in se.points.iter().zip(&on_frontier[i]) {
            let at = px(p.x, p.y);
            let col = if on { c } else { GREY };
            if let (Some(lo), Some(hi)) = (p.y_lo, p.y_hi) {
                let (a, b) = (px(p.x, lo), px(p.x, hi));
                root.draw(&PathElement::new(vec![a, b], col.stroke_width(2)))
                    .pe()?;
                for e in [a, b] {
                    root.draw(&PathElement::new(
                        vec![(e.0 - 6, e.1), (e.0 + 6, e.1)],
                        col.stroke_width(2),
                    ))
                    .pe()?;
                }
            }
            let edge = if on {
                BLACK.stroke_width(1)
            } else {
                RGBColor(120, 120, 120).stroke_width(1)
            };
            marker(root, i, at, col.filled(), edge)?;
            if p.is_ref {
                root.draw(&Circle::new(at, 13, BLACK.stroke_width(2)))
                    .pe()?;
            }
            let font = label_font
                .clone()
                .color(if on { &BLACK } else { &RGBColor(110, 110, 110) });
            let (w, h) = root.estimate_text_size(&p.label, &font).pe()?;
            let r = place(at, w as i32, h as i32, taken, bounds);
            root.draw(&Text::new(p.label.clone(), (r.0, r.1), font))
                .pe()?;
            taken.push(r);
        }
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, b: &Bars) -> Result<()> {
    root.fill(&WHITE).pe()?;
    let ng = b.groups.len().max(1);
    let nm = b.members.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(&b.title, (FONT, 28))
        .margin(18)
        .x_label_area_size(62)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..ng as f64, 0f64..112f64)
        .pe()?;
    let groups = b.groups.clone();
    let fmt_x = move |v: &f64| -> String {
        let i = v.floor() as usize;
        if (v - (i as f64 + 0.5)).abs() < 1e-6 {
            groups.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ng * 2 + 1)
        .x_label_formatter(&fmt_x)
        .y_labels(12)
        .y_label_formatter(&|v| {
            if *v <= 100.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("task")
        .y_desc(&b.y_desc)
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 19))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .pe()?;
    // Bars fill 80% of each group; members left to right in legend order.
    let bw = 0.8 / nm as f64;
    let value_font = (FONT, 14).into_font().color(&BLACK);
    for (
        m,
        BarMember {
            is_ref,
            values: vals,
            ..
        },
    ) in b.members.iter().enumerate()
    {
        let c = PALETTE[m % PALETTE.len()];
        for (g, v) in vals.iter().enumerate() {
            let Some((v, lo, hi)) = v else { continue };
            let x0 = g as f64 + 0.1 + bw * m as f64;
            let x1 = x0 + bw * 0.92;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, *v)],
                    c.filled(),
                )))
                .pe()?;
            let edge = if *is_ref {
                BLACK.stroke_width(3)
            } else {
                BLACK.stroke_width(1)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, *v)], edge)))
                .pe()?;
            let xm = (x0 + x1) / 2.0;
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    xm,
                    *lo,
                    *v,
                    *hi,
                    BLACK.stroke_width(2),
                    10,
                )))
                .pe()?;
            let (px, py) = chart.backend_coord(&(xm, *hi));
            let t = format!("{v:.0}");
            let (w, _) = root.estimate_text_size(&t, &value_font).pe()?;
            root.draw(&Text::new(
                t,
                (px - w as i32 / 2, py - 20),
                value_font.clone(),
            ))
            .pe()?;
        }
    }
    // Legend across the top of the plot area, in bar order.
    let legend_font = (FONT, 17).into_font().color(&BLACK);
    let (mut lx, ly) = chart.backend_coord(&(0.0, 111.0));
    lx += 10;
    for (m, BarMember { name, is_ref, .. }) in b.members.iter().enumerate() {
        let c = PALETTE[m % PALETTE.len()];
        let text = if *is_ref {
            format!("{name} (reference, thick outline)")
        } else {
            name.clone()
        };
        root.draw(&Rectangle::new([(lx, ly), (lx + 18, ly + 18)], c.filled()))
            .pe()?;
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + 18, ly + 18)],
            BLACK.stroke_width(if *is_ref { 3 } else { 1 }),
        ))
        .pe()?;
        root.draw(&Text::new(text.clone(), (lx + 24, ly), legend_font.clone()))
            .pe()?;
        let (w, _) = root.estimate_text_size(&text, &legend_font).pe()?;
        lx += 24 + w as i32 + 22;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_avoid_what_is_taken() {
        let bounds = (0, 0, 1000, 1000);
        let first = place((500, 500), 100, 20, &[], bounds);
        assert_eq!(first, (512, 476, 612, 496));
        let second = place((500, 500), 100, 20, &[first], bounds);
        assert_eq!(overlap(first, second), 0);
        // Near the right edge the label goes left of the point.
        let edge = place((990, 500), 100, 20, &[], bounds);
        assert!(edge.2 <= 1000, "{edge:?}");
    }

    #[test]
    fn renders_png_and_svg() {
        let s = Scatter {
            title: "t".into(),
            x_desc: "x (MB)".into(),
            y_desc: "y".into(),
            x_better: Better::Lower,
            y_log: true,
            y_higher_better: false,
            series: vec![Series {
                name: "cpu 2t".into(),
                points: vec![
                    Point {
                        x: 1.0,
                        y: 0.0,
                        y_lo: None,
                        y_hi: None,
                        label: "ref".into(),
                        is_ref: true,
                    },
                    Point {
                        x: 0.5,
                        y: 0.01,
                        y_lo: Some(0.009),
                        y_hi: Some(0.011),
                        label: "q8 <&>".into(),
                        is_ref: false,
                    },
                ],
            }],
            vlines: vec![VLine {
                x: 0.8,
                label: "laptop 8 GiB".into(),
            }],
            note: None,
        };
        let r = scatter(&s).unwrap();
        assert_eq!(&r.png[1..4], b"PNG");
        assert!(r.svg.starts_with("<svg") && r.svg.contains("laptop 8 GiB"));
        assert!(
            r.svg.contains("q8 &lt;&amp;&gt;"),
            "SVG text must be escaped"
        );
    }
}
