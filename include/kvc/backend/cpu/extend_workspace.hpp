#pragma once
// extend()'s workspace: where it stages the new keys and values, and its lists of work. Light
// on purpose, like decode_plan.hpp: a translation unit that calls extend through
// kvc/backend/cpu/compiled.hpp needs the type and not the kernels.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace kvc::cpu {

namespace detail {

struct extend_item {
  std::int32_t sequence = 0;
  std::int32_t kv_head = 0;
  std::int32_t first_token = 0, tokens = 0;  ///< new tokens of the sequence in this tile
};

}  // namespace detail

/// Where extend() stages the new keys and values, and its lists of work; kept between calls,
/// so that a warm workspace allocates nothing.
struct extend_workspace {
  std::vector<std::byte> staged;
  std::vector<std::pair<std::int32_t, std::int32_t>> stage_chunks;  ///< (sequence, first row)
  std::vector<detail::extend_item> items;
  std::byte* fit(std::size_t bytes) {
    if (staged.size() < bytes) staged.resize(bytes);
    return staged.data();
  }
};

}  // namespace kvc::cpu
