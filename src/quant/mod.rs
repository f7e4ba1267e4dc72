//! Quantization levels and how a level is made: per-tensor type choice (llama.cpp's recipes),
//! block-size fallbacks, and in-process quantization of the reference weights with rayon. It
//! turns weights into weights; running them (`model`, `run`) and judging them (`eval`) are not
//! its business.

pub mod ggml_quants;
pub mod gguf_out;
pub mod iq;
pub mod iq4_quants;
pub(crate) mod iq_tables;
pub mod level;
pub mod quantize;
pub mod recipe;
pub mod weight;

pub use level::Level;
