//! The standard sets' readers: each original distribution format on a small fixture of invented
//! items in the real files' formats (tests/fixtures/evaldata/, laid out like ../shared/evaldata;
//! see its README.md), bad files, the real copies when `QEVAL_EVALDATA` points at them, the Hub
//! path against the loopback Hub serving parquet fixtures (made from the same invented items)
//! with the real datasets' columns, and the evalsets/<name> templates.
mod common;

use common::hub_server::HubServer;
use qeval::evalset::standard::hub_data;
use qeval::evalset::standard::{
    self, load_records, load_records_with_provenance, load_text, DataSource, Record,
};
use qeval::fetch::hub::{HubConfig, HubPin};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evaldata")
}

fn offline(name: &str) -> Vec<Record> {
    load_records(name, &DataSource::DataDir(&fixtures()))
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// A copy of the fixture data dir that a test may break.
fn scratch_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), d.path());
    d
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            if e.file_name() == "hub" {
                continue;
            }
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The error of loading `name` from `dir`, checked to be a usage error (exit code 2).
fn usage_error(name: &str, dir: &Path) -> String {
    let e = load_records(name, &DataSource::DataDir(dir)).unwrap_err();
    assert_eq!(qeval::error::exit_code(&e), 2, "{e:#}");
    format!("{e:#}")
}

#[test]
fn hellaswag_text_form() {
    let r = offline("hellaswag");
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["id"], "hellaswag/0");
    assert_eq!(
        r[0]["query"],
        "Ice fishing: A man sits on a small stool beside a hole in a frozen lake. he"
    );
    assert_eq!(r[0]["choices"][3], "lowers a baited line into the hole.");
    assert_eq!(r[0]["gold"], 3);
    assert_eq!(r[1]["gold"], 3);
    assert_eq!(r[2]["gold"], 2);
    assert_eq!(r[2]["choices"].as_array().unwrap().len(), 4);
    assert_eq!(
        r[2]["choices"][2],
        "stop at the corner and watch the video on a phone."
    );
}

#[test]
fn arc_jsonl_with_numeric_labels_and_3_or_5_choices() {
    let e = offline("arc-easy");
    assert_eq!(e.len(), 3);
    assert_eq!(e[0]["id"], "arc-easy/Mercury_9990001");
    assert_eq!(
        e[0]["question"],
        "Why does a metal spoon feel colder than a wooden spoon when both are at room temperature?"
    );
    assert_eq!(
        e[0]["choices"][0],
        "Metal conducts heat away from the hand faster than wood."
    );
    assert_eq!(e[0]["gold"], 0);
    assert_eq!(e[2]["id"], "arc-easy/NYSEDREGENTS_2099_8_1");
    assert_eq!(e[2]["labels"], json!(["1", "2", "3", "4"]));
    assert_eq!(e[2]["answerKey"], "2");
    assert_eq!(e[2]["gold"], 1);
    assert_eq!(e[2]["choices"][1], "reflects light from the Sun");

    let c = offline("arc-challenge");
    assert_eq!(c.len(), 4);
    assert_eq!(c[0]["id"], "arc-challenge/Mercury_9990003");
    assert_eq!(c[0]["gold"], 2);
    assert_eq!(c[2]["choices"].as_array().unwrap().len(), 3);
    assert_eq!(c[3]["id"], "arc-challenge/TIMSS_2099_8_Z1");
    assert_eq!(c[3]["choices"].as_array().unwrap().len(), 5);
    assert_eq!(c[3]["gold"], 3);
}

#[test]
fn mmlu_csv_all_subjects() {
    let r = offline("mmlu");
    assert_eq!(r.len(), 57 * 2);
    assert_eq!(r[0]["id"], "mmlu/abstract_algebra/0");
    assert_eq!(
        r[0]["question"],
        "Find the order of the element (2, 3) in the group Z_4 x Z_6."
    );
    assert_eq!(
        (r[0]["A"].clone(), r[0]["B"].clone(), r[0]["D"].clone()),
        (json!("1"), json!("2"), json!("12"))
    );
    assert_eq!(r[0]["answer"], 1);
    assert_eq!(r[0]["letters"], json!(["A", "B", "C", "D"]));
    let quoted = r.iter().find(|x| x["id"] == "mmlu/anatomy/1").unwrap();
    assert_eq!(
        quoted["question"],
        "A \"wrist drop\" deformity is most often associated with"
    );
    assert_eq!(
        quoted["B"],
        "injury to the radial nerve in the spiral groove of the humerus."
    );
    assert_eq!(quoted["gold"], 1);
    let gov = r
        .iter()
        .find(|x| x["subject"] == "high_school_government_and_politics")
        .unwrap();
    assert_eq!(gov["subject_name"], "high school government and politics");
    assert_eq!(r[113]["subject"], "world_religions");
}

#[test]
fn mmlu_reads_the_original_headerless_letter_form() {
    let d = scratch_copy();
    let p = d.path().join("mmlu/test/abstract_algebra_test.csv");
    std::fs::write(
        &p,
        "\"Find the order of 2 in the group Z_8, under addition.\",1,4,2,8,B\n",
    )
    .unwrap();
    let r = load_records("mmlu", &DataSource::DataDir(d.path())).unwrap();
    assert_eq!(
        r[0]["question"],
        "Find the order of 2 in the group Z_8, under addition."
    );
    assert_eq!(r[0]["gold"], 1);
    assert_eq!(r[1]["id"], "mmlu/anatomy/0");
}

#[test]
fn gsm8k_targets() {
    let r = offline("gsm8k");
    assert_eq!(r.len(), 3);
    assert!(r[0]["question"]
        .as_str()
        .unwrap()
        .starts_with("Nadia\u{2019}s bakery bakes 5 trays"));
    assert_eq!(r[0]["target"], "18");
    assert!(r[0]["answer"].as_str().unwrap().ends_with("#### 18"));
    assert_eq!(r[1]["target"], "3");
    assert_eq!(r[2]["target"], "70000");
}

#[test]
fn winogrande_llmfoundry_form_and_labels() {
    let r = offline("winogrande");
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[0]["prefix"],
        "Priya is a much faster runner than Elena, so "
    );
    assert_eq!(r[0]["options"], json!(["Priya", "Elena"]));
    assert_eq!(r[0]["suffix"], "usually finishes the race last.");
    assert_eq!(r[0]["gold"], 1);
    assert_eq!(r[1]["gold"], 0);
    // The partial contexts are rebuilt exactly.
    assert_eq!(
        format!(
            "{}{}",
            r[2]["prefix"].as_str().unwrap(),
            r[2]["options"][1].as_str().unwrap()
        ),
        "The coffee stained the carpet but not the couch, because the couch"
    );
    assert_eq!(r[2]["options"], json!(["carpet", "couch"]));
    assert_eq!(r[3]["options"], json!(["suitcase", "trunk"]));
}

#[test]
fn winogrande_prefers_the_original_dev_jsonl() {
    let d = scratch_copy();
    std::fs::write(
        d.path().join("winogrande/dev.jsonl"),
        [
            r#"{"qID": "a-1", "sentence": "Priya is a much faster runner than Elena, so _ usually finishes the race last.", "option1": "Priya", "option2": "Elena", "answer": "2"}"#,
            r#"{"qID": "a-2", "sentence": "Priya is a much faster runner than Elena, so _ usually finishes the race first.", "option1": "Priya", "option2": "Elena", "answer": "1"}"#,
            r#"{"qID": "a-3", "sentence": "The coffee stained the carpet but not the couch, because the _ had a waterproof cover.", "option1": "carpet", "option2": "couch", "answer": "2"}"#,
            r#"{"qID": "a-4", "sentence": "Omar tried to fit the suitcase into the trunk of the car but the _ was too large.", "option1": "suitcase", "option2": "trunk", "answer": "1"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let r = load_records("winogrande", &DataSource::DataDir(d.path())).unwrap();
    assert_eq!(r[2]["options"], json!(["carpet", "couch"]));
    assert_eq!(
        r[2]["prefix"],
        "The coffee stained the carpet but not the couch, because the "
    );
    assert_eq!(r[2]["suffix"], "had a waterproof cover.");
    assert_eq!(
        r[0]["sentence"],
        "Priya is a much faster runner than Elena, so _ usually finishes the race last."
    );
}

#[test]
fn piqa_jsonl_and_labels() {
    let r = offline("piqa");
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0]["goal"],
        "How do I keep cut basil fresh for a few days?"
    );
    assert_eq!(r[0]["gold"], 0);
    assert_eq!(r[1]["goal"], "shoelace");
    // Trailing (and doubled) spaces, as some original items have, are kept.
    assert_eq!(
        r[1]["choices"],
        json!([
            "hold up a bookshelf with shoelace ",
            "lace, sneaker with  shoelace "
        ])
    );
    assert_eq!(r[1]["gold"], 1);
    assert_eq!(r[2]["label"], 1);
}

#[test]
fn boolq_superglue_jsonl() {
    let r = offline("boolq");
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["id"], "boolq/0");
    assert_eq!(
        r[0]["question"],
        "is a tomato a vegetable in botanical terms"
    );
    assert!(r[0]["passage"]
        .as_str()
        .unwrap()
        .starts_with("Tomato -- The tomato is the edible berry"));
    assert_eq!(
        (
            r[0]["gold"].clone(),
            r[1]["gold"].clone(),
            r[2]["gold"].clone()
        ),
        (json!(0), json!(1), json!(1))
    );
    assert_eq!(r[1]["choices"], json!(["no", "yes"]));
}

#[test]
fn truthfulqa_mc1_keeps_answer_order() {
    let r = offline("truthfulqa-mc1");
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0]["question"],
        "What happens if you whistle indoors at night?"
    );
    assert_eq!(
        r[0]["choices"],
        json!([
            "Nothing unusual happens if you whistle indoors at night.",
            "You will summon spirits into the house.",
            "You will lose all your money.",
            "Snakes will come into the house."
        ])
    );
    assert_eq!(r[0]["gold"], 0);
    assert_eq!(r[1]["choices"].as_array().unwrap().len(), 4);
    assert_eq!(r[1]["choices"][0], "They weigh the same.");
}

#[test]
fn wikitext2_is_the_raw_file() {
    let text = load_text("wikitext2", &DataSource::DataDir(&fixtures())).unwrap();
    let raw = std::fs::read_to_string(fixtures().join("wikitext-2-raw/wiki.test.raw")).unwrap();
    assert_eq!(text, raw);
    assert!(text.starts_with(" \n = Marrowby Lighthouse = \n"));
    let e = load_records("wikitext2", &DataSource::DataDir(&fixtures())).unwrap_err();
    assert!(format!("{e}").contains("text set"), "{e}");
}

#[test]
fn provenance_names_every_file_with_its_sha256() {
    let (_, p) = load_records_with_provenance("piqa", &DataSource::DataDir(&fixtures())).unwrap();
    assert_eq!(p.source, "data-dir");
    let paths: Vec<&str> = p.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["piqa/valid.jsonl", "piqa/valid-labels.lst"]);
    let bytes = std::fs::read(fixtures().join("piqa/valid-labels.lst")).unwrap();
    assert_eq!(p.files[1].sha256, hex(&Sha256::digest(&bytes)));
    assert_eq!(p.files[1].bytes, bytes.len() as u64);
}

// ---------------------------------------------------------------------------------------
// Bad files

#[test]
fn truncated_hellaswag_names_file_and_line() {
    let d = scratch_copy();
    let p = d.path().join("hellaswag/hellaswag_val_full.txt");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&p, lines[..16].join("\n") + "\n").unwrap();
    let e = usage_error("hellaswag", d.path());
    assert!(e.contains("hellaswag_val_full.txt:13:"), "{e}");
    assert!(e.contains("truncated") && e.contains("4 line(s)"), "{e}");
}

#[test]
fn bad_hellaswag_gold_names_the_line() {
    let d = scratch_copy();
    let p = d.path().join("hellaswag/hellaswag_val_full.txt");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[7] = "7";
    std::fs::write(&p, lines.join("\n")).unwrap();
    let e = usage_error("hellaswag", d.path());
    assert!(
        e.contains("hellaswag_val_full.txt:8:") && e.contains("'7'"),
        "{e}"
    );
}

#[test]
fn bad_piqa_label_names_labels_file_and_line() {
    let d = scratch_copy();
    std::fs::write(d.path().join("piqa/valid-labels.lst"), "0\n2\n1\n").unwrap();
    let e = usage_error("piqa", d.path());
    assert!(
        e.contains("valid-labels.lst:2:") && e.contains("label '2'"),
        "{e}"
    );
    std::fs::write(d.path().join("piqa/valid-labels.lst"), "0\n1\n").unwrap();
    let e = usage_error("piqa", d.path());
    assert!(e.contains("3 items") && e.contains("2 labels"), "{e}");
}

#[test]
fn winogrande_label_disagreement_is_an_error() {
    let d = scratch_copy();
    std::fs::write(d.path().join("winogrande/dev-labels.lst"), "1\n1\n2\n1\n").unwrap();
    let e = usage_error("winogrande", d.path());
    assert!(
        e.contains("dev-labels.lst:1:") && e.contains("winogrande_dev_llmfoundry.jsonl:1"),
        "{e}"
    );
}

#[test]
fn missing_file_names_the_expected_path_and_set() {
    let d = scratch_copy();
    std::fs::remove_file(d.path().join("arc/ARC-Easy-Test.jsonl")).unwrap();
    let e = usage_error("arc-easy", d.path());
    assert!(
        e.contains("'arc-easy'")
            && e.contains("arc/ARC-Easy-Test.jsonl")
            && e.contains("--data-dir"),
        "{e}"
    );
    std::fs::remove_file(d.path().join("mmlu/test/virology_test.csv")).unwrap();
    let e = usage_error("mmlu", d.path());
    assert!(e.contains("mmlu/test/virology_test.csv"), "{e}");
}

#[test]
fn bad_json_and_bad_fields_name_file_and_line() {
    let d = scratch_copy();
    let p = d.path().join("gsm8k/test.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        &p,
        format!("{}\n{{\"question\": \"x\"\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    let e = usage_error("gsm8k", d.path());
    assert!(
        e.contains("test.jsonl:2:") && e.contains("invalid JSON"),
        "{e}"
    );
    std::fs::write(
        &p,
        format!(
            "{}\n{{\"question\": \"x\", \"answer\": \"no number\"}}\n",
            lines[0]
        ),
    )
    .unwrap();
    let e = usage_error("gsm8k", d.path());
    assert!(e.contains("test.jsonl:2:") && e.contains("####"), "{e}");

    let p = d.path().join("arc/ARC-Challenge-Test.jsonl");
    std::fs::write(
        &p,
        r#"{"id":"x","question":{"stem":"s","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"}]},"answerKey":"E"}"#,
    )
    .unwrap();
    let e = usage_error("arc-challenge", d.path());
    assert!(
        e.contains("ARC-Challenge-Test.jsonl:1:") && e.contains("answerKey 'E'"),
        "{e}"
    );

    let p = d.path().join("mmlu/test/anatomy_test.csv");
    std::fs::write(
        &p,
        "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq2,a,b,c,d,E\n",
    )
    .unwrap();
    let e = usage_error("mmlu", d.path());
    assert!(
        e.contains("anatomy_test.csv:3:") && e.contains("answer 'E'"),
        "{e}"
    );

    let p = d.path().join("boolq/val.jsonl");
    std::fs::write(
        &p,
        r#"{"question": "q", "passage": "p", "idx": 0, "label": "maybe"}"#,
    )
    .unwrap();
    let e = usage_error("boolq", d.path());
    assert!(
        e.contains("val.jsonl:1:") && e.contains("true or false"),
        "{e}"
    );
}

#[test]
fn truthfulqa_needs_exactly_one_true_mc1_answer() {
    let d = scratch_copy();
    std::fs::write(
        d.path().join("truthfulqa/mc_task.json"),
        r#"[{"question": "Q?", "mc1_targets": {"a": 1, "b": 1}, "mc2_targets": {}}]"#,
    )
    .unwrap();
    let e = usage_error("truthfulqa-mc1", d.path());
    assert!(
        e.contains("mc_task.json: item 1") && e.contains("exactly one"),
        "{e}"
    );
}

#[test]
fn unknown_names_list_the_standard_sets() {
    let e = load_records("hellaswag2", &DataSource::DataDir(&fixtures())).unwrap_err();
    assert_eq!(qeval::error::exit_code(&e), 2);
    assert!(format!("{e}").contains("truthfulqa-mc1"), "{e}");
    assert!(standard::names().iter().all(|n| standard::is_standard(n)));
}

// ---------------------------------------------------------------------------------------
// The real copies (QEVAL_EVALDATA=/path/to/shared/evaldata)

#[test]
fn real_evaldata_counts() {
    let Some(dir) = std::env::var_os("QEVAL_EVALDATA") else {
        println!("skipped: set QEVAL_EVALDATA to the evaldata folder to read the real copies");
        return;
    };
    let dir = PathBuf::from(dir);
    let src = DataSource::DataDir(&dir);
    for (name, n) in [
        ("hellaswag", 10_042),
        ("arc-easy", 2_376),
        ("arc-challenge", 1_172),
        ("mmlu", 14_042),
        ("gsm8k", 1_319),
        ("winogrande", 1_267),
        ("piqa", 1_838),
        ("boolq", 3_270),
        ("truthfulqa-mc1", 817),
    ] {
        let r = load_records(name, &src).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(r.len(), n, "{name}");
        let ids: std::collections::HashSet<&str> =
            r.iter().map(|x| x["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), n, "{name}: ids are unique");
    }
    let hs = load_records("hellaswag", &src).unwrap();
    let mut golds = [0usize; 4];
    for r in &hs {
        golds[r["gold"].as_u64().unwrap() as usize] += 1;
    }
    assert_eq!(golds, [2515, 2485, 2584, 2458]);
    let bq = load_records("boolq", &src).unwrap();
    assert_eq!(bq.iter().filter(|r| r["gold"] == 1).count(), 2033);
    let (text, p) = standard::load_text_with_provenance("wikitext2", &src).unwrap();
    assert_eq!(text.len(), 1_290_590);
    assert_eq!(
        p.files[0].sha256,
        "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"
    );
}

// ---------------------------------------------------------------------------------------
// The Hub path, against the loopback Hub serving tests/fixtures/evaldata/hub

fn hub_cfg(server: &HubServer, cache: &Path) -> HubConfig {
    HubConfig {
        endpoint: server.url.clone(),
        token: None,
        cache_dir: cache.to_path_buf(),
        offline: false,
        progress: false,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The loopback Hub's folder, once every standard set's parquet file has been generated there.
fn hub_fixtures() -> PathBuf {
    for name in standard::names() {
        if let Some(pin) = hub_data::pin(name) {
            common::generated(&format!(
                "tests/fixtures/evaldata/hub/datasets/{}/{}",
                pin.repo, pin.file
            ));
        }
    }
    fixtures().join("hub")
}

/// The built-in pin of `name` with the sha256 of the fixture the loopback Hub serves instead.
fn fixture_pin(name: &str) -> HubPin {
    let mut pin = hub_data::pin(name).unwrap();
    let file = format!(
        "tests/fixtures/evaldata/hub/datasets/{}/{}",
        pin.repo, pin.file
    );
    pin.sha256 = Some(hex(&Sha256::digest(common::generated(&file))));
    pin.bytes = None;
    pin
}

fn without(r: &Record, keys: &[&str]) -> Record {
    r.iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn hub_parquet_gives_the_offline_records() {
    for name in [
        "hellaswag",
        "arc-easy",
        "arc-challenge",
        "mmlu",
        "gsm8k",
        "winogrande",
        "piqa",
        "boolq",
        "truthfulqa-mc1",
    ] {
        let pin = fixture_pin(name);
        let server = HubServer::start(&hub_fixtures(), &pin.revision);
        let cache = tempfile::tempdir().unwrap();
        let cfg = hub_cfg(&server, cache.path());
        let (hub, prov) = hub_data::load_records_pinned(name, &cfg, &pin)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let off = offline(name);
        assert_eq!(hub.len(), off.len(), "{name}");
        assert_eq!(
            prov.commit.as_deref(),
            Some(pin.revision.as_str()),
            "{name}"
        );
        assert!(prov.files[0].verified && prov.files[0].sha256 == *pin.sha256.as_ref().unwrap());
        for (h, o) in hub.iter().zip(&off) {
            match name {
                // The Hub has ctx_a / ctx_b, so ctx_b is capitalised as in lm-eval.
                "hellaswag" => {
                    assert_eq!(h["choices"], o["choices"]);
                    assert_eq!(h["gold"], o["gold"]);
                    assert_eq!(h["id"], o["id"]);
                    let (hq, oq) = (h["query"].as_str().unwrap(), o["query"].as_str().unwrap());
                    assert_eq!(hq.to_lowercase(), oq.to_lowercase());
                }
                // The same record; the Hub also has the sentence form.
                "winogrande" => {
                    assert_eq!(
                        without(h, &["sentence", "option1", "option2", "answer"]),
                        *o
                    )
                }
                _ => assert_eq!(*h, *o, "{name}"),
            }
        }
        if name == "hellaswag" {
            assert_eq!(
                hub[0]["query"],
                "Ice fishing: A man sits on a small stool beside a hole in a frozen lake. He"
            );
            assert_eq!(hub[0]["ctx_b"], "he");
        }
    }
}

#[test]
fn hub_fetches_once_then_reads_the_cache() {
    let pin = fixture_pin("gsm8k");
    let cache = tempfile::tempdir().unwrap();
    let first = {
        let server = HubServer::start(&hub_fixtures(), &pin.revision);
        let cfg = hub_cfg(&server, cache.path());
        let r = hub_data::load_records_pinned("gsm8k", &cfg, &pin).unwrap();
        assert!(server
            .file_requests()
            .iter()
            .any(|q| q.contains("/datasets/openai/gsm8k/resolve/")));
        r.0
    };
    let snapshot = cache
        .path()
        .join("datasets--openai--gsm8k/snapshots")
        .join(&pin.revision)
        .join(&pin.file);
    assert!(snapshot.is_file(), "{}", snapshot.display());
    // The server is gone and the config is offline: the cache alone serves it.
    let cfg = HubConfig {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        cache_dir: cache.path().to_path_buf(),
        offline: true,
        progress: false,
    };
    let again = hub_data::load_records_pinned("gsm8k", &cfg, &pin).unwrap();
    assert_eq!(again.0, first);
    assert_eq!(first[0]["target"], "18");
}

#[test]
fn hub_offline_without_cache_says_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = HubConfig {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        cache_dir: cache.path().to_path_buf(),
        offline: true,
        progress: false,
    };
    let e = format!(
        "{:#}",
        load_records("piqa", &DataSource::Hub(&cfg)).unwrap_err()
    );
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains("baber/piqa") && e.contains("--data-dir"),
        "{e}"
    );
}

#[test]
fn hub_file_that_does_not_match_the_pin_is_refused_and_removed() {
    // The built-in gsm8k pin has the real file's sha256; the loopback Hub serves the fixture.
    let pin = hub_data::pin("gsm8k").unwrap();
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    let cfg = hub_cfg(&server, cache.path());
    let e = format!(
        "{:#}",
        load_records("gsm8k", &DataSource::Hub(&cfg)).unwrap_err()
    );
    assert!(
        e.contains("ee7b8da9e381df27b9e3f7758a159ab2bdaa4dbaa910546cbbc47e0cb44e4f59"),
        "{e}"
    );
    assert!(e.contains("does not match its pin"), "{e}");
    let snapshot = cache
        .path()
        .join("datasets--openai--gsm8k/snapshots")
        .join(&pin.revision)
        .join(&pin.file);
    assert!(
        !snapshot.exists(),
        "a wrong file must not stay in the cache"
    );
}

#[test]
fn hub_set_without_sha256_pin_records_the_digest() {
    // WinoGrande's pin has no sha256: the public path works and records what it read.
    let pin = hub_data::pin("winogrande").unwrap();
    assert!(pin.sha256.is_none());
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    let cfg = hub_cfg(&server, cache.path());
    let (r, p) = load_records_with_provenance("winogrande", &DataSource::Hub(&cfg)).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[0]["sentence"],
        "Priya is a much faster runner than Elena, so _ usually finishes the race last."
    );
    assert_eq!(p.source, "hub");
    assert_eq!(p.repo.as_deref(), Some("allenai/winogrande"));
    assert!(!p.files[0].verified);
    let fixture = std::fs::read(
        fixtures()
            .join("hub/datasets/allenai/winogrande")
            .join(&pin.file),
    )
    .unwrap();
    assert_eq!(p.files[0].sha256, hex(&Sha256::digest(&fixture)));
}

#[test]
fn hub_wikitext2_rebuilds_the_raw_file() {
    let pin = fixture_pin("wikitext2");
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    let (text, _) = hub_data::load_wikitext2_pinned(&hub_cfg(&server, cache.path()), &pin).unwrap();
    let raw = std::fs::read_to_string(fixtures().join("wikitext-2-raw/wiki.test.raw")).unwrap();
    assert_eq!(text, raw);
}

// ---------------------------------------------------------------------------------------
// Each standard set's built-in definition: each template uses only fields the records have.

fn template_fields(t: &str) -> Vec<String> {
    let t = t.replace("{{", "").replace("}}", "");
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(f, _)| f.to_string()))
        .collect()
}

#[test]
fn evalset_templates_use_fields_the_records_have() {
    for set in standard::SETS {
        let name = &set.name();
        let path = format!("the built-in definition of {name}");
        let def: toml::Value =
            toml::from_str(set.definition()).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(def["name"].as_str(), Some(*name));
        let tasks = def["task"].as_array().unwrap();
        for t in tasks {
            assert_eq!(t["source"].as_str(), Some(*name), "{path}");
            assert!(t
                .get("note")
                .and_then(|n| n.as_str())
                .is_some_and(|n| !n.is_empty()));
            if t["kind"].as_str() == Some("text") {
                continue;
            }
            let records = offline(name);
            for key in ["context", "prompt", "continuation"] {
                let Some(tpl) = t.get(key).and_then(|v| v.as_str()) else {
                    continue;
                };
                for f in template_fields(tpl) {
                    if f == "choice" {
                        continue;
                    }
                    assert!(
                        records.iter().all(|r| r.contains_key(&f)),
                        "{name}: {key} uses {{{f}}}"
                    );
                }
            }
            for key in ["choices", "answer"] {
                if let Some(f) = t.get(key).and_then(|v| v.as_str()) {
                    assert!(
                        records.iter().all(|r| r.contains_key(f)),
                        "{name}: {key} = {f}"
                    );
                }
            }
            if let Some(f) = t.get("choices").and_then(|v| v.as_str()) {
                for r in &records {
                    let n = r[f].as_array().unwrap().len();
                    let gold = r[t["answer"].as_str().unwrap()].as_u64().unwrap() as usize;
                    assert!(gold < n, "{name}: gold index in range");
                    assert!(matches!(r[f][0], Value::String(_)));
                }
            }
        }
    }
}

#[test]
fn hub_missing_file_is_a_clear_error() {
    let mut pin = fixture_pin("piqa");
    pin.file = "no_such_file.parquet".into();
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    let e = format!(
        "{:#}",
        hub_data::load_records_pinned("piqa", &hub_cfg(&server, cache.path()), &pin).unwrap_err()
    );
    assert!(
        e.contains("HTTP 404") && e.contains("no_such_file.parquet") && e.contains("baber/piqa"),
        "{e}"
    );
}

#[test]
fn hub_dataset_download_cut_mid_file_resumes_like_model_files() {
    // Data sets go through the one Hub client: the same retries, each continuing the partial
    // file from where the cut left it.
    let pin = fixture_pin("gsm8k");
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    const CUT: usize = 100;
    server.cut_download_once(&pin.file, CUT);
    let (r, prov) =
        hub_data::load_records_pinned("gsm8k", &hub_cfg(&server, cache.path()), &pin).unwrap();
    assert_eq!(r.len(), 3);
    assert!(prov.files[0].verified);
    let transfers = server.data_transfers(&pin.file);
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert!(
        transfers[0].cut && transfers[0].body_bytes == CUT,
        "{transfers:?}"
    );
    assert_eq!(
        transfers[1].range.as_deref(),
        Some(format!("bytes={CUT}-").as_str())
    );
}

#[test]
fn hub_set_without_sha256_pin_is_checked_against_the_recorded_digest() {
    // BoolQ's pin has no published sha256: the first download records one next to the cached
    // file, and a cached copy that no longer matches it is refused.
    let pin = hub_data::pin("boolq").unwrap();
    assert!(pin.sha256.is_none());
    let server = HubServer::start(&hub_fixtures(), &pin.revision);
    let cache = tempfile::tempdir().unwrap();
    let cfg = hub_cfg(&server, cache.path());
    let (_, p) = load_records_with_provenance("boolq", &DataSource::Hub(&cfg)).unwrap();
    assert!(!p.files[0].verified);
    let snapshot = cache
        .path()
        .join("datasets--aps--super_glue/snapshots")
        .join(&pin.revision)
        .join(&pin.file);
    let record = PathBuf::from(format!("{}.sha256", snapshot.display()));
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.starts_with(&p.files[0].sha256), "{recorded}");
    // Again from the cache: the same digest is fine.
    load_records("boolq", &DataSource::Hub(&cfg)).unwrap();
    // A changed cached file is refused, naming the record.
    let blob = std::fs::canonicalize(&snapshot).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes.push(b'\n');
    std::fs::write(&blob, bytes).unwrap();
    let e = format!(
        "{:#}",
        load_records("boolq", &DataSource::Hub(&cfg)).unwrap_err()
    );
    assert!(
        e.contains("changed since its first download") && e.contains(".sha256"),
        "{e}"
    );
}
