#!/usr/bin/env bash
# Build what the GPU device check runs, on a development machine (no GPU needed): qeval and the
# CUDA test binary (tests/cuda.rs), built with the cuda feature, stripped and compressed into
# target/device/ (ignored by git; the device tool carries it). The GPU machine has no Rust and
# no network and takes at most 64 MiB of files per run; this prints the bundle's size.
#
#   bash scripts/device-bundle.sh        # then, on the GPU machine: bash scripts/device-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cuda-toolkit.sh)"
t0=$(date +%s)
cargo build --release --features cuda --target-dir target/cuda
test_bin=$(cargo test --release --features cuda --target-dir target/cuda --test cuda --no-run \
  --message-format=json 2>/dev/null \
  | python3 -c "import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get('reason')=='compiler-artifact' and m['target']['name']=='cuda' and m.get('executable'):
        print(m['executable'])")
echo "device-bundle: built in $(( $(date +%s) - t0 )) s"
rm -rf target/device && mkdir -p target/device
cp target/cuda/release/qeval target/device/qeval
cp "$test_bin" target/device/cuda-tests
for f in target/device/qeval target/device/cuda-tests; do
  echo "device-bundle: $(basename "$f") $(du -m "$f" | cut -f1) MiB built"
  strip "$f"
  echo "device-bundle: $(basename "$f") $(du -m "$f" | cut -f1) MiB stripped"
  xz -T2 -6 "$f"
  echo "device-bundle: $(basename "$f").xz $(du -m "$f.xz" | cut -f1) MiB compressed"
done
git rev-parse HEAD > target/device/commit
total=$(du -cm target/device/* | tail -1 | cut -f1)
echo "device-bundle: target/device holds $total MiB (the GPU machine takes 64 MiB in all per run)"
[ "$total" -lt 60 ] || { echo "device-bundle: too large for one run" >&2; exit 1; }
