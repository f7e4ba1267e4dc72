//! Evaluation: scoring a level's logits against the text and against the reference level.
//! It runs inside a level's worker (and prepares tasks in the parent); it must not render
//! reports.

pub mod checkpoint;
pub mod metrics;
pub mod prompts;
pub mod stats;
pub mod taskprep;
pub mod tasks;
pub mod text;
