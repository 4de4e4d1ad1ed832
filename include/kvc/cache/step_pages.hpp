#pragma once
// What one append step does to one sequence's pages in one layer group, as a value: which
// entries of its page list it keeps, how many pages it takes fresh, which held page it writes
// into, and which page holds each position afterwards. It depends only on the group's window,
// the page size, the pages listed and the lengths before and after, so plan_append, admit,
// write, commit and step_table read the same answer (tests/test_step_pages.cpp checks it
// with no cache at all).
//
//   const kvc::step_pages step = kvc::step_pages::of(window, page_tokens, listed, n, tokens);
//   step.fresh;                // pages to take
//   step.writes_held_page;     // the last listed page gets tokens: copy it first if shared
//   step.keeps_entry(j);       // entry j of the list is still listed after the step
//   step.page_of(p, held, fresh, copy);  // the page of position p after the step
//
// With window checkpoints (policy/checkpoints.hpp), a step also takes a page for each
// checkpoint page past the last listed one that it slides out of the window at once
// (checkpoint_fresh, pages checkpoint_first..checkpoint_last that the rule wants), and writes
// the partly filled last page when the rule wants it.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"

namespace kvc {

struct step_pages {
  window_shape::kept_pages old_kept;  ///< the pages listed before the step (its entries)
  window_shape::kept_pages new_kept;  ///< the pages listed after it
  std::int64_t page_tokens = 1;
  std::int64_t fresh = 0;         ///< pages taken for positions past the last listed page
  std::int64_t write_entry = -1;  ///< the partly filled last entry, when there is one
  bool writes_held_page = false;  ///< the step stores tokens into write_entry's page
  /// Checkpoint pages the step takes: those of checkpoint_first..checkpoint_last (logical pages
  /// past the last listed one that the window no longer lists after the step) the rule wants.
  std::int64_t checkpoint_fresh = 0;
  std::int64_t checkpoint_first = 0, checkpoint_last = -1;

  /// Returns the step of `tokens` new tokens for a sequence of `length` tokens that lists `listed`
  /// pages (its windows keep them; after a truncation or a fork, maybe fewer recent ones).
  /// A step of no tokens takes and writes nothing. `checkpoints`: the group's window
  /// checkpoints (none by default).
  static constexpr step_pages of(const window_shape& window, std::int64_t page_tokens,
                                 std::int64_t listed, std::int64_t length, std::int64_t tokens,
                                 const window_checkpoints& checkpoints = {}) {
    step_pages s;
    s.page_tokens = page_tokens;
    const std::int64_t end = length + tokens;
    s.old_kept = window.pages_listed(length, page_tokens, listed);
    s.new_kept = window.pages_kept(end, page_tokens);
    if (tokens == 0) return s;
    s.fresh = fresh_pages(s.old_kept, s.new_kept);
    if (length % page_tokens != 0) {  // the last listed page has room: is it written?
      const std::int64_t page_end = (length / page_tokens + 1) * page_tokens;
      s.write_entry = s.old_kept.entry_of(length / page_tokens);
      s.writes_held_page = length < window.sink_end(end) ||
                           window.keep_begin(end) < (end < page_end ? end : page_end) ||
                           checkpoints.wants(length / page_tokens);
    }
    if (checkpoints.active()) {
      const std::int64_t after_listed = s.old_kept.last + 1;
      s.checkpoint_first =
          after_listed > s.new_kept.sink_pages ? after_listed : s.new_kept.sink_pages;
      s.checkpoint_last = s.new_kept.recent_first - 1;
      s.checkpoint_fresh = checkpoints.wanted_in(s.checkpoint_first, s.checkpoint_last);
    }
    return s;
  }

  /// Returns whether entry `entry` of the list before the step is still listed after it.
  KVC_HOST_DEVICE constexpr bool keeps_entry(std::int64_t entry) const {
    return new_kept.entry_of(old_kept.logical_page(entry)) >= 0;
  }

  /// Returns the page that holds `position` (one the step writes) after the step: `held` are the
  /// pages listed before it, `fresh_pages` the step's fresh ones, `copy` the copy of the
  /// written held page (-1: written in place).
  template <class PageId>
  KVC_HOST_DEVICE constexpr PageId page_of(std::int64_t position, const PageId* held,
                                           const PageId* fresh_pages, PageId copy) const {
    const std::int64_t page = position / page_tokens;
    if (page > old_kept.last) return fresh_pages[new_kept.entry_of(page) - first_fresh_entry()];
    if (copy >= 0) return copy;  // only the last listed page is written
    return held[old_kept.entry_of(page)];
  }

  /// Returns the entry, in the list after the step, of the first fresh page.
  KVC_HOST_DEVICE constexpr std::int64_t first_fresh_entry() const {
    return new_kept.count() - fresh;
  }

 private:
  // Kept pages after the step past the last page listed before it: they are taken fresh.
  KVC_HOST_DEVICE static constexpr std::int64_t fresh_pages(
      const window_shape::kept_pages& old_kept, const window_shape::kept_pages& new_kept) {
    // New kept pages, in entry order, end with those past old_kept.last: count them.
    const std::int64_t first =
        old_kept.last + 1 > new_kept.recent_first ? old_kept.last + 1 : new_kept.recent_first;
    std::int64_t count = new_kept.last - first + 1;
    count = count > 0 ? count : 0;
    if (new_kept.sink_pages > old_kept.last + 1) count += new_kept.sink_pages - (old_kept.last + 1);
    return count;
  }
};

}  // namespace kvc
