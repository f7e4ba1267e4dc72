#!/usr/bin/env bash
# Chat-template fixtures: tests/fixtures/chat_templates/generated/cases.json, what Hugging Face
# transformers' apply_chat_template renders (jinja2, emulated by scripts/make_template_fixtures.py)
# for llama.cpp's chat templates and the chat templates of the GGUF files in the cache, on a few
# message sets. The Rust side (minijinja) is compared with it byte for byte.
#
# jinja2 and gguf (llama.cpp's gguf-py) go into qeval's cache ($QEVAL_CACHE, default
# ~/.cache/qeval), not into the system Python. llama.cpp's templates come from the vendored
# llama.cpp of the llama-cpp-python sdist that scripts/compare-llamacpp.sh uses (same version,
# same cache folder, $QEVAL_LLAMACPP_CACHE, default ~/.cache/qeval-llamacpp, so the download is
# shared). Run scripts/fetch-models.sh first for the GGUF files. Idempotent; the output is
# ignored by git.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${QEVAL_CACHE:-$HOME/.cache/qeval}"
llcache="${QEVAL_LLAMACPP_CACHE:-$HOME/.cache/qeval-llamacpp}"
pyver=0.3.36 # as in scripts/compare-llamacpp.sh
jinja2_ver=3.1.6
gguf_ver=0.19.0
out=tests/fixtures/chat_templates/generated/cases.json

py="$cache/pyjinja"
if ! PYTHONPATH="$py" python3 -c "import jinja2, gguf, sys; sys.exit(jinja2.__version__ != '$jinja2_ver')" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --target "$py" \
    "jinja2==$jinja2_ver" "gguf==$gguf_ver"
fi

# The templates: from the full source tree if compare-llamacpp.sh extracted it, else only the
# templates folder into a folder of its own (a partial tree in "$llcache/src" would make
# compare-llamacpp.sh skip its full extraction).
sub="llama_cpp_python-$pyver/vendor/llama.cpp/models/templates"
templates="$llcache/src/$sub"
if ! compgen -G "$templates/*.jinja" >/dev/null; then
  templates="$llcache/templates-only/$sub"
  if ! compgen -G "$templates/*.jinja" >/dev/null; then
    sdist="$llcache/llama_cpp_python-$pyver.tar.gz"
    mkdir -p "$llcache"
    # The sdist file itself, from PyPI's simple index (sha256 checked): `pip download
    # --no-binary :all:` would first build its build dependencies (CMake) from source.
    [ -f "$sdist" ] || python3 - "$pyver" "$sdist" <<'PY'
import hashlib, json, sys, urllib.request
ver, dest = sys.argv[1], sys.argv[2]
name = f"llama_cpp_python-{ver}.tar.gz"
req = urllib.request.Request("https://pypi.org/simple/llama-cpp-python/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=120))["files"]
f = next(x for x in files if x["filename"] == name)
data = urllib.request.urlopen(f["url"], timeout=600).read()
if hashlib.sha256(data).hexdigest() != f["hashes"]["sha256"]:
    sys.exit(f"{name}: sha256 mismatch")
open(dest + ".part", "wb").write(data)
import os; os.replace(dest + ".part", dest)
PY
    rm -rf "$llcache/templates-only"
    mkdir -p "$llcache/templates-only"
    tar -xzf "$sdist" -C "$llcache/templates-only" --wildcards '*/vendor/llama.cpp/models/templates/*'
  fi
fi

PYTHONPATH="$py" python3 scripts/make_template_fixtures.py \
  --templates-dir "$templates" --models "$cache/models" --out "$out"
