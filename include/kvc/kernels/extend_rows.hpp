#pragma once
// What the tensor-core extend kernels (kernels/extend_mma.hpp on mma.sync, kernels/
// extend_wgmma.hpp on wgmma) share about a block's tile of (new token, query head) rows: the
// keys its rows see and the key tiles that cover them, where a key's vectors lie, and which
// scores of a warp's 16 rows a tile masks.

#include <cstddef>
#include <cstdint>

#include "kvc/attention/online_softmax.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/extend_work.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::kernels::detail {

/// What an extend block's threads look up at every key tile, kept in shared memory and read
/// after each barrier rather than held in registers through the loop: 32 rows a warp need
/// nearly all 255 registers for their accumulators and scores.
struct extend_block_bounds {
  std::int64_t row0;            ///< the sequence's first new token, in q and out
  std::int64_t first_position;  ///< its position
  std::int64_t last_row;        ///< the block's last (token, head) row
  std::int64_t last_query, sinks_end, recent_begin;  ///< the keys some row of the block sees
  std::int64_t sink_tiles, recent_first_tile;        ///< the key tiles that cover them
  window_shape::kept_pages kept;                     ///< what the page table lists
  std::int64_t entries_begin;                        ///< the sequence's first entry
};

/// The same for a warp's rows: the first, the positions of the first and last, the keys they
/// see, and from where every row of the warp sees the keys up to the first's position.
struct extend_warp_bounds {
  std::int64_t first_row, first, last, sinks_end, recent_begin, seen_by_all;
};

/// Sets up a block of Threads threads and Rows rows (warps of WarpRows) of Keys-key tiles for its
/// tile of the plan in KV head `head`: stages its query rows (scaled by the softmax scale, the
/// keys' fp8 scale and log2 e, so that scores are in log2 units for exp2; rounded to K's 16-bit
/// type; zeros past the sequence's rows), word (r, d / 2) of row r at place(r, d); thread 0 writes
/// the block's bounds and lane 0 of each warp its own. Returns the key tiles the block reads: those
/// of the sinks of its last row, then from its first row's window start to its last row.
template <class Shape, int Rows, int WarpRows, int Keys, int Threads, class Context, class Place>
KVC_HOST_DEVICE std::int64_t set_up_extend_rows(const Context& ctx, const extend_work& work,
                                                int head, extend_block_bounds& bounds,
                                                extend_warp_bounds* warp_bounds,
                                                const Place& place) {
  using k_type = typename Shape::k_type;
  constexpr mma_input k_input = mma_input_of<k_type>;
  constexpr int group = Shape::group, k_dim = Shape::k_dim;
  constexpr float log2e = 1.4426950408889634f;
  const auto thread = static_cast<int>(ctx.thread_rank());
  const auto lane = static_cast<int>(ctx.lane()), warp = static_cast<int>(ctx.warp());
  const window_shape& window = work.window;
  const extend_tile tile = work.tiles[ctx.block_idx().x];
  const std::int64_t row0 = work.token_indptr[tile.sequence];
  const std::int64_t tokens = work.token_indptr[tile.sequence + 1] - row0;
  const std::int64_t length = work.seq_lens[tile.sequence];
  const std::int64_t first_position = length - tokens;
  const std::int64_t all_rows = tokens * group;
  const std::int64_t last_row =
      (tile.first_row + Rows < all_rows ? tile.first_row + Rows : all_rows) - 1;

  const float q_factor =
      work.scale * log2e * (k_type::scale == scaling::per_layer ? work.k_scale : 1.0f);
  for (int i = thread; i < Rows * (k_dim / 2); i += Threads) {
    const int r = i / (k_dim / 2), d = 2 * (i % (k_dim / 2));
    const std::int64_t row = tile.first_row + r;
    std::uint32_t word = 0;
    if (row <= last_row) {
      const int q_head = head * group + static_cast<int>(row % group);
      const float* q =
          work.q + (row0 + row / group) * work.q_stride + std::int64_t{q_head} * k_dim + d;
      word = mma_pack<k_input>(q[0] * q_factor, q[1] * q_factor);
    }
    *place(r, d) = word;
  }

  const auto position_of = [&](std::int64_t row) { return first_position + row / group; };
  const std::int64_t first_query = position_of(tile.first_row);
  const std::int64_t last_query = position_of(last_row);
  const std::int64_t sinks_end = window.sink_end(last_query + 1);
  const std::int64_t recent_begin = window.recent_begin(first_query + 1);
  const std::int64_t sink_tiles = (sinks_end + Keys - 1) / Keys;
  const std::int64_t recent_first_tile =
      recent_begin / Keys > sink_tiles ? recent_begin / Keys : sink_tiles;
  const std::int64_t end_tile = (last_query + Keys) / Keys;
  const std::int32_t entries_begin = work.indptr[tile.sequence];
  if (thread == 0)
    bounds = {row0,
              first_position,
              last_row,
              last_query,
              sinks_end,
              recent_begin,
              sink_tiles,
              recent_first_tile,
              window.pages_listed(length, work.geometry.page_tokens,
                                  work.indptr[tile.sequence + 1] - entries_begin),
              entries_begin};
  const std::int64_t first_row = tile.first_row + warp * WarpRows;
  const std::int64_t warp_first = position_of(first_row);
  const std::int64_t warp_last =
      position_of(first_row + WarpRows - 1 < last_row ? first_row + WarpRows - 1 : last_row);
  if (lane == 0)
    warp_bounds[warp] = {first_row,
                         warp_first,
                         warp_last,
                         window.sink_end(warp_last + 1),
                         window.recent_begin(warp_first + 1),
                         window.recent_begin(warp_last + 1)};
  return sink_tiles + (end_tile > recent_first_tile ? end_tile - recent_first_tile : 0);
}

/// The first key position of key tile t.
template <int Keys>
KVC_HOST_DEVICE inline std::int64_t extend_tile_start(const extend_block_bounds& bounds,
                                                      std::int64_t t) {
  return (t < bounds.sink_tiles ? t : bounds.recent_first_tile + t - bounds.sink_tiles) * Keys;
}

/// Where key position p's vectors lie for KV head `head`: its page, and the vector's index in
/// the page; no page where no row of the block sees p or the table does not list it.
struct extend_slot_source {
  const std::byte* page = nullptr;
  std::uint64_t vector = 0;
};
template <class Shape>
KVC_HOST_DEVICE extend_slot_source extend_source_of(const extend_work& work,
                                                    const extend_block_bounds& bounds,
                                                    std::int64_t p, int head) {
  const std::int64_t page_tokens =
      Shape::page_tokens > 0 ? Shape::page_tokens : work.geometry.page_tokens;
  extend_slot_source source;
  if (p <= bounds.last_query && (p < bounds.sinks_end || p >= bounds.recent_begin)) {
    const std::int64_t entry = bounds.kept.entry_of(p / page_tokens);
    if (entry >= 0) {
      source.page =
          work.memory + static_cast<std::uint64_t>(work.indices[bounds.entries_begin + entry]) *
                            work.geometry.page_bytes;
      const std::int64_t token = p % page_tokens;
      source.vector = static_cast<std::uint64_t>(Shape::layout == page_layout::nhd
                                                     ? token * work.geometry.kv_heads + head
                                                     : std::int64_t{head} * page_tokens + token);
    }
  }
  return source;
}

/// Masks the scores of a warp's row tile (16 rows from `first_row`, mma.sync's C fragments of
/// KeyBlocks blocks of 8 keys from position `start`) where some key is hidden from some row of
/// the warp (the diagonal, a window's edge, the sinks, a slot not staged, rows past the block's
/// last): a row sees slots up to its own position, and from its window's start on or below its
/// sinks. `mine` are the warp's bounds, WarpRows its rows.
template <class Shape, int WarpRows, std::size_t KeyBlocks>
KVC_HOST_DEVICE void mask_extend_scores(mma_c (&scores)[KeyBlocks], const window_shape& window,
                                        const extend_block_bounds& bounds,
                                        const extend_warp_bounds& mine, std::int64_t first_row,
                                        std::int64_t start, const std::int32_t* held, int lane) {
  constexpr int keys = 8 * static_cast<int>(KeyBlocks);
  const int quad = lane / 4, pair = lane % 4;
  const bool seen_by_all = mine.first_row + WarpRows - 1 <= bounds.last_row &&
                           start >= mine.seen_by_all && start + keys - 1 <= mine.first &&
                           held[0] != 0 && held[keys - 1] != 0;
  if (seen_by_all) return;
  const auto slot_of = [&](std::int64_t p) {
    return static_cast<int>(p < start ? -1 : p - start > keys ? keys : p - start);
  };
  int last[2], recent[2], sinks[2];
  for (int h = 0; h < 2; ++h) {
    const std::int64_t row = first_row + quad + 8 * h;
    const std::int64_t n = bounds.first_position + row / Shape::group + 1;
    last[h] = row <= bounds.last_row ? slot_of(n - 1) : -1;
    recent[h] = Shape::windowed ? slot_of(window.recent_begin(n)) : -1;
    sinks[h] = Shape::windowed ? slot_of(window.sink_end(n)) : -1;
  }
  for (std::size_t n = 0; n < KeyBlocks; ++n)
    for (int i = 0; i < 4; ++i) {
      const int h = i / 2, j = static_cast<int>(n) * 8 + 2 * pair + i % 2;
      if (j > last[h] || (j < recent[h] && j >= sinks[h]) || held[j] == 0)
        scores[n].reg[i] = attention::negative_infinity;
    }
}

}  // namespace kvc::kernels::detail
