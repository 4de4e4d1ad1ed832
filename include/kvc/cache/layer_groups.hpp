#pragma once
// Layers that own caches of the same shape and window share one page pool and one page
// table per sequence: page p of a sequence holds the same positions in every layer of the
// group (each layer has its own memory for it). A Gemma 3 cache has two groups, local and
// global, so the local layers really hold less. Layers that share another layer's KV use
// their source's group; recurrent layers have none (-1).

#include <array>
#include <cstddef>

#include "kvc/cache/errors.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/model.hpp"

namespace kvc {

struct group_info {
  int first_layer = -1;  ///< a layer of the group (the first), whose summary describes it
  int layers = 0;        ///< cache-owning layers in the group
};

template <model_type Model>
struct layer_groups {
  static constexpr int num_layers = Model::num_layers;

  struct table {
    detail::signed_array<int, num_layers> group{};  ///< group of each layer (-1: recurrent)
    detail::signed_array<int, num_layers> slot{};  ///< index of the layer's memory within its group
    detail::signed_array<group_info, num_layers> info{};
    int count = 0;
  };

  // A member function, not a lambda: its names stay out of an engine's -Wshadow.
  static constexpr table make_table() {
    table t;
    const auto& summaries = Model::layer_summaries;
    for (int i = 0; i < num_layers; ++i) {
      const layer_summary& s = summaries[static_cast<std::size_t>(i)];
      t.group[i] = -1;
      if (s.kind == layer_kind::shared_kv) {
        t.group[i] = t.group[s.source_layer];
        t.slot[i] = t.slot[s.source_layer];
      } else if (s.owns_cache()) {
        for (int g = 0; g < t.count && t.group[i] < 0; ++g)
          if (summaries[static_cast<std::size_t>(t.info[g].first_layer)].same_cache_as(s))
            t.group[i] = g;
        if (t.group[i] < 0) {
          t.group[i] = t.count;
          t.info[t.count++].first_layer = i;
        }
        t.slot[i] = t.info[t.group[i]].layers++;
      }
    }
    return t;
  }
  static constexpr table value = make_table();

  static constexpr int num_groups = value.count;

  /// Returns the group a layer reads (its own cache or the one it shares), or invalid_layer.
  static int readable(int layer) {
    detail::require(layer >= 0 && layer < num_layers && value.group[layer] >= 0,
                    cache_errc::invalid_layer, "kvc::kv_cache: layer ", layer,
                    " does not exist or keeps no KV cache");
    return value.group[layer];
  }
  /// Returns the group a layer writes (one that owns its cache), or invalid_layer.
  static int writable(int layer) {
    const int g = readable(layer);
    detail::require(Model::layer_summaries[static_cast<std::size_t>(layer)].owns_cache(),
                    cache_errc::invalid_layer, "kvc::kv_cache: layer ", layer, " reads layer ",
                    source_of(layer), "'s cache and owns none");
    return g;
  }
  /// Returns the layer whose cache (and fp8 scales) a layer reads: its source, or itself.
  static constexpr int source_of(int layer) {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(layer)];
    return s.kind == layer_kind::shared_kv ? s.source_layer : layer;
  }
};

}  // namespace kvc
