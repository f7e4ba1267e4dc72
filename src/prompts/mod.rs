//! Your own prompts (`--prompts`): reading the prompt files, rendering each conversation with
//! the model's own chat template, and comparing every level's answers with the reference
//! level's. This module owns the prompt file format, the chat template and the free-text
//! metrics; the worker's decoding and teacher-forced scoring live in `eval::prompts`, the
//! per-run wiring in `run`, and the pages in `report::prompts`. It never loads a model.

pub mod compare;
pub mod file;
pub mod prepare;
pub mod stage;
pub mod template;

pub use file::{load, Message, PromptItem};
