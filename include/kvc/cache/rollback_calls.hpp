#pragma once
// The rollback calls of kv_cache: fork (a child that shares the parent's first tokens),
// truncate (speculative decoding's rejected drafts), and what an engine asks before them. A
// base that the facade inherits (as admission_calls.hpp), ordering each call as the facade's
// others do: everything that can throw first, then the changes.
//
//   const kvc::sequence_id child = cache.fork(parent, n);   // shares the pages of [0, n)
//   if (cache.can_truncate(s, n)) cache.truncate(s, n);
//   cache.tokens_available(s);                             // what more steps can take

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/sequence_table.hpp"
#include "kvc/cache/step_demand.hpp"
#include "kvc/detail/index.hpp"

namespace kvc::detail {

template <class Cache, int NumGroups>
class rollback_calls {
 public:
  /// Adds a sequence with the parent's tokens, sharing every one of its pages; returns it.
  sequence_id fork(sequence_id parent) { return fork(parent, self().length(parent)); }

  /// Adds a sequence with the parent's first `tokens` tokens (beam search, a shared system
  /// prompt), sharing the pages that hold them (and the window checkpoint pages that end by
  /// then); the parent is unchanged. A shared page that either one writes is copied first.
  /// Throws rollback_exceeded when a window of the parent no longer keeps what the child
  /// would see (see truncate).
  sequence_id fork(sequence_id parent, std::int64_t tokens) {
    Cache& cache = self();
    cache.no_open_plan("fork");
    const std::uint32_t parent_slot = cache.sequences_.checked(parent);
    signed_array<std::vector<page_id>, NumGroups> pages;
    signed_array<std::vector<checkpoint_page>, NumGroups> checkpoints;
    for (int g = 0; g < NumGroups; ++g) {
      const sequence& p = cache.sequences_[parent_slot];
      pages[g].assign(p.pages[g].begin(),
                      p.pages[g].begin() + static_cast<std::ptrdiff_t>(
                                               kept_entries(parent_slot, g, tokens, "fork")));
      checkpoints[g].assign(p.checkpoints[g].begin(),
                            p.checkpoints[g].begin() + static_cast<std::ptrdiff_t>(kept_checkpoints(
                                                           p, g, tokens, Cache::page_tokens)));
    }
    // Everything that can throw is done: take the slot and the references.
    const sequence_id child = cache.sequences_.add();
    const sequence& p = cache.sequences_[parent_slot];  // add may have moved it
    sequence& c = cache.sequences_[child.slot];
    c.length = tokens;
    for (int g = 0; g < NumGroups; ++g) {
      c.pages[g] = std::move(pages[g]);
      c.checkpoints[g] = std::move(checkpoints[g]);
      c.valid_from[g] = std::min(p.valid_from[g], tokens);
      c.complete_from[g] = p.complete_from[g];
      for (page_id page : c.pages[g]) cache.storage_.pool(g).retain(page);
      for (const checkpoint_page& kept : c.checkpoints[g]) cache.storage_.pool(g).retain(kept.page);
    }
    ++cache.epoch_;
    return child;
  }

  /// Drops the sequence's tokens from position `tokens` on (the rejected draft tokens of
  /// speculative decoding): their pages go back (a shared page is only let go, never
  /// written), and so do window checkpoint pages that reach past it. A window layer must
  /// still hold everything a sequence of `tokens` tokens sees; a cache built with a rollback
  /// reserve of R guarantees that for any `tokens` at least the longest the sequence has been
  /// minus R (a speculative step of up to R drafts). Otherwise throws rollback_exceeded and
  /// changes nothing.
  void truncate(sequence_id id, std::int64_t tokens) {
    Cache& cache = self();
    cache.no_open_plan("truncate");
    const std::uint32_t slot = cache.sequences_.checked(id);
    signed_array<std::size_t, NumGroups> kept{};
    for (int g = 0; g < NumGroups; ++g) kept[g] = kept_entries(slot, g, tokens, "truncate");
    sequence& s = cache.sequences_[slot];  // nothing below throws
    for (int g = 0; g < NumGroups; ++g) {
      page_pool& pool = cache.storage_.pool(g);
      std::vector<page_id>& table = s.pages[g];
      for (std::size_t j = kept[g]; j < table.size(); ++j) pool.release(table[j]);
      table.resize(kept[g]);
      std::vector<checkpoint_page>& held_back = s.checkpoints[g];
      const std::size_t kept_back = kept_checkpoints(s, g, tokens, Cache::page_tokens);
      for (std::size_t j = kept_back; j < held_back.size(); ++j) pool.release(held_back[j].page);
      held_back.resize(kept_back);
      s.valid_from[g] = std::min(s.valid_from[g], tokens);
      // Positions from `tokens` on are written again, by steps that write checkpoint pages whole.
      s.complete_from[g] = std::min(s.complete_from[g], tokens);
    }
    s.length = tokens;
    ++cache.epoch_;
  }

  /// Returns whether truncate(sequence, tokens) (or fork(sequence, tokens)) would succeed.
  bool can_truncate(sequence_id id, std::int64_t tokens) const {
    const Cache& cache = self();
    const sequence& s = cache.sequences_[cache.sequences_.checked(id)];
    if (tokens < 0 || tokens > s.length) return false;
    for (int g = 0; g < NumGroups; ++g)
      if (!can_cut(s, g, cache.storage_.window(g), tokens)) return false;
    return true;
  }

  /// Returns how many more tokens the sequence can take, in one append or several, if no other
  /// sequence takes pages meanwhile; unlimited_tokens when its windows never run out (with
  /// window checkpoints they do).
  std::int64_t tokens_available(sequence_id id) const {
    const Cache& cache = self();
    const std::uint32_t slot = cache.sequences_.checked(id);
    std::int64_t available = unlimited_tokens;
    for (int g = 0; g < NumGroups; ++g)
      available = std::min(available, tokens_available_in_group(slot, g));
    return available;
  }

 private:
  using sequence = sequence_state<NumGroups>;
  Cache& self() { return static_cast<Cache&>(*this); }
  const Cache& self() const { return static_cast<const Cache&>(*this); }

  std::size_t kept_entries(std::uint32_t slot, int g, std::int64_t tokens, const char* who) const {
    const Cache& cache = self();
    return detail::kept_entries(cache.sequences_[slot], g, cache.storage_.window(g),
                                cache.sizing_.kept_windows[g], Cache::page_tokens, tokens, who);
  }

  std::int64_t tokens_available_in_group(std::uint32_t slot, int g) const {
    const Cache& cache = self();
    const std::int64_t n = cache.sequences_[slot].length;
    const std::int64_t free = cache.available_pages(g);
    return tokens_that_fit(
        cache.sizing_.kept_windows[g], cache.sizing_.checkpoints[g], Cache::page_tokens, n,
        static_cast<std::int64_t>(cache.sequences_[slot].pages[g].size()), free,
        [&](std::int64_t k) { return cache.step_need_of(slot, g, n, k).pages() <= free; });
  }
};

}  // namespace kvc::detail
