#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing kvc needs: a C++20 compiler,
# CMake, Catch2 (tests) and Google Benchmark (benchmarks). The CUDA toolkit is optional
# and used when nvcc is found. Does nothing when everything is already there.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
dpkg -s catch2 >/dev/null 2>&1 || missing+=(catch2)
dpkg -s libbenchmark-dev >/dev/null 2>&1 || missing+=(libbenchmark-dev)
# clang++ builds the libFuzzer target that .ci/run's fuzz stage runs.
command -v clang++ >/dev/null 2>&1 || missing+=(clang)
# .ci/run's format stage; the package tests' pkg-config consumer.
command -v clang-format >/dev/null 2>&1 || missing+=(clang-format)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

if ((${#missing[@]} > 0)); then
  as_root=()
  [[ "$(id -u)" -eq 0 ]] || as_root=(sudo)
  echo "kvc: installing ${missing[*]}"
  "${as_root[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The static SASS check (scripts/sass-check.sh) reads the device kernels with nvdisasm, which
# CUDA 13's toolkit here lacks: the PyPI wheel nvidia-cuda-nvdisasm has it. Where nvcc is present
# and the wheel is not yet unpacked, fetch it; without network the check reports itself skipped.
tools=${KVC_CUDA_TOOLS:-$HOME/.cache/kvc-cuda-tools}
if { command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; } &&
  [[ ! -x $tools/nvidia/cu13/bin/nvdisasm ]] && command -v python3 >/dev/null 2>&1; then
  mkdir -p "$tools"
  wheels=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" \
    nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump >/dev/null 2>&1; then
    for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$tools"; done
    chmod +x "$tools"/nvidia/cu13/bin/* 2>/dev/null || true
    echo "kvc: nvdisasm and cuobjdump in $tools/nvidia/cu13/bin"
  else
    echo "kvc: could not download nvidia-cuda-nvdisasm; the SASS check will be skipped"
  fi
  rm -rf "$wheels"
fi
