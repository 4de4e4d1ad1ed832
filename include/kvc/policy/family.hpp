#pragma once
// Every policy names the family it belongs to, so that layer<...> can take its
// policies in any order and say which one is missing or given twice.

#include <concepts>
#include <type_traits>

namespace kvc {

enum class policy_family {
  head_sharing,
  head_dims,
  latent_compression,
  window,
  storage,
  logit_softcap,
  sink_logits,
  softmax_scale,
};

template <class T>
concept policy = requires {
  { T::family } -> std::convertible_to<policy_family>;
};

namespace detail {

// True when T is a policy of family F; false for any other type, policy or not, so
// that a stray type among a layer's policies yields one clear error, not many.
template <class T>
consteval bool in_family(policy_family f) {
  if constexpr (policy<T>) {
    return T::family == f;
  } else {
    return false;
  }
}

// The policy of family F among Ps, or Default when none is given.
template <policy_family F, class Default, class... Ps>
struct find_family {
  using type = Default;
};
template <policy_family F, class Default, class P, class... Rest>
struct find_family<F, Default, P, Rest...> {
  using type =
      std::conditional_t<in_family<P>(F), P, typename find_family<F, Default, Rest...>::type>;
};
template <policy_family F, class Default, class... Ps>
using find_family_t = typename find_family<F, Default, Ps...>::type;

// A placeholder for "no policy of this family was given".
struct absent {};

template <class...>
inline constexpr bool dependent_false = false;

}  // namespace detail
}  // namespace kvc
