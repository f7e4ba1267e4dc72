#!/usr/bin/env bash
# Build llama.cpp's command-line tools from the llama-cpp-python sdist on PyPI (its vendored
# llama.cpp), into $QEVAL_LLAMACPP_CACHE (default ~/.cache/qeval-llamacpp), once: later calls
# find the tools and return at once. Prints the folder holding them on stdout.
#
# Usage: scripts/build-llamacpp.sh [TARGET ...]
#   TARGET: llama.cpp build targets (default: llama-perplexity llama-bench llama-quantize
#   llama-imatrix). CI builds only llama-quantize and llama-imatrix (the real-tensor i-quant
#   fixtures of scripts/make-fixtures.sh); about 5 minutes on 2 cores, the four about 10.
# Environment: LLAMACPP_BIN (a folder that already holds the targets: used as it is).
set -euo pipefail
die() { echo "build-llamacpp: $*" >&2; exit 2; }
pyver=0.3.36
cache="${QEVAL_LLAMACPP_CACHE:-$HOME/.cache/qeval-llamacpp}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(llama-perplexity llama-bench llama-quantize llama-imatrix)
has_all() { local t; for t in "${targets[@]}"; do [ -x "$1/$t" ] || return 1; done; }
if [ -n "${LLAMACPP_BIN:-}" ]; then
  has_all "$LLAMACPP_BIN" || die "LLAMACPP_BIN=$LLAMACPP_BIN lacks one of: ${targets[*]}"
  echo "$LLAMACPP_BIN"; exit 0
fi
src="$cache/src/llama_cpp_python-$pyver/vendor/llama.cpp"
bin="$src/build/bin"
if has_all "$bin"; then echo "$bin"; exit 0; fi
command -v cmake >/dev/null && command -v c++ >/dev/null || die "cmake and a C++ compiler are needed (Debian: apt-get install cmake g++)"
echo "build-llamacpp: building ${targets[*]} from llama-cpp-python $pyver (sdist) into $cache" >&2
mkdir -p "$cache/src"
sdist="$cache/llama_cpp_python-$pyver.tar.gz"
[ -f "$sdist" ] || python3 -m pip download --quiet --no-deps --no-binary :all: -d "$cache" "llama-cpp-python==$pyver" >&2
[ -d "$src" ] || tar -xzf "$sdist" -C "$cache/src"
# AMX off: some VMs advertise AMX in cpuid but trap on its instructions (SIGILL).
noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
(cd "$src" &&
  cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_C_FLAGS=$noamx" "-DCMAKE_CXX_FLAGS=$noamx" &&
  cmake --build build -j2 --target "${targets[@]}") >"$cache/build.log" 2>&1 ||
  die "llama.cpp build failed; see $cache/build.log"
has_all "$bin" || die "the build produced no ${targets[*]} in $bin"
echo "$bin"
