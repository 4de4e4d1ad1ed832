#pragma once
// Which group kernels a program compiles. The group kernels (group_kernels.hpp) are one
// function per query group (1 to 8), stored dtype and instruction set, all chosen at run time
// from an untyped view: a translation unit that calls kvc::cpu::decode compiles every one of
// them, most of its compile time (docs/benchmarks.md, compile cost). An engine that knows its
// model names it, and compiles only the kernels that model's layers can run:
//
//   kvc::cpu::decode<kvc::cpu::kernels_for<Model>>(plan, view, q, out, lse, params, ws, pool);
//   kvc::cpu::decode(plan, view, ...);          // kvc::cpu::all_kernels: any layer
//
// A decode of a layer the set does not hold is refused (cache_errc::plan_mismatch) on every
// CPU, before anything is written.

#include <cstdint>

#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cpu {

/// A set of group kernels: one bit per (query group, stored dtype) for the scores of keys, one
/// for the weighted sums of values. A class type, so that it can be a template argument.
struct kernel_set {
  static constexpr int dtypes = 7;  ///< dtype_id's values, fp32 to int4
  static_assert(max_kernel_group * dtypes <= 64, "one bit per (group, dtype) in 64 bits");

  std::uint64_t key_bits = ~std::uint64_t{0};
  std::uint64_t value_bits = ~std::uint64_t{0};

  /// Returns the empty set: no group kernel, every layer on the float-block kernels or refused.
  static constexpr kernel_set none() { return {0, 0}; }

  /// Returns whether the keys of `type` are scored for groups of `group` query heads.
  constexpr bool scores(int group, dtype_id type) const {
    return (key_bits & bit(group, type)) != 0;
  }
  /// Returns whether values of `type` are weighed for groups of `group` query heads.
  constexpr bool accumulates(int group, dtype_id type) const {
    return (value_bits & bit(group, type)) != 0;
  }
  /// Returns whether any kernel of groups of `group` query heads is in the set.
  constexpr bool has_group(int group) const {
    for (int t = 0; t < dtypes; ++t)
      if (scores(group, dtype_id(t)) || accumulates(group, dtype_id(t))) return true;
    return false;
  }
  /// Returns whether decode may run a layer of geometry `geo` whose KV heads serve `group` query
  /// heads: a layer the group kernels never take (MLA, groups above 8) needs none of them.
  constexpr bool covers(const page_geometry& geo, int group) const {
    if (!takes_group_kernels(geo, group)) return true;
    return scores(group, geo.k_type) && accumulates(group, geo.v_type);
  }
  /// Returns this set and the kernels of one layer kind (nothing for one the kernels never take).
  constexpr kernel_set with(int group, dtype_id k_type, dtype_id v_type, bool latent) const {
    kernel_set s = *this;
    if (latent || group < 1 || group > max_kernel_group) return s;
    s.key_bits |= bit(group, k_type);
    s.value_bits |= bit(group, v_type);
    return s;
  }

  static constexpr bool takes_group_kernels(const page_geometry& geo, int group) {
    return !geo.latent && group >= 1 && group <= max_kernel_group;
  }
  friend constexpr bool operator==(const kernel_set&, const kernel_set&) = default;

 private:
  static constexpr std::uint64_t bit(int group, dtype_id type) {
    return group < 1 || group > max_kernel_group
               ? 0
               : std::uint64_t{1} << ((group - 1) * dtypes + static_cast<int>(type));
  }
};

/// Every group kernel: the default of decode, for views of any model.
inline constexpr kernel_set all_kernels{};

/// The group kernels that the layers of `Model` run: a kernel per (group, dtype) pair its
/// attention layers have (a layer that reads another's cache runs with the same group).
template <model_type Model>
inline constexpr kernel_set kernels_for = [] {
  kernel_set set = kernel_set::none();
  for (const layer_summary& layer : Model::layer_summaries)
    if (layer.kind != layer_kind::recurrent && layer.kv_heads > 0 &&
        layer.q_heads % layer.kv_heads == 0)
      set = set.with(layer.q_heads / layer.kv_heads, layer.k_type, layer.v_type, layer.latent);
  return set;
}();

}  // namespace kvc::cpu
