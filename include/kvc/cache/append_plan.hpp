#pragma once
// append_plan: the pages one append step has taken, from kv_cache::plan_append until commit or
// abort. The cache reads and fills it; an engine only moves it, asks whether it is open, and
// lets it abort by going out of scope.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kvc/cache/page_pool.hpp"
#include "kvc/model/model.hpp"

namespace kvc {

template <model_type Model, class Paging, class Allocator>
class kv_cache;

/// The pages one append step has taken; obtained from plan_append. Move-only, and it owns
/// what it took: destroyed (or assigned over) while still open, it aborts, exactly as
/// cache.abort(plan) does. A moved-from plan is not open. A plan must not outlive its cache.
class append_plan {
 public:
  append_plan() = default;
  append_plan(append_plan&& other) noexcept { take(other); }
  append_plan& operator=(append_plan&& other) noexcept {
    if (this != &other) {
      drop();
      take(other);
    }
    return *this;
  }
  append_plan(const append_plan&) = delete;
  append_plan& operator=(const append_plan&) = delete;
  ~append_plan() { drop(); }

  std::int64_t total_tokens() const { return total_tokens_; }
  std::size_t size() const { return entries_.size(); }
  /// Whether this plan is its cache's open plan (not yet committed, aborted or moved from).
  bool is_open() const { return owner_ != nullptr && ticket_ != 0; }

 private:
  template <model_type, class, class>
  friend class kv_cache;

  enum class event { dropped, moved };
  // Tells the owning cache that the plan was dropped (abort) or moved to `this`.
  void (*notify_)(void* cache, append_plan& plan, event what) noexcept = nullptr;

  void drop() noexcept {
    if (is_open()) notify_(owner_, *this, event::dropped);
  }
  void take(append_plan& other) noexcept {
    entries_ = std::move(other.entries_);
    changes_ = std::move(other.changes_);
    groups_ = other.groups_;
    new_pages_ = std::move(other.new_pages_);
    written_ = std::move(other.written_);
    total_tokens_ = other.total_tokens_;
    ticket_ = other.ticket_;
    owner_ = other.owner_;
    notify_ = other.notify_;
    other.ticket_ = 0;
    other.owner_ = nullptr;
    other.total_tokens_ = 0;
    if (is_open()) notify_(owner_, *this, event::moved);
  }

  struct entry {
    std::uint32_t slot = 0;
    std::int64_t old_length = 0;
    std::int64_t tokens = 0;
    std::int64_t first_input = 0;  ///< its first token's row in the K/V inputs
  };
  struct group_change {
    page_id cow_page = -1;  ///< the copy of the shared page that the step writes into
    std::int32_t new_begin = 0, new_end = 0;  ///< its fresh pages, in new_pages
  };

  // The change of entry i's pages in group g.
  group_change& change(std::size_t i, int g) {
    return changes_[i * groups_ + static_cast<std::size_t>(g)];
  }
  const group_change& change(std::size_t i, int g) const {
    return changes_[i * groups_ + static_cast<std::size_t>(g)];
  }

  std::vector<entry> entries_;
  std::vector<group_change> changes_;  ///< entries_.size() x groups_, by change(i, g)
  std::size_t groups_ = 0;
  std::vector<page_id> new_pages_;
  mutable std::vector<bool>
      written_;  ///< [layer]: write() stored its K/V (write takes a const plan)
  std::int64_t total_tokens_ = 0;
  std::uint64_t ticket_ = 0;
  void* owner_ = nullptr;
};

}  // namespace kvc
