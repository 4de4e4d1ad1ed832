#pragma once
// Which earlier tokens a layer keeps, and so which keys a query may see.
//
// Every window keeps, of a sequence of n tokens, the union of two position ranges:
// the sinks [0, sink_end(n)) and the recent tokens [recent_begin(n), n). Footprint,
// page reclamation and attention masks are all derived from these two numbers, so
// they cannot disagree. A query at position q sees key k when k <= q and k is kept
// once the sequence holds q + 1 tokens (the query's own token included).
//
// window_shape is the run-time value (kernels receive it); the policy types below
// are its compile-time spellings.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/policy/family.hpp"

namespace kvc {

enum class window_kind : std::uint8_t { full, sliding, chunked, streaming };

struct window_shape {
  window_kind kind = window_kind::full;
  std::int64_t sink_tokens = 0;  ///< streaming: tokens kept from the start
  std::int64_t tokens = 0;       ///< sliding/streaming: window length; chunked: chunk length

  KVC_HOST_DEVICE constexpr bool bounded() const { return kind != window_kind::full; }

  KVC_HOST_DEVICE constexpr std::int64_t sink_end(std::int64_t n) const {
    if (kind != window_kind::streaming) return 0;
    return n < sink_tokens ? n : sink_tokens;
  }

  KVC_HOST_DEVICE constexpr std::int64_t recent_begin(std::int64_t n) const {
    switch (kind) {
      case window_kind::full:
        return 0;
      case window_kind::chunked:
        return n > 0 ? (n - 1) / tokens * tokens : 0;
      default: {  // sliding and streaming: the last `tokens`, after the sinks
        const std::int64_t begin = n - tokens;
        const std::int64_t sinks = sink_end(n);
        return begin > sinks ? begin : sinks;
      }
    }
  }

  /// Tokens kept by a sequence of n tokens.
  KVC_HOST_DEVICE constexpr std::int64_t tokens_held(std::int64_t n) const {
    return sink_end(n) + (n - recent_begin(n));
  }

  /// Whether the query at position query_pos sees the key at key_pos.
  KVC_HOST_DEVICE constexpr bool visible(std::int64_t query_pos, std::int64_t key_pos) const {
    const std::int64_t n = query_pos + 1;
    return key_pos >= 0 && key_pos <= query_pos &&
           (key_pos < sink_end(n) || key_pos >= recent_begin(n));
  }

  /// Pages of page_tokens tokens touched by the kept tokens, pages being aligned to
  /// absolute positions (page i holds positions [i * page_tokens, (i + 1) * page_tokens)).
  KVC_HOST_DEVICE constexpr std::int64_t pages_held(std::int64_t n,
                                                    std::int64_t page_tokens) const {
    if (n <= 0) return 0;
    const std::int64_t recent_first_page = recent_begin(n) / page_tokens;
    std::int64_t pages = (n - 1) / page_tokens - recent_first_page + 1;
    if (const std::int64_t sinks = sink_end(n); sinks > 0) {
      const std::int64_t sink_last_page = (sinks - 1) / page_tokens;
      pages += sink_last_page + 1;
      if (sink_last_page >= recent_first_page) pages -= sink_last_page - recent_first_page + 1;
    }
    return pages;
  }
};

/// Every token stays (the default).
struct full_attention {
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{};
};

/// Sliding window (Mistral, Gemma): a query sees itself and the Tokens - 1 before it.
template <int Tokens>
struct sliding_window {
  static_assert(Tokens > 0, "kvc::sliding_window<W>: the window must hold at least one token");
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::sliding, 0, Tokens};
};

/// Chunked attention (Llama 4): positions are cut into chunks of Tokens; a query sees
/// the earlier tokens of its own chunk only.
template <int Tokens>
struct chunked {
  static_assert(Tokens > 0, "kvc::chunked<C>: the chunk must hold at least one token");
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::chunked, 0, Tokens};
};

/// StreamingLLM (arXiv:2309.17453): the first SinkTokens tokens stay forever, plus the
/// last WindowTokens tokens (the query's own included).
template <int SinkTokens, int WindowTokens>
struct streaming {
  static_assert(SinkTokens > 0,
                "kvc::streaming<S, W>: keep at least one sink token (streaming<0, W> is "
                "sliding_window<W>)");
  static_assert(WindowTokens > 0, "kvc::streaming<S, W>: the window must hold at least one token");
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::streaming, SinkTokens, WindowTokens};
};

}  // namespace kvc
