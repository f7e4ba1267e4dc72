//! Write a GGUF model (byte-level BPE tokenizer) as a Hugging Face safetensors directory with
//! dequantized f32 weights: `cargo run --release --example export_safetensors -- MODEL.gguf OUT_DIR`.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: export_safetensors MODEL.gguf OUT_DIR"
    );
    let gguf = std::path::Path::new(&args[1]);
    let out = std::path::Path::new(&args[2]);
    let src = qeval::model::source::ModelSource::open(gguf)?;
    std::fs::create_dir_all(out)?;
    let tj = out.join("tokenizer.json.tmp");
    qeval::model::tokenizer::gguf_tokenizer(gguf)?.save_json(&tj)?;
    qeval::model::export::export_source(&src, out, &tj)?;
    std::fs::remove_file(tj)?;
    println!("wrote {}", out.display());
    Ok(())
}
