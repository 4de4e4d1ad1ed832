#pragma once
// What the device extend (prefill) kernel shares with its launchers: the plan that cuts a
// step's query rows into tiles, the work of one launch and its checks.
//
//   kernels::extend_plan plan;
//   kernels::plan_extend(view, token_indptr, q_heads, rows_per_tile, plan);  // once per step
//   auto work = kernels::make_extend_work<shape>(plan, tiles, view, token_indptr, q, out, lse,
//                                                params);                  // every layer
//
// The rows of one KV head of one sequence are its new tokens times the head's query group,
// token-major (row t * group + g is query head g of the group at new token t). A tile is
// rows_per_tile consecutive rows; the plan lists (sequence, first row) for every tile, those
// with the most keys to read first, so that the short ones end the launch and balance the SMs.

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::kernels {

/// One tile of query rows: rows [first_row, first_row + rows_per_tile) of one sequence, in
/// every KV head (the launch's y dimension).
struct extend_tile {
  std::int32_t sequence = 0;
  std::int32_t first_row = 0;
};

/// The tiles of one step, for every layer of a group that has the plan's query heads: made on
/// the host from a view whose table arrays are host memory, it records which table, group and
/// window it was made for, so that a launch over another (host or device view) is refused.
struct extend_plan {
  std::vector<extend_tile> tiles;
  std::vector<std::int64_t> token_indptr;  ///< the step's new-token offsets it was made for
  std::int32_t q_heads = 0, kv_heads = 0, rows_per_tile = 0;
  std::uint64_t table_serial = 0;  ///< the view's table (page_table_csr::serial)
  std::int32_t layer_group = -1, batch = 0;
  window_shape window{};
  std::uint64_t serial = 0;  ///< counts the plans made into this object (device uploads check it)
};

/// Cuts a step's rows into tiles of rows_per_tile (the kernel's: extend_mma::rows). `view`
/// is the step's view of a layer of the group with its table arrays in host memory
/// (cache.view(layer, table)), token_indptr (batch + 1 entries, host memory) its new-token
/// offsets, as the append kernel takes them. Refills `plan`, reusing its memory. Throws
/// invalid_argument for offsets that do not fit the view, or a window layer whose view no
/// longer keeps what a sequence's first new row sees: after a step of r new tokens it keeps
/// its window plus the rollback reserve, so r - 1 reserve tokens at least (as cpu::extend over a
/// step's view); shape_mismatch for q_heads that are not a multiple of the layer's KV heads. A
/// refused input leaves the plan as it was.
inline void plan_extend(const paged_layer_view& view, std::span<const std::int64_t> token_indptr,
                        int q_heads, int rows_per_tile, extend_plan& plan,
                        const char* who = "kvc::kernels::plan_extend") {
  const page_geometry& geo = view.geometry;
  check_current(view, who);
  kvc::detail::require(q_heads > 0 && geo.kv_heads > 0 && q_heads % geo.kv_heads == 0,
                       cache_errc::shape_mismatch, who, ": ", q_heads,
                       " query heads over the layer's ", geo.kv_heads, " KV heads");
  kvc::detail::require(rows_per_tile > 0, cache_errc::invalid_argument, who,
                       ": tiles of at least one row");
  kvc::detail::require(static_cast<std::int64_t>(token_indptr.size()) == view.batch + 1 &&
                           token_indptr.front() == 0 &&
                           std::is_sorted(token_indptr.begin(), token_indptr.end()),
                       cache_errc::invalid_argument, who,
                       ": token_indptr must have one entry per sequence of the view, plus one, "
                       "start at 0 and never decrease");
  kvc::detail::require(
      view.live_epoch == nullptr || view.new_tokens < 0 || view.new_tokens == token_indptr.back(),
      cache_errc::invalid_argument, who, ": the step has ", view.new_tokens,
      " new tokens, token_indptr counts ", token_indptr.back());
  const std::int64_t group = q_heads / geo.kv_heads;
  const window_shape& window = view.window;
  for (std::int32_t b = 0; b < view.batch; ++b) {
    const std::int64_t tokens =
        token_indptr[static_cast<std::size_t>(b) + 1] - token_indptr[static_cast<std::size_t>(b)];
    const std::int64_t length = view.seq_lens[b];
    kvc::detail::require(tokens <= length, cache_errc::invalid_argument, who, ": sequence ", b,
                         " has ", length, " tokens in the view, not ", tokens, " new ones");
    kvc::detail::require(tokens * group <= INT32_MAX, cache_errc::invalid_argument, who,
                         ": sequence ", b, " has more than 2^31 query rows");
    // The rows see [recent_begin(first + 1), length) besides the sinks; the view keeps the
    // sinks and [keep_begin(length), length).
    kvc::detail::require(
        tokens <= 0 || !window.bounded() ||
            window.keep_begin(length) <=
                std::max(window.recent_begin(length - tokens + 1), window.sink_end(length)),
        cache_errc::invalid_argument, who, ": the step's view of sequence ", b,
        " no longer keeps what its first new row sees (", tokens,
        " rows over a bounded window); build the cache with a rollback reserve of at least ",
        tokens - 1, ", or extend in steps of at most reserve + 1 tokens");
  }
  plan.table_serial = view.serial;
  plan.layer_group = view.group;
  plan.batch = view.batch;
  plan.window = window;
  ++plan.serial;
  plan.tiles.clear();
  plan.token_indptr.assign(token_indptr.begin(), token_indptr.end());
  plan.q_heads = q_heads;
  plan.kv_heads = geo.kv_heads;
  plan.rows_per_tile = rows_per_tile;
  for (std::int32_t b = 0; b < view.batch; ++b) {
    const std::int64_t rows = (token_indptr[static_cast<std::size_t>(b) + 1] -
                               token_indptr[static_cast<std::size_t>(b)]) *
                              group;
    for (std::int64_t first = 0; first < rows; first += rows_per_tile)
      plan.tiles.push_back({b, static_cast<std::int32_t>(first)});
  }
  // The most keys first: a tile reads up to its last row's position (and no further back than
  // its first row's window), so sort by that end, longest first; ties keep the order above.
  const auto end_of = [&](const extend_tile& t) {
    const auto b = static_cast<std::size_t>(t.sequence);
    const std::int64_t tokens = token_indptr[b + 1] - token_indptr[b];
    const std::int64_t last_row =
        std::min<std::int64_t>(t.first_row + rows_per_tile, tokens * group) - 1;
    const std::int64_t last = view.seq_lens[t.sequence] - tokens + last_row / group;
    const std::int64_t first = view.seq_lens[t.sequence] - tokens + t.first_row / group;
    return last + 1 - view.window.recent_begin(first + 1) + view.window.sink_end(last + 1);
  };
  std::stable_sort(
      plan.tiles.begin(), plan.tiles.end(),
      [&](const extend_tile& a, const extend_tile& b) { return end_of(a) > end_of(b); });
}

/// What one extend launch reads and writes: one layer, one plan. Plain pointers and counts,
/// trivially copyable; every array is the engine's (device memory on a GPU).
struct extend_work {
  const std::byte* memory = nullptr;  ///< page p of the layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};
  float k_scale = 1.0f, v_scale = 1.0f;  ///< fp8 only: the layer's scales
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int64_t* seq_lens = nullptr;
  const std::int64_t* token_indptr = nullptr;  ///< [batch + 1]: the step's new tokens
  const extend_tile* tiles = nullptr;
  std::int32_t tile_count = 0;
  const float* q = nullptr;   ///< a row of [q_heads][k_dim] per new token, q_stride floats apart
  std::int64_t q_stride = 0;  ///< floats from one token's query row to the next
  std::int32_t q_heads = 0;
  float scale = 1.0f, softcap = 0.0f;
  const float* sink_logits = nullptr;  ///< [q_heads] or null
  float* out = nullptr;                ///< [new tokens][q_heads][v_dim]
  float* lse = nullptr;                ///< [new tokens][q_heads], natural log
};

/// Returns the work of an extend launch, checked before anything is launched (throwing
/// cache_error), without reading the view's arrays (device memory on a GPU): the view current
/// (stale_table) and of a layer of Shape (shape_mismatch: dtypes, dims, layout, page size, a
/// window only if Shape masks), the plan made for its table, group, window, query heads and
/// this step's offsets with the kernel's tile (plan_mismatch), q, out, lse and the offsets
/// given and page memory 16-byte aligned (invalid_argument). `tiles` are the plan's tiles where
/// the kernel reads them; token_indptr (host) the step's offsets, device_token_indptr the same
/// in the kernel's memory.
template <class Shape>
extend_work make_extend_work(const extend_plan& plan, const extend_tile* tiles,
                             const paged_layer_view& view,
                             std::span<const std::int64_t> token_indptr,
                             const std::int64_t* device_token_indptr, attention::query_rows q,
                             float* out, float* lse, const attention::attention_params& params,
                             int rows_per_tile, const char* who) {
  check_current(view, who);
  const page_geometry& geo = view.geometry;
  check_kernel_shape<Shape>(view, who);
  const window_shape& window = view.window;
  kvc::detail::require(
      plan.table_serial == view.serial && plan.layer_group == view.group &&
          plan.batch == view.batch && plan.window.kind == window.kind &&
          plan.window.tokens == window.tokens && plan.window.sink_tokens == window.sink_tokens &&
          plan.window.reserve == window.reserve,
      cache_errc::plan_mismatch, who, ": the plan was made for page table ", plan.table_serial,
      " of group ", plan.layer_group, " (", plan.batch, " sequences), the view is of table ",
      view.serial, " of group ", view.group, " (", view.batch, "); plan once per step");
  kvc::detail::require(plan.q_heads == Shape::group * geo.kv_heads && plan.kv_heads == geo.kv_heads,
                       cache_errc::shape_mismatch, who, ": the kernel takes groups of ",
                       Shape::group, " query heads per KV head, the plan ", plan.q_heads,
                       " query heads over ", plan.kv_heads);
  kvc::detail::require(
      plan.rows_per_tile == rows_per_tile &&
          std::equal(token_indptr.begin(), token_indptr.end(), plan.token_indptr.begin(),
                     plan.token_indptr.end()),
      cache_errc::plan_mismatch, who,
      ": the plan was made for other new tokens or another kernel's tile; plan the step again");
  kvc::detail::require(reinterpret_cast<std::uintptr_t>(view.memory) % 16 == 0,
                       cache_errc::invalid_argument, who, ": page memory must be 16-byte aligned");
  const std::int64_t rows = token_indptr.back();
  kvc::detail::require(rows == 0 || (q.data != nullptr && out != nullptr && lse != nullptr &&
                                     device_token_indptr != nullptr && tiles != nullptr),
                       cache_errc::invalid_argument, who,
                       ": null q, out, lse, token_indptr or tiles");
  attention::check_query_rows(q, rows, plan.q_heads, geo.k_dim, who);
  extend_work w;
  w.memory = view.memory;
  w.geometry = geo;
  w.window = view.window;
  w.k_scale = view.k_scale;
  w.v_scale = view.v_scale;
  w.indptr = view.indptr;
  w.indices = view.indices;
  w.seq_lens = view.seq_lens;
  w.token_indptr = device_token_indptr;
  w.tiles = tiles;
  w.tile_count = static_cast<std::int32_t>(plan.tiles.size());
  w.q = q.data;
  w.q_stride = q.row_step(plan.q_heads, geo.k_dim);
  w.q_heads = plan.q_heads;
  w.scale = params.scale;
  w.softcap = params.softcap;
  w.sink_logits = params.sink_logits;
  w.out = out;
  w.lse = lse;
  return w;
}

}  // namespace kvc::kernels
