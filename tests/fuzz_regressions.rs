//! Regression tests for what fuzzing the GGUF metadata path and the models.toml parser
//! found (see fuzz/README.md): each crafted input must give a clear error, never a panic,
//! a hang or a huge allocation. Inputs are the tiny seed models of fuzz/seeds/ with bytes
//! patched, or the minimized crash inputs libFuzzer wrote.

mod common;

use qeval::model::source::read_gguf_header;
use qeval::model::tokenizer::gguf_tokenizer_from_reader;
use std::io::Cursor;
use std::path::Path;

/// The seed models fuzz/make_seeds.py writes (via scripts/make-fixtures.sh).
fn tiny_llama() -> Vec<u8> {
    common::generated("fuzz/seeds/gguf_metadata/tiny-llama-bpe.gguf")
}

fn tiny_gemma() -> Vec<u8> {
    common::generated("fuzz/seeds/gguf_metadata/tiny-gemma3-spm.gguf")
}

/// Overwrite the bytes `skip` bytes after the first occurrence of `needle`.
fn patched(base: &[u8], needle: &str, skip: usize, new: &[u8]) -> Vec<u8> {
    let at = base
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle} not in the seed"))
        + needle.len()
        + skip;
    let mut out = base.to_vec();
    out[at..at + new.len()].copy_from_slice(new);
    out
}

/// A u32 metadata value: after the key come its type (4 bytes), then the value.
fn with_u32(base: &[u8], key: &str, v: u32) -> Vec<u8> {
    patched(base, key, 4, &v.to_le_bytes())
}

/// The message of the error the GGUF metadata path gives for `bytes`; it must be an error
/// that is the user's to fix (exit code 2), not a panic.
fn header_error(bytes: &[u8]) -> String {
    let path = Path::new("crafted.gguf");
    match read_gguf_header(&mut Cursor::new(bytes), path) {
        Ok(_) => panic!("crafted header was accepted"),
        Err(e) => {
            assert_eq!(qeval::error::exit_code(&e), 2, "{e:#}");
            let msg = format!("{e:#}");
            assert!(msg.contains("crafted.gguf"), "{msg}");
            msg
        }
    }
}

#[test]
fn the_seed_models_pass_the_whole_metadata_path() -> anyhow::Result<()> {
    let path = Path::new("tiny.gguf");
    let h = read_gguf_header(&mut Cursor::new(tiny_llama()), path)?;
    assert_eq!(h.config.arch.name(), "llama");
    assert_eq!(
        (h.config.n_layer, h.config.n_embd, h.config.n_kv_head),
        (1, 8, 1)
    );
    assert_eq!(h.config.vocab_size, 26);
    assert_eq!(h.config.rope_freq_factors.as_ref().map(Vec::len), Some(2));
    assert_eq!(h.file_type.as_deref(), Some("f32"));
    let tok = gguf_tokenizer_from_reader(&mut Cursor::new(tiny_llama()), path)?;
    // "hello" is one merged token (id 25), " w" a merged pair (id 22); BOS (0) first.
    assert_eq!(tok.encode("hello w", true)?, vec![0, 25, 22]);

    let h = read_gguf_header(&mut Cursor::new(tiny_gemma()), path)?;
    assert_eq!(h.config.arch.name(), "gemma3");
    assert_eq!(h.config.sliding_window, Some(32));
    let tok = gguf_tokenizer_from_reader(&mut Cursor::new(tiny_gemma()), path)?;
    let ids = tok.encode("hello", false)?;
    assert!(!ids.is_empty() && ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
    Ok(())
}

#[test]
fn alignment_zero_is_refused_before_candle_divides_by_it() {
    let bytes = with_u32(&tiny_llama(), "general.alignment", 0);
    let msg = header_error(&bytes);
    assert!(msg.contains("general.alignment is 0"), "{msg}");
    // The tokenizer path reads the same header.
    let err = gguf_tokenizer_from_reader(&mut Cursor::new(&bytes), Path::new("crafted.gguf"))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("general.alignment is 0"), "{err}");
}

#[test]
fn billions_of_layers_fail_fast() {
    // Checking every layer's tensors used to build 4e9 x 9 names first.
    let msg = header_error(&with_u32(&tiny_llama(), "llama.block_count", u32::MAX));
    assert!(msg.contains("layers 4294967295 is out of range"), "{msg}");
}

#[test]
fn absurd_dimensions_are_refused() {
    for (key, what) in [
        ("llama.embedding_length", "embedding length"),
        ("llama.feed_forward_length", "feed-forward length"),
        ("llama.context_length", "context length"),
    ] {
        let msg = header_error(&with_u32(&tiny_llama(), key, u32::MAX));
        assert!(msg.contains(what) && msg.contains("out of range"), "{msg}");
    }
    let msg = header_error(&with_u32(
        &tiny_gemma(),
        "gemma3.attention.sliding_window",
        0,
    ));
    assert!(msg.contains("sliding window 0"), "{msg}");
}

#[test]
fn tensor_offset_near_the_end_of_u64_does_not_wrap() {
    // A tensor info is name, n_dims (4), dims (8 each), type (4), offset (8).
    let bytes = patched(
        &tiny_llama(),
        "output_norm.weight",
        4 + 8 + 4,
        &(u64::MAX - 7).to_le_bytes(),
    );
    let msg = header_error(&bytes);
    assert!(
        msg.contains("output_norm.weight") && msg.contains("beyond 2^64"),
        "{msg}"
    );
}

#[test]
fn tensor_shape_whose_size_overflows_is_refused() {
    // token_embd has two dims; make each 2^40 (the element count overflows u64).
    let big = (1u64 << 40).to_le_bytes();
    let bytes = patched(&tiny_llama(), "token_embd.weight", 4, &big);
    let bytes = patched(&bytes, "token_embd.weight", 4 + 8, &big);
    let msg = header_error(&bytes);
    assert!(
        msg.contains("token_embd.weight") && msg.contains("does not fit"),
        "{msg}"
    );
}

#[test]
fn rope_freqs_of_the_wrong_size_is_refused() {
    let bytes = patched(&tiny_llama(), "rope_freqs.weight", 4, &3u64.to_le_bytes());
    let msg = header_error(&bytes);
    assert!(msg.contains("rope_freqs.weight has shape [3]"), "{msg}");
}

#[test]
fn the_binary_reports_a_crafted_header_without_panicking() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let model = tmp.path().join("aligned-0.gguf");
    std::fs::write(&model, with_u32(&tiny_llama(), "general.alignment", 0)).expect("write");
    let out = tmp.path().join("out");
    let o = common::run(&[
        "run",
        "--model",
        &model.to_string_lossy(),
        "--quants",
        "f32",
        "--out",
        &out.to_string_lossy(),
    ]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("aligned-0.gguf") && err.contains("general.alignment"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}
