#!/usr/bin/env bash
# Phi-3's forward pass against llama.cpp's, on transplants of a real llama GGUF (no phi3 file can
# be downloaded here): `examples/transplant.rs` rewrites the model as phi3 (fused Q/K/V and
# gate/up; the plain transplant computes the llama model itself), with 3/4 of each head rotated,
# and with LongRoPE factors whose original context lies above (short factors) and below (long
# factors) the 512-token context; then llama-perplexity and `qeval run --quants f16` score each
# file on the default eval set's text, -c 512 --chunks 4, 2 threads, and a table is printed.
# tests/architectures.rs checks qeval against the llama.cpp numbers this printed.
#
# Usage: scripts/compare-transplants.sh [-m LLAMA.gguf] [-o OUT_DIR]
#   -m  the llama GGUF (default: the SmolLM2-135M file scripts/fetch-models.sh caches)
#   -o  output folder (default: reports/compare-transplants)
# llama.cpp: LLAMACPP_BIN, else the build scripts/compare-llamacpp.sh makes (run it once first).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
model="${QEVAL_CACHE:-$HOME/.cache/qeval}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
out="$repo/reports/compare-transplants"
while getopts "m:o:h" o; do
  case "$o" in
    m) model="$OPTARG" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
die() { echo "compare-transplants: $*" >&2; exit 1; }
[ -f "$model" ] || die "no model at $model (run scripts/fetch-models.sh, or give -m)"
bin="${LLAMACPP_BIN:-$HOME/.cache/qeval-llamacpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}"
[ -x "$bin/llama-perplexity" ] || die "no llama-perplexity in $bin (run scripts/compare-llamacpp.sh once to build it, or set LLAMACPP_BIN)"
mkdir -p "$out"
(cd "$repo" && cargo build --release --example transplant && cargo build --release) >"$out/build.log" 2>&1 ||
  die "cargo build failed; see $out/build.log"
"$repo/target/release/examples/transplant" "$model" "$out"
text="$out/evaltext.txt"
python3 "$repo/scripts/evaltext.py" "$repo/evalsets/default" "$text"
printf '| file | llama.cpp PPL | qeval PPL | difference |\n|---|---|---|---|\n' >"$out/table.md"
for f in "$out"/phi3*.gguf; do
  n="$(basename "$f" .gguf)"
  "$bin/llama-perplexity" -m "$f" -f "$text" -c 512 --chunks 4 -t 2 >"$out/$n.llama.log" 2>&1 ||
    die "llama-perplexity failed on $f; see $out/$n.llama.log"
  l="$(grep -o 'Final estimate: PPL = [0-9.]*' "$out/$n.llama.log" | awk '{print $NF}')"
  "$repo/target/release/qeval" run --model "$f" --quants f16 --no-tasks --chunks 4 --ctx 512 \
    --threads 2 --out "$out/qeval-$n" --quiet >"$out/$n.qeval.log" 2>&1 ||
    die "qeval failed on $f; see $out/$n.qeval.log"
  q="$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['levels'][0]['perplexity'])" "$out/qeval-$n/results.json")"
  d="$(python3 -c "print('%+.3f%%' % (100 * ($q - $l) / $l))")"
  echo "| $n | $l | $q | $d |" >>"$out/table.md"
done
cat "$out/table.md"
