#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, configures and builds kvc's device tests
# and GPU benchmarks for that GPU's architecture, runs `ctest -L gpu`, the static SASS check,
# bench_device_decode and bench_device_extend (medians of 3), Nsight Compute's summary of the
# decode kernel (fp16 and bf16, batch 64, 4k), of the extend kernel (fp16 prefill of 2048 x 8)
# and of the latent decode (DeepSeek V3, batch 64, 4k), and compute-sanitizer on the decode
# and extend tests where those tools exist, and writes everything into one results file.
#
#   scripts/gpu-check.sh [results file]          default: build-gpu/gpu-check-results.txt
#   KVC_GPU_ARCH=90 scripts/gpu-check.sh         the architecture, when nvidia-smi is absent
#   KVC_GPU_CHECK_BUILD_ONLY=1 scripts/gpu-check.sh   build, then stop (machines without a GPU)
#   KVC_GPU_BUILD_DIR=build scripts/gpu-check.sh      reuse a build directory (default build-gpu)
#
# It builds only what it runs (the CUDA tests, their host dependencies and the benchmark),
# with every core: within 10 minutes on a 16-core machine. Without a GPU it stops after the
# build, saying so, with status 2 (0 with KVC_GPU_CHECK_BUILD_ONLY=1).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${KVC_GPU_BUILD_DIR:-build-gpu}
results=${1:-$dir/gpu-check-results.txt}
mkdir -p "$(dirname "$results")"
: >"$results"
log() { echo "$@" | tee -a "$results"; }

arch=${KVC_GPU_ARCH:-}
if [[ -z $arch ]] && command -v nvidia-smi >/dev/null 2>&1; then
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
fi
arch=${arch:-90}
# Hopper's wgmma (the warpgroup MLA decode) is in sm_90a only: a build for this device.
[[ $arch == 90 ]] && arch=90a
jobs=$(nproc)
log "=== kvc gpu-check, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"
log "architecture $arch, $jobs build jobs; host CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,clocks.max.sm,driver_version \
    --format=csv 2>&1 | tee -a "$results" || true
fi

start=$SECONDS
fresh=()
[[ -f $dir/CMakeCache.txt ]] || fresh=(-DKVC_BUILD_EXAMPLES=OFF)  # keep a reused directory's
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DKVC_ENABLE_CUDA=ON -DKVC_BUILD_BENCHMARKS=ON "${fresh[@]}" >/dev/null
# What runs on the device; the compile-only checks (every gallery kernel) are the normal
# build's.
targets=(test_device_numerics test_device_cache test_device_simt test_device_decode
  test_device_extend test_device_wgmma)
if cmake --build "$dir" --target help 2>/dev/null | grep bench_device_decode >/dev/null; then
  targets+=(bench_device_decode bench_device_extend)
else
  log "note: Google Benchmark not found, the device benchmarks are not built"
fi
cmake --build "$dir" -j"$jobs" --target "${targets[@]}" 2>&1 | tail -3
log "build: $((SECONDS - start)) s"

if [[ ${KVC_GPU_CHECK_BUILD_ONLY:-0} == 1 ]]; then
  log "built; KVC_GPU_CHECK_BUILD_ONLY=1: stopping before the device is needed"
  exit 0
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  log "no GPU: stopping after the build"
  exit 2
fi

log "=== ctest -L gpu"
ctest --test-dir "$dir" -L gpu --output-on-failure -V 2>&1 | tee -a "$results" | tail -5 || true
log "=== static SASS check"
bash scripts/sass-check.sh 2>&1 | tee -a "$results" | tail -3 || true
bash scripts/wgmma-sass-check.sh 2>&1 | tee -a "$results" | tail -1 || true
bench=$dir/bench/bench_device_decode
if [[ -x $bench ]]; then
  log "=== bench_device_decode (medians of 3)"
  timeout 360 "$bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_counters_tabular=true 2>&1 | grep -v "_mean \|_stddev \|_cv " | tee -a "$results" || true
fi
extend_bench=$dir/bench/bench_device_extend
if [[ -x $extend_bench ]]; then
  log "=== bench_device_extend (medians of 3)"
  timeout 240 "$extend_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_counters_tabular=true 2>&1 | grep -v "_mean \|_stddev \|_cv " | tee -a "$results" || true
fi
# Nsight Compute: the decode kernel (kvc's kernels are all run_kernel / run_resident_kernel;
# the decode is the resident one), one launch after the warm-up.
if command -v ncu >/dev/null 2>&1 && [[ -x $bench ]]; then
  for dtype in fp16 bf16; do
    log "=== ncu: decode $dtype, batch 64, 4k"
    timeout 120 ncu --clock-control none -k regex:run_resident_kernel --launch-skip 1 \
      --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section SchedulerStats --metrics \
      smsp__inst_executed.sum,dram__bytes_read.sum \
      "$bench" --benchmark_filter="device_decode/llama3_8b/$dtype/batch:64/ctx:4096\$" \
      --benchmark_min_time=0.01 2>&1 | grep -v "^==PROF==\|^ *$" | tail -75 | tee -a "$results" || true
  done
fi
if command -v ncu >/dev/null 2>&1 && [[ -x $extend_bench ]]; then
  log "=== ncu: extend fp16, prefill 2048 x 8"
  timeout 120 ncu --clock-control none --kernel-name-base demangled -k regex:extend_mma \
    --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
    --metrics smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
    "$extend_bench" --benchmark_filter="device_extend/llama3_8b/fp16/batch:8/new:2048/prefix:0\$" \
    --benchmark_min_time=0.01 2>&1 | grep -v "^==PROF==\|^ *$" | tail -60 | tee -a "$results" || true
fi
if command -v ncu >/dev/null 2>&1 && [[ -x $bench ]]; then
  log "=== ncu: tensor-core decode (the warpgroup kernel in this sm_90a build), DeepSeek V3 MLA bf16, batch 64, 4k"
  timeout 120 ncu --clock-control none --kernel-name-base demangled -k regex:decode_mma \
    --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats \
    --metrics smsp__inst_executed.sum,dram__bytes_read.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
    "$bench" --benchmark_filter="device_decode/deepseek_v3/bf16/batch:64/ctx:4096\$" \
    --benchmark_min_time=0.01 2>&1 | grep -v "^==PROF==\|^ *$" | tail -60 | tee -a "$results" || true
fi
if command -v compute-sanitizer >/dev/null 2>&1; then
  for test in test_device_decode test_device_extend; do
    for tool in memcheck racecheck; do
      log "=== compute-sanitizer --tool $tool $test"
      timeout 90 compute-sanitizer --tool "$tool" "$dir/tests/cuda/$test" 2>&1 |
        tail -4 | tee -a "$results" || true
    done
  done
fi
log "=== done in $((SECONDS - start)) s; results in $results"
