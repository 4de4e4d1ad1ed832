#pragma once
// Which earlier tokens a layer keeps, and so which keys a query may see.
//
// Every window keeps, of a sequence of n tokens, the union of two position ranges:
// the sinks [0, sink_end(n)) and the recent tokens [recent_begin(n), n). Footprint,
// page reclamation and attention masks are all derived from these two numbers, so
// they cannot disagree. A query at position q sees key k when k <= q and k is kept
// once the sequence holds q + 1 tokens (the query's own token included).
//
// A cache may keep more than a window shows: a rollback reserve of R tokens (speculative
// decoding) keeps, of n tokens, what the window shows at every length from n - R to n, so
// that a sequence truncated by up to R tokens still holds all it sees. `reserve` changes
// what is kept (keep_begin, pages_kept, tokens_held), never what a query sees (visible).
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
  std::int64_t reserve = 0;      ///< rollback reserve: kept, not seen (bounded windows only)

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

  /// Returns the first recent position a sequence of n tokens keeps: what the window shows at
  /// n - reserve (recent_begin never decreases with n), and never inside the sinks.
  KVC_HOST_DEVICE constexpr std::int64_t keep_begin(std::int64_t n) const {
    if (kind == window_kind::full) return 0;
    const std::int64_t shorter = n - reserve > 0 ? n - reserve : 0;
    const std::int64_t begin = recent_begin(shorter);
    const std::int64_t sinks = sink_end(n);
    return begin > sinks ? begin : sinks;
  }

  /// Returns whether a sequence of n tokens keeps position p (its window shows it, now or after a
  /// rollback within the reserve).
  KVC_HOST_DEVICE constexpr bool keeps(std::int64_t n, std::int64_t p) const {
    return p >= 0 && p < n && (p < sink_end(n) || p >= keep_begin(n));
  }

  /// Returns the tokens kept by a sequence of n tokens.
  KVC_HOST_DEVICE constexpr std::int64_t tokens_held(std::int64_t n) const {
    return sink_end(n) + (n - keep_begin(n));
  }

  /// Returns whether the query at position query_pos sees the key at key_pos.
  KVC_HOST_DEVICE constexpr bool visible(std::int64_t query_pos, std::int64_t key_pos) const {
    const std::int64_t n = query_pos + 1;
    return key_pos >= 0 && key_pos <= query_pos &&
           (key_pos < sink_end(n) || key_pos >= recent_begin(n));
  }

  /// The pages a sequence of n tokens keeps, pages being aligned to absolute positions
  /// (logical page i holds positions [i * page_tokens, (i + 1) * page_tokens)): the logical
  /// pages [0, sink_pages) and [recent_first, last], in that order, with
  /// sink_pages <= recent_first. Empty (count() == 0) when n is 0.
  struct kept_pages {
    std::int64_t sink_pages = 0;
    std::int64_t recent_first = 0;
    std::int64_t last = -1;

    KVC_HOST_DEVICE constexpr std::int64_t count() const {
      return sink_pages + (last - recent_first + 1);
    }
    /// Returns the logical page of the entry-th kept page.
    KVC_HOST_DEVICE constexpr std::int64_t logical_page(std::int64_t entry) const {
      return entry < sink_pages ? entry : recent_first + (entry - sink_pages);
    }
    /// Returns the entry of a kept logical page (-1 when it is not kept).
    KVC_HOST_DEVICE constexpr std::int64_t entry_of(std::int64_t page) const {
      if (page < sink_pages) return page;
      if (page < recent_first || page > last) return -1;
      return sink_pages + (page - recent_first);
    }
  };

  KVC_HOST_DEVICE constexpr kept_pages pages_kept(std::int64_t n, std::int64_t page_tokens) const {
    kept_pages kept;
    if (n <= 0) return kept;
    kept.last = (n - 1) / page_tokens;
    kept.recent_first = keep_begin(n) / page_tokens;
    const std::int64_t sinks = sink_end(n);
    const std::int64_t sink_pages = sinks > 0 ? (sinks - 1) / page_tokens + 1 : 0;
    // Sink pages that reach the recent ones merge with them into one run from page 0.
    if (sink_pages >= kept.recent_first) kept.recent_first = 0;
    kept.sink_pages = kept.recent_first == 0 ? 0 : sink_pages;
    return kept;
  }

  /// Returns the pages a page table lists for a sequence of n tokens in `entries` entries: the
  /// sink pages, then a run ending at the last page. This is pages_kept(n) for a sequence
  /// that grew to n; one truncated to n (or forked at n) may list fewer recent pages, and
  /// one whose step is open may list more. Kernels map entries to positions through this,
  /// so that they never depend on how the table came to be.
  KVC_HOST_DEVICE constexpr kept_pages pages_listed(std::int64_t n, std::int64_t page_tokens,
                                                    std::int64_t entries) const {
    kept_pages listed;
    if (n <= 0 || entries <= 0) return listed;
    listed.last = (n - 1) / page_tokens;
    const std::int64_t sinks = sink_end(n);
    const std::int64_t sink_pages = sinks > 0 ? (sinks - 1) / page_tokens + 1 : 0;
    const std::int64_t recent_first = listed.last + 1 - (entries - sink_pages);
    if (recent_first <= sink_pages || entries > listed.last) {
      listed.recent_first = listed.last + 1 - entries;  // one run (0 when it reaches the start)
      return listed;
    }
    listed.sink_pages = sink_pages;
    listed.recent_first = recent_first;
    return listed;
  }

  /// Returns a length past which a bounded window's page pattern only repeats: every alignment of
  /// the window (or chunk) to the pages has been seen.
  KVC_HOST_DEVICE constexpr std::int64_t pattern_horizon(std::int64_t page_tokens) const {
    if (kind != window_kind::chunked) return sink_tokens + tokens + reserve + 2 * page_tokens;
    std::int64_t a = tokens, b = page_tokens;  // chunks start at multiples of gcd(C, P) mod P
    while (b != 0) {
      const std::int64_t r = a % b;
      a = b;
      b = r;
    }
    return tokens * (page_tokens / a + 1) + page_tokens + reserve;
  }

  /// Returns the most pages a sequence holds at any length up to n: pages_held(n) for a full
  /// window; for a bounded one, the largest count its sliding pattern reaches.
  KVC_HOST_DEVICE constexpr std::int64_t max_pages_held(std::int64_t n,
                                                        std::int64_t page_tokens) const {
    if (!bounded()) return pages_held(n, page_tokens);
    const std::int64_t horizon = pattern_horizon(page_tokens);
    std::int64_t most = 0;
    for (std::int64_t length = 1; length <= n && length <= horizon; ++length) {
      const std::int64_t pages = pages_held(length, page_tokens);
      most = pages > most ? pages : most;
    }
    return most;
  }

  /// Returns how many pages of page_tokens tokens the kept tokens touch.
  KVC_HOST_DEVICE constexpr std::int64_t pages_held(std::int64_t n,
                                                    std::int64_t page_tokens) const {
    return pages_kept(n, page_tokens).count();
  }
};

/// Every token stays (the default).
struct full_attention {
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{};
};

namespace detail {
template <int Tokens>
struct sliding_window_checks {
  static_assert(Tokens > 0, "kvc::sliding_window<W>: the window must hold at least one token");
};
}  // namespace detail

/// Sliding window (Mistral, Gemma): a query sees itself and the Tokens - 1 before it.
template <int Tokens>
struct sliding_window {
  static_assert(sizeof(detail::sliding_window_checks<Tokens>) > 0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::sliding, 0, Tokens};
};

namespace detail {
template <int Tokens>
struct chunked_checks {
  static_assert(Tokens > 0, "kvc::chunked<C>: the chunk must hold at least one token");
};
}  // namespace detail

/// Chunked attention (Llama 4): positions are cut into chunks of Tokens; a query sees
/// the earlier tokens of its own chunk only.
template <int Tokens>
struct chunked {
  static_assert(sizeof(detail::chunked_checks<Tokens>) > 0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::chunked, 0, Tokens};
};

namespace detail {
template <int SinkTokens, int WindowTokens>
struct streaming_checks {
  static_assert(SinkTokens > 0,
                "kvc::streaming<S, W>: keep at least one sink token (streaming<0, W> is "
                "sliding_window<W>)");
  static_assert(WindowTokens > 0, "kvc::streaming<S, W>: the window must hold at least one token");
};
}  // namespace detail

/// StreamingLLM (arXiv:2309.17453): the first SinkTokens tokens stay forever, plus the
/// last WindowTokens tokens (the query's own included).
template <int SinkTokens, int WindowTokens>
struct streaming {
  static_assert(sizeof(detail::streaming_checks<SinkTokens, WindowTokens>) >
                0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::window;
  static constexpr window_shape shape{window_kind::streaming, SinkTokens, WindowTokens};
};

}  // namespace kvc
