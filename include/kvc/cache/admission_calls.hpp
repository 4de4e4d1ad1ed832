#pragma once
// The admission calls of kv_cache: what a batch would take, asked without taking anything and
// without exceptions, for an engine's scheduler. A base that the facade inherits (as
// prefix_calls.hpp), counting pages exactly as plan_append does: free pages, and the cached
// pages of the prefix index that a step takes when the free ones run short.
//
//   if (cache.can_append(batch)) { auto plan = cache.plan_append(batch); ... }
//   const auto a = cache.admit(batch);   // a.pages[g]: what group g would take

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "kvc/cache/requests.hpp"
#include "kvc/cache/step_demand.hpp"
#include "kvc/cache/step_pages.hpp"
#include "kvc/detail/index.hpp"

namespace kvc::detail {

template <class Cache, int NumGroups>
class admission_calls {
 public:
  /// What plan_append(batch) would do now, found without taking anything and without
  /// throwing: `valid` is false when it would refuse the batch for another reason than pages
  /// (an open plan, a released or repeated sequence, a token count out of range), and then
  /// every `pages[g]` is 0; otherwise `pages[g]` is what group g would take (fresh pages, and
  /// copies of shared pages the step writes) and `fits` whether every group has them free
  /// or cached.
  struct admission {
    bool valid = false;
    bool fits = false;
    std::array<std::int64_t, static_cast<std::size_t>(NumGroups)> pages{};
  };
  admission admit(std::span<const append_request> batch) const noexcept {
    const Cache& c = self();
    admission a;
    if (c.open_.any()) return a;
    try {  // as plan_append counts
      signed_array<std::int64_t, NumGroups> pages{};
      if (batch_demand(c.sequences_, batch, c.need_of(), pages)) return a;
      for (int g = 0; g < NumGroups; ++g) a.pages[static_cast<std::size_t>(g)] = pages[g];
    } catch (...) {  // out of memory for the check itself: nothing can be said
      return a;
    }
    a.valid = true;
    a.fits = true;
    for (int g = 0; g < NumGroups; ++g)
      a.fits = a.fits && a.pages[static_cast<std::size_t>(g)] <= c.available_pages(g);
    return a;
  }

  /// Returns whether plan_append(batch) would succeed now.
  bool can_append(std::span<const append_request> batch) const noexcept {
    const admission a = admit(batch);
    return a.valid && a.fits;
  }

  /// Returns how many new sequences of `tokens` tokens each (appended in one step) the free and
  /// cached pages hold now: the least over the groups of those pages / pages a sequence takes
  /// there (unlimited_tokens when none takes any, 0 for a negative count or one over 2^40).
  std::int64_t sequences_that_fit(std::int64_t tokens) const noexcept {
    const Cache& c = self();
    if (tokens < 0 || tokens > max_sequence_tokens) return 0;
    std::int64_t fit = unlimited_tokens;
    for (int g = 0; g < NumGroups; ++g) {
      const step_pages step = step_pages::of(c.sizing_.kept_windows[g], Cache::page_tokens, 0, 0,
                                             tokens, c.sizing_.checkpoints[g]);
      const std::int64_t pages = step.fresh + step.checkpoint_fresh;
      if (pages > 0) fit = std::min(fit, c.available_pages(g) / pages);
    }
    return fit;
  }

 private:
  const Cache& self() const { return static_cast<const Cache&>(*this); }
};

}  // namespace kvc::detail
