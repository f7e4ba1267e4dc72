//! Measurement of speed (prefill and decode tokens/s) and memory (peak resident bytes), inside a
//! level's worker. It measures and returns numbers; it judges nothing and writes no file.

pub mod memory;
pub mod speed;
