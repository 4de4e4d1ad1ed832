#pragma once
// The many-row float-block kernels on 16 lanes (AVX-512 F/BW/VL/DQ): scores over keys laid
// out in pairs of dims, and the weighted values in wide tiles. block_kernels.hpp chooses them.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/block_kernels_avx2.hpp"
#include "kvc/backend/cpu/key_block.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/numeric/simd_x86.hpp"

#if defined(KVC_X86_SIMD)
namespace kvc::cpu::x86 {

// The many-row kernels (prefill, MLA) on 16 lanes with AVX-512: a pair of dims of a block's
// 16 keys is two registers, so a row's scores are two accumulators with no sums across
// lanes but one add of odd to even lanes, and 32 registers hold twice the value tile. Only
// the order of the float sums differs from the AVX2 kernels, so the bounds are theirs.

// As in numeric/simd_x86.hpp: GCC 12 warns of an uninitialized variable wherever a 512-bit
// intrinsic that starts from _mm512_undefined_*() is inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

static_assert(key_block == 16, "a block's keys fill 16-lane registers");

// f(std::integral_constant<int, n>) for a count 1 <= n < Limit known only at run time: the
// remainder of a tile of Limit rows.
template <int Limit, class F>
inline void with_rows_below(int n, F&& f) {
  [&]<int... N>(std::integer_sequence<int, N...>) {
    ((n == N + 1 ? f(std::integral_constant<int, N + 1>{}) : void()), ...);
  }
  (std::make_integer_sequence<int, Limit - 1>{});
}

// keys [tokens][k_stride] -> kt [k_dim / 2][key_block][2]: each pair of dims of the 16 keys
// in one 32-float row, (key 0 dim 2i, key 0 dim 2i + 1, key 1 dim 2i, ...), in 4 x 4
// squares of pairs; keys past `tokens` are 0. k_dim is a multiple of 8.
[[gnu::target("avx2,fma")]] inline void pair_keys(const float* keys, int k_stride, int tokens,
                                                  int k_dim, float* kt) {
  for (int t0 = 0; t0 < key_block; t0 += 4)
    for (int d0 = 0; d0 < k_dim; d0 += 8) {
      __m256d r[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i)
        r[i] = t0 + i < tokens ? _mm256_castps_pd(_mm256_loadu_ps(keys + (t0 + i) * k_stride + d0))
                               : _mm256_setzero_pd();
      const __m256d low01 = _mm256_unpacklo_pd(r[0], r[1]), high01 = _mm256_unpackhi_pd(r[0], r[1]);
      const __m256d low23 = _mm256_unpacklo_pd(r[2], r[3]), high23 = _mm256_unpackhi_pd(r[2], r[3]);
      const __m256d pairs[4] = {
          _mm256_permute2f128_pd(low01, low23, 0x20), _mm256_permute2f128_pd(high01, high23, 0x20),
          _mm256_permute2f128_pd(low01, low23, 0x31), _mm256_permute2f128_pd(high01, high23, 0x31)};
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i)
        _mm256_storeu_ps(kt + (d0 / 2 + i) * 2 * key_block + 2 * t0, _mm256_castpd_ps(pairs[i]));
    }
}

// Rows x 16 scores from paired keys: per pair of dims, each row's two q values broadcast
// against the 16 keys' pairs (two registers), so that 2 + Rows loads feed 2 x Rows FMAs (the
// core issues two 512-bit loads a cycle); each score is the sum of its even- and odd-dim lanes.
template <int Rows>
[[gnu::target(KVC_AVX512_TARGET)]] inline void score_rows_paired16(const float* q, int k_dim,
                                                                   const float* kt, float* s) {
  __m512 acc[kvc::detail::to_size(Rows)][2];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int d = 0; d < k_dim; d += 2) {
    const __m512 k0 = _mm512_loadu_ps(kt + d * key_block),
                 k1 = _mm512_loadu_ps(kt + d * key_block + 16);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      // The two floats as one 64-bit lane, broadcast straight from memory.
      double pair;
      std::memcpy(&pair, q + r * k_dim + d, sizeof pair);
      const __m512 w = _mm512_castpd_ps(_mm512_set1_pd(pair));
      acc[r][0] = _mm512_fmadd_ps(w, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(w, k1, acc[r][1]);
    }
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
    _mm512_storeu_ps(s + r * key_block,
                     _mm512_add_ps(_mm512_permutex2var_ps(acc[r][0], even, acc[r][1]),
                                   _mm512_permutex2var_ps(acc[r][0], odd, acc[r][1])));
}

// The many-row scores on 16 lanes: the keys paired once, then 12 rows a tile (24 independent
// chains; two FMA pipes of latency 4 need 8).
[[gnu::target(KVC_AVX512_TARGET)]] inline void scores_transposed16(const float* q, int rows,
                                                                   int k_dim, const float* keys,
                                                                   int k_stride, int tokens,
                                                                   float* kt, float* s,
                                                                   read_ahead* ahead) {
  constexpr int tile = 12;
  pair_keys(keys, k_stride, tokens, k_dim, kt);
  const int ahead_lines = ahead != nullptr ? ahead->lines_per_step(rows / tile + 1) : 0;
  int r = 0;
  for (; r + tile <= rows; r += tile) {
    if (ahead != nullptr) ahead->step(ahead_lines);
    score_rows_paired16<tile>(q + r * k_dim, k_dim, kt, s + r * key_block);
  }
  with_rows_below<tile>(rows - r, [&](auto n) {
    score_rows_paired16<decltype(n)::value>(q + r * k_dim, k_dim, kt, s + r * key_block);
  });
}

// acc[Rows][16 * Chunks] += P[Rows][tokens] . V[tokens][16 * Chunks], for one column chunk:
// accumulate_tile on zmm. One template cannot serve both: a function's target attribute
// cannot depend on its template arguments, and the AVX2 tile must run where AVX-512 is absent.
template <int Rows, int Chunks>
[[gnu::target(KVC_AVX512_TARGET)]] inline void accumulate_tile16(const float* p,
                                                                 const float* values, int v_stride,
                                                                 int v_dim, int tokens,
                                                                 float* acc) {
  __m512 sum[kvc::detail::to_size(Rows)][kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm512_loadu_ps(acc + r * v_dim + 16 * c);
  for (int t = 0; t < tokens; ++t) {
    __m512 v[kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) v[c] = _mm512_loadu_ps(values + t * v_stride + 16 * c);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * key_block + t]);
#pragma GCC unroll 16
      for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm512_fmadd_ps(w, v[c], sum[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) _mm512_storeu_ps(acc + r * v_dim + 16 * c, sum[r][c]);
}

// A tile of rows across the dims: 64 columns at a time (Rows x 4 <= 24 sums, 4 values and a
// weight: 29 registers), then the 16, 32 or 48 left.
template <int Rows>
[[gnu::target(KVC_AVX512_TARGET)]] inline void accumulate_rows16(const float* p,
                                                                 const float* values, int v_stride,
                                                                 int v_dim, int tokens,
                                                                 float* acc) {
  int d = 0;
  for (; d + 64 <= v_dim; d += 64) {
    // The next chunk's sums into L1 meanwhile: for MLA (128 x 512 sums) they live in L2.
    if (d + 64 < v_dim)
      for (int r = 0; r < Rows; ++r)
        for (int c = 0; c < 4; ++c) __builtin_prefetch(acc + r * v_dim + d + 64 + 16 * c, 1, 3);
    accumulate_tile16<Rows, 4>(p, values + d, v_stride, v_dim, tokens, acc + d);
  }
  switch ((v_dim - d) / 16) {
    case 3:
      return accumulate_tile16<Rows, 3>(p, values + d, v_stride, v_dim, tokens, acc + d);
    case 2:
      return accumulate_tile16<Rows, 2>(p, values + d, v_stride, v_dim, tokens, acc + d);
    case 1:
      return accumulate_tile16<Rows, 1>(p, values + d, v_stride, v_dim, tokens, acc + d);
    default:
      return;
  }
}

// accumulate on 16 lanes, for v_dim a multiple of 16: tiles of 6 rows, then the rest.
[[gnu::target(KVC_AVX512_TARGET)]] inline void accumulate16(const float* p, int rows,
                                                            const float* values, int v_stride,
                                                            int v_dim, int tokens, float* acc,
                                                            read_ahead* ahead) {
  constexpr int tile = 6;
  const int ahead_lines = ahead != nullptr ? ahead->lines_per_step(rows / tile + 1) : 0;
  int r = 0;
  for (; r + tile <= rows; r += tile) {
    if (ahead != nullptr) ahead->step(ahead_lines);
    accumulate_rows16<tile>(p + r * key_block, values, v_stride, v_dim, tokens, acc + r * v_dim);
  }
  with_rows_below<tile>(rows - r, [&](auto n) {
    accumulate_rows16<decltype(n)::value>(p + r * key_block, values, v_stride, v_dim, tokens,
                                          acc + r * v_dim);
  });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace kvc::cpu::x86
#endif
