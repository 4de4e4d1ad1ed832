#pragma once
// The query rows decode and extend read, in place: a row (one sequence's query token in decode,
// one new token in extend) holds q_heads vectors of k_dim floats, one after another, and rows are
// token_stride floats apart, so that Q is read straight out of a fused QKV projection:
//   kvc::attention::query_rows q{qkv, (q_heads + 2 * kv_heads) * dim};  // Q comes first
//   kvc::cpu::decode(plan, view, q, out, lse, params, workspace, pool);

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ranges>
#include <span>

#include "kvc/cache/errors.hpp"

namespace kvc::attention {

struct query_rows {
  static constexpr std::size_t unknown_size = std::numeric_limits<std::size_t>::max();

  const float* data = nullptr;
  std::int64_t token_stride = 0;    ///< floats from one row to the next (0: q_heads * k_dim)
  std::size_t size = unknown_size;  ///< floats data holds, when it came from a sized range

  constexpr query_rows() = default;
  /// Rows from a pointer: the size is the caller's promise.
  constexpr query_rows(const float* rows, std::int64_t stride = 0) noexcept  // NOLINT
      : data(rows), token_stride(stride) {}
  /// Rows from a contiguous range of floats (std::vector, std::span, std::array): its size is
  /// checked against what the call reads.
  template <std::ranges::contiguous_range Range>
  requires std::same_as < std::ranges::range_value_t<Range>,
  float > constexpr query_rows(const Range& rows, std::int64_t stride = 0) noexcept  // NOLINT
      : data(std::ranges::data(rows)),
  token_stride(stride), size(std::ranges::size(rows)) {}

  /// Returns the floats from one row to the next, for rows of q_heads x k_dim.
  constexpr std::int64_t row_step(int q_heads, int k_dim) const {
    return token_stride != 0 ? token_stride : std::int64_t{q_heads} * k_dim;
  }
  /// Returns the first float of `row`.
  constexpr const float* row(std::int64_t index, int q_heads, int k_dim) const {
    return data + index * row_step(q_heads, k_dim);
  }
};

/// Throws shape_mismatch unless the stride is 0 or at least a row (q_heads x k_dim floats, rows
/// may not overlap) and at most 2^40, and unless a sized range holds `rows` rows.
inline void check_query_rows(const query_rows& q, std::int64_t rows, int q_heads, int k_dim,
                             const char* who) {
  const std::int64_t dense = std::int64_t{q_heads} * k_dim;
  kvc::detail::require(
      q.token_stride == 0 || (q.token_stride >= dense && q.token_stride <= (std::int64_t{1} << 40)),
      cache_errc::shape_mismatch, who, ": q's token_stride ", q.token_stride,
      " is neither 0 (dense) nor at least a row of ", q_heads, " x ", k_dim, " floats");
  if (q.size == query_rows::unknown_size || rows <= 0) return;
  const auto needed = static_cast<std::size_t>((rows - 1) * q.row_step(q_heads, k_dim) + dense);
  kvc::detail::require(q.size >= needed, cache_errc::shape_mismatch, who, ": q holds ", q.size,
                       " floats, ", rows, " rows of ", q_heads, " heads x ", k_dim,
                       " (token_stride ", q.row_step(q_heads, k_dim), ") need ", needed);
}

}  // namespace kvc::attention
