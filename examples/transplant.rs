//! Write the phi3 transplants of a llama GGUF that the comparison with llama.cpp uses
//! (`qeval::model::transplant::phi3_checks`), plus its safetensors copies:
//! `cargo run --release --example transplant -- MODEL.gguf OUT_DIR`.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: transplant MODEL.gguf OUT_DIR");
    let gguf = std::path::Path::new(&args[1]);
    let out = std::path::Path::new(&args[2]);
    std::fs::create_dir_all(out)?;
    let src = qeval::model::source::ModelSource::open(gguf)?;
    for (name, opts) in qeval::model::transplant::phi3_checks(src.config.head_dim) {
        let dst = out.join(format!("{name}.gguf"));
        qeval::model::transplant::llama_to_phi3(gguf, &dst, &opts)?;
        println!("wrote {}", dst.display());
    }
    Ok(())
}
