#pragma once
// Per-layer attention parameters of a model, by layer index at run time:
//
//   const auto params = kvc::attention::layer_params<Model>(layer, sink_logits_of_layer);
//
// An engine's layer loop knows the index, not the layer's type; this reads the scale, the
// logit soft-cap and whether the layer takes learned sinks off the model's typedef once, as
// a constexpr table. A layer that shares another's cache (kv_shared) has its own attention
// spec; a recurrent layer has no attention and is refused.

#include <array>
#include <cstddef>

#include "kvc/attention/params.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/model/model.hpp"

namespace kvc::attention {

/// What a layer's typedef fixes of its attention.
struct layer_attention {
  bool attends = false;  ///< false: a recurrent layer
  float scale = 1.0f;
  float softcap = 0.0f;
  bool sinks = false;  ///< whether the layer takes learned sink logits
};

namespace detail {

template <class Layer>
constexpr layer_attention attention_of() {
  layer_attention a;
  if constexpr (Layer::kind != layer_kind::recurrent) {
    using spec = typename Layer::attention;
    a.attends = true;
    a.scale = static_cast<float>(spec::softmax_scale_value);
    a.softcap = static_cast<float>(spec::softcap::cap);
    a.sinks = spec::sinks::enabled;
  }
  return a;
}

template <class List>
struct attention_table;
template <class... Layers>
struct attention_table<type_list<Layers...>> {
  static constexpr std::array<layer_attention, sizeof...(Layers)> value{attention_of<Layers>()...};
};

}  // namespace detail

/// The attention of every layer of Model, indexed by layer.
template <model_type Model>
inline constexpr const auto& model_attention =
    detail::attention_table<typename Model::layer_list>::value;

/// Returns the attention_params of layer `layer` of Model; sink_logits (one per query head) are
/// used when the layer takes sinks and ignored otherwise. Throws cache_error(invalid_layer) for an
/// index out of range or a recurrent layer.
template <model_type Model>
attention_params layer_params(int layer, const float* sink_logits = nullptr) {
  kvc::detail::require(layer >= 0 && layer < Model::num_layers &&
                           model_attention<Model>[static_cast<std::size_t>(layer)].attends,
                       cache_errc::invalid_layer, "kvc::attention::layer_params: layer ", layer,
                       " does not exist or has no attention");
  const layer_attention& a = model_attention<Model>[static_cast<std::size_t>(layer)];
  attention_params p;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.sink_logits = a.sinks ? sink_logits : nullptr;
  return p;
}

}  // namespace kvc::attention
