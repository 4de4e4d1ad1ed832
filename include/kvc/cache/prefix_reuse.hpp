#pragma once
// The prefix-reuse part of a kv_cache: the content index of full pages (prefix_index.hpp),
// the layout its keys are made for, the hash, the counters, and the three things the facade
// asks of it. Each call does everything that can throw before it changes anything.
//
//   detail::prefix_reuse<groups> reuse;
//   reuse.set_layout(prefix::key_layout::of<Model, Paging>());
//   auto hit = reuse.find(prompt, context, seen_windows, first_layers);
//   reuse.store(sequence, tokens, context, priority, states, kept, storage);  // its full pages
//   reuse.take_lists(hit, seen, lists, valid_from);                           // a hit's pages
//
// A model with recurrent layers also keeps snapshots of their states (state_snapshots.hpp):
// store() copies the states it is given into a slot of the node of the sequence's last page.
//
// Memory: plan_victims() picks, per group, the cached pages a step takes when the free list
// runs short; take() hands one to the step; when the step ends, settle_lent() (commit) lets
// their nodes go, restore_lent() (abort, failure) gives the pages it did not write back.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/prefix_hit.hpp"
#include "kvc/cache/prefix_index.hpp"
#include "kvc/cache/sequence_table.hpp"
#include "kvc/cache/state_snapshots.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"
#include "kvc/prefix/page_key.hpp"

namespace kvc {

/// What the prefix index has done since the cache was made.
struct prefix_counters {
  std::uint64_t lookups = 0;             ///< find_prefix calls
  std::uint64_t lookup_tokens = 0;       ///< prompt tokens they were given
  std::uint64_t hit_tokens = 0;          ///< tokens they found reusable
  std::uint64_t reused_tokens = 0;       ///< tokens of sequences started from a hit
  std::uint64_t stored_pages = 0;        ///< (page, group) pairs the index took
  std::uint64_t evicted_pages = 0;       ///< (page, group) pairs whose memory a step took back
  std::uint64_t released_pages = 0;      ///< (page, group) pairs let go by clear_prefixes
  std::uint64_t stored_snapshots = 0;    ///< recurrent-state snapshots the index took
  std::uint64_t evicted_snapshots = 0;   ///< snapshots let go for room, or with their page
  std::uint64_t released_snapshots = 0;  ///< snapshots let go by clear_prefixes
};

/// A change of the prefix index, for routers that track what each engine holds (as vLLM's KV
/// events): a page stored in the index for a layer group, or let go by it; for a model with
/// recurrent layers, also a snapshot of their states at the page's end (group -1).
struct prefix_event {
  enum class change : std::uint8_t { stored, removed, state_stored, state_removed };
  change what = change::stored;
  prefix::page_key key;     ///< the page's content key
  prefix::page_key parent;  ///< its parent's key (root_key for a prompt's first page)
  std::int64_t page = 0;    ///< its positions: [page * page_tokens, (page + 1) * page_tokens)
  int group = 0;            ///< the layer group (-1 for a state snapshot)
  window_shape window;      ///< what that group's layers see
};

namespace detail {

template <int NumGroups>
class prefix_reuse {
 public:
  using hit_type = prefix_hit<NumGroups>;
  using index_type = prefix_index<NumGroups>;
  using sequence = sequence_state<NumGroups>;

  /// Sets the layout the keys are made for and each group's window (the cache's, once).
  void set_layout(const prefix::key_layout& layout, std::span<const window_shape> windows) {
    layout_ = layout;
    std::copy(windows.begin(), windows.end(), windows_.begin());
  }

  /// Sets the number of snapshot slots (capacity_*::state_snapshots) and where each recurrent
  /// layer's state lies in a snapshot (the cache's, once).
  void set_snapshots(std::int64_t count, recurrent_states states) {
    snapshots_ = snapshot_slots(count);
    states_ = std::move(states);
  }
  const recurrent_states& states() const { return states_; }
  const snapshot_slots& snapshots() const { return snapshots_; }
  /// Returns the bytes of the snapshots nodes hold.
  std::uint64_t snapshot_bytes() const {
    return static_cast<std::uint64_t>(snapshots_.held()) * states_.total;
  }
  /// Returns where recurrent layer i's state lies in the snapshot of slot `slot`.
  std::uint64_t state_offset(std::int32_t slot, std::size_t i) const {
    return static_cast<std::uint64_t>(slot) * states_.total + at(states_.offsets, i);
  }
  /// Returns the snapshot slot at a hit's end (after take_lists confirmed the hit), or -1.
  std::int32_t snapshot_of(const hit_type& hit) const {
    return hit.chain.empty() ? -1 : index_[hit.chain.back().node].snapshot;
  }

  /// Starts or stops recording events (stopping drops those not taken).
  void record_events(bool on) {
    recording_ = on;
    if (!on) events_.clear();
  }
  /// Appends the events recorded since the last call to `out`, then forgets them. On error
  /// (out of memory) nothing changed.
  void take_events(std::vector<prefix_event>& out) {
    out.insert(out.end(), events_.begin(), events_.end());
    events_.clear();
  }

  const index_type& index() const { return index_; }
  const prefix_counters& counters() const { return counters_; }
  std::int64_t page_tokens() const { return layout_.page_tokens; }

  /// Sets the hash of a page's bytes; only while the index is empty (keys would disagree).
  void set_hash(page_hash_fn hash) {
    require(hash != nullptr && index_.nodes() == 0, cache_errc::invalid_argument,
            "kvc::kv_cache::set_prefix_hash: give a hash, and only while the prefix index is "
            "empty");
    hash_ = hash;
  }

  /// Looks a prompt up: the hit, from the confirmed chain of its pages.
  hit_type find(std::span<const std::int32_t> prompt, const prefix::key_context& context,
                std::span<const window_shape> seen, std::span<const int> first_layer) {
    const auto n = static_cast<std::int64_t>(prompt.size());
    const std::int64_t pages = n > 0 ? (n - 1) / page_tokens() : 0;
    records_of(layout_, context, prompt, static_cast<std::size_t>(pages), hash_, records_);
    const page_records& records = records_;
    const std::vector<std::int32_t> chain = index_.match(records);
    std::vector<std::vector<held_page>> holding(NumGroups);
    for (int g = 0; g < NumGroups; ++g)
      for (const std::int32_t node : chain) {
        const auto& x = index_[node];
        at(holding, g)
            .push_back(x.pages[g] < 0    ? held_page::none
                       : x.sinks_only[g] ? held_page::sinks_only
                                         : held_page::whole);
      }
    state_need need;
    need.layer = states_.layers.empty() ? -1 : states_.layers.front();
    need.kept = snapshots_.enabled();
    if (need.layer >= 0)
      for (const std::int32_t node : chain) need.snapshot.push_back(index_[node].snapshot >= 0);
    const hit_search search = search_hit(seen, first_layer, page_tokens(), n,
                                         static_cast<std::int64_t>(chain.size()), need, holding);
    hit_type hit;
    hit.tokens = search.tokens;
    hit.matched_tokens = static_cast<std::int64_t>(chain.size()) * page_tokens();
    for (int g = 0; g < NumGroups; ++g) hit.group_tokens[g] = at(search.group_tokens, g);
    hit.reason = search.reason;
    for (std::int64_t j = 0; j < hit.tokens / page_tokens(); ++j)
      hit.chain.push_back({at(chain, j), index_[at(chain, j)].version});
    hit.cache = this;
    ++counters_.lookups;
    counters_.lookup_tokens += static_cast<std::uint64_t>(n);
    counters_.hit_tokens += static_cast<std::uint64_t>(hit.tokens);
    return hit;
  }

  /// Fills, per group, the pages a sequence started from `hit` lists and its valid_from, or
  /// throws: invalid_argument for another cache's hit, stale_hit when a page it names was
  /// taken back since. Changes nothing.
  void take_lists(const hit_type& hit, std::span<const window_shape> seen,
                  signed_array<std::vector<page_id>, NumGroups>& lists,
                  signed_array<std::int64_t, NumGroups>& valid_from) const {
    require(hit.cache == this, cache_errc::invalid_argument,
            "kvc::kv_cache::add_sequence: the hit was found in another cache");
    const std::int64_t pages = hit.tokens / page_tokens();
    require(hit.tokens >= 0 && hit.tokens % page_tokens() == 0 &&
                static_cast<std::int64_t>(hit.chain.size()) == pages,
            cache_errc::invalid_argument, "kvc::kv_cache::add_sequence: the hit was altered");
    for (const typename hit_type::link& l : hit.chain)
      require(l.node >= 0 && static_cast<std::size_t>(l.node) < index_.all().size() &&
                  index_[l.node].alive && index_[l.node].version == l.version,
              cache_errc::stale_hit,
              "kvc::kv_cache::add_sequence: the hit is stale: a page it names was taken back "
              "or changed since find_prefix; look the prompt up again");
    for (int g = 0; g < NumGroups; ++g) {
      const hit_pages need = pages_for_hit(at(seen, g), hit.tokens, page_tokens());
      lists[g].clear();
      lists[g].reserve(static_cast<std::size_t>(need.count()));
      for (std::int64_t e = 0; e < need.count(); ++e)
        lists[g].push_back(index_[at(hit.chain, need.logical_page(e)).node].pages[g]);
      valid_from[g] = need.recent_first * page_tokens();
    }
  }

  /// Records that a sequence started from the hit: its pages were used now.
  void used(const hit_type& hit) noexcept {
    ++tick_;
    for (auto l = hit.chain.rbegin(); l != hit.chain.rend(); ++l)  // the deepest goes first
      index_.touch(l->node, tick_, index_[l->node].priority);
    if (const std::int32_t slot = snapshot_of(hit); slot >= 0) snapshots_.touch(slot, tick_);
    counters_.reused_tokens += static_cast<std::uint64_t>(hit.tokens);
  }

  /// Stores the full pages of a sequence's first tokens.size() tokens: a node per page not
  /// yet indexed, and each group's page where its node lacks one and the sequence holds it
  /// complete. Stops at a key whose node holds other content (a collision): nothing after it
  /// is stored. states (one per recurrent layer, in order; empty: none) are the recurrent
  /// states after every token of the sequence, which must end on a page boundary: they are
  /// copied into a snapshot of its last page's node (the least valuable snapshot goes when no
  /// slot is free). Throws invalid_argument for more tokens than the sequence has, or states
  /// that cannot be kept; a failing copy throws what the allocator throws. Then nothing changed.
  template <class Storage>
  void store(const sequence& s, std::span<const std::int32_t> tokens,
             const prefix::key_context& context, std::int32_t priority,
             std::span<const void* const> states, std::span<const window_shape> kept,
             std::span<const window_checkpoints> checkpoints, Storage& storage) {
    const auto count = static_cast<std::int64_t>(tokens.size());
    const std::int64_t P = page_tokens();
    require(count <= s.length, cache_errc::invalid_argument, "kvc::kv_cache::store_prefix: ", count,
            " tokens, the sequence holds ", s.length);
    require(states.empty() || snapshots_.enabled(), cache_errc::invalid_argument,
            "kvc::kv_cache::store_prefix: the cache keeps no state snapshots (capacity "
            "state_snapshots is 0)");
    require(states.empty() || (count == s.length && count > 0 && count % P == 0),
            cache_errc::invalid_argument,
            "kvc::kv_cache::store_prefix: a state snapshot is taken at the end of the sequence, "
            "on a page boundary: give all its tokens, a multiple of ",
            P, " (", count, " given, the sequence holds ", s.length, ")");
    records_of(layout_, context, tokens, tokens.size() / static_cast<std::size_t>(P), hash_,
               records_);
    const page_records& records = records_;
    // What each page becomes: an existing node, or a new one; stop at a collision.
    std::vector<std::int32_t> nodes;
    std::int32_t parent = -1;
    bool fresh = false;
    for (std::size_t j = 0; j < records.size(); ++j) {
      const std::int32_t n = index_.find(records.keys[j]);
      if (n >= 0 && (fresh || !index_.same_content(n, parent, j, records.record(j)))) break;
      fresh = fresh || n < 0;
      nodes.push_back(n);
      parent = n;
    }
    nodes.resize(first_repeat(records, nodes));
    // The page each group gives each of them (-1: none).
    std::vector<written_page> given(nodes.size() * static_cast<std::size_t>(NumGroups));
    std::size_t useful = 0;  // pages past the last one with a page to give add nothing
    for (std::size_t j = 0; j < nodes.size(); ++j)
      for (int g = 0; g < NumGroups; ++g) {
        const written_page page =
            page_of(s, g, static_cast<std::int64_t>(j), at(kept, g), at(checkpoints, g));
        if (page.page >= 0 && !storage.pool(g).indexed(page.page) &&
            (nodes[j] < 0 || index_[nodes[j]].pages[g] < 0)) {  // a page is in one node only
          given[j * static_cast<std::size_t>(NumGroups) + static_cast<std::size_t>(g)] = page;
          useful = j + 1;
        }
      }
    std::size_t adding = 0;
    for (std::size_t j = 0; j < useful; ++j)
      if (nodes[j] < 0) ++adding;
    // The node of the last page takes the snapshot, unless it has one or is not kept.
    std::size_t snapshot_page = nodes.size();
    if (const std::size_t last = static_cast<std::size_t>(count / P) - 1;
        !states.empty() && last < nodes.size() &&
        (nodes[last] >= 0 ? index_[nodes[last]].snapshot < 0 : last < useful))
      snapshot_page = last;
    std::vector<std::vector<std::byte>> bytes(adding);
    for (std::size_t j = 0, a = 0; j < useful; ++j)
      if (nodes[j] < 0) {
        const std::span<const std::byte> r = records.record(j);
        bytes[a++].assign(r.begin(), r.end());
      }
    index_.reserve(adding);
    index_.reserve_priority(priority);
    if (recording_) {
      std::size_t stored = 2;  // a snapshot, and one that makes room
      for (const written_page& page : given) stored += page.page >= 0 ? 1u : 0u;
      events_.reserve(events_.size() + stored);
    }
    std::int32_t room = -1;  // the slot that makes room
    if (snapshot_page < nodes.size()) {
      if (!snapshots_.has_free()) room = snapshots_.victim();
      for (std::size_t i = 0; i < states_.layers.size(); ++i)  // into the spare: may throw
        storage.copy_state(storage.state_memory(state_offset(snapshots_.spare(), i)), states[i],
                           at(states_.bytes, i));
    }
    // Nothing below throws.
    ++tick_;
    parent = -1;
    for (std::size_t j = 0, a = 0; j < useful; ++j) {
      std::int32_t n = nodes[j];
      if (n < 0)
        n = index_.add(records.keys[j], parent, static_cast<std::int64_t>(j), std::move(bytes[a++]),
                       tick_, priority);
      for (int g = 0; g < NumGroups; ++g)
        if (const written_page page =
                given[j * static_cast<std::size_t>(NumGroups) + static_cast<std::size_t>(g)];
            page.page >= 0) {
          storage.pool(g).hold_for_index(page.page);
          index_.attach(n, g, page.page, page.sinks_only);
          log(prefix_event::change::stored, n, g);
          ++counters_.stored_pages;
        }
      nodes[j] = n;
      parent = n;
    }
    // Used now, the deepest first: of this prompt's pages it goes first.
    if (snapshot_page < nodes.size()) {
      keep_snapshot(nodes[snapshot_page], room, priority);
      if (snapshot_page >= useful) index_.touch(nodes[snapshot_page], tick_, priority);
    }
    for (std::size_t j = useful; j-- > 0;) index_.touch(nodes[j], tick_, priority);
  }

  /// Picks, for each group, the cached pages a step takes beyond the free list (needed[g]
  /// pages in all). May throw (then nothing changed).
  template <class Storage>
  void plan_victims(const signed_array<std::int64_t, NumGroups>& needed, const Storage& storage) {
    for (int g = 0; g < NumGroups; ++g) {
      lent_[g] = 0;
      index_.victims(g, storage.pool(g), needed[g] - storage.pool(g).free_pages(), picked_);
      victims_[g].clear();
      for (const auto& [n, page] : picked_)
        victims_[g].push_back({n, page, index_[n].sinks_only[g], false});
      // A node that goes may take snapshots with it.
      if (recording_)
        events_.reserve(events_.size() + victims_[g].size() +
                        static_cast<std::size_t>(snapshots_.held()));
    }
  }
  /// Takes a page of group g for a step: a free one, else the next victim's, which the index
  /// lists no more (a hit that names it is stale) until the step ends.
  page_id take(int g, page_pool& pool) {
    if (pool.free_pages() > 0) return pool.allocate();
    const lent_page& v = at(victims_[g], lent_[g]++);
    pool.lend_from_index(v.page);
    index_.detach(v.node, g);
    return v.page;
  }
  /// Ends a step that keeps what it took: the nodes of the lent pages may go.
  void settle_lent() noexcept {
    for (int g = 0; g < NumGroups; ++g)
      for (std::size_t i = 0; i < lent_[g]; ++i) forget(at(victims_[g], i).node, g);
  }
  /// Ends a step that gives back what it took: a lent page that written(g, page) says the step
  /// wrote into is forgotten (the step frees it); the others go back to the index, and
  /// restored(g, page) names them until the next step.
  template <class Storage, class Written>
  void restore_lent(Storage& storage, Written&& written) noexcept {
    for (int g = 0; g < NumGroups; ++g)
      for (std::size_t i = 0; i < lent_[g]; ++i) {
        lent_page& v = at(victims_[g], i);
        if (written(g, v.page)) continue;
        storage.pool(g).return_to_index(v.page);
        index_.attach(v.node, g, v.page, v.sinks_only);
        v.restored = true;
      }
    for (int g = 0; g < NumGroups; ++g)  // after every restore: a node may hold two of them
      for (std::size_t i = 0; i < lent_[g]; ++i)
        if (!at(victims_[g], i).restored) forget(at(victims_[g], i).node, g);
  }
  /// Returns whether a page of the step that ended went back to the index.
  bool restored(int g, page_id page) const noexcept {
    for (std::size_t i = 0; i < lent_[g]; ++i)
      if (at(victims_[g], i).restored && at(victims_[g], i).page == page) return true;
    return false;
  }
  /// Returns the nodes whose pages an open step took (the invariants allow them empty).
  bool lent_from(std::int32_t n) const noexcept {
    for (int g = 0; g < NumGroups; ++g)
      for (std::size_t i = 0; i < lent_[g]; ++i)
        if (at(victims_[g], i).node == n) return true;
    return false;
  }
  void end_step() noexcept { lent_.fill(0); }

  /// Drops every page of the index and every node. On error (out of memory for the events)
  /// nothing changed.
  template <class Storage>
  void clear(Storage& storage) {
    if (recording_)
      events_.reserve(events_.size() + held_pages() + static_cast<std::size_t>(snapshots_.held()));
    for (std::size_t n = 0; n < index_.all().size(); ++n) {
      const auto& x = index_.all()[n];
      if (!x.alive) continue;
      for (int g = 0; g < NumGroups; ++g)
        if (x.pages[g] >= 0) {
          log(prefix_event::change::removed, static_cast<std::int32_t>(n), g);
          storage.pool(g).drop_from_index(x.pages[g]);
          ++counters_.released_pages;
        }
      if (x.snapshot >= 0) {
        log(prefix_event::change::state_removed, static_cast<std::int32_t>(n), -1);
        ++counters_.released_snapshots;
      }
    }
    index_ = index_type{};
    snapshots_.clear();
  }

 private:
  static bool key_order(const std::pair<prefix::page_key, std::size_t>& a,
                        const std::pair<prefix::page_key, std::size_t>& b) {
    return a.first.low != b.first.low     ? a.first.low < b.first.low
           : a.first.high != b.first.high ? a.first.high < b.first.high
                                          : a.second < b.second;
  }
  // Returns the first page whose new key repeats an earlier page's key of the same call (a
  // collision within one prompt), or nodes.size().
  static std::size_t first_repeat(const page_records& records,
                                  const std::vector<std::int32_t>& nodes) {
    std::vector<std::pair<prefix::page_key, std::size_t>> fresh;
    for (std::size_t j = 0; j < nodes.size(); ++j)
      if (nodes[j] < 0) fresh.emplace_back(records.keys[j], j);
    std::sort(fresh.begin(), fresh.end(), &key_order);
    std::size_t first = nodes.size();
    for (std::size_t i = 1; i < fresh.size(); ++i)
      if (fresh[i].first == fresh[i - 1].first) first = std::min(first, fresh[i].second);
    return first;
  }

  struct written_page {
    page_id page = -1;
    bool sinks_only = false;
  };
  // Returns the page of the sequence's list in group g that holds logical page j, if its
  // positions hold K/V: every one (in the sinks, from valid_from on, or a complete checkpoint
  // page), or the sinks only; else a checkpoint page the window let go.
  written_page page_of(const sequence& s, int g, std::int64_t j, const window_shape& kept,
                       const window_checkpoints& checkpoints) const {
    const std::int64_t P = page_tokens();
    const std::vector<page_id>& list = s.pages[g];
    if (list.empty()) return {};
    const std::int64_t entry =
        kept.pages_listed(s.length, P, static_cast<std::int64_t>(list.size())).entry_of(j);
    if (entry < 0) {
      const page_id held_back = checkpoint_holding(s, g, j);
      return held_back >= 0 ? written_page{held_back} : written_page{};
    }
    const std::int64_t sinks = kept.sink_end(s.length);
    const std::int64_t first_recent = std::max(j * P, sinks);
    if (first_recent >= (j + 1) * P || first_recent >= s.valid_from[g] ||
        (checkpoints.wants(j) && j * P >= s.complete_from[g]))
      return {at(list, entry)};
    return j * P < sinks ? written_page{at(list, entry), true} : written_page{};
  }

  index_type index_;
  prefix::key_layout layout_;
  page_hash_fn hash_ = xxh3_page_hash;
  std::uint64_t tick_ = 0;
  prefix_counters counters_;
  signed_array<window_shape, NumGroups> windows_{};
  bool recording_ = false;
  std::vector<prefix_event> events_;
  snapshot_slots snapshots_;
  recurrent_states states_;
  page_records records_;  ///< the keys and bytes of the prompt at hand (kept: no allocation)
  struct lent_page {
    std::int32_t node = -1;
    page_id page = -1;
    bool sinks_only = false;
    bool restored = false;
  };
  // Records that node n let go of its page in group g (lent to a step, or written), and
  // removes the node if that left it empty.
  void forget(std::int32_t n, int g) noexcept {
    log(prefix_event::change::removed, n, g);
    index_.prune(n, snapshot_dropper{*this});
    ++counters_.evicted_pages;
  }
  // Lets the snapshot of a node that goes go with it.
  struct snapshot_dropper {
    prefix_reuse& reuse;
    void operator()(std::int32_t n) const noexcept { reuse.drop_snapshot(n); }
  };
  void drop_snapshot(std::int32_t n) noexcept {
    const std::int32_t slot = index_[n].snapshot;
    if (slot < 0) return;
    log(prefix_event::change::state_removed, n, -1);
    index_.set_snapshot(n, -1);
    snapshots_.release(slot);
    ++counters_.evicted_snapshots;
  }
  // Gives node n the spare, whose copy succeeded; the snapshot in slot `room` (if any) makes
  // room for it and becomes the spare.
  void keep_snapshot(std::int32_t n, std::int32_t room, std::int32_t priority) noexcept {
    if (room >= 0) {
      const std::int32_t owner = snapshots_.owner(room);
      log(prefix_event::change::state_removed, owner, -1);
      index_.set_snapshot(owner, -1);
      ++counters_.evicted_snapshots;
    }
    index_.set_snapshot(n, snapshots_.spare());
    snapshots_.give_spare(n, room, tick_, priority);
    log(prefix_event::change::state_stored, n, -1);
    ++counters_.stored_snapshots;
  }
  // Records an event of node n and group g, in room reserved before the change.
  void log(prefix_event::change what, std::int32_t n, int g) noexcept {
    if (!recording_) return;
    const auto& x = index_[n];
    events_.push_back({what, x.key, x.parent >= 0 ? index_[x.parent].key : prefix::root_key, x.page,
                       g, g >= 0 ? windows_[g] : window_shape{}});
  }
  std::size_t held_pages() const {
    std::size_t pages = 0;
    for (const auto& x : index_.all())
      if (x.alive)
        for (int g = 0; g < NumGroups; ++g) pages += x.pages[g] >= 0 ? 1u : 0u;
    return pages;
  }

  std::vector<std::pair<std::int32_t, page_id>> picked_;
  signed_array<std::vector<lent_page>, NumGroups> victims_;  ///< the open step's, in order
  signed_array<std::size_t, NumGroups> lent_{};              ///< how many of them it took
};

}  // namespace detail
}  // namespace kvc
