#!/usr/bin/env python3
"""Token by token: how far apart two runs of the same model file are, whichever tool ran them.

Each input is the per-position output of one run over the same text, context and chunks:
  - a llama.cpp logits file (`llama-perplexity --kl-divergence-base FILE`, its log-probabilities
    stored as uint16 steps of the range [max - 16, max], as perplexity.cpp writes them), or
  - a qeval reference pack (`qeval reference --top-k 2 --out FILE.qref`; its records hold the
    argmax, the top-K log-probabilities and the target's log-probability).

For every pair of inputs it prints how many scored positions have the same most likely token
and the RMS difference of the log-probability of the correct next token. Run two levels of one
file through two tools (or one tool twice, e.g. llama-perplexity with -ub 8) to see how far
apart two correct implementations of a quantized level are: their 8-bit activation rounding
turns tiny differences in summation order into different tokens at a few percent of positions.

Usage: scripts/compare-argmax.py NAME=FILE NAME=FILE [...]   (needs numpy and the zstd program)
"""
import json
import struct
import subprocess
import sys

import numpy as np


def llama_run(path):
    """(argmax, target log-prob) per scored position of a llama-perplexity logits file."""
    b = open(path, "rb").read()
    if b[:8] != b"_logits_":
        sys.exit(f"{path}: not a llama-perplexity --kl-divergence-base file")
    n_ctx, n_vocab, n_chunk = struct.unpack("<iii", b[8:20])
    toks = np.frombuffer(b, np.int32, n_chunk * n_ctx, 20).reshape(n_chunk, n_ctx)
    nv = 2 * ((n_vocab + 1) // 2) + 4
    first = n_ctx // 2
    nt = n_ctx - 1 - first
    a = np.frombuffer(b, np.uint16, offset=20 + 4 * n_chunk * n_ctx).reshape(-1, nv)
    d = a[:, :4].copy().view(np.float32)  # scale, min log-prob
    q = a[:, 4 : 4 + n_vocab]
    # Scored chunks only (a run may stop early); the targets of those positions.
    chunks = a.shape[0] // nt
    tg = toks[:chunks, first + 1 : first + 1 + nt].reshape(-1)
    target = q[np.arange(len(tg)), tg] * d[: len(tg), 0] + d[: len(tg), 1]
    return q.argmax(1)[: len(tg)], target


def qeval_pack(path):
    """(argmax, target log-prob) per scored position of a qeval reference pack."""
    raw = open(path, "rb").read()
    if raw[:8] != b"QEVALREF":
        sys.exit(f"{path}: not a qeval reference pack")
    z = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True, check=True).stdout
    n = struct.unpack("<Q", z[:8])[0]
    k = json.loads(z[8 : 8 + n])["top_k"]
    r = np.frombuffer(z[8 + n :], np.uint8).reshape(-1, 16 * k + 12)
    return r.view(np.uint32)[:, 4 * k + 2], r.view(np.float32)[:, 4 * k + 1]


def main():
    runs = []
    for arg in sys.argv[1:]:
        name, sep, path = arg.partition("=")
        if not sep:
            sys.exit(f"'{arg}': give NAME=FILE (see --help)")
        runs.append((name, *(qeval_pack(path) if path.endswith(".qref") else llama_run(path))))
    if len(runs) < 2:
        sys.exit(__doc__)
    n = min(len(r[1]) for r in runs)
    print(f"{n} scored positions (the shortest run)")
    print(f"{'run A':<24} {'run B':<24} {'same argmax':>14} {'RMS Δ target log-prob':>22}")
    for i, (na, aa, ta) in enumerate(runs):
        for nb, ab, tb in runs[i + 1 :]:
            same = int((aa[:n] == ab[:n]).sum())
            rms = float(np.sqrt(np.mean((ta[:n] - tb[:n]) ** 2)))
            print(f"{na:<24} {nb:<24} {same:>6} ({100 * same / n:5.2f}%) {rms:>22.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
    else:
        main()
