//! `qeval report` end to end on real results files of SmolLM2-135M (the committed example:
//! one run with 2 threads, one with 1 thread, standing in for two machines): the files it
//! writes and their content, merging, refusing mixed models, HTML escaping, and the page
//! rendered by headless Chromium.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reports/example")
        .join(name)
}

fn two_threads() -> PathBuf {
    example("results.json")
}

fn one_thread() -> PathBuf {
    example("results-1thread.json")
}

fn report(args: &[&str]) -> std::process::Output {
    let mut a = vec!["report"];
    a.extend_from_slice(args);
    common::run(&a)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn png_size(p: &Path) -> (u32, u32) {
    let d = png::Decoder::new(std::fs::File::open(p).unwrap());
    let r = d.read_info().unwrap();
    (r.info().width, r.info().height)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn merged_report_of_two_runs() {
    let out = tempfile::tempdir().unwrap();
    let o = report(&[
        s(&two_threads()),
        s(&one_thread()),
        "--out",
        s(out.path()),
        "--budget",
        "tiny=0.45GB,laptop=8GiB",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // Terminal: the table with a device column, then one recommendation per budget group
    // and device.
    assert!(
        stdout.contains("level") && stdout.contains("device"),
        "{stdout}"
    );
    assert!(stdout.contains("Recommendation:"), "{stdout}");
    assert!(stdout.contains("On tiny 0.45 GB (cpu 2t):"), "{stdout}");
    assert!(stdout.contains("(cpu 1t):"), "{stdout}");

    let csv = read(&out.path().join("results.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "one row per level per device:\n{csv}");
    assert_eq!(lines.iter().filter(|l| l.contains(",cpu 1t,")).count(), 4);
    assert!(!out.path().join("tasks.csv").exists());

    for stem in [
        "kld_vs_memory",
        "kld_vs_weights",
        "kld_vs_decode",
        "kld_vs_prefill",
        "ppl_vs_memory",
    ] {
        let png = out.path().join(format!("{stem}.png"));
        assert_eq!(png_size(&png), (1100, 720), "{stem}");
        let svg = read(&out.path().join(format!("{stem}.svg")));
        assert!(
            svg.starts_with("<svg") && svg.contains("q4_k_m · cpu 1t"),
            "{stem}"
        );
    }
    // Budgets: the one near the data is a rule, the far one is named as off the chart.
    let mem_svg = read(&out.path().join("kld_vs_memory.svg"));
    assert!(mem_svg.contains("tiny 0.45 GB"));
    assert!(mem_svg.contains("off the chart, every level fits: laptop 8 GiB"));
    // No task results in these files: no task plots.
    assert!(!out.path().join("tasks.png").exists());
    assert!(!out.path().join("acc_vs_memory.png").exists());

    let md = read(&out.path().join("summary.md"));
    assert!(md.contains("## Recommendation"));
    assert!(md.contains("| level | device | bits/w |"), "{md}");
    assert!(
        md.contains("![mean KLD vs peak memory](kld_vs_memory.png)"),
        "{md}"
    );

    let html = read(&out.path().join("report.html"));
    assert!(html.contains("<table id=\"levels\" class=\"sortable\">"));
    assert!(html.matches("data:image/png;base64,").count() >= 8);
    assert!(html.contains("cpu 2t (Intel(R) Xeon(R) Processor, 2 threads)"));
    assert!(html.contains("cpu 1t (Intel(R) Xeon(R) Processor, 1 thread)"));
    // The recommendation comes before the plots.
    assert!(html.find("id=\"recommendation\"").unwrap() < html.find("id=\"plots\"").unwrap());
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
}

#[test]
fn a_directory_merges_every_results_file_in_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(two_threads(), dir.path().join("results.json")).unwrap();
    std::fs::copy(one_thread(), dir.path().join("results-1thread.json")).unwrap();
    let o = report(&[s(dir.path())]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let csv = read(&dir.path().join("results.csv"));
    assert_eq!(csv.lines().count(), 9);
}

fn edit(src: &Path, dst: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&read(src)).unwrap();
    f(&mut v);
    std::fs::write(dst, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn mixed_models_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("results-other.json");
    edit(&two_threads(), &other, |v| {
        v["model"]["name"] = "gemma-3-270m".into();
        v["model"]["files"][0]["sha256"] = "0123456789abcdef".into();
    });
    let o = report(&[s(&two_threads()), s(&other), "--out", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(
        e.contains("gemma-3-270m") && e.contains("smollm2-135m-q4_1"),
        "{e}"
    );
    assert!(e.contains("--allow-mixed"), "{e}");
    assert!(!dir.path().join("report.html").exists());

    let o = report(&[
        s(&two_threads()),
        s(&other),
        "--out",
        s(dir.path()),
        "--allow-mixed",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let html = read(&dir.path().join("report.html"));
    assert!(html.contains("Different models merged (--allow-mixed)"));

    // A bad flag value names the flag and what is valid.
    let o = report(&[
        s(&two_threads()),
        "--out",
        s(dir.path()),
        "--budget",
        "8 parsecs",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("GiB"), "{}", common::stderr(&o));
}

/// A results file with task results and an items file, derived from the real 2-thread
/// results: these are renderer inputs (task accuracy is not measured yet), with markup in
/// every text field a results or items file can carry.
fn with_tasks(dir: &Path) -> PathBuf {
    let p = dir.join("results.json");
    edit(&two_threads(), &p, |v| {
        v["model"]["name"] = "smol<script>alert(\"name\")</script>".into();
        let levels = v["levels"].as_array_mut().unwrap();
        // (level, accuracy, delta, delta CI, McNemar p, lost, gained)
        let rows = [
            ("f16", 0.62, None, None, None, None, None),
            (
                "q8_0",
                0.61,
                Some(-0.01),
                Some((-0.04, 0.02)),
                Some(0.62),
                Some(5),
                Some(3),
            ),
            (
                "q4_k_m",
                0.57,
                Some(-0.05),
                Some((-0.09, -0.01)),
                Some(0.01),
                Some(14),
                Some(4),
            ),
            (
                "q2_k",
                0.31,
                Some(-0.31),
                Some((-0.37, -0.25)),
                Some(1e-9),
                Some(70),
                Some(8),
            ),
        ];
        for (l, row) in levels.iter_mut().zip(rows) {
            assert_eq!(l["level"], row.0);
            let task = |name: &str, metric: &str, off: f64| {
                serde_json::json!({
                    "task": name, "kind": "choice", "metric": metric,
                    "value": row.1 + off, "ci_low": row.1 + off - 0.04, "ci_high": row.1 + off + 0.04,
                    "n": 200,
                    "delta_vs_reference": row.2,
                    "delta_ci_low": row.3.map(|c: (f64, f64)| c.0),
                    "delta_ci_high": row.3.map(|c: (f64, f64)| c.1),
                    "mcnemar_p": row.4, "flips_lost": row.5, "flips_gained": row.6,
                    "min_detectable_delta": row.2.map(|_| 0.035),
                    "seconds": 12.0, "items_per_sec": 16.7
                })
            };
            l["tasks"] = serde_json::json!([
                task("hellaswag", "acc", 0.0),
                task("hellaswag", "acc_norm", 0.02),
                task("arc<b>", "acc", -0.1)
            ]);
        }
    });
    let items = [
        ("f16", true, "Paris"),
        ("q4_k_m", false, "Lyon\"><script>alert('item')</script>"),
    ];
    let mut text = String::new();
    for (level, correct, pred) in items {
        text.push_str(
            &serde_json::json!({
                "level": level, "task": "hellaswag", "id": "hs-17", "correct": correct,
                "prediction": pred, "gold": "Paris",
                "prompt": "The capital of France is <img src=x onerror=alert(1)>"
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(dir.join("items.jsonl"), text).unwrap();
    p
}

#[test]
fn tasks_and_items_render_and_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let p = with_tasks(dir.path());
    let o = report(&[s(&p)]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // The recommendation speaks about tasks, and says when a drop is within noise.
    assert!(stdout.contains("indistinguishable from f16"), "{stdout}");

    let html = read(&dir.path().join("report.html"));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img src=x"));
    assert!(html.contains("smol&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;"));
    assert!(html.contains("Lyon&quot;&gt;&lt;script&gt;alert(&#39;item&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("arc&lt;b&gt;"));
    assert!(html.contains("id=\"task-table\""));
    assert!(html.contains("−14 / +4"), "flips lost / gained");
    assert!(html.contains("Where levels disagreed with the reference"));
    assert!(html.contains("id=\"fig-tasks\""));

    let md = read(&dir.path().join("summary.md"));
    assert!(md.contains("## Tasks"));
    assert!(!md.contains("<script"));
    let tasks = read(&dir.path().join("tasks.csv"));
    assert_eq!(tasks.lines().count(), 1 + 4 * 3);
    assert_eq!(png_size(&dir.path().join("tasks.png")), (1100, 720));
    assert!(dir.path().join("acc_vs_memory.svg").exists());
    let svg = read(&dir.path().join("acc_vs_memory.svg"));
    assert!(!svg.contains("<script"), "SVG text escaped");
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(n))
                    .find(|p| p.is_file())
            })
        })
}

fn headless(chrome: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .args(args)
        .output()
        .expect("run chromium")
}

#[test]
fn html_renders_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not on PATH (.ci/run installs Debian's chromium)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = with_tasks(dir.path());
    let o = report(&[s(&p), s(&one_thread()), "--allow-mixed"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let url = format!("file://{}", dir.path().join("report.html").display());
    let profile = dir.path().join("chrome-profile");
    let profile_arg = format!("--user-data-dir={}", profile.display());

    let o = headless(&chrome, &[&profile_arg, "--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && dom.contains("</html>"),
        "{}",
        common::stderr(&o)
    );
    // The page's script ran: it marks sortable tables and counts decoded images.
    assert!(
        dom.contains("sortable sortable-ready"),
        "script did not run"
    );
    let imgs = dom.matches("<img").count();
    assert!(imgs >= 9, "{imgs} images");
    assert!(
        dom.contains(&format!("data-images-decoded=\"{imgs}\"")),
        "every inline PNG decoded in the browser"
    );
    assert!(dom.contains("<table id=\"levels\""));
    assert!(dom.matches("<tr").count() > 8);

    let shot = dir.path().join("screenshot.png");
    let o = headless(
        &chrome,
        &[
            &profile_arg,
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
            &url,
        ],
    );
    assert!(shot.exists(), "no screenshot: {}", common::stderr(&o));
    assert_eq!(png_size(&shot), (1280, 2000));
    if let Some(keep) = std::env::var_os("QEVAL_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
