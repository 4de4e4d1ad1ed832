#pragma once
// The physical limit the streaming benchmarks are measured against: a plain memory copy,
// timed in the same binary right after the kernel, so that both see the same machine (it
// is shared and noisy; a ratio taken together means more than either figure alone).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kvc::bench {

/// Bytes per second (read + written) of memcpy moving `bytes` bytes in all, median of 5.
inline double copy_bytes_per_second(std::size_t bytes) {
  const std::size_t half = bytes / 2;
  static std::vector<char> source, destination;
  if (source.size() < half) {
    source.assign(half, 1);
    destination.assign(half, 0);
  }
  double seconds[5];
  for (double& s : seconds) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(destination.data(), source.data(), half);
    benchmark::DoNotOptimize(destination.data());
    benchmark::ClobberMemory();
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::nth_element(seconds, seconds + 2, seconds + 5);
  return static_cast<double>(2 * half) / seconds[2];
}

/// Times a streaming kernel and reports bytes/s and fraction_of_stream: its bandwidth over
/// memcpy's for as many bytes, measured right after it. `bytes` is what one call reads and
/// writes in all.
template <class Kernel>
void run_streaming(benchmark::State& state, std::size_t bytes, Kernel&& kernel) {
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    kernel();
    benchmark::ClobberMemory();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double total = static_cast<double>(bytes) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  const double copy_rate = copy_bytes_per_second(bytes);
  state.counters["fraction_of_stream"] = total / seconds / copy_rate;
  state.counters["copy_GBps"] = copy_rate / 1e9;
}

}  // namespace kvc::bench
