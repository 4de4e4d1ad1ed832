#pragma once
// The new keys and values an engine hands to the cache (kv_cache::write, kv_cache::append),
// to the device append kernel (kernels::make_append_work) and to extend (kvc::cpu::extend),
// and the one check all of them make of it (check_kv_input): the same mistake gets the same
// cache_error, whichever call it is passed to.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc {

/// A [tokens][heads][dim] tensor of new keys or values, in fp32, fp16 or bf16. The tokens of
/// a batch follow one another in the order of its requests. Strides are in elements; 0 means
/// dense (token_stride = heads * dim, head_stride = dim), so that the K and V slices of a
/// fused QKV projection ([tokens][q + 2 kv heads][dim]) pass without a copy:
///   kv_input k{qkv + q_heads * dim, dtype_id::bf16, tokens, kv_heads, dim,
///              (q_heads + 2 * kv_heads) * dim};
struct kv_input {
  const void* data = nullptr;
  dtype_id type = dtype_id::fp32;
  std::int64_t tokens = 0;
  int heads = 0;
  int dim = 0;
  std::int64_t token_stride = 0;  ///< elements from one token to the next (0: heads * dim)
  std::int64_t head_stride = 0;   ///< elements from one head to the next (0: dim)

  std::int64_t token_step() const {
    return token_stride != 0 ? token_stride : std::int64_t{heads} * dim;
  }
  std::int64_t head_step() const { return head_stride != 0 ? head_stride : dim; }
  /// Returns the first element of one vector.
  const std::byte* vector(std::int64_t token, int head) const {
    const auto element = static_cast<std::uint64_t>(token * token_step() + head * head_step());
    return static_cast<const std::byte*>(data) +
           element * static_cast<std::uint64_t>(dtype_bits(type) / 8);
  }
};

inline kv_input fp32_input(const float* data, std::int64_t tokens, int heads, int dim) {
  return {data, dtype_id::fp32, tokens, heads, dim};
}
/// Returns an input of raw fp16 bits.
inline kv_input fp16_input(const std::uint16_t* data, std::int64_t tokens, int heads, int dim) {
  return {data, dtype_id::fp16, tokens, heads, dim};
}
/// Returns an input of raw bf16 bits.
inline kv_input bf16_input(const std::uint16_t* data, std::int64_t tokens, int heads, int dim) {
  return {data, dtype_id::bf16, tokens, heads, dim};
}

/// One layer's new keys and values (a latent layer takes its latent vectors as k, no v).
struct layer_input {
  int layer = 0;
  kv_input k;
  kv_input v;
};

/// Which tensor of which call a check is about, for its message ("kvc::kv_cache: K of layer
/// 3", "kvc::cpu::extend: new K"); the text is made only when a check fails, so that a check
/// that passes allocates nothing.
struct input_name {
  const char* who = "";
  const char* tensor = "";
  int layer = -1;  ///< -1: no layer is named
  std::string text() const {
    return std::string(who) + ": " + tensor +
           (layer >= 0 ? " of layer " + std::to_string(layer) : std::string());
  }
};

/// Throws cache_error unless `input` is a [tokens][heads][dim] tensor of fp32, fp16 or bf16
/// with data (when tokens > 0) and strides of 0 (dense) or 1..2^40 elements: shape_mismatch
/// for a missing tensor, a wrong shape or stride, dtype_mismatch for another dtype.
inline void check_kv_input(const kv_input& input, std::int64_t tokens, int heads, int dim,
                           const input_name& name) {
  if (input.data == nullptr && tokens > 0)
    throw cache_error(cache_errc::shape_mismatch, name.text() + " is missing (null data) for " +
                                                      std::to_string(tokens) + " tokens");
  if (input.type != dtype_id::fp32 && input.type != dtype_id::fp16 && input.type != dtype_id::bf16)
    throw cache_error(cache_errc::dtype_mismatch, name.text() + " is " +
                                                      std::string(dtype_name(input.type)) +
                                                      "; K/V inputs must be fp32, fp16 or bf16");
  if (input.tokens != tokens || input.heads != heads || input.dim != dim)
    throw cache_error(cache_errc::shape_mismatch,
                      name.text() + " is [" + std::to_string(input.tokens) + "][" +
                          std::to_string(input.heads) + "][" + std::to_string(input.dim) +
                          "], the layer needs [" + std::to_string(tokens) + "][" +
                          std::to_string(heads) + "][" + std::to_string(dim) + "]");
  constexpr std::int64_t most = std::int64_t{1} << 40;
  if (input.token_stride < 0 || input.head_stride < 0 || input.token_stride > most ||
      input.head_stride > most)
    throw cache_error(cache_errc::shape_mismatch,
                      name.text() + ": strides must be 0 (dense) or positive element counts");
}

/// Checks one layer's new K and V for `tokens` tokens, by check_kv_input against the
/// layer's page geometry: K always; V too, except for a latent layer, whose values are part of
/// K: a V given for it is shape_mismatch. `who` names the call, `layer` the layer.
inline void check_layer_input(const kv_input& k, const kv_input& v, std::int64_t tokens,
                              const page_geometry& geo, const char* who, int layer) {
  check_kv_input(k, tokens, geo.kv_heads, geo.k_dim, input_name{who, "K", layer});
  if (!geo.latent)
    check_kv_input(v, tokens, geo.kv_heads, geo.v_dim, input_name{who, "V", layer});
  else
    detail::require(v.data == nullptr, cache_errc::shape_mismatch, who, ": layer ", layer,
                    " is a latent layer: its values are part of K; pass no V");
}

/// Checks buffers for one token's K and V of a layer (kv_cache::read's span form): k
/// holds kv_heads * k_dim floats, v (v_floats 0: none asked for) kv_heads * v_dim, or
/// shape_mismatch. `who` names the call, `layer` the layer.
inline void check_token_buffers(const page_geometry& geo, std::size_t k_floats,
                                std::size_t v_floats, const char* who, int layer) {
  const auto check = [&](const char* name, std::size_t given, int dim) {
    const auto needed = static_cast<std::size_t>(geo.kv_heads) * static_cast<std::size_t>(dim);
    detail::require(given >= needed, cache_errc::shape_mismatch, who, ": ", name, " holds ", given,
                    " floats, layer ", layer, " needs ", needed);
  };
  check("k", k_floats, geo.k_dim);
  if (v_floats != 0) check("v", v_floats, geo.v_dim);
}

/// Checks a whole step's K/V (kv_cache::append): every layer of `layers` exists and
/// owns a cache (group_of(layer) throws otherwise and gives its geometry), none comes twice,
/// each passes check_layer_input, and every layer that owns a cache (owns(l), l < layer_count)
/// is there.
template <class GeometryOf, class Owns>
void check_step_input(std::span<const layer_input> layers, std::int64_t tokens, int layer_count,
                      GeometryOf&& geometry_of, Owns&& owns, const char* who) {
  std::vector<bool> given(static_cast<std::size_t>(layer_count), false);
  for (const layer_input& input : layers) {
    const page_geometry& geo = geometry_of(input.layer);
    detail::require(!given[static_cast<std::size_t>(input.layer)], cache_errc::invalid_argument,
                    who, ": layer ", input.layer, " is given twice");
    given[static_cast<std::size_t>(input.layer)] = true;
    check_layer_input(input.k, input.v, tokens, geo, who, input.layer);
  }
  for (int l = 0; l < layer_count; ++l)
    detail::require(!owns(l) || given[static_cast<std::size_t>(l)], cache_errc::invalid_argument,
                    who, ": no K/V given for layer ", l);
}

}  // namespace kvc
