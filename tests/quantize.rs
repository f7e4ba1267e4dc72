//! `qeval quantize` and qeval's quantizers:
//! - a level written by `qeval quantize` from the real SmolLM2 file is a GGUF whose metadata is
//!   the source's with llama-quantize's file type and quantization version, whose tensors have
//!   the types and bytes `qeval run` measures, and bad input is refused by name;
//! - on the real Qwen2.5-Coder-1.5B (when `scripts/fetch-models.sh --qwen` has cached it), every
//!   tensor's type at nine levels, and the bytes of a few tensors, equal what llama-quantize
//!   wrote from the f16 file of the same model (tests/fixtures/llama-quantize/, recorded by
//!   `scripts/compare-quantize.sh --manifest`; the full comparison runs in that script).

mod common;

use candle_core::quantized::gguf_file::Value;
use qeval::model::source::ModelSource;
use qeval::quant::weight::WType;
use qeval::quant::{ggml_quants, quantize, recipe, Level};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `qeval quantize ARGS` exits 2 with `needle` in its message.
fn refused(args: &[&str], needle: &str) {
    let o = common::run(&[&["quantize"], args].concat());
    assert_eq!(o.status.code(), Some(2), "{args:?}");
    let e = common::stderr(&o);
    assert!(e.contains(needle), "{args:?}: {e}");
}

#[test]
fn quantize_writes_the_measured_level_as_a_llama_cpp_gguf() {
    let model = common::model("smollm2-135m-q4_1");
    let m = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smol-q4_0.gguf");
    let o = common::run(&[
        "quantize",
        "--model",
        m,
        "--quant",
        "q4_0",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("llama-quantize Q4_0") && said.contains("q8_0"),
        "{said}"
    );

    let src = ModelSource::open(&model).unwrap();
    let written = ModelSource::open(&out).unwrap();
    let (a, b) = (src.gguf_content().unwrap(), written.gguf_content().unwrap());
    // llama-quantize's keys: Q4_0 is file type 2, quantization version 2.
    assert!(matches!(
        b.metadata.get("general.file_type"),
        Some(Value::U32(2))
    ));
    assert!(matches!(
        b.metadata.get("general.quantization_version"),
        Some(Value::U32(2))
    ));
    // The rest of the metadata is the source's (tokenizer, architecture, chat template).
    for (k, v) in &a.metadata {
        if k.starts_with("general.file_type") || k.starts_with("general.quantization_version") {
            continue;
        }
        assert_eq!(
            format!("{:?}", b.metadata.get(k)),
            format!("{:?}", Some(v)),
            "{k}"
        );
    }
    assert_eq!(written.config.vocab_size, src.config.vocab_size);
    // The tensors are the level `qeval run` makes: Q4_0 with the tied output at q6_k, which
    // SmolLM2's 576-wide rows do not fit, so q8_0 as llama-quantize falls back.
    let level = quantize::quantize(&src, Level::Q4_0, &|| {}).unwrap();
    assert_eq!(level.tensors.len(), b.tensor_infos.len());
    let mut f = std::fs::File::open(&out).unwrap();
    for (name, t) in &level.tensors {
        let w = b.tensor(&mut f, name, &candle_core::Device::Cpu).unwrap();
        let t = t.as_candle().unwrap();
        assert_eq!(w.dtype(), t.dtype(), "{name}");
        assert_eq!(w.data().unwrap(), t.data().unwrap(), "{name}");
    }
    use candle_core::quantized::GgmlDType;
    assert_eq!(
        b.tensor_infos["token_embd.weight"].ggml_dtype,
        GgmlDType::Q8_0
    );
    assert_eq!(
        b.tensor_infos["blk.0.attn_q.weight"].ggml_dtype,
        GgmlDType::Q4_0
    );

    // Refusals name what is wrong.
    refused(
        &[
            "--model",
            m,
            "--quant",
            "q4_0",
            "--out",
            out.to_str().unwrap(),
        ],
        "--force",
    );
    refused(&["--model", m, "--quant", "q7", "--out", "x.gguf"], "'q7'");
    // A safetensors source: refused with the way forward, and nothing written.
    let st = tmp.path().join("st");
    std::fs::create_dir(&st).unwrap();
    let tj = tmp.path().join("tokenizer.json");
    std::fs::write(&tj, "{}").unwrap();
    let tensors = (0..src.tensors.len())
        .map(|i| {
            let n = &src.tensors[i].name;
            (n.clone(), src.load_f32(n).unwrap())
        })
        .collect();
    qeval::model::export::write_dir(&st, &src.config, tensors, &tj).unwrap();
    let st_out = tmp.path().join("st.gguf");
    refused(
        &[
            "--model",
            st.to_str().unwrap(),
            "--quant",
            "q8_0",
            "--out",
            st_out.to_str().unwrap(),
        ],
        "convert_hf_to_gguf",
    );
    assert!(!st_out.exists());
}

#[derive(serde::Deserialize)]
struct Manifest {
    levels: BTreeMap<String, ManifestLevel>,
}

#[derive(serde::Deserialize)]
struct ManifestLevel {
    /// Every tensor's type in llama-quantize's file.
    types: BTreeMap<String, String>,
    /// sha256 of a few tensors' bytes in llama-quantize's file.
    sha256: BTreeMap<String, String>,
}

#[test]
fn quantizers_match_llama_quantize_on_qwen2_5_coder() {
    let Some(path) = common::cached_coder() else {
        return;
    };
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llama-quantize/qwen2.5-coder-1.5b-instruct.json");
    let m: Manifest = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    let src = ModelSource::open(&path).unwrap();
    let shape = quantize::model_shape(&src);
    // llama-quantize quantized from the f16 file it made of this Q4_K_M file: the same values
    // are the dequantized tensor rounded to f16 (the f16 level's hashes check that).
    let f16_values = |name: &str| -> Vec<f32> {
        let t = src.load_f32(name).unwrap().flatten_all().unwrap();
        t.to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(|x| half::f16::from_f32(x).to_f32())
            .collect()
    };
    let mut values: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut checked = 0;
    assert!(m.levels.len() >= 9);
    for (name, lvl) in &m.levels {
        let level = Level::parse(name).unwrap();
        assert_eq!(lvl.types.len(), src.tensors.len(), "{name}");
        for t in &src.tensors {
            let (d, _) = recipe::choose(level, &t.name, &t.shape, shape);
            assert_eq!(d.name(), lvl.types[&t.name], "{name}: type of {}", t.name);
        }
        for (tensor, want) in &lvl.sha256 {
            let meta = src.tensors.iter().find(|t| &t.name == tensor).unwrap();
            let (d, _) = recipe::choose(level, tensor, &meta.shape, shape);
            let x = values
                .entry(tensor.clone())
                .or_insert_with(|| f16_values(tensor));
            let bytes = match d {
                WType::Candle(c) if ggml_quants::supports(c) => {
                    ggml_quants::quantize(c, x).unwrap()
                }
                WType::Iq(t) => qeval::quant::iq4_quants::quantize(t, x).unwrap(),
                WType::Candle(_) => x
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            let got = format!("{:x}", Sha256::digest(&bytes));
            assert_eq!(&got, want, "{name}: bytes of {tensor} ({d:?})");
            checked += 1;
        }
    }
    assert!(checked >= 27, "{checked}");
}
