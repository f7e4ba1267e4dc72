#!/usr/bin/env bash
# qeval's quantization against llama-quantize's, tensor by tensor, on the same f16 file.
#
# Not run by CI (the CI test checks a few tensors against a recorded manifest). For each level:
# `llama-quantize [--pure] F16 OUT TYPE` and `qeval quantize --model F16 --quant LEVEL`, then
# scripts/gguf_tensors.py compares every tensor's type and bytes. With a quantized source (the
# test models all are), the f16 file is made first with `llama-quantize --allow-requantize F16`,
# so both tools start from the same f16 values. Table on stdout; every file and log in --out.
#
# Usage: scripts/compare-quantize.sh [-m SOURCE.gguf] [-l LEVELS] [-o DIR] [--keep] [--manifest FILE]
#   -m  source GGUF (default: the cached Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
#       scripts/fetch-models.sh --qwen)
#   -l  qeval level names, comma-separated (default: every level qeval makes)
#   -o  output folder (default reports/compare-quantize-<time>; ignored by git)
#   --keep  keep the quantized files (default: each pair is deleted once compared)
#   --llama-only  run llama-quantize only (no qeval, no comparison; with --manifest)
#   --manifest FILE  also write what tests/quantize.rs checks: per level, every tensor's type
#       in llama-quantize's file and the sha256 of five tensors (tests/fixtures/llama-quantize/);
#       levels already in FILE and not run now are kept
# Environment: QEVAL (binary, default target/release/qeval), LLAMACPP_BIN or the build of
# scripts/compare-llamacpp.sh (~/.cache/qeval-llamacpp).
set -euo pipefail
die() { echo "compare-quantize: $*" >&2; exit 2; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$HOME/.cache/qeval/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
levels="f16,q8_0,q6_k,q5_k_m,q5_k_s,q5_1,q5_0,q4_k_m,q4_k_s,q4_1,q4_0,q3_k_l,q3_k_m,q3_k_s,q2_k,q8_0-pure,q6_k-pure,q5_k-pure,q5_1-pure,q5_0-pure,q4_k-pure,q4_1-pure,q4_0-pure,q3_k-pure,q2_k-pure,iq4_nl,iq4_xs,iq4_nl-pure,iq4_xs-pure"
out=""
keep=0
manifest=""
llama_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model="${2:?}"; shift 2 ;;
    -l) levels="${2:?}"; shift 2 ;;
    -o) out="${2:?}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --manifest) manifest="${2:?}"; shift 2 ;;
    --llama-only) llama_only=1; shift ;;
    *) die "unknown argument $1 (see the header of this script)" ;;
  esac
done
[ -f "$model" ] || die "no source model $model (scripts/fetch-models.sh --qwen fetches the default)"
qeval="${QEVAL:-$repo/target/release/qeval}"
[ -x "$qeval" ] || (cd "$repo" && cargo build --release) || die "cargo build --release failed"
bin="${LLAMACPP_BIN:-$HOME/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}"
[ -x "$bin/llama-quantize" ] || die "no llama-quantize in $bin (scripts/compare-llamacpp.sh builds it)"
out="${out:-$repo/reports/compare-quantize-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
f16="$out/source-f16.gguf"
"$bin/llama-quantize" --allow-requantize "$model" "$f16" F16 >"$out/f16.log" 2>&1 || die "llama-quantize F16 failed; see $out/f16.log"
printf '| qeval level | llama-quantize | tensors identical | per type (identical/tensors) | llama-quantize s | qeval s |\n|---|---|---|---|---|---|\n'
IFS=',' read -ra list <<<"$levels"
for l in "${list[@]}"; do
  t=$(python3 - "$l" <<'PY'
import sys
l = sys.argv[1]
pure = l.endswith("-pure")
b = l[:-5] if pure else l
m = {"q4_k": "q4_k_m", "q5_k": "q5_k_m", "q3_k": "q3_k_m"}
print(("--pure " if pure else "") + m.get(b, b).upper())
PY
)
  lq="$out/llama-$l.gguf"; qe="$out/qeval-$l.gguf"
  s0=$(date +%s.%N)
  if [[ "$t" == --pure* ]]; then
    "$bin/llama-quantize" --pure "$f16" "$lq" "${t#--pure }" >"$out/llama-$l.log" 2>&1 || die "llama-quantize $t failed; see $out/llama-$l.log"
  else
    "$bin/llama-quantize" "$f16" "$lq" "$t" >"$out/llama-$l.log" 2>&1 || die "llama-quantize $t failed; see $out/llama-$l.log"
  fi
  s1=$(date +%s.%N)
  if [ "$llama_only" = 1 ]; then
    [ -z "$manifest" ] || python3 "$repo/scripts/gguf_tensors.py" "$lq" >"$out/llama-$l.tensors.json"
    [ "$keep" = 1 ] || rm -f "$lq"
    echo "| $l | $t | (llama-quantize only) | | $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$s0" "$s1") | |"
    continue
  fi
  "$qeval" quantize --quiet --force --model "$f16" --quant "$l" --out "$qe" >"$out/qeval-$l.log" 2>&1 || die "qeval quantize $l failed; see $out/qeval-$l.log"
  s2=$(date +%s.%N)
  python3 "$repo/scripts/gguf_tensors.py" --compare "$lq" "$qe" --json >"$out/compare-$l.json" || true
  python3 - "$out/compare-$l.json" "$l" "$t" "$s0" "$s1" "$s2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l, t, s0, s1, s2 = sys.argv[2], sys.argv[3], *map(float, sys.argv[4:])
per = ", ".join(f"{k} {v['identical']}/{v['tensors']}" for k, v in sorted(r["per_type"].items()))
print(f"| {l} | {t} | {r['identical']}/{r['tensors']} | {per} | {s1-s0:.0f} | {s2-s1:.0f} |")
PY
  [ -z "$manifest" ] || python3 "$repo/scripts/gguf_tensors.py" "$lq" >"$out/llama-$l.tensors.json"
  [ "$keep" = 1 ] || rm -f "$lq" "$qe"
done
if [ -n "$manifest" ]; then
  python3 - "$out" "$manifest" "$model" "$levels" <<'PY'
import hashlib, json, sys, pathlib
out, dest, model, levels = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(",")
few = ["blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.0.ffn_down.weight",
       "blk.1.attn_output.weight", "blk.1.ffn_up.weight"]
m = {"about": "llama-quantize (llama-cpp-python 0.3.36's llama.cpp) on the f16 file it made with "
              "--allow-requantize from " + pathlib.Path(model).name + "; written by scripts/compare-quantize.sh --manifest",
     "levels": {}}
# Levels already in the manifest stay; the ones run now are (re)written.
if pathlib.Path(dest).is_file():
    m["levels"] = json.loads(pathlib.Path(dest).read_text()).get("levels", {})
for l in levels:
    t = json.loads((out / f"llama-{l}.tensors.json").read_text())
    m["levels"][l] = {"types": {n: v[0] for n, v in sorted(t.items())},
                      "sha256": {n: t[n][2] for n in few}}
pathlib.Path(dest).write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
print(f"manifest: {dest}", file=sys.stderr)
PY
fi
