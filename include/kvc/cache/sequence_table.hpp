#pragma once
// The sequences of a kv_cache: slots reused through a free list, with a generation per slot
// so that a released handle never names the sequence that reuses its slot; per sequence its
// length and, per layer group, the pages it lists and from where on every position its
// window keeps is written. The table knows no pools: releasing hands each page to the caller.
//
//   detail::sequence_table<groups> table;
//   const sequence_id id = table.add();
//   table[table.checked(id)].length;     // unknown_sequence for a released handle
//   table.release(slot, [&](int g, page_id p) { pools[g].release(p); });
//
// Rollback (truncate, fork at a position) asks the two questions below it: whether a
// sequence cut back still holds what its window shows, and how many entries it keeps.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/step_pages.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::detail {

/// A page a sequence holds for a window checkpoint after its window let it go.
struct checkpoint_page {
  std::int64_t logical = 0;  ///< positions [logical * P, (logical + 1) * P)
  page_id page = -1;
};

template <int NumGroups>
struct sequence_state {
  bool alive = false;
  std::uint64_t generation = 0;
  std::int64_t length = 0;
  signed_array<std::vector<page_id>, NumGroups> pages;
  /// Per group: from this position on, every recent position the window keeps holds its
  /// K/V (earlier ones may lie in a held page unwritten: a step longer than the window
  /// stores only what it keeps). Truncation and fork at a position check against it.
  signed_array<std::int64_t, NumGroups> valid_from{};
  /// Per group, with window checkpoints: the checkpoint pages the window let go, by logical
  /// page (all before the first listed page), and from which position on a checkpoint page
  /// is known complete (a step written by a device kernel stores only what the window keeps).
  signed_array<std::vector<checkpoint_page>, NumGroups> checkpoints;
  signed_array<std::int64_t, NumGroups> complete_from{};
};

template <int NumGroups>
class sequence_table {
 public:
  using sequence = sequence_state<NumGroups>;

  /// Adds a sequence of no tokens and returns it; on error (2^32-1 alive, out of memory) nothing
  /// changed.
  sequence_id add() {
    require(!free_slots_.empty() || sequences_.size() < std::numeric_limits<std::uint32_t>::max(),
            cache_errc::invalid_argument, "kvc::kv_cache: 2^32-1 sequences are alive");
    if (free_slots_.empty()) sequences_.emplace_back();  // the one step that can throw
    const std::uint32_t slot = free_slots_.empty()
                                   ? static_cast<std::uint32_t>(sequences_.size() - 1)
                                   : free_slots_.back();
    if (!free_slots_.empty()) free_slots_.pop_back();
    sequence& s = sequences_[slot];
    s.alive = true;
    s.length = 0;
    s.valid_from.fill(0);
    s.complete_from.fill(0);
    return {slot, s.generation};
  }

  bool contains(sequence_id id) const noexcept {
    return id.slot < sequences_.size() && sequences_[id.slot].alive &&
           sequences_[id.slot].generation == id.generation;
  }

  /// Returns the slot of a live sequence, or unknown_sequence.
  std::uint32_t checked(sequence_id id) const {
    if (!contains(id)) [[unlikely]]
      throw unknown(id);
    return id.slot;
  }
  /// Returns the error for a handle that names no live sequence.
  static cache_error unknown(sequence_id id) {
    return make_error(cache_errc::unknown_sequence, "kvc::kv_cache: sequence ", id.slot,
                      " (generation ", id.generation, ") is unknown or released");
  }

  sequence& operator[](std::uint32_t slot) { return sequences_[slot]; }
  const sequence& operator[](std::uint32_t slot) const { return sequences_[slot]; }
  /// Returns every slot, live or free (a batch check sizes its "seen" flags by it).
  std::size_t slots() const noexcept { return sequences_.size(); }
  std::span<const sequence> all() const noexcept { return sequences_; }

  /// Ends the sequence in `slot`: hands each page it lists to release_page(group, page),
  /// which must not throw, and frees the slot for a later generation. On error (out of
  /// memory, before anything changed) nothing changed.
  template <class ReleasePage>
  void release(std::uint32_t slot, ReleasePage&& release_page) {
    free_slots_.reserve(free_slots_.size() + 1);  // the one step that can throw
    sequence& s = sequences_[slot];
    for (int g = 0; g < NumGroups; ++g) {
      for (page_id page : s.pages[g]) release_page(g, page);
      for (const checkpoint_page& kept : s.checkpoints[g]) release_page(g, kept.page);
      s.pages[g].clear();
      s.checkpoints[g].clear();
    }
    s.alive = false;
    s.length = 0;
    ++s.generation;
    free_slots_.push_back(slot);
  }

 private:
  std::vector<sequence> sequences_;
  std::vector<std::uint32_t> free_slots_;
};

/// Returns whether the sequence, cut to `tokens`, still holds in group g everything `seen` (the
/// layers' window) shows of it.
template <int NumGroups>
bool can_cut(const sequence_state<NumGroups>& s, int g, const window_shape& seen,
             std::int64_t tokens) {
  if (!seen.bounded() || tokens == 0) return true;
  const std::int64_t seen_begin = seen.recent_begin(tokens);
  return seen_begin >= tokens || seen_begin >= s.valid_from[g];
}

/// Returns how many leading entries of the sequence's list in group g a sequence cut to `tokens`
/// keeps (its pages up to its last; the sinks and the run before it stay in place); `seen`
/// is the layers' window, `kept` the window with the rollback reserve. Throws
/// invalid_argument for a count outside the sequence, rollback_exceeded when the window
/// has let go of what the shorter sequence would see. `who` names the call.
template <int NumGroups>
std::size_t kept_entries(const sequence_state<NumGroups>& s, int g, const window_shape& seen,
                         const window_shape& kept, std::int64_t page_tokens, std::int64_t tokens,
                         const char* who) {
  require(tokens >= 0 && tokens <= s.length, cache_errc::invalid_argument, "kvc::kv_cache::", who,
          ": ", tokens, " tokens, the sequence has ", s.length);
  require(can_cut(s, g, seen, tokens), cache_errc::rollback_exceeded, "kvc::kv_cache::", who,
          ": at ", tokens, " tokens, group ", g, "'s window sees from position ",
          seen.recent_begin(tokens), ", but the sequence of ", s.length, " keeps only from ",
          s.valid_from[g], " (a rollback reserve of at least ", s.length - tokens,
          " tokens would keep it)");
  if (tokens == 0) return 0;
  const auto listed =
      kept.pages_listed(s.length, page_tokens, static_cast<std::int64_t>(s.pages[g].size()));
  const std::int64_t last = (tokens - 1) / page_tokens;
  // can_cut guarantees that the last page is held: in the sinks, or in the recent run.
  if (listed.sink_pages > 0 && last < listed.recent_first)
    return static_cast<std::size_t>(last + 1);
  return static_cast<std::size_t>(listed.entry_of(last) + 1);
}

/// Returns the page of the sequence's list in group g that holds `position` (0 <= position <
/// length), or -1 when the cache no longer holds it: `seen` (the layers' window) does not
/// show it and `kept` (the window with the rollback reserve) does not keep it either.
template <int NumGroups>
page_id page_holding(const sequence_state<NumGroups>& s, int g, const window_shape& seen,
                     const window_shape& kept, std::int64_t page_tokens, std::int64_t position) {
  if (!seen.visible(s.length - 1, position) &&
      !(kept.keeps(s.length, position) && position >= s.valid_from[g]))
    return -1;
  const auto listed =
      kept.pages_listed(s.length, page_tokens, static_cast<std::int64_t>(s.pages[g].size()));
  return at(s.pages[g], listed.entry_of(position / page_tokens));
}

/// Returns the checkpoint page the sequence holds for logical page `logical` in group g, or -1.
template <int NumGroups>
page_id checkpoint_holding(const sequence_state<NumGroups>& s, int g, std::int64_t logical) {
  const std::vector<checkpoint_page>& held = s.checkpoints[g];
  const auto it = std::lower_bound(
      held.begin(), held.end(), logical,
      [](const checkpoint_page& c, std::int64_t wanted) { return c.logical < wanted; });
  return it != held.end() && it->logical == logical ? it->page : -1;
}

/// Returns how many leading checkpoint pages of group g a sequence cut to `tokens` keeps: those
/// that end by then (a page with later positions would be rewritten).
template <int NumGroups>
std::size_t kept_checkpoints(const sequence_state<NumGroups>& s, int g, std::int64_t tokens,
                             std::int64_t page_tokens) {
  const std::vector<checkpoint_page>& held = s.checkpoints[g];
  std::size_t kept = 0;
  while (kept < held.size() && (held[kept].logical + 1) * page_tokens <= tokens) ++kept;
  return kept;
}

/// Puts a page that a step lets go of (logical page `logical`) among the sequence's checkpoint
/// pages in group g when the rule wants it and it is complete (not `partial`, a page a kernel
/// left partly written, nor below complete_from); hands any other to release(page). Room was
/// reserved: nothing throws.
template <int NumGroups, class Release>
void keep_or_release(sequence_state<NumGroups>& s, int g, const window_checkpoints& rule,
                     std::int64_t partial, page_id page, std::int64_t logical,
                     Release&& release) noexcept {
  if (rule.wants(logical) && logical * rule.page_tokens >= s.complete_from[g] && logical != partial)
    s.checkpoints[g].push_back({logical, page});
  else
    release(page);
}

/// Adds a step's checkpoint pages (`taken`, one per page of the step's checkpoint range that
/// the rule wants) to the sequence's in group g; a step a kernel wrote hands them to
/// release(page) instead, since it did not write them. Room was reserved: nothing throws.
template <int NumGroups, class Release>
void keep_step_checkpoints(sequence_state<NumGroups>& s, int g, const window_checkpoints& rule,
                           const step_pages& step, std::span<const page_id> taken, bool by_kernel,
                           Release&& release) noexcept {
  std::size_t next = 0;
  for (std::int64_t j = step.checkpoint_first; next < taken.size(); ++j)
    if (rule.wants(j)) {
      if (by_kernel)
        release(taken[next]);
      else
        s.checkpoints[g].push_back({j, taken[next]});
      ++next;
    }
}

/// Makes a sequence's list in a group what the step leaves (page_table_fill.hpp's
/// push_step_entries lists the same before commit): `copy` in place of the written entry
/// when that page was shared (-1: none), the pages a bounded window no longer keeps handed to
/// let_go(page, logical page), the fresh pages appended. The replaced shared page goes to
/// let_go(page, -1). Room for them was reserved: nothing throws.
template <class LetGo>
void apply_step(std::vector<page_id>& list, const step_pages& step, bool bounded, page_id copy,
                std::span<const page_id> fresh, LetGo&& let_go) noexcept {
  if (copy >= 0) {
    page_id& replaced = at(list, step.write_entry);
    let_go(replaced, std::int64_t{-1});
    replaced = copy;
  }
  if (bounded) {
    std::size_t kept = 0;
    for (std::size_t j = 0; j < list.size(); ++j) {
      if (step.keeps_entry(static_cast<std::int64_t>(j)))
        list[kept++] = list[j];
      else
        let_go(list[j], step.old_kept.logical_page(static_cast<std::int64_t>(j)));
    }
    list.resize(kept);
  }
  list.insert(list.end(), fresh.begin(), fresh.end());
}

}  // namespace kvc::detail
