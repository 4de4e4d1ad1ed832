#pragma once
// unroll<N>(f) calls f(std::integral_constant<int, 0>{}) ... f(std::integral_constant<int, N - 1>{})
// in order, as straight-line code: a loop every compiler unrolls, with its index a constant
// expression in each copy (so that indexing a register array never needs local memory).

#include <type_traits>
#include <utility>

#include "kvc/config.hpp"

namespace kvc::kernels {

namespace detail {
template <class F, int... I>
KVC_HOST_DEVICE constexpr void unroll_sequence(F& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
}  // namespace detail

template <int N, class F>
KVC_HOST_DEVICE constexpr void unroll(F&& f) {
  detail::unroll_sequence(f, std::make_integer_sequence<int, N>{});
}

}  // namespace kvc::kernels
