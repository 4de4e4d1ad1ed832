#pragma once
// What tests may ask of a kv_cache beyond its API: whether its parts agree. Kept apart from
// the facade (which only forwards check_invariants), as abseil keeps its hash table's debug
// access, so that the check can read every part without the API exposing them.
//
//   cache.check_invariants();   // std::logic_error naming the group, page or sequence
//
// What holds between calls: every page's reference count equals the page-list entries (and
// open-plan pages) naming it; the free list holds exactly the unreferenced pages, once each;
// a released sequence lists nothing; a live one lists at most the pages its window keeps
// (after a truncation or a fork at a position maybe fewer recent ones), none only when
// empty, and always the page of the first position its window shows; its checkpoint pages are
// pages the rule wants, in order, before its list's run. The prefix index's
// pages count one reference each; its key table and its parent links agree with its nodes.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvc/cache/append_plan.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/sequence_table.hpp"
#include "kvc/cache/state_snapshots.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::detail {

struct cache_debug_access {
  template <class Cache>
  static void check_invariants(const Cache& cache) {
    for (int g = 0; g < Cache::num_groups; ++g) {
      const page_pool& pool = cache.storage_.pool(g);
      std::vector<std::int32_t> references(static_cast<std::size_t>(pool.capacity()), 0);
      for (const auto& s : cache.sequences_.all()) {
        check_lists(s, g, cache.sizing_.kept_windows[g], Cache::page_tokens);
        check_checkpoints(s, g, cache.sizing_.kept_windows[g], cache.sizing_.checkpoints[g],
                          Cache::page_tokens);
        for (page_id p : s.pages[g]) ++references[static_cast<std::size_t>(p)];
        for (const checkpoint_page& c : s.checkpoints[g])
          ++references[static_cast<std::size_t>(c.page)];
      }
      if (const append_plan* plan = cache.open_.plan())  // its pages are its own until commit
        plan->for_each_taken(count_taken{g, references});
      check_index_pages(cache.prefix_.index(), pool, g, references);
      check_pool(pool, g, references);
    }
    check_index(cache.prefix_.index(), cache.prefix_);
  }

 private:
  struct count_taken {  // a functor, not a lambda: its names stay out of -Wshadow
    int g;
    std::vector<std::int32_t>& references;
    void operator()(int plan_group, page_id page) const {
      if (plan_group == g) ++references[static_cast<std::size_t>(page)];
    }
  };

  // Counts the index's references in group g: each page once, marked indexed in the pool, and
  // the pool's cached count is the indexed pages nobody else holds.
  template <class Index>
  static void check_index_pages(const Index& index, const page_pool& pool, int g,
                                std::vector<std::int32_t>& references) {
    std::vector<bool> indexed(references.size(), false);
    for (const auto& x : index.all()) {
      if (!x.alive || x.pages[g] < 0) continue;
      const auto i = static_cast<std::size_t>(x.pages[g]);
      if (indexed[i] || !pool.indexed(x.pages[g]))
        throw std::logic_error("group " + std::to_string(g) + ": page " +
                               std::to_string(x.pages[g]) +
                               " is listed by two index nodes, or not marked indexed");
      indexed[i] = true;
      ++references[i];
    }
    std::int64_t cached = 0;
    for (page_id p = 0; p < pool.capacity(); ++p) {
      const auto i = static_cast<std::size_t>(p);
      if (pool.indexed(p) != indexed[i])
        throw std::logic_error("group " + std::to_string(g) + ": page " + std::to_string(p) +
                               " is marked indexed, and no index node lists it");
      if (indexed[i] && pool.references(p) == 1) ++cached;
    }
    if (cached != pool.cached_pages())
      throw std::logic_error("group " + std::to_string(g) + ": " + std::to_string(cached) +
                             " pages are only the index's, the pool counts " +
                             std::to_string(pool.cached_pages()));
  }

  // The key table finds every live node, and only those; a child lists its parent, which
  // lists it; a node without pages has a child (a link of a chain), or an open step took its
  // page.
  template <class Index, class Reuse>
  static void check_index(const Index& index, const Reuse& reuse) {
    std::size_t live = 0;
    const auto nodes = index.all();
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const auto& x = nodes[n];
      if (!x.alive) continue;
      ++live;
      const auto id = static_cast<std::int32_t>(n);
      bool has_page = false;
      for (page_id p : x.pages) has_page = has_page || p >= 0;
      bool listed = x.parent < 0;
      if (x.parent >= 0) {
        const auto& parent = nodes[static_cast<std::size_t>(x.parent)];
        for (std::int32_t c = parent.first_child; c >= 0 && !listed;
             c = nodes[static_cast<std::size_t>(c)].next_sibling)
          listed = c == id;
        listed = listed && parent.alive && parent.page + 1 == x.page;
      }
      if (index.find(x.key) != id || !listed ||
          (!has_page && x.first_child < 0 && !reuse.lent_from(id)) || (x.parent < 0 && x.page != 0))
        throw std::logic_error("prefix index: node " + std::to_string(n) + " (page " +
                               std::to_string(x.page) +
                               ") is not found by its key, not its "
                               "parent's child, or an empty leaf");
    }
    check_snapshots(index, reuse.snapshots());
    check_eviction_order(index);
    std::size_t placed = 0;
    for (std::int32_t n : index.slots()) placed += n >= 0 ? 1 : 0;
    if (live != index.nodes() || placed != live)
      throw std::logic_error("prefix index: " + std::to_string(live) + " live nodes, " +
                             std::to_string(placed) + " in the key table, " +
                             std::to_string(index.nodes()) + " counted");
  }

  // The eviction lists hold every live node once, in its priority's list, from the least
  // recently used, linked both ways.
  template <class Index>
  static void check_eviction_order(const Index& index) {
    std::size_t listed = 0;
    for (const auto& list : index.eviction_lists()) {
      std::int32_t older = -1;
      for (std::int32_t n = list.oldest; n >= 0; n = index[n].newer) {
        const auto& x = index[n];
        if (!x.alive || !x.listed || x.priority != list.priority || x.older != older ||
            (older >= 0 && index[older].used > x.used) || ++listed > index.nodes())
          throw std::logic_error("prefix index: the eviction list of priority " +
                                 std::to_string(list.priority) + " is out of order at node " +
                                 std::to_string(n));
        older = n;
      }
      if (list.newest != older)
        throw std::logic_error("prefix index: an eviction list's newest node is not its last");
    }
    if (listed != index.nodes())
      throw std::logic_error("prefix index: " + std::to_string(listed) + " nodes listed for " +
                             "eviction, " + std::to_string(index.nodes()) + " live");
  }

  // Each snapshot slot a node holds names that live node, which names it back; the spare and
  // the free slots name none.
  template <class Index>
  static void check_snapshots(const Index& index, const snapshot_slots& slots) {
    std::int64_t owned = 0;
    for (std::size_t s = 0; s < slots.size(); ++s) {
      const std::int32_t n = slots.owner(static_cast<std::int32_t>(s));
      if (n < 0) continue;
      ++owned;
      if (static_cast<std::int32_t>(s) == slots.spare() || !index[n].alive ||
          index[n].snapshot != static_cast<std::int32_t>(s))
        throw std::logic_error("prefix index: snapshot slot " + std::to_string(s) + " names node " +
                               std::to_string(n) + ", which does not hold it");
    }
    std::int64_t holding = 0;
    for (const auto& x : index.all()) holding += x.alive && x.snapshot >= 0 ? 1 : 0;
    if (owned != slots.held() || holding != owned)
      throw std::logic_error("prefix index: " + std::to_string(owned) + " snapshot slots owned, " +
                             std::to_string(holding) + " nodes hold one, " +
                             std::to_string(slots.held()) + " counted");
  }

  template <class Sequence>
  static void check_lists(const Sequence& s, int g, const window_shape& window,
                          std::int64_t page_tokens) {
    if (!s.alive) {
      if (!s.pages[g].empty()) throw std::logic_error("a released sequence holds pages");
      return;
    }
    const auto held = static_cast<std::int64_t>(s.pages[g].size());
    const auto listed = window.pages_listed(s.length, page_tokens, held);
    const auto kept = window.pages_kept(s.length, page_tokens);
    const std::int64_t seen_begin = window.recent_begin(s.length);
    const bool sees_recent = seen_begin < s.length;
    if (held > kept.count() || (s.length > 0 && held == 0) ||
        (sees_recent && listed.entry_of(seen_begin / page_tokens) < 0))
      throw std::logic_error("group " + std::to_string(g) + ": a sequence of " +
                             std::to_string(s.length) + " tokens holds " + std::to_string(held) +
                             " pages, it keeps " + std::to_string(kept.count()));
  }

  // A sequence's checkpoint pages are pages the rule wants, in order, wholly inside the
  // sequence and before the first page its list names.
  template <class Sequence>
  static void check_checkpoints(const Sequence& s, int g, const window_shape& kept,
                                const window_checkpoints& rule, std::int64_t page_tokens) {
    const auto& held = s.checkpoints[g];
    const auto listed =
        kept.pages_listed(s.length, page_tokens, static_cast<std::int64_t>(s.pages[g].size()));
    const std::int64_t first_listed =
        listed.count() > listed.sink_pages ? listed.recent_first : listed.last + 1;
    for (std::size_t i = 0; i < held.size(); ++i)
      if (!s.alive || !rule.wants(held[i].logical) ||
          (held[i].logical + 1) * page_tokens > s.length || held[i].logical >= first_listed ||
          held[i].logical < listed.sink_pages || (i > 0 && held[i - 1].logical >= held[i].logical))
        throw std::logic_error("group " + std::to_string(g) + ": a sequence of " +
                               std::to_string(s.length) + " tokens holds checkpoint page " +
                               std::to_string(held[i].logical) + " out of place");
  }

  static void check_pool(const page_pool& pool, int g,
                         const std::vector<std::int32_t>& references) {
    std::vector<bool> free(static_cast<std::size_t>(pool.capacity()), false);
    for (page_id p : pool.free_list()) {
      if (free[static_cast<std::size_t>(p)]) throw std::logic_error("a page is free twice");
      free[static_cast<std::size_t>(p)] = true;
    }
    for (page_id p = 0; p < pool.capacity(); ++p) {
      const auto i = static_cast<std::size_t>(p);
      if (pool.references(p) != references[i])
        throw std::logic_error("group " + std::to_string(g) + ": page " + std::to_string(p) +
                               " counts " + std::to_string(pool.references(p)) +
                               " references, the tables hold " + std::to_string(references[i]));
      if (free[i] != (references[i] == 0))
        throw std::logic_error("group " + std::to_string(g) + ": page " + std::to_string(p) +
                               (free[i] ? " is free but referenced" : " leaked"));
    }
  }
};

}  // namespace kvc::detail
