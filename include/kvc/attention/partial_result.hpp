#pragma once
// Split-K partial results, written once for every backend (FlashInfer's state_t plays this
// part there): where a plan item's partial result lies in the workspace, and how a row's parts
// merge, the learned sink included. The CPU decode and extend finish their rows with it, the
// device decode kernels write their slots with it and the device merge kernel reads them.
//
// A part of a row is (m, l, acc) over some of the keys: the largest score m (natural log),
// l = sum e^{s - m} and acc = sum e^{s - m} v (online_softmax.hpp). A part with no key has
// l = 0 and contributes nothing, whatever its m and acc hold.

#include <cstdint>

#include "kvc/attention/online_softmax.hpp"
#include "kvc/config.hpp"

namespace kvc::attention {

/// One plan item's slot in the split-K workspace, for the q_heads rows of its sequence:
/// acc [q_heads][v_dim], then m [q_heads], then l [q_heads] (offsets in floats). A split
/// sequence's parts are consecutive slots.
struct partial_slot {
  std::int64_t q_heads = 0, v_dim = 0;

  KVC_HOST_DEVICE constexpr std::int64_t floats() const { return q_heads * (v_dim + 2); }
  KVC_HOST_DEVICE constexpr std::int64_t acc(std::int64_t row) const { return row * v_dim; }
  KVC_HOST_DEVICE constexpr std::int64_t m(std::int64_t row) const { return q_heads * v_dim + row; }
  KVC_HOST_DEVICE constexpr std::int64_t l(std::int64_t row) const {
    return q_heads * (v_dim + 1) + row;
  }
};

/// How one row's parts combine into its output: out[d] = value(sum over p of
/// weight(m_p, l_p) * acc_p[d]), and lse. With a learned sink logit, the sink joins the
/// softmax's denominator without a value: `share` is what it leaves to the values.
struct row_merge {
  float most = negative_infinity;  ///< the largest m of the parts
  float total = 0.0f;              ///< sum of l_p e^{m_p - most}
  float share = 1.0f;              ///< the values' share against the sink (1 without one)
  float lse = negative_infinity;   ///< the row's log-sum-exp, the sink included

  /// Returns the merge of `parts` parts whose m and l lie at m[p * stride] and l[p * stride];
  /// sink_logit null for none. No part with a key: every weight 0, lse -inf (or the sink's).
  KVC_HOST_DEVICE static row_merge of(const float* m, const float* l, std::int64_t stride,
                                      int parts, const float* sink_logit) {
    row_merge r;
    for (int p = 0; p < parts; ++p) r.most = m[p * stride] > r.most ? m[p * stride] : r.most;
    for (int p = 0; p < parts; ++p)
      if (l[p * stride] != 0.0f) r.total += l[p * stride] * expf(m[p * stride] - r.most);
    r.lse = r.total == 0.0f ? negative_infinity : r.most + logf(r.total);
    if (sink_logit != nullptr) {
      const merge_weights w = merge_weights_for(r.lse, *sink_logit);
      r.share = w.a;
      r.lse = w.lse;
    }
    return r;
  }

  /// Returns the weight of a part: e^{m_p - most} / total, 0 for a part with no key. A NaN stays
  /// NaN.
  KVC_HOST_DEVICE float weight(float m_p, float l_p) const {
    return l_p == 0.0f || total == 0.0f ? 0.0f : expf(m_p - most) / total;
  }
  /// Returns an output value from the parts' weighted sum: the sink's share taken out.
  KVC_HOST_DEVICE float value(float weighted_sum) const {
    return share == 0.0f ? 0.0f : weighted_sum * share;
  }
};

}  // namespace kvc::attention
