#!/usr/bin/env bash
# The static check of the device kernels, without a GPU (CTest label sass): compiles
# tests/sass/sass_kernels.cu for sm_90 with ptxas's report, disassembles it, and has
# scripts/sass_check.py print per kernel its registers, spills, shared memory, blocks per SM,
# and what its steady-state loop holds, failing when a budget is broken.
#
#   scripts/sass-check.sh [include directory]     default: this tree's include/
#
# nvdisasm comes from the PyPI wheel nvidia-cuda-nvdisasm (scripts/install-deps.sh puts it in
# ${KVC_CUDA_TOOLS:-$HOME/.cache/kvc-cuda-tools}); without it, or without nvcc, the check
# reports itself skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
include=${1:-$root/include}
source "$root/scripts/cuda-tools.sh"
"${CXX:-g++}" -std=c++20 -I"$include" "$root/tests/sass/sass_figures.cpp" -o "$work/figures"
"$work/figures" >"$work/figures.txt"
"$nvcc" -std=c++20 -O3 -DNDEBUG -arch=sm_90 -I"$include" -cubin -Xptxas -v \
  "$root/tests/sass/sass_kernels.cu" -o "$work/kernels.cubin" 2>"$work/ptxas.txt"
"$nvdisasm" -c "$work/kernels.cubin" >"$work/kernels.sass"
python3 "$root/scripts/sass_check.py" "$work/ptxas.txt" "$work/kernels.sass" "$work/figures.txt"
