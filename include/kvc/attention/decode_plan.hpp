#pragma once
// The decode plan and workspace: how a batch's decode is split into work items (split-K),
// made once per batch and page table and reused by every layer of the group. One planner for
// every backend: the CPU runs the items on its threads (kvc/backend/cpu/decode.hpp), the
// device kernels run one block per item and KV head (kvc/kernels/decode.hpp). Light on
// purpose: it includes no kernel.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvc/attention/partial_result.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"

namespace kvc::attention {

/// The unit of work along the sequence: a block of 16 key tokens. A decode work item is a
/// range of blocks; a page holds one or more (the last one maybe shorter).
inline constexpr int key_block = 16;

/// Checks that the query heads share the view's KV heads evenly (one group per KV head).
inline void check_query_heads(int q_heads, int kv_heads, const char* who) {
  kvc::detail::require(q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0,
                       cache_errc::shape_mismatch, who, ": ", q_heads, " query heads cannot share ",
                       kv_heads, " KV heads evenly");
}

/// Checks as check_query_heads, and that q_heads are the query heads of the layer the view is of
/// (where the view knows them: a view made by kv_cache::view does).
inline void check_layer_query_heads(const paged_layer_view& view, int q_heads, const char* who) {
  check_query_heads(q_heads, view.geometry.kv_heads, who);
  kvc::detail::require(view.q_heads == 0 || q_heads == view.q_heads, cache_errc::shape_mismatch,
                       who, ": ", q_heads, " query heads, and the view's layer ", view.layer,
                       " has ", view.q_heads);
}

struct decode_plan {
  /// Key blocks [block_begin, block_end) of a sequence: block b is block b % blocks_per_page
  /// of the page of its page-table entry b / blocks_per_page.
  struct item {
    std::int32_t sequence = 0;
    std::int64_t block_begin = 0, block_end = 0;
  };
  std::vector<item> items;               ///< a sequence's splits are consecutive
  std::vector<std::int32_t> first_item;  ///< [sequence]
  std::vector<std::int32_t> splits;      ///< [sequence]
  std::int32_t batch = 0;
  std::uint64_t table_serial = 0;  ///< the page table it was made for (view.serial)
  std::int32_t layer_group = -1;   ///< and its layer group (view.group)
  int page_tokens = 0;
  int q_heads = 0, kv_heads = 0, group = 0, k_dim = 0, v_dim = 0;
  int blocks_per_page = 1;  ///< key blocks of 16 tokens a page, the last one maybe shorter

  /// Returns the floats of an item's partial result (attention::partial_slot).
  std::size_t slot_floats() const {
    return static_cast<std::size_t>(partial_slot{q_heads, v_dim}.floats());
  }
  std::size_t workspace_floats() const { return items.size() * slot_floats(); }
};

namespace detail {

// The plan's shape fields for a view, its arrays emptied (their memory kept).
inline void begin_plan(const paged_layer_view& view, int q_heads, decode_plan& plan,
                       const char* who) {
  const page_geometry& geo = view.geometry;
  check_current(view, who);
  check_layer_query_heads(view, q_heads, who);
  plan.items.clear();
  plan.first_item.clear();
  plan.splits.clear();
  plan.batch = view.batch;
  plan.table_serial = view.serial;
  plan.layer_group = view.group;
  plan.page_tokens = geo.page_tokens;
  plan.q_heads = q_heads;
  plan.kv_heads = geo.kv_heads;
  plan.group = q_heads / geo.kv_heads;
  plan.k_dim = geo.k_dim;
  plan.v_dim = geo.v_dim;
  plan.blocks_per_page = (geo.page_tokens + key_block - 1) / key_block;
}

// Key blocks of sequence s: every kept page but the last is full.
inline std::int64_t sequence_blocks(const paged_layer_view& view, const decode_plan& plan,
                                    std::int32_t s) {
  const std::int32_t entries = view.indptr[s + 1] - view.indptr[s];
  if (entries <= 0) return 0;
  const std::int64_t last_first =
      view.kept(s).logical_page(entries - 1) * view.geometry.page_tokens;
  return std::int64_t{entries - 1} * plan.blocks_per_page +
         (view.seq_lens[s] - last_first + key_block - 1) / key_block;
}

// Sequence s's blocks in `splits` items of about equal size, appended to the plan.
inline void add_items(decode_plan& plan, std::int32_t s, std::int64_t blocks, std::int32_t splits) {
  plan.splits.push_back(splits);
  plan.first_item.push_back(static_cast<std::int32_t>(plan.items.size()));
  for (std::int32_t i = 0; i < splits; ++i)
    plan.items.push_back({s, blocks * i / splits, blocks * (i + 1) / splits});
}

inline std::int64_t min_split_blocks(int min_split_tokens) {
  return std::max<std::int64_t>((std::int64_t{min_split_tokens} + key_block - 1) / key_block, 1);
}

}  // namespace detail

/// Splits the batch's work: at least a few items per worker (a CPU thread), no split shorter
/// than min_split_tokens tokens (rounded to blocks of 16), whatever the page size. Refills
/// `plan`, reusing its memory (a warm plan allocates nothing).
inline void plan_decode(const paged_layer_view& view, int q_heads, int threads, decode_plan& plan,
                        int min_split_tokens = 256, const char* who = "kvc::cpu::plan_decode") {
  detail::begin_plan(view, q_heads, plan, who);
  const std::int64_t min_split_blocks = detail::min_split_blocks(min_split_tokens);
  const std::int64_t wanted_items = 4 * static_cast<std::int64_t>(std::max(threads, 1));
  const std::int64_t base_items = std::max<std::int64_t>(view.batch, 1);
  const std::int64_t wanted_splits = (wanted_items + base_items - 1) / base_items;
  for (std::int32_t s = 0; s < view.batch; ++s) {
    const std::int64_t blocks = detail::sequence_blocks(view, plan, s);
    const std::int64_t by_length = std::max<std::int64_t>(blocks / min_split_blocks, 1);
    detail::add_items(plan, s, blocks,
                      static_cast<std::int32_t>(std::min(wanted_splits, by_length)));
  }
}

/// Plans for the device kernels (FlashInfer's rule, include/flashinfer/attention/
/// scheduler.cuh): a device runs `slots` blocks at once, and each item takes
/// `blocks_per_item` of them (its KV heads and row chunks). When one item a sequence fills the
/// slots, no sequence is split (no merge, no workspace traffic); otherwise every sequence is cut
/// into pieces of `chunk` key blocks, the smallest chunk (at least min_split_tokens) for which
/// all items fit the slots in one wave. Refills `plan`, reusing its memory.
inline void plan_decode_for_slots(const paged_layer_view& view, int q_heads, int blocks_per_item,
                                  int slots, decode_plan& plan, int min_split_tokens = 64,
                                  const char* who = "kvc::kernels::plan_device_decode") {
  detail::begin_plan(view, q_heads, plan, who);
  const std::int64_t per_item = std::max(blocks_per_item, 1);
  const std::int64_t floor = detail::min_split_blocks(min_split_tokens);
  std::int64_t longest = 0;
  for (std::int32_t s = 0; s < view.batch; ++s)
    longest = std::max(longest, detail::sequence_blocks(view, plan, s));
  const auto blocks_of = [&](std::int64_t chunk) {
    std::int64_t total = 0;
    for (std::int32_t s = 0; s < view.batch; ++s)
      total +=
          std::max<std::int64_t>((detail::sequence_blocks(view, plan, s) + chunk - 1) / chunk, 1) *
          per_item;
    return total;
  };
  std::int64_t chunk = std::max(longest, floor);
  if (blocks_of(chunk) <= slots) {
    std::int64_t low = floor;  // the smallest chunk that fits lies in [low, chunk]
    while (low < chunk) {
      const std::int64_t middle = low + (chunk - low) / 2;
      if (blocks_of(middle) <= slots)
        chunk = middle;
      else
        low = middle + 1;
    }
  }
  for (std::int32_t s = 0; s < view.batch; ++s) {
    const std::int64_t blocks = detail::sequence_blocks(view, plan, s);
    detail::add_items(
        plan, s, blocks,
        static_cast<std::int32_t>(std::max<std::int64_t>((blocks + chunk - 1) / chunk, 1)));
  }
}

inline decode_plan plan_decode(const paged_layer_view& view, int q_heads, int threads,
                               int min_split_tokens = 256) {
  decode_plan plan;
  plan_decode(view, q_heads, threads, plan, min_split_tokens);
  return plan;
}

/// Memory for the partial results of a plan; grows only when a plan needs more. reserve()
/// sizes it for a plan ahead of the step (decode then allocates nothing).
struct decode_workspace {
  std::vector<float> partial;
  void reserve(const decode_plan& plan) {
    if (partial.size() < plan.workspace_floats()) partial.resize(plan.workspace_floats());
  }
  float* fit(const decode_plan& plan) {
    reserve(plan);
    return partial.data();
  }
};

/// Throws stale_table unless the view is current (check_current), plan_mismatch unless the
/// plan was made for this view's page table (the same table: a plan serves every layer of one
/// layer group over one table) and shapes, shape_mismatch when the view's layer has another
/// number of query heads than the plan.
inline void check_plan(const decode_plan& plan, const paged_layer_view& view,
                       const char* who = "kvc::cpu::decode") {
  const page_geometry& geo = view.geometry;
  check_current(view, who);
  kvc::detail::require(plan.table_serial == view.serial && plan.layer_group == view.group &&
                           plan.batch == view.batch,
                       cache_errc::plan_mismatch, who, ": the plan was made for page table ",
                       plan.table_serial, " of group ", plan.layer_group, " (", plan.batch,
                       " sequences), the view is of table ", view.serial, " of group ", view.group,
                       " (", view.batch, "); plan once per table");
  kvc::detail::require(plan.kv_heads == geo.kv_heads && plan.k_dim == geo.k_dim &&
                           plan.v_dim == geo.v_dim && plan.page_tokens == geo.page_tokens,
                       cache_errc::plan_mismatch, who,
                       ": the plan was made for another layer shape");
  check_layer_query_heads(view, plan.q_heads, who);
}

/// Throws invalid_argument when the plan has sequences and q, out or lse is null.
inline void check_decode_pointers(const decode_plan& plan, const float* q, const float* out,
                                  const float* lse, const char* who) {
  kvc::detail::require(plan.batch <= 0 || (q != nullptr && out != nullptr && lse != nullptr),
                       cache_errc::invalid_argument, who, ": null q, out or lse");
}

}  // namespace kvc::attention
