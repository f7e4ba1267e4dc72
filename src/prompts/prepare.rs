//! Turning users' prompts into tokens, once per run in the parent process (so every level
//! answers exactly the same tokens): conversations through the chat template with
//! `add_generation_prompt`, plain prompts as they are, special tokens written in the text
//! parsed as tokens, and BOS added only when the rendered text does not already begin with it.

use crate::error::usage;
use crate::eval::prompts::PromptTokens;
use crate::model::tokenizer::ModelTokenizer;
use crate::prompts::file::{Input, PromptItem};
use crate::prompts::template::{ChatTemplate, DateTime, RenderOptions};
use anyhow::Result;

/// Users' prompts ready to run, with their rendered text for the reports.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub items: Vec<PromptItem>,
    pub rendered: Vec<String>,
    pub tokens: Vec<PromptTokens>,
    pub template: Option<ChatTemplate>,
    pub now: DateTime,
}

impl Prepared {
    /// Positions the KV cache needs for the longest prompt and its answer.
    pub fn max_positions(&self) -> usize {
        self.tokens
            .iter()
            .map(|t| t.prompt.len() + t.max_tokens + 1)
            .max()
            .unwrap_or(0)
    }
}

/// Render and tokenize every prompt. `model` names the model in errors.
pub fn prepare(
    items: Vec<PromptItem>,
    template: Option<ChatTemplate>,
    tok: &ModelTokenizer,
    now: DateTime,
    model: &str,
) -> Result<Prepared> {
    let opts = RenderOptions {
        add_generation_prompt: true,
        now,
    };
    let mut rendered = Vec::with_capacity(items.len());
    let mut tokens = Vec::with_capacity(items.len());
    for it in &items {
        let text = match &it.input {
            Input::Prompt(p) => p.clone(),
            Input::Messages(m) => {
                let Some(t) = &template else {
                    return Err(usage(format!(
                        "{}: a 'messages' prompt needs a chat template, and {model} has none; give --chat-template FILE.jinja, or write the prompt as 'prompt' text",
                        it.origin
                    )));
                };
                t.render(m, &opts)
                    .map_err(|e| usage(format!("{}: prompt '{}': {e:#}", it.origin, it.id)))?
            }
        };
        let mut ids = tok.encode_special(&text, false)?;
        if let (true, Some(b)) = (tok.add_bos, tok.bos_id) {
            if ids.first() != Some(&b) {
                ids.insert(0, b);
            }
        }
        if ids.is_empty() {
            return Err(usage(format!(
                "{}: prompt '{}' has no tokens",
                it.origin, it.id
            )));
        }
        tokens.push(PromptTokens {
            id: it.id.clone(),
            prompt: ids,
            max_tokens: it.max_tokens,
        });
        rendered.push(text);
    }
    Ok(Prepared {
        items,
        rendered,
        tokens,
        template,
        now,
    })
}
