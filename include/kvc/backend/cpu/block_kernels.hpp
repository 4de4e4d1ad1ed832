#pragma once
// The inner loops of CPU attention, on float blocks: a set of query rows against a block of
// at most key_block keys.
//   scores(q, keys)        S[r][t] = q_r . k_t
//   accumulate(p, values)  acc[r] += sum_t P[r][t] v_t
//   exp_block(x)           e^x, element by element
// Each has a portable version and an AVX2 + FMA one (a target attribute; chosen on CPUID),
// used when the dims are multiples of 8; the many-row scores and the values also an AVX-512
// one. The vector versions are in block_kernels_avx2.hpp and block_kernels_avx512.hpp.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/block_kernels_avx2.hpp"
#include "kvc/backend/cpu/block_kernels_avx512.hpp"
#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/backend/cpu/key_block.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/numeric/simd_x86.hpp"

namespace kvc::cpu {

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

/// The inner loops over float blocks, on the instruction set kernel_choice::blocks names.
struct block_kernels {
  bool simd = false;
  /// With simd: the many-row scores and the weighted values (v_dim a multiple of 16) on 16
  /// lanes (AVX-512); false keeps them on AVX2.
  bool wide = false;
  /// How stored keys and values become float blocks (decode.hpp's load_block).
  cpu_isa load_keys = cpu_isa::portable;
  cpu_isa load_values = cpu_isa::portable;

  static block_kernels of(const kernel_choice& choice) {
#if defined(KVC_X86_SIMD)
    return {choice.blocks != cpu_isa::portable, choice.blocks == cpu_isa::avx512, choice.load_keys,
            choice.load_values};
#else
    (void)choice;
    return {};
#endif
  }

  /// Rows past which scores() transposes the keys into its scratch first.
  static constexpr int transposed_rows = 8;

  /// Scores the rows against a block of keys. keys_t: scratch of k_dim * key_block floats, 32-byte
  /// aligned, used when rows > transposed_rows. `ahead`: memory to ask for meanwhile, or null (only
  /// the many-row vector kernels do: their calls are long enough to spread the requests over).
  void scores(const float* q, int rows, int k_dim, const float* keys, int k_stride, int tokens,
              float* s, float* keys_t, read_ahead* ahead = nullptr) const {
#if defined(KVC_X86_SIMD)
    if (simd && wide && rows > transposed_rows)
      return x86::scores_transposed16(q, rows, k_dim, keys, k_stride, tokens, keys_t, s, ahead);
    if (simd && rows > transposed_rows)
      return x86::scores_transposed(q, rows, k_dim, keys, k_stride, tokens, keys_t, s, ahead);
    if (simd) return x86::scores(q, rows, k_dim, keys, k_stride, tokens, s);
#endif
    (void)keys_t, (void)ahead;
    portable::scores(q, rows, k_dim, keys, k_stride, tokens, s);
  }
  void accumulate(const float* p, int rows, const float* values, int v_stride, int v_dim,
                  int tokens, float* acc, read_ahead* ahead = nullptr) const {
#if defined(KVC_X86_SIMD)
    if (simd && wide && v_dim % 16 == 0)
      return x86::accumulate16(p, rows, values, v_stride, v_dim, tokens, acc, ahead);
    if (simd) return x86::accumulate(p, rows, values, v_stride, v_dim, tokens, acc, ahead);
#endif
    (void)ahead;
    portable::accumulate(p, rows, values, v_stride, v_dim, tokens, acc);
  }
  /// Runs the vectorized online softmax of unmasked, uncapped rows; false where not available.
  bool softmax_rows(float* s, int rows, int tokens, float* m, float* l, float* acc,
                    int v_dim) const {
#if defined(KVC_X86_SIMD)
    if (simd) {
      x86::softmax_rows(s, rows, tokens, m, l, acc, v_dim);
      return true;
    }
#endif
    (void)s, (void)rows, (void)tokens, (void)m, (void)l, (void)acc, (void)v_dim;
    return false;
  }
  void exp_block(float* x, int n) const {
#if defined(KVC_X86_SIMD)
    if (simd) return x86::exp_block(x, n);
#endif
    portable::exp_block(x, n);
  }
};

}  // namespace kvc::cpu
