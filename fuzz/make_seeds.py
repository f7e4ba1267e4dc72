#!/usr/bin/env python3
"""Write the fuzz seed corpus under fuzz/seeds/ (scripts/make-fixtures.sh runs this; the GGUF
files are generated, not committed, and tests/fuzz_regressions.rs reads the two tiny models).

gguf_metadata: two tiny but complete GGUF models written here by hand (a llama with a
gpt2/BPE tokenizer and rope_freqs, a gemma3 with a sentencepiece tokenizer), so mutations
start from inputs that pass the whole metadata path, plus the first 64 KiB of the real
model files in qeval's cache when they are there (real headers, cut inside the vocabulary).
models_toml: the repo's models.toml and a few small catalogs.
"""
import os
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GGUF_SEEDS = HERE / "seeds" / "gguf_metadata"
TOML_SEEDS = HERE / "seeds" / "models_toml"

U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def value(ty, v):
    if ty == U32:
        return struct.pack("<I", v)
    if ty == I32:
        return struct.pack("<i", v)
    if ty == F32:
        return struct.pack("<f", v)
    if ty == BOOL:
        return struct.pack("<B", int(v))
    if ty == STRING:
        return gstr(v)
    raise ValueError(ty)


def kv(key, ty, v):
    out = gstr(key) + struct.pack("<I", ty)
    if ty == ARRAY:
        elem_ty, items = v
        out += struct.pack("<IQ", elem_ty, len(items))
        out += b"".join(value(elem_ty, x) for x in items)
    else:
        out += value(ty, v)
    return out


def gguf(metadata, tensors):
    """metadata: [(key, type, value)]; tensors: [(name, dims as in candle/HF order)], all f32."""
    align = 32
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    out += b"".join(kv(*m) for m in metadata)
    offset = 0
    data = b""
    for name, dims in tensors:
        n = 1
        for d in dims:
            n *= d
        out += gstr(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in reversed(dims))
        out += struct.pack("<IQ", 0, offset)  # type 0 = f32
        blob = b"".join(struct.pack("<f", ((i * 37) % 17 - 8) / 64.0) for i in range(n))
        blob += b"\0" * ((-len(blob)) % align)
        data += blob
        offset += len(blob)
    out += b"\0" * ((-len(out)) % align)
    return out + data


def layer_tensors(arch, embd, heads, kv_heads, head_dim, ff):
    t = [
        ("attn_norm", [embd]),
        ("attn_q", [heads * head_dim, embd]),
        ("attn_k", [kv_heads * head_dim, embd]),
        ("attn_v", [kv_heads * head_dim, embd]),
        ("attn_output", [embd, heads * head_dim]),
        ("ffn_norm", [embd]),
        ("ffn_gate", [ff, embd]),
        ("ffn_up", [ff, embd]),
        ("ffn_down", [embd, ff]),
    ]
    if arch in ("qwen3", "gemma3"):
        t += [("attn_q_norm", [head_dim]), ("attn_k_norm", [head_dim])]
    if arch == "gemma3":
        t += [("post_attention_norm", [embd]), ("post_ffw_norm", [embd])]
    return [(f"blk.0.{n}.weight", d) for n, d in t]


def tiny_llama_bpe():
    chars = ["a", "b", "c", "d", "e", "h", "l", "o", "r", "w", "Ġ", "1", "2", "3", ",", "Ċ"]
    merged = ["he", "ll", "lo", "Ġw", "or", "hell", "hello"]
    tokens = ["<s>", "</s>", "<user>"] + chars + merged
    merges = ["h e", "l l", "l o", "Ġ w", "o r", "he ll", "hell o"]
    types = [3, 3, 4] + [1] * (len(tokens) - 3)
    embd, heads, kvh, hd, ff = 8, 2, 1, 4, 16
    md = [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, "tiny <b>\"llama\"</b>"),
        ("general.file_type", U32, 0),
        ("general.alignment", U32, 32),
        ("llama.block_count", U32, 1),
        ("llama.context_length", U32, 64),
        ("llama.embedding_length", U32, embd),
        ("llama.feed_forward_length", U32, ff),
        ("llama.attention.head_count", U32, heads),
        ("llama.attention.head_count_kv", U32, kvh),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama.rope.freq_base", F32, 10000.0),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "smollm"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        ("tokenizer.ggml.bos_token_id", U32, 0),
        ("tokenizer.ggml.eos_token_id", U32, 1),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
    ]
    tensors = [("token_embd.weight", [len(tokens), embd]), ("output_norm.weight", [embd]),
               ("rope_freqs.weight", [hd // 2])]
    tensors += layer_tensors("llama", embd, heads, kvh, hd, ff)
    return gguf(md, tensors)


def tiny_gemma_spm():
    pieces = ["<unk>", "<bos>", "<eos>"] + [f"<0x{b:02X}>" for b in range(256)]
    words = ["▁", "▁h", "▁he", "▁hello", "▁w", "▁world", "e", "l", "o", "h", "w", "r", "d", "ll", "llo"]
    pieces += words
    types = [2, 3, 3] + [6] * 256 + [1] * len(words)
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    embd, heads, kvh, hd, ff = 8, 2, 1, 4, 16
    md = [
        ("general.architecture", STRING, "gemma3"),
        ("gemma3.block_count", U32, 1),
        ("gemma3.context_length", U32, 128),
        ("gemma3.embedding_length", U32, embd),
        ("gemma3.feed_forward_length", U32, ff),
        ("gemma3.attention.head_count", U32, heads),
        ("gemma3.attention.head_count_kv", U32, kvh),
        ("gemma3.attention.key_length", U32, hd),
        ("gemma3.attention.sliding_window", U32, 32),
        ("gemma3.attention.layer_norm_rms_epsilon", F32, 1e-6),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, pieces)),
        ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.add_space_prefix", BOOL, False),
    ]
    tensors = [("token_embd.weight", [len(pieces), embd]), ("output_norm.weight", [embd])]
    tensors += layer_tensors("gemma3", embd, heads, kvh, hd, ff)
    return gguf(md, tensors)


def main():
    for d in (GGUF_SEEDS, TOML_SEEDS):
        d.mkdir(parents=True, exist_ok=True)
    (GGUF_SEEDS / "tiny-llama-bpe.gguf").write_bytes(tiny_llama_bpe())
    (GGUF_SEEDS / "tiny-gemma3-spm.gguf").write_bytes(tiny_gemma_spm())
    models = Path(os.environ.get("QEVAL_MODEL_DIR", Path.home() / ".cache/qeval/models"))
    for name in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]:
        p = models / name
        if p.is_file():
            with open(p, "rb") as f:
                (GGUF_SEEDS / f"{p.stem}.head64k").write_bytes(f.read(64 * 1024))
    shutil.copy(REPO / "models.toml", TOML_SEEDS / "models.toml")
    (TOML_SEEDS / "small.toml").write_text(
        'schema_version = 1\n[models.smol]\ndescription = "test"\narch = "llama"\n'
        'params = "135M"\nrepo = "test-org/smol"\nrevision = "main"\n'
        '[models.smol.gguf]\nrepo = "test-org/smol-gguf"\nrevision = "main"\n'
        'files = { q4_1 = "smol-Q4_1.gguf", q4_k_m = "x.gguf" }\n'
    )
    (TOML_SEEDS / "pypi.toml").write_text(
        'schema_version = 1\n[models.p]\ndescription = "d"\narch = "llama"\nparams = "1B"\n'
        'gated = true\nsafetensors_bytes = 123\n[models.p.pypi]\npackage = "pkg"\n'
        'version = "1.0"\nparts = ["a", "b"]\nfile = "m.gguf"\nsha256 = "00"\nlevel = "q4_1"\n'
    )


if __name__ == "__main__":
    main()
