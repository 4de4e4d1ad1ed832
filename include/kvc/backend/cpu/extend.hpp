#pragma once
// Prefill and extend on the CPU: many new query tokens per sequence, causal, attending to the
// sequence's cached prefix and to the new tokens themselves.
//
//   kvc::cpu::extend_workspace workspace;  // reused
//   kvc::cpu::extend(prefix, qo_indptr, q_heads, q, new_k, new_v, out, lse, params, workspace,
//                    pool);
//
// `prefix` views the cache as it was before the new tokens (for a step in progress: a page
// table taken before plan_append, or before commit); its seq_lens are the prefix lengths,
// and the new tokens of sequence b sit at positions seq_lens[b], seq_lens[b] + 1, ...
// qo_indptr[b] .. qo_indptr[b + 1] are sequence b's rows of q ([rows][q_heads][k_dim], a
// query_rows whose rows may be token_stride floats apart, as in a fused QKV projection),
// new_k and new_v ([rows][kv_heads][dim], fp32, fp16 or bf16; a latent layer takes no V);
// out is [rows][q_heads][v_dim] and lse [rows][q_heads]. The new keys are used as given, so a
// window that the cache has already slid still sees them.
//
// The new keys and values are first copied, head by head and contiguous, into an
// extend_workspace (rows * kv_heads * (k_dim + v_dim) values of their input dtype; a latent
// layer: k_dim): every tile reads all the new keys before it, and [row][head][dim] vectors a
// few KiB apart defeat the hardware prefetchers and the TLB. Pass one workspace to every call
// to keep it; without one, each call allocates its own.
//
// Work items are one KV head of one sequence over a tile of its new tokens (the tile's rows
// are its tokens times the head's query group); pages that no row of the tile can see are
// skipped, not masked.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cpu/attend.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend_workspace.hpp"
#include "kvc/backend/cpu/group_kernels.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/kv_input.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/numeric/host_vector.hpp"

namespace kvc::cpu {

namespace detail {

// Where the staged vectors of one KV head of one sequence lie: sequence b's region starts at
// qo_indptr[b] * kv_heads rows of K and V; in it, head h's `tokens` keys, then its values.
struct staged_layout {
  std::byte* base = nullptr;
  int kv_heads = 0;
  std::size_t k_row = 0, v_row = 0;  ///< bytes of one vector; v_row 0: a latent layer
  std::byte* keys(std::int32_t row0, std::int32_t tokens, int head) const {
    return base + (static_cast<std::size_t>(row0) * kvc::detail::to_size(kv_heads) +
                   static_cast<std::size_t>(head) * static_cast<std::size_t>(tokens)) *
                      (k_row + v_row);
  }
  std::byte* values(std::int32_t row0, std::int32_t tokens, int head) const {
    return keys(row0, tokens, head) + static_cast<std::size_t>(tokens) * k_row;
  }
};

// Query rows per tile: about 128 (a whole group at least). The tile reads the keys and values
// before it once; 128 rows halve that traffic against 64, 256 measured no better.
inline int tile_tokens(int group) { return std::max(1, 128 / group); }

inline void extend_item_run(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr,
                            const query_rows& q, const staged_layout& staged, dtype_id new_k_type,
                            dtype_id new_v_type, float* out, float* lse,
                            const attention::attention_params& params, const extend_item& item,
                            int q_heads, const block_kernels& kernels) {
  const page_geometry& geo = prefix.geometry;
  const int group = q_heads / geo.kv_heads, k_dim = geo.k_dim, v_dim = geo.v_dim;
  const int rows = item.tokens * group;
  thread_buffers& buffers = thread_buffers::mine();
  float* scaled = thread_buffers::fit_aligned(
      buffers.q, kvc::detail::to_size(rows) * kvc::detail::to_size(k_dim));
  std::int64_t* positions = thread_buffers::fit(buffers.positions, static_cast<std::size_t>(rows));
  float* acc =
      thread_buffers::fit(buffers.acc, kvc::detail::to_size(rows) * kvc::detail::to_size(v_dim));
  float* m = thread_buffers::fit(buffers.m, static_cast<std::size_t>(rows));
  float* l = thread_buffers::fit(buffers.l, static_cast<std::size_t>(rows));
  float* keys = thread_buffers::fit_aligned(
      buffers.keys, kvc::detail::to_size(key_block) * kvc::detail::to_size(k_dim));
  float* values =
      geo.latent ? keys
                 : thread_buffers::fit_aligned(buffers.values, kvc::detail::to_size(key_block) *
                                                                   kvc::detail::to_size(v_dim));
  float* scores = thread_buffers::fit(buffers.scores, static_cast<std::size_t>(rows) * key_block);
  const int value_stride = geo.latent ? k_dim : v_dim;

  // The new tokens are staged (after the view's tokens), or already in the view (its last
  // qo rows: the view of an open step); then the view's pages are read up to the tile's last
  // query, and causality masks the rest.
  const bool in_view = staged.base == nullptr;
  const std::int32_t sequence_row0 = qo_indptr[static_cast<std::size_t>(item.sequence)];
  const std::int32_t sequence_tokens =
      qo_indptr[static_cast<std::size_t>(item.sequence) + 1] - sequence_row0;
  const std::int64_t view_length = prefix.seq_lens[item.sequence];
  const std::int64_t prefix_length = in_view ? view_length - sequence_tokens : view_length;
  const std::int32_t row0 = sequence_row0 + item.first_token;
  for (int t = 0; t < item.tokens; ++t)
    for (int g = 0; g < group; ++g) {
      const int r = t * group + g;
      const float* source =
          q.row(row0 + t, q_heads, k_dim) + std::ptrdiff_t{item.kv_head * group + g} * k_dim;
      for (int d = 0; d < k_dim; ++d)
        scaled[std::ptrdiff_t{r} * k_dim + d] = source[d] * params.scale;
      positions[r] = prefix_length + item.first_token + t;
    }
  const row_block block{rows, k_dim, v_dim, scaled, positions, acc, m, l};
  block.reset();

  // The keys some row of the tile may see: the sinks of the last query, and everything from
  // the first query's window start on.
  const window_shape& window = prefix.window;
  const std::int64_t first_query = positions[0], last_query = positions[rows - 1];
  const std::int64_t sinks_end = window.sink_end(last_query + 1);
  const std::int64_t recent_begin = window.recent_begin(first_query + 1);
  const auto needed = [&](std::int64_t begin, std::int64_t end) {  // positions [begin, end)
    return begin <= last_query && (begin < sinks_end || end - 1 >= recent_begin);
  };

  // The next block is asked for while this one is computed, a few lines per strip of rows of
  // the scores and the values (attend_block's read-ahead). Asked for in one burst, the prefix
  // blocks did no good (docs/benchmarks.md has the perf shares). With few rows (a short
  // extend) the calls are too short to spread the requests over, and they go at once.
  const auto share_out = [&](read_ahead& ahead) {
    ahead.lines_per_call = static_cast<int>((ahead.lines() + 1) / 2);
    if (rows <= block_kernels::transposed_rows) ahead.step(static_cast<int>(ahead.lines()));
  };

  // 1. The cached prefix (and, in a step's view, the new tokens), page by page.
  const auto kept = prefix.kept(item.sequence);
  const std::int32_t entries = prefix.indptr[item.sequence + 1] - prefix.indptr[item.sequence];
  const auto page_at = [&](std::int32_t entry) {
    return prefix.memory +
           static_cast<std::uint64_t>(prefix.indices[prefix.indptr[item.sequence] + entry]) *
               geo.page_bytes;
  };
  for (std::int32_t entry = 0; entry < entries; ++entry) {
    const std::int64_t page_first = kept.logical_page(entry) * geo.page_tokens;
    const int page_tokens =
        static_cast<int>(std::min<std::int64_t>(geo.page_tokens, view_length - page_first));
    if (!needed(page_first, page_first + page_tokens)) continue;
    const std::byte* page = page_at(entry);
    for (int start = 0; start < page_tokens; start += key_block) {
      const int count = std::min(key_block, page_tokens - start);
      if (!needed(page_first + start, page_first + start + count)) continue;
      // This head's vectors of the next block, in this page or the next (a head-row apart in
      // NHD pages).
      read_ahead ahead;
      const auto ask_for = [&](const std::byte* at, int first_token, int tokens) {
        for (const bool is_key : {true, false}) {
          if (!is_key && geo.latent) break;
          const head_vectors h = head_vectors::of(geo, at, first_token, item.kv_head, is_key);
          ahead.runs[is_key ? 0 : 1] = {h.values, h.vector_bytes, h.token_stride, tokens};
        }
        share_out(ahead);
      };
      if (start + key_block < page_tokens)
        ask_for(page, start + key_block, std::min(key_block, page_tokens - start - key_block));
      else if (entry + 1 < entries)
        ask_for(page_at(entry + 1), 0,
                static_cast<int>(std::min<std::int64_t>(
                    key_block, view_length - kept.logical_page(entry + 1) * geo.page_tokens)));
      load_block(geo, page, start, count, item.kv_head, item.kv_head + 1, true, prefix.k_scale,
                 keys, kernels.load_keys);
      if (!geo.latent)
        load_block(geo, page, start, count, item.kv_head, item.kv_head + 1, false, prefix.v_scale,
                   values, kernels.load_values);
      attend_block(kernels, block, keys, k_dim, values, value_stride, count, page_first + start,
                   window, params.softcap, scores, &ahead);
    }
  }

  // 2. The new tokens, up to the tile's last query (causal): from the staged copy, in order,
  // converted block by block into the keys and values buffers.
  const std::byte* new_keys =
      in_view ? nullptr : staged.keys(sequence_row0, sequence_tokens, item.kv_head);
  const std::byte* new_values =
      in_view ? nullptr : staged.values(sequence_row0, sequence_tokens, item.kv_head);
  const int new_end = in_view ? 0 : item.first_token + item.tokens;
  for (int start = 0; start < new_end; start += key_block) {
    const int count = std::min(key_block, new_end - start);
    if (!needed(prefix_length + start, prefix_length + start + count)) continue;
    for (int t = 0; t < count; ++t) {
      numeric::load_converted(new_k_type,
                              new_keys + static_cast<std::size_t>(start + t) * staged.k_row,
                              nullptr, k_dim, 1.0f, keys + std::ptrdiff_t{t} * k_dim);
      if (!geo.latent)
        numeric::load_converted(new_v_type,
                                new_values + static_cast<std::size_t>(start + t) * staged.v_row,
                                nullptr, v_dim, 1.0f, values + std::ptrdiff_t{t} * v_dim);
    }
    // The next block's staged vectors (a head's rows are contiguous).
    read_ahead ahead;
    if (start + key_block < new_end) {
      const int next = std::min(key_block, new_end - start - key_block);
      const auto staged_rows = [&](const std::byte* first, std::size_t row) {
        return read_ahead::pieces{first + static_cast<std::size_t>(start + key_block) * row,
                                  row * static_cast<std::size_t>(next), 0, 1};
      };
      ahead.runs[0] = staged_rows(new_keys, staged.k_row);
      if (!geo.latent) ahead.runs[1] = staged_rows(new_values, staged.v_row);
      share_out(ahead);
    }
    attend_block(kernels, block, keys, k_dim, values, value_stride, count, prefix_length + start,
                 window, params.softcap, scores, &ahead);
  }

  // 3. Finish every row, and add the sinks.
  for (int t = 0; t < item.tokens; ++t)
    for (int g = 0; g < group; ++g) {
      const int r = t * group + g;
      const int head = item.kv_head * group + g;
      const std::ptrdiff_t row = std::ptrdiff_t{row0 + t} * q_heads + head;
      finish_row(m + r, l + r, acc + std::ptrdiff_t{r} * v_dim, 1, 0, v_dim,
                 params.sink_logits != nullptr ? params.sink_logits + head : nullptr,
                 out + row * v_dim, lse + row);
    }
}

// Copies new rows [first, first + count) of sequence `b` into the staged layout: the input is
// read in order, each row's heads written to their own regions.
inline void stage_rows(const staged_layout& staged, std::span<const std::int32_t> qo_indptr,
                       std::int32_t b, std::int32_t first, std::int32_t count,
                       const kv_input& new_k, const kv_input& new_v) {
  const std::int32_t row0 = qo_indptr[static_cast<std::size_t>(b)];
  const std::int32_t tokens = qo_indptr[static_cast<std::size_t>(b) + 1] - row0;
  for (std::int32_t t = first; t < first + count; ++t)
    for (int h = 0; h < staged.kv_heads; ++h) {
      const std::int64_t row = std::int64_t{row0} + t;
      std::memcpy(staged.keys(row0, tokens, h) + static_cast<std::size_t>(t) * staged.k_row,
                  new_k.vector(row, h), staged.k_row);
      if (staged.v_row != 0)
        std::memcpy(staged.values(row0, tokens, h) + static_cast<std::size_t>(t) * staged.v_row,
                    new_v.vector(row, h), staged.v_row);
    }
}

}  // namespace detail

namespace detail {

inline void check_qo_indptr(const paged_layer_view& view, std::span<const std::int32_t> qo_indptr) {
  kvc::detail::require(static_cast<std::int32_t>(qo_indptr.size()) == view.batch + 1,
                       cache_errc::invalid_argument,
                       "kvc::cpu::extend: qo_indptr must have one entry per sequence, plus one");
  kvc::detail::require(qo_indptr.front() == 0 && std::is_sorted(qo_indptr.begin(), qo_indptr.end()),
                       cache_errc::invalid_argument,
                       "kvc::cpu::extend: qo_indptr must start at 0 and never decrease");
}

// What both extends check first: a current view, the layer's query heads, qo_indptr, and
// q, out and lse given (when there are rows).
inline void check_extend_call(const paged_layer_view& view, std::span<const std::int32_t> qo_indptr,
                              int q_heads, const query_rows& q, const float* out,
                              const float* lse) {
  check_current(view, "kvc::cpu::extend");
  check_layer_query_heads(view, q_heads, "kvc::cpu::extend");
  check_qo_indptr(view, qo_indptr);
  kvc::detail::require(
      qo_indptr.back() <= 0 || (q.data != nullptr && out != nullptr && lse != nullptr),
      cache_errc::invalid_argument, "kvc::cpu::extend: null q, out or lse");
  check_query_rows(q, qo_indptr.back(), q_heads, view.geometry.k_dim, "kvc::cpu::extend");
}

// The tiles of work, and the run over them; staged.base null: the new tokens are in the view.
inline void extend_tiles(const paged_layer_view& view, std::span<const std::int32_t> qo_indptr,
                         int q_heads, const query_rows& q, const staged_layout& staged,
                         dtype_id new_k_type, dtype_id new_v_type, float* out, float* lse,
                         const attention::attention_params& params, extend_workspace& workspace,
                         parallel_for_ref parallel, const cpu_options& options) {
  const page_geometry& geo = view.geometry;
  const int group = q_heads / geo.kv_heads;
  const auto new_tokens = [&](std::int32_t b) {
    return qo_indptr[static_cast<std::size_t>(b) + 1] - qo_indptr[static_cast<std::size_t>(b)];
  };
  const int tile = tile_tokens(group);
  auto& items = workspace.items;
  items.clear();
  for (std::int32_t b = 0; b < view.batch; ++b) {
    const std::int32_t tokens = new_tokens(b);
    if (tokens == 0) continue;  // nothing to attend: no rows to write
    for (int h = 0; h < geo.kv_heads; ++h)
      for (std::int32_t first = (tokens - 1) / tile * tile; first >= 0; first -= tile)
        items.push_back({b, h, first, std::min(tile, tokens - first)});
  }
  // The tiles of one head of one sequence run one after another, last (longest) first, so
  // that head's new keys and values stay in the core's L2 from one tile to the next; longer
  // sequences first, so that short tiles end the work and balance the threads. Ties keep
  // the order above (std::sort, unlike std::stable_sort, needs no buffer of its own).
  std::sort(items.begin(), items.end(), [&](const auto& a, const auto& b) {
    const auto key = [&](const extend_item& item) {
      return std::tuple(-new_tokens(item.sequence), item.sequence, item.kv_head, -item.first_token);
    };
    return key(a) < key(b);
  });
  const block_kernels kernels = block_kernels::of(choose_kernels(geo, group, options));
  parallel(items.size(), [&](std::size_t i) {
    extend_item_run(view, qo_indptr, q, staged, new_k_type, new_v_type, out, lse, params, items[i],
                    q_heads, kernels);
  });
}

}  // namespace detail

inline void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr,
                   int q_heads, query_rows q, const kv_input& new_k, const kv_input& new_v,
                   float* out, float* lse, const attention::attention_params& params,
                   extend_workspace& workspace, parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  const page_geometry& geo = prefix.geometry;
  detail::check_extend_call(prefix, qo_indptr, q_heads, q, out, lse);
  kvc::detail::require(
      prefix.new_tokens < 0, cache_errc::invalid_argument,
      "kvc::cpu::extend: the prefix view is of a step table (its lengths count the new tokens); "
      "pass a view of the committed table (kv_cache::page_table), or the step's view to the "
      "extend() that reads the new tokens from it");
  const std::int64_t rows = qo_indptr.back();
  check_kv_input(new_k, rows, geo.kv_heads, geo.k_dim, input_name{"kvc::cpu::extend", "new K"});
  if (!geo.latent)
    check_kv_input(new_v, rows, geo.kv_heads, geo.v_dim, input_name{"kvc::cpu::extend", "new V"});
  const auto new_tokens = [&](std::int32_t b) {
    return qo_indptr[static_cast<std::size_t>(b) + 1] - qo_indptr[static_cast<std::size_t>(b)];
  };

  // Stage the new keys and values, in chunks of rows of one sequence.
  const std::size_t k_row = kvc::detail::to_size(geo.k_dim * dtype_bits(new_k.type) / 8);
  const std::size_t v_row =
      geo.latent ? 0 : kvc::detail::to_size(geo.v_dim * dtype_bits(new_v.type) / 8);
  const detail::staged_layout staged{
      workspace.fit(kvc::detail::to_size(rows) * kvc::detail::to_size(geo.kv_heads) *
                    (k_row + v_row)),
      geo.kv_heads, k_row, v_row};
  constexpr std::int32_t stage_chunk = 64;
  auto& chunks = workspace.stage_chunks;
  chunks.clear();
  for (std::int32_t b = 0; b < prefix.batch; ++b)
    for (std::int32_t first = 0; first < new_tokens(b); first += stage_chunk)
      chunks.emplace_back(b, first);
  parallel(chunks.size(), [&](std::size_t i) {
    const auto [b, first] = chunks[i];
    detail::stage_rows(staged, qo_indptr, b, first, std::min(stage_chunk, new_tokens(b) - first),
                       new_k, new_v);
  });
  detail::extend_tiles(prefix, qo_indptr, q_heads, q, staged, new_k.type, new_v.type, out, lse,
                       params, workspace, parallel, options);
}

/// Extends over the view of an open step (kv_cache::step_table) whose new K/V are already
/// written: sequence b's qo rows are its last qo_indptr[b + 1] - qo_indptr[b] tokens, read
/// from the cache like the rest (quantized as stored), with no staging. A window layer must
/// still keep, after the step, everything each row sees: with a step of r rows that needs a
/// rollback reserve of at least r - 1 tokens (or a full-attention layer); otherwise this
/// throws invalid_argument, and the extend() that takes the new K/V serves the step.
inline void extend(const paged_layer_view& step, std::span<const std::int32_t> qo_indptr,
                   int q_heads, query_rows q, float* out, float* lse,
                   const attention::attention_params& params, extend_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  detail::check_extend_call(step, qo_indptr, q_heads, q, out, lse);
  const window_shape& window = step.window;
  for (std::int32_t b = 0; b < step.batch; ++b) {
    const std::int64_t rows =
        qo_indptr[static_cast<std::size_t>(b) + 1] - qo_indptr[static_cast<std::size_t>(b)];
    const std::int64_t length = step.seq_lens[b];
    kvc::detail::require(rows <= length, cache_errc::invalid_argument,
                         "kvc::cpu::extend: sequence ", b, " has ", length,
                         " tokens in the view, not ", rows, " new ones");
    const std::int64_t first_row = length - rows;
    // The rows see [recent_begin(first_row + 1), length) besides the sinks; the view keeps
    // the sinks and [keep_begin(length), length).
    kvc::detail::require(
        rows <= 0 || !window.bounded() ||
            window.keep_begin(length) <=
                std::max(window.recent_begin(first_row + 1), window.sink_end(length)),
        cache_errc::invalid_argument, "kvc::cpu::extend: the step's view of sequence ", b,
        " no longer keeps what its first new row sees (", rows,
        " rows over a bounded window); pass the new K/V to extend(), or build the cache with a "
        "rollback reserve of at least ",
        rows - 1);
  }
  detail::extend_tiles(step, qo_indptr, q_heads, q, detail::staged_layout{}, dtype_id::fp32,
                       dtype_id::fp32, out, lse, params, workspace, parallel, options);
}

/// Extends with sized buffers: q, out or lse smaller than the rows need is a cache_error
/// (shape_mismatch) instead of an overflow. The pointer forms trust the caller for the sizes
/// (they still refuse null pointers).
inline void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr,
                   int q_heads, query_rows q, const kv_input& new_k, const kv_input& new_v,
                   std::span<float> out, std::span<float> lse,
                   const attention::attention_params& params, extend_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  check_extend_sizes(prefix, qo_indptr, q_heads, q, out.size(), lse.size());
  extend(prefix, qo_indptr, q_heads, q, new_k, new_v, out.data(), lse.data(), params, workspace,
         parallel, options);
}

/// Extends over an open step's view (the step's extend()) with sized buffers.
inline void extend(const paged_layer_view& step, std::span<const std::int32_t> qo_indptr,
                   int q_heads, query_rows q, std::span<float> out, std::span<float> lse,
                   const attention::attention_params& params, extend_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  check_extend_sizes(step, qo_indptr, q_heads, q, out.size(), lse.size());
  extend(step, qo_indptr, q_heads, q, out.data(), lse.data(), params, workspace, parallel, options);
}

/// Extends with a workspace of its own, allocated for this call.
inline void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr,
                   int q_heads, query_rows q, const kv_input& new_k, const kv_input& new_v,
                   float* out, float* lse, const attention::attention_params& params,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  extend_workspace workspace;
  extend(prefix, qo_indptr, q_heads, q, new_k, new_v, out, lse, params, workspace, parallel,
         options);
}

}  // namespace kvc::cpu
