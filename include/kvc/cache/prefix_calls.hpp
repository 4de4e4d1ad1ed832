#pragma once
// The prefix-reuse calls of kv_cache (docs/prefix-reuse.md): a base that the facade inherits,
// so that kv_cache.hpp stays one screenful of ordering. Each call orders its work as the
// facade's others do: everything that can throw first, then the changes.
//
//   auto hit = cache.find_prefix(prompt, context);    // what the index can serve
//   const kvc::sequence_id s = cache.add_sequence(hit);  // hit.tokens tokens, shared pages
//   ... compute and append prompt[hit.tokens, n) ...
//   cache.store_prefix(s, prompt, context);             // its full pages, for later prompts
// A model with recurrent layers passes their states: store_prefix(s, prompt, context, 0,
// sources) snapshots them, add_sequence(hit, targets) writes the hit's snapshot back.

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/prefix_hit.hpp"
#include "kvc/cache/prefix_reuse.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/state_snapshots.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/prefix/page_key.hpp"

namespace kvc::detail {

template <class Cache, int NumGroups>
class prefix_calls {
 public:
  using prefix_hit = kvc::prefix_hit<NumGroups>;

  /// Returns what the prefix index can serve of a prompt: hit.tokens (whole pages, never the
  /// prompt's last token), per group what it alone could serve, and why not more. Counts a
  /// lookup. The context must be the one the pages were stored with.
  prefix_hit find_prefix(std::span<const std::int32_t> prompt,
                         const prefix::key_context& context = {}) {
    Cache& c = self();
    return c.prefix_.find(prompt, context, c.seen_windows_, c.first_layers_);
  }

  /// Adds a sequence of hit.tokens tokens that shares the pages of the hit (copied before
  /// either side writes into them, as after fork); returns it. A model with recurrent layers
  /// names where each one's state goes (in the cache's kind of memory): a hit writes its
  /// snapshot there; a miss (hit.tokens 0) writes nothing, the engine starts from its initial
  /// state. Throws stale_hit when a page or snapshot the hit names was taken back since
  /// find_prefix, invalid_argument for another cache's hit or missing targets, plan_conflict
  /// while a plan is open, what the allocator throws for a failing copy; the cache is then
  /// unchanged (a failing copy may have written some targets).
  sequence_id add_sequence(const prefix_hit& hit, std::span<const state_target> targets = {}) {
    Cache& c = self();
    c.no_open_plan("add_sequence");
    signed_array<std::vector<page_id>, NumGroups> lists;
    signed_array<std::int64_t, NumGroups> valid_from{};
    c.prefix_.take_lists(hit, c.seen_windows_, lists, valid_from);
    const recurrent_states& states = c.prefix_.states();
    const bool restores = !states.layers.empty() && hit.tokens > 0;
    if (restores || !targets.empty())
      states.order(targets, to_,
                   "kvc::kv_cache::add_sequence (a hit restores the recurrent states: a "
                   "state_target per recurrent layer)");
    if (restores) {
      const std::int32_t slot = c.prefix_.snapshot_of(hit);
      require(slot >= 0, cache_errc::stale_hit,
              "kvc::kv_cache::add_sequence: the hit is stale: its state snapshot is gone");
      for (std::size_t i = 0; i < to_.size(); ++i)
        c.storage_.copy_state(to_[i], c.storage_.state_memory(c.prefix_.state_offset(slot, i)),
                              at(states.bytes, i));
    }
    const sequence_id id = c.sequences_.add();  // the last step that can throw
    auto& s = c.sequences_[id.slot];
    s.length = hit.tokens;
    for (int g = 0; g < NumGroups; ++g) {
      s.pages[g] = std::move(lists[g]);
      s.valid_from[g] = valid_from[g];
      // A page before the hit's recent run may be the index's sinks only: not complete.
      s.complete_from[g] = valid_from[g];
      for (page_id page : s.pages[g]) c.storage_.pool(g).retain(page);
    }
    c.prefix_.used(hit);
    ++c.epoch_;
    return id;
  }

  /// Stores the full pages of the sequence's first tokens.size() tokens (their ids, which the
  /// cache does not know otherwise) in the prefix index under `context`, so that find_prefix
  /// finds them for later prompts. The index holds the pages until their memory is needed:
  /// then lower `priority` first, the least recently stored or used first among equals.
  /// Throws invalid_argument for more tokens than the sequence has, plan_conflict while a
  /// plan is open; the cache is then unchanged.
  /// A model with recurrent layers may also give their states after the sequence's last token
  /// (`states`, one per recurrent layer, in the cache's kind of memory): when the sequence
  /// ends on a page boundary and tokens are all of its tokens, the index keeps a snapshot of
  /// them at its last page, so that a hit can end there (invalid_argument otherwise, or when
  /// the cache keeps no snapshots). The least valuable snapshot goes when no slot is free.
  void store_prefix(sequence_id id, std::span<const std::int32_t> tokens,
                    const prefix::key_context& context = {}, std::int32_t priority = 0,
                    std::span<const state_source> states = {}) {
    Cache& c = self();
    c.no_open_plan("store_prefix");
    const std::uint32_t slot = c.sequences_.checked(id);
    if (!states.empty())
      c.prefix_.states().order(states, from_,
                               "kvc::kv_cache::store_prefix (a state_source per recurrent layer)");
    c.prefix_.store(
        c.sequences_[slot], tokens, context, priority,
        states.empty() ? std::span<const void* const>{} : std::span<const void* const>(from_),
        c.sizing_.kept_windows, c.sizing_.checkpoints, c.storage_);
  }

  /// Lets go of every page the prefix index holds (those no sequence holds become free).
  void clear_prefixes() {
    Cache& c = self();
    c.no_open_plan("clear_prefixes");
    c.prefix_.clear(c.storage_);
  }

  /// Sets the hash of a page's bytes (XXH3-128 by default; a cryptographic one where keys
  /// cross a trust boundary). Only while the index is empty: invalid_argument otherwise.
  void set_prefix_hash(prefix::page_key (*hash)(std::span<const std::byte>)) {
    self().prefix_.set_hash(hash);
  }

  /// Starts (or stops) recording the index's events: each page stored in the index or let go
  /// by it, per group, with its key and parent's key, for a router (off by default).
  void record_prefix_events(bool on) { self().prefix_.record_events(on); }
  /// Appends the events recorded since the last call to `out` and forgets them; on error (out
  /// of memory) nothing changed.
  void take_prefix_events(std::vector<prefix_event>& out) { self().prefix_.take_events(out); }

  /// Returns the pages of a group that only the prefix index holds: a step takes them when the
  /// free ones run short.
  std::int64_t cached_pages(int group) const { return self().storage_.pool(group).cached_pages(); }
  /// Returns the bytes of those pages, every layer of every group, and of the state snapshots
  /// (part of used_bytes()).
  std::uint64_t cached_bytes() const {
    return self().storage_.cached_bytes() + self().prefix_.snapshot_bytes();
  }
  /// Returns the recurrent-state snapshots the index holds (at most capacity_*::state_snapshots).
  std::int64_t cached_snapshots() const { return self().prefix_.snapshots().held(); }
  const prefix_counters& prefix_stats() const { return self().prefix_.counters(); }
  /// Returns the nodes of the prefix index (a page each, in one or more groups).
  std::size_t prefix_nodes() const { return self().prefix_.index().nodes(); }

 private:
  std::vector<const void*> from_;  ///< store_prefix's states, in layer order (kept: no allocation)
  std::vector<void*> to_;          ///< add_sequence's targets, likewise
  Cache& self() { return static_cast<Cache&>(*this); }
  const Cache& self() const { return static_cast<const Cache&>(*this); }
};

}  // namespace kvc::detail
