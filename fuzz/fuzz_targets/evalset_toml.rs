//! Fuzz target: the eval-set definition parser (`evalset::parse`: TOML, `extends`, templates,
//! regexes, path checks) and, on what it accepts, templating of items built from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/nonexistent-fuzz-evalset");
    let Ok((_, tasks)) = qeval::evalset::parse(text, &dir.join("evalset.toml"), dir) else {
        return;
    };
    // One record whose fields are every key the text mentions, holding the text itself.
    let mut rec = qeval::evalset::Record::new();
    rec.insert("id".into(), "x".into());
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')) {
        if !w.is_empty() && w.len() < 40 {
            rec.insert(w.into(), text.chars().take(64).collect::<String>().into());
        }
    }
    rec.insert("choices".into(), serde_json::json!(["a", "b"]));
    for t in &tasks {
        match &t.kind {
            qeval::evalset::TaskKind::Choice(c) => {
                let _ = qeval::evalset::prepare_choice(c, std::slice::from_ref(&rec), "fuzz");
            }
            qeval::evalset::TaskKind::Generate(g) => {
                let _ = qeval::evalset::prepare_generate(g, &[rec.clone(), rec.clone()], "fuzz");
            }
            qeval::evalset::TaskKind::Text => {}
        }
    }
});
