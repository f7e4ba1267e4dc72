//! The GGUF types candle has no kernels for, end to end: files holding them are written and
//! read back byte for byte, a file of them runs as a level of its own (`--gguf LABEL=FILE`)
//! and scores exactly as the same level quantized in-process, and where llama.cpp is built, a
//! file llama-quantize made with every such type runs through the whole forward pass.

mod common;

use qeval::model::source::{read_gguf_content_iq, read_iq_tensor};
use qeval::quant::iq::IqType;
use qeval::quant::weight::{write_gguf, IqTensor, Weight};
use qeval::results::Results;
use std::io::Cursor;

/// Blocks of every type from the generated dequantization fixtures (gguf-py's), as tensors.
fn fixture_tensors() -> Vec<(String, Weight)> {
    IqType::ALL
        .iter()
        .map(|t| {
            let data = common::generated(&format!("tests/fixtures/iq/{}.bin", t.name()));
            let blocks = data.len() / t.block_bytes();
            let shape = vec![blocks, t.block_elems()];
            let w = IqTensor::new(*t, shape, data).unwrap();
            (format!("t.{}", t.name()), Weight::from(w))
        })
        .collect()
}

#[test]
fn gguf_files_keep_every_type_byte_for_byte() {
    let mut tensors = fixture_tensors();
    let norm = candle_core::quantized::QTensor::quantize(
        &candle_core::Tensor::ones(64, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
        candle_core::quantized::GgmlDType::F32,
    )
    .unwrap();
    tensors.push(("norm".into(), Weight::from(norm)));
    let name = candle_core::quantized::gguf_file::Value::String("iq test".into());
    let refs: Vec<(&str, &Weight)> = tensors.iter().map(|(n, w)| (n.as_str(), w)).collect();
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, &[("general.name", &name)], &refs).unwrap();

    let path = std::path::Path::new("mem.gguf");
    let mut r = Cursor::new(bytes.clone());
    let (content, iq) = read_gguf_content_iq(&mut r, path).unwrap();
    assert_eq!(iq.len(), IqType::ALL.len());
    assert!(!iq.contains_key("norm"));
    for (n, w) in &tensors {
        match w {
            Weight::Iq(want) => {
                assert_eq!(iq[n], want.ty, "{n}");
                let got = read_iq_tensor(&mut r, &content, n, iq[n]).unwrap();
                assert_eq!(got.shape, want.shape, "{n}");
                assert!(got.data == want.data, "{n}: bytes differ");
            }
            Weight::Candle(_) => {
                let q = content
                    .tensor(&mut r, n, &candle_core::Device::Cpu)
                    .unwrap();
                assert_eq!(q.shape().dims(), &[64]);
            }
        }
    }
    // A type id neither candle nor qeval reads is refused, naming the tensor and the id.
    let first = tensors[0].0.as_bytes();
    let at = bytes.windows(first.len()).position(|w| w == first).unwrap() + first.len();
    // name, then n_dims (u32), two dims (u64 each), then the type id.
    let ty = at + 4 + 16;
    bytes[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    let e = read_gguf_content_iq(&mut Cursor::new(bytes), path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&tensors[0].0) && e.contains("GGML type 99"),
        "{e}"
    );
}

fn results(dir: &std::path::Path) -> Results {
    Results::load(&dir.join("results.json")).unwrap()
}

#[test]
fn an_iq4_xs_file_runs_as_its_own_level_and_scores_as_the_level_made_in_process() {
    let model = common::model("smollm2-135m-q4_1");
    let m = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("smol-iq4_xs.gguf");
    let o = common::run(&[
        "quantize",
        "--model",
        m,
        "--quant",
        "iq4_xs",
        "--out",
        file.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    // The file as a model source: its tokenizer, its level, its tensors dequantized.
    let src = qeval::model::source::ModelSource::open(&file).unwrap();
    assert_eq!(src.main_dtype(), "iq4_xs");
    assert!(src.is_quantized());
    let meta = src.meta("blk.10.ffn_down.weight").unwrap();
    assert_eq!(meta.source_dtype, "iq4_xs");
    let down = src.load_f32("blk.10.ffn_down.weight").unwrap();
    assert_eq!(down.dims(), &[576, 1536]);
    assert_eq!(
        src.meta("blk.10.attn_q.weight").unwrap().source_dtype,
        "iq4_nl"
    );
    let tok = qeval::model::tokenizer::gguf_tokenizer(&file).unwrap();
    assert!(tok.vocab_size() > 49_000);
    let out = tmp.path().join("run");
    let gguf = format!("own-iq4={}", file.display());
    let o = common::run(&[
        "run",
        "--model",
        m,
        "--quants",
        "f16,iq4_xs",
        "--gguf",
        &gguf,
        "--no-tasks",
        "--chunks",
        "2",
        "--repeats",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = results(&out);
    let get = |n: &str| r.levels.iter().find(|l| l.level == n).unwrap();
    let (made, file_level) = (get("iq4_xs"), get("own-iq4"));
    // The same bytes (qeval's IQ4_XS quantizer wrote the file): the same numbers.
    assert_eq!(made.type_mix, file_level.type_mix);
    assert!(file_level.type_mix.contains_key("iq4_xs"));
    assert!(
        file_level.type_mix.contains_key("iq4_nl"),
        "576-wide rows fall back to iq4_nl"
    );
    assert_eq!(made.perplexity, file_level.perplexity);
    assert_eq!(made.kld_mean, file_level.kld_mean);
    let ppl = file_level.perplexity.unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
    assert!(file_level.kld_mean.unwrap() < 1.0);
    // The file's level is read from it; an in-process level has no file.
    let g = file_level.gguf_made.as_ref().unwrap();
    assert_eq!(g.file_type.as_deref(), Some("iq4_xs"));
    assert_eq!(g.quantization_version, Some(2));
    assert!(g.imatrix_file.is_none());
    assert!(made.gguf_made.is_none());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("## GGUF files") && summary.contains("**own-iq4**"),
        "{summary}"
    );
    assert!(summary.contains("file type iq4_xs, quantization version 2, no importance matrix"));

    // Labels: two files of one level need labels; a label is a plain word.
    for (args, needle) in [
        (
            vec!["--gguf", &gguf, "--gguf", &gguf],
            "label 'own-iq4' is given twice",
        ),
        (vec!["--gguf", "a b=x.gguf"], "must be a level name"),
    ] {
        let f = file.to_str().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.replace("x.gguf", f)).collect();
        let mut all = vec!["run", "--model", m, "--quants", "f16", "--no-tasks"];
        all.extend(args.iter().map(String::as_str));
        let o = common::run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        assert!(
            common::stderr(&o).contains(needle),
            "{}",
            common::stderr(&o)
        );
    }
    let twice = format!("iq4_xs={}", file.display());
    let o = common::run(&[
        "run",
        "--model",
        m,
        "--gguf",
        &twice,
        "--gguf",
        &twice,
        "--no-tasks",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("give each a label of its own"),
        "{}",
        common::stderr(&o)
    );
}

/// llama-quantize's file with ffn_down of ten layers at IQ1_S ... MXFP4 (importance matrix from
/// llama-imatrix), the rest IQ4_NL: made by scripts/make-fixtures.sh where llama.cpp is built.
#[test]
fn a_file_of_every_i_quant_runs_through_the_forward_pass() {
    let dir = qeval::fetch::pypi::cache_dir().join("iq");
    let (mixed, f16) = (dir.join("smol-mixed.gguf"), dir.join("smol-f16.gguf"));
    if !mixed.is_file() || !f16.is_file() {
        println!(
            "skipped: {} is not made (scripts/make-fixtures.sh makes it where llama.cpp is built)",
            mixed.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let gguf = format!("mixed={}", mixed.display());
    let o = common::run(&[
        "run",
        "--model",
        f16.to_str().unwrap(),
        "--quants",
        "f16",
        "--gguf",
        &gguf,
        "--no-tasks",
        "--chunks",
        "2",
        "--repeats",
        "1",
        "--quiet",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = results(tmp.path());
    let l = r.levels.iter().find(|l| l.level == "mixed").unwrap();
    for t in IqType::ALL.iter().filter(|t| **t != IqType::Iq4Xs) {
        assert!(
            l.type_mix.contains_key(t.name()),
            "{}: {:?}",
            t.name(),
            l.type_mix
        );
    }
    let g = l.gguf_made.as_ref().unwrap();
    assert!(
        g.imatrix_file.is_some() && g.imatrix_chunks.is_some(),
        "{g:?}"
    );
    let (ppl, kld) = (l.perplexity.unwrap(), l.kld_mean.unwrap());
    assert!(
        ppl.is_finite() && kld.is_finite() && kld > 0.0 && kld < 2.0,
        "{ppl} {kld}"
    );
}
