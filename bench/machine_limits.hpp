#pragma once
// The physical limits the attention benchmarks are measured against, in the same binary
// and with the same threads: a streaming read (a vector sum of a 256 MiB buffer, checked
// against a second read loop) for memory-bound decode, and an FMA-throughput loop (AVX-512
// where the CPU has it) for compute-bound MLA and prefill.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

namespace detail {

constexpr std::size_t stream_floats = std::size_t{64} << 20;  // 256 MiB

inline const host_memory<float>& stream_buffer() {
  static const host_memory<float> buffer(stream_floats, 1.0f);
  return buffer;
}

// Sums of [p, p + n) (n a multiple of 128) with 8 independent vector accumulators, so that
// the loop is bound by loads, not by the latency of a chain of adds: g++ 12 compiled the
// earlier scalar-looking loop into one chain of vaddss, compute-bound on every CPU since.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
[[gnu::target("avx512f")]] inline float sum_avx512(const float* p, std::size_t n) {
  __m512 a[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) a[i] = _mm512_setzero_ps();
  for (std::size_t i = 0; i < n; i += 128)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = _mm512_add_ps(a[j], _mm512_load_ps(p + i + 16 * j));
#pragma GCC unroll 7
  for (int i = 1; i < 8; ++i) a[0] = _mm512_add_ps(a[0], a[i]);
  float out[16];  // not _mm512_reduce_add_ps: g++ 12 warns inside it (bug 105593)
  _mm512_storeu_ps(out, a[0]);
  float sum = 0;
  for (float lane : out) sum += lane;
  return sum;
}
[[gnu::target("avx2")]] inline float sum_avx2(const float* p, std::size_t n) {
  __m256 a[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < n; i += 64)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
#pragma GCC unroll 7
  for (int i = 1; i < 8; ++i) a[0] = _mm256_add_ps(a[0], a[i]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
// The second, differently written read: integer ORs of 64-byte lines (no float unit).
[[gnu::target("avx2")]] inline std::uint32_t or_avx2(const float* p, std::size_t n) {
  const auto* q = reinterpret_cast<const __m256i*>(p);
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (std::size_t i = 0; i < n / 8; i += 8) {
    a = _mm256_or_si256(a, _mm256_load_si256(q + i));
    b = _mm256_or_si256(b, _mm256_load_si256(q + i + 1));
    c = _mm256_or_si256(c, _mm256_load_si256(q + i + 2));
    d = _mm256_or_si256(d, _mm256_load_si256(q + i + 3));
    a = _mm256_or_si256(a, _mm256_load_si256(q + i + 4));
    b = _mm256_or_si256(b, _mm256_load_si256(q + i + 5));
    c = _mm256_or_si256(c, _mm256_load_si256(q + i + 6));
    d = _mm256_or_si256(d, _mm256_load_si256(q + i + 7));
  }
  a = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
  return static_cast<std::uint32_t>(_mm256_extract_epi32(a, 0));
}
#endif

inline float sum_portable(const float* p, std::size_t n) {
  float s[8] = {};
  for (std::size_t i = 0; i < n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += p[i + static_cast<std::size_t>(j)];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Which read loop: AVX-512 where the CPU has it, AVX2, else portable.
enum class read_loop { avx512, avx2, portable, integer_or };

inline read_loop best_read_loop() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx512f")) return read_loop::avx512;
  if (__builtin_cpu_supports("avx2")) return read_loop::avx2;
#endif
  return read_loop::portable;
}

inline const char* name_of(read_loop loop) {
  switch (loop) {
    case read_loop::avx512:
      return "AVX-512 sum";
    case read_loop::avx2:
      return "AVX2 sum";
    case read_loop::integer_or:
      return "AVX2 integer OR";
    default:
      return "portable sum";
  }
}

inline double read_bytes_per_second(cpu::parallel_for_ref parallel, read_loop loop) {
  const float* buffer = stream_buffer().data();
  const std::size_t parts = static_cast<std::size_t>(parallel.threads());
  std::vector<float> sums(parts);
  const std::size_t per_part = stream_floats / parts / 128 * 128;
  const double seconds = median_seconds([&] {
    parallel(parts, [&](std::size_t part) {
      const float* p = buffer + per_part * part;
      float s = 0;
      switch (loop) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        case read_loop::avx512:
          s = sum_avx512(p, per_part);
          break;
        case read_loop::avx2:
          s = sum_avx2(p, per_part);
          break;
        case read_loop::integer_or:
          s = static_cast<float>(or_avx2(p, per_part));
          break;
#endif
        default:
          s = sum_portable(p, per_part);
          break;
      }
      sums[part] = s;
    });
    benchmark::DoNotOptimize(sums.data());
  });
  return static_cast<double>(per_part * parts * sizeof(float)) / seconds;
}

}  // namespace detail

/// Bytes per second of reading a 256 MiB buffer (a vector sum with 8 accumulators, AVX-512
/// where the CPU has it), split over the executor's threads. The buffer comes from the
/// allocator the caches use, so that both are read from the same kind of pages (huge ones,
/// where the system allows). The first call per thread count checks the loop against a
/// second, differently written one (integer ORs) and stops the program when it is
/// implausibly slow (below 3/4 of the other): a baseline that is not the limit would
/// flatter every fraction measured against it.
inline double stream_read_bytes_per_second(cpu::parallel_for_ref parallel) {
  static std::vector<int> checked;
  const detail::read_loop loop = detail::best_read_loop();
  const double rate = detail::read_bytes_per_second(parallel, loop);
  if (std::find(checked.begin(), checked.end(), parallel.threads()) == checked.end()) {
    checked.push_back(parallel.threads());
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx2")) {
      double best = rate, other = 0;
      for (int round = 0; round < 3; ++round) {  // the machine is noisy: the best of three
        best = std::max(best, detail::read_bytes_per_second(parallel, loop));
        other =
            std::max(other, detail::read_bytes_per_second(parallel, detail::read_loop::integer_or));
      }
      if (best < 0.75 * other) {
        std::fprintf(stderr,
                     "kvc bench: the streaming-read baseline (%s) reads %.1f GB/s with %d "
                     "threads, a second loop (%s) %.1f GB/s: the baseline is not the limit\n",
                     detail::name_of(loop), best / 1e9, parallel.threads(),
                     detail::name_of(detail::read_loop::integer_or), other / 1e9);
        std::exit(3);
      }
    }
#endif
  }
  return rate;
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

// 12 independent chains of 512-bit FMAs, or with Bf16 of vdpbf16ps (the operands' bf16
// halves are those of 0.999 and 0.0001, so the sums stay normal; written as asm, which needs
// no AVX-512 BF16 target).
template <bool Bf16 = false>
[[gnu::target("avx512f")]] inline float zmm_chains_loop(long iterations) {
  __m512 a[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.0001f);
  for (long n = 0; n < iterations; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) {
      if constexpr (Bf16)
        asm("vdpbf16ps %1, %2, %0" : "+v"(a[i]) : "v"(x), "v"(y));
      else
        a[i] = _mm512_fmadd_ps(a[i], x, y);
    }
#pragma GCC unroll 11
  for (int i = 1; i < 12; ++i) a[0] = _mm512_add_ps(a[0], a[i]);
  float out[16];  // not _mm512_reduce_add_ps: g++ 12 warns inside it (bug 105593)
  _mm512_storeu_ps(out, a[0]);
  float sum = 0;
  for (float lane : out) sum += lane;
  return sum;
}
#endif

namespace detail {
// FLOP per second of `loop` on every thread of the executor: the median of 3 runs.
template <class Loop>
double loop_flops(cpu::parallel_for_ref parallel, Loop loop, long iterations,
                  double flops_per_iteration) {
  const std::size_t parts = static_cast<std::size_t>(parallel.threads());
  std::vector<float> sink(parts);
  const double seconds = median_seconds(
      [&] {
        parallel(parts, [&](std::size_t part) { sink[part] = loop(iterations); });
        benchmark::DoNotOptimize(sink.data());
      },
      3);
  return static_cast<double>(parts) * static_cast<double>(iterations) * flops_per_iteration /
         seconds;
}
}  // namespace detail

/// FLOP per second of independent fp32 FMA chains on every thread of the executor: AVX2
/// (16 FLOP per instruction, 10 chains) and, where the CPU has it, AVX-512 (32 FLOP, 12
/// chains); the faster of the two is the peak, whichever width the kernels use.
inline double fma_peak_flops(cpu::parallel_for_ref parallel) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  double peak = detail::loop_flops(
      parallel, [](long n) { return fma_loop(n); }, 20'000'000, 10.0 * 16);
  if (__builtin_cpu_supports("avx512f"))
    peak = std::max(
        peak, detail::loop_flops(
                  parallel, [](long n) { return zmm_chains_loop(n); }, 16'000'000, 12.0 * 32));
  return peak;
#else
  (void)parallel;
  return 0;
#endif
}

/// FLOP per second of independent vdpbf16ps chains (AVX-512 BF16: 32 products and 32
/// additions an instruction) on every thread of the executor; 0 where the CPU lacks it.
inline double bf16_dot_peak_flops(cpu::parallel_for_ref parallel) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return 0;
  return detail::loop_flops(
      parallel, [](long n) { return zmm_chains_loop<true>(n); }, 8'000'000, 12.0 * 64);
#else
  (void)parallel;
  return 0;
#endif
}

}  // namespace kvc::bench
