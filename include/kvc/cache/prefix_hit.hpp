#pragma once
// What a hit of the prefix index serves, derived from each layer group's window: a sequence
// that starts from the first p tokens of a prompt must hold, in every group, what that
// group's window shows at p: the sinks [0, sink_end(p)) and the recent run
// [recent_begin(p), p). Full attention needs every page below p; a sliding window of W the
// last W tokens; a chunked layer its current chunk (the whole previous one at a chunk's
// end); streaming its sinks and recent tokens; a layer that reads another's KV nothing of its
// own; a recurrent layer a snapshot of its state taken at exactly p (state_snapshots.hpp).
// The hit is the largest p (whole pages, at least one token of the prompt left to compute)
// that every group serves at once; a window's need is not monotone in p, so each p is asked.
//
//   const detail::hit_search search = detail::search_hit(windows, layers, P, prompt, chain,
//                                                        states, holding);
//   search.tokens;   // the hit; search.group_tokens[g], what group g alone would serve

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/policy/window.hpp"

namespace kvc {

/// What the prefix index can serve of a prompt: cache.find_prefix's answer, which
/// cache.add_sequence(hit) turns into a sequence of hit.tokens tokens sharing the pages.
template <int NumGroups>
struct prefix_hit {
  /// Tokens reusable: a multiple of the page size, less than the prompt's length.
  std::int64_t tokens = 0;
  /// Tokens from the start whose pages' content the index holds (some group may lack them).
  std::int64_t matched_tokens = 0;
  /// Per layer group: the longest prefix that group alone could serve.
  detail::signed_array<std::int64_t, NumGroups> group_tokens{};
  /// Why the hit is not the whole prompt but its last token (empty when it is).
  std::string reason;

  /// For the cache: the confirmed nodes from the first page, each with its version then.
  struct link {
    std::int32_t node = -1;
    std::uint64_t version = 0;
  };
  std::vector<link> chain;
  const void* cache = nullptr;
};

namespace detail {

/// The logical pages a group holds for a sequence of p tokens (p a multiple of the page
/// size) to go on from: [0, sink_pages) and [recent_first, p / P).
struct hit_pages {
  std::int64_t sink_pages = 0;
  std::int64_t recent_first = 0;
  std::int64_t end = 0;
  std::int64_t count() const { return sink_pages + (end - recent_first); }
  std::int64_t logical_page(std::int64_t entry) const {
    return entry < sink_pages ? entry : recent_first + (entry - sink_pages);
  }
};

inline hit_pages pages_for_hit(const window_shape& seen, std::int64_t p, std::int64_t page_tokens) {
  hit_pages h;
  if (p <= 0) return h;
  h.end = p / page_tokens;
  const std::int64_t sinks = seen.sink_end(p);
  h.sink_pages = (sinks + page_tokens - 1) / page_tokens;
  h.recent_first = seen.recent_begin(p) / page_tokens;
  if (h.sink_pages >= h.recent_first) h.sink_pages = h.recent_first = 0;  // one run
  return h;
}

/// Returns the words that name a window in a message: "full attention", "a sliding window of
/// 1024 tokens", ...
inline std::string window_words(const window_shape& w) {
  switch (w.kind) {
    case window_kind::full:
      return "full attention";
    case window_kind::sliding:
      return "a sliding window of " + std::to_string(w.tokens) + " tokens";
    case window_kind::chunked:
      return "chunks of " + std::to_string(w.tokens) + " tokens";
    default:
      return std::to_string(w.sink_tokens) + " sink and " + std::to_string(w.tokens) +
             " recent tokens";
  }
}

/// The largest p every group serves, and why it is not more.
struct hit_search {
  std::int64_t tokens = 0;
  std::vector<std::int64_t> group_tokens;
  std::string reason;
};

/// What a group holds of a chain's page: nothing, its sinks only, or every position.
enum class held_page : std::uint8_t { none, sinks_only, whole };

/// What a hit needs of the recurrent layers: a snapshot at its end.
struct state_need {
  int layer = -1;              ///< a layer with a recurrent state (-1: none)
  bool kept = false;           ///< whether the cache keeps snapshots at all
  std::vector<bool> snapshot;  ///< per chain page j: a snapshot at the end of page j
};

/// Finds the hit of a prompt of `prompt` tokens whose first pages the index holds by content
/// (chain_pages of them): held[g][j] is what group g holds of the j-th.
/// windows[g]: what group g's layers see; first_layer[g]: a layer of it, for the message.
inline hit_search search_hit(std::span<const window_shape> windows,
                             std::span<const int> first_layer, std::int64_t page_tokens,
                             std::int64_t prompt, std::int64_t chain_pages,
                             const state_need& states,
                             const std::vector<std::vector<held_page>>& holding) {
  const auto holds = [&](int g, std::int64_t j, bool whole_page) {
    const held_page h = at(at(holding, g), j);
    return whole_page ? h == held_page::whole : h != held_page::none;
  };
  const auto groups = static_cast<int>(windows.size());
  hit_search result;
  result.group_tokens.assign(windows.size(), 0);
  // held[g][j], whole[g][j]: pages among the chain's first j that group g holds (wholly).
  std::vector<std::vector<std::int64_t>> held(windows.size()), whole(windows.size());
  for (int g = 0; g < groups; ++g) {
    std::vector<std::int64_t>&h = at(held, g), &w = at(whole, g);
    h.assign(static_cast<std::size_t>(chain_pages) + 1, 0);
    w.assign(static_cast<std::size_t>(chain_pages) + 1, 0);
    for (std::int64_t j = 0; j < chain_pages; ++j) {
      at(h, j + 1) = at(h, j) + (holds(g, j, false) ? 1 : 0);
      at(w, j + 1) = at(w, j) + (holds(g, j, true) ? 1 : 0);
    }
  }
  const auto serves = [&](int g, std::int64_t k) {
    const hit_pages need = pages_for_hit(at(windows, g), k * page_tokens, page_tokens);
    const std::vector<std::int64_t>&h = at(held, g), &w = at(whole, g);
    return at(h, need.sink_pages) == need.sink_pages &&
           at(w, need.end) - at(w, need.recent_first) == need.end - need.recent_first;
  };
  const std::int64_t most = prompt > 0 ? (prompt - 1) / page_tokens : 0;  // leave one token
  const std::int64_t limit = chain_pages < most ? chain_pages : most;
  for (int g = 0; g < groups; ++g)
    for (std::int64_t k = limit; k > 0; --k)
      if (serves(g, k)) {
        at(result.group_tokens, g) = k * page_tokens;
        break;
      }
  const auto all_serve = [&](std::int64_t k) {
    bool all = true;
    for (int g = 0; g < groups && all; ++g) all = serves(g, k);
    return all;
  };
  const auto has_state = [&](std::int64_t k) {
    return states.layer < 0 || (states.kept && at(states.snapshot, k - 1));
  };
  std::int64_t pages_k = limit;  // the longest hit the pages allow
  while (pages_k > 0 && !all_serve(pages_k)) --pages_k;
  std::int64_t k = pages_k;
  while (k > 0 && !(has_state(k) && all_serve(k))) --k;
  result.tokens = k * page_tokens;
  // Why not more: the first reason that applies.
  if (most == 0) {
    result.reason = "the prompt has " + std::to_string(prompt) +
                    " tokens; a hit needs a full page (" + std::to_string(page_tokens) +
                    " tokens) before its last token";
  } else if (states.layer >= 0 && !states.kept) {
    result.reason = "layer " + std::to_string(states.layer) +
                    " keeps a recurrent state, and the cache keeps no snapshot of it (capacity "
                    "state_snapshots is 0): no prefix can be reused";
  } else if (k < pages_k) {
    result.reason = "layer " + std::to_string(states.layer) +
                    " keeps a recurrent state: a hit needs a snapshot of it at its end, and the "
                    "index holds none at position " +
                    std::to_string(pages_k * page_tokens) + " (the longest hit the pages allow)" +
                    (k > 0 ? "; the longest hit with one is " + std::to_string(k * page_tokens)
                           : std::string(", nor at any shorter hit the pages allow"));
  } else if (k < limit) {
    int g = 0;
    while (g + 1 < groups && serves(g, limit)) ++g;
    const window_shape& w = at(windows, g);
    const std::int64_t p = limit * page_tokens;
    const hit_pages need = pages_for_hit(w, p, page_tokens);
    std::int64_t missing = -1;  // the last needed page the group lacks
    for (std::int64_t e = 0; e < need.count(); ++e)
      if (!holds(g, need.logical_page(e), e >= need.sink_pages)) missing = need.logical_page(e);
    const std::int64_t sinks = w.sink_end(p);
    const std::string needed =
        need.sink_pages > 0
            ? "0-" + std::to_string(sinks - 1) + " and " + std::to_string(w.recent_begin(p)) + "-"
            : std::to_string(sinks > 0 ? 0 : w.recent_begin(p)) + "-";
    result.reason = "group " + std::to_string(g) + " (layer " + std::to_string(at(first_layer, g)) +
                    ", " + window_words(w) + ") needs positions " + needed + std::to_string(p - 1) +
                    " for a hit of " + std::to_string(p) +
                    " tokens, and the index holds them only from " +
                    std::to_string((missing + 1) * page_tokens);
  } else if (limit < most) {
    result.reason = "the index holds the prompt's content up to position " +
                    std::to_string(chain_pages * page_tokens) + "; its page " +
                    std::to_string(chain_pages) + " (positions " +
                    std::to_string(chain_pages * page_tokens) + "-" +
                    std::to_string((chain_pages + 1) * page_tokens - 1) + ") is not stored";
  }
  return result;
}

}  // namespace detail
}  // namespace kvc
