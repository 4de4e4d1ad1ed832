#pragma once
// Decode kernels for a small query group (up to 8 query heads per KV head, as GQA, MHA and
// most MQA layers have): the scores and the weighted sum of values are computed straight from
// the stored dtype of one KV head's vectors, 8 values converted in a register at a time.
// Nothing is dequantized into memory first: at a few query rows per key, a float copy of the
// block costs as much as the arithmetic itself.
//
//   group_kernels k = group_kernels::of(choose_kernels(geometry, group, options), geometry,
//                                       group);            // empty when none is chosen
//   k.scores(q, k_dim, keys, tokens, s, ahead);        s[r][t] = q_r . raw(k_t)
//   k.accumulate(p, values, v_dim, tokens, acc, ahead)  acc[r] += sum_t p[r][t] raw(v_t)
//
// raw() is the stored value before its scale (numeric::x86::decode8_raw): a per-layer scale
// and the raw unit go into q (keys) or the weights (values); per-vector scales are the
// caller's to apply, to the scores (keys) or the weights (values).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/block_kernels.hpp"
#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/simd_x86.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cpu {

/// One KV head's vectors within a page, from a block's first token: where the first one
/// starts, the bytes from a token's vector to the next, and their scales (int8 / int4 only).
struct head_vectors {
  const std::byte* values = nullptr;
  std::size_t token_stride = 0;   ///< bytes
  const float* scales = nullptr;  ///< null when the dtype has no per-vector scale
  std::size_t scale_stride = 0;   ///< floats
  std::uint32_t vector_bytes = 0;

  static head_vectors of(const page_geometry& geo, const std::byte* page, int first_token, int head,
                         bool keys) {
    const std::size_t vectors_per_token =
        geo.layout == page_layout::nhd ? kvc::detail::to_size(geo.kv_heads) : 1;
    const dtype_id type = keys ? geo.k_type : geo.v_type;
    head_vectors h;
    h.values = page + (keys ? geo.k_offset(first_token, head) : geo.v_offset(first_token, head));
    h.vector_bytes = keys ? geo.k_vector_bytes : geo.v_vector_bytes;
    h.token_stride = vectors_per_token * h.vector_bytes;
    if (dtype_scaling(type) == scaling::per_token_head) {
      h.scales =
          reinterpret_cast<const float*>(page + (keys ? geo.k_scale_offset(first_token, head)
                                                      : geo.v_scale_offset(first_token, head)));
      h.scale_stride = vectors_per_token;
    }
    return h;
  }
  float scale(int token) const {
    return scales == nullptr ? 1.0f : scales[kvc::detail::to_size(token) * scale_stride];
  }
};

#if defined(KVC_X86_SIMD)
namespace x86 {

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
    asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  else
    asm("vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
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
// int16 pairs, vpdpwssd, and acc += step * sum. Both are compiled for AVX-512 VNNI, which
// cpu_features::avx512_vnni implies with AVX-512 F/BW/VL/DQ. (GCC 12's diagnostics as in
// numeric/simd_x86.hpp.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
struct int8_ymm {
  using sums = __m256i;
  static constexpr int columns = 8;
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums zero() {
    return _mm256_setzero_si256();
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums broadcast(
      std::int32_t pair) {
    return _mm256_set1_epi32(pair);
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums pairs(
      const std::byte* v0, const std::byte* v1) {
    return _mm256_cvtepi8_epi16(
        _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v0)),
                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v1))));
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static void dot(sums& acc, sums w,
                                                                              sums x) {
    dot_accumulate<true, false>(acc, w, x);
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static void finish(float* out,
                                                                                 sums sum,
                                                                                 float step) {
    _mm256_storeu_ps(
        out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(step), _mm256_loadu_ps(out)));
  }
};
struct int8_zmm {
  using sums = __m512i;
  static constexpr int columns = 16;
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums zero() {
    return _mm512_setzero_si512();
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums broadcast(
      std::int32_t pair) {
    return _mm512_set1_epi32(pair);
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static sums pairs(
      const std::byte* v0, const std::byte* v1) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v0));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v1));
    return _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)), _mm_unpackhi_epi8(a, b), 1));
  }
  // In place, as dot_accumulate (the upper registers are the kernel's here).
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static void dot(sums& acc, sums w,
                                                                              sums x) {
    asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
  }
  [[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] static void finish(float* out,
                                                                                 sums sum,
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

// The AVX-512 kernels: group_scores and group_accumulate on 16 lanes, the dtypes but int4
// converted as decode8_raw does (decode16_raw, the same values bit for bit), with 32
// registers for twice the accumulators. Only the order of the float sums differs from the
// 8-lane kernels, so the bound is theirs. A dim that is a multiple of 8 but not of 16 ends in
// a masked half step.

// As in numeric/simd_x86.hpp: GCC 12 warns of an uninitialized variable wherever a 512-bit
// intrinsic that starts from _mm512_undefined_*() (`__m512 __Y = __Y;`) is inlined; the value is
// never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The sums of 16 vectors, one per lane: [sum a0, sum a1, ..., sum a15]. Four halvings, each
// adding two shuffles of a pair: within 128-bit lanes twice, then across them twice.
[[gnu::target(KVC_AVX512_TARGET)]] inline __m512 sum16(const __m512* a) {
  __m512 pairs[8], quads[4], halves[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(pairs[2 * i]), y = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)
    halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], 0x88),
                       _mm512_shuffle_f32x4(halves[0], halves[1], 0xDD));
}

// Row r's score of key j of a tile is lane r * Tile + j: row r's lanes go to row + r *
// key_block, those of keys past `valid` not at all.
template <int Group, int Tile>
[[gnu::target(KVC_AVX512_TARGET)]] inline void store_scores16(__m512 sums, float* row, int valid) {
  const auto keys = static_cast<unsigned>((1u << std::min(valid, Tile)) - 1u);
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
    _mm512_mask_storeu_ps(row + r * (key_block - Tile), static_cast<__mmask16>(keys << (r * Tile)),
                          sums);
}

// One 16-dim step of group_scores_512 (Masked: the last 8 dims of a row).
template <dtype_id Type, int Group, int Tile, bool Masked>
[[gnu::target(KVC_AVX512_TARGET)]] [[gnu::always_inline]] inline void score_step16(
    const float* q, int dim, int d, const std::byte* const* k, __m512* acc) {
  constexpr int bits = dtype_bits(Type);
  __m512 rows[kvc::detail::to_size(Group)];
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
    rows[r] =
        Masked ? _mm512_maskz_loadu_ps(0x00FF, q + r * dim + d) : _mm512_loadu_ps(q + r * dim + d);
#pragma GCC unroll 16
  for (int j = 0; j < Tile; ++j) {
    const __m512 kv = numeric::x86::decode16_raw<Type, Masked>(k[j] + d * bits / 8);
#pragma GCC unroll 8
    for (int r = 0; r < Group; ++r)
      acc[r * Tile + j] = _mm512_fmadd_ps(rows[r], kv, acc[r * Tile + j]);
  }
}

// Keys a tile of the 16-lane scores: Group x tile <= 16 accumulators, a tile dividing
// key_block.
template <int Group>
constexpr int keys_per_tile16 = Group == 1   ? 16
                                : Group == 2 ? 8
                                : Group <= 4 ? 4
                                             : 2;

// The keys of a tile of the 16-lane scores from t0, the last one repeated past `tokens`
// (their scores are never stored).
template <int Tile>
[[gnu::always_inline]] inline void tile_keys(const head_vectors& keys, int t0, int tokens,
                                             const std::byte** k) {
#pragma GCC unroll 16
  for (int j = 0; j < Tile; ++j)
    k[j] = keys.values + static_cast<std::size_t>(std::min(t0 + j, tokens - 1)) * keys.token_stride;
}

// group_scores on 16 lanes: Group x Tile <= 16 accumulators (a tile of keys dividing
// key_block), the rows' 16 dims in registers for the tile's keys.
template <dtype_id Type, int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_scores_512(const float* q, int dim, head_vectors keys,
                                                         int tokens, float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile * ((dim + 15) / 16));
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
    tile_keys<tile>(keys, t0, tokens, k);
    __m512 acc[16];
#pragma GCC unroll 16
    for (__m512& a : acc) a = _mm512_setzero_ps();
    int d = 0;
    for (; d + 16 <= dim; d += 16) {
      score_step16<Type, Group, tile, false>(q, dim, d, k, acc);
      ahead.step(ahead_lines);
    }
    if (d < dim) {
      score_step16<Type, Group, tile, true>(q, dim, d, k, acc);
      ahead.step(ahead_lines);
    }
    store_scores16<Group, tile>(sum16(acc), s + t0, tokens - t0);
  }
}

// acc[Group][16 * Chunks] += p[Group][tokens] . raw(V)[tokens][16 * Chunks] for one column
// tile (Masked: one chunk of 8 columns).
template <dtype_id Type, int Group, int Chunks, bool Masked = false>
[[gnu::target(KVC_AVX512_TARGET)]] inline void value_tile16(const float* p, const std::byte* values,
                                                            std::size_t token_stride, int dim,
                                                            int tokens, float* acc,
                                                            read_ahead& ahead, int ahead_lines) {
  constexpr int bits = dtype_bits(Type);
  constexpr __mmask16 lanes = Masked ? 0x00FF : 0xFFFF;
  __m512 sum[kvc::detail::to_size(Group * Chunks)];
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c)
      sum[r * Chunks + c] = _mm512_maskz_loadu_ps(lanes, acc + r * dim + 16 * c);
  for (int t = 0; t < tokens; ++t) {
    const std::byte* v = values + static_cast<std::size_t>(t) * token_stride;
    ahead.step(ahead_lines);
    __m512 x[kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c)
      x[c] = numeric::x86::decode16_raw<Type, Masked>(v + 16 * c * bits / 8);
#pragma GCC unroll 16
    for (int r = 0; r < Group; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * key_block + t]);
#pragma GCC unroll 16
      for (int c = 0; c < Chunks; ++c)
        sum[r * Chunks + c] = _mm512_fmadd_ps(w, x[c], sum[r * Chunks + c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c)
      _mm512_mask_storeu_ps(acc + r * dim + 16 * c, lanes, sum[r * Chunks + c]);
}

template <dtype_id Type, int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_accumulate_512(const float* p, head_vectors values,
                                                             int dim, int tokens, float* acc,
                                                             read_ahead& ahead) {
  // Group x Chunks sums, Chunks converted vectors and a broadcast: at most 27 registers.
  constexpr int chunks = Group <= 2 ? 8 : Group <= 4 ? 4 : Group <= 6 ? 3 : 2;
  constexpr int bits = dtype_bits(Type);
  const int column_tiles = dim / (16 * chunks) + dim % (16 * chunks) / 16 + dim % 16 / 8;
  const int ahead_lines = ahead.lines_per_step(column_tiles * tokens);
  int d = 0;
  for (; d + 16 * chunks <= dim; d += 16 * chunks)
    value_tile16<Type, Group, chunks>(p, values.values + d * bits / 8, values.token_stride, dim,
                                      tokens, acc + d, ahead, ahead_lines);
  for (; d + 16 <= dim; d += 16)
    value_tile16<Type, Group, 1>(p, values.values + d * bits / 8, values.token_stride, dim, tokens,
                                 acc + d, ahead, ahead_lines);
  if (d < dim)
    value_tile16<Type, Group, 1, true>(p, values.values + d * bits / 8, values.token_stride, dim,
                                       tokens, acc + d, ahead, ahead_lines);
}

// The int8 kernels on 16 lanes with AVX-512 VNNI: vpdpwssd on zmm, twice the int16 pairs of
// the 8-lane ones an instruction, the same exact int32 sums (so the same bounds).

// One 32-dim step of int8_scores_512 (Masked: the last 16 dims of a row).
template <int Group, int Tile, bool Masked>
[[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] inline void int8_score_step(
    const std::int16_t* q16, std::ptrdiff_t row_int16, int d, const std::byte* const* k,
    __m512i* acc) {
  __m512i rows[kvc::detail::to_size(Group)];
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
    rows[r] = Masked ? _mm512_maskz_loadu_epi16(0x0000FFFF, q16 + r * row_int16 + d)
                     : _mm512_loadu_si512(q16 + r * row_int16 + d);
#pragma GCC unroll 16
  for (int j = 0; j < Tile; ++j) {
    const __m256i bytes = Masked ? _mm256_maskz_loadu_epi8(0x0000FFFF, k[j] + d)
                                 : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k[j] + d));
    const __m512i kv = _mm512_cvtepi8_epi16(bytes);
#pragma GCC unroll 8
    for (int r = 0; r < Group; ++r) int8_zmm::dot(acc[r * Tile + j], rows[r], kv);
  }
}

// int8_scores on 16 lanes, 32 dims a step, in tiles of keys as group_scores_512.
template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_scores_int8_512(const float* q, int dim,
                                                                   head_vectors keys, int tokens,
                                                                   float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile * ((dim + 31) / 32));
  const auto* q16 = reinterpret_cast<const std::int16_t*>(q);
  const std::ptrdiff_t row_int16 = 2 * std::ptrdiff_t{dim};  // a row is dim floats
  alignas(64) float step[16] = {};
  for (int lane = 0; lane < Group * tile; ++lane)
    step[lane] = q[std::ptrdiff_t{lane / tile} * dim + dim / 2];
  const __m512 row_steps = _mm512_load_ps(step);
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
    tile_keys<tile>(keys, t0, tokens, k);
    __m512i acc[16];
#pragma GCC unroll 16
    for (__m512i& a : acc) a = _mm512_setzero_si512();
    int d = 0;
    for (; d + 32 <= dim; d += 32) {
      int8_score_step<Group, tile, false>(q16, row_int16, d, k, acc);
      ahead.step(ahead_lines);
    }
    if (d < dim) {
      int8_score_step<Group, tile, true>(q16, row_int16, d, k, acc);
      ahead.step(ahead_lines);
    }
    __m512 sums[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) sums[i] = _mm512_cvtepi32_ps(acc[i]);
    store_scores16<Group, tile>(_mm512_mul_ps(sum16(sums), row_steps), s + t0, tokens - t0);
  }
}

// The 8-bit query option (decode_plan::int8_query): int8 keys against rows from
// round_query_int8, 64 dims a step with vpdpbusd, four products a lane. Its first operand is
// unsigned, so the keys go in flipped to k + 128 (an XOR of the sign bit) and each row's
// sum loses 128 sum(q) after. The keys' tail past a multiple of 64 dims is loaded with a
// mask; its zeros flip to 128, which meets the row's masked zeros.
template <int Group, int Tile, bool Masked>
[[gnu::target(KVC_AVX512_VNNI_TARGET), gnu::always_inline]] inline void int8_query_step(
    const std::int8_t* q8, std::ptrdiff_t row_bytes, int d, __mmask64 tail,
    const std::byte* const* k, __m512i* acc) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i rows[kvc::detail::to_size(Group)];
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
    rows[r] = Masked ? _mm512_maskz_loadu_epi8(tail, q8 + r * row_bytes + d)
                     : _mm512_loadu_si512(q8 + r * row_bytes + d);
#pragma GCC unroll 16
  for (int j = 0; j < Tile; ++j) {
    const __m512i kv = _mm512_xor_si512(
        flip, Masked ? _mm512_maskz_loadu_epi8(tail, k[j] + d) : _mm512_loadu_si512(k[j] + d));
#pragma GCC unroll 8
    for (int r = 0; r < Group; ++r)  // in place, as int8_zmm::dot
      asm("vpdpbusd %2, %1, %0" : "+v"(acc[r * Tile + j]) : "v"(kv), "v"(rows[r]));
  }
}

template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_scores_int8_query(const float* q, int dim,
                                                                     head_vectors keys, int tokens,
                                                                     float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile * ((dim + 63) / 64));
  const auto* q8 = reinterpret_cast<const std::int8_t*>(q);
  const std::ptrdiff_t row_bytes = 4 * std::ptrdiff_t{dim};  // a row is dim floats
  alignas(64) float step[16] = {}, offset[16] = {};
  for (int lane = 0; lane < Group * tile; ++lane) {
    const float* row = q + std::ptrdiff_t{lane / tile} * dim;
    std::int32_t row_offset = 0;
    std::memcpy(&row_offset, row + dim / 2 + 1, sizeof row_offset);
    step[lane] = row[dim / 2];
    offset[lane] = static_cast<float>(row_offset);
  }
  const __m512 row_steps = _mm512_load_ps(step), row_offsets = _mm512_load_ps(offset);
  const auto tail = static_cast<__mmask64>(dim % 64 == 0 ? 0 : (1ull << (dim % 64)) - 1);
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
    tile_keys<tile>(keys, t0, tokens, k);
    __m512i acc[16];
#pragma GCC unroll 16
    for (__m512i& a : acc) a = _mm512_setzero_si512();
    int d = 0;
    for (; d + 64 <= dim; d += 64) {
      int8_query_step<Group, tile, false>(q8, row_bytes, d, tail, k, acc);
      ahead.step(ahead_lines);
    }
    if (d < dim) {
      int8_query_step<Group, tile, true>(q8, row_bytes, d, tail, k, acc);
      ahead.step(ahead_lines);
    }
    __m512 sums[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) sums[i] = _mm512_cvtepi32_ps(acc[i]);
    store_scores16<Group, tile>(_mm512_mul_ps(_mm512_sub_ps(sum16(sums), row_offsets), row_steps),
                                s + t0, tokens - t0);
  }
}

// group_accumulate_int8_vnni on 16 columns a chunk; a last 8 columns on the 8-lane tile.
// The weights are rounded as there (round_weights_int16): the same bound.
template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_accumulate_int8_512(const float* p,
                                                                       head_vectors values, int dim,
                                                                       int tokens, float* acc,
                                                                       read_ahead& ahead) {
  // Group x Chunks sums, Chunks columns and a weight pair: at most 27 registers.
  constexpr int chunks = Group <= 2 ? 8 : Group <= 4 ? 4 : Group <= 6 ? 3 : 2;
  std::int32_t weights[kvc::detail::to_size(Group)][kvc::detail::to_size(key_block / 2)];
  float step[kvc::detail::to_size(Group)];
  round_weights_int16<Group>(p, tokens, weights, step);
  const int column_tiles = dim / (16 * chunks) + dim % (16 * chunks) / 16 + dim % 16 / 8;
  const int ahead_lines = ahead.lines_per_step(column_tiles);
  int d = 0;
  for (; d + 16 * chunks <= dim; d += 16 * chunks)
    int8_value_tile<int8_zmm, Group, chunks>(weights, step, values.values + d, values.token_stride,
                                             dim, tokens, acc + d, ahead, ahead_lines);
  for (; d + 16 <= dim; d += 16)
    int8_value_tile<int8_zmm, Group, 1>(weights, step, values.values + d, values.token_stride, dim,
                                        tokens, acc + d, ahead, ahead_lines);
  if (d < dim)
    int8_value_tile<int8_ymm, Group, 1>(weights, step, values.values + d, values.token_stride, dim,
                                        tokens, acc + d, ahead, ahead_lines);
}

// The bf16 products option (decode_plan::bf16_products), where the CPU has AVX-512 BF16:
// bf16 keys and values go into vdpbf16ps as they are stored, two products a lane, against
// the query and the softmax weights rounded to bf16 (to nearest even), with fp32 sums, as a
// tensor core's attention takes them. vdpbf16ps adds its two exact products in turn, each
// addition rounded as an FMA's, but reads a denormal bf16 as zero and flushes a denormal sum
// (below 2^-126: nothing a score or an output would show). Rounding the query moves a score
// by at most 2^-8 x sum|q k|, the weights an output by 2^-8 max|v| (docs/attention.md). The
// instructions are written as asm, which the assembler takes without an AVX-512 BF16 target.

// 16 floats rounded to bf16, to nearest even (NaN stays NaN).
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline __m256i round_bf16(__m512 x) {
  __m256i rounded;
  asm("vcvtneps2bf16 %1, %0" : "=v"(rounded) : "v"(x));
  return rounded;
}

// acc += a.bf16[2i] b.bf16[2i] + a.bf16[2i + 1] b.bf16[2i + 1] in each lane i, in place (as
// int8_zmm::dot).
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void dot_bf16(__m512& acc, __m512i a,
                                                                            __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// A query row for group_scores_bf16 below, in place: its first dim / 2 floats hold the row's
// dim values rounded to bf16. Forwards, 16 at a time: each write lands on floats already read.
[[gnu::target(KVC_AVX512_TARGET)]] inline void round_query_bf16(float* q, int rows, int dim) {
  for (int r = 0; r < rows; ++r) {
    float* row = q + std::ptrdiff_t{r} * dim;
    for (int d = 0; d < dim; d += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(reinterpret_cast<std::byte*>(row) + 2 * d),
                          round_bf16(_mm512_loadu_ps(row + d)));
  }
}

// group_scores for bf16 keys and rows from round_query_bf16: 32 dims a step, in tiles of
// keys as group_scores_512 (dims a multiple of 32).
template <int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_scores_bf16(const float* q, int dim,
                                                          head_vectors keys, int tokens, float* s,
                                                          read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile * (dim / 32));
  const auto* q16 = reinterpret_cast<const std::uint16_t*>(q);
  const std::ptrdiff_t row_values = 2 * std::ptrdiff_t{dim};  // a row is dim floats
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
    tile_keys<tile>(keys, t0, tokens, k);
    __m512 acc[16];
#pragma GCC unroll 16
    for (__m512& a : acc) a = _mm512_setzero_ps();
    for (int d = 0; d < dim; d += 32) {
      __m512i rows[kvc::detail::to_size(Group)];
#pragma GCC unroll 8
      for (int r = 0; r < Group; ++r) rows[r] = _mm512_loadu_si512(q16 + r * row_values + d);
#pragma GCC unroll 16
      for (int j = 0; j < tile; ++j) {
        const __m512i kv = _mm512_loadu_si512(k[j] + 2 * d);
#pragma GCC unroll 8
        for (int r = 0; r < Group; ++r) dot_bf16(acc[r * tile + j], kv, rows[r]);
      }
      ahead.step(ahead_lines);
    }
    store_scores16<Group, tile>(sum16(acc), s + t0, tokens - t0);
  }
}

// One pair of tokens of bf16_value_tile: tokens a and b's values of each chunk interleaved
// (vpunpck{l,h}wd: columns 0-3 of each 8 into the low sums, 4-7 into the high ones) against
// each row's weight pair i. Lone: a alone, against zeros (its pair's weight is zero too).
template <int Group, int Chunks, bool Lone>
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void bf16_value_pair(
    const std::uint32_t (*weights)[key_block / 2], int i, const std::byte* a, const std::byte* b,
    __m512* low, __m512* high) {
#pragma GCC unroll 16
  for (int c = 0; c < Chunks; ++c) {
    const __m512i x = _mm512_loadu_si512(a + 64 * c);
    const __m512i y = Lone ? _mm512_setzero_si512() : _mm512_loadu_si512(b + 64 * c);
    const __m512i lo = _mm512_unpacklo_epi16(x, y), hi = _mm512_unpackhi_epi16(x, y);
#pragma GCC unroll 8
    for (int r = 0; r < Group; ++r) {
      const __m512i w = _mm512_set1_epi32(static_cast<int>(weights[r][i]));
      dot_bf16(low[r * Chunks + c], lo, w);
      dot_bf16(high[r * Chunks + c], hi, w);
    }
  }
}

// acc[Group][32 * Chunks] += p[Group][tokens] . V[tokens][32 * Chunks] for one column tile of
// bf16 values, two tokens a step (bf16_value_pair); the sums go back to column order once, at
// the end.
template <int Group, int Chunks>
[[gnu::target(KVC_AVX512_TARGET), gnu::noinline]] void bf16_value_tile(
    const std::uint32_t (*weights)[key_block / 2], const std::byte* values,
    std::size_t token_stride, int dim, int tokens, float* acc, read_ahead& ahead, int ahead_lines) {
  __m512 low[kvc::detail::to_size(Group * Chunks)], high[kvc::detail::to_size(Group * Chunks)];
#pragma GCC unroll 16
  for (int i = 0; i < Group * Chunks; ++i) low[i] = high[i] = _mm512_setzero_ps();
  int i = 0;
  for (; 2 * i + 1 < tokens; ++i) {
    const std::byte* a = values + static_cast<std::size_t>(2 * i) * token_stride;
    ahead.step(ahead_lines);
    bf16_value_pair<Group, Chunks, false>(weights, i, a, a + token_stride, low, high);
  }
  if (2 * i < tokens) {
    ahead.step(ahead_lines);
    bf16_value_pair<Group, Chunks, true>(
        weights, i, values + static_cast<std::size_t>(2 * i) * token_stride, nullptr, low, high);
  }
  // Lane 4m + j of the low sums is column 8m + j, of the high ones 8m + 4 + j.
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) {
      float* out = acc + r * dim + 32 * c;
      const __m512 lo = low[r * Chunks + c], hi = high[r * Chunks + c];
      _mm512_storeu_ps(out,
                       _mm512_add_ps(_mm512_loadu_ps(out), _mm512_permutex2var_ps(lo, first, hi)));
      _mm512_storeu_ps(out + 16, _mm512_add_ps(_mm512_loadu_ps(out + 16),
                                               _mm512_permutex2var_ps(lo, second, hi)));
    }
}

// group_accumulate for bf16 values (dims a multiple of 32): each row's weights of the block
// rounded to bf16 pairs of tokens (weights[r][i] holds tokens 2i and 2i + 1; zeros past
// `tokens`), then column tiles of bf16_value_tile.
template <int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_accumulate_bf16(const float* p, head_vectors values,
                                                              int dim, int tokens, float* acc,
                                                              read_ahead& ahead) {
  // Group x Chunks x 2 sums, Chunks x 2 interleaved pairs, two tokens' loads and a weight
  // pair: at most 27 registers.
  constexpr int chunks = Group <= 2 ? 4 : Group <= 4 ? 2 : 1;
  std::uint32_t weights[kvc::detail::to_size(Group)][kvc::detail::to_size(key_block / 2)];
  const auto present = static_cast<__mmask16>((1u << tokens) - 1u);
#pragma GCC unroll 8
  for (int r = 0; r < Group; ++r)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(weights[r]),
                        round_bf16(_mm512_maskz_loadu_ps(present, p + r * key_block)));
  const int column_tiles = dim / (32 * chunks) + dim % (32 * chunks) / 32;
  const int ahead_lines = ahead.lines_per_step(column_tiles * ((tokens + 1) / 2));
  int d = 0;
  for (; d + 32 * chunks <= dim; d += 32 * chunks)
    bf16_value_tile<Group, chunks>(weights, values.values + 2 * d, values.token_stride, dim, tokens,
                                   acc + d, ahead, ahead_lines);
  for (; d < dim; d += 32)
    bf16_value_tile<Group, 1>(weights, values.values + 2 * d, values.token_stride, dim, tokens,
                              acc + d, ahead, ahead_lines);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace x86
#endif

/// The kernels for one layer and query group; empty (usable() false) where the CPU lacks
/// AVX2 / FMA / F16C, the dims are not multiples of 8, the group is above 8 or V is part of
/// a latent K (MLA reads one latent for many heads: the float-block path suits it).
struct group_kernels {
  static constexpr int max_group = max_kernel_group;
  using scores_fn = void (*)(const float* q, int dim, head_vectors keys, int tokens, float* s,
                             read_ahead& ahead);
  using accumulate_fn = void (*)(const float* p, head_vectors values, int dim, int tokens,
                                 float* acc, read_ahead& ahead);
  /// Puts query rows ([rows][dim], dim floats apart) into the form `scores` reads, in place;
  /// null where the scores take them as they are.
  using prepare_fn = void (*)(float* q, int rows, int dim);
  scores_fn scores = nullptr;
  accumulate_fn accumulate = nullptr;
  prepare_fn prepare_queries = nullptr;

  bool usable() const { return scores != nullptr; }

  /// The kernels `choice` names (choose_kernels) for a layer of geometry `geo` and query
  /// group `group`; empty when it names none.
  static group_kernels of(const kernel_choice& choice, const page_geometry& geo, int group) {
    group_kernels k;
#if defined(KVC_X86_SIMD)
    if (!choice.grouped() || group < 1 || group > max_group) return k;
    with_group(group, [&](auto g) {
      constexpr int group_size = decltype(g)::value;
      switch (choice.scores) {
        case group_path::int8_avx2:
          k.scores = &x86::group_scores_int8_avx2<group_size>;
          k.prepare_queries = &x86::round_query_int16;
          break;
        case group_path::int8_vnni:
          k.scores = &x86::group_scores_int8_vnni<group_size>;
          k.prepare_queries = &x86::round_query_int16;
          break;
        case group_path::int8_avx512:
          k.scores = &x86::group_scores_int8_512<group_size>;
          k.prepare_queries = &x86::round_query_int16;
          break;
        case group_path::int8_query:
          k.scores = &x86::group_scores_int8_query<group_size>;
          k.prepare_queries = &x86::round_query_int8;
          break;
        case group_path::bf16_products:
          k.scores = &x86::group_scores_bf16<group_size>;
          k.prepare_queries = &x86::round_query_bf16;
          break;
        default:
          visit_dtype(geo.k_type, [&](auto type) {
            constexpr dtype_id id = decltype(type)::id;
            k.scores = &x86::group_scores<id, group_size>;
            if constexpr (id != dtype_id::int4)
              if (choice.scores == group_path::float_avx512)
                k.scores = &x86::group_scores_512<id, group_size>;
          });
      }
      switch (choice.values) {
        case group_path::int8_vnni:
          k.accumulate = &x86::group_accumulate_int8_vnni<group_size>;
          break;
        case group_path::int8_avx512:
          k.accumulate = &x86::group_accumulate_int8_512<group_size>;
          break;
        case group_path::bf16_products:
          k.accumulate = &x86::group_accumulate_bf16<group_size>;
          break;
        default:
          visit_dtype(geo.v_type, [&](auto type) {
            constexpr dtype_id id = decltype(type)::id;
            k.accumulate = &x86::group_accumulate<id, group_size>;
            if constexpr (id != dtype_id::int4)
              if (choice.values == group_path::float_avx512)
                k.accumulate = &x86::group_accumulate_512<id, group_size>;
          });
      }
    });
#else
    (void)choice, (void)geo, (void)group;
#endif
    return k;
  }

 private:
  template <class F>
  static void with_group(int group, F&& f) {
    [&]<int... G>(std::integer_sequence<int, G...>) {
      ((group == G + 1 ? f(std::integral_constant<int, G + 1>{}) : void()), ...);
    }
    (std::make_integer_sequence<int, max_group>{});
  }
};

}  // namespace kvc::cpu
