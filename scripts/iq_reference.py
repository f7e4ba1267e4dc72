#!/usr/bin/env python3
"""Reference fixtures for src/quant/iq.rs (dequantization of the i-quant, ternary and MXFP4 types).

Independent reference: gguf-py's numpy dequantizers (`pip install gguf==0.19.0`, module
`gguf.quants`). For each type this writes, under tests/fixtures/iq/:

    NAME.bin  deterministic pseudo-random blocks (raw ggml block bytes)
    NAME.f32  gguf.quants.dequantize() of them, little-endian f32

Block bytes are random (every grid index, sign pattern and sub-scale gets hit), except the
block scales: f16 fields hold finite values (a spread of normal magnitudes and signs, plus
+-0, subnormals and the largest f16 in the first blocks) and MXFP4's E8M0 exponent stays in a
moderate range (plus 0, 1, 2: the subnormal scales).

If llama.cpp's own library is found (--ggml-lib, default: the build qeval compares against), the
same blocks also go through its `dequantize_row_*` (ctypes) and every value is compared bit for
bit with gguf-py's; a disagreement is reported and the script fails (llama.cpp is the authority).

Usage:
    python3 scripts/iq_reference.py                       # the 12 synthetic fixtures
    python3 scripts/iq_reference.py --real MODEL.gguf --tensor NAME --rows N --stem STEM
        # the first N rows of one tensor of a real GGUF (raw bytes + gguf-py's dequantization)

scripts/make-fixtures.sh runs both (CI runs it); the real-data fixtures come from SmolLM2-135M-Instruct
where llama.cpp is built (scripts/compare-llamacpp.sh builds it), as by hand:
    Q=~/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-quantize
    $Q --allow-requantize ~/.cache/qeval/models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smol-f16.gguf F16
    $Q --allow-requantize --pure /tmp/smol-f16.gguf /tmp/smol-iq4nl.gguf IQ4_NL
    $Q --allow-requantize --pure /tmp/smol-f16.gguf /tmp/smol-iq4xs.gguf IQ4_XS
    python3 scripts/iq_reference.py --real /tmp/smol-iq4nl.gguf --tensor blk.0.attn_q.weight \\
        --rows 32 --stem real_iq4_nl
    python3 scripts/iq_reference.py --real /tmp/smol-iq4xs.gguf --tensor blk.0.ffn_down.weight \\
        --rows 16 --stem real_iq4_xs
"""

import argparse
import ctypes
import importlib.metadata
import os
import sys

import numpy as np

import gguf
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "iq")
GGML_LIB = os.path.expanduser(
    "~/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/libggml-base.so"
)

# name (ggml's, = fixture stem), gguf-py type, offset of the f16 scale `d` (None: no plain `d`)
TYPES = [
    ("iq4_nl", T.IQ4_NL, 0),
    ("iq4_xs", T.IQ4_XS, 0),
    ("iq3_xxs", T.IQ3_XXS, 0),
    ("iq3_s", T.IQ3_S, 0),
    ("iq2_xxs", T.IQ2_XXS, 0),
    ("iq2_xs", T.IQ2_XS, 0),
    ("iq2_s", T.IQ2_S, 0),
    ("iq1_s", T.IQ1_S, 0),
    ("iq1_m", T.IQ1_M, None),  # f16 spread over the top nibbles of the 4 scale words
    ("tq1_0", T.TQ1_0, 52),
    ("tq2_0", T.TQ2_0, 64),
    ("mxfp4", T.MXFP4, None),  # E8M0 exponent byte at 0
]

# f16 bit patterns for the first blocks: +0, -0, smallest and largest subnormal, largest normal,
# smallest normal, -1.
SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0x0400, 0xBC00]
SPECIAL_E8M0 = [0, 1, 2, 127, 128, 200]


def scales_f16(rng, n):
    """n finite f16 scales: random sign, magnitude 1e-4 .. 1e-1 log-uniform, then specials."""
    d = np.sign(rng.uniform(-1, 1, n)) * 10.0 ** rng.uniform(-4, -1, n)
    bits = d.astype(np.float16).view(np.uint16).copy()
    k = min(n, len(SPECIAL_F16))
    bits[:k] = SPECIAL_F16[:k]
    assert np.isfinite(bits.view(np.float16)).all()
    return bits


def make_blocks(name, qtype, d_off, n_blocks):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng([0x1C0DE, int(qtype)])
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    if d_off is not None:
        blocks[:, d_off : d_off + 2] = scales_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    elif qtype == T.IQ1_M:
        # scales[8] at the end: four little-endian u16 words; the f16 is their top nibbles,
        # word k holding bits 4k..4k+3.
        d = scales_f16(rng, n_blocks).astype(np.uint16)
        sc = blocks[:, block_bytes - 8 :].copy().view("<u2")  # (n_blocks, 4)
        for k in range(4):
            sc[:, k] = (sc[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        blocks[:, block_bytes - 8 :] = sc.view(np.uint8)
    elif qtype == T.MXFP4:
        e = rng.integers(110, 145, size=n_blocks, dtype=np.uint8)
        k = min(n_blocks, len(SPECIAL_E8M0))
        e[:k] = SPECIAL_E8M0[:k]
        blocks[:, 0] = e
    else:
        raise ValueError(name)
    return blocks


def ggml_dequantize(lib, name, raw, n_values):
    fn = getattr(lib, f"dequantize_row_{name}")
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    src = np.ascontiguousarray(raw)
    out = np.empty(n_values, dtype=np.float32)
    fn(src.ctypes.data, out.ctypes.data, n_values)
    return out


def compare(name, ours, theirs):
    a, b = ours.view(np.uint32), theirs.view(np.uint32)
    bad = np.nonzero(a != b)[0]
    if len(bad):
        print(f"  {name}: gguf-py and ggml C differ in {len(bad)} of {len(a)} values:", file=sys.stderr)
        for i in bad[:8]:
            print(f"    [{i}] gguf-py {ours[i]!r} ggml {theirs[i]!r}", file=sys.stderr)
        return False
    return True


def write(stem, raw, values):
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, f"{stem}.bin"), "wb") as f:
        f.write(np.ascontiguousarray(raw).tobytes())
    with open(os.path.join(FIXTURES, f"{stem}.f32"), "wb") as f:
        f.write(np.ascontiguousarray(values, dtype="<f4").tobytes())


def load_ggml(path):
    if not path or not os.path.exists(path):
        print(f"no ggml library at {path}: skipping the cross-check against llama.cpp's C")
        return None
    return ctypes.CDLL(path)


def synthetic(lib):
    ok = True
    for name, qtype, d_off in TYPES:
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        n_blocks = 8192 // block_elems  # 32 blocks of 256, 256 of 32: 32 KiB of f32
        blocks = make_blocks(name, qtype, d_off, n_blocks)
        values = dequantize(blocks, qtype).reshape(-1).astype(np.float32, copy=False)
        assert values.size == n_blocks * block_elems
        line = f"{name}: {n_blocks} blocks x {block_bytes} bytes, {values.size} values"
        if lib is not None:
            c = ggml_dequantize(lib, name, blocks, values.size)
            same = compare(name, values, c)
            ok &= same
            line += ", gguf-py == ggml C bit for bit" if same else ", gguf-py != ggml C"
        print(line)
        write(name, blocks, values)
    return ok


def real(lib, path, tensor, rows, stem):
    reader = gguf.GGUFReader(path)
    t = next((t for t in reader.tensors if t.name == tensor), None)
    if t is None:
        sys.exit(f"{path}: no tensor {tensor}")
    qtype = T(t.tensor_type)
    raw = np.asarray(t.data)  # (rows, row bytes), uint8
    raw = np.ascontiguousarray(raw[:rows])
    values = dequantize(raw, qtype).reshape(-1).astype(np.float32, copy=False)
    line = f"{tensor} ({qtype.name}, shape {[int(n) for n in t.shape]}): first {raw.shape[0]} rows, {values.size} values"
    ok = True
    if lib is not None:
        c = ggml_dequantize(lib, qtype.name.lower(), raw, values.size)
        ok = compare(stem, values, c)
        line += ", gguf-py == ggml C bit for bit" if ok else ", gguf-py != ggml C"
    print(line)
    write(stem, raw, values)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml-lib", default=GGML_LIB, help="libggml-base.so for the cross-check ('' to skip)")
    ap.add_argument("--real", metavar="GGUF", help="take one tensor of this file instead")
    ap.add_argument("--tensor")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--stem")
    args = ap.parse_args()
    print(f"gguf-py {importlib.metadata.version('gguf')}, numpy {np.__version__}")
    lib = load_ggml(args.ggml_lib)
    if args.real:
        if not (args.tensor and args.stem):
            sys.exit("--real needs --tensor and --stem")
        ok = real(lib, args.real, args.tensor, args.rows, args.stem)
    else:
        ok = synthetic(lib)
    if not ok:
        sys.exit("gguf-py and llama.cpp's C disagree (see above); llama.cpp's C is the authority")


if __name__ == "__main__":
    main()
