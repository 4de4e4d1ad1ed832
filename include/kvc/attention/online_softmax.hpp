#pragma once
// The online softmax, written once for every backend.
//
// Attention over a set of keys is out = sum_k softmax(s)_k v_k and lse = log sum_k e^{s_k}.
// A partial result over part of the keys is kept as (m, l, acc): the largest score seen,
// sum e^{s - m}, and sum e^{s - m} v. Adding keys or merging two partial results rescales
// by e^{m_old - m_new}. A partial result with no key has m = -inf, l = 0.
//
// merge_results() is the public form: two results (out, lse) over disjoint sets of keys
// give the result over their union, as split-K and prefix/suffix attention need.

#include <cmath>

#include "kvc/config.hpp"

namespace kvc::attention {

inline constexpr float negative_infinity = -__builtin_huge_valf();

struct softmax_state {
  float m = negative_infinity;  ///< largest score so far
  float l = 0.0f;               ///< sum of e^{score - m}

  /// Takes in a block whose largest score is block_max; returns the factor by which the
  /// accumulated values (and l) must be multiplied: e^{m_old - m_new}.
  KVC_HOST_DEVICE float rescale_for(float block_max) {
    if (!(block_max > m)) return 1.0f;  // also when block_max is -inf or NaN
    const float factor = m == negative_infinity ? 0.0f : expf(m - block_max);
    m = block_max;
    l *= factor;
    return factor;
  }

  /// Returns the log-sum-exp of the scores taken in (-inf for none).
  KVC_HOST_DEVICE float lse() const { return l > 0.0f ? m + logf(l) : negative_infinity; }
};

/// Weights for merging two partial results of log-sum-exp lse_a and lse_b: the merged
/// output is w_a * out_a + w_b * out_b and its log-sum-exp is `lse`.
struct merge_weights {
  float a = 0.0f, b = 0.0f, lse = negative_infinity;
};

KVC_HOST_DEVICE inline merge_weights merge_weights_for(float lse_a, float lse_b) {
  merge_weights w;
  if (lse_a == negative_infinity && lse_b == negative_infinity) return w;  // no key at all
  const float m = lse_a > lse_b ? lse_a : lse_b;
  const float ea = expf(lse_a - m), eb = expf(lse_b - m);
  const float sum = ea + eb;
  w.a = ea / sum;
  w.b = eb / sum;
  w.lse = m + logf(sum);
  return w;
}

/// Merges (out_a, lse_a) and (out_b, lse_b) into out, dim values each; out may alias out_a or
/// out_b. A NaN in either input stays NaN.
KVC_HOST_DEVICE inline void merge_results(const float* out_a, float lse_a, const float* out_b,
                                          float lse_b, int dim, float* out, float* lse) {
  const merge_weights w = merge_weights_for(lse_a, lse_b);
  for (int i = 0; i < dim; ++i) {
    // A side with no key contributes nothing, even if its output holds garbage.
    const float a = w.a == 0.0f ? 0.0f : w.a * out_a[i];
    const float b = w.b == 0.0f ? 0.0f : w.b * out_b[i];
    out[i] = a + b;
  }
  *lse = w.lse;
}

}  // namespace kvc::attention
