//! Measurement of speed (prefill and decode tokens/s) and memory (peak resident bytes).

pub mod memory;
pub mod speed;
