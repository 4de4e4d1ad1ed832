#pragma once
// Decode on the CPU: one query token per sequence (the last one the view holds), over a
// paged layer view.
//
//   auto plan = kvc::cpu::plan_decode(view, q_heads, threads);   // once per batch
//   kvc::cpu::decode_workspace workspace;                          // reused
//   kvc::cpu::decode(plan, view, q, out, lse, params, workspace, pool);  // every layer
//   kvc::cpu::decode(plan, view, q, out, lse, params, workspace, pool, options);  // cpu_options:
//       the features the kernels may use and the numerics options (kernel_choice.hpp)
//
// q is [batch][q_heads][k_dim] (a query_rows: its rows may be token_stride floats apart, as in
// a fused QKV projection), out [batch][q_heads][v_dim], lse [batch][q_heads] (natural log). Each
// work item is one sequence over a range of its key blocks (16 tokens; a page holds one or more),
// each KV head read once for its whole query group: groups of up to 8 through group_kernels.hpp,
// straight from the stored dtype, the next block read ahead meanwhile; larger groups and MLA
// through float blocks, every head of a block dequantized in memory order. A long sequence is split
// over threads (split-K) even for a batch of one, and however large its pages (a contiguous cache
// is one page a sequence), and the splits are merged with the online-softmax merge. Learned sink
// logits join the denominator once, after the merge.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cpu/attend.hpp"
#include "kvc/backend/cpu/decode_plan.hpp"
#include "kvc/backend/cpu/group_kernels.hpp"
#include "kvc/backend/cpu/kernel_set.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/numeric/host_vector.hpp"

namespace kvc::cpu {

namespace detail {

// Dequantizes tokens [first_token, first_token + count) of every head of a page into floats
// out[head][token][dim], reading the page in memory order (token-major for NHD, head-major
// for HND). `load` converts one vector; the dtype is resolved once per block.
template <class Load>
[[gnu::always_inline]] inline void for_each_vector(const page_geometry& geo, int first_token,
                                                   int count, int head_begin, int head_end,
                                                   bool keys, float* out, Load&& load) {
  const int dim = keys ? geo.k_dim : geo.v_dim;
  const auto one = [&](int kv_head, int t) {
    const int token = first_token + t;
    load(keys ? geo.k_offset(token, kv_head) : geo.v_offset(token, kv_head),
         keys ? geo.k_scale_offset(token, kv_head) : geo.v_scale_offset(token, kv_head),
         out + (std::ptrdiff_t{kv_head - head_begin} * key_block + t) * dim);
  };
  if (geo.layout == page_layout::nhd) {
    for (int t = 0; t < count; ++t)
      for (int head = head_begin; head < head_end; ++head) one(head, t);
  } else {
    for (int head = head_begin; head < head_end; ++head)
      for (int t = 0; t < count; ++t) one(head, t);
  }
}

inline void load_block_portable(const page_geometry& geo, const std::byte* page, int first_token,
                                int count, int head_begin, int head_end, bool keys, float fp8_scale,
                                float* out) {
  const dtype_id type = keys ? geo.k_type : geo.v_type;
  const int dim = keys ? geo.k_dim : geo.v_dim;
  for_each_vector(geo, first_token, count, head_begin, head_end, keys, out,
                  [&](std::uint64_t value_offset, std::uint64_t scale_offset, float* destination) {
                    numeric::load_vector(type, page + value_offset,
                                         reinterpret_cast<const float*>(page + scale_offset), dim,
                                         fp8_scale, destination);
                  });
}

#if defined(KVC_X86_SIMD)
template <dtype_id Type>
[[gnu::target("avx2,f16c")]] void load_block_x86(const page_geometry& geo, const std::byte* page,
                                                 int first_token, int count, int head_begin,
                                                 int head_end, bool keys, float fp8_scale,
                                                 float* out) {
  const int dim = keys ? geo.k_dim : geo.v_dim;
  for_each_vector(geo, first_token, count, head_begin, head_end, keys, out,
                  [&](std::uint64_t value_offset, std::uint64_t scale_offset, float* destination) {
                    numeric::x86::load_converted(
                        Type, page + value_offset,
                        reinterpret_cast<const float*>(page + scale_offset), dim, fp8_scale,
                        destination);
                  });
}
#endif

/// Loads heads [head_begin, head_end) of tokens [first_token, first_token + count) of a page, as
/// floats out[head - head_begin][token][dim], with the loads `isa` names (choose_kernels
/// names AVX2 only for dims that are a multiple of 8).
inline void load_block(const page_geometry& geo, const std::byte* page, int first_token, int count,
                       int head_begin, int head_end, bool keys, float fp8_scale, float* out,
                       cpu_isa isa) {
#if defined(KVC_X86_SIMD)
  if (isa != cpu_isa::portable) {
    visit_dtype(keys ? geo.k_type : geo.v_type, [&](auto type) {
      load_block_x86<decltype(type)::id>(geo, page, first_token, count, head_begin, head_end, keys,
                                         fp8_scale, out);
    });
    return;
  }
#else
  (void)isa;
#endif
  load_block_portable(geo, page, first_token, count, head_begin, head_end, keys, fp8_scale, out);
}

// Calls f(page, next_page, first_position, token_begin, token_end) for each page that an
// item's key blocks touch, with the tokens of the page they cover; next_page is the item's
// following page, null for its last.
template <class F>
void for_each_page(const paged_layer_view& view, const decode_plan& plan,
                   const decode_plan::item& item, F&& f) {
  if (item.block_begin >= item.block_end) return;
  const page_geometry& geo = view.geometry;
  const std::int64_t length = view.seq_lens[item.sequence];
  const auto kept = view.kept(item.sequence);
  const auto page_at = [&](std::int64_t table_entry) {
    return view.memory +
           static_cast<std::uint64_t>(view.indices[view.indptr[item.sequence] + table_entry]) *
               geo.page_bytes;
  };
  const std::int64_t first_entry = item.block_begin / plan.blocks_per_page;
  const std::int64_t last_entry = (item.block_end - 1) / plan.blocks_per_page;
  for (std::int64_t entry = first_entry; entry <= last_entry; ++entry) {
    const std::int64_t first_position = kept.logical_page(entry) * geo.page_tokens;
    const auto tokens =
        static_cast<int>(std::min<std::int64_t>(geo.page_tokens, length - first_position));
    const int token_begin =
        entry == first_entry ? static_cast<int>(item.block_begin % plan.blocks_per_page) * key_block
                             : 0;
    const int token_end =
        entry == last_entry
            ? std::min(tokens, static_cast<int>((item.block_end - 1) % plan.blocks_per_page + 1) *
                                   key_block)
            : tokens;
    f(page_at(entry), entry < last_entry ? page_at(entry + 1) : nullptr, first_position,
      token_begin, token_end);
  }
}

// The stored vectors and scales of tokens [first_token, first_token + count) of a page.
inline read_ahead block_bytes(const page_geometry& geo, const std::byte* page, int first_token,
                              int count) {
  read_ahead ahead;
  const bool nhd = geo.layout == page_layout::nhd;
  const int heads = geo.kv_heads;
  const auto run = [&](std::uint64_t offset, std::uint64_t next_head_offset,
                       std::uint64_t token_bytes) {
    // NHD: the block's vectors of every head are one run; HND: one piece per head.
    return nhd ? read_ahead::pieces{page + offset,
                                    token_bytes * kvc::detail::to_size(count) *
                                        kvc::detail::to_size(heads),
                                    0, 1}
               : read_ahead::pieces{page + offset, token_bytes * kvc::detail::to_size(count),
                                    next_head_offset - offset, heads};
  };
  const bool k_scaled = dtype_scaling(geo.k_type) == scaling::per_token_head;
  const bool v_scaled = dtype_scaling(geo.v_type) == scaling::per_token_head;
  const int other = heads > 1 ? 1 : 0;
  ahead.runs[0] =
      run(geo.k_offset(first_token, 0), geo.k_offset(first_token, other), geo.k_vector_bytes);
  if (k_scaled)
    ahead.runs[1] = run(geo.k_scale_offset(first_token, 0), geo.k_scale_offset(first_token, other),
                        scale_bytes);
  if (!geo.latent) {
    ahead.runs[2] =
        run(geo.v_offset(first_token, 0), geo.v_offset(first_token, other), geo.v_vector_bytes);
    if (v_scaled)
      ahead.runs[3] = run(geo.v_scale_offset(first_token, 0),
                          geo.v_scale_offset(first_token, other), scale_bytes);
  }
  return ahead;
}

// One item (a sequence's range of key blocks), through float blocks (any group, MLA);
// `all` holds all q_heads rows (group rows per KV head, consecutive).
inline void decode_pages(const paged_layer_view& view, const decode_plan& plan,
                         const decode_plan::item& item, const row_block& all, float softcap,
                         const block_kernels& kernels) {
  const page_geometry& geo = view.geometry;
  const int heads = geo.kv_heads, group = all.rows / heads;
  thread_buffers& buffers = thread_buffers::mine();
  const std::size_t block_floats = static_cast<std::size_t>(heads) * key_block;
  float* keys =
      thread_buffers::fit_aligned(buffers.keys, block_floats * kvc::detail::to_size(geo.k_dim));
  float* values = geo.latent ? keys
                             : thread_buffers::fit_aligned(
                                   buffers.values, block_floats * kvc::detail::to_size(geo.v_dim));
  float* scores = thread_buffers::fit(buffers.scores, static_cast<std::size_t>(group) * key_block);
  const int value_stride = geo.latent ? geo.k_dim : geo.v_dim;
  for_each_page(view, plan, item,
                [&](const std::byte* page, const std::byte*, std::int64_t first_position,
                    int token_begin, int token_end) {
                  for (int start = token_begin; start < token_end; start += key_block) {
                    const int count = std::min(key_block, token_end - start);
                    load_block(geo, page, start, count, 0, heads, true, view.k_scale, keys,
                               kernels.load_keys);
                    if (!geo.latent)
                      load_block(geo, page, start, count, 0, heads, false, view.v_scale, values,
                                 kernels.load_values);
                    for (int head = 0; head < heads; ++head)
                      attend_block(kernels, all.slice(head * group, group),
                                   keys + std::ptrdiff_t{head} * key_block * geo.k_dim, geo.k_dim,
                                   values + std::ptrdiff_t{head} * key_block * value_stride,
                                   value_stride, count, first_position + start, view.window,
                                   softcap, scores);
                  }
                });
}

// What multiplies raw stored values (numeric::x86::decode8_raw) besides per-vector scales: the
// layer's fp8 scale and the raw unit.
inline float raw_factor(dtype_id type, float layer_scale) {
  return numeric::raw_unit(type) * (dtype_scaling(type) == scaling::per_layer ? layer_scale : 1.0f);
}

// decode_pages for a small group, with the group kernels: per block and KV head, scores from
// the stored keys, the online softmax, then the stored values. The heads of a block go a few
// at a time, so that one softmax call takes up to 8 rows: its kernel reduces eight rows'
// maxima and sums in one go, and with 4 rows (GQA's usual group) half of that went unused.
// q must already carry the keys' raw_factor.
inline void decode_pages_grouped(const paged_layer_view& view, const decode_plan& plan,
                                 const decode_plan::item& item, const row_block& all, float softcap,
                                 const block_kernels& kernels, const group_kernels& grouped) {
  const page_geometry& geo = view.geometry;
  const int heads = geo.kv_heads, group = all.rows / heads;
  const int heads_together = std::max(1, std::min(heads, 8 / group));
  float* scores = thread_buffers::fit(thread_buffers::mine().scores,
                                      kvc::detail::to_size(heads_together * group * key_block));
  const float v_factor = raw_factor(geo.v_type, view.v_scale);
  const bool k_scaled = dtype_scaling(geo.k_type) == scaling::per_token_head;
  const bool v_scaled = v_factor != 1.0f || dtype_scaling(geo.v_type) == scaling::per_token_head;
  // Each token's scale, applied to all of its head's rows' scores or weights: the rows are
  // key_block apart, so a row takes the block's scales in two vector multiplies.
  float column_scale[key_block];
  const auto scale_columns = [&](float* head_scores, int count) {
    for (int r = 0; r < group; ++r)
      for (int t = 0; t < count; ++t) head_scores[r * key_block + t] *= column_scale[t];
  };
  // The next block is read ahead while this one is computed, shared out over the block's
  // kernel calls (a scores and a values call per head).
  const auto calls = 2 * static_cast<std::uint64_t>(heads);
  for_each_page(
      view, plan, item,
      [&](const std::byte* page, const std::byte* next, std::int64_t first_position,
          int token_begin, int token_end) {
        for (int start = token_begin; start < token_end; start += key_block) {
          const int count = std::min(key_block, token_end - start);
          read_ahead ahead;
          if (start + key_block < token_end)
            ahead = block_bytes(geo, page, start + key_block,
                                std::min(key_block, token_end - start - key_block));
          else if (next != nullptr)
            ahead = block_bytes(geo, next, 0, std::min(key_block, geo.page_tokens));
          ahead.lines_per_call = static_cast<int>((ahead.lines() + calls - 1) / calls);
          for (int first_head = 0; first_head < heads; first_head += heads_together) {
            const int together = std::min(heads_together, heads - first_head);
            for (int i = 0; i < together; ++i) {
              const head_vectors keys = head_vectors::of(geo, page, start, first_head + i, true);
              float* head_scores = scores + std::ptrdiff_t{i} * group * key_block;
              grouped.scores(all.slice((first_head + i) * group, group).q, geo.k_dim, keys, count,
                             head_scores, ahead);
              if (k_scaled) {
                for (int t = 0; t < count; ++t) column_scale[t] = keys.scale(t);
                scale_columns(head_scores, count);
              }
            }
            softmax_block(kernels, all.slice(first_head * group, together * group), count,
                          first_position + start, view.window, softcap, scores);
            for (int i = 0; i < together; ++i) {
              const head_vectors values = head_vectors::of(geo, page, start, first_head + i, false);
              float* head_scores = scores + std::ptrdiff_t{i} * group * key_block;
              if (v_scaled) {
                for (int t = 0; t < count; ++t) column_scale[t] = v_factor * values.scale(t);
                scale_columns(head_scores, count);
              }
              grouped.accumulate(head_scores, values, geo.v_dim, count,
                                 all.slice((first_head + i) * group, group).acc, ahead);
            }
          }
        }
      });
}

// decode() once its inputs are checked, with the kernels `choice` names and the group
// kernels `grouped` (kernel_set.hpp picks them; empty: the float blocks).
inline void decode_checked(const decode_plan& plan, const paged_layer_view& view, query_rows q,
                           float* out, float* lse, const attention::attention_params& params,
                           decode_workspace& workspace, parallel_for_ref parallel,
                           const kernel_choice& choice, const group_kernels& grouped) {
  const int k_dim = plan.k_dim, v_dim = plan.v_dim;
  float* partial = workspace.fit(plan);
  const block_kernels kernels = block_kernels::of(choice);
  const float q_scale =
      params.scale *
      (grouped.usable() ? detail::raw_factor(view.geometry.k_type, view.k_scale) : 1.0f);
  const auto run_item = [&](std::size_t index) {
    const decode_plan::item& item = plan.items[index];
    thread_buffers& buffers = thread_buffers::mine();
    const int q_heads = plan.q_heads;
    float* scaled = thread_buffers::fit_aligned(
        buffers.q, kvc::detail::to_size(q_heads) * kvc::detail::to_size(k_dim));
    std::int64_t* positions =
        thread_buffers::fit(buffers.positions, static_cast<std::size_t>(q_heads));
    const float* q_rows = q.row(item.sequence, q_heads, k_dim);
    for (int i = 0; i < q_heads * k_dim; ++i) scaled[i] = q_rows[i] * q_scale;
    if (grouped.prepare_queries != nullptr) grouped.prepare_queries(scaled, q_heads, k_dim);
    for (int h = 0; h < q_heads; ++h) positions[h] = view.seq_lens[item.sequence] - 1;
    const attention::partial_slot partials{q_heads, v_dim};
    float* slot = partial + static_cast<std::int64_t>(index) * partials.floats();
    const row_block rows{q_heads,
                         k_dim,
                         v_dim,
                         scaled,
                         positions,
                         slot + partials.acc(0),
                         slot + partials.m(0),
                         slot + partials.l(0)};
    rows.reset();
    if (grouped.usable())
      detail::decode_pages_grouped(view, plan, item, rows, params.softcap, kernels, grouped);
    else
      detail::decode_pages(view, plan, item, rows, params.softcap, kernels);
  };
  parallel(plan.items.size(), run_item);

  // Merge each sequence's splits, with the sinks.
  const auto finish = [&](std::size_t sequence) {
    const int q_heads = plan.q_heads;
    const attention::partial_slot partials{q_heads, v_dim};
    const float* first = partial + std::int64_t{plan.first_item[sequence]} * partials.floats();
    for (int head = 0; head < q_heads; ++head) {
      const std::size_t row =
          sequence * static_cast<std::size_t>(q_heads) + static_cast<std::size_t>(head);
      finish_row(first + partials.m(head), first + partials.l(head), first + partials.acc(head),
                 plan.splits[sequence], static_cast<std::size_t>(partials.floats()), v_dim,
                 params.sink_logits != nullptr ? params.sink_logits + head : nullptr,
                 out + row * kvc::detail::to_size(v_dim), lse + row);
    }
  };
  parallel(static_cast<std::size_t>(plan.batch), finish);
}

}  // namespace detail

/// Decodes one layer for the plan's batch. q from a pointer, out and lse are trusted for their
/// sizes (null pointers are refused); the span form below checks them. `Kernels`: the group
/// kernels compiled (kernel_set.hpp); a layer it does not hold is a cache_error
/// (plan_mismatch).
template <kernel_set Kernels = all_kernels>
void decode(const decode_plan& plan, const paged_layer_view& view, query_rows q, float* out,
            float* lse, const attention::attention_params& params, decode_workspace& workspace,
            parallel_for_ref parallel = default_parallel_for(), const cpu_options& options = {}) {
  check_plan(plan, view);
  check_decode_pointers(plan, q.data, out, lse, "kvc::cpu::decode");
  check_query_rows(q, plan.batch, plan.q_heads, plan.k_dim, "kvc::cpu::decode");
  kvc::detail::require(Kernels.covers(view.geometry, plan.group), cache_errc::plan_mismatch,
                       "kvc::cpu::decode: the kernel set holds no group kernels for groups of ",
                       plan.group, " query heads over ", dtype_name(view.geometry.k_type),
                       " keys and ", dtype_name(view.geometry.v_type),
                       " values (kernels_for<Model> of another model?)");
  const kernel_choice choice = choose_kernels(view.geometry, plan.group, options);
  detail::decode_checked(plan, view, q, out, lse, params, workspace, parallel, choice,
                         group_kernels::of<Kernels>(choice, view.geometry, plan.group));
}

/// Decodes with sized buffers: q, out or lse smaller than the plan's rows need is a
/// cache_error (shape_mismatch) instead of an overflow. The pointer form above trusts the
/// caller for the sizes (it still refuses null pointers).
template <kernel_set Kernels = all_kernels>
void decode(const decode_plan& plan, const paged_layer_view& view, query_rows q,
            std::span<float> out, std::span<float> lse, const attention::attention_params& params,
            decode_workspace& workspace, parallel_for_ref parallel = default_parallel_for(),
            const cpu_options& options = {}) {
  check_decode_sizes(plan, q, out.size(), lse.size(), "kvc::cpu::decode");
  decode<Kernels>(plan, view, q, out.data(), lse.data(), params, workspace, parallel, options);
}

/// Plans, allocates and runs in one call (for tests and one-off use).
template <kernel_set Kernels = all_kernels>
void decode(const paged_layer_view& view, int q_heads, query_rows q, float* out, float* lse,
            const attention::attention_params& params,
            parallel_for_ref parallel = default_parallel_for(), const cpu_options& options = {}) {
  const decode_plan plan = plan_decode(view, q_heads, parallel.threads());
  decode_workspace workspace;
  decode<Kernels>(plan, view, q, out, lse, params, workspace, parallel, options);
}

}  // namespace kvc::cpu
