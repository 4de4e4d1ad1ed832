#pragma once
// The group kernels on 8 lanes (AVX2, FMA, F16C; the int8 ones also with AVX-512 VNNI on ymm
// registers): group_scores and group_accumulate for every storage dtype, 8 stored values
// converted in a register at a time (numeric::x86::decode8_raw), and the int8 kernels in
// integers. group_kernels.hpp says what they compute and chooses among them.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kvc/backend/cpu/block_kernels_avx2.hpp"
#include "kvc/backend/cpu/head_vectors.hpp"
#include "kvc/backend/cpu/key_block.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/backend/cpu/x86_instructions.hpp"
#include "kvc/numeric/simd_x86.hpp"
#include "kvc/policy/storage.hpp"

#if defined(KVC_X86_SIMD)
namespace kvc::cpu::x86 {

// Lane r * Tile + j of `sums` is row r's score of key j of the tile; each row's Tile scores
// are contiguous in s, rows key_block apart. Lanes past Group x Tile are not stored.
template <int Group, int Tile>
[[gnu::target("avx2,fma")]] inline void store_scores(__m256 sums, float* row) {
  if constexpr (Tile == 8) {
    _mm256_storeu_ps(row, sums);
  } else if constexpr (Tile == 4) {
    _mm_storeu_ps(row, _mm256_castps256_ps128(sums));
    _mm_storeu_ps(row + key_block, _mm256_extractf128_ps(sums, 1));
  } else if constexpr (Tile == 2) {
    const __m128 low = _mm256_castps256_ps128(sums), high = _mm256_extractf128_ps(sums, 1);
    _mm_storel_pi(reinterpret_cast<__m64*>(row), low);
    _mm_storeh_pi(reinterpret_cast<__m64*>(row + key_block), low);
    _mm_storel_pi(reinterpret_cast<__m64*>(row + 2 * key_block), high);
    if constexpr (Group == 4) _mm_storeh_pi(reinterpret_cast<__m64*>(row + 3 * key_block), high);
  } else {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sums);
    for (int r = 0; r < Group; ++r)
      for (int j = 0; j < Tile; ++j) row[r * key_block + j] = lanes[r * Tile + j];
  }
}

// Scores of Group rows against `tokens` keys, Tile keys at a time (Group x Tile <= 8
// accumulators, summed across lanes together). Keys past `tokens` repeat the last one.
// With more than one key a tile, the rows' 8 dims are loaded once into registers and used
// for every key of the tile: as memory operands of the FMAs they would be loaded again per
// key, 10 loads per 8 FMAs at 4 rows. The unroll pragmas keep the arrays in registers at -O2
// too, which does not unroll these loops by itself (the sums then go through the stack
// every FMA: half the speed).
template <dtype_id Type, int Group>
[[gnu::target("avx2,fma,f16c")]] void group_scores(const float* q, int dim, head_vectors keys,
                                                   int tokens, float* s, read_ahead& ahead) {
  constexpr int tile = Group >= 5 ? 1 : 8 / Group;
  constexpr int bits = dtype_bits(Type);
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile);
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
#pragma GCC unroll 8
    for (int j = 0; j < tile; ++j)
      k[j] =
          keys.values + static_cast<std::size_t>(std::min(t0 + j, tokens - 1)) * keys.token_stride;
    __m256 acc[8];
#pragma GCC unroll 8
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (int d = 0; d < dim; d += 8) {
      __m256 rows[kvc::detail::to_size(
          tile > 1 ? Group : 1)];  // one key a tile: loaded by the FMAs themselves
      if constexpr (tile > 1) {
#pragma GCC unroll 8
        for (int r = 0; r < Group; ++r) rows[r] = _mm256_loadu_ps(q + r * dim + d);
      }
#pragma GCC unroll 8
      for (int j = 0; j < tile; ++j) {
        const __m256 kv = numeric::x86::decode8_raw(Type, k[j] + d * bits / 8);
#pragma GCC unroll 8
        for (int r = 0; r < Group; ++r)
          acc[r * tile + j] = _mm256_fmadd_ps(tile > 1 ? rows[r] : _mm256_loadu_ps(q + r * dim + d),
                                              kv, acc[r * tile + j]);
      }
    }
    ahead.step(ahead_lines);
    // Lane r * tile + j holds row r's score of key t0 + j; each row's `tile` scores are
    // contiguous in s. Entries past `tokens` (a repeated key) are written but never used.
    __m256 sums = sum8(acc);
    store_scores<Group, tile>(sums, s + t0);
  }
}

// acc[Group][8 * Chunks] += p[Group][tokens] . raw(V)[tokens][8 * Chunks] for one column tile.
// The unroll pragmas keep the sums in registers: GCC otherwise stores all of them every token.
template <dtype_id Type, int Group, int Chunks>
[[gnu::target("avx2,fma,f16c")]] inline void group_value_tile(const float* p,
                                                              const std::byte* values,
                                                              std::size_t token_stride, int dim,
                                                              int tokens, float* acc,
                                                              read_ahead& ahead, int ahead_lines) {
  constexpr int bits = dtype_bits(Type);
  __m256 sum[kvc::detail::to_size(Group * Chunks)];
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) sum[r * Chunks + c] = _mm256_loadu_ps(acc + r * dim + 8 * c);
  for (int t = 0; t < tokens; ++t) {
    const std::byte* v = values + static_cast<std::size_t>(t) * token_stride;
    ahead.step(ahead_lines);
    __m256 x[kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) x[c] = numeric::x86::decode8_raw(Type, v + 8 * c * bits / 8);
#pragma GCC unroll 16
    for (int r = 0; r < Group; ++r) {
      const __m256 w = _mm256_broadcast_ss(p + r * key_block + t);
#pragma GCC unroll 16
      for (int c = 0; c < Chunks; ++c)
        sum[r * Chunks + c] = _mm256_fmadd_ps(w, x[c], sum[r * Chunks + c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) _mm256_storeu_ps(acc + r * dim + 8 * c, sum[r * Chunks + c]);
}

template <dtype_id Type, int Group>
[[gnu::target("avx2,fma,f16c")]] void group_accumulate(const float* p, head_vectors values, int dim,
                                                       int tokens, float* acc, read_ahead& ahead) {
  // Group x Chunks accumulators, Chunks converted vectors and a broadcast: 16 registers.
  constexpr int chunks = Group <= 2 ? 4 : Group <= 4 ? 3 : Group <= 6 ? 2 : 1;
  constexpr int bits = dtype_bits(Type);
  const int column_tiles = dim / (8 * chunks) + dim % (8 * chunks) / 8;
  const int ahead_lines = ahead.lines_per_step(column_tiles * tokens);
  int d = 0;
  for (; d + 8 * chunks <= dim; d += 8 * chunks)
    group_value_tile<Type, Group, chunks>(p, values.values + d * bits / 8, values.token_stride, dim,
                                          tokens, acc + d, ahead, ahead_lines);
  for (; d < dim; d += 8)
    group_value_tile<Type, Group, 1>(p, values.values + d * bits / 8, values.token_stride, dim,
                                     tokens, acc + d, ahead, ahead_lines);
}

// One query row rounded in place, forwards, to Int steps of max|q| / Int's largest value (the
// Int of dim d lands on bytes of a float at or before d, already read), the step stored at
// float dim / 2; returns the sum of the rounded values. A NaN or infinity makes the step NaN,
// and so the row's scores, as in float.
template <class Int>
inline std::int32_t round_query_row(float* row, int dim) {
  float largest = 0;
  bool finite = true;
  for (int d = 0; d < dim; ++d) {
    finite = finite && std::isfinite(row[d]);
    largest = std::max(largest, std::fabs(row[d]));
  }
  const float step = !finite       ? std::numeric_limits<float>::quiet_NaN()
                     : largest > 0 ? largest / static_cast<float>(std::numeric_limits<Int>::max())
                                   : 1.0f;
  std::int32_t total = 0;
  for (int d = 0; d < dim; ++d) {
    const auto rounded = static_cast<Int>(finite ? std::lrint(row[d] / step) : 0);
    total += rounded;
    std::memcpy(reinterpret_cast<std::byte*>(row) + sizeof(Int) * kvc::detail::to_size(d), &rounded,
                sizeof rounded);
  }
  row[dim / 2] = step;
  return total;
}

// A query row for the int8 scores below, in place: its first dim / 2 floats hold the row
// rounded to int16 steps of max|q| / 32767, the next float that step. Rounding a row to 16
// bits moves a score by at most step / 2 * sum|k| (docs/attention.md, numerics); the int32
// sums are exact (|q| <= 32767, |k| <= 128, dim / 8 products a lane: no overflow below dims
// of 4096).
inline void round_query_int16(float* q, int rows, int dim) {
  for (int r = 0; r < rows; ++r) round_query_row<std::int16_t>(q + std::ptrdiff_t{r} * dim, dim);
}

// A query row for group_scores_int8_query below, in place: its first dim bytes hold the row
// rounded to int8 steps of max|q| / 127, float dim / 2 that step and float dim / 2 + 1 (as
// an int32) 128 times the sum of the rounded values. Rounding a row to 8 bits moves a score
// by at most step / 2 * sum|k|, 258x the int16 rounding's bound (docs/attention.md,
// numerics); the int32 sums are exact (|q| <= 127, k + 128 <= 255, dim / 16 products of four
// a lane: no overflow below dims of 16384).
inline void round_query_int8(float* q, int rows, int dim) {
  for (int r = 0; r < rows; ++r) {
    float* row = q + std::ptrdiff_t{r} * dim;
    const std::int32_t offset = 128 * round_query_row<std::int8_t>(row, dim);
    std::memcpy(row + dim / 2 + 1, &offset, sizeof offset);
  }
}

// acc += the pairwise int16 products of a and b: one vpdpwssd with VNNI, vpmaddwd + vpaddd
// on AVX2. Both give the same int32 sums: vpmaddwd wraps only for four operands of -32768,
// and these never are (|a| <= 32767 or |b| <= 128). GCC 12 moves the accumulator of
// _mm256_dpwssd_epi32 out of its register and back around every use in a loop (two copies
// per instruction, which Ice Lake does not eliminate); written in place it stays put, given
// the register class that suits the kernel: Upper allows the 16 upper AVX-512 registers
// where the calling function is compiled for AVX-512 (the scores), without it the 16 VEX
// ones (the values: GCC shuffles the sums through the upper registers otherwise). The asm
// needs no AVX-512 target here: the assembler takes vpdpwssd as it is.
template <bool Vnni, bool Upper>
[[gnu::target("avx2"), gnu::always_inline]] inline void dot_accumulate(__m256i& acc, __m256i a,
                                                                       __m256i b) {
  if constexpr (!Vnni)
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  else if constexpr (Upper)
    dpwssd_any(acc, a, b);
  else
    dpwssd_vex(acc, a, b);
}

// group_scores for int8 keys and rows from round_query_int16: 16 dims a step, each a
// sign-extension of the keys and one integer dot per row and key; the int32 sums become
// floats once. As in group_scores, the rows of a step stay in registers for a tile's keys.
template <int Group, bool Vnni>
[[gnu::target("avx2,fma,f16c"), gnu::always_inline]] inline void int8_scores(
    const float* q, int dim, head_vectors keys, int tokens, float* s, read_ahead& ahead) {
  constexpr int tile = Group >= 5 ? 1 : 8 / Group;
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile);
  const auto* q16 = reinterpret_cast<const std::int16_t*>(q);
  const std::ptrdiff_t row_int16 = 2 * std::ptrdiff_t{dim};  // a row is dim floats
  alignas(32) float step[8];
  for (int lane = 0; lane < 8; ++lane)
    step[lane] = q[std::ptrdiff_t{std::min(lane / tile, Group - 1)} * dim + dim / 2];
  const __m256 row_steps = _mm256_load_ps(step);
  const auto row_at = [q16, row_int16](int r, int d) {
    return reinterpret_cast<const __m256i*>(q16 + std::ptrdiff_t{r} * row_int16 + d);
  };
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
#pragma GCC unroll 8
    for (int j = 0; j < tile; ++j)
      k[j] =
          keys.values + static_cast<std::size_t>(std::min(t0 + j, tokens - 1)) * keys.token_stride;
    __m256i acc[8];
#pragma GCC unroll 8
    for (__m256i& a : acc) a = _mm256_setzero_si256();
    for (int d = 0; d < dim; d += 16) {
      __m256i rows[kvc::detail::to_size(tile > 1 ? Group : 1)];
      if constexpr (tile > 1) {
#pragma GCC unroll 8
        for (int r = 0; r < Group; ++r) rows[r] = _mm256_loadu_si256(row_at(r, d));
      }
#pragma GCC unroll 8
      for (int j = 0; j < tile; ++j) {
        const __m256i kv =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k[j] + d)));
#pragma GCC unroll 8
        for (int r = 0; r < Group; ++r)
          dot_accumulate<Vnni, true>(acc[r * tile + j],
                                     tile > 1 ? rows[r] : _mm256_loadu_si256(row_at(r, d)), kv);
      }
    }
    ahead.step(ahead_lines);
    __m256 sums[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) sums[i] = _mm256_cvtepi32_ps(acc[i]);
    store_scores<Group, tile>(_mm256_mul_ps(sum8(sums), row_steps), s + t0);
  }
}

// The int8 scores as kernels: with VNNI compiled for AVX-512, whose upper registers the
// accumulators may then use, and on AVX2.
template <int Group>
[[gnu::target("avx2,fma,f16c,avx512vl,avx512vnni")]] void group_scores_int8_vnni(
    const float* q, int dim, head_vectors keys, int tokens, float* s, read_ahead& ahead) {
  int8_scores<Group, true>(q, dim, keys, tokens, s, ahead);
}
template <int Group>
[[gnu::target("avx2,fma,f16c")]] void group_scores_int8_avx2(const float* q, int dim,
                                                             head_vectors keys, int tokens,
                                                             float* s, read_ahead& ahead) {
  int8_scores<Group, false>(q, dim, keys, tokens, s, ahead);
}

// The int8 value tiles' operations on 8 lanes (ymm) and on 16 (zmm): a chunk's int32 sums,
// a weight pair broadcast, two tokens' bytes of a chunk's columns interleaved and widened to
// int16 pairs, vpdpwssd, and acc += step * sum. Both are compiled for AVX-512 F/BW/VL/DQ
// (vpdpwssd is asm, x86_instructions.hpp), so that the 16-lane score steps can take them;
// only kernels compiled for VNNI call them. (GCC 12's diagnostics as in numeric/simd_x86.hpp.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
struct int8_ymm {
  using sums = __m256i;
  static constexpr int columns = 8;
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums zero() {
    return _mm256_setzero_si256();
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums broadcast(std::int32_t pair) {
    return _mm256_set1_epi32(pair);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums pairs(const std::byte* v0,
                                                                           const std::byte* v1) {
    return _mm256_cvtepi8_epi16(
        _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v0)),
                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v1))));
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static void dot(sums& acc, sums w,
                                                                         sums x) {
    dot_accumulate<true, false>(acc, w, x);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static void finish(float* out, sums sum,
                                                                            float step) {
    _mm256_storeu_ps(
        out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(step), _mm256_loadu_ps(out)));
  }
};
struct int8_zmm {
  using sums = __m512i;
  static constexpr int columns = 16;
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums zero() {
    return _mm512_setzero_si512();
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums broadcast(std::int32_t pair) {
    return _mm512_set1_epi32(pair);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static sums pairs(const std::byte* v0,
                                                                           const std::byte* v1) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v0));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v1));
    return _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)), _mm_unpackhi_epi8(a, b), 1));
  }
  // In place, as dot_accumulate (the upper registers are the kernel's here).
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static void dot(sums& acc, sums w,
                                                                         sums x) {
    dpwssd_any(acc, w, x);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static void finish(float* out, sums sum,
                                                                            float step) {
    _mm512_storeu_ps(
        out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(step), _mm512_loadu_ps(out)));
  }
};

// One column tile of the int8 value kernels: Group x Chunks int32 sums over the block, then
// acc += step_r * sum. Not inlined: inlined, GCC keeps the weights in registers and takes
// each pair out with two shuffles, where a broadcast from memory is a load alone.
template <class Lanes, int Group, int Chunks>
[[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::noinline]] void int8_value_tile(
    const std::int32_t (*weights)[key_block / 2], const float* step, const std::byte* values,
    std::size_t token_stride, int dim, int tokens, float* acc, read_ahead& ahead, int ahead_lines) {
  constexpr int columns = Lanes::columns;
  typename Lanes::sums sum[kvc::detail::to_size(Group * Chunks)];
#pragma GCC unroll 16
  for (int i = 0; i < Group * Chunks; ++i) sum[i] = Lanes::zero();
  // The tile's share of the read-ahead at once: a loop of them inside the token loop makes
  // GCC keep the sums on the stack.
  ahead.step(ahead_lines);
  for (int i = 0; 2 * i < tokens; ++i) {
    const std::byte* v0 = values + static_cast<std::size_t>(2 * i) * token_stride;
    // A lone last token pairs with itself, at weight 0.
    const std::byte* v1 = 2 * i + 1 < tokens ? v0 + token_stride : v0;
    typename Lanes::sums x[kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) x[c] = Lanes::pairs(v0 + columns * c, v1 + columns * c);
#pragma GCC unroll 16
    for (int r = 0; r < Group; ++r) {
      const typename Lanes::sums w = Lanes::broadcast(weights[r][i]);
#pragma GCC unroll 16
      for (int c = 0; c < Chunks; ++c) Lanes::dot(sum[r * Chunks + c], w, x[c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c)
      Lanes::finish(acc + r * dim + columns * c, sum[r * Chunks + c], step[r]);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Each row's weights of a block rounded to int16 steps of their largest / 32767, as pairs
// of tokens (the int32 weights[r][i] holds tokens 2i and 2i + 1); weights past `tokens` are
// zero, so a lone last token pairs with itself harmlessly.
template <int Group>
[[gnu::target("avx2,fma,f16c")]] inline void round_weights_int16(
    const float* p, int tokens, std::int32_t (*weights)[key_block / 2], float* step) {
  static_assert(key_block == 16, "a row's weights are two vectors");
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 valid_low = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(tokens), lane));
  const __m256 valid_high =
      _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(tokens - 8), lane));
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 largest_finite = _mm256_set1_ps(std::numeric_limits<float>::max());
  for (int r = 0; r < Group; ++r) {
    const __m256 low = _mm256_and_ps(_mm256_loadu_ps(p + r * key_block), valid_low);
    const __m256 high = _mm256_and_ps(_mm256_loadu_ps(p + r * key_block + 8), valid_high);
    const __m256 low_size = _mm256_and_ps(low, magnitude),
                 high_size = _mm256_and_ps(high, magnitude);
    const float largest = horizontal_max(_mm256_max_ps(low_size, high_size));
    // A NaN or infinite weight makes the step NaN, and so the row's output, as in float.
    const int not_finite =
        _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(low_size, largest_finite, _CMP_NLE_UQ),
                                        _mm256_cmp_ps(high_size, largest_finite, _CMP_NLE_UQ)));
    step[r] = not_finite != 0 ? std::numeric_limits<float>::quiet_NaN()
              : largest > 0   ? largest / 32767.0f
                              : 1.0f;
    const __m256 inverse = _mm256_set1_ps(1.0f / step[r]);
    // Round to nearest, pack to int16 (within 128-bit lanes), put the tokens back in order.
    const __m256i packed = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(low, inverse)),
                                              _mm256_cvtps_epi32(_mm256_mul_ps(high, inverse)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(weights[r]),
                        _mm256_permute4x64_epi64(packed, 0xd8));
  }
}

// group_accumulate for int8 values: each row's weights of the block are rounded to int16
// steps of their largest / 32767, and two tokens go into one vpdpwssd (their bytes of a
// column interleaved, a weight pair broadcast); the int32 sums join acc once per block.
// Rounding a row's weights moves its output by at most step / 2 * sum|v| (docs/attention.md).
// VNNI only: with vpmaddwd + vpaddd in its place this is slower than group_accumulate (49
// against 43 cycles a token for 4 rows on Zen 3), unlike the scores.
template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_accumulate_int8_vnni(
    const float* p, head_vectors values, int dim, int tokens, float* acc, read_ahead& ahead) {
  // Group x Chunks sums, Chunks columns and a weight pair: at most 15 registers.
  constexpr int chunks = Group <= 2 ? 4 : Group == 3 ? 3 : Group <= 6 ? 2 : 1;
  std::int32_t weights[kvc::detail::to_size(Group)][kvc::detail::to_size(key_block / 2)];
  float step[kvc::detail::to_size(Group)];
  round_weights_int16<Group>(p, tokens, weights, step);
  const int column_tiles = dim / (8 * chunks) + dim % (8 * chunks) / 8;
  const int ahead_lines = ahead.lines_per_step(column_tiles);
  int d = 0;
  for (; d + 8 * chunks <= dim; d += 8 * chunks)
    int8_value_tile<int8_ymm, Group, chunks>(weights, step, values.values + d, values.token_stride,
                                             dim, tokens, acc + d, ahead, ahead_lines);
  for (; d < dim; d += 8)
    int8_value_tile<int8_ymm, Group, 1>(weights, step, values.values + d, values.token_stride, dim,
                                        tokens, acc + d, ahead, ahead_lines);
}

}  // namespace kvc::cpu::x86
#endif
