//! The quantization levels qeval knows, their spellings (llama.cpp's) and short forms.

use crate::error::usage;
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One quantization level of a run: a single ggml type for every weight matrix, or one of
/// llama.cpp's mixtures (`q4_k_m` ...) that chooses a type per tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    F32,
    Bf16,
    F16,
    Q8_0,
    Q6K,
    Q5KM,
    Q5K,
    Q5_1,
    Q5_0,
    Q4KM,
    Q4KS,
    Q4K,
    Q4_1,
    Q4_0,
    Q3KM,
    Q3K,
    Q2K,
}

/// Every level, from most to least precise (the order reports use).
pub const ALL: [Level; 17] = [
    Level::F32,
    Level::Bf16,
    Level::F16,
    Level::Q8_0,
    Level::Q6K,
    Level::Q5KM,
    Level::Q5K,
    Level::Q5_1,
    Level::Q5_0,
    Level::Q4KM,
    Level::Q4KS,
    Level::Q4K,
    Level::Q4_1,
    Level::Q4_0,
    Level::Q3KM,
    Level::Q3K,
    Level::Q2K,
];

/// Short forms accepted by `--quants` and what they mean.
pub const SHORT_FORMS: [(&str, Level); 6] = [
    ("q8", Level::Q8_0),
    ("q6", Level::Q6K),
    ("q5", Level::Q5K),
    ("q4", Level::Q4K),
    ("q3", Level::Q3K),
    ("q2", Level::Q2K),
];

impl Level {
    /// llama.cpp's spelling, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Level::F32 => "f32",
            Level::Bf16 => "bf16",
            Level::F16 => "f16",
            Level::Q8_0 => "q8_0",
            Level::Q6K => "q6_k",
            Level::Q5KM => "q5_k_m",
            Level::Q5K => "q5_k",
            Level::Q5_1 => "q5_1",
            Level::Q5_0 => "q5_0",
            Level::Q4KM => "q4_k_m",
            Level::Q4KS => "q4_k_s",
            Level::Q4K => "q4_k",
            Level::Q4_1 => "q4_1",
            Level::Q4_0 => "q4_0",
            Level::Q3KM => "q3_k_m",
            Level::Q3K => "q3_k",
            Level::Q2K => "q2_k",
        }
    }

    /// The ggml type used for most weight matrices at this level.
    pub fn base_dtype(self) -> GgmlDType {
        match self {
            Level::F32 => GgmlDType::F32,
            Level::Bf16 => GgmlDType::BF16,
            Level::F16 => GgmlDType::F16,
            Level::Q8_0 => GgmlDType::Q8_0,
            Level::Q6K => GgmlDType::Q6K,
            Level::Q5KM | Level::Q5K => GgmlDType::Q5K,
            Level::Q5_1 => GgmlDType::Q5_1,
            Level::Q5_0 => GgmlDType::Q5_0,
            Level::Q4KM | Level::Q4KS | Level::Q4K => GgmlDType::Q4K,
            Level::Q4_1 => GgmlDType::Q4_1,
            Level::Q4_0 => GgmlDType::Q4_0,
            Level::Q3KM | Level::Q3K => GgmlDType::Q3K,
            Level::Q2K => GgmlDType::Q2K,
        }
    }

    /// True for llama.cpp's per-tensor mixtures.
    pub fn is_mixture(self) -> bool {
        matches!(self, Level::Q5KM | Level::Q4KM | Level::Q4KS | Level::Q3KM)
    }

    /// Nominal precision rank: higher is more precise (used to pick the reference level).
    pub fn precision_rank(self) -> u32 {
        match self {
            Level::F32 => 100,
            Level::F16 => 90,
            Level::Bf16 => 89,
            Level::Q8_0 => 80,
            Level::Q6K => 66,
            Level::Q5KM => 56,
            Level::Q5K => 55,
            Level::Q5_1 => 54,
            Level::Q5_0 => 53,
            Level::Q4KM => 46,
            Level::Q4KS => 45,
            Level::Q4K => 44,
            Level::Q4_1 => 43,
            Level::Q4_0 => 42,
            Level::Q3KM => 36,
            Level::Q3K => 35,
            Level::Q2K => 20,
        }
    }

    /// One line on what the level is, for `--help` and reports.
    pub fn describe(self) -> &'static str {
        match self {
            Level::F32 => "32-bit float, no quantization",
            Level::Bf16 => "bfloat16 weights",
            Level::F16 => "16-bit float weights",
            Level::Q8_0 => "8-bit, blocks of 32 with one f16 scale (8.5 bits/weight)",
            Level::Q6K => "6-bit k-quant, super-blocks of 256 (6.56 bits/weight)",
            Level::Q5KM => "llama.cpp Q5_K_M mixture: q5_k, with q6_k for half of attn_v/ffn_down and the output",
            Level::Q5K => "5-bit k-quant, super-blocks of 256 (5.5 bits/weight)",
            Level::Q5_1 => "5-bit, blocks of 32 with scale and minimum (6 bits/weight)",
            Level::Q5_0 => "5-bit, blocks of 32 with one scale (5.5 bits/weight)",
            Level::Q4KM => "llama.cpp Q4_K_M mixture (the Ollama/LM Studio default): q4_k, with q6_k for half of attn_v/ffn_down and the output",
            Level::Q4KS => "llama.cpp Q4_K_S mixture: q4_k, with q5_k for the first attn_v/ffn_down layers",
            Level::Q4K => "4-bit k-quant, super-blocks of 256 (4.5 bits/weight)",
            Level::Q4_1 => "4-bit, blocks of 32 with scale and minimum (5 bits/weight)",
            Level::Q4_0 => "4-bit, blocks of 32 with one scale (4.5 bits/weight)",
            Level::Q3KM => "llama.cpp Q3_K_M mixture: q3_k, with q4_k/q5_k for attn_v, attn_output and early ffn_down",
            Level::Q3K => "3-bit k-quant, super-blocks of 256 (3.44 bits/weight)",
            Level::Q2K => "2-bit k-quant, super-blocks of 256 (2.63 bits/weight)",
        }
    }

    /// Parse one level name (llama.cpp spelling or a short form), case-insensitively.
    pub fn parse(s: &str) -> anyhow::Result<Level> {
        let t = s.trim().to_ascii_lowercase();
        if let Some((_, l)) = SHORT_FORMS.iter().find(|(n, _)| *n == t) {
            return Ok(*l);
        }
        if let Some(l) = ALL.iter().find(|l| l.name() == t) {
            return Ok(*l);
        }
        Err(usage(format!(
            "unknown quantization level '{s}'. Valid levels: {}; short forms: {}",
            ALL.iter().map(|l| l.name()).collect::<Vec<_>>().join(", "),
            SHORT_FORMS
                .iter()
                .map(|(n, l)| format!("{n}={}", l.name()))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Parse a comma-separated `--quants` list; rejects empty lists and duplicates.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Level>> {
        let mut out: Vec<Level> = Vec::new();
        for part in s.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            let l = Level::parse(part)?;
            if out.contains(&l) {
                return Err(usage(format!(
                    "--quants names level '{}' twice ('{part}' is the same level); list each level once",
                    l.name()
                )));
            }
            out.push(l);
        }
        if out.is_empty() {
            return Err(usage(
                "--quants is empty; give at least one level, e.g. --quants q4_k_m,q8_0,f16",
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// llama.cpp's name of a ggml type, lower case.
pub fn dtype_name(d: GgmlDType) -> &'static str {
    match d {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2_k",
        GgmlDType::Q3K => "q3_k",
        GgmlDType::Q4K => "q4_k",
        GgmlDType::Q5K => "q5_k",
        GgmlDType::Q6K => "q6_k",
        GgmlDType::Q8K => "q8_k",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_short_forms() {
        assert_eq!(Level::parse("Q4_K_M").unwrap(), Level::Q4KM);
        assert_eq!(Level::parse("q4").unwrap(), Level::Q4K);
        assert_eq!(Level::parse("q8").unwrap(), Level::Q8_0);
        for l in ALL {
            assert_eq!(Level::parse(l.name()).unwrap(), l);
        }
    }

    #[test]
    fn unknown_level_lists_valid_ones() {
        let e = Level::parse("q7").unwrap_err().to_string();
        assert!(
            e.contains("'q7'") && e.contains("q4_k_m") && e.contains("q8=q8_0"),
            "{e}"
        );
    }

    #[test]
    fn list_rejects_duplicates_and_empty() {
        assert!(Level::parse_list("q4,q4_k").is_err());
        assert!(Level::parse_list(" , ").is_err());
        assert_eq!(
            Level::parse_list("q4,q8,f16").unwrap(),
            vec![Level::Q4K, Level::Q8_0, Level::F16]
        );
    }
}
