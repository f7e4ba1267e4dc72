//! Loaders agree: a model written as a safetensors directory reads back as the same canonical
//! tensors (names, Q/K permutation, Gemma's +1 norms), and every architecture runs end to end.

mod common;

use qeval::model::source::ModelSource;

/// Largest absolute difference between a tensor as two sources load it.
fn max_abs_diff(a: &ModelSource, b: &ModelSource, name: &str) -> f32 {
    let x = a.load_f32(name).unwrap();
    let y = b.load_f32(name).unwrap();
    (x - y)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn gemma3_gguf_round_trips_through_safetensors() {
    let gguf = common::model("gemma3-270m-q4_k_m");
    let src = ModelSource::open(&gguf).unwrap();
    assert_eq!(src.config.arch, qeval::model::Arch::Gemma3);
    assert_eq!(src.main_dtype(), "q4_k_m");
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in tokenizer.json: this test compares weights, not tokens.
    let smol = common::model("smollm2-135m-q4_1");
    let tj = tmp.path().join("tokenizer.json");
    qeval::model::tokenizer::gguf_tokenizer(&smol)
        .unwrap()
        .save_json(&tj)
        .unwrap();
    let dir = tmp.path().join("gemma-st");
    qeval::model::export::export_source(&src, &dir, &tj).unwrap();
    let back = ModelSource::open(&dir).unwrap();
    assert_eq!(back.config.n_layer, src.config.n_layer);
    assert_eq!(back.config.sliding_window, src.config.sliding_window);
    assert_eq!(back.tensors.len(), src.tensors.len());
    for name in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_q_norm.weight",
        "blk.5.post_ffw_norm.weight",
        "output_norm.weight",
    ] {
        let d = max_abs_diff(&src, &back, name);
        assert!(d < 1e-6, "{name} differs by {d}");
    }
}

#[test]
fn llama_safetensors_round_trip_keeps_qk_layout() {
    let gguf = common::model("smollm2-135m-q4_1");
    let src = ModelSource::open(&gguf).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tj = tmp.path().join("tokenizer.json");
    qeval::model::tokenizer::gguf_tokenizer(&gguf)
        .unwrap()
        .save_json(&tj)
        .unwrap();
    let dir = tmp.path().join("smol-st");
    qeval::model::export::export_source(&src, &dir, &tj).unwrap();
    let back = ModelSource::open(&dir).unwrap();
    for name in [
        "blk.3.attn_q.weight",
        "blk.3.attn_k.weight",
        "blk.3.ffn_down.weight",
    ] {
        let d = max_abs_diff(&src, &back, name);
        assert_eq!(d, 0.0, "{name}");
    }
    // The tokenizer.json written from the GGUF gives llama.cpp's ids too.
    let t = qeval::model::tokenizer::ModelTokenizer::from_dir(&dir).unwrap();
    let g = qeval::model::tokenizer::gguf_tokenizer(&gguf).unwrap();
    let text = "In 2024, 12345 people paid $3.50 each. I'm sure they've done it!";
    assert_eq!(
        t.encode(text, false).unwrap(),
        g.encode(text, false).unwrap()
    );
}
