#pragma once
// A model is a stack of layer specs, built from segments:
//
//   model<N, L>                     N layers of spec L
//   model<N, pattern<A, B, ...>>    N layers cycling through the pattern (Gemma 3: 5 local, 1
//   global);
//                                   the last cycle may be cut short (Gemma 3 27B: 62 = 10 * 6 + 2)
//   stack<repeat<N1, X>, repeat<N2, Y>, ...>   segments one after another (Gemma 3n)
//
// A gallery entry derives from one of these (struct llama3_8b : model<...> {}), which keeps
// compiler messages short. Everything the library needs is in `layer_list` and `layer_summaries`.

#include <array>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kvc/model/layer.hpp"

namespace kvc {

template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
};

namespace detail {
template <class... Layers>
struct pattern_checks {
  static_assert(sizeof...(Layers) > 0, "kvc::pattern<...>: a pattern needs at least one layer");
  static_assert((layer_spec<Layers> && ...),
                "kvc::pattern<...>: every element must be a layer spec: layer<...>, "
                "kv_shared<Source, layer<...>> or recurrent_state<N, T>");
};
}  // namespace detail

template <class... Layers>
struct pattern {
  static_assert(sizeof(detail::pattern_checks<Layers...>) > 0);  // the checks, kept apart
  static constexpr std::size_t size = sizeof...(Layers);
  template <std::size_t I>
  using at = std::tuple_element_t<I % size, std::tuple<Layers...>>;
};

namespace detail {
template <class T>
struct is_pattern : std::false_type {};
template <class... Ls>
struct is_pattern<pattern<Ls...>> : std::true_type {};

// Stands in for a repeat's body that is neither a layer spec nor a pattern: repeat_checks
// has said so, and nothing else need fail after it.
struct no_body {
  static constexpr std::size_t size = 1;
  template <std::size_t I>
  using at = no_body;
};

template <class Body>
struct as_pattern {
  using type = std::conditional_t<layer_spec<Body>, pattern<Body>, no_body>;
};
template <class... Ls>
struct as_pattern<pattern<Ls...>> {
  using type = pattern<Ls...>;
};
}  // namespace detail

namespace detail {
template <int Count, class Body>
struct repeat_checks {
  static_assert(Count > 0, "kvc::repeat<N, X>: N must be at least one layer");
  static_assert(layer_spec<Body> || detail::is_pattern<Body>::value,
                "kvc::repeat<N, X>: X must be a layer spec (layer<...>, kv_shared<...>, "
                "recurrent_state<...>) or a pattern<...> of them");
};
}  // namespace detail

/// Count layers taken from Body, a layer spec or a pattern<...> (cycled).
template <int Count, class Body>
struct repeat {
  static_assert(sizeof(detail::repeat_checks<Count, Body>) > 0);  // the checks, kept apart
  static constexpr int count = Count;
  using body = typename detail::as_pattern<Body>::type;
};

/// What the footprint and the runtime need to know of one layer, as a value.
struct layer_summary {
  layer_kind kind = layer_kind::attention;
  int source_layer = -1;  ///< the layer whose cache this one reads (itself when it owns one)
  int q_heads = 0;
  int kv_heads = 0;
  int k_dim = 0;
  int v_dim = 0;
  bool latent = false;
  dtype_id k_type = dtype_id::bf16;
  dtype_id v_type = dtype_id::bf16;
  window_shape window{};
  std::uint64_t bytes_per_token = 0;  ///< cache bytes this layer adds per token (0 if it owns none)
  std::uint64_t state_bytes = 0;      ///< recurrent state bytes (constant)

  constexpr bool owns_cache() const { return kind == layer_kind::attention; }

  /// Returns whether a cache laid out for `other` holds this layer's keys and values too.
  constexpr bool same_cache_as(const layer_summary& other) const {
    return kv_heads == other.kv_heads && k_dim == other.k_dim && v_dim == other.v_dim &&
           latent == other.latent && k_type == other.k_type && v_type == other.v_type &&
           window.kind == other.window.kind && window.tokens == other.window.tokens &&
           window.sink_tokens == other.window.sink_tokens;
  }
};

namespace detail {

template <class, class>
struct concat;
template <class... A, class... B>
struct concat<type_list<A...>, type_list<B...>> {
  using type = type_list<A..., B...>;
};

template <class Repeat, class Indices = std::make_index_sequence<Repeat::count>>
struct expand;
template <class Repeat, std::size_t... I>
struct expand<Repeat, std::index_sequence<I...>> {
  using type = type_list<typename Repeat::body::template at<I>...>;
};

// A segment's layers; none for a segment that is not a repeat<N, X> (stack_checks says so,
// and nothing else need fail after it).
template <class Segment>
struct segment_layers {
  using type = type_list<>;
};
template <class Segment>
requires requires {
  Segment::count;
  typename Segment::body;
}
struct segment_layers<Segment> {
  using type = typename expand<Segment>::type;
};

template <class... Segments>
struct flatten {
  using type = type_list<>;
};
template <class First, class... Rest>
struct flatten<First, Rest...> {
  using type =
      typename concat<typename segment_layers<First>::type, typename flatten<Rest...>::type>::type;
};

template <class Layer>
constexpr layer_summary summarize(int index) {
  layer_summary s;
  if constexpr (!layer_spec<Layer>) {
    return s;  // not a layer: pattern_checks or repeat_checks has said so
  } else {
    s.kind = Layer::kind;
    if constexpr (Layer::kind == layer_kind::recurrent) {
      s.state_bytes = Layer::state_bytes;
    } else {
      using attention = typename Layer::attention;
      s.q_heads = attention::q_heads;
      s.kv_heads = attention::kv_heads;
      s.k_dim = attention::k_dim;
      s.v_dim = attention::v_dim;
      s.latent = attention::is_latent;
      s.k_type = attention::k_type::id;
      s.v_type = attention::v_type::id;
      s.window = attention::window_value;
      if constexpr (Layer::kind == layer_kind::shared_kv) {
        s.source_layer = Layer::source_layer;
      } else {
        s.source_layer = index;
        s.bytes_per_token = attention::bytes_per_token;
      }
    }
    return s;
  }
}

template <class List, class Indices = std::make_index_sequence<List::size>>
struct summaries;
template <class... Layers, std::size_t... I>
struct summaries<type_list<Layers...>, std::index_sequence<I...>> {
  static constexpr std::array<layer_summary, sizeof...(Layers)> value{
      summarize<Layers>(static_cast<int>(I))...};
};

// A shared layer must read an earlier layer that owns a cache of the very same shape.
template <class List>
constexpr bool shared_sources_valid() {
  constexpr auto& layers = summaries<List>::value;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const layer_summary& s = layers[i];
    if (s.kind != layer_kind::shared_kv) continue;
    if (s.source_layer >= static_cast<int>(i)) return false;
    const layer_summary& src = layers[static_cast<std::size_t>(s.source_layer)];
    if (!src.owns_cache() || !src.same_cache_as(s)) return false;
  }
  return true;
}

template <class T>
struct is_repeat : std::false_type {};
template <int N, class B>
struct is_repeat<repeat<N, B>> : std::true_type {};

}  // namespace detail

namespace detail {
template <class... Segments>
struct stack_checks {
  static_assert(sizeof...(Segments) > 0, "kvc::stack<...>: a model needs at least one segment");
  static_assert((detail::is_repeat<Segments>::value && ...),
                "kvc::stack<...>: every segment must be repeat<N, layer or pattern>");
  static_assert(detail::shared_sources_valid<typename flatten<Segments...>::type>(),
                "kvc::kv_shared<Source, L>: the source must be an earlier layer that owns a "
                "cache of the same shape (KV heads, head dims, latent, storage, window)");
};
}  // namespace detail

template <class... Segments>
struct stack {
  static_assert(sizeof(detail::stack_checks<Segments...>) > 0);  // the checks, kept apart

  using layer_list = typename detail::flatten<Segments...>::type;
  static constexpr int num_layers = static_cast<int>(layer_list::size);
  static constexpr const auto& layer_summaries = detail::summaries<layer_list>::value;
};

/// Layers layers of Body: one layer spec (uniform) or a pattern<...> cycled from the first layer.
template <int Layers, class Body>
struct model : stack<repeat<Layers, Body>> {};

template <class T>
concept model_type = requires {
  typename T::layer_list;
  { T::num_layers } -> std::convertible_to<int>;
  T::layer_summaries;
};

}  // namespace kvc
