#pragma once
// The physical limits the attention benchmarks are measured against, in the same binary
// and with the same threads: a streaming read (the sum of a 256 MiB buffer) for
// memory-bound decode, and an FMA-throughput loop for compute-bound MLA and prefill.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include "host_memory.hpp"
#include "kvc/backend/cpu/parallel.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace kvc::bench {

template <class F>
double median_seconds(F&& f, int repetitions = 5) {
  std::vector<double> seconds;
  for (int i = 0; i < repetitions; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + repetitions / 2, seconds.end());
  return seconds[static_cast<std::size_t>(repetitions / 2)];
}

/// Bytes per second of summing a 256 MiB buffer, split over the executor's threads. The
/// buffer comes from the allocator the caches use, so that both are read from the same kind
/// of pages (huge ones, where the system allows).
inline double stream_read_bytes_per_second(cpu::parallel_for_ref parallel) {
  constexpr std::size_t floats = std::size_t{64} << 20;
  static const host_memory<float> buffer(floats, 1.0f);
  const std::size_t parts = static_cast<std::size_t>(parallel.threads());
  std::vector<float> sums(parts);
  const double seconds = median_seconds([&] {
    parallel(parts, [&](std::size_t part) {
      const float* p = buffer.data() + floats / parts * part;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
      for (std::size_t i = 0; i < floats / parts; i += 8) {
        s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
        s4 += p[i + 4], s5 += p[i + 5], s6 += p[i + 6], s7 += p[i + 7];
      }
      sums[part] = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    });
    benchmark::DoNotOptimize(sums.data());
  });
  return static_cast<double>(floats * sizeof(float)) / seconds;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
[[gnu::target("avx2,fma")]] inline float fma_loop(long iterations) {
  __m256 a[10];
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.0001f);
  // Unrolled at any optimization level: at -O2 GCC otherwise keeps a[] on the stack,
  // and the loop then measures stores, not FMAs.
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  __m256 s = a[0];
#pragma GCC unroll 10
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}
#endif

/// FLOP per second of independent fp32 FMA chains (AVX2: 16 FLOP per instruction) on every
/// thread of the executor.
inline double fma_peak_flops(cpu::parallel_for_ref parallel) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  constexpr long iterations = 20'000'000;
  const std::size_t parts = static_cast<std::size_t>(parallel.threads());
  std::vector<float> sink(parts);
  const double seconds = median_seconds(
      [&] {
        parallel(parts, [&](std::size_t part) { sink[part] = fma_loop(iterations); });
        benchmark::DoNotOptimize(sink.data());
      },
      3);
  return static_cast<double>(parts) * iterations * 10 * 16 / seconds;
#else
  (void)parallel;
  return 0;
#endif
}

}  // namespace kvc::bench
