#!/usr/bin/env python3
"""Generate src/quant/iq_tables.rs: the lookup tables of ggml's i-quants, ternary and MXFP4 types.

The tables are data of the GGUF file format (the codebooks the block bytes index into). They are
read from ggml's `ggml-common.h` (the `GGML_TABLE_BEGIN(type, name, size) ... GGML_TABLE_END()`
blocks and the `IQ1S_DELTA` define), checked against their declared sizes, and written out as
Rust statics with the same values, in the same order.

Usage:
    python3 scripts/gen_iq_tables.py [PATH/TO/ggml-common.h] > src/quant/iq_tables.rs

The default header is the llama.cpp that qeval's comparison builds (scripts/compare-llamacpp.sh):
~/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml/src/ggml-common.h
"""

import os
import re
import sys

DEFAULT_HEADER = os.path.expanduser(
    "~/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml/src/ggml-common.h"
)

# (C name, Rust name, C element type, Rust element type, hex?) in output order.
TABLES = [
    ("kmask_iq2xs", "KMASK_IQ2XS", "uint8_t", "u8", False),
    ("ksigns_iq2xs", "KSIGNS_IQ2XS", "uint8_t", "u8", False),
    ("kvalues_iq4nl", "KVALUES_IQ4NL", "int8_t", "i8", False),
    ("kvalues_fp4", "KVALUES_FP4", "int8_t", "i8", False),
    ("iq2xxs_grid", "IQ2XXS_GRID", "uint64_t", "u64", True),
    ("iq2xs_grid", "IQ2XS_GRID", "uint64_t", "u64", True),
    ("iq2s_grid", "IQ2S_GRID", "uint64_t", "u64", True),
    ("iq3xxs_grid", "IQ3XXS_GRID", "uint32_t", "u32", True),
    ("iq3s_grid", "IQ3S_GRID", "uint32_t", "u32", True),
    ("iq1s_grid", "IQ1S_GRID", "uint64_t", "u64", True),
]

RANGES = {
    "uint8_t": (0, 2**8 - 1),
    "int8_t": (-(2**7), 2**7 - 1),
    "uint32_t": (0, 2**32 - 1),
    "uint64_t": (0, 2**64 - 1),
}

# Elements per output line (ggml's own layout for the grids; lines within 100 columns).
PER_LINE = {"u8": 16, "i8": 16, "u32": 8, "u64": 4}

TABLE_RE = re.compile(
    r"^GGML_TABLE_BEGIN\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\)(.*?)^GGML_TABLE_END\(\)", re.S | re.M
)


def parse(header_text):
    defines = dict(re.findall(r"^#define\s+(\w+)\s+(\S+)", header_text, re.M))
    tables = {}
    for ctype, name, size, body in TABLE_RE.findall(header_text):
        body = re.sub(r"//[^\n]*", "", body)
        values = [int(v, 0) for v in re.findall(r"-?(?:0x[0-9a-fA-F]+|\d+)", body)]
        n = int(defines.get(size, size))
        if len(values) != n:
            sys.exit(f"{name}: {len(values)} values, declared {n}")
        if name in tables:
            sys.exit(f"{name} is defined twice")
        tables[name] = (ctype, values)
    return defines, tables


def fmt_value(v, rtype, hexa):
    if hexa:
        return f"0x{v:0{16 if rtype == 'u64' else 8}x}"
    return str(v)


def main():
    header = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_HEADER
    with open(header, encoding="utf-8") as f:
        defines, tables = parse(f.read())

    delta = defines.get("IQ1S_DELTA", "")
    if not re.fullmatch(r"\d+\.\d+f", delta):
        sys.exit(f"IQ1S_DELTA: unexpected value {delta!r}")

    out = []
    out.append("//! The lookup tables of ggml's i-quants, ternary and MXFP4 types (grids, sign patterns,")
    out.append("//! non-linear value tables), used by `quant::iq`. GENERATED from llama.cpp's")
    out.append("//! `ggml/src/ggml-common.h` (llama-cpp-python 0.3.36's vendored llama.cpp) by")
    out.append("//! `python3 scripts/gen_iq_tables.py > src/quant/iq_tables.rs`; do not edit by hand.")
    out.append("//! Grid entries are packed little-endian: byte `j` of an entry is its `j`-th value.")
    out.append("")
    out.append("/// `IQ1S_DELTA`: the shift IQ1_S and IQ1_M add to every grid value (sign in the block).")
    out.append(f"pub(crate) const IQ1S_DELTA: f32 = {delta[:-1]};")
    for cname, rname, ctype, rtype, hexa in TABLES:
        if cname not in tables:
            sys.exit(f"{cname} not found in {header}")
        found_type, values = tables[cname]
        if found_type != ctype:
            sys.exit(f"{cname}: type {found_type}, expected {ctype}")
        lo, hi = RANGES[ctype]
        if any(v < lo or v > hi for v in values):
            sys.exit(f"{cname}: value out of range for {ctype}")
        out.append("")
        out.append(f"/// ggml's `{cname}` ({len(values)} x `{ctype}`).")
        # rustfmt would put each long hex literal on a line of its own; keep ggml's layout.
        out.append("#[rustfmt::skip]")
        out.append(f"pub(crate) static {rname}: [{rtype}; {len(values)}] = [")
        per = PER_LINE[rtype]
        for i in range(0, len(values), per):
            chunk = values[i : i + per]
            out.append("    " + ", ".join(fmt_value(v, rtype, hexa) for v in chunk) + ",")
        out.append("];")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
