//! `qeval sweep` end to end on the real SmolLM2 file: here (one job after another), and through
//! a real Slurm (`scripts/slurm-local.sh start`, which .ci/run runs) as a reference job, job
//! arrays with `afterok` and a report job with `afterany`, including a level that fails (its
//! array task fails, the report still runs and shows it) and the numbers of the merged report
//! against a single `qeval run --reference-pack` of the same levels.

mod common;

use qeval::results::Results;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FLAGS: &[&str] = &[
    "--chunks",
    "2",
    "--ctx",
    "256",
    "--limit",
    "4",
    "--repeats",
    "1",
    "--threads",
    "1",
];

fn sweep(args: &[&str]) -> std::process::Output {
    let mut a = vec!["sweep"];
    a.extend_from_slice(args);
    common::run(&a)
}

fn model_dir(out: &Path) -> std::path::PathBuf {
    out.join("SmolLM2-135M-Instruct.Q4_1")
}

/// Whether a Slurm cluster answers here (CI starts one; QEVAL_REQUIRE_SLURM=1 makes its absence
/// a failure rather than a skip).
fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && {
                let s = String::from_utf8_lossy(&o.stdout);
                s.contains("idle") || s.contains("mix") || s.contains("alloc")
            }
        });
    if !up && std::env::var("QEVAL_REQUIRE_SLURM").is_ok_and(|v| v == "1") {
        panic!("QEVAL_REQUIRE_SLURM=1 but no Slurm node answers sinfo: run scripts/slurm-local.sh start");
    }
    up
}

#[test]
fn a_local_sweep_runs_the_reference_then_the_levels_then_the_report_and_resumes() {
    let model = common::model("smollm2-135m-q4_1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sw");
    let o = out.to_str().unwrap();
    let mut args = vec![
        "--models",
        model.to_str().unwrap(),
        "--quants",
        "f16,q2_k",
        "--out",
        o,
    ];
    args.extend_from_slice(FLAGS);
    let r = sweep(&args);
    assert!(r.status.success(), "{}", common::stderr(&r));
    let md = model_dir(&out);
    for f in [
        "reference.qref",
        "reference.sbatch",
        "levels-cpu.sbatch",
        "results-q2_k.json",
        "results-reference.json",
        "report.html",
    ] {
        assert!(md.join(f).is_file(), "{f} missing");
    }
    let script = std::fs::read_to_string(md.join("levels-cpu.sbatch")).unwrap();
    assert!(
        script.contains("--reference-pack") && script.contains("SLURM_ARRAY_TASK_ID"),
        "{script}"
    );
    let q2 = Results::load(&md.join("results-q2_k.json")).unwrap();
    assert!(q2.levels[0].is_ok() && q2.levels[0].kld_mean.unwrap() > 0.1);
    // Status from the files; a second run has nothing left to do and keeps the results.
    let s = sweep(&["--status", o]);
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("q2_k") && text.contains("done"), "{text}");
    let before = std::fs::read(md.join("results-q2_k.json")).unwrap();
    let r = sweep(&args);
    assert!(r.status.success(), "{}", common::stderr(&r));
    assert_eq!(std::fs::read(md.join("results-q2_k.json")).unwrap(), before);
    // Another sweep into the same folder is refused, naming the folder.
    let mut other = args.clone();
    other[3] = "f16,q8_0";
    let r = sweep(&other);
    assert_eq!(r.status.code(), Some(2), "{}", common::stderr(&r));
    assert!(common::stderr(&r).contains("sweep.json"));
}

#[test]
fn slurm_missing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sw");
    let r = common::qeval()
        .args([
            "sweep",
            "--models",
            "smollm2-135m-q4_1",
            "--quants",
            "f16,q2_k",
            "--slurm",
            "--out",
        ])
        .arg(&out)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let e = common::stderr(&r);
    assert!(e.contains("sbatch") && e.contains("Slurm"), "{e}");
    // The scripts are there to read, edit or submit by hand.
    assert!(out.join("smollm2-135m-q4_1/reference.sbatch").is_file());
}

/// The state Slurm gives job `id` (array tasks: one line each), from squeue -t all.
fn states(id: &str) -> Vec<String> {
    let o = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i %T", "-j", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_slurm_sweep_runs_as_job_arrays_and_reports_a_failed_level() {
    if !slurm_up() {
        eprintln!("skipped: no Slurm cluster (scripts/slurm-local.sh start)");
        return;
    }
    let model = common::model("smollm2-135m-q4_1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sw");
    let o = out.to_str().unwrap();
    // cuda levels on this CPU-only build fail when their job starts: a real failing array task.
    let mut args = vec![
        "--models",
        model.to_str().unwrap(),
        "--quants",
        "f16,q8_0,q2_k",
        "--devices",
        "cpu,cuda",
        "--out",
        o,
        "--slurm",
        "--time",
        "30:00",
        // This cluster has no GPUs as Slurm resources: ask for none, so the jobs are accepted
        // and fail where a cuda level would fail on a node without CUDA.
        "--gpus-per-task",
        "0",
    ];
    args.extend_from_slice(FLAGS);
    let r = sweep(&args);
    let said = String::from_utf8_lossy(&r.stdout).to_string();
    assert!(r.status.success(), "{said}{}", common::stderr(&r));
    let jobs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("jobs.json")).unwrap()).unwrap();
    let report = jobs["jobs"]["report"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let s = states(&report);
        if s.iter()
            .any(|l| l.contains("COMPLETED") || l.contains("FAILED"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "report job still {s:?}"
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let md = model_dir(&out);
    let name = model.to_str().unwrap();
    let cpu = jobs["jobs"][format!("{name} levels cpu")].as_str().unwrap();
    let cuda = jobs["jobs"][format!("{name} levels cuda")]
        .as_str()
        .unwrap();
    let cpu_states = states(cpu);
    assert_eq!(cpu_states.len(), 2, "{cpu_states:?}");
    assert!(
        cpu_states.iter().all(|l| l.ends_with("COMPLETED")),
        "{cpu_states:?}"
    );
    let cuda_states = states(cuda);
    assert!(
        cuda_states.iter().all(|l| l.ends_with("FAILED")),
        "{cuda_states:?}"
    );
    assert!(states(&report).iter().all(|l| l.ends_with("COMPLETED")));
    // The merged report shows the cuda levels as failed, with the reason.
    let csv = std::fs::read_to_string(md.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
    let cuda_rows: Vec<&str> = csv.lines().filter(|l| l.contains(",cuda,")).collect();
    assert_eq!(cuda_rows.len(), 2, "{csv}");
    assert!(cuda_rows.iter().all(|l| l.contains(",failed,")), "{csv}");
    let html = std::fs::read_to_string(md.join("report.html")).unwrap();
    // Built without the cuda feature, or with it but no NVIDIA driver (CI's stub libcuda).
    let why = if cfg!(feature = "cuda") {
        "no CUDA driver"
    } else {
        "without CUDA"
    };
    assert!(
        html.contains(why),
        "the report names why the cuda levels failed"
    );
    // The merged report's numbers are those of one `qeval run` of the same levels against the
    // same pack.
    let single = dir.path().join("single");
    let o = common::run(&[
        "run",
        "--reference-pack",
        md.join("reference.qref").to_str().unwrap(),
        "--quants",
        "q8_0,q2_k",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        single.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let one = Results::load(&single.join("results-q8_0+q2_k.json")).unwrap();
    for q in ["q8_0", "q2_k"] {
        let shard = Results::load(&md.join(format!("results-{q}.json"))).unwrap();
        let (a, b) = (
            &shard.levels[0],
            one.levels.iter().find(|l| l.level == q).unwrap(),
        );
        assert_eq!(a.perplexity, b.perplexity, "{q}");
        assert_eq!(a.kld_mean, b.kld_mean, "{q}");
        assert_eq!(a.top1_agreement, b.top1_agreement, "{q}");
    }
    // Against a plain `qeval run` of the same levels (exact KLD from the streamed reference):
    // perplexity and top-1 agreement are the same bits, KLD close.
    let plain = dir.path().join("plain");
    let mut a = vec![
        "run",
        "--model",
        name,
        "--quants",
        "f16,q8_0,q2_k",
        "--quiet",
        "--out",
        plain.to_str().unwrap(),
    ];
    a.extend_from_slice(FLAGS);
    let o = common::run(&a);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let exact = Results::load(&plain.join("results.json")).unwrap();
    for q in ["q8_0", "q2_k"] {
        let shard = Results::load(&md.join(format!("results-{q}.json"))).unwrap();
        let (a, b) = (
            &shard.levels[0],
            exact.levels.iter().find(|l| l.level == q).unwrap(),
        );
        assert_eq!(a.perplexity, b.perplexity, "{q}");
        assert_eq!(a.top1_agreement, b.top1_agreement, "{q}");
        let (ka, kb) = (a.kld_mean.unwrap(), b.kld_mean.unwrap());
        assert!((ka - kb).abs() / kb < 0.05, "{q}: {ka} against exact {kb}");
    }
    // Re-running submits only the failed levels (the reference and cpu levels are done).
    let r = sweep(&args);
    let said = String::from_utf8_lossy(&r.stdout).to_string();
    assert!(r.status.success(), "{said}{}", common::stderr(&r));
    assert!(!said.contains("reference f16"), "{said}");
    assert!(
        said.contains("on cuda") && !said.contains("on cpu"),
        "{said}"
    );
    let status = sweep(&["--status", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("slurm jobs"), "{text}");
}
