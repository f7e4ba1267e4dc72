#!/usr/bin/env bash
# Install what `cargo build --release --features cuda` needs, from NVIDIA's PyPI wheels, into a
# cache folder: no system CUDA and no driver or GPU needed to build. Prints the environment to
# use (eval it):
#
#   eval "$(bash scripts/cuda-toolkit.sh)"
#   cargo build --release --features cuda
#
# What it installs (CUDA 13.0, so that the PTX loads on drivers from 580 / CUDA 13.0 up):
#   nvcc, its headers and libdevice   nvidia-cuda-nvcc, -crt, -runtime, nvidia-nvvm, -cccl
#   the libraries the binary links    nvidia-cublas, nvidia-curand, nvidia-cuda-nvrtc
#   libcuda (the driver) stand-in     scripts/cuda/libcuda_stub.c, compiled here: the same role
#                                     as the toolkit's stubs/libcuda.so, every call answers
#                                     CUDA_ERROR_STUB_LIBRARY (34). It is for linking, and for
#                                     running a CUDA build on a machine without NVIDIA's driver
#                                     (`--device cpu` works; `--device cuda` is refused).
# The folder: $QEVAL_CUDA_HOME, default ~/.cache/qeval-cuda/13.0. Idempotent.
# CUDAFORGE_THREADS (default: every core) is how many of candle's CUDA files compile at once.
#
# CUDA_COMPUTE_CAP: the GPU generation candle's quantized kernels are built for (exactly one):
# default 90 (Hopper: H100/H200). 80 = A100, 86 = RTX 30xx, 89 = RTX 40xx / L4, 120 = RTX 50xx.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
home="${QEVAL_CUDA_HOME:-$HOME/.cache/qeval-cuda/13.0}"
cap="${CUDA_COMPUTE_CAP:-90}"
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96
  nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
)
root="$home/nvidia/cu13"
if [ ! -x "$root/bin/nvcc" ] || [ ! -f "$home/.complete" ]; then
  mkdir -p "$home/wheels"
  echo "cuda-toolkit: downloading ${#wheels[@]} wheels from PyPI into $home/wheels" >&2
  python3 -m pip download --no-deps --quiet -d "$home/wheels" "${wheels[@]}" >&2
  for w in "$home"/wheels/*.whl; do
    python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith('nvidia/')]" "$w" "$home"
  done
  chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
  # Unversioned names for the linker (the wheels ship only libfoo.so.N).
  for lib in "$root"/lib/lib*.so.*; do
    base="${lib%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
  done
  touch "$home/.complete"
fi
# nvcc finds its headers, cccl and libdevice beside itself (bin/nvcc.profile).
stub="$home/stub"
if [ ! -f "$stub/libcuda.so.1" ] || [ "$here/cuda/libcuda_stub.c" -nt "$stub/libcuda.so.1" ]; then
  mkdir -p "$stub"
  cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so.1" "$here/cuda/libcuda_stub.c"
  ln -sf libcuda.so.1 "$stub/libcuda.so"
fi
cat <<ENV
export CUDA_ROOT="$root"
export CUDA_PATH="$root"
export CUDA_COMPUTE_CAP="$cap"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$stub:$root/lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$root/lib:$stub\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
