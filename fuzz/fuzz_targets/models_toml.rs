//! Fuzz target: the models.toml parser (`Catalog::parse`) and name lookup on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalog) = qeval::plan::catalog::Catalog::parse(text, "fuzz.toml") {
        // Lookups (with their edit-distance suggestions) on every name it holds.
        for name in catalog.models.keys() {
            let _ = catalog.get(name);
        }
        let _ = catalog.get("qwen");
    }
});
