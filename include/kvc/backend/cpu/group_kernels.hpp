#pragma once
// Decode kernels for a small query group (up to 8 query heads per KV head, as GQA, MHA and
// most MQA layers have): the scores and the weighted sum of values are computed straight from
// the stored dtype of one KV head's vectors, 8 values converted in a register at a time.
// Nothing is dequantized into memory first: at a few query rows per key, a float copy of the
// block costs as much as the arithmetic itself.
//
//   group_kernels k = group_kernels::for_layer(geometry, group);   // empty when not usable
//   k.scores(q, k_dim, keys, tokens, s, ahead);        s[r][t] = q_r . raw(k_t) * scale_t
//   k.accumulate(p, values, v_dim, tokens, acc, ahead)  acc[r] += sum_t p[r][t] raw(v_t)
//
// raw() is the stored value before its scale (numeric::x86::decode8_raw): a per-layer scale
// and the raw unit go into q (keys) or the weights (values); per-vector scales are applied per
// token here (keys) or by the caller (values).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/block_kernels.hpp"
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
    const std::size_t vectors_per_token = geo.layout == page_layout::nhd ? geo.kv_heads : 1;
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
  float scale(int token) const { return scales == nullptr ? 1.0f : scales[token * scale_stride]; }

  /// Asks for the vectors (not the scales) of `tokens` tokens to be brought into cache.
  void prefetch(int tokens) const {
    for (int t = 0; t < tokens; ++t)
      for (std::uint32_t b = 0; b < vector_bytes; b += 64)
        __builtin_prefetch(values + static_cast<std::size_t>(t) * token_stride + b);
  }
};

/// Memory to bring into cache while a block is computed: each kernel call touches
/// lines_per_call lines of it, a few at each step (a tile of keys, a token of a column tile
/// of values), so that the requests stay spread out; a burst of them stalls the core, and the
/// hardware prefetchers do not follow the heads of a page read one after another. The lines
/// go to L2 (prefetcht1): a page is larger than L1, and is read a page of work later.
struct read_ahead {
  const std::byte* next = nullptr;
  const std::byte* end = nullptr;
  int lines_per_call = 0;

  /// Lines per step for a call of `steps` steps.
  int lines_per_step(int steps) const { return (lines_per_call + steps - 1) / steps; }
  void step(int lines) {
    for (int i = 0; i < lines && next < end; ++i, next += 64) __builtin_prefetch(next, 0, 2);
  }
};

#if defined(KVC_X86_SIMD)
namespace x86 {

// Scores of Group rows against `tokens` keys, Tile keys at a time (Group x Tile <= 8
// accumulators, summed across lanes together). Keys past `tokens` repeat the last one.
template <dtype_id Type, int Group>
[[gnu::target("avx2,fma,f16c")]] void group_scores(const float* q, int dim, head_vectors keys,
                                                   int tokens, float* s, read_ahead& ahead) {
  constexpr int tile = Group >= 5 ? 1 : 8 / Group;
  constexpr int bits = dtype_bits(Type);
  const int ahead_lines = ahead.lines_per_step((tokens + tile - 1) / tile);
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[tile];
    for (int j = 0; j < tile; ++j)
      k[j] =
          keys.values + static_cast<std::size_t>(std::min(t0 + j, tokens - 1)) * keys.token_stride;
    __m256 acc[8];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (int d = 0; d < dim; d += 8) {
      for (int j = 0; j < tile; ++j) {
        const __m256 kv = numeric::x86::decode8_raw(Type, k[j] + d * bits / 8);
        for (int r = 0; r < Group; ++r)
          acc[r * tile + j] =
              _mm256_fmadd_ps(_mm256_loadu_ps(q + r * dim + d), kv, acc[r * tile + j]);
      }
    }
    ahead.step(ahead_lines);
    // Lane r * tile + j holds row r's score of key t0 + j; each row's `tile` scores are
    // contiguous in s. Entries past `tokens` (a repeated key) are written but never used.
    __m256 sums = sum8(acc);
    if (keys.scales != nullptr) {
      alignas(32) float scale[8];
      for (int lane = 0; lane < 8; ++lane) scale[lane] = keys.scale(t0 + lane % tile);
      sums = _mm256_mul_ps(sums, _mm256_load_ps(scale));
    }
    float* row = s + t0;
    if constexpr (tile == 8) {
      _mm256_storeu_ps(row, sums);
    } else if constexpr (tile == 4) {
      _mm_storeu_ps(row, _mm256_castps256_ps128(sums));
      _mm_storeu_ps(row + key_block, _mm256_extractf128_ps(sums, 1));
    } else if constexpr (tile == 2) {
      const __m128 low = _mm256_castps256_ps128(sums), high = _mm256_extractf128_ps(sums, 1);
      _mm_storel_pi(reinterpret_cast<__m64*>(row), low);
      _mm_storeh_pi(reinterpret_cast<__m64*>(row + key_block), low);
      _mm_storel_pi(reinterpret_cast<__m64*>(row + 2 * key_block), high);
      if constexpr (Group == 4) _mm_storeh_pi(reinterpret_cast<__m64*>(row + 3 * key_block), high);
    } else {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, sums);
      for (int r = 0; r < Group; ++r)
        for (int j = 0; j < tile; ++j) row[r * key_block + j] = lanes[r * tile + j];
    }
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
  __m256 sum[Group * Chunks];
#pragma GCC unroll 16
  for (int r = 0; r < Group; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) sum[r * Chunks + c] = _mm256_loadu_ps(acc + r * dim + 8 * c);
  for (int t = 0; t < tokens; ++t) {
    const std::byte* v = values + static_cast<std::size_t>(t) * token_stride;
    ahead.step(ahead_lines);
    __m256 x[Chunks];
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

}  // namespace x86
#endif

/// The kernels for one layer and query group; empty (usable() false) where the CPU lacks
/// AVX2 / FMA / F16C, the dims are not multiples of 8, the group is above 8 or V is part of
/// a latent K (MLA reads one latent for many heads: the float-block path suits it).
struct group_kernels {
  static constexpr int max_group = 8;
  using scores_fn = void (*)(const float* q, int dim, head_vectors keys, int tokens, float* s,
                             read_ahead& ahead);
  using accumulate_fn = void (*)(const float* p, head_vectors values, int dim, int tokens,
                                 float* acc, read_ahead& ahead);
  scores_fn scores = nullptr;
  accumulate_fn accumulate = nullptr;

  bool usable() const { return scores != nullptr; }

  static group_kernels for_layer(const page_geometry& geo, int group) {
    group_kernels k;
#if defined(KVC_X86_SIMD)
    if (geo.latent || group < 1 || group > max_group || geo.k_dim % 8 != 0 || geo.v_dim % 8 != 0 ||
        !x86::cpu_has_avx2_fma())
      return k;
    with_group(group, [&](auto g) {
      visit_dtype(geo.k_type, [&](auto type) {
        k.scores = &x86::group_scores<decltype(type)::id, decltype(g)::value>;
      });
      visit_dtype(geo.v_type, [&](auto type) {
        k.accumulate = &x86::group_accumulate<decltype(type)::id, decltype(g)::value>;
      });
    });
#else
    (void)geo, (void)group;
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
