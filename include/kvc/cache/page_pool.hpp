#pragma once
// The pages of one group: ids 0..capacity-1, a free list and a reference count per page
// (a page is shared by the sequences forked from one another). Its callers (the cache) check
// what they ask for; the preconditions are assertions, on in debug builds.

#include <cassert>
#include <cstdint>
#include <vector>

namespace kvc {

using page_id = std::int32_t;

class page_pool {
 public:
  explicit page_pool(std::int64_t capacity) : refcount_(static_cast<std::size_t>(capacity), 0) {
    free_.reserve(static_cast<std::size_t>(capacity));
    for (std::int64_t p = capacity - 1; p >= 0; --p) free_.push_back(static_cast<page_id>(p));
  }

  std::int64_t capacity() const { return static_cast<std::int64_t>(refcount_.size()); }
  std::int64_t free_pages() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t used_pages() const { return capacity() - free_pages(); }

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
    ++refcount_[static_cast<std::size_t>(p)];
  }
  /// Drops one reference; the page is free again when none is left.
  void release(page_id p) {
    assert(held(p) && "kvc::page_pool::release: the page is free");
    if (--refcount_[static_cast<std::size_t>(p)] == 0) free_.push_back(p);
  }
  std::int32_t references(page_id p) const {
    assert(p >= 0 && p < capacity() && "kvc::page_pool::references: no such page");
    return refcount_[static_cast<std::size_t>(p)];
  }
  const std::vector<page_id>& free_list() const { return free_; }

 private:
  bool held(page_id p) const {
    return p >= 0 && p < capacity() && refcount_[static_cast<std::size_t>(p)] > 0;
  }

  std::vector<page_id> free_;
  std::vector<std::int32_t> refcount_;
};

}  // namespace kvc
