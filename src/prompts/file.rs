//! The `--prompts` file format: JSON Lines, one prompt per line, read from a file, every
//! `.jsonl` file of a folder (in name order), or standard input (`-`). Every bad line is an
//! error naming the file, the line and the key, as eval sets do.
//!
//! ```text
//! {"id": "sql-join", "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
//!  "max_tokens": 96, "reference": "JOIN", "match": "contains", "tags": ["coding"]}
//! {"id": "haiku", "prompt": "Write a haiku about rain.\n", "tags": ["writing"]}
//! ```

use crate::error::usage;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Default answer budget of a prompt without `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 128;
/// Largest `max_tokens` accepted (every level decodes this many tokens per prompt at most).
pub const MAX_MAX_TOKENS: usize = 4096;

/// One message of a conversation, OpenAI style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// How a prompt's `reference` is matched against an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// The trimmed answer equals the reference (numbers normalised as generation tasks do).
    Exact,
    /// The answer contains the reference (case-insensitive).
    #[default]
    Contains,
    /// The reference is a regular expression that must match somewhere in the answer.
    Regex,
}

/// What the model is given: a conversation (rendered with the chat template) or raw text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    Messages(Vec<Message>),
    Prompt(String),
}

/// One prompt of a `--prompts` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptItem {
    pub id: String,
    pub input: Input,
    pub max_tokens: usize,
    pub reference: Option<String>,
    pub match_kind: MatchKind,
    pub tags: Vec<String>,
    /// `FILE:LINE`, for messages.
    pub origin: String,
}

const KEYS: &[&str] = &[
    "id",
    "messages",
    "prompt",
    "max_tokens",
    "reference",
    "match",
    "tags",
];
const ROLES: &[&str] = &["system", "user", "assistant"];

/// Read prompts from `path`: a `.jsonl` file, a folder of them, or `-` for standard input.
pub fn load(path: &Path) -> Result<Vec<PromptItem>> {
    let mut items = Vec::new();
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| usage(format!("--prompts -: cannot read standard input: {e}")))?;
        items.extend(parse(&text, "<stdin>")?);
    } else if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| usage(format!("--prompts {}: cannot read: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(usage(format!(
                "--prompts {}: the folder holds no .jsonl file",
                path.display()
            )));
        }
        for f in files {
            items.extend(read_file(&f)?);
        }
    } else {
        items.extend(read_file(path)?);
    }
    if items.is_empty() {
        return Err(usage(format!(
            "--prompts {}: no prompt in it (one JSON object per line, with \"id\" and \"messages\" or \"prompt\")",
            path.display()
        )));
    }
    let mut seen = std::collections::HashMap::new();
    for it in &items {
        if let Some(first) = seen.insert(it.id.clone(), it.origin.clone()) {
            return Err(usage(format!(
                "{}: key 'id': \"{}\" is already used at {first}; ids must be unique",
                it.origin, it.id
            )));
        }
    }
    Ok(items)
}

fn read_file(path: &Path) -> Result<Vec<PromptItem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--prompts {}: cannot read: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Parse JSON Lines text; `name` is the file's name in messages.
pub fn parse(text: &str, name: &str) -> Result<Vec<PromptItem>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", i + 1);
        out.push(parse_line(line, &origin)?);
    }
    Ok(out)
}

fn parse_line(line: &str, origin: &str) -> Result<PromptItem> {
    let bad = |key: &str, what: String| usage(format!("{origin}: key '{key}': {what}"));
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| usage(format!("{origin}: not a JSON object: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| usage(format!("{origin}: not a JSON object")))?;
    for k in obj.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(usage(format!(
                "{origin}: unknown key '{k}' (known: {})",
                KEYS.join(", ")
            )));
        }
    }
    let str_of = |key: &str| -> Result<Option<String>> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(key, format!("expected a string, found {other}"))),
        }
    };
    let id = str_of("id")?.ok_or_else(|| usage(format!("{origin}: missing key 'id'")))?;
    if id.trim().is_empty() {
        return Err(bad("id", "empty".into()));
    }
    let input = match (obj.get("messages"), str_of("prompt")?) {
        (Some(_), Some(_)) => {
            return Err(usage(format!(
                "{origin}: keys 'messages' and 'prompt' both given; a line has one of them"
            )))
        }
        (None, None) => {
            return Err(usage(format!(
                "{origin}: missing key 'messages' (a list of {{\"role\", \"content\"}}) or 'prompt' (text)"
            )))
        }
        (None, Some(p)) => {
            if p.is_empty() {
                return Err(bad("prompt", "empty".into()));
            }
            Input::Prompt(p)
        }
        (Some(m), None) => Input::Messages(parse_messages(m, origin)?),
    };
    let max_tokens = match obj.get("max_tokens") {
        None | Some(serde_json::Value::Null) => DEFAULT_MAX_TOKENS,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n as usize <= MAX_MAX_TOKENS => n as usize,
            _ => {
                return Err(bad(
                    "max_tokens",
                    format!("{v}: expected a whole number from 1 to {MAX_MAX_TOKENS}"),
                ))
            }
        },
    };
    let reference = str_of("reference")?;
    let match_kind = match str_of("match")?.as_deref() {
        None => MatchKind::Contains,
        Some("exact") => MatchKind::Exact,
        Some("contains") => MatchKind::Contains,
        Some("regex") => MatchKind::Regex,
        Some(other) => {
            return Err(bad(
                "match",
                format!("'{other}': expected exact, contains or regex"),
            ))
        }
    };
    if obj.contains_key("match") && reference.is_none() {
        return Err(bad("match", "given without a 'reference' to match".into()));
    }
    if let (MatchKind::Regex, Some(r)) = (match_kind, &reference) {
        regex::Regex::new(r).map_err(|e| bad("reference", format!("not a valid regex: {e}")))?;
    }
    let tags = match obj.get("tags") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("tags", format!("{t} is not a string")))
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(bad(
                "tags",
                format!("expected a list of strings, found {other}"),
            ))
        }
    };
    Ok(PromptItem {
        id,
        input,
        max_tokens,
        reference,
        match_kind,
        tags,
        origin: origin.to_string(),
    })
}

fn parse_messages(v: &serde_json::Value, origin: &str) -> Result<Vec<Message>> {
    let bad = |what: String| usage(format!("{origin}: key 'messages': {what}"));
    let arr = v
        .as_array()
        .ok_or_else(|| bad(format!("expected a list, found {v}")))?;
    if arr.is_empty() {
        return Err(bad("empty list".into()));
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let o = m
            .as_object()
            .ok_or_else(|| bad(format!("message {} is not an object", i + 1)))?;
        for k in o.keys() {
            if k != "role" && k != "content" {
                return Err(bad(format!(
                    "message {}: unknown key '{k}' (a message has 'role' and 'content')",
                    i + 1
                )));
            }
        }
        let role = o
            .get("role")
            .and_then(|r| r.as_str())
            .ok_or_else(|| bad(format!("message {}: missing key 'role' (a string)", i + 1)))?;
        if !ROLES.contains(&role) {
            return Err(bad(format!(
                "message {}: role '{role}' (expected one of {})",
                i + 1,
                ROLES.join(", ")
            )));
        }
        if role == "system" && i > 0 {
            return Err(bad(format!(
                "message {}: a system message may only come first",
                i + 1
            )));
        }
        let content = o.get("content").and_then(|c| c.as_str()).ok_or_else(|| {
            bad(format!(
                "message {}: missing key 'content' (a string)",
                i + 1
            ))
        })?;
        out.push(Message {
            role: role.to_string(),
            content: content.to_string(),
        });
    }
    if out.last().is_some_and(|m| m.role != "user") {
        return Err(bad(
            "the last message must be the user's (the model answers it)".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        format!("{:#}", parse(line, "p.jsonl").unwrap_err())
    }

    #[test]
    fn good_lines() {
        let v = parse(
            "{\"id\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"reference\":\"4\",\"match\":\"exact\",\"tags\":[\"chat\"]}\n\n{\"id\":\"b\",\"prompt\":\"Once\"}\n",
            "p.jsonl",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].max_tokens, 8);
        assert_eq!(v[0].match_kind, MatchKind::Exact);
        assert_eq!(v[0].tags, vec!["chat".to_string()]);
        assert!(matches!(&v[0].input, Input::Messages(m) if m.len() == 2 && m[1].content == "Hi"));
        assert_eq!(v[1].input, Input::Prompt("Once".into()));
        assert_eq!(v[1].max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(v[1].origin, "p.jsonl:3");
    }

    #[test]
    fn bad_lines_name_file_line_and_key() {
        assert!(err("{\"id\":\"a\"}").contains("p.jsonl:1: missing key 'messages'"));
        assert!(err("{\"prompt\":\"x\"}").contains("p.jsonl:1: missing key 'id'"));
        assert!(
            err("{\"id\":\"a\",\"prompt\":\"x\",\"colour\":1}").contains("unknown key 'colour'")
        );
        assert!(
            err("{\"id\":\"a\",\"prompt\":\"x\",\"max_tokens\":0}").contains("key 'max_tokens'")
        );
        assert!(err("{\"id\":\"a\",\"prompt\":\"x\",\"max_tokens\":\"9\"}")
            .contains("key 'max_tokens'"));
        assert!(
            err("{\"id\":\"a\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}")
                .contains("role 'bot'")
        );
        assert!(err("{\"id\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\"}]}").contains("last message must be the user's"));
        assert!(
            err("{\"id\":\"a\",\"prompt\":\"x\",\"reference\":\"(\",\"match\":\"regex\"}")
                .contains("not a valid regex")
        );
        assert!(
            err("{\"id\":\"a\",\"prompt\":\"x\",\"match\":\"fuzzy\",\"reference\":\"y\"}")
                .contains("key 'match'")
        );
        assert!(err("{\"id\":\"a\",\"prompt\":\"x\",\"match\":\"exact\"}")
            .contains("without a 'reference'"));
        assert!(err("{\"id\":\"a\",\"prompt\":\"x\",\"tags\":[1]}").contains("key 'tags'"));
        assert!(err("not json").contains("p.jsonl:1: not a JSON object"));
        let dup = format!(
            "{:#}",
            parse(
                "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"y\"}",
                "p.jsonl"
            )
            .and_then(|v| {
                let d = tempfile::tempdir()?;
                let f = d.path().join("p.jsonl");
                std::fs::write(
                    &f,
                    "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"y\"}\n",
                )?;
                assert_eq!(v.len(), 2);
                load(&f)
            })
            .unwrap_err()
        );
        assert!(
            dup.contains("p.jsonl:2: key 'id': \"a\" is already used at"),
            "{dup}"
        );
    }

    #[test]
    fn folders_read_every_jsonl_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("b.jsonl"),
            "{\"id\":\"b\",\"prompt\":\"x\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("a.jsonl"),
            "{\"id\":\"a\",\"prompt\":\"x\"}\n",
        )
        .unwrap();
        std::fs::write(d.path().join("notes.txt"), "not a prompt").unwrap();
        let v = load(d.path()).unwrap();
        assert_eq!(
            v.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(format!("{:#}", load(empty.path()).unwrap_err()).contains("no .jsonl file"));
    }
}
