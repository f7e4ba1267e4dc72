#!/usr/bin/env python3
"""Tensor table of GGUF files, and a tensor-by-tensor comparison of two of them.

No dependencies beyond the standard library (no numpy, no gguf-py): it reads the GGUF header,
skips the metadata values, and hashes each tensor's bytes.

  gguf_tensors.py FILE                 JSON {name: [type, shape, sha256]} on stdout
  gguf_tensors.py --compare A B        per tensor: same type? same bytes? and a summary per
                                       type; exit 1 if any tensor differs
  gguf_tensors.py --compare A B --json one JSON object (summary and differing tensors)
  gguf_tensors.py --set IN OUT KEY=TYPE:VALUE ...
                                       copy IN to OUT with metadata keys set (TYPE: str, u32,
                                       f32), e.g. to try a rope setting on a real file
"""
import hashlib
import json
import struct
import sys

# ggml type id -> (name, block size, bytes per block)
TYPES = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 9: ("q8_1", 32, 36),
    10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110), 12: ("q4_k", 256, 144),
    13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210), 15: ("q8_k", 256, 292),
    16: ("iq2_xxs", 256, 66), 17: ("iq2_xs", 256, 74), 18: ("iq3_xxs", 256, 98),
    19: ("iq1_s", 256, 50), 20: ("iq4_nl", 32, 18), 21: ("iq3_s", 256, 110),
    22: ("iq2_s", 256, 82), 23: ("iq4_xs", 256, 136), 30: ("bf16", 1, 2),
    29: ("iq1_m", 256, 56), 34: ("tq1_0", 256, 54), 35: ("tq2_0", 256, 66),
    39: ("mxfp4", 32, 17),
}
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _rd(f, fmt):
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _skip_str(f):
    (n,) = _rd(f, "Q")
    f.seek(n, 1)


def _skip_value(f, t):
    if t == 8:
        _skip_str(f)
    elif t == 9:
        (et, n) = _rd(f, "IQ")
        if et == 8:
            for _ in range(n):
                _skip_str(f)
        else:
            f.seek(SCALAR[et] * n, 1)
    else:
        f.seek(SCALAR[t], 1)


def read_header(f, path):
    """The header of an open GGUF file: magic, version, the metadata as (key, raw bytes) pairs,
    the alignment, the tensor infos (name, dims, type, offset) and the raw bytes that hold them,
    and where the tensor data starts."""
    magic, version, n_tensors, n_kv = _rd(f, "4sIQQ")
    if magic != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    kvs, alignment = [], 32
    for _ in range(n_kv):
        start = f.tell()
        (n,) = _rd(f, "Q")
        key = f.read(n).decode("utf-8", "replace")
        (t,) = _rd(f, "I")
        if key == "general.alignment" and t == 4:
            (alignment,) = _rd(f, "I")
        else:
            _skip_value(f, t)
        end = f.tell()
        f.seek(start)
        kvs.append((key, f.read(end - start)))
    infos_start = f.tell()
    infos = []
    for _ in range(n_tensors):
        (n,) = _rd(f, "Q")
        name = f.read(n).decode("utf-8", "replace")
        (nd,) = _rd(f, "I")
        dims = _rd(f, "Q" * nd)
        (t, off) = _rd(f, "IQ")
        infos.append((name, dims, t, off))
    infos_end = f.tell()
    f.seek(infos_start)
    infos_raw = f.read(infos_end - infos_start)
    data = infos_end + (alignment - infos_end % alignment) % alignment
    return magic, version, kvs, alignment, infos, infos_raw, data


def read_tensors(path):
    with open(path, "rb") as f:
        _, _, _, _, infos, _, data = read_header(f, path)
        out = {}
        for name, dims, t, off in infos:
            tname, block, bpb = TYPES.get(t, (f"type{t}", 1, 0))
            n = 1
            for d in dims:
                n *= d
            size = n // block * bpb
            f.seek(data + off)
            h = hashlib.sha256()
            left = size
            while left:
                chunk = f.read(min(left, 1 << 24))
                if not chunk:
                    sys.exit(f"{path}: tensor {name} is truncated")
                h.update(chunk)
                left -= len(chunk)
            out[name] = [tname, list(dims), h.hexdigest()]
        return out


def compare(a, b, as_json):
    ta, tb = read_tensors(a), read_tensors(b)
    names = sorted(set(ta) | set(tb))
    per_type = {}
    diffs = []
    for n in names:
        x, y = ta.get(n), tb.get(n)
        if x is None or y is None:
            diffs.append({"tensor": n, "why": "only in " + (b if x is None else a)})
            continue
        key = y[0]
        s = per_type.setdefault(key, {"tensors": 0, "identical": 0, "type_differs": 0})
        s["tensors"] += 1
        if x[0] != y[0]:
            s["type_differs"] += 1
            diffs.append({"tensor": n, "why": f"type {x[0]} vs {y[0]}"})
        elif x[1] != y[1]:
            diffs.append({"tensor": n, "why": f"shape {x[1]} vs {y[1]}"})
        elif x[2] == y[2]:
            s["identical"] += 1
        else:
            diffs.append({"tensor": n, "why": f"{x[0]} bytes differ"})
    res = {"a": a, "b": b, "tensors": len(names), "identical": sum(s["identical"] for s in per_type.values()),
           "per_type": per_type, "differing": diffs}
    if as_json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['identical']}/{res['tensors']} tensors identical ({a} vs {b})")
        for t, s in sorted(per_type.items()):
            print(f"  {t:8} {s['identical']}/{s['tensors']} identical, {s['type_differs']} of another type")
        for d in diffs[:20]:
            print(f"  differs: {d['tensor']}: {d['why']}")
    return 0 if not diffs else 1


def set_keys(src, dst, assignments):
    """Copy a GGUF file with metadata keys added or replaced; tensors and their offsets as they were."""
    new = {}
    for a in assignments:
        k, tv = a.split("=", 1)
        t, v = tv.split(":", 1)
        if t == "str":
            b = v.encode()
            new[k] = struct.pack("<I", 8) + struct.pack("<Q", len(b)) + b
        elif t == "u32":
            new[k] = struct.pack("<II", 4, int(v))
        elif t == "f32":
            new[k] = struct.pack("<If", 6, float(v))
        else:
            sys.exit(f"--set {a}: TYPE must be str, u32 or f32")
    with open(src, "rb") as f:
        magic, version, kvs, alignment, infos, infos_raw, data = read_header(f, src)
        out_kvs = [raw for k, raw in kvs if k not in new]
        for k, v in new.items():
            kb = k.encode()
            out_kvs.append(struct.pack("<Q", len(kb)) + kb + v)
        with open(dst, "wb") as o:
            o.write(struct.pack("<4sIQQ", magic, version, len(infos), len(out_kvs)))
            for raw in out_kvs:
                o.write(raw)
            o.write(infos_raw)
            pos = o.tell()
            o.write(b"\0" * ((alignment - pos % alignment) % alignment))
            f.seek(data)
            while True:
                chunk = f.read(1 << 24)
                if not chunk:
                    break
                o.write(chunk)


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[1] == "--set":
        set_keys(sys.argv[2], sys.argv[3], sys.argv[4:])
        sys.exit(0)
    args = sys.argv[1:]
    if args and args[0] == "--compare" and len(args) >= 3:
        sys.exit(compare(args[1], args[2], "--json" in args))
    if len(args) == 1:
        print(json.dumps(read_tensors(args[0])))
        sys.exit(0)
    sys.exit(__doc__)
