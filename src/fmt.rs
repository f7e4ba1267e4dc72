//! Number formatting shared by every human-facing output: the terminal table and the
//! runner's messages, HTML, Markdown and the plots (axis units and ticks). It owns how bytes,
//! counts, rates, percentages and intervals look; it must not read files or decide what to
//! show (machine-readable outputs, CSV and JSON, write raw numbers and never use it).

use crate::results::Spread;

/// Bytes in decimal units: "1.23 GB", "45.6 MB", "789 kB".
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// Bytes in gigabytes, whatever the size: "0.27 GB".
pub fn gb(b: u64) -> String {
    format!("{:.2} GB", b as f64 / 1e9)
}

/// Bytes in megabytes as a bare number: "270.9".
pub fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

/// A count: "1.24B", "135.0M", "5000".
pub fn count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}M", f / 1e6)
    } else {
        format!("{n}")
    }
}

/// "1 thread", "2 threads".
pub fn threads(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

/// A number to `prec` decimals, or "-" when missing or not finite.
pub fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    }
}

/// A number with its standard error, "1.234 ±0.005", or [`opt`] without one.
pub fn pm(v: Option<f64>, se: Option<f64>, prec: usize) -> String {
    match (v, se) {
        (Some(x), Some(s)) if x.is_finite() && s.is_finite() => format!("{x:.prec$} ±{s:.prec$}"),
        _ => opt(v, prec),
    }
}

/// A rate's median and spread, "123.4 ±5.6" (tokens per second), or "-" when not measured.
pub fn rate(s: Option<&Spread>) -> String {
    match s {
        Some(s) => format!("{:.1} ±{:.1}", s.median, s.stddev),
        None => "-".into(),
    }
}

/// A fraction (0..1) as signed percentage points, "+1.2" / "-3.4".
pub fn points(x: f64) -> String {
    format!("{:+.1}", x * 100.0)
}

/// A fraction (0..1) as a percentage with its interval: "61.0% [55.2, 66.5]".
pub fn pct_interval(v: f64, low: f64, high: f64) -> String {
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        v * 100.0,
        low * 100.0,
        high * 100.0
    )
}

/// A difference of fractions as signed points with its interval: "-1.8 [-3.1, -0.5]".
pub fn points_interval(d: f64, low: f64, high: f64) -> String {
    format!("{} [{}, {}]", points(d), points(low), points(high))
}

/// The unit of a byte axis: MB, or GB when the largest value reaches 2 GB (divisor, name).
pub fn byte_unit(max: f64) -> (f64, &'static str) {
    if max >= 2e9 {
        (1e9, "GB")
    } else {
        (1e6, "MB")
    }
}

/// A log-axis tick at power `v` of ten: "1", "10", "0.01", "1e-5"; empty between decades.
pub fn decade(v: f64) -> String {
    if (v - v.round()).abs() > 1e-6 {
        return String::new();
    }
    let e = v.round() as i32;
    match e {
        0 => "1".into(),
        1 => "10".into(),
        2 => "100".into(),
        -1 => "0.1".into(),
        -2 => "0.01".into(),
        _ => format!("1e{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_missing_values() {
        assert_eq!(bytes(1_234_000_000), "1.23 GB");
        assert_eq!(bytes(45_600_000), "45.6 MB");
        assert_eq!(bytes(789_000), "789 kB");
        assert_eq!(gb(270_000_000), "0.27 GB");
        assert_eq!(count(135_000_000), "135.0M");
        assert_eq!(count(5000), "5000");
        assert_eq!(threads(1), "1 thread");
        assert_eq!(opt(Some(f64::NAN), 2), "-");
        assert_eq!(pm(Some(1.5), Some(0.25), 2), "1.50 ±0.25");
        assert_eq!(rate(None), "-");
        assert_eq!(points_interval(-0.018, -0.031, -0.005), "-1.8 [-3.1, -0.5]");
        assert_eq!(pct_interval(0.61, 0.552, 0.665), "61.0% [55.2, 66.5]");
        assert_eq!(byte_unit(2e9), (1e9, "GB"));
        assert_eq!(decade(-2.0), "0.01");
        assert_eq!(decade(-5.0), "1e-5");
        assert_eq!(decade(-1.5), "");
    }

    #[test]
    fn decade_labels_only_at_whole_powers() {
        assert_eq!(decade(-3.0), "1e-3");
        assert_eq!(decade(-2.0), "0.01");
        assert_eq!(decade(0.0), "1");
        assert_eq!(decade(-2.5), "");
    }
}
