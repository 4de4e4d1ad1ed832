#!/usr/bin/env bash
# Compile cost, measured as a new user would: the user CPU seconds (GNU time's %U) that one
# translation unit takes with g++ -O2 -std=c++20 (and clang++ where present), one compile at
# a time. Cases (sources in scripts/compile-cost/):
#   engine TU, header-only      cache + write + extend + decode, the kernels compiled in it
#                               (decode<kernels_for<model>>: the model's group kernels only)
#   engine TU, compiled.hpp     the same against kvc/backend/cpu/compiled.hpp (declarations)
#   compiled_once.cpp           the one TU that compiles the kernels for the program
#   CUDA TU                     nvcc for sm_80 + sm_90 (tests/cuda/test_device_simt.cu: the
#                               SIMT context and its demo kernel; the attention kernels are
#                               not written yet), where nvcc is found
# for Llama 3 8B (GQA), Gemma 3 27B (5:1 sliding windows) and DeepSeek V3 (MLA).
# Targets (docs/benchmarks.md): the llama3_8b engine TU <= 8 s header-only and < 3 s through
# compiled.hpp, the CUDA TU <= 60 s. --check exits 1 when a llama3_8b TU misses its target.
# Usage: scripts/compile-cost.sh [--check]   (writes nothing but a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[[ ${1:-} == --check ]] && check=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() {  # command...: user CPU seconds
  /usr/bin/time -f %U -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    cat "$work/err" >&2
    return 1
  }
  cat "$work/time"
}

echo "compile cost: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-10s %-12s %-22s %8s\n' compiler model case user_s
llama_compiled=""
llama_header=""
for cxx in g++ clang++; do
  command -v "$cxx" >/dev/null || continue
  flags=(-std=c++20 -O2 -Iinclude -c)
  for model in llama3_8b gemma3_27b deepseek_v3; do
    for compiled in 0 1; do
      s=$(seconds "$cxx" "${flags[@]}" -DKVC_COST_MODEL=kvc::models::$model \
        -DKVC_COST_COMPILED=$compiled scripts/compile-cost/engine_tu.cpp -o "$work/tu.o")
      name=$([[ $compiled == 1 ]] && echo "engine TU, compiled.hpp" || echo "engine TU, header-only")
      printf '%-10s %-12s %-22s %8s\n' "$cxx" "$model" "${name#engine TU, }" "$s"
      [[ $cxx == g++ && $model == llama3_8b && $compiled == 1 ]] && llama_compiled=$s
      [[ $cxx == g++ && $model == llama3_8b && $compiled == 0 ]] && llama_header=$s
    done
  done
  s=$(seconds "$cxx" "${flags[@]}" scripts/compile-cost/compiled_once.cpp -o "$work/once.o")
  printf '%-10s %-12s %-22s %8s\n' "$cxx" "(any)" "compiled_once.cpp" "$s"
done
if command -v nvcc >/dev/null; then
  s=$(seconds nvcc -std=c++20 -O2 -Iinclude -Itests --threads 2 -gencode arch=compute_80,code=sm_80 \
    -gencode arch=compute_90,code=sm_90 -c tests/cuda/test_device_simt.cu -o "$work/cuda.o")
  printf '%-10s %-12s %-22s %8s\n' nvcc "(simt demo)" "sm_80 + sm_90" "$s"
fi
if ((check)) && [[ -n $llama_compiled ]]; then
  awk -v c="$llama_compiled" -v h="$llama_header" 'BEGIN { exit !(c < 3.0 && h <= 8.0) }' || {
    echo "llama3_8b engine TU: header-only $llama_header s (target 8 s), compiled.hpp" \
      "$llama_compiled s (target 3 s)"
    exit 1
  }
fi
