#pragma once
// What an append step asks of a kv_cache before it takes anything: whether each request of
// the batch may be planned at all (the one check plan_append throws from and admit answers
// with), and how many pages each sequence's step takes from each group's pool (its fresh
// pages, and a copy of a shared page it writes into). tokens_that_fit turns the second into
// "how many more tokens fit".
//
//   if (auto error = detail::batch_demand(table, batch, need_of, pages)) throw *error;
//   detail::step_need need = detail::step_need_of(s, g, kept, page_tokens, pool, n, tokens);
//   need.pages();   // what the step takes from group g

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/sequence_table.hpp"
#include "kvc/cache/step_pages.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::detail {

/// Returns why plan_append refuses `request` before counting pages, or nothing: an unknown
/// sequence, one the batch named before (`seen`, by slot, is updated), a token count out of
/// range for the sequence, or a batch (`total` tokens so far) over 2^40 tokens.
template <int NumGroups>
std::optional<cache_error> request_error(const sequence_table<NumGroups>& sequences,
                                         const append_request& request, std::vector<bool>& seen,
                                         std::int64_t total) {
  const auto error = [](cache_errc code, const auto&... parts) {
    return make_error(code, "kvc::kv_cache::plan_append: ", parts...);
  };
  if (!sequences.contains(request.sequence)) return sequences.unknown(request.sequence);
  const std::uint32_t slot = request.sequence.slot;
  if (seen[slot])
    return error(cache_errc::duplicate_sequence, "the batch names sequence ", slot, " twice");
  seen[slot] = true;
  if (request.tokens < 0 || request.tokens > max_sequence_tokens - sequences[slot].length)
    return error(cache_errc::invalid_argument, request.tokens, " new tokens for sequence ", slot,
                 ": a count must be in 0..2^40 - length");
  if (total > max_sequence_tokens - request.tokens)
    return error(cache_errc::invalid_argument, "the batch has more than 2^40 tokens");
  return std::nullopt;
}

/// A step of one sequence in one group, and whether the page it writes into is shared
/// (then copied first): what the step takes from the group's pool (with its checkpoint pages).
struct step_need {
  step_pages step;
  bool copy_on_write = false;
  std::int64_t pages() const {
    return step.fresh + step.checkpoint_fresh + (copy_on_write ? 1 : 0);
  }
};

/// Returns the need of a step of `tokens` tokens for sequence `s` of `length` tokens in group g,
/// whose pool is `pool`, whose pages are kept for the window `kept`, with `checkpoints`.
template <int NumGroups>
step_need step_need_of(const sequence_state<NumGroups>& s, int g, const window_shape& kept,
                       const window_checkpoints& checkpoints, std::int64_t page_tokens,
                       const page_pool& pool, std::int64_t length, std::int64_t tokens) {
  const std::vector<page_id>& held = s.pages[g];
  step_need need{step_pages::of(kept, page_tokens, static_cast<std::int64_t>(held.size()), length,
                                tokens, checkpoints)};
  need.copy_on_write =
      need.step.writes_held_page && pool.references(at(held, need.step.write_entry)) > 1;
  return need;
}

/// Returns what a batch takes from the groups: per group the pages (added to `pages`) and, when
/// `needs` is given, each request's need in each group (request-major). Or the error
/// plan_append refuses the batch with for a reason other than pages: the first request's
/// request_error. need_of(slot, g, length, tokens) gives one need.
template <int NumGroups, class NeedOf>
std::optional<cache_error> batch_demand(const sequence_table<NumGroups>& sequences,
                                        std::span<const append_request> batch, NeedOf&& need_of,
                                        signed_array<std::int64_t, NumGroups>& pages,
                                        std::vector<step_need>* needs = nullptr) {
  std::vector<bool> seen(sequences.slots(), false);
  std::int64_t total = 0;
  if (needs != nullptr) needs->reserve(batch.size() * NumGroups);
  for (const append_request& request : batch) {
    if (auto error = request_error(sequences, request, seen, total)) return error;
    total += request.tokens;
    const std::uint32_t slot = request.sequence.slot;
    for (int g = 0; g < NumGroups; ++g) {
      const step_need need = need_of(slot, g, sequences[slot].length, request.tokens);
      pages[g] += need.pages();
      if (needs != nullptr) needs->push_back(need);
    }
  }
  return std::nullopt;
}

/// Returns a k in 0..high with fits(k) and, below high, not fits(k + 1), by bisection
/// (fits(0) holds): for a demand that grows with k, the largest k that fits.
template <class Fits>
std::int64_t last_that_fits(std::int64_t high, Fits&& fits) {
  std::int64_t low = 0;
  while (low < high) {
    const std::int64_t mid = low + (high - low + 1) / 2;
    if (fits(mid))
      low = mid;
    else
      high = mid - 1;
  }
  return low;
}

/// Returns the most tokens a sequence of `length` tokens listing `listed` pages can take, in one
/// step or several, where fits(k) says whether a step of k new tokens finds its pages among
/// `free_pages`: the largest k such that every step up to k fits; unlimited_tokens when a
/// bounded window's demand never outgrows them. With window checkpoints it does: a checkpoint
/// page at least every `checkpoints.every` tokens.
template <class Fits>
std::int64_t tokens_that_fit(const window_shape& kept, const window_checkpoints& checkpoints,
                             std::int64_t page_tokens, std::int64_t length, std::int64_t listed,
                             std::int64_t free_pages, Fits&& fits) {
  const std::int64_t limit = max_sequence_tokens - length;
  if (checkpoints.active()) {
    // Demand is the window's pages (which come and go) and checkpoint pages (which only grow):
    // bisect on a bound that only grows, then walk on to the first step that does not fit.
    const std::int64_t window_pages =
        kept.max_pages_held(kept.pattern_horizon(page_tokens), page_tokens) + 1;
    const std::int64_t old_last =
        kept.pages_listed(length, page_tokens, listed).last;  // -1 when empty
    const auto bound_fits = [&](std::int64_t k) {
      return k == 0 ||
             checkpoints.wanted_in(old_last + 1, (length + k - 1) / page_tokens) + window_pages <=
                 free_pages;
    };
    std::int64_t low = last_that_fits(
        limit / checkpoints.every < free_pages + 3 ? limit : (free_pages + 3) * checkpoints.every,
        bound_fits);
    // Every step up to `low` fits. The walk is bounded: past a few periods the checkpoint
    // pages alone outgrow the pool (and a walk cut short still answers steps that fit).
    for (int walked = 0; low < limit && walked < (1 << 16) && fits(low + 1); ++walked) ++low;
    return low;
  }
  if (!kept.bounded())  // pages grow with k: the largest k that fits
    return last_that_fits(std::min((free_pages + 2) * page_tokens, limit), fits);
  // A bounded window's demand is periodic once the step covers the window's pattern:
  // if nothing up to there fails, nothing ever will.
  const std::int64_t horizon = kept.pattern_horizon(page_tokens) + page_tokens;
  for (std::int64_t k = 1; k <= horizon; ++k)
    if (!fits(k)) return k - 1;
  return unlimited_tokens;
}

}  // namespace kvc::detail
