//! The PNG plots (plotters): quality loss (mean KLD, log axis) against peak memory and
//! against decode speed, one labelled point per level. Palette, size and font in one place.

use crate::results::{LevelResult, Results};
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::sync::Once;

const SIZE: (u32, u32) = (1000, 650);
const FONT: &str = "sans-serif";
const POINT: RGBColor = RGBColor(0, 90, 181);
const REF: RGBColor = RGBColor(220, 50, 32);

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

struct Pt {
    x: f64,
    y: f64,
    label: String,
    is_ref: bool,
}

fn points(r: &Results, x: impl Fn(&LevelResult) -> Option<f64>) -> (Vec<Pt>, f64) {
    let ok: Vec<&LevelResult> = r.levels.iter().filter(|l| l.status == "ok").collect();
    let pos: Vec<f64> = ok
        .iter()
        .filter(|l| !l.is_reference)
        .filter_map(|l| l.kld_mean)
        .filter(|k| *k > 0.0 && k.is_finite())
        .collect();
    let floor = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor / 4.0 } else { 1e-4 };
    let pts = ok
        .iter()
        .filter_map(|l| {
            let xv = x(l)?;
            let k = l.kld_mean.unwrap_or(0.0);
            let (y, label) = if l.is_reference || k <= 0.0 {
                (floor, format!("{} (reference, KLD 0)", l.level))
            } else {
                (k, l.level.clone())
            };
            Some(Pt {
                x: xv,
                y,
                label,
                is_ref: l.is_reference,
            })
        })
        .collect();
    (pts, floor)
}

fn draw(pts: &[Pt], floor: f64, title: &str, xlabel: &str) -> Result<Vec<u8>> {
    init_font();
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        let xmax = pts.iter().map(|p| p.x).fold(0.0, f64::max).max(1e-9) * 1.25;
        let ymax = pts.iter().map(|p| p.y).fold(floor, f64::max) * 3.0;
        let ymin = floor / 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..xmax, (ymin..ymax).log_scale())
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc(xlabel)
            .y_desc("mean KL divergence vs reference (nats/token, log)")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        for p in pts {
            let color = if p.is_ref { REF } else { POINT };
            let shape: DynElement<_, _> = if p.is_ref {
                TriangleMarker::new((p.x, p.y), 9, color.filled()).into_dyn()
            } else {
                Circle::new((p.x, p.y), 7, color.filled()).into_dyn()
            };
            chart
                .draw_series(std::iter::once(shape))
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    p.label.clone(),
                    (p.x, p.y * 1.25),
                    (FONT, 17).into_font().color(&BLACK),
                )))
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        }
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    encode_png(&buf, SIZE)
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

fn title(r: &Results, what: &str) -> String {
    format!(
        "{}: quality loss vs {what} ({}, {} threads)",
        r.model.name, r.device.kind, r.device.threads
    )
}

/// Mean KLD against peak resident memory (MB) of each level's process.
pub fn quality_vs_memory(r: &Results) -> Result<Vec<u8>> {
    let (pts, floor) = points(r, |l| l.peak_rss_bytes.map(|b| b as f64 / 1e6));
    draw(
        &pts,
        floor,
        &title(r, "memory"),
        "peak resident memory of the level's process (MB)",
    )
}

/// Mean KLD against decode tokens/s.
pub fn quality_vs_speed(r: &Results) -> Result<Vec<u8>> {
    let (pts, floor) = points(r, |l| l.decode_tokens_per_sec);
    draw(
        &pts,
        floor,
        &title(r, "speed"),
        "decode speed (tokens/s, median, higher is better)",
    )
}
