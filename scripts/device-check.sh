#!/usr/bin/env bash
# The GPU device check, run on a machine with an NVIDIA GPU and no network, from the bundle
# scripts/device-bundle.sh made (target/device/, carried there). Writes into $OUT (default
# ./device-check-out): device-check.log, the CUDA test output, and the results.json and
# bench.csv of `qeval bench` on the shapes of a 0.5B and an 8B model at f16, q8_0, q4_k_m and
# q4_0. Finishes in under 5 minutes on an H200.
#
#   bash scripts/device-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/device-check-out}"
mkdir -p "$out"
exec > >(tee -a "$out/device-check.log") 2>&1
t0=$(date +%s)
stamp() { echo "== $(( $(date +%s) - t0 )) s: $*"; }
bin=/tmp/qeval-device
rm -rf "$bin" && mkdir -p "$bin"
for f in qeval cuda-tests; do xz -dc "target/device/$f.xz" > "$bin/$f" && chmod +x "$bin/$f"; done
echo "bundle of commit $(cat target/device/commit 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || true
# The CUDA libraries the binary links (cuBLAS 13, cuRAND, NVRTC 13, cudart 13): wherever this
# machine's Python packages or toolkit keep them. libcuda.so.1 is the driver's own.
libs=""
for l in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  p=$(find /opt /usr/local /usr/lib -name "$l" -not -path '*/stubs/*' 2>/dev/null | head -1)
  [ -n "$p" ] || { echo "missing $l"; continue; }
  d=$(dirname "$p"); case ":$libs:" in *":$d:"*) ;; *) libs="$libs:$d" ;; esac
done
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$bin/qeval" | grep -E "cuda|cublas|curand|nvrtc|not found" || true

stamp "GPU unit tests: every weight type's matmul and a model's PPL/KLD, CUDA against the CPU"
timeout 90 "$bin/cuda-tests" --ignored --test-threads=1 --nocapture 2>&1 | tee "$out/cuda-tests.log"
stamp "cuda-tests exit ${PIPESTATUS[0]}"

# The 8B shape's q4_k_m is quantized with llama.cpp's reference quantizer on the host's cores
# (about a minute on 16): it gets the most time.
for shape in qwen2.5-0.5b qwen3-8b; do
  limit=90; [ "$shape" = qwen3-8b ] && limit=240
  stamp "qeval bench --model shape:$shape on CUDA"
  timeout "$limit" "$bin/qeval" bench --model "shape:$shape" --quants f16,q8_0,q4_k_m,q4_0 \
    --device cuda --repeats 3 --quiet --out "/tmp/qeval-bench-$shape"
  stamp "bench $shape exit $?"
  # $OUT takes 8 files at most: the results and the table, not the work files.
  mkdir -p "$out/bench-$shape"
  cp "/tmp/qeval-bench-$shape"/results.json "/tmp/qeval-bench-$shape"/bench.csv "$out/bench-$shape/" || true
done
stamp "done"
