#pragma once
// Per-head dimensions of the cached keys and values (they may differ).

#include "kvc/policy/family.hpp"

namespace kvc {

namespace detail {
template <int KeyDim, int ValueDim>
struct head_dim_checks {
  static_assert(KeyDim > 0, "kvc::head_dim<DK, DV>: the key head dim must be positive");
  static_assert(ValueDim > 0, "kvc::head_dim<DK, DV>: the value head dim must be positive");
};
}  // namespace detail

template <int KeyDim, int ValueDim = KeyDim>
struct head_dim {
  static_assert(sizeof(detail::head_dim_checks<KeyDim, ValueDim>) > 0);  // the checks, kept apart

  static constexpr policy_family family = policy_family::head_dims;
  static constexpr int k_dim = KeyDim;
  static constexpr int v_dim = ValueDim;
};

}  // namespace kvc
