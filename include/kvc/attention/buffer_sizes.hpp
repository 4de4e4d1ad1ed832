#pragma once
// The sizes of the buffers decode and extend read and write, checked for the entry points
// that take sized spans (kvc::cpu::decode, kvc::cpu::extend): a buffer too small is a
// cache_error, not an overflow. Light, like decode_plan.hpp.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"

namespace kvc::attention {

/// Throws shape_mismatch unless q, out and lse hold at least what the plan's decode reads and
/// writes: batch rows of [q_heads][k_dim] (token_stride apart), [batch][q_heads][v_dim] and
/// [batch][q_heads] floats.
inline void check_decode_sizes(const decode_plan& plan, const query_rows& q, std::size_t out,
                               std::size_t lse, const char* who) {
  const auto rows = static_cast<std::size_t>(plan.batch) * static_cast<std::size_t>(plan.q_heads);
  const auto check = [&](const char* name, std::size_t given, std::size_t needed) {
    kvc::detail::require(given >= needed, cache_errc::shape_mismatch, who, ": ", name, " holds ",
                         given, " floats, the plan's ", plan.batch, " x ", plan.q_heads,
                         " rows need ", needed);
  };
  check_query_rows(q, plan.batch, plan.q_heads, plan.k_dim, who);
  check("out", out, rows * static_cast<std::size_t>(plan.v_dim));
  check("lse", lse, rows);
}

/// Throws shape_mismatch unless q, out and lse hold at least what an extend reads and writes:
/// qo_indptr.back() rows of [q_heads][k_dim] (token_stride apart), [q_heads][v_dim] and
/// [q_heads] floats.
inline void check_extend_sizes(const paged_layer_view& view,
                               std::span<const std::int32_t> qo_indptr, int q_heads,
                               const query_rows& q, std::size_t out, std::size_t lse) {
  if (qo_indptr.empty()) return;  // check_qo_indptr names the mistake
  const auto rows = static_cast<std::size_t>(std::max(qo_indptr.back(), 0)) *
                    static_cast<std::size_t>(std::max(q_heads, 0));
  const auto check = [&](const char* name, std::size_t given, std::size_t needed) {
    kvc::detail::require(given >= needed, cache_errc::shape_mismatch, "kvc::cpu::extend: ", name,
                         " holds ", given, " floats, ", qo_indptr.back(), " rows of ", q_heads,
                         " heads need ", needed);
  };
  check_query_rows(q, qo_indptr.back(), q_heads, view.geometry.k_dim, "kvc::cpu::extend");
  check("out", out, rows * static_cast<std::size_t>(view.geometry.v_dim));
  check("lse", lse, rows);
}

}  // namespace kvc::attention
