#pragma once
// append_plan: the pages one append step has taken, from kv_cache::plan_append until commit or
// abort. The cache reads and fills it; an engine only moves it, asks whether it is open, and
// lets it abort by going out of scope. The cache's side of that protocol is
// detail::open_plan_slot: which plan is open, where it lives now (a move tells it), and the
// refusals of a second plan or of a plan that is not the open one.

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/model/model.hpp"

namespace kvc {

template <model_type Model, class Paging, class Allocator>
class kv_cache;
namespace detail {
struct cache_debug_access;
class open_plan_slot;
}  // namespace detail

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
  /// Returns whether this plan is its cache's open plan (not yet committed, aborted or moved from).
  bool is_open() const { return owner_ != nullptr && ticket_ != 0; }

 private:
  template <model_type, class, class>
  friend class kv_cache;
  friend struct detail::cache_debug_access;
  friend class detail::open_plan_slot;

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
    by_kernel_ = std::move(other.by_kernel_);
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
    std::int32_t checkpoint_end = 0;          ///< then its checkpoint pages, up to here
  };

  // The change of entry i's pages in group g.
  group_change& change(std::size_t i, int g) {
    return changes_[i * groups_ + static_cast<std::size_t>(g)];
  }
  const group_change& change(std::size_t i, int g) const {
    return changes_[i * groups_ + static_cast<std::size_t>(g)];
  }

  // Entry i's fresh pages in group g.
  std::span<const page_id> fresh_pages(std::size_t i, int g) const {
    const group_change& c = change(i, g);
    return std::span<const page_id>(new_pages_)
        .subspan(static_cast<std::size_t>(c.new_begin),
                 static_cast<std::size_t>(c.new_end - c.new_begin));
  }

  // Entry i's checkpoint pages in group g (window checkpoints), by logical page.
  std::span<const page_id> checkpoint_pages(std::size_t i, int g) const {
    const group_change& c = change(i, g);
    return std::span<const page_id>(new_pages_)
        .subspan(static_cast<std::size_t>(c.new_end),
                 static_cast<std::size_t>(c.checkpoint_end - c.new_end));
  }

  // Makes an empty plan the one of `batch`, before it takes a page: an entry per request
  // (length_of(slot): the sequence's length now), a change per (entry, group), room for
  // `fresh` pages and a written flag per layer. May throw (allocation): nothing is taken yet.
  template <class LengthOf>
  void size_for(std::span<const append_request> batch, LengthOf&& length_of, int groups, int layers,
                std::int64_t fresh) {
    entries_.reserve(batch.size());
    for (const append_request& request : batch) {
      const std::uint32_t slot = request.sequence.slot;
      entries_.push_back({slot, length_of(slot), request.tokens, total_tokens_});
      total_tokens_ += request.tokens;
    }
    groups_ = static_cast<std::size_t>(groups);
    changes_.resize(entries_.size() * groups_);
    new_pages_.reserve(static_cast<std::size_t>(fresh));
    written_.assign(static_cast<std::size_t>(layers), false);
    by_kernel_.assign(groups_, false);
  }

  // Takes entry i's pages in group g from allocate(): the copy of a shared page (with
  // `copy`), then `fresh` pages, then `checkpoints` pages; each is the plan's as soon as it is
  // taken, so that a failure after it gives it back with the rest. Entries and groups go in
  // order.
  template <class Allocate>
  void take(std::size_t i, int g, bool copy, std::int64_t fresh, std::int64_t checkpoints,
            Allocate&& allocate) {
    group_change& c = change(i, g);
    c.new_begin = c.new_end = c.checkpoint_end = static_cast<std::int32_t>(new_pages_.size());
    if (copy) c.cow_page = allocate();
    for (std::int64_t p = 0; p < fresh + checkpoints; ++p) {
      new_pages_.push_back(allocate());
      c.checkpoint_end = static_cast<std::int32_t>(new_pages_.size());
      if (p < fresh) c.new_end = c.checkpoint_end;
    }
  }

  // Calls fn(group, page) for every page the plan took: copies, then fresh pages.
  template <class Fn>
  void for_each_taken(Fn&& fn) const {
    for (std::size_t i = 0; i < entries_.size(); ++i)
      for (std::size_t g = 0; g < groups_; ++g) {
        const group_change& c = changes_[i * groups_ + g];
        if (c.cow_page >= 0) fn(static_cast<int>(g), c.cow_page);
        for (std::int32_t p = c.new_begin; p < c.checkpoint_end; ++p)
          fn(static_cast<int>(g), new_pages_[static_cast<std::size_t>(p)]);
      }
  }

  std::vector<entry> entries_;
  std::vector<group_change> changes_;  ///< entries_.size() x groups_, by change(i, g)
  std::size_t groups_ = 0;
  std::vector<page_id> new_pages_;
  mutable std::vector<bool>
      written_;  ///< [layer]: write() stored its K/V (write takes a const plan)
  /// [group]: mark_written recorded a layer of it, whose kernel stored only what the window
  /// keeps (so not the step's window checkpoints).
  mutable std::vector<bool> by_kernel_;
  std::int64_t total_tokens_ = 0;
  std::uint64_t ticket_ = 0;
  void* owner_ = nullptr;
};

namespace detail {

// A cache's open plan: at most one, found again after every move, detached when the cache
// goes first (the plan's pages go with the pools; dropping it then does nothing).
class open_plan_slot {
 public:
  using notify_fn = void (*)(void* cache, append_plan& plan, append_plan::event what) noexcept;

  open_plan_slot() = default;
  open_plan_slot(const open_plan_slot&) = delete;
  open_plan_slot& operator=(const open_plan_slot&) = delete;
  ~open_plan_slot() {
    if (plan_ != nullptr) plan_->owner_ = nullptr;
  }

  bool any() const noexcept { return ticket_ != 0; }
  const append_plan* plan() const noexcept { return plan_; }

  /// Throws plan_conflict while a plan is open (`who` names the call).
  void require_none(const char* who) const {
    require(ticket_ == 0, cache_errc::plan_conflict, "kvc::kv_cache::", who,
            ": an append plan is open; commit or abort it first");
  }
  /// Throws plan_conflict unless `plan` is the open plan of `cache`.
  void require_open(const append_plan& plan, const void* cache, const char* who) const {
    require(plan.owner_ == cache && plan.ticket_ != 0 && plan.ticket_ == ticket_,
            cache_errc::plan_conflict, "kvc::kv_cache::", who,
            ": the plan is not this cache's open plan");
  }

  /// Makes `plan` the open plan of `cache`, which notify() tells of its moves and its drop.
  void open(append_plan& plan, void* cache, notify_fn notify) noexcept {
    plan.ticket_ = ticket_ = next_ticket_++;
    plan.owner_ = cache;
    plan.notify_ = notify;
    plan_ = &plan;
  }
  void moved_to(append_plan& plan) noexcept { plan_ = &plan; }
  void close(append_plan& plan) noexcept {
    ticket_ = 0;
    plan_ = nullptr;
    plan.ticket_ = 0;
    plan.owner_ = nullptr;
  }

 private:
  std::uint64_t next_ticket_ = 1;
  std::uint64_t ticket_ = 0;
  append_plan* plan_ = nullptr;
};

}  // namespace detail
}  // namespace kvc
