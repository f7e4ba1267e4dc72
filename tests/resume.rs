//! A killed run loses nothing and resumes: SIGTERM mid-run keeps the finished levels, re-running
//! the same command finishes the rest, and the final quality numbers are bit-identical to those
//! of an uninterrupted run (which is also the two-run determinism check on CPU). A resume into
//! an --out that measured something else is refused.

mod common;

use qeval::results::{LevelResult, Results, RunStatus};
use std::path::Path;
use std::time::{Duration, Instant};

/// A small run of `model` into `out`: levels, chunks and items given, the rest fixed.
fn run_args<'a>(model: &'a str, out: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--model",
        model,
        "--out",
        out,
        "--ctx",
        "256",
        "--repeats",
        "1",
        "--prompt-tokens",
        "32",
        "--gen-tokens",
        "4",
        "--threads",
        "2",
        "--quiet",
    ];
    v.extend_from_slice(more);
    v
}

fn args<'a>(model: &'a str, out: &'a str, seed: &'a str) -> Vec<&'a str> {
    run_args(
        model,
        out,
        &[
            "--quants",
            "q8_0,q4_0,q2_k",
            "--chunks",
            "2",
            "--limit",
            "4",
            "--seed",
            seed,
        ],
    )
}

/// Everything a level measured about quality (speed and memory vary from run to run).
fn quality(l: &LevelResult) -> String {
    let tasks: Vec<String> = l
        .tasks
        .iter()
        .map(|t| {
            format!(
                "{}/{}={:?},{:?},{:?},{:?},{:?}",
                t.task,
                t.metric,
                t.value,
                t.delta_vs_reference,
                t.delta_ci_low,
                t.flips_lost,
                t.mcnemar_p
            )
        })
        .collect();
    format!(
        "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
        l.level,
        l.perplexity,
        l.kld_mean,
        l.kld_p99,
        l.top1_agreement,
        l.rms_delta_p,
        l.weight_bytes,
        l.scored_tokens,
        tasks.join(" ")
    )
}

/// Poll `done` until it holds, while `child` runs (at most 10 minutes).
fn wait_until(child: &mut std::process::Child, what: &str, done: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(600), "{what}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real SmolLM2 file, as a path string.
fn model() -> String {
    common::model("smollm2-135m-q4_1")
        .to_string_lossy()
        .into_owned()
}

fn ok_levels(p: &Path) -> usize {
    Results::load(p)
        .map(|r| r.levels.iter().filter(|l| l.is_ok()).count())
        .unwrap_or(0)
}

#[test]
fn killed_run_resumes_to_the_same_numbers() {
    let (d, model) = (tempfile::tempdir().unwrap(), model());
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let (model, a_s, b_s) = (model.as_str(), a.to_str().unwrap(), b.to_str().unwrap());

    let o = common::run(&args(model, a_s, "5"));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let full = Results::load(&a.join("results.json")).unwrap();
    assert_eq!(full.status, RunStatus::Complete);

    // Start the same run into b and stop it with SIGTERM once the first level is saved.
    let mut child = common::qeval().args(args(model, b_s, "5")).spawn().unwrap();
    wait_until(&mut child, "first level never finished", || {
        ok_levels(&b.join("results.json")) >= 1
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a stopped run exits 130");
    let part = Results::load(&b.join("results.json")).unwrap();
    assert_eq!(part.status, RunStatus::Interrupted);
    let done = part.levels.iter().filter(|l| l.is_ok()).count();
    assert!((1..3).contains(&done), "{done} levels done");
    assert!(
        b.join("report.html").exists(),
        "reports are written for the part done"
    );

    // A different measurement into the same folder is refused, naming what differs.
    let o = common::run(&args(model, b_s, "6"));
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(e.contains("--seed") && e.contains("another --out"), "{e}");
    // So is another benchmark length (read from the levels already done).
    let mut other = args(model, b_s, "5");
    let at = other.iter().position(|a| *a == "--prompt-tokens").unwrap();
    other[at + 1] = "48";
    let o = common::run(&other);
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(
        e.contains("benchmark tokens: pp32 tg4 there, pp48 tg4 now"),
        "{e}"
    );

    // The same command finishes the rest.
    let o = common::run(&args(model, b_s, "5"));
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("resuming"));
    let resumed = Results::load(&b.join("results.json")).unwrap();
    assert_eq!(resumed.status, RunStatus::Complete);
    let q = |r: &Results| r.levels.iter().map(quality).collect::<Vec<_>>();
    assert_eq!(
        q(&resumed),
        q(&full),
        "resumed run differs from the uninterrupted one"
    );
    // Per-item answers are complete too: 3 levels x (choice + generate) x 4 items.
    let items = std::fs::read_to_string(b.join("items.jsonl")).unwrap();
    assert_eq!(items.lines().count(), 24);
    assert!(
        !b.join(".work").exists(),
        "scratch files are removed once complete"
    );
}

fn task_args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    run_args(
        model,
        out,
        &[
            "--quants",
            "q8_0",
            "--chunks",
            "1",
            "--limit",
            "200",
            "--keep-work",
        ],
    )
}

/// Lines of a file (0 when it does not exist).
fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A level killed outright (SIGKILL to the whole process group, as a power cut or the end of a
/// session does) in the middle of a task keeps the batches it finished: the same command
/// continues from them, kept byte for byte, and ends with the same answers as a run that was
/// never stopped.
#[test]
fn level_killed_mid_task_resumes_from_its_item_checkpoint() {
    use std::os::unix::process::CommandExt;
    let (d, model) = (tempfile::tempdir().unwrap(), model());
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let (model, a_s, b_s) = (model.as_str(), a.to_str().unwrap(), b.to_str().unwrap());

    let o = common::run(&task_args(model, a_s));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let full = Results::load(&a.join("results.json")).unwrap();

    let cp = b.join(".work").join("outcome-q8_0.task0.jsonl");
    let mut child = common::qeval()
        .args(task_args(model, b_s))
        .process_group(0)
        .spawn()
        .unwrap();
    // Header and at least one batch of 64 choice items written.
    wait_until(&mut child, "no choice batch checkpointed", || {
        lines(&cp) >= 2
    });
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    let before = std::fs::read_to_string(&cp).unwrap();
    let kept: Vec<&str> = before.lines().filter(|l| l.ends_with('}')).collect();
    assert!(kept.len() >= 2 && kept.len() < 5, "{} lines", kept.len());

    let o = common::run(&task_args(model, b_s));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let after = std::fs::read_to_string(&cp).unwrap();
    for (i, l) in kept.iter().enumerate().skip(1) {
        assert_eq!(
            after.lines().nth(i),
            Some(*l),
            "batch {i} was scored again instead of kept"
        );
    }
    assert_eq!(after.lines().count(), 1 + 200usize.div_ceil(64));
    let resumed = Results::load(&b.join("results.json")).unwrap();
    assert_eq!(resumed.status, RunStatus::Complete);
    let q = |r: &Results| r.levels.iter().map(quality).collect::<Vec<_>>();
    assert_eq!(q(&resumed), q(&full), "resumed level differs");
    let items = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_to_string(p.join("items.jsonl"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(items(&b), items(&a), "per-item answers differ");
}

/// A reference that fails when a resumed run measures it again (its streamed log-probabilities
/// were gone, and the file it is taken from now holds another model) marks the levels still to
/// run as not run, keeps the levels already done, and lists every level once.
#[test]
fn reference_failing_on_resume_lists_each_level_once() {
    let smol = model();
    let gemma = common::model("gemma3-270m-q4_k_m");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let f16 = dir.path().join("f16.gguf");
    std::os::unix::fs::symlink(&smol, &f16).unwrap();
    let gguf = format!("f16={}", f16.display());
    let first = common::run(&run_args(
        &smol,
        out_s,
        &[
            "--quants",
            "f16,q8_0",
            "--gguf",
            &gguf,
            "--chunks",
            "1",
            "--no-tasks",
        ],
    ));
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    assert_eq!(ok_levels(&out.join("results.json")), 2);

    std::fs::remove_file(&f16).unwrap();
    std::os::unix::fs::symlink(&gemma, &f16).unwrap();
    let second = common::run(&run_args(
        &smol,
        out_s,
        &[
            "--quants",
            "f16,q8_0,q4_0",
            "--gguf",
            &gguf,
            "--chunks",
            "1",
            "--no-tasks",
        ],
    ));
    let err = common::stderr(&second);
    assert_eq!(second.status.code(), Some(3), "{err}");
    let r = Results::load(&out.join("results.json")).unwrap();
    let names: Vec<&str> = r.levels.iter().map(|l| l.level.as_str()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len(), "a level listed twice: {names:?}");
    assert_eq!(unique, ["f16", "q4_0", "q8_0"]);
    let get = |n: &str| r.levels.iter().find(|l| l.level == n).unwrap();
    assert!(!get("f16").is_ok());
    assert!(
        get("f16")
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("not the same model"),
        "{:?}",
        get("f16").error
    );
    assert!(get("q8_0").is_ok(), "a level already done is kept");
    assert!(get("q4_0")
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("the reference level failed"));
}
