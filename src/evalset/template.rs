//! Prompt templates of evalset.toml: owns parsing `{field}` holes and `{{`/`}}` literal braces,
//! and rendering a template with a record's fields. It must not know tasks or files.

use super::items::{value_text, Record};

/// A prompt template: literal text and `{field}` holes; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Template {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_alphanumeric() || c == '_' || c == '-' => name.push(c),
                            Some(c) => {
                                return Err(format!(
                                    "template '{s}': '{c}' inside {{...}}; a field name is letters, digits, '_' or '-' (write {{{{ for a literal brace)"
                                ))
                            }
                            None => return Err(format!("template '{s}': unclosed '{{'")),
                        }
                    }
                    if name.is_empty() {
                        return Err(format!("template '{s}': empty {{}}"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => {
                    return Err(format!(
                        "template '{s}': unmatched '}}' (write }}}} for a literal brace)"
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            parts,
            source: s.to_string(),
        })
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Lit(_) => None,
        })
    }

    pub fn uses(&self, field: &str) -> bool {
        self.fields().any(|f| f == field)
    }

    /// Fill the holes from `item`; `choice` fills `{choice}` when given. Err names the missing field.
    pub fn render(
        &self,
        item: &Record,
        choice: Option<&str>,
    ) -> std::result::Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Field(f) if f == "choice" && choice.is_some() => {
                    out.push_str(choice.unwrap_or_default())
                }
                Part::Field(f) => match item.get(f) {
                    Some(v) => out.push_str(&value_text(v).ok_or_else(|| {
                        format!(
                            "field '{f}' is not a string or number (template '{}')",
                            self.source
                        )
                    })?),
                    None => {
                        return Err(format!(
                            "no field '{f}' (template '{}' uses it)",
                            self.source
                        ))
                    }
                },
            }
        }
        Ok(out)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}
