#pragma once
// The run-time parameters of an attention variant: the softmax scale, the logit soft-cap and
// learned per-head sink logits. attention_params_of<Layer>() reads them off a layer spec.

#include <cmath>

#include "kvc/config.hpp"

namespace kvc::attention {

struct attention_params {
  float scale = 1.0f;
  float softcap = 0.0f;                ///< 0: logits are not capped
  const float* sink_logits = nullptr;  ///< one per query head, or null (no sinks)

  /// Returns the logit of a raw q.k product: scaled, then soft-capped (cap * tanh(x / cap)).
  KVC_HOST_DEVICE float logit(float dot) const {
    const float x = dot * scale;
    return softcap > 0.0f ? softcap * tanhf(x / softcap) : x;
  }
};

/// Returns the parameters a layer spec implies; sink logits are weights, given at run time.
template <class Layer>
attention_params attention_params_of(const float* sink_logits = nullptr) {
  attention_params p;
  p.scale = static_cast<float>(Layer::softmax_scale_value);
  p.softcap = static_cast<float>(Layer::softcap::cap);
  p.sink_logits = Layer::sinks::enabled ? sink_logits : nullptr;
  return p;
}

}  // namespace kvc::attention
