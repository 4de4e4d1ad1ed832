#pragma once
// unroll<N>(f) calls f(index<0>{}) ... f(index<N - 1>{}) in order, as straight-line code: a
// loop every compiler unrolls, with its index a constant expression in each copy (so that
// indexing a register array never needs local memory). index<I> converts to int in host and
// device code alike (std::integral_constant's conversion is host-only under nvcc).

#include <utility>

#include "kvc/config.hpp"

namespace kvc::kernels {

template <int I>
struct index {
  static constexpr int value = I;
  KVC_HOST_DEVICE constexpr operator int() const { return I; }
};

namespace detail {
template <class F, int... I>
KVC_HOST_DEVICE constexpr void unroll_sequence(F& f, std::integer_sequence<int, I...>) {
  (f(index<I>{}), ...);
}
}  // namespace detail

template <int N, class F>
KVC_HOST_DEVICE constexpr void unroll(F&& f) {
  detail::unroll_sequence(f, std::make_integer_sequence<int, N>{});
}

}  // namespace kvc::kernels
