#pragma once
// Window checkpoints: which pages of a bounded window a cache built with
// capacity_*::checkpoint_every = N keeps after the window slid on, so that the prefix index can
// serve a hit at every multiple of N (docs/prefix-reuse.md).
//
// A hit of c tokens needs what the window shows at c: the sinks and the pages of positions
// recent_begin(c) to c - 1 (prefix_hit.hpp). Logical page j (positions [jP, (j+1)P)) is a
// checkpoint page when the first multiple of N past its start, c = (floor(jP / N) + 1) N, needs
// it; a later one needs it less (recent_begin never decreases). Whether a page is one depends on
// j alone, so every step that writes a position of it writes them all, and a checkpoint page
// the window lets go is complete.
//
//   const kvc::window_checkpoints rule{seen, N, P};
//   rule.wants(j);                    // page j is a checkpoint page
//   rule.wanted_in(first, last);      // how many of the pages first..last are

#include <cstdint>

#include "kvc/policy/window.hpp"

namespace kvc {

struct window_checkpoints {
  window_shape seen{};     ///< what the layers see (no rollback reserve)
  std::int64_t every = 0;  ///< N, a multiple of page_tokens; 0: no checkpoints
  std::int64_t page_tokens = 1;

  /// Whether there are checkpoints: a bounded window, and N a positive multiple of the page size
  /// (as the cache takes it; any other N keeps none).
  constexpr bool active() const {
    return every > 0 && page_tokens > 0 && every % page_tokens == 0 && seen.bounded();
  }

  /// Returns whether logical page j is a checkpoint page.
  constexpr bool wants(std::int64_t page) const {
    if (!active() || page < 0) return false;
    return first_wanted(page / per_period()) <= page;
  }

  /// Returns how many of the logical pages first..last are checkpoint pages, in time that does
  /// not grow with the range (the pattern repeats).
  constexpr std::int64_t wanted_in(std::int64_t first, std::int64_t last) const {
    if (!active() || last < first) return 0;
    return wanted_below(last + 1) - wanted_below(first < 0 ? 0 : first);
  }

  /// Returns the checkpoint pages a sequence grown to n tokens holds besides what `kept` (the
  /// window with the rollback reserve) lists: those before its recent run, past its sinks.
  constexpr std::int64_t pages_held(const window_shape& kept, std::int64_t n) const {
    const window_shape::kept_pages listed = kept.pages_kept(n, page_tokens);
    return wanted_in(listed.sink_pages, listed.recent_first - 1);
  }

 private:
  constexpr std::int64_t per_period() const { return every / page_tokens; }

  // The first page of period k (pages [k per, (k + 1) per)) that the checkpoint at its end wants.
  constexpr std::int64_t first_wanted(std::int64_t k) const {
    const std::int64_t wanted = seen.recent_begin((k + 1) * every) / page_tokens;
    return wanted > k * per_period() ? wanted : k * per_period();
  }
  // The checkpoint pages of period k.
  constexpr std::int64_t in_period(std::int64_t k) const {
    return (k + 1) * per_period() - first_wanted(k);
  }

  // Periods before the pattern repeats with period cycle(): a sliding or streaming window's
  // count is constant once the checkpoint is past its sinks and window; a chunked one's repeats
  // when the checkpoints come back to the same place in a chunk.
  constexpr std::int64_t head() const {
    if (seen.kind == window_kind::chunked) return 0;
    return (seen.sink_tokens + seen.tokens) / every + 1;
  }
  constexpr std::int64_t cycle() const {
    if (seen.kind != window_kind::chunked) return 1;
    std::int64_t a = seen.tokens, b = every;
    while (b != 0) {
      const std::int64_t r = a % b;
      a = b;
      b = r;
    }
    return seen.tokens / a;
  }

  // Checkpoint pages among the logical pages [0, pages).
  constexpr std::int64_t wanted_below(std::int64_t pages) const {
    const std::int64_t periods = pages / per_period();
    std::int64_t count = 0;
    const std::int64_t direct = periods < head() ? periods : head();
    for (std::int64_t k = 0; k < direct; ++k) count += in_period(k);
    if (periods > direct) {
      const std::int64_t rest = periods - direct, c = cycle();
      std::int64_t per_cycle = 0, partial = 0;
      for (std::int64_t k = 0; k < c; ++k) {
        per_cycle += in_period(direct + k);
        if (k < rest % c) partial += in_period(direct + k);
      }
      count += rest / c * per_cycle + partial;
    }
    const std::int64_t beyond = pages - first_wanted(periods);  // the last, partial period
    return count + (beyond > 0 ? beyond : 0);
  }
};

}  // namespace kvc
