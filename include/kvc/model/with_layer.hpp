#pragma once
// A run-time layer index to the layer's type: what an engine's loop over a model's layers needs
// to reach the kernels that take a layer's type as a template argument (the device launchers,
// kernels::decode_shape_of), for a model whose layers differ (windows and global layers,
// shared KV, recurrent layers).
//
//   for (int l = 0; l < Model::num_layers; ++l)
//     kvc::with_layer<Model>(l, [&]<class Layer>(std::type_identity<Layer>) {
//       using shape = kvc::kernels::decode_shape_of<typename Layer::attention, paging>;
//       kvc::cuda::decode<shape>(plan, device_plan, cache.view(l, table), q, out, lse, ...);
//     });

#include <type_traits>
#include <utility>

#include "kvc/cache/errors.hpp"
#include "kvc/model/model.hpp"

namespace kvc {

/// Calls f(std::type_identity<Layer>{}) with Layer the type of layer `layer` of Model (as
/// Model::layer_list holds it: a layer<...>, a kv_shared<...> or a recurrent_state<...>
/// layer), and returns nothing. f is instantiated once per distinct layer type. A layer outside
/// [0, Model::num_layers) throws cache_error invalid_layer without calling f.
template <class Model, class F>
void with_layer(int layer, F&& f) {
  detail::require(layer >= 0 && layer < Model::num_layers, cache_errc::invalid_layer,
                  "kvc::with_layer: layer ", layer, " is outside the model's ", Model::num_layers,
                  " layers");
  int i = 0;
  [&]<class... Layers>(type_list<Layers...>) {
    ((i++ == layer ? static_cast<void>(f(std::type_identity<Layers>{})) : void()), ...);
  }(typename Model::layer_list{});
}

}  // namespace kvc
