#pragma once
// The group kernels on 16 lanes (AVX-512 F/BW/VL/DQ): group_scores and group_accumulate for
// every storage dtype but int4, the int8 kernels with VNNI on zmm registers, the 8-bit query
// option and the bf16 products option (AVX-512 BF16). group_kernels.hpp chooses among them.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kvc/backend/cpu/block_kernels_avx2.hpp"
#include "kvc/backend/cpu/group_kernels_avx2.hpp"
#include "kvc/backend/cpu/head_vectors.hpp"
#include "kvc/backend/cpu/key_block.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/backend/cpu/x86_instructions.hpp"
#include "kvc/numeric/simd_x86.hpp"
#include "kvc/policy/storage.hpp"

#if defined(KVC_X86_SIMD)
namespace kvc::cpu::x86 {

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

// sum16 of 16 vectors of int32 sums, each made a float first.
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline __m512 sum16(const __m512i* a) {
  __m512 floats[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) floats[i] = _mm512_cvtepi32_ps(a[i]);
  return sum16(floats);
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

// The tile loop that every 16-lane scores kernel runs: for each tile of keys_per_tile16<Group>
// keys from t0 (the last key repeated past `tokens`), 16 accumulators from zero,
// steps.step<Tile, false> for each whole Steps::dims dims and, where Steps::tail, one
// steps.step<Tile, true> for the rest; then the tile's scores, steps.finish(acc), stored.
// Steps is the kernel's lanes type (float, int8, the 8-bit query, bf16): what it keeps in
// the accumulators, how many dims a step takes and how the sums become scores.
template <int Group, class Steps>
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void tiled_scores16(
    const Steps& steps, int dim, head_vectors keys, int tokens, float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>, width = Steps::dims;
  const int ahead_lines =
      ahead.lines_per_step((tokens + tile - 1) / tile * ((dim + width - 1) / width));
  for (int t0 = 0; t0 < tokens; t0 += tile) {
    const std::byte* k[kvc::detail::to_size(tile)];
    tile_keys<tile>(keys, t0, tokens, k);
    typename Steps::sums acc[16];
#pragma GCC unroll 16
    for (auto& a : acc) a = typename Steps::sums{};  // zeros
    int d = 0;
    for (; d + width <= dim; d += width) {
      steps.template step<tile, false>(d, k, acc);
      ahead.step(ahead_lines);
    }
    if constexpr (Steps::tail) {
      if (d < dim) {
        steps.template step<tile, true>(d, k, acc);
        ahead.step(ahead_lines);
      }
    }
    store_scores16<Group, tile>(steps.finish(acc), s + t0, tokens - t0);
  }
}

// group_scores on 16 lanes: the rows' 16 dims in registers for the tile's keys (a masked
// half step for a dim that is a multiple of 8 but not of 16).
template <dtype_id Type, int Group>
struct float_steps16 {
  using sums = __m512;
  static constexpr int dims = 16;
  static constexpr bool tail = true;
  const float* q;
  int dim;
  template <int Tile, bool Masked>
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] void step(int d, const std::byte* const* k,
                                                                   sums* acc) const {
    score_step16<Type, Group, Tile, Masked>(q, dim, d, k, acc);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static __m512 finish(const sums* acc) {
    return sum16(acc);
  }
};
template <dtype_id Type, int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_scores_512(const float* q, int dim, head_vectors keys,
                                                         int tokens, float* s, read_ahead& ahead) {
  tiled_scores16<Group>(float_steps16<Type, Group>{q, dim}, dim, keys, tokens, s, ahead);
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
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void int8_score_step(
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

// int8_scores on 16 lanes, 32 dims a step (the last 16 dims of a row masked).
template <int Group>
struct int8_steps16 {
  using sums = __m512i;
  static constexpr int dims = 32;
  static constexpr bool tail = true;
  const std::int16_t* q16;
  std::ptrdiff_t row_int16;
  __m512 row_steps;
  template <int Tile, bool Masked>
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] void step(int d, const std::byte* const* k,
                                                                   sums* acc) const {
    int8_score_step<Group, Tile, Masked>(q16, row_int16, d, k, acc);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] __m512 finish(const sums* acc) const {
    return _mm512_mul_ps(sum16(acc), row_steps);
  }
};
template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_scores_int8_512(const float* q, int dim,
                                                                   head_vectors keys, int tokens,
                                                                   float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  alignas(64) float step[16] = {};
  for (int lane = 0; lane < Group * tile; ++lane)
    step[lane] = q[std::ptrdiff_t{lane / tile} * dim + dim / 2];
  const int8_steps16<Group> steps{reinterpret_cast<const std::int16_t*>(q),
                                  2 * std::ptrdiff_t{dim},  // a row is dim floats
                                  _mm512_load_ps(step)};
  tiled_scores16<Group>(steps, dim, keys, tokens, s, ahead);
}

// The 8-bit query option (cpu_options::int8_query): int8 keys against rows from
// round_query_int8, 64 dims a step with vpdpbusd, four products a lane. Its first operand is
// unsigned, so the keys go in flipped to k + 128 (an XOR of the sign bit) and each row's
// sum loses 128 sum(q) after. The keys' tail past a multiple of 64 dims is loaded with a
// mask; its zeros flip to 128, which meets the row's masked zeros.
template <int Group, int Tile, bool Masked>
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void int8_query_step(
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
      dpbusd(acc[r * Tile + j], kv, rows[r]);
  }
}

template <int Group>
struct int8_query_steps16 {
  using sums = __m512i;
  static constexpr int dims = 64;
  static constexpr bool tail = true;
  const std::int8_t* q8;
  std::ptrdiff_t row_bytes;
  __mmask64 tail_mask;
  __m512 row_steps, row_offsets;
  template <int Tile, bool Masked>
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] void step(int d, const std::byte* const* k,
                                                                   sums* acc) const {
    int8_query_step<Group, Tile, Masked>(q8, row_bytes, d, tail_mask, k, acc);
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] __m512 finish(const sums* acc) const {
    return _mm512_mul_ps(_mm512_sub_ps(sum16(acc), row_offsets), row_steps);
  }
};
template <int Group>
[[gnu::target(KVC_AVX512_VNNI_TARGET)]] void group_scores_int8_query(const float* q, int dim,
                                                                     head_vectors keys, int tokens,
                                                                     float* s, read_ahead& ahead) {
  constexpr int tile = keys_per_tile16<Group>;
  alignas(64) float step[16] = {}, offset[16] = {};
  for (int lane = 0; lane < Group * tile; ++lane) {
    const float* row = q + std::ptrdiff_t{lane / tile} * dim;
    std::int32_t row_offset = 0;
    std::memcpy(&row_offset, row + dim / 2 + 1, sizeof row_offset);
    step[lane] = row[dim / 2];
    offset[lane] = static_cast<float>(row_offset);
  }
  const int8_query_steps16<Group> steps{
      reinterpret_cast<const std::int8_t*>(q), 4 * std::ptrdiff_t{dim},  // a row is dim floats
      static_cast<__mmask64>(dim % 64 == 0 ? 0 : (1ull << (dim % 64)) - 1), _mm512_load_ps(step),
      _mm512_load_ps(offset)};
  tiled_scores16<Group>(steps, dim, keys, tokens, s, ahead);
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

// The bf16 products option (cpu_options::bf16_products), where the CPU has AVX-512 BF16:
// bf16 keys and values go into vdpbf16ps as they are stored, two products a lane, against
// the query and the softmax weights rounded to bf16 (to nearest even), with fp32 sums, as a
// tensor core's attention takes them. vdpbf16ps adds its two exact products in turn, each
// addition rounded as an FMA's, but reads a denormal bf16 as zero and flushes a denormal sum
// (below 2^-126: nothing a score or an output would show). Rounding the query moves a score
// by at most 2^-8 x sum|q k|, the weights an output by 2^-8 max|v| (docs/attention.md). The
// instructions are written as asm, which the assembler takes without an AVX-512 BF16 target.

// 16 floats rounded to bf16, to nearest even (NaN stays NaN).
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline __m256i round_bf16(__m512 x) {
  return cvtneps2bf16(x);
}

// acc += a.bf16[2i] b.bf16[2i] + a.bf16[2i + 1] b.bf16[2i + 1] in each lane i, in place (as
// int8_zmm::dot).
[[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] inline void dot_bf16(__m512& acc, __m512i a,
                                                                            __m512i b) {
  dpbf16ps(acc, a, b);
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
// keys as group_scores_512 (dims a multiple of 32: no tail).
template <int Group>
struct bf16_steps16 {
  using sums = __m512;
  static constexpr int dims = 32;
  static constexpr bool tail = false;
  const std::uint16_t* q16;
  std::ptrdiff_t row_values;
  template <int Tile, bool>
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] void step(int d, const std::byte* const* k,
                                                                   sums* acc) const {
    __m512i rows[kvc::detail::to_size(Group)];
#pragma GCC unroll 8
    for (int r = 0; r < Group; ++r) rows[r] = _mm512_loadu_si512(q16 + r * row_values + d);
#pragma GCC unroll 16
    for (int j = 0; j < Tile; ++j) {
      const __m512i kv = _mm512_loadu_si512(k[j] + 2 * d);
#pragma GCC unroll 8
      for (int r = 0; r < Group; ++r) dot_bf16(acc[r * Tile + j], kv, rows[r]);
    }
  }
  [[gnu::target(KVC_AVX512_TARGET), gnu::always_inline]] static __m512 finish(const sums* acc) {
    return sum16(acc);
  }
};
template <int Group>
[[gnu::target(KVC_AVX512_TARGET)]] void group_scores_bf16(const float* q, int dim,
                                                          head_vectors keys, int tokens, float* s,
                                                          read_ahead& ahead) {
  const bf16_steps16<Group> steps{reinterpret_cast<const std::uint16_t*>(q),
                                  2 * std::ptrdiff_t{dim}};  // a row is dim floats
  tiled_scores16<Group>(steps, dim, keys, tokens, s, ahead);
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

}  // namespace kvc::cpu::x86
#endif
