#pragma once
// The inner loops of CPU attention, on float blocks: a set of query rows against a block of
// at most key_block keys.
//   scores(q, keys)        S[r][t] = q_r . k_t
//   accumulate(p, values)  acc[r] += sum_t P[r][t] v_t
//   exp_block(x)           e^x, element by element
// Each has a portable version and an AVX2 + FMA one (a target attribute; chosen on CPUID),
// used when the dims are multiples of 8.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kvc/numeric/simd_x86.hpp"

namespace kvc::cpu {

inline constexpr int key_block = 16;

namespace portable {

inline void scores(const float* q, int rows, int k_dim, const float* keys, int k_stride, int tokens,
                   float* s /* [rows][key_block] */) {
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < tokens; ++t) {
      float dot = 0.0f;
      for (int d = 0; d < k_dim; ++d) dot += q[r * k_dim + d] * keys[t * k_stride + d];
      s[r * key_block + t] = dot;
    }
}

inline void accumulate(const float* p /* [rows][key_block] */, int rows, const float* values,
                       int v_stride, int v_dim, int tokens, float* acc /* [rows][v_dim] */) {
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < tokens; ++t) {
      const float w = p[r * key_block + t];
      if (w == 0.0f) continue;
      for (int d = 0; d < v_dim; ++d) acc[r * v_dim + d] += w * values[t * v_stride + d];
    }
}

inline void exp_block(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

}  // namespace portable

#if defined(KVC_X86_SIMD)
namespace x86 {

inline bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                numeric::x86::cpu_has_avx2_f16c();
  return supported;
}

[[gnu::target("avx2,fma")]] inline float horizontal_sum(__m256 v) {
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  return _mm_cvtss_f32(_mm_add_ss(sum2, _mm_shuffle_ps(sum2, sum2, 1)));
}

// A Rows x Tokens tile of scores: 12 accumulators at most, K read from memory by the FMAs.
template <int Rows, int Tokens>
[[gnu::target("avx2,fma")]] inline void score_tile(const float* q, int k_dim, const float* keys,
                                                   int k_stride, float* s) {
  __m256 acc[Rows][Tokens];
  for (int r = 0; r < Rows; ++r)
    for (int t = 0; t < Tokens; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int d = 0; d < k_dim; d += 8) {
    __m256 qv[Rows];
    for (int r = 0; r < Rows; ++r) qv[r] = _mm256_loadu_ps(q + r * k_dim + d);
    for (int t = 0; t < Tokens; ++t) {
      const __m256 kv = _mm256_loadu_ps(keys + t * k_stride + d);
      for (int r = 0; r < Rows; ++r) acc[r][t] = _mm256_fmadd_ps(qv[r], kv, acc[r][t]);
    }
  }
  for (int r = 0; r < Rows; ++r)
    for (int t = 0; t < Tokens; ++t) s[r * key_block + t] = horizontal_sum(acc[r][t]);
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

[[gnu::target("avx2,fma")]] inline void scores(const float* q, int rows, int k_dim,
                                               const float* keys, int k_stride, int tokens,
                                               float* s) {
  int r = 0;
  for (; r + 3 <= rows; r += 3)
    score_rows<3>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
  if (rows - r == 2) score_rows<2>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
  if (rows - r == 1) score_rows<1>(q + r * k_dim, k_dim, keys, k_stride, tokens, s + r * key_block);
}

// acc[Rows][8 * Chunks] += P[Rows][tokens] . V[tokens][8 * Chunks], for one column chunk.
template <int Rows, int Chunks>
[[gnu::target("avx2,fma")]] inline void accumulate_tile(const float* p, const float* values,
                                                        int v_stride, int v_dim, int tokens,
                                                        float* acc) {
  __m256 sum[Rows][Chunks];
  for (int r = 0; r < Rows; ++r)
    for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm256_loadu_ps(acc + r * v_dim + 8 * c);
  for (int t = 0; t < tokens; ++t) {
    __m256 v[Chunks];
    for (int c = 0; c < Chunks; ++c) v[c] = _mm256_loadu_ps(values + t * v_stride + 8 * c);
    for (int r = 0; r < Rows; ++r) {
      const __m256 w = _mm256_broadcast_ss(p + r * key_block + t);
      for (int c = 0; c < Chunks; ++c) sum[r][c] = _mm256_fmadd_ps(w, v[c], sum[r][c]);
    }
  }
  for (int r = 0; r < Rows; ++r)
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
                                                   int v_stride, int v_dim, int tokens,
                                                   float* acc) {
  int r = 0;
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

[[gnu::target("avx2,fma")]] inline void exp_block(float* x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = std::exp(x[i]);
}

}  // namespace x86
#endif

/// Which inner loops to use for given dims: vectorized when the CPU and the dims allow.
struct block_kernels {
  bool simd = false;

  static block_kernels for_dims(int k_dim, int v_dim) {
    block_kernels k;
#if defined(KVC_X86_SIMD)
    k.simd = k_dim % 8 == 0 && v_dim % 8 == 0 && x86::cpu_has_avx2_fma();
#else
    (void)k_dim;
    (void)v_dim;
#endif
    return k;
  }

  void scores(const float* q, int rows, int k_dim, const float* keys, int k_stride, int tokens,
              float* s) const {
#if defined(KVC_X86_SIMD)
    if (simd) return x86::scores(q, rows, k_dim, keys, k_stride, tokens, s);
#endif
    portable::scores(q, rows, k_dim, keys, k_stride, tokens, s);
  }
  void accumulate(const float* p, int rows, const float* values, int v_stride, int v_dim,
                  int tokens, float* acc) const {
#if defined(KVC_X86_SIMD)
    if (simd) return x86::accumulate(p, rows, values, v_stride, v_dim, tokens, acc);
#endif
    portable::accumulate(p, rows, values, v_stride, v_dim, tokens, acc);
  }
  void exp_block(float* x, int n) const {
#if defined(KVC_X86_SIMD)
    if (simd) return x86::exp_block(x, n);
#endif
    portable::exp_block(x, n);
  }
};

}  // namespace kvc::cpu
