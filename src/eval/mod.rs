//! Evaluation: scoring a level's logits against the text and against the reference level.

pub mod metrics;
pub mod text;
