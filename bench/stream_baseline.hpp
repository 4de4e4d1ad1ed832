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

#include "host_memory.hpp"

namespace kvc::bench {

/// Bytes per second (read + written) of memcpy moving `bytes` in all, from and to memory
/// rather than caches: chunks of bytes / 2 are copied at rotating offsets of two 256 MiB
/// buffers, for at least 64 MiB per measurement; the median of 5 measurements.
inline double copy_bytes_per_second(std::size_t bytes) {
  constexpr std::size_t buffer_bytes = std::size_t{256} << 20;
  static host_memory<char> source(buffer_bytes, 1), destination(buffer_bytes, 0);
  const std::size_t chunk = std::min(std::max<std::size_t>(bytes / 2, 64), buffer_bytes);
  const std::size_t chunks_per_run = std::max<std::size_t>((std::size_t{32} << 20) / chunk, 1);
  std::size_t offset = 0;
  double rates[5];
  for (double& rate : rates) {
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t c = 0; c < chunks_per_run; ++c) {
      if (offset + chunk > buffer_bytes) offset = 0;
      std::memcpy(destination.data() + offset, source.data() + offset, chunk);
      offset += chunk;
    }
    benchmark::DoNotOptimize(destination.data());
    benchmark::ClobberMemory();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rate = static_cast<double>(2 * chunk * chunks_per_run) / seconds;
  }
  std::nth_element(rates, rates + 2, rates + 5);
  return rates[2];
}

/// Times a streaming kernel and reports bytes/s and fraction_of_stream: its bandwidth over
/// memcpy's for as many bytes, measured right after it. `bytes` is what one call reads and
/// writes in all; `between` runs after each call, untimed (resetting state, say).
template <class Kernel, class Between = void (*)()>
void run_streaming(
    benchmark::State& state, std::size_t bytes, Kernel&& kernel, Between&& between = [] {}) {
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    kernel();
    benchmark::ClobberMemory();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.PauseTiming();
    between();
    state.ResumeTiming();
  }
  const double total = static_cast<double>(bytes) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  const double copy_rate = copy_bytes_per_second(bytes);
  state.counters["fraction_of_stream"] = total / seconds / copy_rate;
  state.counters["copy_GBps"] = copy_rate / 1e9;
}

}  // namespace kvc::bench
