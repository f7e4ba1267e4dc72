//! The model's own tokenizer: `tokenizer.json` for safetensors models, and for GGUF files
//! one built from the metadata exactly as llama.cpp builds it.
//!
//! For GGUF, `tokenizer.ggml.model` = `gpt2` (byte-level BPE) takes the pre-tokenizer named
//! by `tokenizer.ggml.pre` (the regexes of llama.cpp's `llama-vocab.cpp`). An unknown `pre`
//! is an error rather than a silent fallback to GPT-2's regex, which would change token
//! counts (candle's GGUF tokenizer falls back silently, e.g. for SmolLM2's `smollm`).
//! `tokenizer.ggml.model` = `llama` (SentencePiece, e.g. Gemma) is tokenized here with
//! llama.cpp's algorithm: merge the adjacent pair with the highest score, bytes as fallback.
//! Text is tokenized as plain text: control tokens written in the text are not parsed
//! (llama.cpp's `parse_special = false`); user-defined tokens are matched, as llama.cpp does.

use crate::error::usage;
use anyhow::{Context, Result};
use candle_core::quantized::gguf_file;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Pre-tokenizer names (`tokenizer.ggml.pre`) this module implements.
pub const SUPPORTED_PRE: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva",
    "llama-bpe",
    "llama3",
    "smaug-bpe",
    "qwen2",
    "deepseek-r1-qwen",
    "gpt-4o",
];

const REGEX_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o's split (Phi-4-mini): the regex of its tokenizer.json, which llama.cpp's
/// `LLAMA_VOCAB_PRE_TYPE_GPT4O` cites as the original of its own rewrite.
const REGEX_GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

enum Inner {
    Hf(Box<Tokenizer>),
    Spm(Box<Spm>),
}

/// Control tokens that end a chat turn or a document in common model families.
const END_TOKENS: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<eos>",
    "</s>",
];

/// EOS ids of a tokenizer.json model: its end tokens that exist in the vocabulary.
fn dir_eos_ids(_dir: &Path, t: &Tokenizer) -> Vec<u32> {
    let mut v: Vec<u32> = END_TOKENS.iter().filter_map(|s| t.token_to_id(s)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A model's tokenizer and its BOS convention.
pub struct ModelTokenizer {
    inner: Inner,
    pub add_bos: bool,
    pub bos_id: Option<u32>,
    /// Tokens that end a generation (EOS, end-of-turn).
    pub eos_ids: Vec<u32>,
    /// What it is, for the results file (e.g. "gguf gpt2 bpe, pre=smollm").
    pub description: String,
    /// Control, user-defined and unknown tokens of a GGUF vocabulary, longest first: the
    /// pieces `encode_special` matches in text (llama.cpp's `parse_special`). Empty for a
    /// tokenizer.json, whose added tokens the tokenizer itself matches.
    specials: Vec<(String, u32)>,
}

impl ModelTokenizer {
    /// Token ids of `text`, with BOS first when `with_bos` and the model has one.
    pub fn encode(&self, text: &str, with_bos: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if with_bos {
            if let Some(b) = self.bos_id {
                ids.push(b);
            }
        }
        match &self.inner {
            Inner::Hf(t) => {
                let enc = t
                    .encode(text, false)
                    .map_err(|e| anyhow::anyhow!("tokenizer failed: {e}"))?;
                ids.extend_from_slice(enc.get_ids());
            }
            Inner::Spm(s) => ids.extend(s.encode(text)),
        }
        Ok(ids)
    }

    /// Token ids of text that may hold special tokens written out (a rendered chat template):
    /// each special token's text becomes that token, the text between is encoded as usual,
    /// as llama.cpp tokenizes with `parse_special`. BOS first when `with_bos`.
    pub fn encode_special(&self, text: &str, with_bos: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if with_bos {
            ids.extend(self.bos_id);
        }
        let mut rest = text;
        while !rest.is_empty() {
            // The earliest special token in the rest, the longest on a tie.
            let hit = self
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            match hit {
                Some((at, len, id)) => {
                    if at > 0 {
                        ids.extend(self.encode(&rest[..at], false)?);
                    }
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    ids.extend(self.encode(rest, false)?);
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// The id of a token written out, if the vocabulary has it as one token.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        if let Some((_, id)) = self.specials.iter().find(|(s, _)| s == text) {
            return Some(*id);
        }
        match &self.inner {
            Inner::Hf(t) => t.token_to_id(text),
            Inner::Spm(_) => None,
        }
    }

    /// Load `tokenizer.json` (and `tokenizer_config.json` for the BOS setting) from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let p = dir.join("tokenizer.json");
        if !p.exists() {
            return Err(usage(format!(
                "{}: no tokenizer.json in the model directory",
                dir.display()
            )));
        }
        let t = Tokenizer::from_file(&p)
            .map_err(|e| usage(format!("{}: cannot load tokenizer: {e}", p.display())))?;
        // Does the tokenizer put a special token first? Compare with and without specials.
        let with = t
            .encode("a", true)
            .map_err(|e| anyhow::anyhow!("tokenizer failed: {e}"))?;
        let without = t
            .encode("a", false)
            .map_err(|e| anyhow::anyhow!("tokenizer failed: {e}"))?;
        let bos_id = if with.get_ids().len() > without.get_ids().len()
            && with.get_special_tokens_mask().first() == Some(&1)
        {
            with.get_ids().first().copied()
        } else {
            None
        };
        Ok(ModelTokenizer {
            eos_ids: dir_eos_ids(dir, &t),
            inner: Inner::Hf(Box::new(t)),
            add_bos: bos_id.is_some(),
            bos_id,
            description: "tokenizer.json".into(),
            specials: Vec::new(),
        })
    }

    /// Save as a Hugging Face `tokenizer.json` (byte-level BPE tokenizers only).
    pub fn save_json(&self, path: &Path) -> Result<()> {
        match &self.inner {
            Inner::Hf(t) => t
                .save(path, false)
                .map_err(|e| anyhow::anyhow!("cannot save {}: {e}", path.display())),
            Inner::Spm(_) => {
                anyhow::bail!("sentencepiece GGUF tokenizers cannot be saved as tokenizer.json")
            }
        }
    }

    /// Text of `ids` (special tokens left out).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.inner {
            Inner::Hf(t) if t.get_decoder().is_some() => t
                .decode(ids, true)
                .map_err(|e| anyhow::anyhow!("tokenizer failed to decode: {e}")),
            Inner::Hf(t) => {
                // GGUF byte-level BPE vocabularies are built without a decoder: map the pieces
                // back to bytes as GPT-2's byte-level decoder does.
                use tokenizers::decoders::byte_level::ByteLevel;
                use tokenizers::Decoder;
                let pieces: Vec<String> = ids
                    .iter()
                    .filter(|id| !self.eos_ids.contains(id) && Some(**id) != self.bos_id)
                    .filter_map(|&id| t.id_to_token(id))
                    .collect();
                ByteLevel::default()
                    .decode(pieces)
                    .map_err(|e| anyhow::anyhow!("tokenizer failed to decode: {e}"))
            }
            Inner::Spm(s) => Ok(s.decode(ids)),
        }
    }

    /// sha256 of what decides which ids a text gets and what they mean: every token's text in
    /// id order, BOS and whether it is added, the end tokens. Two tokenizers with the same
    /// fingerprint give the same ids the same meaning (a reference pack checks this, beside
    /// comparing the text's token ids themselves).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let n = self.vocab_size();
        h.update((n as u64).to_le_bytes());
        for id in 0..n as u32 {
            let piece = match &self.inner {
                Inner::Hf(t) => t.id_to_token(id).unwrap_or_default(),
                Inner::Spm(s) => s.pieces[id as usize].clone(),
            };
            h.update((piece.len() as u64).to_le_bytes());
            h.update(piece.as_bytes());
        }
        h.update([self.add_bos as u8]);
        h.update(self.bos_id.map_or(u64::MAX, |b| b as u64).to_le_bytes());
        for e in &self.eos_ids {
            h.update(e.to_le_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The piece of token `id` as the vocabulary spells it.
    fn piece(&self, id: u32) -> String {
        match &self.inner {
            Inner::Hf(t) => t.id_to_token(id).unwrap_or_default(),
            Inner::Spm(s) => s.pieces.get(id as usize).cloned().unwrap_or_default(),
        }
    }

    /// How `other` differs from this tokenizer, in words (the first difference found: the
    /// vocabulary's size, a token's piece, BOS, EOS, whether BOS is added); None when they
    /// agree. Token ids mean the same thing in two models only when this is None.
    pub fn difference(&self, other: &ModelTokenizer) -> Option<String> {
        let (a, b) = (self.vocab_size(), other.vocab_size());
        if a != b {
            return Some(format!("vocabulary of {b} tokens, not {a}"));
        }
        if let Some(id) = (0..a as u32).find(|&id| self.piece(id) != other.piece(id)) {
            return Some(format!(
                "token {id} is {:?}, not {:?}",
                other.piece(id),
                self.piece(id)
            ));
        }
        if self.bos_id != other.bos_id || self.add_bos != other.add_bos {
            return Some(format!(
                "BOS {:?} (added: {}), not {:?} (added: {})",
                other.bos_id, other.add_bos, self.bos_id, self.add_bos
            ));
        }
        if self.eos_ids != other.eos_ids {
            return Some(format!(
                "end-of-generation tokens {:?}, not {:?}",
                other.eos_ids, self.eos_ids
            ));
        }
        None
    }

    /// Vocabulary size as the tokenizer sees it (added tokens included).
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Inner::Hf(t) => t.get_vocab_size(true),
            Inner::Spm(s) => s.pieces.len(),
        }
    }

    /// Build the tokenizer from GGUF metadata, as llama.cpp does.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = |k: &str| ct.metadata.get(k);
        let model = md("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| {
                usage(format!(
                    "{}: GGUF has no tokenizer.ggml.model; qeval needs the tokenizer in the metadata",
                    path.display()
                ))
            })?;
        let tokens = string_array(md("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", path)?;
        let types: Vec<i32> = match md("tokenizer.ggml.token_type") {
            Some(gguf_file::Value::Array(a)) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        let bos_id = md("tokenizer.ggml.bos_token_id").and_then(|v| v.to_u32().ok());
        let mut eos_ids: Vec<u32> = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
            .iter()
            .filter_map(|k| md(k).and_then(|v| v.to_u32().ok()))
            .collect();
        // Chat models end a turn with a control token that is not always the GGUF's EOS.
        for (i, t) in tokens.iter().enumerate() {
            let control = types.get(i).is_some_and(|&ty| ty == 3);
            if control && END_TOKENS.contains(&t.as_str()) {
                eos_ids.push(i as u32);
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        // llama.cpp's special-token cache: control (3), user-defined (4) and unknown (2) tokens.
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                !t.is_empty() && types.get(*i).is_some_and(|ty| [2, 3, 4].contains(ty))
            })
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let add_bos_md = md("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok());
        match model.as_str() {
            "gpt2" => {
                let pre = md("tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok())
                    .cloned()
                    .unwrap_or_else(|| "default".into());
                let merges =
                    string_array(md("tokenizer.ggml.merges"), "tokenizer.ggml.merges", path)?;
                let t = build_bpe(&tokens, &types, &merges, &pre, path)?;
                // llama.cpp: BPE vocabularies add BOS unless the metadata says otherwise.
                let add_bos = add_bos_md.unwrap_or(true) && bos_id.is_some();
                Ok(ModelTokenizer {
                    inner: Inner::Hf(Box::new(t)),
                    add_bos,
                    bos_id: if add_bos { bos_id } else { None },
                    eos_ids: eos_ids.clone(),
                    description: format!("gguf gpt2 byte-level bpe, pre={pre}"),
                    specials,
                })
            }
            "llama" => {
                let scores: Vec<f32> = match md("tokenizer.ggml.scores") {
                    Some(gguf_file::Value::Array(a)) => {
                        a.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect()
                    }
                    _ => vec![0.0; tokens.len()],
                };
                let add_space_prefix = md("tokenizer.ggml.add_space_prefix")
                    .and_then(|v| v.to_bool().ok())
                    .unwrap_or(true);
                let spm = Spm::new(tokens, scores, types, add_space_prefix);
                let add_bos = add_bos_md.unwrap_or(true) && bos_id.is_some();
                Ok(ModelTokenizer {
                    inner: Inner::Spm(Box::new(spm)),
                    add_bos,
                    bos_id: if add_bos { bos_id } else { None },
                    eos_ids: eos_ids.clone(),
                    description: format!(
                        "gguf sentencepiece (llama.cpp spm), add_space_prefix={add_space_prefix}"
                    ),
                    specials,
                })
            }
            other => Err(usage(format!(
                "{}: tokenizer model '{other}' is not supported (qeval handles gpt2 and llama)",
                path.display()
            ))),
        }
    }
}

fn string_array(v: Option<&gguf_file::Value>, key: &str, path: &Path) -> Result<Vec<String>> {
    match v {
        Some(gguf_file::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.to_string()
                    .cloned()
                    .map_err(|_| usage(format!("{}: {key} holds a non-string", path.display())))
            })
            .collect(),
        _ => Err(usage(format!(
            "{}: GGUF metadata has no array '{key}'",
            path.display()
        ))),
    }
}

fn split(regex: &str) -> Result<PreTokenizerWrapper> {
    Ok(Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| anyhow::anyhow!("bad pre-tokenizer regex: {e}"))?
    .into())
}

fn build_bpe(
    tokens: &[String],
    types: &[i32],
    merges: &[String],
    pre: &str,
    path: &Path,
) -> Result<Tokenizer> {
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| usage(format!("{}: bad merge entry '{m}'", path.display())))
        })
        .collect::<Result<_>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(matches!(pre, "llama-bpe" | "llama3" | "smaug-bpe"))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build BPE: {e}"))?;
    let mut t = Tokenizer::new(bpe);
    let byte_level_only = ByteLevel::new(false, false, false);
    let pre_tok: PreTokenizerWrapper = match pre {
        "default" | "gpt2" | "gpt-2" => ByteLevel::new(false, false, true).into(),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            Sequence::new(vec![split(r"\p{N}")?, ByteLevel::new(false, false, true).into()]).into()
        }
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            Sequence::new(vec![split(REGEX_LLAMA3)?, byte_level_only.into()]).into()
        }
        "qwen2" | "deepseek-r1-qwen" => {
            Sequence::new(vec![split(REGEX_QWEN2)?, byte_level_only.into()]).into()
        }
        "gpt-4o" => Sequence::new(vec![split(REGEX_GPT4O)?, byte_level_only.into()]).into(),
        other => {
            return Err(usage(format!(
                "{}: tokenizer.ggml.pre = '{other}' is not supported; qeval refuses to guess because a wrong pre-tokenizer silently changes token counts. Supported: {}. Use the model's safetensors directory (with tokenizer.json) instead.",
                path.display(),
                SUPPORTED_PRE.join(", ")
            )))
        }
    };
    t.with_pre_tokenizer(Some(pre_tok));
    // User-defined tokens (type 4) are matched in plain text by llama.cpp; control tokens are not.
    let user: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, &ty)| ty == 4)
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    if !user.is_empty() {
        t.add_tokens(user)
            .map_err(|e| anyhow::anyhow!("cannot add the GGUF's user-defined tokens: {e}"))?;
    }
    Ok(t)
}

/// SentencePiece-style tokenizer as llama.cpp runs it for `tokenizer.ggml.model = llama`.
struct Spm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    index: HashMap<String, u32>,
    byte_ids: [Option<u32>; 256],
    /// User-defined tokens, longest first (matched in the raw text before SPM).
    user: Vec<(String, u32)>,
    unk: u32,
    add_space_prefix: bool,
}

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    // Highest score first; on ties the leftmost pair first (llama.cpp's comparator).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score
            .partial_cmp(&o.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| o.left.cmp(&self.left))
    }
}

#[derive(Clone)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// Pieces back to text: `▁` is a space, `<0xXX>` a byte; control tokens are dropped.
    fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(p) = self.pieces.get(id as usize) else {
                continue;
            };
            if let Some(b) = self.byte_ids.iter().position(|x| *x == Some(id)) {
                bytes.push(b as u8);
            } else if !(p.starts_with('<') && p.ends_with('>') && p.len() > 2) {
                bytes.extend_from_slice(p.replace('\u{2581}', " ").as_bytes());
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn new(pieces: Vec<String>, scores: Vec<f32>, types: Vec<i32>, add_space_prefix: bool) -> Self {
        let mut index = HashMap::with_capacity(pieces.len());
        let mut byte_ids = [None; 256];
        let mut user = Vec::new();
        let mut unk = 0;
        for (i, p) in pieces.iter().enumerate() {
            let ty = types.get(i).copied().unwrap_or(1);
            if ty == 6 {
                // byte token "<0xAB>"
                if let Some(h) = p.strip_prefix("<0x").and_then(|r| r.strip_suffix('>')) {
                    if let Ok(b) = u8::from_str_radix(h, 16) {
                        byte_ids[b as usize] = Some(i as u32);
                    }
                }
                continue;
            }
            if ty == 2 {
                unk = i as u32;
            }
            if ty == 4 && !p.is_empty() {
                user.push((p.clone(), i as u32));
            }
            if ty == 1 || ty == 4 {
                index.entry(p.clone()).or_insert(i as u32);
            }
        }
        user.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Spm {
            pieces,
            scores,
            index,
            byte_ids,
            user,
            unk,
            add_space_prefix,
        }
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        // Partition on user-defined tokens, longest first.
        enum Frag<'a> {
            Text(&'a str),
            Tok(u32),
        }
        let mut frags = vec![Frag::Text(text)];
        for (s, id) in &self.user {
            if !text.contains(s.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                match f {
                    Frag::Text(t) => {
                        let mut rest = t;
                        while let Some(p) = rest.find(s.as_str()) {
                            if p > 0 {
                                next.push(Frag::Text(&rest[..p]));
                            }
                            next.push(Frag::Tok(*id));
                            rest = &rest[p + s.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Frag::Text(rest));
                        }
                    }
                    t => next.push(t),
                }
            }
            frags = next;
        }
        let mut out = Vec::new();
        let mut first = true;
        for f in frags {
            match f {
                Frag::Tok(id) => out.push(id),
                Frag::Text(t) => {
                    let mut s = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && first {
                        s.push(' ');
                    }
                    s.push_str(t);
                    let s = s.replace(' ', "\u{2581}");
                    self.encode_piece(&s, &mut out);
                }
            }
            first = false;
        }
        out
    }

    fn encode_piece(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut syms: Vec<Sym> = Vec::new();
        for (i, (off, c)) in text.char_indices().enumerate() {
            syms.push(Sym {
                start: off,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
        }
        let n = syms.len();
        for (i, s) in syms.iter_mut().enumerate() {
            s.next = if i + 1 < n { Some(i + 1) } else { None };
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: usize, r: usize| {
            let start = syms[l].start;
            let size = syms[l].len + syms[r].len;
            if let Some(&id) = self.index.get(&text[start..start + size]) {
                heap.push(Bigram {
                    score: self.scores.get(id as usize).copied().unwrap_or(0.0),
                    left: l,
                    right: r,
                    size,
                });
            }
        };
        for i in 1..n {
            try_add(&mut heap, &syms, i - 1, i);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(nx) = syms[r].next {
                syms[nx].prev = Some(l);
            }
            if let Some(p) = syms[l].prev {
                try_add(&mut heap, &syms, p, l);
            }
            if let Some(nx) = syms[l].next {
                try_add(&mut heap, &syms, l, nx);
            }
        }
        let mut i = Some(0);
        while let Some(k) = i {
            let s = &syms[k];
            let piece = &text[s.start..s.start + s.len];
            match self.index.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        out.push(self.byte_ids[b as usize].unwrap_or(self.unk));
                    }
                }
            }
            i = s.next;
        }
    }
}

/// Read just a GGUF file's tokenizer (used by tests and by `plan`).
/// The tokenizer of a model path: a GGUF file's metadata, or a directory's tokenizer.json.
pub fn load_for(path: &Path) -> Result<ModelTokenizer> {
    if path.is_dir() {
        ModelTokenizer::from_dir(path)
    } else {
        gguf_tokenizer(path)
    }
}

pub fn gguf_tokenizer(path: &Path) -> Result<ModelTokenizer> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    gguf_tokenizer_from_reader(&mut std::io::BufReader::new(f), path)
}

/// A GGUF model's tokenizer from any reader positioned at the file's start (the file, or
/// bytes in memory); `path` names the source in messages.
pub fn gguf_tokenizer_from_reader<R: std::io::Read + std::io::Seek>(
    reader: &mut R,
    path: &Path,
) -> Result<ModelTokenizer> {
    // The tokenizer is metadata: files of any tensor type have one.
    let (ct, _) = super::source::read_gguf_content_iq(reader, path)?;
    ModelTokenizer::from_gguf(&ct, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    /// The pieces `regex` splits `text` into.
    fn pieces(regex: &str, text: &str) -> Vec<String> {
        let mut p = PreTokenizedString::from(text);
        split(regex).unwrap().pre_tokenize(&mut p).unwrap();
        p.get_splits(OffsetReferential::Original, OffsetType::Char)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect()
    }

    #[test]
    fn gpt4o_split_matches_python_regex() {
        // Expected: Python's `regex.findall` with the same pattern (the module transformers'
        // tokenizers mirror), run on this machine.
        let text = "Hello WORLD's CamelCase don'T 12345 x/y\n\n  naïve  end";
        let want = [
            "Hello", " WORLD's", " Camel", "Case", " don'T", " ", "123", "45", " x", "/y", "\n\n",
            " ", " naïve", " ", " end",
        ];
        assert_eq!(pieces(REGEX_GPT4O, text), want);
    }
}
