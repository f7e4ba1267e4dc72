#!/usr/bin/env bash
# Generate the binary test fixtures instead of committing them: the tiny synthetic GGUF seed
# models and the heads of the cached real models (fuzz/make_seeds.py, into fuzz/seeds/), and the
# loopback Hub's parquet files, written by pyarrow from the invented text fixtures
# (tests/fixtures/evaldata/hub/make_parquet.py), and the i-quant dequantization fixtures
# (tests/fixtures/iq/: seeded blocks dequantized by gguf-py's numpy reference, plus, where
# llama.cpp is built here (scripts/build-llamacpp.sh), rows of SmolLM2 tensors llama-quantize
# wrote at every i-quant, ternary and MXFP4 type). pyarrow and gguf-py go into qeval's cache
# ($QEVAL_CACHE, default ~/.cache/qeval), not into the system Python. Run
# scripts/fetch-models.sh first so the model heads exist. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${QEVAL_CACHE:-$HOME/.cache/qeval}"
QEVAL_MODEL_DIR="$cache/models" python3 fuzz/make_seeds.py
py="$cache/pyarrow"
if ! PYTHONPATH="$py" python3 -c "import pyarrow" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$py" pyarrow
fi
PYTHONPATH="$py" python3 tests/fixtures/evaldata/hub/make_parquet.py

gp="$cache/gguf-py"
if [ "$(PYTHONPATH="$gp" python3 -c 'import importlib.metadata as m, numpy; print(m.version("gguf"))' 2>/dev/null)" != 0.19.0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$gp" gguf==0.19.0
fi
PYTHONPATH="$gp" python3 scripts/iq_reference.py
llama="${LLAMACPP_BIN:-${QEVAL_LLAMACPP_CACHE:-$HOME/.cache/qeval-llamacpp}/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}"
smol="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -x "$llama/llama-quantize" ] && [ -f "$smol" ]; then
  iq="$cache/iq"
  mkdir -p "$iq"
  [ -f "$iq/smol-f16.gguf" ] || "$llama/llama-quantize" --allow-requantize "$smol" "$iq/smol-f16.gguf" F16 2 >/dev/null 2>&1
  for t in IQ4_NL IQ4_XS; do
    f="$iq/smol-$(echo "$t" | tr 'A-Z' 'a-z').gguf"
    [ -f "$f" ] || "$llama/llama-quantize" --allow-requantize --pure "$iq/smol-f16.gguf" "$f" "$t" 2 >/dev/null 2>&1
  done
  PYTHONPATH="$gp" python3 scripts/iq_reference.py --real "$iq/smol-iq4_nl.gguf" --tensor blk.0.attn_q.weight --rows 32 --stem real_iq4_nl
  # --pure IQ4_XS leaves the 576-wide rows at IQ4_NL: ffn_down (1536 wide) is the IQ4_XS one.
  PYTHONPATH="$gp" python3 scripts/iq_reference.py --real "$iq/smol-iq4_xs.gguf" --tensor blk.0.ffn_down.weight --rows 16 --stem real_iq4_xs
  # Every other type, in one file: IQ4_NL with ffn_down of layers 0-9 forced (--tensor-type) to
  # the types that need an importance matrix (llama-imatrix on wikitext-2's test split, 8
  # chunks), the ternary ones and MXFP4. tests/iquants.rs also runs the whole file.
  # Without shared/evaldata (a bare CI machine), the default eval set's own text calibrates.
  calib="${QEVAL_CALIBRATION_TEXT:-$PWD/../shared/evaldata/wikitext-2-raw/wiki.test.raw}"
  if [ ! -f "$calib" ]; then
    calib="$iq/evaltext.txt"
    python3 scripts/evaltext.py evalsets/default "$calib"
  fi
  mixed=(iq1_s iq1_m iq2_xxs iq2_xs iq2_s iq3_xxs iq3_s tq1_0 tq2_0 mxfp4)
  if [ -x "$llama/llama-imatrix" ] && [ -f "$calib" ]; then
    [ -f "$iq/smol-imatrix.gguf" ] || "$llama/llama-imatrix" -m "$iq/smol-f16.gguf" -f "$calib" -c 512 --chunks 8 -t 2 -o "$iq/smol-imatrix.gguf" >/dev/null 2>&1
    if [ ! -f "$iq/smol-mixed.gguf" ]; then
      tt=()
      for i in "${!mixed[@]}"; do tt+=(--tensor-type "blk\\.$i\\.ffn_down=${mixed[$i]}"); done
      "$llama/llama-quantize" --imatrix "$iq/smol-imatrix.gguf" "${tt[@]}" "$iq/smol-f16.gguf" "$iq/smol-mixed.gguf" IQ4_NL 2 >/dev/null 2>&1
    fi
    for i in "${!mixed[@]}"; do
      PYTHONPATH="$gp" python3 scripts/iq_reference.py --real "$iq/smol-mixed.gguf" --tensor "blk.$i.ffn_down.weight" --rows 8 --stem "real_${mixed[$i]}"
    done
  else
    echo "make-fixtures: no llama-imatrix in $llama or no $calib: the real-tensor fixtures of ${mixed[*]} are not made"
  fi
else
  echo "make-fixtures: no llama-quantize in $llama: the real-tensor IQ4 fixtures are not made (scripts/build-llamacpp.sh builds llama.cpp; .ci/run does)"
fi
