//! What a run shows on the terminal while it works: progress bars (hidden with --quiet) and
//! one-line notes on stderr. Owns no decisions; results and reports never go through here.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar of `len` steps, hidden when `quiet`.
pub fn bar(quiet: bool, len: u64, msg: String) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

/// A line on stderr, unless `quiet`.
pub fn note(quiet: bool, s: &str) {
    if !quiet {
        eprintln!("{s}");
    }
}
