//! Measurement of speed (prefill and decode tokens/s) and memory (peak resident bytes on the
//! host, and the GPU's own memory from its driver), inside a level's worker. It measures and returns numbers; it judges nothing and writes no file.

pub mod device;
pub mod memory;
pub mod speed;
