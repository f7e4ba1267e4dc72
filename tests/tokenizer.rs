//! Token ids of GGUF tokenizers against ids recorded from llama.cpp itself
//! (tests/fixtures/tokenizer/*.json, made with llama-cpp-python's vocab-only model).

mod common;

use serde_json::Value;

fn check(model_name: &str, fixture: &str) {
    let path = common::model(model_name);
    let tok = qeval::model::tokenizer::gguf_tokenizer(&path).unwrap();
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/tokenizer/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        tok.add_bos,
        fx["add_bos_token"].as_bool().unwrap(),
        "add_bos"
    );
    let mut failures = Vec::new();
    let cases = fx["cases"].as_array().unwrap();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let add_bos = c["add_bos"].as_bool().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, add_bos && tok.add_bos).unwrap();
        if got != want {
            failures.push(format!(
                "{text:?} (bos {add_bos}):\n  llama.cpp {want:?}\n  qeval     {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_gguf_tokenizer_matches_llama_cpp() {
    check("smollm2-135m-q4_1", "smollm2-135m-q4_1.json");
}

#[test]
fn gemma3_gguf_tokenizer_matches_llama_cpp() {
    check("gemma3-270m-q4_k_m", "gemma3-270m-q4_k_m.json");
}
