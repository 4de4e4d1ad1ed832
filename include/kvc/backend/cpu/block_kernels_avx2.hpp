#pragma once
// The float-block kernels on 8 lanes (AVX2 and FMA): scores (a few rows against a block's
// keys, and many rows against the keys transposed once), the weighted values, the online
// softmax of eight rows at a time and e^x. block_kernels.hpp says what they compute and
// chooses them.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/key_block.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/numeric/simd_x86.hpp"

#if defined(KVC_X86_SIMD)
namespace kvc::cpu::x86 {

[[gnu::target("avx2,fma")]] inline float horizontal_max(__m256 v) {
  v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
  return _mm256_cvtss_f32(_mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0xB1)));
}

[[gnu::target("avx2,fma")]] inline float horizontal_sum(__m256 v) {
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  return _mm_cvtss_f32(_mm_add_ss(sum2, _mm_shuffle_ps(sum2, sum2, 1)));
}

// The sums of 4 vectors, one per lane: three horizontal adds and one add, where four
// separate horizontal sums take five operations each.
[[gnu::target("avx2,fma")]] inline __m128 sum4(const __m256* a) {
  const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  return _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
}

// A Rows x Tokens tile of scores: 12 accumulators at most, K read from memory by the FMAs.
template <int Rows, int Tokens>
[[gnu::target("avx2,fma")]] inline void score_tile(const float* q, int k_dim, const float* keys,
                                                   int k_stride, float* s) {
  __m256 acc[kvc::detail::to_size(Rows)][kvc::detail::to_size(Tokens)];
  for (int r = 0; r < Rows; ++r)
    for (int t = 0; t < Tokens; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int d = 0; d < k_dim; d += 8) {
    __m256 qv[kvc::detail::to_size(Rows)];
    for (int r = 0; r < Rows; ++r) qv[r] = _mm256_loadu_ps(q + r * k_dim + d);
    for (int t = 0; t < Tokens; ++t) {
      const __m256 kv = _mm256_loadu_ps(keys + t * k_stride + d);
      for (int r = 0; r < Rows; ++r) acc[r][t] = _mm256_fmadd_ps(qv[r], kv, acc[r][t]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    if constexpr (Tokens == 4) {
      _mm_storeu_ps(s + r * key_block, sum4(acc[r]));
    } else {
      for (int t = 0; t < Tokens; ++t) s[r * key_block + t] = horizontal_sum(acc[r][t]);
    }
  }
}

template <int Rows>
[[gnu::target("avx2,fma")]] inline void score_rows(const float* q, int k_dim, const float* keys,
                                                   int k_stride, int tokens, float* s) {
  int t = 0;
  for (; t + 4 <= tokens; t += 4)
    score_tile<Rows, 4>(q, k_dim, keys + t * k_stride, k_stride, s + t);
  switch (tokens - t) {
    case 3:
      score_tile<Rows, 3>(q, k_dim, keys + t * k_stride, k_stride, s + t);
      break;
    case 2:
      score_tile<Rows, 2>(q, k_dim, keys + t * k_stride, k_stride, s + t);
      break;
    case 1:
      score_tile<Rows, 1>(q, k_dim, keys + t * k_stride, k_stride, s + t);
      break;
    default:
      break;
  }
}

// The sums of 8 vectors, one per lane: [sum a0, sum a1, ..., sum a7].
[[gnu::target("avx2,fma")]] inline __m256 sum8(const __m256* a) {
  const __m256 c0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 c1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
}

// One row against 8 keys (rows past `tokens` of the key buffer are read but never used):
// eight independent dot products, summed across lanes together at the end.
[[gnu::target("avx2,fma")]] inline __m256 score_row8(const float* q, int k_dim, const float* keys,
                                                     int k_stride) {
  __m256 acc[8];
  for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
  for (int d = 0; d < k_dim; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    for (int t = 0; t < 8; ++t)
      acc[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(keys + t * k_stride + d), acc[t]);
  }
  return sum8(acc);
}

// Eight vectors become their transpose: r[i] lane j <- r[j] lane i.
[[gnu::target("avx2,fma")]] inline void transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// keys [tokens][k_stride] -> kt [k_dim][key_block], in 8 x 8 squares; columns past `tokens`
// are 0. kt is 32-byte aligned.
[[gnu::target("avx2,fma")]] inline void transpose_keys(const float* keys, int k_stride, int tokens,
                                                       int k_dim, float* kt) {
  for (int t0 = 0; t0 < key_block; t0 += 8)
    for (int d0 = 0; d0 < k_dim; d0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        r[i] = t0 + i < tokens ? _mm256_loadu_ps(keys + (t0 + i) * k_stride + d0)
                               : _mm256_setzero_ps();
      transpose8(r);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) _mm256_store_ps(kt + (d0 + i) * key_block + t0, r[i]);
    }
}

// Rows x 16 scores from transposed keys: per dim, each row's q broadcast against the 16 keys'
// values of that dim. No sums across lanes, and the loop runs the whole k_dim.
template <int Rows>
[[gnu::target("avx2,fma")]] inline void score_rows_transposed(const float* q, int k_dim,
                                                              const float* kt, float* s) {
  __m256 acc[kvc::detail::to_size(Rows)][2];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int d = 0; d < k_dim; ++d) {
    const __m256 k0 = _mm256_load_ps(kt + d * key_block),
                 k1 = _mm256_load_ps(kt + d * key_block + 8);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m256 w = _mm256_broadcast_ss(q + r * k_dim + d);
      acc[r][0] = _mm256_fmadd_ps(w, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(w, k1, acc[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    _mm256_storeu_ps(s + r * key_block, acc[r][0]);
    _mm256_storeu_ps(s + r * key_block + 8, acc[r][1]);
  }
}

// Many rows (prefill, MLA): keys transposed once into kt (scratch of k_dim * key_block floats,
// 32-byte aligned), then 6 x 16 tiles.
[[gnu::target("avx2,fma")]] inline void scores_transposed(const float* q, int rows, int k_dim,
                                                          const float* keys, int k_stride,
                                                          int tokens, float* kt, float* s,
                                                          read_ahead* ahead) {
  transpose_keys(keys, k_stride, tokens, k_dim, kt);
  const int ahead_lines = ahead != nullptr ? ahead->lines_per_step(rows / 6 + 1) : 0;
  int r = 0;
  for (; r + 6 <= rows; r += 6) {
    if (ahead != nullptr) ahead->step(ahead_lines);
    score_rows_transposed<6>(q + r * k_dim, k_dim, kt, s + r * key_block);
  }
  const float* rest_q = q + r * k_dim;
  float* rest_s = s + r * key_block;
  switch (rows - r) {
    case 5:
      return score_rows_transposed<5>(rest_q, k_dim, kt, rest_s);
    case 4:
      return score_rows_transposed<4>(rest_q, k_dim, kt, rest_s);
    case 3:
      return score_rows_transposed<3>(rest_q, k_dim, kt, rest_s);
    case 2:
      return score_rows_transposed<2>(rest_q, k_dim, kt, rest_s);
    case 1:
      return score_rows_transposed<1>(rest_q, k_dim, kt, rest_s);
    default:
      return;
  }
}

[[gnu::target("avx2,fma")]] inline void scores(const float* q, int rows, int k_dim,
                                               const float* keys, int k_stride, int tokens,
                                               float* s) {
  // At most 8 rows here (more go to scores_transposed). Short blocks: 3 x 4 tiles (K is
  // reused from registers across 3 rows). Otherwise (GQA decode): eight keys per row at once.
  if (tokens <= 8 || k_dim % 8 != 0) {
    int r = 0;
    for (; r + 3 <= rows; r += 3)
      score_rows<3>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
    if (rows - r == 2)
      score_rows<2>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
    if (rows - r == 1)
      score_rows<1>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
    return;
  }
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < key_block; t += 8)
      _mm256_storeu_ps(s + r * key_block + t,
                       score_row8(q + r * k_dim, k_dim, keys + t * k_stride, k_stride));
}

// acc[Rows][8 * Chunks] += P[Rows][tokens] . V[tokens][8 * Chunks], for one column chunk.
template <int Rows, int Chunks>
[[gnu::target("avx2,fma")]] inline void accumulate_tile(const float* p, const float* values,
                                                        int v_stride, int v_dim, int tokens,
                                                        float* acc) {
  __m256 sum[kvc::detail::to_size(Rows)][kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm256_loadu_ps(acc + r * v_dim + 8 * c);
  for (int t = 0; t < tokens; ++t) {
    __m256 v[kvc::detail::to_size(Chunks)];
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) v[c] = _mm256_loadu_ps(values + t * v_stride + 8 * c);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const __m256 w = _mm256_broadcast_ss(p + r * key_block + t);
#pragma GCC unroll 16
      for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm256_fmadd_ps(w, v[c], sum[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < Chunks; ++c) _mm256_storeu_ps(acc + r * v_dim + 8 * c, sum[r][c]);
}

template <int Rows>
[[gnu::target("avx2,fma")]] inline void accumulate_rows(const float* p, const float* values,
                                                        int v_stride, int v_dim, int tokens,
                                                        float* acc) {
  int d = 0;
  for (; d + 24 <= v_dim; d += 24)
    accumulate_tile<Rows, 3>(p, values + d, v_stride, v_dim, tokens, acc + d);
  for (; d < v_dim; d += 8)
    accumulate_tile<Rows, 1>(p, values + d, v_stride, v_dim, tokens, acc + d);
}

[[gnu::target("avx2,fma")]] inline void accumulate(const float* p, int rows, const float* values,
                                                   int v_stride, int v_dim, int tokens, float* acc,
                                                   read_ahead* ahead) {
  int r = 0;
  const int ahead_lines = ahead != nullptr ? ahead->lines_per_step(rows / 6 + 1) : 0;
  // 6 rows x 16 dims where the dims allow: no narrow tile at the end of a row (128 = 5 x 24 +
  // 8 leaves one), which measured 0.68-0.80 of the FMA peak in isolation against 0.58-0.68.
  if (v_dim % 16 == 0)
    for (; r + 6 <= rows; r += 6) {
      if (ahead != nullptr) ahead->step(ahead_lines);
      for (int d = 0; d < v_dim; d += 16)
        accumulate_tile<6, 2>(p + r * key_block, values + d, v_stride, v_dim, tokens,
                              acc + r * v_dim + d);
    }
  for (; r + 4 <= rows; r += 4)
    accumulate_rows<4>(p + r * key_block, values, v_stride, v_dim, tokens, acc + r * v_dim);
  for (; r < rows; ++r)
    accumulate_rows<1>(p + r * key_block, values, v_stride, v_dim, tokens, acc + r * v_dim);
}

// e^x for 8 lanes: x = n ln2 + r, |r| <= ln2 / 2, e^r by a degree-6 polynomial (relative
// error below 2e-7); below -87.3 the result is 0, NaN stays NaN.
[[gnu::target("avx2,fma")]] inline __m256 exp8(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  const __m256 clamped =
      _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), clamped);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 poly = _mm256_set1_ps(1.9875691500e-4f);
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.3981999507e-3f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(8.3334519073e-3f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(4.1665795894e-2f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.6666665459e-1f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(5.0000001201e-1f));
  poly = _mm256_fmadd_ps(poly, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 result = _mm256_mul_ps(poly, _mm256_castsi256_ps(exponent));
  result = _mm256_andnot_ps(underflow, result);
  return _mm256_blendv_ps(result, x, nan);
}

// The largest lane of each of 8 vectors, in one vector: [max a0, max a1, ..., max a7]. The
// maxima of pairs, then fours, then eights of lanes, as sum8 does with sums.
[[gnu::target("avx2,fma")]] inline __m256 max8(const __m256* a) {
  __m256 pairs[4];
  for (int i = 0; i < 4; ++i)
    pairs[i] = _mm256_max_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  const __m256 low = _mm256_max_ps(_mm256_shuffle_ps(pairs[0], pairs[1], 0x44),
                                   _mm256_shuffle_ps(pairs[0], pairs[1], 0xEE));
  const __m256 high = _mm256_max_ps(_mm256_shuffle_ps(pairs[2], pairs[3], 0x44),
                                    _mm256_shuffle_ps(pairs[2], pairs[3], 0xEE));
  return _mm256_max_ps(_mm256_permute2f128_ps(low, high, 0x20),
                       _mm256_permute2f128_ps(low, high, 0x31));
}

// Eight scores, -inf where `valid` is not set.
[[gnu::target("avx2,fma")]] inline __m256 masked_scores(const float* scores, __m256 valid) {
  return _mm256_blendv_ps(_mm256_set1_ps(-__builtin_huge_valf()), _mm256_loadu_ps(scores), valid);
}

// The online softmax of unmasked, uncapped rows on a full-width score block: for each row,
// rescale its state by the block's largest score, turn scores into e^{s - m}, add them to l.
// Entries past `tokens` become 0. Eight rows at a time: their maxima and sums are reduced
// across lanes together, and m and l are updated as vectors.
[[gnu::target("avx2,fma")]] inline void softmax_rows(float* s, int rows, int tokens, float* m,
                                                     float* l, float* acc, int v_dim) {
  const __m256 lanes = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 valid0 =
      _mm256_cmp_ps(lanes, _mm256_set1_ps(static_cast<float>(tokens)), _CMP_LT_OQ);
  const __m256 valid1 = _mm256_cmp_ps(_mm256_add_ps(lanes, _mm256_set1_ps(8.0f)),
                                      _mm256_set1_ps(static_cast<float>(tokens)), _CMP_LT_OQ);
  const __m256 minus_infinity = _mm256_set1_ps(-__builtin_huge_valf());
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int r0 = 0; r0 < rows; r0 += 8) {
    const int n = rows - r0 < 8 ? rows - r0 : 8;
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    // Each row's largest score; rows past `rows` see -inf.
    __m256 largest[8];
    for (int i = 0; i < 8; ++i) {
      const float* row = s + (r0 + i) * key_block;
      largest[i] = i < n ? _mm256_max_ps(masked_scores(row, valid0), masked_scores(row + 8, valid1))
                         : minus_infinity;
    }
    const __m256 block_max = max8(largest);
    const __m256 old_m = _mm256_maskload_ps(m + r0, live);
    // A row's m moves only to a larger score (NaN compares false and leaves it).
    const __m256 grows = _mm256_cmp_ps(block_max, old_m, _CMP_GT_OQ);
    const __m256 new_m = _mm256_blendv_ps(old_m, block_max, grows);
    // Where m grows, l and acc scale by e^{old m - new m}, or by 0 before any key.
    const __m256 factor =
        _mm256_blendv_ps(_mm256_set1_ps(1.0f),
                         _mm256_blendv_ps(exp8(_mm256_sub_ps(old_m, new_m)), zero,
                                          _mm256_cmp_ps(old_m, minus_infinity, _CMP_EQ_OQ)),
                         grows);
    __m256 new_l = _mm256_mul_ps(_mm256_maskload_ps(l + r0, live), factor);
    alignas(32) float factors[8], shifts[8];
    _mm256_store_ps(factors, factor);
    const int rescaled = _mm256_movemask_ps(
        _mm256_and_ps(grows, _mm256_cmp_ps(factor, _mm256_set1_ps(1.0f), _CMP_NEQ_UQ)));
    for (int i = 0; i < n; ++i) {
      if ((rescaled >> i & 1) == 0) continue;
      const __m256 f = _mm256_set1_ps(factors[i]);
      float* row = acc + (r0 + i) * v_dim;
      for (int d = 0; d < v_dim; d += 8)
        _mm256_storeu_ps(row + d, _mm256_mul_ps(f, _mm256_loadu_ps(row + d)));
    }
    // Shift by 0 while m is -inf (no key yet), so that e^-inf = 0.
    _mm256_store_ps(
        shifts, _mm256_blendv_ps(new_m, zero, _mm256_cmp_ps(new_m, minus_infinity, _CMP_EQ_OQ)));
    __m256 sums[8];
    for (int i = 0; i < 8; ++i) {
      if (i >= n) {
        sums[i] = zero;
        continue;
      }
      float* row = s + (r0 + i) * key_block;
      const __m256 shift = _mm256_broadcast_ss(shifts + i);
      const __m256 p0 = exp8(_mm256_sub_ps(masked_scores(row, valid0), shift));
      const __m256 p1 = exp8(_mm256_sub_ps(masked_scores(row + 8, valid1), shift));
      _mm256_storeu_ps(row, p0);
      _mm256_storeu_ps(row + 8, p1);
      sums[i] = _mm256_add_ps(p0, p1);
    }
    new_l = _mm256_add_ps(new_l, sum8(sums));
    _mm256_maskstore_ps(m + r0, live, new_m);
    _mm256_maskstore_ps(l + r0, live, new_l);
  }
}

[[gnu::target("avx2,fma")]] inline void exp_block(float* x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = std::exp(x[i]);
}

}  // namespace kvc::cpu::x86
#endif
