//! The model's own chat template, rendered with minijinja the way Hugging Face transformers'
//! `apply_chat_template` renders it with Python's jinja2: `trim_blocks` and `lstrip_blocks`,
//! loop controls, Python's string and dict methods (minijinja-contrib's pycompat), and the
//! three functions transformers adds — `raise_exception`, `strftime_now` and a `tojson` that
//! writes what Python's `json.dumps(x, ensure_ascii=False)` writes. Templates come from a GGUF
//! file (`tokenizer.chat_template`, and `tokenizer.chat_template.NAME` for named ones), from a
//! model folder (`chat_template.jinja`, or `tokenizer_config.json`'s `chat_template`, a string
//! or a list of named templates), or from a `.jinja` file given with `--chat-template`.

use crate::error::usage;
use crate::prompts::file::Message;
use anyhow::Result;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use std::path::Path;

/// A chat template and the special-token strings it is rendered with.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    /// `default`, or the name of a named alternative (`tool_use`), or the file's name.
    pub name: String,
    /// Where it came from, e.g. `model.gguf: tokenizer.chat_template`.
    pub origin: String,
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
    /// The unknown and padding tokens, passed as transformers passes every special token
    /// (None: left undefined, as for a tokenizer without one).
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
}

/// A calendar date and time for `strftime_now` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl DateTime {
    /// Now, in UTC.
    pub fn now_utc() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix(secs)
    }

    /// The UTC date of a Unix time (days-from-civil inverse, proleptic Gregorian).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Day of the year, 1-based.
    fn yday(&self) -> u32 {
        const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0;
        CUM[(self.month - 1) as usize] + self.day + u32::from(leap && self.month > 2)
    }

    /// Python's `strftime` for the directives chat templates use (%d %-d %m %-m %b %B %y %Y
    /// %H %M %S %j %%); any other directive is an error naming it.
    pub fn strftime(&self, fmt: &str) -> Result<String, String> {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let month = MONTHS[(self.month.clamp(1, 12) - 1) as usize];
        let mut out = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let mut d = chars.next().ok_or("a format that ends in '%'")?;
            let pad = if d == '-' {
                d = chars.next().ok_or("a format that ends in '%-'")?;
                false
            } else {
                true
            };
            let num = |v: u32| {
                if pad {
                    format!("{v:02}")
                } else {
                    v.to_string()
                }
            };
            match d {
                'd' => out.push_str(&num(self.day)),
                'm' => out.push_str(&num(self.month)),
                'H' => out.push_str(&num(self.hour)),
                'M' => out.push_str(&num(self.minute)),
                'S' => out.push_str(&num(self.second)),
                'j' => out.push_str(&if pad {
                    format!("{:03}", self.yday())
                } else {
                    self.yday().to_string()
                }),
                'y' => out.push_str(&num((self.year.rem_euclid(100)) as u32)),
                'Y' => out.push_str(&self.year.to_string()),
                'b' => out.push_str(&month[..3]),
                'B' => out.push_str(month),
                '%' => out.push('%'),
                other => return Err(format!("strftime directive '%{other}' is not supported")),
            }
        }
        Ok(out)
    }
}

/// What a template is rendered with besides the messages.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    /// The date `strftime_now` returns (transformers uses the local time of the call).
    pub now: DateTime,
}

impl ChatTemplate {
    /// Render `messages` (transformers' `apply_chat_template(..., tokenize=False)`).
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        let mut env = environment(opts.now);
        env.add_template_owned("chat", without_generation_blocks(&self.source))
            .map_err(|e| usage(format!("chat template ({}): {}", self.origin, describe(&e))))?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| usage(format!("chat template ({}): {}", self.origin, describe(&e))))?;
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let ctx = minijinja::context! {
            messages => msgs,
            tools => Value::from(()),
            documents => Value::from(()),
            add_generation_prompt => opts.add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            unk_token => self.unk_token.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
            pad_token => self.pad_token.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
        };
        tmpl.render(ctx)
            .map_err(|e| usage(format!("chat template ({}): {}", self.origin, describe(&e))))
    }
}

/// transformers' `{% generation %}` … `{% endgeneration %}` only marks the assistant's tokens
/// for training masks and renders its body unchanged: the same as an `if true` block, whose
/// whitespace-control markers are kept.
fn without_generation_blocks(src: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"\{%([-+]?)\s*(end)?generation\s*([-+]?)%\}").expect("valid regex")
    });
    re.replace_all(src, |c: &regex::Captures| {
        let kw = if c.get(2).is_some() {
            "endif"
        } else {
            "if true"
        };
        format!("{{%{} {kw} {}%}}", &c[1], &c[3])
    })
    .into_owned()
}

/// A minijinja error with its cause chain, on one line.
fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// The environment transformers renders chat templates in, in minijinja.
pub fn environment(now: DateTime) -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function(
        "strftime_now",
        move |fmt: String| -> Result<String, Error> {
            now.strftime(&fmt)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
        },
    );
    env.add_filter("tojson", tojson);
    // jinja2's `iterable` is Python's iter(): false for None (minijinja's says true), true
    // for an undefined value.
    env.add_test("iterable", |v: Value| {
        !v.is_none() && (v.is_undefined() || v.try_iter().is_ok())
    });
    env
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match &separators {
        Some(s) if s.len() == 2 => (s[0].clone(), s[1].clone()),
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be a pair",
            ))
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let w = JsonWriter {
        indent,
        ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    w.write(&value, 0, &mut out)?;
    Ok(out)
}

/// Python's `json.dumps`, for minijinja values.
struct JsonWriter {
    indent: Option<usize>,
    ascii: bool,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
}

impl JsonWriter {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    }

    fn write(&self, v: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if let (true, Some(i)) = (v.is_integer(), v.as_i64()) {
                    out.push_str(&i.to_string());
                } else {
                    let f: f64 = f64::try_from(v.clone()).map_err(|_| {
                        Error::new(ErrorKind::InvalidOperation, "tojson: not a number")
                    })?;
                    out.push_str(&python_float(f));
                }
            }
            ValueKind::String => self.string(v.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    self.write(it, depth + 1, out)?;
                }
                self.newline(depth, out);
                out.push(']');
            }
            ValueKind::Map => {
                let mut keys: Vec<Value> = v.try_iter()?.collect();
                if self.sort_keys {
                    keys.sort_by_key(|k| k.to_string());
                }
                if keys.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    match k.as_str() {
                        Some(s) => self.string(s, out),
                        None => self.string(&k.to_string(), out),
                    }
                    out.push_str(&self.key_sep);
                    self.write(&v.get_item(k)?, depth + 1, out)?;
                }
                self.newline(depth, out);
                out.push('}');
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: cannot serialize a {} value", v.kind()),
                ))
            }
        }
        Ok(())
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ascii && !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents from -4
/// to 15 (always with a '.'), else `d.ddde±XX`.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip mantissa, e.g. "-1.5e-7".
    let e = format!("{f:e}");
    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = x.parse().unwrap_or(0);
    let (sign, m) = match m.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", m),
    };
    let digits: String = m.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&x) {
        let n = digits.len() as i32;
        let s = if x < 0 {
            format!("0.{}{digits}", "0".repeat((-x - 1) as usize))
        } else if x + 1 >= n {
            format!("{digits}{}.0", "0".repeat((x + 1 - n) as usize))
        } else {
            format!(
                "{}.{}",
                &digits[..(x + 1) as usize],
                &digits[(x + 1) as usize..]
            )
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        format!("{sign}{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs())
    }
}

/// The templates a GGUF file carries: `tokenizer.chat_template` as `default`, and every
/// `tokenizer.chat_template.NAME`.
pub fn from_gguf(path: &Path) -> Result<Vec<ChatTemplate>> {
    use candle_core::quantized::gguf_file::{Content, Value as G};
    let mut f = std::fs::File::open(path)
        .map_err(|e| usage(format!("{}: cannot open: {e}", path.display())))?;
    let ct = Content::read(&mut f)
        .map_err(|e| usage(format!("{}: not a readable GGUF file: {e}", path.display())))?;
    let tokens: Vec<String> = match ct.metadata.get("tokenizer.ggml.tokens") {
        Some(G::Array(a)) => a
            .iter()
            .map(|t| t.to_string().cloned().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    let token_opt = |key: &str| -> Option<String> {
        ct.metadata
            .get(key)
            .and_then(|v| v.to_u32().ok())
            .and_then(|i| tokens.get(i as usize).cloned())
    };
    let token = |key: &str| -> String { token_opt(key).unwrap_or_default() };
    let (unk, pad) = (
        token_opt("tokenizer.ggml.unknown_token_id"),
        token_opt("tokenizer.ggml.padding_token_id"),
    );
    let (bos, eos) = (
        token("tokenizer.ggml.bos_token_id"),
        token("tokenizer.ggml.eos_token_id"),
    );
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut keys: Vec<&String> = ct
        .metadata
        .keys()
        .filter(|k| {
            k.as_str() == "tokenizer.chat_template" || k.starts_with("tokenizer.chat_template.")
        })
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let Ok(src) = ct.metadata[k].to_string() else {
            return Err(usage(format!(
                "{}: metadata '{k}' is not a string",
                path.display()
            )));
        };
        let name = k
            .strip_prefix("tokenizer.chat_template.")
            .unwrap_or("default")
            .to_string();
        out.push(ChatTemplate {
            name,
            origin: format!("{file}: {k}"),
            source: src.clone(),
            bos_token: bos.clone(),
            eos_token: eos.clone(),
            unk_token: unk.clone(),
            pad_token: pad.clone(),
        });
    }
    Ok(out)
}

/// The templates of a model folder: `chat_template.jinja` (transformers ≥ 4.43 saves it so),
/// else `tokenizer_config.json`'s `chat_template` (a string, or a list of `{name, template}`).
pub fn from_dir(dir: &Path) -> Result<Vec<ChatTemplate>> {
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| usage(format!("{}: not JSON: {e}", cfg_path.display())))?,
        Err(_) => serde_json::Value::Null,
    };
    let special = |key: &str| -> String {
        match cfg.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Object(o)) => o
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    };
    let (bos, eos) = (special("bos_token"), special("eos_token"));
    let opt = |s: String| (!s.is_empty()).then_some(s);
    let (unk, pad) = (opt(special("unk_token")), opt(special("pad_token")));
    let mk = |name: &str, origin: String, source: String| ChatTemplate {
        name: name.to_string(),
        origin,
        source,
        bos_token: bos.clone(),
        eos_token: eos.clone(),
        unk_token: unk.clone(),
        pad_token: pad.clone(),
    };
    let jinja = dir.join("chat_template.jinja");
    if let Ok(src) = std::fs::read_to_string(&jinja) {
        return Ok(vec![mk("default", jinja.display().to_string(), src)]);
    }
    let origin = format!("{}: chat_template", cfg_path.display());
    Ok(match cfg.get("chat_template") {
        Some(serde_json::Value::String(s)) => vec![mk("default", origin, s.clone())],
        Some(serde_json::Value::Array(list)) => {
            let mut v = Vec::new();
            for (i, e) in list.iter().enumerate() {
                let (Some(n), Some(t)) = (
                    e.get("name").and_then(|x| x.as_str()),
                    e.get("template").and_then(|x| x.as_str()),
                ) else {
                    return Err(usage(format!(
                        "{origin}: entry {} is not {{\"name\", \"template\"}}",
                        i + 1
                    )));
                };
                v.push(mk(n, format!("{origin}[{n}]"), t.to_string()));
            }
            v
        }
        _ => Vec::new(),
    })
}

/// Pick the template to use: `choice` is a name among the model's templates, a `.jinja`
/// file, or None for the model's default.
pub fn choose(
    model_templates: Vec<ChatTemplate>,
    choice: Option<&str>,
    model: &Path,
) -> Result<Option<ChatTemplate>> {
    let (bos, eos, unk, pad) = model_templates
        .first()
        .map(|t| {
            (
                t.bos_token.clone(),
                t.eos_token.clone(),
                t.unk_token.clone(),
                t.pad_token.clone(),
            )
        })
        .unwrap_or_default();
    match choice {
        None => Ok(model_templates.into_iter().find(|t| t.name == "default")),
        Some(c) if Path::new(c).is_file() => {
            let src = std::fs::read_to_string(c)
                .map_err(|e| usage(format!("--chat-template {c}: cannot read: {e}")))?;
            Ok(Some(ChatTemplate {
                name: Path::new(c)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                origin: c.to_string(),
                source: src,
                bos_token: bos,
                eos_token: eos,
                unk_token: unk,
                pad_token: pad,
            }))
        }
        Some(c) => {
            let names: Vec<String> = model_templates.iter().map(|t| t.name.clone()).collect();
            model_templates
                .into_iter()
                .find(|t| t.name == c)
                .map(Some)
                .ok_or_else(|| {
                    usage(format!(
                        "--chat-template {c}: not a file, and {} has no template of that name ({})",
                        model.display(),
                        if names.is_empty() {
                            "it has none".to_string()
                        } else {
                            format!("it has: {}", names.join(", "))
                        }
                    ))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str) -> ChatTemplate {
        ChatTemplate {
            name: "t".into(),
            origin: "test".into(),
            source: src.into(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
            unk_token: None,
            pad_token: None,
        }
    }

    fn opts() -> RenderOptions {
        RenderOptions {
            add_generation_prompt: true,
            now: DateTime::from_unix(1_785_058_200), // 2026-07-26 09:30:00 UTC
        }
    }

    fn msgs() -> Vec<Message> {
        vec![
            Message {
                role: "system".into(),
                content: "Be brief.".into(),
            },
            Message {
                role: "user".into(),
                content: "Say \"hé\" \\ 中文\n".into(),
            },
        ]
    }

    #[test]
    fn dates_and_strftime() {
        let d = DateTime::from_unix(1_785_058_200);
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute),
            (2026, 7, 26, 9, 30)
        );
        assert_eq!(d.strftime("%d %b %Y").unwrap(), "26 Jul 2026");
        assert_eq!(d.strftime("%-d %B %y, %j %%").unwrap(), "26 July 26, 207 %");
        assert!(d.strftime("%Q").unwrap_err().contains("%Q"));
        let leap = DateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        assert_eq!(
            DateTime::from_unix(0)
                .strftime("%Y-%m-%d %H:%M:%S")
                .unwrap(),
            "1970-01-01 00:00:00"
        );
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let out = t("{{ messages | tojson }}|{{ messages[1] | tojson(indent=2) }}|{{ [1, 2.5, 2.0, true, none] | tojson }}")
            .render(&msgs(), &opts())
            .unwrap();
        assert_eq!(
            out,
            "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Say \\\"hé\\\" \\\\ 中文\\n\"}]|{\n  \"role\": \"user\",\n  \"content\": \"Say \\\"hé\\\" \\\\ 中文\\n\"\n}|[1, 2.5, 2.0, true, null]"
        );
        let out = t("{{ 'é' | tojson(ensure_ascii=true) }}")
            .render(&[], &opts())
            .unwrap();
        assert_eq!(out, "\"\\u00e9\"");
    }

    #[test]
    fn trim_blocks_loop_controls_and_python_methods() {
        let src = "{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'system' %}{% continue %}{% endif %}\n<{{ m.role }}>{{ m.content.strip() }}\n{% endfor %}\n{% if add_generation_prompt %}<assistant>{% endif %}";
        let out = t(src).render(&msgs(), &opts()).unwrap();
        assert_eq!(out, "<s><user>Say \"hé\" \\ 中文\n<assistant>");
    }

    #[test]
    fn raise_exception_and_strftime_now() {
        let e = t("{{ raise_exception('System role not supported') }}")
            .render(&msgs(), &opts())
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("System role not supported"),
            "{e:#}"
        );
        let out = t("Today Date: {{ strftime_now('%d %b %Y') }}")
            .render(&[], &opts())
            .unwrap();
        assert_eq!(out, "Today Date: 26 Jul 2026");
    }

    #[test]
    fn generation_blocks_render_their_body() {
        let out = t("{% for m in messages %}{%- generation -%} [{{ m.role }}] {%- endgeneration %}{% endfor %}|{{ none is iterable }}|{{ messages is iterable }}")
            .render(&msgs(), &opts())
            .unwrap();
        assert_eq!(out, "[system][user]|False|True");
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(-123.25), "-123.25");
        assert_eq!(python_float(0.00012), "0.00012");
        assert_eq!(python_float(12345678.0), "12345678.0");
    }
}
