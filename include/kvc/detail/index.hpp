#pragma once
// Element access by a signed index. kvc counts layers, groups, heads, slots and tokens in
// signed integers (their differences are meaningful and -1 is "none"); the standard
// containers index by std::size_t. Doing the one conversion here keeps the headers free of
// -Wsign-conversion warnings under an engine's strict flags without a cast at every use.
// Callers have checked the index is in range (and so not negative).

#include <array>
#include <concepts>
#include <cstddef>

namespace kvc::detail {

/// Returns the index as a std::size_t (an array extent, a container index, a byte count).
template <std::integral I>
constexpr std::size_t to_size(I i) noexcept {
  return static_cast<std::size_t>(i);
}

/// Returns `container[i]` for a signed or unsigned integer index.
template <class Container, std::integral I>
constexpr decltype(auto) at(Container& container, I i) noexcept {
  return container[static_cast<std::size_t>(i)];
}

/// std::array of N elements indexed by a signed count: per-layer and per-group tables, where
/// N is Model::num_layers or the number of groups (an int).
template <class T, int N>
struct signed_array : std::array<T, static_cast<std::size_t>(N)> {
  using base = std::array<T, static_cast<std::size_t>(N)>;
  using base::operator[];
  template <std::signed_integral I>
  constexpr T& operator[](I i) noexcept {
    return base::operator[](static_cast<std::size_t>(i));
  }
  template <std::signed_integral I>
  constexpr const T& operator[](I i) const noexcept {
    return base::operator[](static_cast<std::size_t>(i));
  }
};

}  // namespace kvc::detail
