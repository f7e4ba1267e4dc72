//! Reference packs end to end on the real SmolLM2 file: a run writes one, levels measured
//! against it in one process and as shards in separate processes give bit-identical numbers,
//! the exact metrics (perplexity, top-1, Δp) equal the streamed run's, `qeval report DIR`
//! merges the shards with the pack's reference, and what does not match a pack is refused.

mod common;

use qeval::results::{LevelResult, Results};
use std::path::Path;

/// What the reference measures: a pack records these, and its levels take them from it.
const SCORED: &[&str] = &["--ctx", "256", "--chunks", "3", "--limit", "6"];

/// How every run benchmarks (a level run against a pack may still set these).
const BENCH: &[&str] = &[
    "--repeats",
    "1",
    "--prompt-tokens",
    "32",
    "--gen-tokens",
    "4",
    "--quiet",
];

fn ok(args: &[&str]) -> String {
    let o = common::run(args);
    assert!(
        o.status.success(),
        "qeval {} failed: {}",
        args.join(" "),
        common::stderr(&o)
    );
    common::stderr(&o)
}

fn refused(args: &[&str]) -> String {
    let o = common::run(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "qeval {} should be refused: {}",
        args.join(" "),
        common::stderr(&o)
    );
    common::stderr(&o)
}

fn level<'a>(r: &'a Results, name: &str) -> &'a LevelResult {
    r.levels
        .iter()
        .find(|l| l.level == name)
        .unwrap_or_else(|| panic!("no level {name}"))
}

/// Every quality number of a level, as bits.
fn quality_bits(l: &LevelResult) -> Vec<Option<u64>> {
    let mut v: Vec<Option<u64>> = [
        l.perplexity,
        l.perplexity_se,
        l.kld_mean,
        l.kld_mean_se,
        l.kld_median,
        l.kld_p99,
        l.kld_max,
        l.top1_agreement,
        l.rms_delta_p,
    ]
    .iter()
    .map(|x| x.map(f64::to_bits))
    .collect();
    for t in &l.tasks {
        v.push(Some(t.value.to_bits()));
        v.push(t.delta_vs_reference.map(|d| d.to_bits()));
        v.push(t.mcnemar_p.map(|d| d.to_bits()));
    }
    v
}

#[test]
fn shards_against_a_pack_match_one_process_bit_for_bit_and_merge_into_one_report() {
    let model = common::model("smollm2-135m-q4_1");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let f = full.to_str().unwrap();
    // A plain run: exact KLD, and a pack of its reference beside results.json.
    let mut args = vec!["run", "--model", m, "--quants", "f16,q8_0,q2_k", "--out", f];
    args.extend_from_slice(SCORED);
    args.extend_from_slice(BENCH);
    ok(&args);
    let exact = Results::load(&full.join("results.json")).unwrap();
    let pack = full.join("reference.qref");
    let written = exact
        .pack_written
        .clone()
        .expect("the run records its pack");
    assert_eq!(written.top_k, 64);
    assert_eq!(written.scored_tokens, exact.evalset.scored_tokens);
    assert!(
        written.bytes_per_token < 1024.0,
        "{}",
        written.bytes_per_token
    );
    let p = pack.to_str().unwrap();

    // One process, both levels, against the pack (eval set, ctx, chunks, limit from it).
    let one = dir.path().join("one");
    let mut args = vec!["run", "--reference-pack", p, "--quants", "q8_0,q2_k"];
    args.extend_from_slice(&["--out", one.to_str().unwrap()]);
    args.extend_from_slice(BENCH);
    ok(&args);
    let single = Results::load(&one.join("results-q8_0+q2_k.json")).unwrap();
    assert_eq!(
        single.kld_from_pack.as_ref().unwrap().sha256,
        written.sha256
    );
    assert!(single.levels.iter().all(|l| !l.is_reference));
    // Shards: one process per level, into one shared folder.
    let shared = dir.path().join("shared");
    for q in ["q2_k", "q8_0"] {
        let mut args = vec!["run", "--reference-pack", p, "--quants", q];
        args.extend_from_slice(&["--model", m, "--out", shared.to_str().unwrap()]);
        args.extend_from_slice(BENCH);
        ok(&args);
    }
    for q in ["q8_0", "q2_k"] {
        let shard = Results::load(&shared.join(format!("results-{q}.json"))).unwrap();
        assert_eq!(
            quality_bits(level(&shard, q)),
            quality_bits(level(&single, q)),
            "{q}: a shard differs from the single process"
        );
        // What a pack keeps exactly is exact: the same bits as the streamed run.
        let (a, b) = (level(&single, q), level(&exact, q));
        assert_eq!(a.perplexity, b.perplexity, "{q}");
        assert_eq!(a.top1_agreement, b.top1_agreement, "{q}");
        assert_eq!(a.rms_delta_p, b.rms_delta_p, "{q}");
        // KLD is estimated from the pack's draws: close to the exact one even on 381 tokens.
        let (ka, kb) = (a.kld_mean.unwrap(), b.kld_mean.unwrap());
        assert!(
            (ka - kb).abs() / kb < 0.05,
            "{q}: pack KLD {ka} against exact {kb}"
        );
        // Paired task statistics against the pack's reference items: the same as the run's.
        assert_eq!(a.tasks.len(), b.tasks.len());
        for (ta, tb) in a.tasks.iter().zip(&b.tasks) {
            assert_eq!(ta.value, tb.value, "{q} {}", ta.task);
            assert_eq!(
                ta.delta_vs_reference, tb.delta_vs_reference,
                "{q} {}",
                ta.task
            );
        }
    }
    // The reference lands in the shared folder once; the report merges all three files.
    assert!(shared.join("results-reference.json").is_file());
    assert!(shared.join("items-reference.jsonl").is_file());
    ok(&["report", shared.to_str().unwrap()]);
    let csv = std::fs::read_to_string(shared.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].contains(",f16,ok,true,"), "reference first: {csv}");
    // ΔPPL of a shard's level is against the pack's reference, whose row is in another file.
    let mut table = csv::Reader::from_reader(csv.as_bytes());
    let head = table.headers().unwrap().clone();
    let at = |name: &str| head.iter().position(|c| c == name).unwrap();
    let ref_ppl = level(&exact, "f16").perplexity.unwrap();
    let mut seen = 0;
    for rec in table.records() {
        let rec = rec.unwrap();
        let q = &rec[at("level")];
        if q == "f16" {
            continue;
        }
        let dppl: f64 = rec[at("dppl_pct")]
            .parse()
            .unwrap_or_else(|e| panic!("{q}: no ΔPPL in {rec:?}: {e}"));
        let want = (level(&single, q).perplexity.unwrap() / ref_ppl - 1.0) * 100.0;
        assert!(
            (dppl - want).abs() < 1e-3,
            "{q}: ΔPPL {dppl}, expected {want}"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);

    // `qeval reference` makes a pack of the same run: the same records, so the same numbers.
    let refdir = dir.path().join("ref");
    let rp = refdir.join("smol.qref");
    let mut args = vec!["reference", "--model", m, "--quants", "f16"];
    args.extend_from_slice(&["--out", rp.to_str().unwrap()]);
    args.extend_from_slice(SCORED);
    args.extend_from_slice(BENCH);
    ok(&args);
    assert!(refdir.join("results-reference.json").is_file());
    let mut args = vec![
        "run",
        "--reference-pack",
        rp.to_str().unwrap(),
        "--quants",
        "q2_k",
    ];
    args.extend_from_slice(BENCH);
    ok(&args);
    let again = Results::load(&refdir.join("results-q2_k.json")).unwrap();
    assert_eq!(
        quality_bits(level(&again, "q2_k")),
        quality_bits(level(&single, "q2_k"))
    );

    // A report never mixes two packs.
    let e = refused(&[
        "report",
        shared.join("results-q8_0.json").to_str().unwrap(),
        refdir.join("results-q2_k.json").to_str().unwrap(),
    ]);
    assert!(e.contains("reference pack"), "{e}");
}

#[test]
fn what_does_not_match_a_pack_is_refused_by_name() {
    let model = common::model("smollm2-135m-q4_1");
    let gemma = common::model("gemma3-270m-q4_k_m");
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("ref.qref");
    let p = pack.to_str().unwrap();
    let mut args = vec!["reference", "--model", model.to_str().unwrap(), "--out", p];
    args.extend_from_slice(SCORED);
    args.extend_from_slice(BENCH);
    args.push("--no-tasks");
    ok(&args);
    fn run<'a>(p: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["run", "--reference-pack", p];
        a.extend_from_slice(extra);
        a.extend_from_slice(BENCH);
        a
    }
    // Another model's tokenizer.
    let e = refused(&run(
        p,
        &["--model", gemma.to_str().unwrap(), "--quants", "q8_0"],
    ));
    assert!(e.contains("tokenizer differs"), "{e}");
    // The failure is also in that run's results file, as a failed level.
    let failed = Results::load(&dir.path().join("results-q8_0.json")).unwrap();
    assert!(!failed.levels[0].is_ok());
    assert!(failed.levels[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("tokenizer"));
    // Another text.
    let text = dir.path().join("other.txt");
    std::fs::write(
        &text,
        "Some other words than the eval set's, repeated. ".repeat(200),
    )
    .unwrap();
    let other = dir.path().join("other");
    let e = refused(&run(
        p,
        &[
            "--quants",
            "q8_0",
            "--text",
            text.to_str().unwrap(),
            "--out",
            other.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("text differs"), "{e}");
    // The pack's own reference, another K, no levels.
    let e = refused(&run(p, &["--quants", "f16,q8_0"]));
    assert!(e.contains("f16 is the reference"), "{e}");
    let e = refused(&run(p, &["--quants", "q8_0", "--top-k", "8"]));
    assert!(e.contains("--top-k"), "{e}");
    let e = refused(&run(p, &[]));
    assert!(e.contains("--quants"), "{e}");
    // Not a pack, and a pack cut short.
    let junk = dir.path().join("junk.qref");
    std::fs::write(&junk, b"not a pack at all").unwrap();
    let e = refused(&[
        "run",
        "--reference-pack",
        junk.to_str().unwrap(),
        "--quants",
        "q8_0",
    ]);
    assert!(e.contains("not a qeval reference pack"), "{e}");
    let bytes = std::fs::read(&pack).unwrap();
    let cut = dir.path().join("cut.qref");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = common::run(&[
        "run",
        "--reference-pack",
        cut.to_str().unwrap(),
        "--quants",
        "q8_0",
        "--quiet",
    ]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    assert!(e.contains("cut short") || e.contains("damaged"), "{e}");
    assert!(Path::new(&cut).exists());
}
