//! `qeval bench` end to end on the real SmolLM2 file: speed only, one level quantized in-process
//! and one taken from a GGUF file, results.json marked as a bench, bench.csv, and `qeval report`
//! still renders the file.

mod common;

use qeval::results::{Results, RunMode};

#[test]
fn bench_measures_speed_only_and_report_still_renders() {
    let model = common::model("smollm2-135m-q4_1");
    let m = model.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let gguf = format!("q4_1={m}");
    let o = common::run(&[
        "bench",
        "--model",
        m,
        "--quants",
        "q8_0",
        "--gguf",
        &gguf,
        "--threads",
        "2",
        "--repeats",
        "2",
        "--prompt-tokens",
        "32",
        "--gen-tokens",
        "4",
        "--ctx",
        "64",
        "--quiet",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "qeval bench failed: {}",
        common::stderr(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("pp32 t/s") && stdout.contains("tg4 t/s") && stdout.contains("eval64 t/s"),
        "{stdout}"
    );
    let r = Results::load(&out.path().join("results.json")).unwrap();
    assert_eq!(r.mode, RunMode::Bench);
    assert_eq!(r.device.threads, 2);
    assert_eq!(r.evalset.chunks, 0);
    assert_eq!(r.levels.len(), 2);
    for l in &r.levels {
        assert_eq!(l.status, qeval::results::LevelStatus::Ok, "{:?}", l.error);
        assert!(l.perplexity.is_none() && l.kld_mean.is_none() && l.tasks.is_empty());
        assert_eq!(l.scored_tokens, 0);
        for s in [&l.prefill, &l.decode, &l.eval] {
            let s = s.as_ref().unwrap();
            assert_eq!(s.samples.len(), 2);
            assert!(s.median > 0.0);
        }
        assert_eq!(l.eval_tokens, 64);
        assert_eq!(l.kernels, qeval::measure::speed::kernels_in_use());
    }
    let q41 = r.levels.iter().find(|l| l.level == "q4_1").unwrap();
    assert!(q41.source.starts_with("GGUF file"), "{}", q41.source);
    let csv = std::fs::read_to_string(out.path().join("bench.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with(qeval::report::bench::CSV_HEADER));
    assert!(!out.path().join("report.html").exists());
    assert!(!out.path().join(".work").exists(), "work files left behind");

    // The report code renders a bench file: speed columns filled, quality columns empty.
    let rep = tempfile::tempdir().unwrap();
    let o = common::run(&[
        "report",
        out.path().join("results.json").to_str().unwrap(),
        "--out",
        rep.path().to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "qeval report failed: {}",
        common::stderr(&o)
    );
    let csv = std::fs::read_to_string(rep.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(rep.path().join("report.html").exists());
}
