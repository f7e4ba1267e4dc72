//! Evaluation: scoring a level's logits against the text and against the reference level, and
//! the statistics of tasks and prompts. Runs inside a level's worker (text, tasks, prompts) or
//! on its outcomes (stats); it never spawns processes, writes results.json or renders reports.

pub mod checkpoint;
pub mod metrics;
pub mod pack;
pub mod prompts;
pub mod stats;
pub mod taskprep;
pub mod tasks;
pub mod text;
