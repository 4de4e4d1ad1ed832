#pragma once
// Where every stored value of one layer lives inside a page of page_tokens tokens.
//
// A page holds, in this order, each region starting on a 16-byte boundary:
//   K values   one vector of k_dim values per (token, KV head)
//   K scales   one fp32 per (token, KV head), for int8 / int4 keys only
//   V values, V scales   the same for values (absent for a latent layer: V is part of K)
// Vectors are ordered [token][head] (NHD) or [head][token] (HND). The cache runtime, the
// footprint and the kernels all address pages through this one value.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/model/model.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc {

struct page_geometry {
  int page_tokens = 0;
  int kv_heads = 0;
  int k_dim = 0;  ///< values per K vector (for a latent layer: rank + RoPE dims)
  int v_dim = 0;  ///< values per V vector (for a latent layer: the first `rank` of K)
  bool latent = false;
  page_layout layout = page_layout::nhd;
  dtype_id k_type = dtype_id::bf16;
  dtype_id v_type = dtype_id::bf16;
  std::uint32_t k_vector_bytes = 0;
  std::uint32_t v_vector_bytes = 0;
  std::uint64_t k_values = 0, k_scales = 0, v_values = 0, v_scales = 0;
  std::uint64_t page_bytes = 0;

  static constexpr std::uint64_t align16(std::uint64_t bytes) { return (bytes + 15) / 16 * 16; }

  static constexpr page_geometry make(const layer_summary& layer, int page_tokens,
                                      page_layout layout) {
    page_geometry g;
    g.page_tokens = page_tokens;
    g.kv_heads = layer.kv_heads;
    g.k_dim = layer.k_dim;
    g.v_dim = layer.v_dim;
    g.latent = layer.latent;
    g.layout = layout;
    g.k_type = layer.k_type;
    g.v_type = layer.v_type;
    const auto vectors =
        static_cast<std::uint64_t>(page_tokens) * static_cast<std::uint64_t>(layer.kv_heads);
    g.k_vector_bytes = static_cast<std::uint32_t>(layer.k_dim * dtype_bits(layer.k_type) / 8);
    g.v_vector_bytes = static_cast<std::uint32_t>(layer.v_dim * dtype_bits(layer.v_type) / 8);
    const auto scales = [&](dtype_id type) -> std::uint64_t {
      return dtype_scaling(type) == scaling::per_token_head ? vectors * scale_bytes : 0;
    };
    g.k_values = 0;
    g.k_scales = align16(vectors * g.k_vector_bytes);
    g.v_values = align16(g.k_scales + scales(g.k_type));
    if (g.latent) {
      g.v_scales = g.v_values;
      g.page_bytes = g.v_values;
    } else {
      g.v_scales = align16(g.v_values + vectors * g.v_vector_bytes);
      g.page_bytes = align16(g.v_scales + scales(g.v_type));
    }
    return g;
  }

  /// Returns the position of the (token, head) vector among the page's vectors.
  KVC_HOST_DEVICE constexpr std::uint64_t vector_index(int token, int head) const {
    return layout == page_layout::nhd
               ? static_cast<std::uint64_t>(token) * static_cast<std::uint64_t>(kv_heads) +
                     static_cast<std::uint64_t>(head)
               : static_cast<std::uint64_t>(head) * static_cast<std::uint64_t>(page_tokens) +
                     static_cast<std::uint64_t>(token);
  }
  KVC_HOST_DEVICE constexpr std::uint64_t k_offset(int token, int head) const {
    return k_values + vector_index(token, head) * k_vector_bytes;
  }
  KVC_HOST_DEVICE constexpr std::uint64_t k_scale_offset(int token, int head) const {
    return k_scales + vector_index(token, head) * scale_bytes;
  }
  /// Returns where a V vector starts: a latent layer's values are the first v_dim of its K vector.
  KVC_HOST_DEVICE constexpr std::uint64_t v_offset(int token, int head) const {
    return latent ? k_offset(token, head) : v_values + vector_index(token, head) * v_vector_bytes;
  }
  KVC_HOST_DEVICE constexpr std::uint64_t v_scale_offset(int token, int head) const {
    return latent ? k_scale_offset(token, head)
                  : v_scales + vector_index(token, head) * scale_bytes;
  }
};

}  // namespace kvc
