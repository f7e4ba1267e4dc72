#!/usr/bin/env bash
# Generate the binary test fixtures instead of committing them: the tiny synthetic GGUF seed
# models and the heads of the cached real models (fuzz/make_seeds.py, into fuzz/seeds/), and the
# loopback Hub's parquet files, written by pyarrow from the invented text fixtures
# (tests/fixtures/evaldata/hub/make_parquet.py). pyarrow goes into qeval's cache
# ($QEVAL_CACHE, default ~/.cache/qeval), not into the system Python. Run scripts/fetch-models.sh
# first so the model heads exist. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${QEVAL_CACHE:-$HOME/.cache/qeval}"
QEVAL_MODEL_DIR="$cache/models" python3 fuzz/make_seeds.py
py="$cache/pyarrow"
if ! PYTHONPATH="$py" python3 -c "import pyarrow" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$py" pyarrow
fi
PYTHONPATH="$py" python3 tests/fixtures/evaldata/hub/make_parquet.py
