//! Fuzz target: the GGUF metadata path on arbitrary bytes — candle's header reader behind
//! qeval's guard, the model configuration and tensor table (`read_gguf_header`), and the
//! tokenizer built from the metadata (then used on a short text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    let _ = qeval::model::source::read_gguf_header(&mut Cursor::new(data), path);
    if let Ok(tok) =
        qeval::model::tokenizer::gguf_tokenizer_from_reader(&mut Cursor::new(data), path)
    {
        let _ = tok.encode("Hello world, 123 <b>caf\u{e9}</b>\n\tend", true);
        let _ = tok.vocab_size();
    }
});
