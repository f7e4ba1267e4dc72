//! Models: where weights come from (GGUF or safetensors, local or Hub), their configuration,
//! their tokenizer, and the forward pass that returns every position's logits. It knows nothing
//! of levels' names, eval sets, workers or results: it is given tensors and tokens and answers
//! logits.

pub mod config;
pub mod export;
pub mod shape;
pub mod source;
pub mod tokenizer;
pub mod transformer;
pub mod transplant;

pub use config::{Arch, ModelConfig};
