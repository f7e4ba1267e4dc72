#!/usr/bin/env python3
"""An independent numpy forward pass of the qwen2 architecture, the reference tests/qwen2.rs
compares qeval's logits with. Not run by the tests: its outputs are committed as text under
tests/fixtures/qwen2/. Needs numpy and the `gguf` package (llama.cpp's gguf-py), installed into
qeval's cache, not the system Python:

    python3 -m pip install --target "${QEVAL_CACHE:-$HOME/.cache/qeval}/gguf-py" gguf
    export PYTHONPATH="${QEVAL_CACHE:-$HOME/.cache/qeval}/gguf-py"

synthetic [--gguf OUT.gguf]
    A tiny qwen2 (2 layers, untied output) whose weights are a counter hash that
    tests/qwen2.rs computes the same way; writes tests/fixtures/qwen2/synthetic.json (the
    configuration, tokens, per-tensor sums and all logits) and, with --gguf, the model as
    llama.cpp's gguf-py writes a qwen2 GGUF.
real MODEL.gguf TOKENS
    The real model's logits for TOKENS (comma-separated ids) with its weights dequantized by
    gguf-py, in float64; writes tests/fixtures/qwen2/coder-1.5b.json (per position: logits at
    fixed ids, the top ids and the log-sum-exp; the full vocabulary would be megabytes).
"""
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "qwen2"

# The synthetic model. tests/qwen2.rs has the same numbers.
CFG = dict(vocab=96, n_embd=64, n_head=4, n_kv_head=2, n_ff=96, n_layer=2,
           rope_theta=10000.0, rms_eps=1e-6, context=256)
TOKENS = [1, 17, 42, 5, 88, 23, 60, 3, 71, 9, 50, 33]


def hashed(seed, n):
    """`n` values in [-0.5, 0.5) exactly representable in f32: lowbias32 of seed*0x9E3779B9 + i."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF)
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return ((x >> np.uint32(8)).astype(np.float32) / np.float32(16777216.0) - np.float32(0.5))


def synthetic_tensors():
    """(name, shape in candle/HF order (rows, cols), f32 array) in a fixed order; the seed of
    a tensor is its index + 1."""
    c = CFG
    d, hd = c["n_embd"], c["n_embd"] // c["n_head"]
    kvd = c["n_kv_head"] * hd
    spec = [("token_embd.weight", (c["vocab"], d), 1.0)]
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        spec += [
            (p + "attn_norm.weight", (d,), "norm"),
            (p + "attn_q.weight", (d, d), 0.25),
            (p + "attn_q.bias", (d,), 1.0),
            (p + "attn_k.weight", (kvd, d), 0.25),
            (p + "attn_k.bias", (kvd,), 1.0),
            (p + "attn_v.weight", (kvd, d), 0.25),
            (p + "attn_v.bias", (kvd,), 1.0),
            (p + "attn_output.weight", (d, d), 0.25),
            (p + "ffn_norm.weight", (d,), "norm"),
            (p + "ffn_gate.weight", (c["n_ff"], d), 0.25),
            (p + "ffn_up.weight", (c["n_ff"], d), 0.25),
            (p + "ffn_down.weight", (d, c["n_ff"]), 0.25),
        ]
    spec += [("output_norm.weight", (d,), "norm"), ("output.weight", (c["vocab"], d), 0.5)]
    out = []
    for k, (name, shape, scale) in enumerate(spec):
        v = hashed(k + 1, int(np.prod(shape))).reshape(shape)
        v = (np.float32(1.0) + v * np.float32(0.5)) if scale == "norm" else v * np.float32(scale)
        out.append((name, shape, v.astype(np.float32)))
    return out


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def neox_rope(x, theta):
    """x: (s, heads, hd); rotates the first half of each head with the second (NEOX layout)."""
    s, _, hd = x.shape
    freq = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(s, dtype=np.float64)[:, None] * freq[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def forward(get, tokens, n_layer, n_head, n_kv_head, theta, eps):
    """Logits (s, vocab) in float64; get(name) returns a tensor in (rows, cols) order."""
    x = get("token_embd.weight")[tokens].astype(np.float64)
    s, d = x.shape
    hd = d // n_head
    mask = np.triu(np.full((s, s), -np.inf), 1)
    for i in range(n_layer):
        g = lambda t: get(f"blk.{i}.{t}").astype(np.float64)  # noqa: E731
        h = rms(x, g("attn_norm.weight"), eps)
        q = (h @ g("attn_q.weight").T + g("attn_q.bias")).reshape(s, n_head, hd)
        k = (h @ g("attn_k.weight").T + g("attn_k.bias")).reshape(s, n_kv_head, hd)
        v = (h @ g("attn_v.weight").T + g("attn_v.bias")).reshape(s, n_kv_head, hd)
        q, k = neox_rope(q, theta), neox_rope(k, theta)
        rep = n_head // n_kv_head
        o = np.empty((s, n_head, hd))
        for hh in range(n_head):
            kk, vv = k[:, hh // rep], v[:, hh // rep]
            a = q[:, hh] @ kk.T / np.sqrt(hd) + mask
            a = np.exp(a - a.max(axis=-1, keepdims=True))
            a /= a.sum(axis=-1, keepdims=True)
            o[:, hh] = a @ vv
        x = x + o.reshape(s, d) @ g("attn_output.weight").T
        h = rms(x, g("ffn_norm.weight"), eps)
        gate = h @ g("ffn_gate.weight").T
        m = (gate / (1 + np.exp(-gate))) * (h @ g("ffn_up.weight").T)
        x = x + m @ g("ffn_down.weight").T
    x = rms(x, get("output_norm.weight").astype(np.float64), eps)
    return x @ get("output.weight").astype(np.float64).T


def synthetic(args):
    c = CFG
    tensors = synthetic_tensors()
    by_name = {n: v for n, _, v in tensors}
    logits = forward(by_name.__getitem__, TOKENS, c["n_layer"], c["n_head"], c["n_kv_head"],
                     c["rope_theta"], c["rms_eps"])
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = dict(config=c, tokens=TOKENS,
               sums={n: float(v.astype(np.float64).sum()) for n, _, v in tensors},
               logits=[[round(float(x), 6) for x in row] for row in logits])
    (FIXTURES / "synthetic.json").write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", FIXTURES / "synthetic.json")
    if "--gguf" in args:
        import gguf
        path = args[args.index("--gguf") + 1]
        w = gguf.GGUFWriter(path, "qwen2")
        w.add_block_count(c["n_layer"])
        w.add_context_length(c["context"])
        w.add_embedding_length(c["n_embd"])
        w.add_feed_forward_length(c["n_ff"])
        w.add_head_count(c["n_head"])
        w.add_head_count_kv(c["n_kv_head"])
        w.add_rope_freq_base(c["rope_theta"])
        w.add_layer_norm_rms_eps(c["rms_eps"])
        w.add_vocab_size(c["vocab"])
        w.add_file_type(0)
        for n, _, v in tensors:
            w.add_tensor(n, v)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print("wrote", path)


def real(args):
    import gguf
    path, tokens = args[0], [int(t) for t in args[1].split(",")]
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if k.startswith("qwen2.")}
    infos = {t.name: t for t in r.tensors}

    def get(name):
        t = infos[name]
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        if name == "token_embd.weight":
            return a
        return a.astype(np.float32)

    emb = get("token_embd.weight")
    cache = {"token_embd.weight": emb[tokens]}

    def get_small(name):
        if name == "token_embd.weight":
            # forward indexes the embedding by tokens; give it a table with only those rows
            return _Rows(cache[name], tokens)
        return get(name)

    logits = forward(get_small, tokens, meta["qwen2.block_count"], meta["qwen2.attention.head_count"],
                     meta["qwen2.attention.head_count_kv"], meta["qwen2.rope.freq_base"],
                     meta["qwen2.attention.layer_norm_rms_epsilon"])
    ids = sorted({int(i) for i in np.linspace(0, logits.shape[1] - 1, 24)} | set(tokens))
    rows = []
    for row in logits:
        top = np.argsort(-row)[:5]
        m = row.max()
        rows.append(dict(top=[int(i) for i in top], top_logits=[round(float(row[i]), 5) for i in top],
                         logsumexp=round(float(m + np.log(np.exp(row - m).sum())), 5),
                         at_ids=[round(float(row[i]), 5) for i in ids]))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = dict(model=Path(path).name, tokens=tokens, ids=ids, positions=rows)
    (FIXTURES / "coder-1.5b.json").write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", FIXTURES / "coder-1.5b.json")
    for p, row in enumerate(rows):
        print(p, row["top"][:3], row["top_logits"][:3], row["logsumexp"])


class _Rows:
    """The embedding rows of `tokens` standing in for the whole table (indexed by tokens)."""

    def __init__(self, rows, tokens):
        self.rows, self.tokens = rows, tokens

    def __getitem__(self, ids):
        assert list(ids) == self.tokens
        return self.rows


if __name__ == "__main__":
    {"synthetic": synthetic, "real": real}[sys.argv[1]](sys.argv[2:])
