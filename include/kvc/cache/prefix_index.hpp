#pragma once
// The content index of a kv_cache's full pages (prefix reuse). Per page key one node: the
// exact bytes the key was hashed from (the parent's key, the record, the token ids), the
// page it names in each layer group (-1 where that group does not hold it: a window slid past
// it before it was stored, or its memory was taken back), its parent node and when it was
// last used. A hit is confirmed by comparing those bytes along the chain from the root, so a
// colliding hash never serves wrong K/V.
//
// The index holds one reference on every page it lists (page_pool::hold_for_index): a
// sequence that writes into such a page copies it first, as after fork, and a page that no
// sequence holds stays cached until its memory is needed. victims() names the cached pages
// to take back, lowest priority first, then least recently used, deepest first: the nodes are
// kept in that order as it changes (a list per priority, the least recently used first; the
// nodes a call touches go to the end deepest first), so that a step's victims cost what it
// takes, not the index's size. A node whose pages are all gone is removed once it has no
// children: a chain is never broken.
//
//   detail::prefix_index<groups> index;
//   const auto pages = detail::page_records(layout, context, prompt, count, hash, records);
//   const std::vector<std::int32_t> chain = index.match(records);   // confirmed nodes

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "kvc/cache/page_pool.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/prefix/page_key.hpp"

namespace kvc::detail {

/// The bytes each page's key is hashed from, one run per page, and the keys.
struct page_records {
  std::vector<std::byte> bytes;
  std::vector<std::size_t> starts;  ///< page j's bytes are [starts[j], starts[j + 1])
  std::vector<prefix::page_key> keys;

  std::span<const std::byte> record(std::size_t j) const {
    const std::size_t end = j + 1 < starts.size() ? starts[j + 1] : bytes.size();
    return std::span<const std::byte>(bytes).subspan(starts[j], end - starts[j]);
  }
  std::size_t size() const { return keys.size(); }
};

/// The one-shot hash of a page's bytes: XXH3-128 unless the cache was given another.
using page_hash_fn = prefix::page_key (*)(std::span<const std::byte>);

inline prefix::page_key xxh3_page_hash(std::span<const std::byte> bytes) {
  prefix::xxh3_128 hash;
  hash.update(bytes);
  return hash.digest();
}

// A streaming "hash" for page_keys_with that keeps the bytes and hashes each page's at once.
struct recording_hash {
  page_records* out;
  page_hash_fn hash;
  void reset() { out->starts.push_back(out->bytes.size()); }
  void update(std::span<const std::byte> bytes) {
    out->bytes.insert(out->bytes.end(), bytes.begin(), bytes.end());
  }
  prefix::page_key digest() const {
    return hash(std::span<const std::byte>(out->bytes).subspan(out->starts.back()));
  }
};

/// Fills `r` with the records and keys of the first `pages` full pages of `tokens` (reusing its
/// memory: a warm buffer allocates nothing).
inline void records_of(const prefix::key_layout& layout, const prefix::key_context& context,
                       std::span<const std::int32_t> tokens, std::size_t pages, page_hash_fn hash,
                       page_records& r) {
  r.bytes.clear();
  r.starts.clear();
  r.keys.resize(pages);
  r.starts.reserve(pages);
  recording_hash recorder{&r, hash};
  prefix::page_keys_with(recorder, layout, context, tokens, r.keys);
}

template <int NumGroups>
class prefix_index {
 public:
  struct node {
    prefix::page_key key;
    std::int32_t parent = -1;  ///< -1: the prompt's first page
    std::int32_t first_child = -1, next_sibling = -1;
    std::int64_t page = 0;      ///< its positions are [page * P, (page + 1) * P)
    std::uint64_t version = 0;  ///< changes whenever its pages change or the node goes
    std::uint64_t used = 0;     ///< the tick of its last store or hit
    std::int32_t priority = 0;
    std::int32_t snapshot = -1;  ///< the slot of the recurrent states at the page's end, or -1
    std::int32_t older = -1, newer = -1;  ///< its neighbours in its priority's eviction list
    bool listed = false;                  ///< in an eviction list (every live node once touched)
    bool alive = false;
    std::vector<std::byte> record;
    signed_array<page_id, NumGroups> pages;
    /// Per group: only the page's sink positions hold K/V (a streaming window stored the page
    /// after its other positions slid out unwritten): it serves as a sink page only.
    signed_array<bool, NumGroups> sinks_only{};
  };

  prefix_index() = default;

  const node& operator[](std::int32_t n) const { return at(nodes_, n); }
  std::size_t nodes() const { return live_; }
  std::span<const node> all() const { return nodes_; }

  /// Returns the node of a key, or -1.
  std::int32_t find(const prefix::page_key& key) const {
    if (slots_.empty()) return -1;
    for (std::size_t s = home(key);; s = (s + 1) & (slots_.size() - 1)) {
      const std::int32_t n = slots_[s];
      if (n < 0) return -1;
      if (at(nodes_, n).key == key) return n;
    }
  }

  /// Returns the nodes that hold the prompt's pages, from the first, as far as each one's
  /// bytes equal the prompt's (its parent is then the node before it).
  std::vector<std::int32_t> match(const page_records& records) const {
    std::vector<std::int32_t> chain;
    std::int32_t parent = -1;
    for (std::size_t j = 0; j < records.size(); ++j) {
      const std::int32_t n = find(records.keys[j]);
      if (n < 0 || !same_content(n, parent, j, records.record(j))) break;
      chain.push_back(n);
      parent = n;
    }
    return chain;
  }

  /// Returns whether node n stands for page j after `parent` with these bytes.
  bool same_content(std::int32_t n, std::int32_t parent, std::size_t j,
                    std::span<const std::byte> record) const {
    const node& x = at(nodes_, n);
    return x.parent == parent && x.page == static_cast<std::int64_t>(j) &&
           x.record.size() == record.size() &&
           (record.empty() || std::memcmp(x.record.data(), record.data(), record.size()) == 0);
  }

  /// Makes room for `more` nodes, so that add() and the key table allocate nothing; may throw
  /// (then nothing changed).
  void reserve(std::size_t more) {
    const std::size_t fresh = more > free_nodes_.size() ? more - free_nodes_.size() : 0;
    nodes_.reserve(nodes_.size() + fresh);
    free_nodes_.reserve(nodes_.capacity());  // prune() then never allocates
    if ((live_ + more) * 2 > slots_.size()) rehash(std::max<std::size_t>(16, (live_ + more) * 4));
  }

  /// Adds a node (after reserve()); takes the record's memory. Returns it.
  std::int32_t add(const prefix::page_key& key, std::int32_t parent, std::int64_t page,
                   std::vector<std::byte>&& record, std::uint64_t tick,
                   std::int32_t priority) noexcept {
    std::int32_t n;
    if (!free_nodes_.empty()) {
      n = free_nodes_.back();
      free_nodes_.pop_back();
    } else {
      n = static_cast<std::int32_t>(nodes_.size());
      nodes_.emplace_back();  // reserved: does not allocate
    }
    node& x = at(nodes_, n);
    x.key = key;
    x.parent = parent;
    x.first_child = -1;
    x.next_sibling = parent >= 0 ? at(nodes_, parent).first_child : -1;
    if (parent >= 0) at(nodes_, parent).first_child = n;
    x.page = page;
    x.version = next_version();
    x.used = tick;
    x.priority = priority;
    x.snapshot = -1;
    x.older = x.newer = -1;
    x.listed = false;
    x.alive = true;
    x.record = std::move(record);
    x.pages.fill(-1);
    x.sinks_only.fill(false);
    place(n);
    ++live_;
    return n;
  }

  void attach(std::int32_t n, int g, page_id page, bool sinks_only) noexcept {
    at(nodes_, n).pages[g] = page;  // a hit found before stays good: no new version
    at(nodes_, n).sinks_only[g] = sinks_only;
  }
  /// Forgets node n's page in group g (the caller has dropped or taken the reference).
  void detach(std::int32_t n, int g) noexcept {
    node& x = at(nodes_, n);
    x.pages[g] = -1;
    x.version = next_version();
  }
  /// Sets node n's snapshot slot; taking one away (-1) makes hits that relied on it stale.
  void set_snapshot(std::int32_t n, std::int32_t slot) noexcept {
    node& x = at(nodes_, n);
    if (slot < 0) x.version = next_version();
    x.snapshot = slot;
  }
  /// Makes room for the eviction list of a priority, so that touch() with it allocates
  /// nothing; may throw (then nothing changed).
  void reserve_priority(std::int32_t priority) {
    std::size_t i = 0;
    while (i < lists_.size() && lists_[i].priority < priority) ++i;
    if (i == lists_.size() || lists_[i].priority != priority)
      lists_.insert(lists_.begin() + static_cast<std::ptrdiff_t>(i), eviction_list{priority});
  }
  /// Records a use of node n now (tick, newer than every earlier one) with a priority whose
  /// list exists: n goes to that list's end. Of the nodes one call touches, touch the deepest
  /// first, so that it goes first among them.
  void touch(std::int32_t n, std::uint64_t tick, std::int32_t priority) noexcept {
    node& x = at(nodes_, n);
    if (x.listed) unlist(n);
    x.used = tick;
    x.priority = priority;
    eviction_list& list = list_of(priority);
    x.older = list.newest;
    x.newer = -1;
    (list.newest >= 0 ? at(nodes_, list.newest).newer : list.oldest) = n;
    list.newest = n;
    x.listed = true;
  }

  /// Removes node n if it is alive, lists no page and has no child, then its parent likewise; calls
  /// removed(id) before each goes.
  template <class Removed>
  void prune(std::int32_t n, Removed&& removed) noexcept {
    while (n >= 0) {
      node& x = at(nodes_, n);
      if (!x.alive || x.first_child >= 0 || holds_any(x)) return;
      removed(n);
      const std::int32_t parent = x.parent;
      unlink(n);
      unplace(n);
      if (x.listed) unlist(n);
      x.alive = false;
      x.version = next_version();
      std::vector<std::byte>().swap(x.record);
      free_nodes_.push_back(n);  // within the capacity the node had: no allocation
      --live_;
      n = parent;
    }
  }

  /// Fills `out` with up to `count` (node, page) pairs of group g whose page only the index
  /// holds: lowest priority first, then least recently used, deepest first. May throw (then
  /// nothing changed).
  void victims(int g, const page_pool& pool, std::int64_t count,
               std::vector<std::pair<std::int32_t, page_id>>& out) const {
    out.clear();
    for (const eviction_list& list : lists_)
      for (std::int32_t n = list.oldest; n >= 0 && static_cast<std::int64_t>(out.size()) < count;
           n = nodes_[static_cast<std::size_t>(n)].newer) {
        const node& x = nodes_[static_cast<std::size_t>(n)];
        if (x.pages[g] >= 0 && pool.references(x.pages[g]) == 1) out.emplace_back(n, x.pages[g]);
      }
  }

  /// The eviction list of one priority: its nodes from the least recently used.
  struct eviction_list {
    std::int32_t priority = 0;
    std::int32_t oldest = -1, newest = -1;
  };
  /// Returns the eviction lists, by priority, for the invariants check.
  std::span<const eviction_list> eviction_lists() const { return lists_; }

  /// Returns the node ids of the key table, for the invariants check: every live node once.
  std::span<const std::int32_t> slots() const { return slots_; }

 private:
  eviction_list& list_of(std::int32_t priority) noexcept {
    std::size_t i = 0;
    while (lists_[i].priority != priority) ++i;  // reserve_priority made it
    return lists_[i];
  }
  void unlist(std::int32_t n) noexcept {
    node& x = at(nodes_, n);
    eviction_list& list = list_of(x.priority);
    (x.older >= 0 ? at(nodes_, x.older).newer : list.oldest) = x.newer;
    (x.newer >= 0 ? at(nodes_, x.newer).older : list.newest) = x.older;
    x.older = x.newer = -1;
    x.listed = false;
  }
  // Versions are unique in the process, not only in one index: a hit kept past its cache's end
  // never matches a node of a cache made later at the same address.
  static std::uint64_t next_version() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  static bool holds_any(const node& x) {
    for (const page_id p : x.pages)
      if (p >= 0) return true;
    return false;
  }

  std::size_t home(const prefix::page_key& key) const {
    return static_cast<std::size_t>(key.low ^ (key.high * 0x9E3779B97F4A7C15ull)) &
           (slots_.size() - 1);
  }
  void place(std::int32_t n) noexcept {
    std::size_t s = home(at(nodes_, n).key);
    while (slots_[s] >= 0) s = (s + 1) & (slots_.size() - 1);
    slots_[s] = n;
  }
  // Removes n from the key table, shifting back what follows it (linear probing).
  void unplace(std::int32_t n) noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t hole = home(at(nodes_, n).key);
    while (slots_[hole] != n) hole = (hole + 1) & mask;
    for (std::size_t s = (hole + 1) & mask; slots_[s] >= 0; s = (s + 1) & mask) {
      const std::size_t want = home(at(nodes_, slots_[s]).key);
      // slots_[s] may move to the hole if its home is not in (hole, s] (cyclically).
      if (((s - want) & mask) >= ((s - hole) & mask)) {
        slots_[hole] = slots_[s];
        hole = s;
      }
    }
    slots_[hole] = -1;
  }
  void unlink(std::int32_t n) noexcept {
    const node& x = at(nodes_, n);
    if (x.parent < 0) return;
    std::int32_t* link = &at(nodes_, x.parent).first_child;
    while (*link != n) link = &at(nodes_, *link).next_sibling;
    *link = x.next_sibling;
  }
  void rehash(std::size_t at_least) {
    std::size_t size = 16;
    while (size < at_least) size *= 2;
    std::vector<std::int32_t> fresh(size, -1);  // the one allocation: may throw
    slots_.swap(fresh);
    for (std::size_t n = 0; n < nodes_.size(); ++n)
      if (nodes_[n].alive) place(static_cast<std::int32_t>(n));
  }

  std::vector<node> nodes_;
  std::vector<std::int32_t> free_nodes_;
  std::vector<std::int32_t> slots_;   ///< open addressing, a power of two, at most half full
  std::vector<eviction_list> lists_;  ///< by priority, ascending
  std::size_t live_ = 0;
};

}  // namespace kvc::detail
