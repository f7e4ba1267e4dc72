//! The quantization levels qeval knows. A level is one of llama-quantize's file types
//! (`Q4_K_M`, `Q4_0`, `Q2_K`, ...), with the per-tensor types llama-quantize gives that file
//! type (see `recipe`), or a single-type model spelled with a `-pure` suffix (llama-quantize's
//! `--pure`). Names are llama.cpp's, lower case; llama-quantize's aliases (`q4_k` = `q4_k_m`,
//! `q5_k` = `q5_k_m`, `q3_k` = `q3_k_m`) and short forms (`q4` = `q4_k_m`) are accepted.

use super::iq::IqType;
use super::weight::WType;
use crate::error::usage;
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One quantization level of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Level {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "bf16")]
    Bf16,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q8_0-pure")]
    Q8_0Pure,
    #[serde(rename = "q6_k")]
    Q6K,
    #[serde(rename = "q6_k-pure")]
    Q6KPure,
    #[serde(rename = "q5_k_m")]
    Q5KM,
    #[serde(rename = "q5_k_s")]
    Q5KS,
    /// Files written before level names followed llama-quantize said `q5_k` for this.
    #[serde(rename = "q5_k-pure", alias = "q5_k")]
    Q5KPure,
    #[serde(rename = "q5_1")]
    Q5_1,
    #[serde(rename = "q5_1-pure")]
    Q5_1Pure,
    #[serde(rename = "q5_0")]
    Q5_0,
    #[serde(rename = "q5_0-pure")]
    Q5_0Pure,
    #[serde(rename = "q4_k_m")]
    Q4KM,
    #[serde(rename = "q4_k_s")]
    Q4KS,
    #[serde(rename = "q4_k-pure", alias = "q4_k")]
    Q4KPure,
    #[serde(rename = "q4_1")]
    Q4_1,
    #[serde(rename = "q4_1-pure")]
    Q4_1Pure,
    #[serde(rename = "q4_0")]
    Q4_0,
    #[serde(rename = "q4_0-pure")]
    Q4_0Pure,
    #[serde(rename = "iq4_nl")]
    Iq4Nl,
    #[serde(rename = "iq4_nl-pure")]
    Iq4NlPure,
    #[serde(rename = "iq4_xs")]
    Iq4Xs,
    #[serde(rename = "iq4_xs-pure")]
    Iq4XsPure,
    #[serde(rename = "q3_k_l")]
    Q3KL,
    #[serde(rename = "q3_k_m")]
    Q3KM,
    #[serde(rename = "q3_k_s")]
    Q3KS,
    #[serde(rename = "q3_k-pure", alias = "q3_k")]
    Q3KPure,
    #[serde(rename = "q2_k")]
    Q2K,
    #[serde(rename = "q2_k-pure")]
    Q2KPure,
}

/// Every level, from most to least precise (the order reports use).
pub const ALL: [Level; 31] = [
    Level::F32,
    Level::Bf16,
    Level::F16,
    Level::Q8_0,
    Level::Q8_0Pure,
    Level::Q6K,
    Level::Q6KPure,
    Level::Q5KM,
    Level::Q5KS,
    Level::Q5KPure,
    Level::Q5_1,
    Level::Q5_1Pure,
    Level::Q5_0,
    Level::Q5_0Pure,
    Level::Q4KM,
    Level::Q4KS,
    Level::Q4KPure,
    Level::Q4_1,
    Level::Q4_1Pure,
    Level::Q4_0,
    Level::Q4_0Pure,
    Level::Iq4Nl,
    Level::Iq4NlPure,
    Level::Iq4Xs,
    Level::Iq4XsPure,
    Level::Q3KL,
    Level::Q3KM,
    Level::Q3KS,
    Level::Q3KPure,
    Level::Q2K,
    Level::Q2KPure,
];

/// Other spellings accepted by `--quants`: llama-quantize's aliases and qeval's short forms.
pub const ALIASES: [(&str, Level); 9] = [
    ("q4_k", Level::Q4KM),
    ("q5_k", Level::Q5KM),
    ("q3_k", Level::Q3KM),
    ("q8", Level::Q8_0),
    ("q6", Level::Q6K),
    ("q5", Level::Q5KM),
    ("q4", Level::Q4KM),
    ("q3", Level::Q3KM),
    ("q2", Level::Q2K),
];

impl Level {
    /// qeval's name: llama.cpp's spelling in lower case, `-pure` for single-type models.
    pub fn name(self) -> &'static str {
        match self {
            Level::F32 => "f32",
            Level::Bf16 => "bf16",
            Level::F16 => "f16",
            Level::Q8_0 => "q8_0",
            Level::Q8_0Pure => "q8_0-pure",
            Level::Q6K => "q6_k",
            Level::Q6KPure => "q6_k-pure",
            Level::Q5KM => "q5_k_m",
            Level::Q5KS => "q5_k_s",
            Level::Q5KPure => "q5_k-pure",
            Level::Q5_1 => "q5_1",
            Level::Q5_1Pure => "q5_1-pure",
            Level::Q5_0 => "q5_0",
            Level::Q5_0Pure => "q5_0-pure",
            Level::Q4KM => "q4_k_m",
            Level::Q4KS => "q4_k_s",
            Level::Q4KPure => "q4_k-pure",
            Level::Q4_1 => "q4_1",
            Level::Q4_1Pure => "q4_1-pure",
            Level::Q4_0 => "q4_0",
            Level::Q4_0Pure => "q4_0-pure",
            Level::Iq4Nl => "iq4_nl",
            Level::Iq4NlPure => "iq4_nl-pure",
            Level::Iq4Xs => "iq4_xs",
            Level::Iq4XsPure => "iq4_xs-pure",
            Level::Q3KL => "q3_k_l",
            Level::Q3KM => "q3_k_m",
            Level::Q3KS => "q3_k_s",
            Level::Q3KPure => "q3_k-pure",
            Level::Q2K => "q2_k",
            Level::Q2KPure => "q2_k-pure",
        }
    }

    /// True for single-type levels (`-pure`, and the float levels, which are single-type).
    pub fn is_pure(self) -> bool {
        self.name().ends_with("-pure") || matches!(self, Level::F32 | Level::Bf16 | Level::F16)
    }

    /// llama-quantize's file type for this level: (its name, `general.file_type`'s value).
    /// Pure levels are that file type made with `--pure`.
    pub fn ftype(self) -> (&'static str, u32) {
        match self {
            Level::F32 => ("F32", 0),
            Level::F16 => ("F16", 1),
            Level::Bf16 => ("BF16", 32),
            Level::Q4_0 | Level::Q4_0Pure => ("Q4_0", 2),
            Level::Q4_1 | Level::Q4_1Pure => ("Q4_1", 3),
            Level::Q8_0 | Level::Q8_0Pure => ("Q8_0", 7),
            Level::Q5_0 | Level::Q5_0Pure => ("Q5_0", 8),
            Level::Q5_1 | Level::Q5_1Pure => ("Q5_1", 9),
            Level::Q2K | Level::Q2KPure => ("Q2_K", 10),
            Level::Q3KS => ("Q3_K_S", 11),
            Level::Q3KM | Level::Q3KPure => ("Q3_K_M", 12),
            Level::Q3KL => ("Q3_K_L", 13),
            Level::Q4KS => ("Q4_K_S", 14),
            Level::Q4KM | Level::Q4KPure => ("Q4_K_M", 15),
            Level::Q5KS => ("Q5_K_S", 16),
            Level::Q5KM | Level::Q5KPure => ("Q5_K_M", 17),
            Level::Q6K | Level::Q6KPure => ("Q6_K", 18),
            Level::Iq4Nl | Level::Iq4NlPure => ("IQ4_NL", 25),
            Level::Iq4Xs | Level::Iq4XsPure => ("IQ4_XS", 30),
        }
    }

    /// The llama-quantize command line type that makes this level, e.g. `Q4_K_M` or
    /// `Q4_K_M --pure`.
    pub fn llama_quantize(self) -> String {
        let (t, _) = self.ftype();
        if self.name().ends_with("-pure") {
            format!("{t} --pure")
        } else {
            t.to_string()
        }
    }

    /// The single-type level of this level's default type.
    pub fn pure(self) -> Level {
        match self {
            Level::Iq4Nl => return Level::Iq4NlPure,
            Level::Iq4Xs => return Level::Iq4XsPure,
            _ => {}
        }
        match self.base_dtype() {
            GgmlDType::Q8_0 => Level::Q8_0Pure,
            GgmlDType::Q6K => Level::Q6KPure,
            GgmlDType::Q5K => Level::Q5KPure,
            GgmlDType::Q5_1 => Level::Q5_1Pure,
            GgmlDType::Q5_0 => Level::Q5_0Pure,
            GgmlDType::Q4K => Level::Q4KPure,
            GgmlDType::Q4_1 => Level::Q4_1Pure,
            GgmlDType::Q4_0 => Level::Q4_0Pure,
            GgmlDType::Q3K => Level::Q3KPure,
            GgmlDType::Q2K => Level::Q2KPure,
            _ => self,
        }
    }

    /// The type of most weight matrices (llama-quantize's default type of the file type).
    pub fn base_type(self) -> WType {
        match self {
            Level::Iq4Nl | Level::Iq4NlPure => WType::Iq(IqType::Iq4Nl),
            Level::Iq4Xs | Level::Iq4XsPure => WType::Iq(IqType::Iq4Xs),
            _ => WType::Candle(self.base_dtype()),
        }
    }

    /// The candle type of most weight matrices; the i-quant levels have none ([`Self::pure`]
    /// and [`Self::base_type`] handle them first).
    fn base_dtype(self) -> GgmlDType {
        match self {
            Level::Iq4Nl | Level::Iq4NlPure | Level::Iq4Xs | Level::Iq4XsPure => GgmlDType::Q4_0,
            Level::F32 => GgmlDType::F32,
            Level::Bf16 => GgmlDType::BF16,
            Level::F16 => GgmlDType::F16,
            Level::Q8_0 | Level::Q8_0Pure => GgmlDType::Q8_0,
            Level::Q6K | Level::Q6KPure => GgmlDType::Q6K,
            Level::Q5KM | Level::Q5KS | Level::Q5KPure => GgmlDType::Q5K,
            Level::Q5_1 | Level::Q5_1Pure => GgmlDType::Q5_1,
            Level::Q5_0 | Level::Q5_0Pure => GgmlDType::Q5_0,
            Level::Q4KM | Level::Q4KS | Level::Q4KPure => GgmlDType::Q4K,
            Level::Q4_1 | Level::Q4_1Pure => GgmlDType::Q4_1,
            Level::Q4_0 | Level::Q4_0Pure => GgmlDType::Q4_0,
            Level::Q3KL | Level::Q3KM | Level::Q3KS | Level::Q3KPure => GgmlDType::Q3K,
            Level::Q2K | Level::Q2KPure => GgmlDType::Q2K,
        }
    }

    /// Nominal precision rank: higher is more precise (used to pick the reference level).
    pub fn precision_rank(self) -> u32 {
        // ALL is ordered from most to least precise.
        let i = ALL.iter().position(|l| *l == self).unwrap_or(ALL.len());
        (ALL.len() - i) as u32
    }

    /// One line on what the level is, for `--help` and reports.
    pub fn describe(self) -> &'static str {
        match self {
            Level::F32 => "32-bit float, no quantization",
            Level::Bf16 => "bfloat16 weights",
            Level::F16 => "16-bit float weights",
            Level::Q8_0 => "llama-quantize Q8_0: 8-bit blocks of 32 with one f16 scale (8.5 bits/weight), everywhere",
            Level::Q6K => "llama-quantize Q6_K: 6-bit k-quant (6.56 bits/weight), everywhere",
            Level::Q5KM => "llama-quantize Q5_K_M: q5_k, with q6_k for the output and half of attn_v/ffn_down",
            Level::Q5KS => "llama-quantize Q5_K_S: q5_k, with q6_k for the output",
            Level::Q5_1 => "llama-quantize Q5_1: q5_1 (6 bits/weight), with q6_k for the output",
            Level::Q5_0 => "llama-quantize Q5_0: q5_0 (5.5 bits/weight), with q6_k for the output",
            Level::Q4KM => "llama-quantize Q4_K_M (the Ollama/LM Studio default): q4_k, with q6_k for the output and half of attn_v/ffn_down",
            Level::Q4KS => "llama-quantize Q4_K_S: q4_k, with q6_k for the output and q5_k for the first attn_v/ffn_down",
            Level::Q4_1 => "llama-quantize Q4_1: q4_1 (5 bits/weight), with q6_k for the output",
            Level::Q4_0 => "llama-quantize Q4_0: q4_0 (4.5 bits/weight), with q6_k for the output",
            Level::Iq4Nl => "llama-quantize IQ4_NL (no importance matrix): 4-bit non-linear blocks of 32 (4.5 bits/weight), q5_k for the first eighth of ffn_down, q6_k output",
            Level::Iq4Xs => "llama-quantize IQ4_XS (no importance matrix): 4-bit non-linear super-blocks of 256 (4.25 bits/weight), q5_k for the first eighth of ffn_down, q6_k output",
            Level::Iq4NlPure => "iq4_nl for every weight matrix (llama-quantize --pure IQ4_NL)",
            Level::Iq4XsPure => "iq4_xs for every weight matrix (llama-quantize --pure IQ4_XS)",
            Level::Q3KL => "llama-quantize Q3_K_L: q3_k, with q5_k for attn_v, attn_output and ffn_down, q6_k output",
            Level::Q3KM => "llama-quantize Q3_K_M: q3_k, with q4_k/q5_k for attn_v, attn_output and ffn_down, q6_k output",
            Level::Q3KS => "llama-quantize Q3_K_S: q3_k, with q6_k for the output",
            Level::Q2K => "llama-quantize Q2_K: q2_k, with q3_k/q4_k for attn_v, attn_output and ffn_down, q6_k output",
            Level::Q8_0Pure => "q8_0 for every weight matrix (llama-quantize --pure Q8_0)",
            Level::Q6KPure => "q6_k for every weight matrix (llama-quantize --pure Q6_K)",
            Level::Q5KPure => "q5_k for every weight matrix (llama-quantize --pure Q5_K_M)",
            Level::Q5_1Pure => "q5_1 for every weight matrix (llama-quantize --pure Q5_1)",
            Level::Q5_0Pure => "q5_0 for every weight matrix (llama-quantize --pure Q5_0)",
            Level::Q4KPure => "q4_k for every weight matrix (llama-quantize --pure Q4_K_M)",
            Level::Q4_1Pure => "q4_1 for every weight matrix (llama-quantize --pure Q4_1)",
            Level::Q4_0Pure => "q4_0 for every weight matrix (llama-quantize --pure Q4_0)",
            Level::Q3KPure => "q3_k for every weight matrix (llama-quantize --pure Q3_K_M)",
            Level::Q2KPure => "q2_k for every weight matrix (llama-quantize --pure Q2_K)",
        }
    }

    /// Parse one level name (qeval's, llama-quantize's in any case, an alias or a short form;
    /// any of them with `-pure` for its single-type level).
    pub fn parse(s: &str) -> anyhow::Result<Level> {
        let t = s.trim().to_ascii_lowercase();
        let (base, pure) = match t.strip_suffix("-pure") {
            Some(b) => (b, true),
            None => (t.as_str(), false),
        };
        let found = ALIASES
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, l)| *l)
            .or_else(|| ALL.iter().copied().find(|l| l.name() == base));
        match found {
            Some(l) if pure => Ok(l.pure()),
            Some(l) => Ok(l),
            None => Err(usage(format!(
                "unknown quantization level '{s}'. Valid levels (llama-quantize's file types): {}; \
                 single-type models: {}; aliases: {}",
                ALL.iter()
                    .filter(|l| !l.name().ends_with("-pure"))
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                ALL.iter()
                    .filter(|l| l.name().ends_with("-pure"))
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                ALIASES
                    .iter()
                    .map(|(n, l)| format!("{n}={}", l.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
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
        assert_eq!(Level::parse("q4").unwrap(), Level::Q4KM);
        assert_eq!(Level::parse("q4_k").unwrap(), Level::Q4KM);
        assert_eq!(Level::parse("Q4_K-pure").unwrap(), Level::Q4KPure);
        assert_eq!(Level::parse("q4_k_s-pure").unwrap(), Level::Q4KPure);
        assert_eq!(Level::parse("q2-pure").unwrap(), Level::Q2KPure);
        assert_eq!(Level::Q4KPure.llama_quantize(), "Q4_K_M --pure");
        assert_eq!(Level::parse("q8").unwrap(), Level::Q8_0);
        for l in ALL {
            assert_eq!(Level::parse(l.name()).unwrap(), l);
        }
    }

    #[test]
    fn unknown_level_lists_valid_ones() {
        let e = Level::parse("q7").unwrap_err().to_string();
        assert!(
            e.contains("'q7'")
                && e.contains("q4_k_m")
                && e.contains("q8=q8_0")
                && e.contains("q4_k-pure"),
            "{e}"
        );
    }

    #[test]
    fn serde_names_are_the_level_names_and_old_pure_names_still_read() {
        for l in ALL {
            let j = serde_json::to_string(&l).unwrap();
            assert_eq!(j, format!("\"{}\"", l.name()));
            assert_eq!(serde_json::from_str::<Level>(&j).unwrap(), l);
        }
        // Before level names followed llama-quantize, "q4_k" meant a pure q4_k model.
        assert_eq!(
            serde_json::from_str::<Level>("\"q4_k\"").unwrap(),
            Level::Q4KPure
        );
    }

    #[test]
    fn list_rejects_duplicates_and_empty() {
        assert!(Level::parse_list("q4,q4_k").is_err());
        assert!(Level::parse_list(" , ").is_err());
        assert_eq!(
            Level::parse_list("q4,q8,f16").unwrap(),
            vec![Level::Q4KM, Level::Q8_0, Level::F16]
        );
    }
}
