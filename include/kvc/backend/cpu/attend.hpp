#pragma once
// The one loop every CPU attention runs: a set of query rows, each with its position and
// running softmax state, takes in blocks of keys and values (floats), masking by the window
// and causality, soft-capping, and accumulating e^{s - m} v. Decode and prefill differ only
// in which rows they gather and where the key blocks come from.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvc/attention/online_softmax.hpp"
#include "kvc/attention/partial_result.hpp"
#include "kvc/backend/cpu/block_kernels.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::cpu {

/// Query rows and their running state, all in caller-provided memory.
struct row_block {
  int rows = 0;
  int k_dim = 0;
  int v_dim = 0;
  const float* q = nullptr;                 ///< [rows][k_dim], already multiplied by the scale
  const std::int64_t* positions = nullptr;  ///< [rows] query positions, never decreasing
  float* acc = nullptr;                     ///< [rows][v_dim] sum of e^{s - m} v
  float* m = nullptr;                       ///< [rows] largest score
  float* l = nullptr;                       ///< [rows] sum of e^{s - m}

  /// Returns rows [first, first + count): the query group of one KV head, say.
  row_block slice(int first, int count) const {
    return {count,
            k_dim,
            v_dim,
            q + std::ptrdiff_t{first} * k_dim,
            positions + first,
            acc + std::ptrdiff_t{first} * v_dim,
            m + first,
            l + first};
  }

  void reset() const {
    for (int r = 0; r < rows; ++r) {
      m[r] = attention::negative_infinity;
      l[r] = 0.0f;
    }
    for (int i = 0; i < rows * v_dim; ++i) acc[i] = 0.0f;
  }
};

/// Per-thread buffers, grown on first use and kept: nothing is allocated once warm.
struct thread_buffers {
  std::vector<float> keys, values, scores, q, acc, m, l, keys_t;
  std::vector<std::int64_t> positions;

  static thread_buffers& mine() {
    thread_local thread_buffers buffers;
    return buffers;
  }
  template <class T>
  static T* fit(std::vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
  /// Grows as fit, starting on a 64-byte line: vector loads of the rows then never straddle two
  /// lines.
  static float* fit_aligned(std::vector<float>& v, std::size_t n) {
    constexpr std::size_t line_floats = 64 / sizeof(float);
    float* p = fit(v, n + line_floats);
    const auto misalignment = reinterpret_cast<std::uintptr_t>(p) % 64 / sizeof(float);
    return p + (misalignment == 0 ? 0 : line_floats - misalignment);
  }
};

namespace detail {
// Whether every key of [first, last] is visible to the query at `position`: the ends are, and
// the visible keys of every window but streaming form one interval.
inline bool all_visible(const window_shape& window, std::int64_t position, std::int64_t first,
                        std::int64_t last) {
  return window.kind != window_kind::streaming && window.visible(position, first) &&
         window.visible(position, last);
}
}  // namespace detail

/// Runs the online-softmax step of a block: scores [rows][key_block] of `tokens` keys at positions
/// first_position, first_position + 1, ... are masked, soft-capped and turned into weights
/// e^{s - m} (0 past `tokens`); each row's m, l and acc are brought up to date, except for
/// the weighted values, which the caller adds next.
inline void softmax_block(const block_kernels& kernels, const row_block& rows, int tokens,
                          std::int64_t first_position, const window_shape& window, float softcap,
                          float* scores) {
  const std::int64_t last_position = first_position + tokens - 1;
  // Positions never decrease along the rows, and for every window but streaming the queries
  // that see all of [first, last] form an interval of positions: the first and last rows
  // decide for all.
  const bool all_rows_unmasked =
      softcap == 0.0f && rows.rows > 0 &&
      detail::all_visible(window, rows.positions[0], first_position, last_position) &&
      detail::all_visible(window, rows.positions[rows.rows - 1], first_position, last_position);
  if (all_rows_unmasked &&
      kernels.softmax_rows(scores, rows.rows, tokens, rows.m, rows.l, rows.acc, rows.v_dim))
    return;
  for (int r = 0; r < rows.rows; ++r) {
    float* s = scores + r * key_block;
    const std::int64_t position = rows.positions[r];
    const bool unmasked = detail::all_visible(window, position, first_position, last_position);
    float block_max = attention::negative_infinity;
    for (int t = 0; t < tokens; ++t) {
      float x = s[t];
      if (!unmasked && !window.visible(position, first_position + t)) {
        x = attention::negative_infinity;
      } else if (softcap > 0.0f) {
        x = softcap * std::tanh(x / softcap);
      }
      s[t] = x;
      block_max = x > block_max ? x : block_max;
    }
    for (int t = tokens; t < key_block; ++t) s[t] = attention::negative_infinity;
    attention::softmax_state state{rows.m[r], rows.l[r]};
    const float factor = state.rescale_for(block_max);
    if (factor != 1.0f)
      for (int d = 0; d < rows.v_dim; ++d) rows.acc[r * rows.v_dim + d] *= factor;
    rows.m[r] = state.m;
    rows.l[r] = state.l;
    // Before any visible key m is -inf: shift by 0 so that masked scores give e^-inf = 0.
    const float shift = state.m == attention::negative_infinity ? 0.0f : state.m;
    for (int t = 0; t < key_block; ++t) s[t] -= shift;
  }
  kernels.exp_block(scores, rows.rows * key_block);
  for (int r = 0; r < rows.rows; ++r) {
    float sum = 0.0f;
    for (int t = 0; t < tokens; ++t) sum += scores[r * key_block + t];
    rows.l[r] += sum;
  }
}

/// Takes in `tokens` keys and values (floats) at positions first_position, first_position + 1,
/// ... scores: scratch of rows * key_block floats. `ahead` (optional): memory to ask for while
/// the block is computed, half during the scores and half during the values.
inline void attend_block(const block_kernels& kernels, const row_block& rows, const float* keys,
                         int k_stride, const float* values, int v_stride, int tokens,
                         std::int64_t first_position, const window_shape& window, float softcap,
                         float* scores, read_ahead* ahead = nullptr) {
  float* keys_t =
      rows.rows > block_kernels::transposed_rows
          ? thread_buffers::fit_aligned(thread_buffers::mine().keys_t,
                                        static_cast<std::size_t>(rows.k_dim) * key_block)
          : nullptr;
  kernels.scores(rows.q, rows.rows, rows.k_dim, keys, k_stride, tokens, scores, keys_t, ahead);
  softmax_block(kernels, rows, tokens, first_position, window, softcap, scores);
  kernels.accumulate(scores, rows.rows, values, v_stride, rows.v_dim, tokens, rows.acc, ahead);
}

/// Merges `parts` partial states of one row into out / lse, the learned sink logit included
/// (null: none): part p's m, l and acc start at m + p * part_stride, l + p * part_stride and
/// acc + p * part_stride (attention/partial_result.hpp, the merge every backend makes).
inline void finish_row(const float* m, const float* l, const float* acc, int parts,
                       std::size_t part_stride, int v_dim, const float* sink_logit, float* out,
                       float* lse) {
  const auto stride = static_cast<std::int64_t>(part_stride);
  const attention::row_merge merged = attention::row_merge::of(m, l, stride, parts, sink_logit);
  for (int d = 0; d < v_dim; ++d) out[d] = 0.0f;
  if (merged.total != 0.0f)
    for (int p = 0; p < parts; ++p) {
      if (l[p * stride] == 0.0f) continue;
      const float w = merged.weight(m[p * stride], l[p * stride]);
      const float* a = acc + p * stride;
      for (int d = 0; d < v_dim; ++d) out[d] += w * a[d];
    }
  for (int d = 0; d < v_dim; ++d) out[d] = merged.value(out[d]);
  *lse = merged.lse;
}

}  // namespace kvc::cpu
