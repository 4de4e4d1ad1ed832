#pragma once
// Decode on the CPU: one query token per sequence (the last one the view holds), over a
// paged layer view.
//
//   auto plan = kvc::cpu::plan_decode(view, q_heads, threads);   // once per batch
//   kvc::cpu::decode_workspace workspace;                          // reused
//   kvc::cpu::decode(plan, view, q, out, lse, params, workspace, pool);  // every layer
//
// q is [batch][q_heads][k_dim], out [batch][q_heads][v_dim], lse [batch][q_heads] (natural
// log). Each work item is one KV head of one sequence over a range of its pages, so a KV
// head is read once for its whole query group, and a long sequence is split over threads
// (split-K) even for a batch of one; the splits are merged with the online-softmax merge.
// Learned sink logits join the denominator once, after the merge.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/backend/cpu/attend.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/numeric/host_vector.hpp"

namespace kvc::cpu {

struct decode_plan {
  struct item {
    std::int32_t sequence = 0;
    std::int32_t kv_head = 0;
    std::int32_t entry_begin = 0, entry_end = 0;  ///< page-table entries of the sequence
    std::int32_t slot = 0;                        ///< where its partial result goes
  };
  std::vector<item> items;
  std::vector<std::int32_t> first_slot;  ///< [sequence][kv_head]: its first split's slot
  std::vector<std::int32_t> splits;      ///< [sequence]
  std::int32_t batch = 0;
  int q_heads = 0, kv_heads = 0, group = 0, k_dim = 0, v_dim = 0;

  std::size_t slot_floats() const { return static_cast<std::size_t>(group) * (v_dim + 2); }
  std::size_t workspace_floats() const { return items.size() * slot_floats(); }
};

/// Splits the batch's work: at least a few items per thread, no split shorter than
/// min_split_pages pages.
inline decode_plan plan_decode(const paged_layer_view& view, int q_heads, int threads,
                               int min_split_pages = 16) {
  decode_plan plan;
  const page_geometry& geo = view.geometry;
  plan.batch = view.batch;
  plan.q_heads = q_heads;
  plan.kv_heads = geo.kv_heads;
  plan.group = q_heads / geo.kv_heads;
  plan.k_dim = geo.k_dim;
  plan.v_dim = geo.v_dim;
  const std::int64_t wanted_items = 4 * static_cast<std::int64_t>(std::max(threads, 1));
  const std::int64_t base_items =
      std::max<std::int64_t>(std::int64_t{view.batch} * geo.kv_heads, 1);
  const std::int64_t wanted_splits = (wanted_items + base_items - 1) / base_items;
  for (std::int32_t s = 0; s < view.batch; ++s) {
    const std::int32_t entries = view.indptr[s + 1] - view.indptr[s];
    const std::int64_t by_length =
        std::max<std::int64_t>(entries / std::max(min_split_pages, 1), 1);
    const auto splits = static_cast<std::int32_t>(std::min(wanted_splits, by_length));
    plan.splits.push_back(splits);
    for (int h = 0; h < geo.kv_heads; ++h) {
      plan.first_slot.push_back(static_cast<std::int32_t>(plan.items.size()));
      for (std::int32_t i = 0; i < splits; ++i)
        plan.items.push_back({s, h, static_cast<std::int32_t>(std::int64_t{entries} * i / splits),
                              static_cast<std::int32_t>(std::int64_t{entries} * (i + 1) / splits),
                              static_cast<std::int32_t>(plan.items.size())});
    }
  }
  return plan;
}

/// Memory for the partial results of a plan; grows only when a plan needs more.
struct decode_workspace {
  std::vector<float> partial;
  float* fit(const decode_plan& plan) {
    if (partial.size() < plan.workspace_floats()) partial.resize(plan.workspace_floats());
    return partial.data();
  }
};

namespace detail {

// Dequantizes `count` vectors of one head from a page into floats [count][dim].
inline void load_block(const page_geometry& geo, const std::byte* page, int head, int first_token,
                       int count, bool keys, float fp8_scale, float* out) {
  const dtype_id type = keys ? geo.k_type : geo.v_type;
  const int dim = keys ? geo.k_dim : geo.v_dim;
  for (int t = 0; t < count; ++t) {
    const int token = first_token + t;
    const std::uint64_t values = keys ? geo.k_offset(token, head) : geo.v_offset(token, head);
    const std::uint64_t scale =
        keys ? geo.k_scale_offset(token, head) : geo.v_scale_offset(token, head);
    numeric::load_converted(type, page + values, reinterpret_cast<const float*>(page + scale), dim,
                            fp8_scale, out + t * dim);
  }
}

// One KV head of one sequence over a range of its kept pages: the group's rows, in `rows`.
inline void decode_pages(const paged_layer_view& view, std::int32_t sequence, int kv_head,
                         std::int32_t entry_begin, std::int32_t entry_end, const row_block& rows,
                         float softcap, const block_kernels& kernels) {
  const page_geometry& geo = view.geometry;
  thread_buffers& buffers = thread_buffers::mine();
  float* keys = thread_buffers::fit(buffers.keys, static_cast<std::size_t>(key_block) * geo.k_dim);
  float* values = geo.latent ? keys
                             : thread_buffers::fit(buffers.values,
                                                   static_cast<std::size_t>(key_block) * geo.v_dim);
  float* scores =
      thread_buffers::fit(buffers.scores, static_cast<std::size_t>(rows.rows) * key_block);
  const std::int64_t length = view.seq_lens[sequence];
  const auto kept = view.kept(sequence);
  for (std::int32_t entry = entry_begin; entry < entry_end; ++entry) {
    const std::byte* page =
        view.memory +
        static_cast<std::uint64_t>(view.indices[view.indptr[sequence] + entry]) * geo.page_bytes;
    const std::int64_t first_position = kept.logical_page(entry) * geo.page_tokens;
    const int tokens =
        static_cast<int>(std::min<std::int64_t>(geo.page_tokens, length - first_position));
    for (int start = 0; start < tokens; start += key_block) {
      const int count = std::min(key_block, tokens - start);
      load_block(geo, page, kv_head, start, count, true, view.k_scale, keys);
      if (!geo.latent) load_block(geo, page, kv_head, start, count, false, view.v_scale, values);
      attend_block(kernels, rows, keys, geo.k_dim, values, geo.latent ? geo.k_dim : geo.v_dim,
                   count, first_position + start, view.window, softcap, scores);
    }
  }
}

}  // namespace detail

inline void decode(const decode_plan& plan, const paged_layer_view& view, const float* q,
                   float* out, float* lse, const attention::attention_params& params,
                   decode_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for()) {
  const int group = plan.group, k_dim = plan.k_dim, v_dim = plan.v_dim;
  float* partial = workspace.fit(plan);
  const block_kernels kernels = block_kernels::for_dims(k_dim, v_dim);
  const auto run_item = [&](std::size_t index) {
    const decode_plan::item& item = plan.items[index];
    thread_buffers& buffers = thread_buffers::mine();
    float* scaled = thread_buffers::fit(buffers.q, static_cast<std::size_t>(group) * k_dim);
    std::int64_t* positions =
        thread_buffers::fit(buffers.positions, static_cast<std::size_t>(group));
    const float* q_rows = q + (static_cast<std::size_t>(item.sequence) * plan.q_heads +
                               static_cast<std::size_t>(item.kv_head) * group) *
                                  k_dim;
    for (int i = 0; i < group * k_dim; ++i) scaled[i] = q_rows[i] * params.scale;
    for (int g = 0; g < group; ++g) positions[g] = view.seq_lens[item.sequence] - 1;
    float* slot = partial + static_cast<std::size_t>(item.slot) * plan.slot_floats();
    const row_block rows{group,
                         k_dim,
                         v_dim,
                         scaled,
                         positions,
                         slot,
                         slot + group * v_dim,
                         slot + group * v_dim + group};
    rows.reset();
    detail::decode_pages(view, item.sequence, item.kv_head, item.entry_begin, item.entry_end, rows,
                         params.softcap, kernels);
  };
  parallel(plan.items.size(), run_item);

  // Merge each head's splits, then its sink.
  const auto finish = [&](std::size_t index) {
    const auto sequence =
        static_cast<std::int32_t>(index / static_cast<std::size_t>(plan.kv_heads));
    const int kv_head = static_cast<int>(index % static_cast<std::size_t>(plan.kv_heads));
    const float* first =
        partial + static_cast<std::size_t>(plan.first_slot[index]) * plan.slot_floats();
    for (int g = 0; g < group; ++g) {
      const int head = kv_head * group + g;
      const std::size_t row =
          static_cast<std::size_t>(sequence) * plan.q_heads + static_cast<std::size_t>(head);
      finish_row(first + group * v_dim + g, first + group * v_dim + group + g, first + g * v_dim,
                 plan.splits[static_cast<std::size_t>(sequence)], plan.slot_floats(), v_dim,
                 out + row * v_dim, lse + row);
      if (params.sink_logits != nullptr)
        apply_sink(params.sink_logits[head], v_dim, out + row * v_dim, lse + row);
    }
  };
  parallel(static_cast<std::size_t>(plan.batch) * plan.kv_heads, finish);
}

/// Plans, allocates and runs in one call (for tests and one-off use).
inline void decode(const paged_layer_view& view, int q_heads, const float* q, float* out,
                   float* lse, const attention::attention_params& params,
                   parallel_for_ref parallel = default_parallel_for()) {
  const decode_plan plan = plan_decode(view, q_heads, parallel.threads());
  decode_workspace workspace;
  decode(plan, view, q, out, lse, params, workspace, parallel);
}

}  // namespace kvc::cpu
