#pragma once
// The pages of one group: ids 0..capacity-1, a free list and a reference count per page
// (a page is shared by the sequences forked from one another, and by the prefix index).
// A page the prefix index holds counts the index's reference like any other; the pool keeps
// count of those only the index holds (cached: reusable by content, or taken back when memory
// is needed). Its callers (the cache) check what they ask for; the preconditions are
// assertions, on in debug builds.

#include <cassert>
#include <cstdint>
#include <vector>

namespace kvc {

using page_id = std::int32_t;

class page_pool {
 public:
  explicit page_pool(std::int64_t capacity)
      : refcount_(static_cast<std::size_t>(capacity), 0),
        indexed_(static_cast<std::size_t>(capacity), false) {
    free_.reserve(static_cast<std::size_t>(capacity));
    for (std::int64_t p = capacity - 1; p >= 0; --p) free_.push_back(static_cast<page_id>(p));
  }

  std::int64_t capacity() const { return static_cast<std::int64_t>(refcount_.size()); }
  std::int64_t free_pages() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t used_pages() const { return capacity() - free_pages(); }
  /// Returns the pages that only the prefix index holds.
  std::int64_t cached_pages() const { return cached_; }

  /// Takes a fresh page with one reference; the caller has checked free_pages().
  page_id allocate() {
    assert(!free_.empty() && "kvc::page_pool::allocate: no free page");
    const page_id p = free_.back();
    free_.pop_back();
    refcount_[static_cast<std::size_t>(p)] = 1;
    return p;
  }
  void retain(page_id p) {
    assert(held(p) && "kvc::page_pool::retain: the page is free");
    if (cached(p)) --cached_;
    ++refcount_[static_cast<std::size_t>(p)];
  }
  /// Drops one reference; the page is free again when none is left.
  void release(page_id p) {
    assert(held(p) && "kvc::page_pool::release: the page is free");
    if (--refcount_[static_cast<std::size_t>(p)] == 0) free_.push_back(p);
    if (cached(p)) ++cached_;
  }
  std::int32_t references(page_id p) const {
    assert(p >= 0 && p < capacity() && "kvc::page_pool::references: no such page");
    return refcount_[static_cast<std::size_t>(p)];
  }
  const std::vector<page_id>& free_list() const { return free_; }

  // ---- the prefix index's reference ----

  /// Adds the index's reference to a held page.
  void hold_for_index(page_id p) {
    assert(held(p) && !indexed(p) && "kvc::page_pool::hold_for_index");
    ++refcount_[static_cast<std::size_t>(p)];
    indexed_[static_cast<std::size_t>(p)] = true;
  }
  /// Drops the index's reference.
  void drop_from_index(page_id p) {
    assert(indexed(p) && "kvc::page_pool::drop_from_index: the index does not hold the page");
    if (cached(p)) --cached_;
    indexed_[static_cast<std::size_t>(p)] = false;
    release(p);
  }
  /// Hands a cached page's one reference, the index's, to the caller (a step that needs its
  /// memory): the page is held, no longer indexed.
  void lend_from_index(page_id p) {
    assert(cached(p) && "kvc::page_pool::lend_from_index: the page is not cached");
    indexed_[static_cast<std::size_t>(p)] = false;
    --cached_;
  }
  /// Hands a lent page's one reference back to the index (the step failed before writing it).
  void return_to_index(page_id p) {
    assert(held(p) && references(p) == 1 && !indexed(p) && "kvc::page_pool::return_to_index");
    indexed_[static_cast<std::size_t>(p)] = true;
    ++cached_;
  }
  bool indexed(page_id p) const { return indexed_[static_cast<std::size_t>(p)]; }

 private:
  bool held(page_id p) const {
    return p >= 0 && p < capacity() && refcount_[static_cast<std::size_t>(p)] > 0;
  }
  bool cached(page_id p) const { return indexed(p) && references(p) == 1; }

  std::vector<page_id> free_;
  std::vector<std::int32_t> refcount_;
  std::vector<bool> indexed_;
  std::int64_t cached_ = 0;
};

}  // namespace kvc
