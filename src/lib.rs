//! qeval as a library: every stage of a run (plan, model, quantization, evaluation,
//! measurement, results, reports) as its own module, so the binary and the tests use the same code.

pub mod cli;
pub mod error;
pub mod eval;
pub mod evalset;
pub mod fetch;
pub mod fmt;
pub mod fsutil;
pub mod interrupt;
pub mod kernels;
pub mod measure;
pub mod model;
pub mod plan;
pub mod prompts;
pub mod quant;
pub mod refpack;
pub mod report;
pub mod results;
pub mod run;
pub mod sweep;
pub mod threads;
