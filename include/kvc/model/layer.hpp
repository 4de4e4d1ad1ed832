#pragma once
// Layer specs: what one transformer layer keeps between tokens.
//
//   layer<Policies...>           attention with a KV cache of its own
//   kv_shared<Source, layer<..>> attention that reads layer Source's cache (Gemma 3n)
//   recurrent_state<N, DType>    a constant-size state instead of a KV cache (linear attention)

#include <cstdint>

#include "kvc/policy/family.hpp"
#include "kvc/policy/head_dim.hpp"
#include "kvc/policy/heads.hpp"
#include "kvc/policy/latent.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/variant.hpp"
#include "kvc/policy/window.hpp"

namespace kvc {

enum class layer_kind : std::uint8_t { attention, shared_kv, recurrent };

namespace detail {

template <class T>
consteval bool is_policy() {
  return policy<T>;
}
template <policy_family F, class... Ps>
inline constexpr int count_policies = ((in_family<Ps>(F) ? 1 : 0) + ... + 0);

// Stand-ins while a required policy is missing: they keep the error list short.
struct missing_heads : heads<1, 1> {};
struct missing_dims : head_dim<2> {};

}  // namespace detail

template <class... Policies>
struct layer {
  static_assert((detail::is_policy<Policies>() && ...),
                "kvc::layer<...>: every parameter must be a kvc policy: heads/mha/gqa/mqa, "
                "head_dim, latent, a window (sliding_window, chunked, streaming), storage, "
                "logit_softcap, learned_sinks or a softmax scale");
  static_assert(detail::count_policies<policy_family::head_sharing, Policies...> == 1,
                "kvc::layer<...>: give exactly one head-sharing policy (mha<H>, gqa<Q, KV>, "
                "mqa<Q> or heads<Q, KV>)");
  static_assert(detail::count_policies<policy_family::head_dims, Policies...> +
                        detail::count_policies<policy_family::latent_compression, Policies...> ==
                    1,
                "kvc::layer<...>: give the size of the cached vectors, either head_dim<DK, DV> "
                "(per-head keys and values) or latent<Rank, RopeDim> (MLA), not both");
  static_assert(detail::count_policies<policy_family::window, Policies...> <= 1,
                "kvc::layer<...>: give at most one window policy");
  static_assert(detail::count_policies<policy_family::storage, Policies...> <= 1,
                "kvc::layer<...>: give at most one storage policy");
  static_assert(detail::count_policies<policy_family::logit_softcap, Policies...> <= 1,
                "kvc::layer<...>: give at most one logit_softcap policy");
  static_assert(detail::count_policies<policy_family::sink_logits, Policies...> <= 1,
                "kvc::layer<...>: give learned_sinks at most once");
  static_assert(detail::count_policies<policy_family::softmax_scale, Policies...> <= 1,
                "kvc::layer<...>: give at most one softmax scale policy");

  static constexpr layer_kind kind = layer_kind::attention;
  static constexpr bool owns_cache = true;
  using attention = layer;  ///< the attention spec (kv_shared<> names the one it uses)

  using head_sharing =
      detail::find_family_t<policy_family::head_sharing, detail::missing_heads, Policies...>;
  using latent_policy =
      detail::find_family_t<policy_family::latent_compression, detail::absent, Policies...>;
  using dims_policy =
      detail::find_family_t<policy_family::head_dims, detail::missing_dims, Policies...>;
  using window = detail::find_family_t<policy_family::window, full_attention, Policies...>;
  using storage_policy = detail::find_family_t<policy_family::storage, storage<bf16>, Policies...>;
  using softcap = detail::find_family_t<policy_family::logit_softcap, no_softcap, Policies...>;
  using sinks = detail::find_family_t<policy_family::sink_logits, no_sinks, Policies...>;
  using scale = detail::find_family_t<policy_family::softmax_scale, default_scale, Policies...>;
  using k_type = typename storage_policy::k_type;
  using v_type = typename storage_policy::v_type;

  static constexpr bool is_latent = !std::is_same_v<latent_policy, detail::absent>;
  static constexpr int q_heads = head_sharing::q_heads;
  static constexpr int kv_heads = head_sharing::kv_heads;
  static constexpr int group_size = head_sharing::group_size;

  static_assert(!is_latent || kv_heads == 1,
                "kvc::layer<...>: latent<Rank, RopeDim> caches one vector shared by all query "
                "heads, so it takes exactly one KV head (mqa<Q>)");
  static_assert(!is_latent || !scale::is_default,
                "kvc::layer<...>: a latent<Rank, RopeDim> layer must state its softmax scale: "
                "1 / sqrt(Rank + RopeDim) is not what published MLA models use (DeepSeek: "
                "inv_sqrt_scale<192>, for qk_nope_head_dim + qk_rope_head_dim = 128 + 64)");
  static_assert(!is_latent || std::is_same_v<k_type, v_type>,
                "kvc::layer<...>: latent<Rank, RopeDim> stores keys and values as one vector, so "
                "storage<K, V> must use a single dtype");

  /// Dimensions attention works in: keys of k_dim, values of v_dim. For a latent layer,
  /// keys are the whole cached vector (Rank + RopeDim) and values its first Rank dims.
  static constexpr int k_dim = [] {
    if constexpr (is_latent)
      return latent_policy::cached_dim;
    else
      return dims_policy::k_dim;
  }();
  static constexpr int v_dim = [] {
    if constexpr (is_latent)
      return latent_policy::rank;
    else
      return dims_policy::v_dim;
  }();

  static_assert(!std::is_same_v<k_type, int4> || k_dim % 2 == 0,
                "kvc::layer<...>: int4 storage packs two values per byte, so the key head dim "
                "(or the latent Rank + RopeDim) must be even");
  static_assert(!std::is_same_v<v_type, int4> || v_dim % 2 == 0 ||
                    (std::is_same_v<k_type, int4> && k_dim % 2 != 0),  // reported above
                "kvc::layer<...>: int4 storage packs two values per byte, so the value head dim "
                "must be even");

  /// Bytes that one token adds to this layer's cache, all KV heads and scales included.
  static constexpr std::uint64_t k_bytes_per_token = [] {
    if constexpr (is_latent)
      return vector_bytes<k_type>(latent_policy::cached_dim);
    else
      return kv_heads * vector_bytes<k_type>(k_dim);
  }();
  static constexpr std::uint64_t v_bytes_per_token = [] {
    if constexpr (is_latent)
      return std::uint64_t{0};  // values live inside the latent vector
    else
      return kv_heads * vector_bytes<v_type>(v_dim);
  }();
  static constexpr std::uint64_t bytes_per_token = k_bytes_per_token + v_bytes_per_token;

  static constexpr window_shape window_value = window::shape;
  /// 1 / sqrt(k_dim) by default; a latent layer has no default (published MLA models scale
  /// by their unabsorbed qk head dim, stated with inv_sqrt_scale<>).
  static constexpr double softmax_scale_value = scale::value(k_dim);
};

namespace detail {
template <int SourceLayer, class AttentionLayer>
struct kv_shared_checks {
  static_assert(SourceLayer >= 0, "kvc::kv_shared<Source, L>: the source layer index is negative");
  static_assert(AttentionLayer::kind == layer_kind::attention,
                "kvc::kv_shared<Source, L>: L must be a layer<...> spec");
};
}  // namespace detail

/// A layer that attends over another layer's cache and keeps none of its own.
template <int SourceLayer, class AttentionLayer>
struct kv_shared {
  static_assert(sizeof(detail::kv_shared_checks<SourceLayer, AttentionLayer>) >
                0);  // the checks, kept apart
  static constexpr layer_kind kind = layer_kind::shared_kv;
  static constexpr bool owns_cache = false;
  static constexpr int source_layer = SourceLayer;
  using attention = AttentionLayer;
};

namespace detail {
template <std::uint64_t Elements, class DType>
struct recurrent_state_checks {
  static_assert(Elements > 0, "kvc::recurrent_state<N, T>: the state must hold some elements");
  static_assert(std::is_same_v<DType, fp32> || std::is_same_v<DType, fp16> ||
                    std::is_same_v<DType, bf16>,
                "kvc::recurrent_state<N, T>: the state is stored as fp32, fp16 or bf16");
};
}  // namespace detail

/// A constant-size recurrent state (the linear-attention layers of hybrid models).
template <std::uint64_t Elements, class DType = fp32>
struct recurrent_state {
  static_assert(sizeof(detail::recurrent_state_checks<Elements, DType>) >
                0);  // the checks, kept apart
  static constexpr layer_kind kind = layer_kind::recurrent;
  static constexpr bool owns_cache = false;
  static constexpr std::uint64_t elements = Elements;
  static constexpr std::uint64_t state_bytes = Elements * DType::bits / 8;
  using dtype = DType;
};

template <class T>
concept layer_spec = requires {
  { T::kind } -> std::convertible_to<layer_kind>;
};

}  // namespace kvc
