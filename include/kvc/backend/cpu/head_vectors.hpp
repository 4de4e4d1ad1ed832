#pragma once
// Where one KV head's stored vectors of a block lie in a page, and their scales: what the
// group kernels read straight from the stored dtype (group_kernels_avx2.hpp,
// group_kernels_avx512.hpp) and decode hands them.
//
//   const head_vectors keys = head_vectors::of(geometry, page, first_token, head, true);
//   keys.values + t * keys.token_stride;   // token t's vector;  keys.scale(t): its scale

#include <cstddef>
#include <cstdint>

#include "kvc/detail/index.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cpu {

/// One KV head's vectors within a page, from a block's first token: where the first one
/// starts, the bytes from a token's vector to the next, and their scales (int8 / int4 only).
struct head_vectors {
  const std::byte* values = nullptr;
  std::size_t token_stride = 0;   ///< bytes
  const float* scales = nullptr;  ///< null when the dtype has no per-vector scale
  std::size_t scale_stride = 0;   ///< floats
  std::uint32_t vector_bytes = 0;

  static head_vectors of(const page_geometry& geo, const std::byte* page, int first_token, int head,
                         bool keys) {
    const std::size_t vectors_per_token =
        geo.layout == page_layout::nhd ? kvc::detail::to_size(geo.kv_heads) : 1;
    const dtype_id type = keys ? geo.k_type : geo.v_type;
    head_vectors h;
    h.values = page + (keys ? geo.k_offset(first_token, head) : geo.v_offset(first_token, head));
    h.vector_bytes = keys ? geo.k_vector_bytes : geo.v_vector_bytes;
    h.token_stride = vectors_per_token * h.vector_bytes;
    if (dtype_scaling(type) == scaling::per_token_head) {
      h.scales =
          reinterpret_cast<const float*>(page + (keys ? geo.k_scale_offset(first_token, head)
                                                      : geo.v_scale_offset(first_token, head)));
      h.scale_stride = vectors_per_token;
    }
    return h;
  }
  float scale(int token) const {
    return scales == nullptr ? 1.0f : scales[kvc::detail::to_size(token) * scale_stride];
  }
};

}  // namespace kvc::cpu
