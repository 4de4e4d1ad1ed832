#pragma once
// The memory a model's cache takes, known at compile time:
//
//   footprint<M>::bytes_per_token          every layer that owns a cache, as if it grew forever
//   footprint<M>::bytes_for_tokens(n)      KV bytes of one sequence of n tokens, windows honoured
//   footprint<M, paged<P>>::bytes_for_tokens(n)   the same, rounded up to whole pages
//   footprint<M>::recurrent_state_bytes    constant state of the linear-attention layers
//   bytes_for_tokens(n, R)                 with a rollback reserve of R tokens, which every
//                                          bounded window keeps beyond what it shows
//   footprint<M, paged<P>>::bytes_for_tokens(n, R, N)   with window checkpoints every N
//                                          tokens (capacity_*::checkpoint_every)
//
// A sliding layer of window W keeps min(n, W) tokens, a chunked layer of chunk C the
// tokens of the current chunk, a streaming layer min(n, S + W). Pages are aligned to
// absolute positions, so a window that straddles a page boundary holds one page more; a
// page's bytes are those of page_geometry (regions aligned to 16 bytes, which no gallery
// shape needs).

#include <cstdint>

#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/paging.hpp"

namespace kvc {

template <model_type Model, paging_policy Paging = unpaged>
struct footprint {
  static constexpr int num_layers = Model::num_layers;

  static constexpr std::uint64_t layer_bytes_per_token(int layer) {
    return Model::layer_summaries[static_cast<std::size_t>(layer)].bytes_per_token;
  }

  /// Returns the cache bytes that `layer` holds for one sequence of n tokens (with a rollback
  /// reserve of `reserve` tokens, and a paged cache's window checkpoints every
  /// `checkpoint_every` tokens, as kv_cache keeps when built with them).
  static constexpr std::uint64_t layer_bytes_for_tokens(int layer, std::int64_t n,
                                                        std::int64_t reserve = 0,
                                                        std::int64_t checkpoint_every = 0) {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(layer)];
    if (!s.owns_cache() || n <= 0) return 0;
    window_shape window = s.window;
    if (window.bounded()) window.reserve = reserve;
    if constexpr (Paging::is_paged) {
      const window_checkpoints checkpoints{s.window, checkpoint_every, Paging::page_tokens};
      const auto pages = static_cast<std::uint64_t>(window.pages_held(n, Paging::page_tokens) +
                                                    checkpoints.pages_held(window, n));
      return pages * page_geometry::make(s, Paging::page_tokens, Paging::layout).page_bytes;
    } else {
      return static_cast<std::uint64_t>(window.tokens_held(n)) * s.bytes_per_token;
    }
  }

  static constexpr std::uint64_t bytes_per_token = [] {
    std::uint64_t sum = 0;
    for (const layer_summary& s : Model::layer_summaries) sum += s.bytes_per_token;
    return sum;
  }();

  static constexpr std::uint64_t recurrent_state_bytes = [] {
    std::uint64_t sum = 0;
    for (const layer_summary& s : Model::layer_summaries) sum += s.state_bytes;
    return sum;
  }();

  /// Returns the KV cache bytes of one sequence of n tokens (recurrent state not included), with a
  /// rollback reserve of `reserve` tokens and, paged, window checkpoints every
  /// `checkpoint_every` tokens (a multiple of the page size, as the cache takes it; any other
  /// value, or an unpaged footprint, counts none).
  static constexpr std::uint64_t bytes_for_tokens(std::int64_t n, std::int64_t reserve = 0,
                                                  std::int64_t checkpoint_every = 0) {
    std::uint64_t sum = 0;
    for (int i = 0; i < num_layers; ++i)
      sum += layer_bytes_for_tokens(i, n, reserve, checkpoint_every);
    return sum;
  }

  /// Returns everything one sequence of n tokens keeps: KV cache and recurrent state.
  static constexpr std::uint64_t total_bytes_for_tokens(std::int64_t n) {
    return bytes_for_tokens(n) + recurrent_state_bytes;
  }

  /// Layers by what they keep. Local layers are those with a bounded window.
  static constexpr int count_layers(bool (*pred)(const layer_summary&)) {
    int n = 0;
    for (const layer_summary& s : Model::layer_summaries) n += pred(s) ? 1 : 0;
    return n;
  }
  static constexpr int full_layers =
      count_layers([](const layer_summary& s) { return s.owns_cache() && !s.window.bounded(); });
  static constexpr int local_layers =
      count_layers([](const layer_summary& s) { return s.owns_cache() && s.window.bounded(); });
  static constexpr int shared_layers =
      count_layers([](const layer_summary& s) { return s.kind == layer_kind::shared_kv; });
  static constexpr int recurrent_layers =
      count_layers([](const layer_summary& s) { return s.kind == layer_kind::recurrent; });
};

}  // namespace kvc
