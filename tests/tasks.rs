//! Task accuracy on the real small models: batched choice scoring equals scoring each choice on
//! its own, decoding inverts encoding, and `qeval run` scores choice and generate tasks of an
//! eval set with paired statistics and a per-item file.

mod common;

use qeval::eval::tasks::{score_choice, ChoiceTokens};
use qeval::model::source::ModelSource;
use qeval::model::tokenizer::gguf_tokenizer;
use qeval::model::transformer::Transformer;
use qeval::quant::quantize;
use qeval::results::Results;
use std::path::Path;

/// The model at f32 (dense matmuls, so passes of different shapes agree to float rounding).
fn load_model(name: &str, max_seq: usize, dir: &Path) -> Transformer {
    let path = common::model(name);
    let src = ModelSource::open(&path).unwrap();
    let w = quantize::quantize(&src, qeval::quant::Level::F32, &|| {}).unwrap();
    let f = dir.join("level.gguf");
    quantize::write_level_file(&f, &src.config, &w).unwrap();
    let dev = candle_core::Device::Cpu;
    let (cfg, t) = quantize::read_level_file(&f, &dev).unwrap();
    Transformer::new(&cfg, t, max_seq, &dev).unwrap()
}

/// Sum of log-probs of `cont` after `ctx` by plain forward passes: the first `split` tokens in
/// one call (0: none), the rest of ctx + cont in a second.
fn plain_logprob(m: &mut Transformer, ctx: &[u32], cont: &[u32], split: usize) -> f64 {
    m.reset();
    if split > 0 {
        m.forward(&ctx[..split], split - 1).unwrap();
    }
    let all: Vec<u32> = ctx[split..].iter().chain(cont).copied().collect();
    let logits = m.forward(&all, ctx.len() - split - 1).unwrap();
    let rows = logits.to_vec2::<f32>().unwrap();
    let mut buf = vec![0f32; rows[0].len()];
    let mut sum = 0f64;
    for (j, &t) in cont.iter().enumerate() {
        qeval::eval::metrics::log_softmax(&rows[j], &mut buf);
        sum += buf[t as usize] as f64;
    }
    sum
}

#[test]
fn batched_choices_equal_separate_passes() {
    for name in ["smollm2-135m-q4_1", "gemma3-270m-q4_k_m"] {
        let d = tempfile::tempdir().unwrap();
        let mut m = load_model(name, 256, d.path());
        let tok = gguf_tokenizer(&common::model(name)).unwrap();
        let ctx = tok
            .encode(
                "Question: Which ocean is the largest by area?\nAnswer:",
                tok.add_bos,
            )
            .unwrap();
        let conts: Vec<Vec<u32>> = [" The Pacific Ocean", " The Atlantic", " A lake", " Mars"]
            .iter()
            .map(|c| tok.encode(c, false).unwrap())
            .collect();
        // Per-choice contexts that share a prefix (WinoGrande style) go through the same path.
        let ctx2 = tok
            .encode("The trophy did not fit because the", tok.add_bos)
            .unwrap();
        let item = ChoiceTokens {
            id: "x".into(),
            options: conts.iter().map(|k| (ctx.clone(), k.clone())).collect(),
            cont_bytes: vec![18, 13, 7, 5],
            gold: 0,
        };
        let item2 = ChoiceTokens {
            id: "y".into(),
            options: vec![
                (
                    [ctx2.clone(), tok.encode(" trophy", false).unwrap()].concat(),
                    tok.encode(" was too big.", false).unwrap(),
                ),
                (
                    [ctx2.clone(), tok.encode(" suitcase", false).unwrap()].concat(),
                    tok.encode(" was too big.", false).unwrap(),
                ),
            ],
            cont_bytes: vec![13, 13],
            gold: 0,
        };
        let out = score_choice(&mut m, &[item.clone(), item2.clone()], 256, &|_| {}).unwrap();
        for (it, o) in [(&item, &out[0]), (&item2, &out[1])] {
            // The shared prefix score_choice caches: common tokens, leaving each option one.
            let p = qeval::eval::tasks::shared_prefix(&it.options);
            for (i, (c, k)) in it.options.iter().enumerate() {
                // Same split, one choice at a time: equal up to float rounding.
                let separate = plain_logprob(&mut m, c, k, p);
                assert!(
                    (separate - o.logprobs[i]).abs() < 1e-3 * separate.abs().max(1.0),
                    "{name} item {} option {i}: batched {} vs separate {separate}",
                    it.id,
                    o.logprobs[i]
                );
                // One pass over everything.
                let whole = plain_logprob(&mut m, c, k, 0);
                assert!(
                    (whole - o.logprobs[i]).abs() < 1e-3 * whole.abs().max(1.0),
                    "{name} item {} option {i}: batched {} vs one pass {whole}",
                    it.id,
                    o.logprobs[i]
                );
            }
        }
        // With a cache too small for all choices at once, they are scored one at a time, the same.
        let longest = item
            .options
            .iter()
            .map(|(c, k)| c.len() + k.len())
            .max()
            .unwrap();
        let mut small = load_model(name, longest, d.path());
        let one_by_one =
            score_choice(&mut small, std::slice::from_ref(&item), longest, &|_| {}).unwrap();
        for (a, b) in one_by_one[0].logprobs.iter().zip(&out[0].logprobs) {
            assert!(
                (a - b).abs() < 1e-3 * b.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
        // The model knows the largest ocean.
        assert_eq!(out[0].pick_acc, 0, "{name}: {:?}", out[0].logprobs);
    }
}

#[test]
fn decode_inverts_encode() {
    for name in ["smollm2-135m-q4_1", "gemma3-270m-q4_k_m"] {
        let tok = gguf_tokenizer(&common::model(name)).unwrap();
        for text in [
            "Answer: 15\n\nQuestion: what?",
            " tenalp",
            "Größe 3,5 m — ok",
            "x = [1, 2]",
        ] {
            let ids = tok.encode(text, false).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text, "{name}");
        }
    }
}

fn write_set(dir: &Path) {
    std::fs::create_dir_all(dir.join("items")).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("evalsets/default/text/01-prose.txt"),
    )
    .unwrap();
    std::fs::write(dir.join("t.txt"), text).unwrap();
    let mc = [
        r#"{"id":"a","q":"Which ocean is the largest by area?","c":["The Pacific Ocean","A pond","The desert","A car"],"g":0}"#,
        r#"{"id":"b","q":"What colour is the sky on a clear day?","c":["Green","Blue","Purple","Black"],"g":1}"#,
        r#"{"id":"c","q":"How many legs does a spider have?","c":["Two","Four","Six","Eight"],"g":"Eight"}"#,
        r#"{"id":"d","q":"What do bees make?","c":["Honey","Steel","Glass","Paper"],"g":0}"#,
    ];
    std::fs::write(dir.join("items/mc.jsonl"), mc.join("\n")).unwrap();
    let gen = [
        r#"{"id":"g1","question":"What is 2 + 2?","answer":"4"}"#,
        r#"{"id":"g2","question":"What is 3 + 3?","answer":"6"}"#,
        r#"{"id":"g3","question":"What is 10 + 5?","answer":"15"}"#,
        r#"{"id":"g4","question":"What is 1 + 1?","answer":"2"}"#,
    ];
    std::fs::write(dir.join("items/gen.jsonl"), gen.join("\n")).unwrap();
    std::fs::write(
        dir.join("evalset.toml"),
        r#"name = "tiny"
version = "0.1.0"
[[task]]
name = "text"
kind = "text"
files = ["t.txt"]
[[task]]
name = "mc"
kind = "choice"
items = "items/mc.jsonl"
context = "Question: {q}\nAnswer:"
choices = "c"
answer = "g"
[[task]]
name = "mc-bare"
extends = "mc"
context = "{q}"
metrics = ["acc"]
[[task]]
name = "arith"
kind = "generate"
items = "items/gen.jsonl"
prompt = "Question: {question}\nAnswer:"
answer = "answer"
max_tokens = 8
stop = ["\n"]
extract = "(-?[0-9]+)"
fewshot = 1
"#,
    )
    .unwrap();
}

#[test]
fn run_scores_tasks_with_paired_statistics_and_items_file() {
    let d = tempfile::tempdir().unwrap();
    let set = d.path().join("set");
    write_set(&set);
    let out = d.path().join("out");
    let model = common::model("smollm2-135m-q4_1");
    let o = common::run(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--quants",
        "q8_0,q4_0",
        "--evalset",
        set.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ctx",
        "256",
        "--chunks",
        "1",
        "--repeats",
        "1",
        "--prompt-tokens",
        "32",
        "--gen-tokens",
        "4",
        "--quiet",
        "--limit",
        "3",
        "--seed",
        "7",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = Results::load(&out.join("results.json")).unwrap();
    assert_eq!((r.seed, r.limit), (7, Some(3)));
    let reference = &r.levels[0];
    let names: Vec<(String, String)> = reference
        .tasks
        .iter()
        .map(|t| (t.task.clone(), t.metric.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("mc", "acc"),
            ("mc", "acc_norm"),
            ("mc-bare", "acc"),
            ("arith", "exact_match")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for t in &reference.tasks {
        assert_eq!(t.n, 3, "{t:?}");
        assert!(t.ci_low <= t.value && t.value <= t.ci_high);
        assert!(t.delta_vs_reference.is_none() && t.flips_lost.is_none());
        assert!(t.items_per_sec > 0.0);
    }
    let q4 = &r.levels[1];
    let items = std::fs::read_to_string(out.join("items.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = items
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 3 tasks x 3 sampled items x 2 levels.
    assert_eq!(lines.len(), 18);
    for t in &q4.tasks {
        let mine: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["level"] == "q4_0" && l["task"] == t.task.as_str())
            .collect();
        let refs: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["level"] == "q8_0" && l["task"] == t.task.as_str())
            .collect();
        if mine[0]["metric"] != t.metric.as_str() {
            continue;
        }
        // The statistics trace back to the items: value, delta and flips recomputed by hand.
        let right = |v: &[&serde_json::Value]| v.iter().filter(|l| l["correct"] == true).count();
        assert_eq!(t.value, right(&mine) as f64 / 3.0, "{t:?}");
        let lost = refs
            .iter()
            .zip(&mine)
            .filter(|(a, b)| a["correct"] == true && b["correct"] == false)
            .count();
        let gained = refs
            .iter()
            .zip(&mine)
            .filter(|(a, b)| a["correct"] == false && b["correct"] == true)
            .count();
        assert_eq!((t.flips_lost, t.flips_gained), (Some(lost), Some(gained)));
        let delta = (right(&mine) as f64 - right(&refs) as f64) / 3.0;
        assert!((t.delta_vs_reference.unwrap() - delta).abs() < 1e-12);
        assert!(t.mcnemar_p.unwrap() > 0.0 && t.mcnemar_p.unwrap() <= 1.0);
        assert!(
            t.min_detectable_delta.unwrap() > 0.02,
            "3 items cannot detect a 2-point drop"
        );
    }
    // Generation outputs are cut at the stop string.
    assert!(lines
        .iter()
        .filter(|l| l["task"] == "arith")
        .all(|l| !l["prediction"].as_str().unwrap().contains('\n')));
}

#[test]
fn bad_answer_index_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let set = d.path().join("set");
    write_set(&set);
    std::fs::write(
        set.join("items/mc.jsonl"),
        "{\"id\":\"a\",\"q\":\"x?\",\"c\":[\"a\",\"b\"],\"g\":0}\n{\"id\":\"b\",\"q\":\"y?\",\"c\":[\"a\",\"b\"],\"g\":5}\n",
    )
    .unwrap();
    let model = common::model("smollm2-135m-q4_1");
    let o = common::run(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--quants",
        "q8_0",
        "--evalset",
        set.to_str().unwrap(),
        "--out",
        d.path().join("o").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(
        e.contains("mc.jsonl:2") && e.contains("out of range") && e.contains("'g'"),
        "{e}"
    );
}
