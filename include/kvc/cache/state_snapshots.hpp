#pragma once
// Recurrent-state snapshots of the prefix index. A layer with a recurrent state (linear
// attention, Mamba) keeps one state per sequence, not one entry per position, so a hit of p
// tokens needs that state taken at exactly p. The engine owns the live states; it hands them
// to store_prefix when its sequence ends on a page boundary, and the cache copies them into
// one of a fixed number of snapshot slots (capacity_*::state_snapshots), attached to the index
// node of the page that ends there. add_sequence(hit, targets) copies the hit's snapshot back.
//
// Slots hold every recurrent layer's state, one after the other in layer order. One slot more
// than asked for is the spare: a snapshot is copied into the spare first, and only when the
// copy succeeded does the spare become the node's slot (the slot it replaces, or a free one,
// becomes the spare), so a failing copy changes nothing.
//
// A snapshot that must make room goes by its own priority and use (its store, or a hit that
// ended at it), not its node's: a chain's nodes are all touched by every hit along it.
//
//   detail::snapshot_slots slots(count);
//   const std::int32_t room = slots.has_free() ? -1 : slots.victim();   // its owner lets go

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/detail/index.hpp"

namespace kvc {

/// A recurrent layer's state that store_prefix snapshots: `state` points at the layer's
/// state bytes (footprint's state size of the layer), in the cache's kind of memory (device
/// memory for a device allocator).
struct state_source {
  int layer = -1;
  const void* state = nullptr;
};

/// Where add_sequence(hit, targets) writes a recurrent layer's state from the hit's snapshot,
/// in the cache's kind of memory.
struct state_target {
  int layer = -1;
  void* state = nullptr;
};

namespace detail {

/// Where each recurrent layer's state lies in a snapshot.
struct recurrent_states {
  std::vector<int> layers;             ///< the recurrent layers, in order
  std::vector<std::uint64_t> offsets;  ///< of each one's state in a snapshot
  std::vector<std::uint64_t> bytes;    ///< its state's size
  std::uint64_t total = 0;             ///< a snapshot's size

  /// Returns the position of a layer in `layers`, or -1.
  std::ptrdiff_t find(int layer) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i] == layer) return static_cast<std::ptrdiff_t>(i);
    return -1;
  }

  /// Returns the state pointer per recurrent layer, in order, from pointers the engine named
  /// by layer: each recurrent layer once, no other layer, no null pointer. Throws
  /// invalid_argument otherwise.
  template <class Ref, class Pointer>
  void order(std::span<const Ref> given, std::vector<Pointer>& out, const char* who) const {
    out.assign(layers.size(), nullptr);
    require(given.size() == layers.size(), cache_errc::invalid_argument, who, ": ", given.size(),
            " states given; the model has ", layers.size(), " recurrent layers");
    for (const Ref& r : given) {
      const std::ptrdiff_t i = find(r.layer);
      require(i >= 0, cache_errc::invalid_argument, who, ": layer ", r.layer,
              " has no recurrent state");
      require(out[static_cast<std::size_t>(i)] == nullptr && r.state != nullptr,
              cache_errc::invalid_argument, who, ": layer ", r.layer,
              " is given twice, or with a null state");
      out[static_cast<std::size_t>(i)] = r.state;
    }
  }
};

/// The recurrent layers of a model and their states' places in a snapshot.
template <class Summaries>
recurrent_states recurrent_states_of(const Summaries& summaries) {
  recurrent_states r;
  for (std::size_t l = 0; l < summaries.size(); ++l)
    if (summaries[l].state_bytes > 0) {
      r.layers.push_back(static_cast<int>(l));
      r.offsets.push_back(r.total);
      r.bytes.push_back(summaries[l].state_bytes);
      r.total += summaries[l].state_bytes;
    }
  return r;
}

/// Which node holds each snapshot slot. Allocates only when made.
class snapshot_slots {
 public:
  snapshot_slots() = default;
  /// count slots for nodes, and the spare (none at all when count is 0).
  explicit snapshot_slots(std::int64_t count)
      : owner_(count > 0 ? static_cast<std::size_t>(count) + 1 : 0, -1),
        used_(owner_.size(), 0),
        priority_(owner_.size(), 0) {
    free_.reserve(owner_.size());
    for (std::size_t s = owner_.size(); s > 1; --s)
      free_.push_back(static_cast<std::int32_t>(s - 1));
  }

  bool enabled() const { return !owner_.empty(); }
  /// Slots some node holds.
  std::int64_t held() const {
    return static_cast<std::int64_t>(owner_.size()) - static_cast<std::int64_t>(free_.size()) -
           (enabled() ? 1 : 0);
  }
  std::int32_t spare() const { return spare_; }
  std::int32_t owner(std::int32_t slot) const { return at(owner_, slot); }
  std::size_t size() const { return owner_.size(); }
  bool has_free() const { return !free_.empty(); }

  /// Returns the held slot that goes first: lowest priority, then least recently used.
  std::int32_t victim() const noexcept {
    std::int32_t best = -1;
    for (std::size_t s = 0; s < owner_.size(); ++s)
      if (owner_[s] >= 0 && (best < 0 || priority_[s] < at(priority_, best) ||
                             (priority_[s] == at(priority_, best) && used_[s] < at(used_, best))))
        best = static_cast<std::int32_t>(s);
    return best;
  }
  /// Records that a hit ended at the slot's snapshot.
  void touch(std::int32_t slot, std::uint64_t tick) noexcept { at(used_, slot) = tick; }

  /// Gives the spare to node n and makes `next` the spare: a free slot (next < 0: the last
  /// one) or one that held another node's snapshot (the caller detached it).
  void give_spare(std::int32_t n, std::int32_t next, std::uint64_t tick,
                  std::int32_t priority) noexcept {
    if (next < 0) {
      next = free_.back();
      free_.pop_back();
    }
    at(owner_, spare_) = n;
    at(used_, spare_) = tick;
    at(priority_, spare_) = priority;
    at(owner_, next) = -1;
    spare_ = next;
  }
  /// Frees the slot of a node that goes.
  void release(std::int32_t slot) noexcept {
    at(owner_, slot) = -1;
    free_.push_back(slot);  // within the reserved capacity
  }
  /// Frees every slot.
  void clear() noexcept {
    free_.clear();
    for (std::size_t s = 0; s < owner_.size(); ++s) {
      owner_[s] = -1;
      if (static_cast<std::int32_t>(s) != spare_) free_.push_back(static_cast<std::int32_t>(s));
    }
  }

 private:
  std::vector<std::int32_t> owner_;  ///< per slot: the node holding it, -1 if none
  std::vector<std::uint64_t> used_;  ///< per slot: the tick of its store or last hit
  std::vector<std::int32_t> priority_;
  std::vector<std::int32_t> free_;
  std::int32_t spare_ = 0;
};

}  // namespace detail
}  // namespace kvc
