#pragma once
// kv_cache<Model, Paging, Allocator>: the paged, multi-sequence KV cache of a model.
//
// - One page pool per group of layers with the same cache shape and window
//   (layer_groups.hpp); a page holds page_tokens consecutive positions of one sequence in
//   every layer of its group. Windows give pages back: a sequence keeps exactly the pages
//   its window's pages_kept() names.
// - Sequences are added, forked (the child shares every page; a shared page that is written
//   is copied first) and released.
// - Appending is one step in three calls, because an engine computes K/V layer by layer:
//     plan = cache.plan_append(batch)   checks the batch, takes the pages it needs
//     cache.write(plan, layer, k, v)    stores (and quantizes) one layer's new K/V
//     cache.commit(plan)                the sequences grow; pages that slid out go back
//   cache.abort(plan) gives everything back instead, and so does a plan destroyed while
//   open (an exception in the engine's layer loop leaves the cache as it was);
//   cache.append(batch, layers) does the three at once. Only one plan is open at a time.
//   While it is open, step_table(plan, layer) lists the pages the step will hold, so that
//   attention of layer l can run over the step's own new tokens once they are written.
// - Rollback: truncate(seq, n) drops the last tokens (speculative decoding's rejected
//   drafts); fork(parent, n) shares only the first n. Window layers keep a rollback reserve
//   of R tokens (capacity_*::rollback_reserve) so that a sequence cut back to the longest it
//   has been minus R still finds everything it sees.
// - Every error throws cache_error and leaves the cache exactly as it was.
//
// This file is the facade and orders every call (all that can throw comes first); its parts:
// requests.hpp (handles, requests, capacities), kv_input.hpp (new K/V and their check),
// step_pages.hpp (what a step does to a sequence's pages in a group), append_plan.hpp,
// page_pool.hpp, page_table.hpp (tables and views), layer_groups.hpp.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvc/cache/allocator.hpp"
#include "kvc/cache/append_plan.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/kv_input.hpp"
#include "kvc/cache/layer_groups.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/step_pages.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/host_vector.hpp"
#include "kvc/numeric/vector.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc {

template <model_type Model, class Paging = paged<16>, class Allocator = host_allocator>
class kv_cache {
  static_assert(Paging::is_paged, "kvc::kv_cache<Model, Paging>: Paging must be paged<P, layout>");
  static_assert(page_allocator<Allocator>,
                "kvc::kv_cache<Model, Paging, Allocator>: Allocator must provide allocate, "
                "deallocate, copy, upload, download and host_accessible");

 public:
  using groups = layer_groups<Model>;
  static constexpr int num_layers = Model::num_layers;
  static constexpr int num_groups = groups::num_groups;
  static constexpr int page_tokens = Paging::page_tokens;
  static constexpr page_layout layout = Paging::layout;

  explicit kv_cache(capacity_pages capacity, Allocator allocator = {})
      : allocator_(std::move(allocator)) {
    if (capacity.pages_per_group <= 0 ||
        capacity.pages_per_group > std::numeric_limits<page_id>::max())
      throw cache_error(cache_errc::invalid_argument,
                        "kvc::kv_cache: pages_per_group must be in 1..2^31-1, not " +
                            std::to_string(capacity.pages_per_group));
    set_reserve(capacity.rollback_reserve);
    detail::signed_array<std::int64_t, num_groups> pages{};
    pages.fill(capacity.pages_per_group);
    build(pages);
  }

  explicit kv_cache(capacity_bytes capacity, Allocator allocator = {})
      : allocator_(std::move(allocator)) {
    if (capacity.expected_tokens <= 0 || capacity.expected_tokens > max_sequence_tokens)
      throw cache_error(cache_errc::invalid_argument,
                        "kvc::kv_cache: expected_tokens must be in 1..2^40");
    set_reserve(capacity.rollback_reserve);
    // Pages one sequence of expected_tokens needs per group, and their bytes.
    detail::signed_array<std::int64_t, num_groups> need{};
    double bytes_per_sequence = 0;
    for (int g = 0; g < num_groups; ++g) {
      const window_shape& window = windows_[g];
      need[g] =
          window.max_pages_held(capacity.expected_tokens, page_tokens) + (window.bounded() ? 1 : 0);
      bytes_per_sequence +=
          static_cast<double>(need[g]) * static_cast<double>(group_page_bytes(g) * group_layers(g));
    }
    const double sequences = static_cast<double>(capacity.bytes) / bytes_per_sequence;
    detail::signed_array<std::int64_t, num_groups> pages{};
    for (int g = 0; g < num_groups; ++g) {
      const double wanted = sequences * static_cast<double>(need[g]);
      if (wanted < 1)
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache: " + std::to_string(capacity.bytes) +
                              " bytes cannot hold one page of every group");
      if (wanted > static_cast<double>(std::numeric_limits<page_id>::max()))
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache: " + std::to_string(capacity.bytes) +
                              " bytes would need more than 2^31-1 pages in group " +
                              std::to_string(g) + "; use larger pages");
      pages[g] = static_cast<std::int64_t>(wanted);
    }
    build(pages);
  }

  kv_cache(const kv_cache&) = delete;
  kv_cache& operator=(const kv_cache&) = delete;

  ~kv_cache() {
    if (open_plan_ != nullptr) open_plan_->owner_ = nullptr;  // its pages go with the pools
    for (group_state& g : groups_)
      if (g.memory != nullptr) allocator_.deallocate(g.memory, g.memory_bytes);
  }

  // ---- sequences ----

  sequence_id add_sequence() {
    if (free_slots_.empty() && sequences_.size() >= std::numeric_limits<std::uint32_t>::max())
      throw cache_error(cache_errc::invalid_argument, "kvc::kv_cache: 2^32-1 sequences are alive");
    if (free_slots_.empty()) sequences_.emplace_back();  // strong: nothing else changed yet
    const std::uint32_t slot = free_slots_.empty()
                                   ? static_cast<std::uint32_t>(sequences_.size() - 1)
                                   : free_slots_.back();
    if (!free_slots_.empty()) free_slots_.pop_back();
    sequence_state& s = sequences_[slot];
    s.alive = true;
    s.length = 0;
    s.valid_from.fill(0);
    return {slot, s.generation};
  }

  /// A new sequence with the parent's tokens, sharing every one of its pages.
  sequence_id fork(sequence_id parent) { return fork(parent, length(parent)); }

  /// A new sequence with the parent's first `tokens` tokens (beam search, a shared system
  /// prompt), sharing the pages that hold them; the parent is unchanged. A shared page that
  /// either one writes is copied first. Throws rollback_exceeded when a window of the parent
  /// no longer keeps what the child would see (see truncate).
  sequence_id fork(sequence_id parent, std::int64_t tokens) {
    no_open_plan("fork");
    const std::uint32_t parent_slot = checked(parent);
    detail::signed_array<std::vector<page_id>, num_groups> pages;
    for (int g = 0; g < num_groups; ++g) {
      const std::vector<page_id>& held = sequences_[parent_slot].pages[g];
      pages[g].assign(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(kept_entries(
                                                       parent_slot, g, tokens, "fork")));
    }
    // Everything that can throw is done: take the slot and the references.
    const sequence_id child = add_sequence();
    sequence_state& p = sequences_[parent_slot];  // add_sequence may have moved it
    sequence_state& c = sequences_[child.slot];
    c.length = tokens;
    for (int g = 0; g < num_groups; ++g) {
      c.pages[g] = std::move(pages[g]);
      c.valid_from[g] = std::min(p.valid_from[g], tokens);
      for (page_id page : c.pages[g]) groups_[g].pool.retain(page);
    }
    ++epoch_;
    return child;
  }

  /// Drops the sequence's tokens from position `tokens` on (the rejected draft tokens of
  /// speculative decoding): their pages go back (a shared page is only let go, never
  /// written). A window layer must still hold everything a sequence of `tokens` tokens sees;
  /// a cache built with a rollback reserve of R guarantees that for any `tokens` at least the
  /// longest the sequence has been minus R (a speculative step of up to R drafts). Otherwise
  /// throws rollback_exceeded and changes nothing.
  void truncate(sequence_id sequence, std::int64_t tokens) {
    no_open_plan("truncate");
    const std::uint32_t slot = checked(sequence);
    detail::signed_array<std::size_t, num_groups> kept{};
    for (int g = 0; g < num_groups; ++g) kept[g] = kept_entries(slot, g, tokens, "truncate");
    sequence_state& s = sequences_[slot];  // nothing below throws
    for (int g = 0; g < num_groups; ++g) {
      std::vector<page_id>& table = s.pages[g];
      for (std::size_t j = kept[g]; j < table.size(); ++j) groups_[g].pool.release(table[j]);
      table.resize(kept[g]);
      s.valid_from[g] = std::min(s.valid_from[g], tokens);
    }
    s.length = tokens;
    ++epoch_;
  }

  void release(sequence_id sequence) {
    no_open_plan("release");
    const std::uint32_t slot = checked(sequence);
    free_slots_.reserve(free_slots_.size() + 1);  // the only step that can throw
    sequence_state& s = sequences_[slot];
    for (int g = 0; g < num_groups; ++g) {
      for (page_id page : s.pages[g]) groups_[g].pool.release(page);
      s.pages[g].clear();
    }
    s.alive = false;
    s.length = 0;
    ++s.generation;
    free_slots_.push_back(slot);
    ++epoch_;
  }

  bool contains(sequence_id sequence) const {
    return sequence.slot < sequences_.size() && sequences_[sequence.slot].alive &&
           sequences_[sequence.slot].generation == sequence.generation;
  }

  /// Tokens appended to the sequence so far (windows do not shorten it).
  std::int64_t length(sequence_id sequence) const { return sequences_[checked(sequence)].length; }

  /// How many more tokens the sequence can take, in one append or several, if no other
  /// sequence takes pages meanwhile; unlimited_tokens when its windows never run out.
  std::int64_t tokens_available(sequence_id sequence) const {
    const std::uint32_t slot = checked(sequence);
    std::int64_t available = unlimited_tokens;
    for (int g = 0; g < num_groups; ++g)
      available = std::min(available, tokens_available_in_group(slot, g));
    return available;
  }

  /// Whether truncate(sequence, tokens) (or fork(sequence, tokens)) would succeed.
  bool can_truncate(sequence_id sequence, std::int64_t tokens) const {
    const std::uint32_t slot = checked(sequence);
    if (tokens < 0 || tokens > sequences_[slot].length) return false;
    for (int g = 0; g < num_groups; ++g)
      if (!can_cut(slot, g, tokens)) return false;
    return true;
  }

  /// The rollback reserve the cache was built with.
  std::int64_t rollback_reserve() const { return rollback_reserve_; }

  // ---- pages ----

  static constexpr int group_of_layer(int layer) { return groups::value.group[layer]; }
  std::int64_t capacity_pages_of(int group) const { return groups_[group].pool.capacity(); }
  std::int64_t free_pages(int group) const { return groups_[group].pool.free_pages(); }
  std::int64_t used_pages(int group) const { return groups_[group].pool.used_pages(); }
  /// Pages the sequence holds in a group (shared pages included).
  std::int64_t pages_of(sequence_id sequence, int group) const {
    return static_cast<std::int64_t>(sequences_[checked(sequence)].pages[group].size());
  }
  const page_geometry& geometry(int group) const { return groups_[group].geometry; }
  /// The window a group keeps pages for (the layers' window, with the rollback reserve).
  const window_shape& kept_window(int group) const { return windows_[group]; }
  /// Bytes of the pages in use, every layer of every group (shared pages once).
  std::uint64_t used_bytes() const {
    std::uint64_t bytes = 0;
    for (const group_state& g : groups_)
      bytes += static_cast<std::uint64_t>(g.pool.used_pages()) * g.geometry.page_bytes *
               static_cast<std::uint64_t>(g.layers);
    return bytes;
  }
  std::uint64_t memory_bytes() const {
    std::uint64_t bytes = 0;
    for (const group_state& g : groups_) bytes += g.memory_bytes;
    return bytes;
  }
  /// Bumped by every call that changes a sequence's pages or length (commit, abort,
  /// truncate, fork, release): page tables from an older epoch are stale.
  std::uint64_t epoch() const { return epoch_; }

  // ---- fp8 scales ----

  /// Sets an fp8 layer's scales: stored keys are keys / k_scale, values / v_scale. Allowed
  /// only while the layer's group holds no token, since stored values would change meaning.
  void set_fp8_scales(int layer, float k_scale, float v_scale) {
    no_open_plan("set_fp8_scales");
    const int g = owning_group(layer);
    const auto valid = [](float s) { return std::isfinite(s) && s > 0; };
    if (!valid(k_scale) || !valid(v_scale))
      throw cache_error(cache_errc::invalid_argument,
                        "kvc::kv_cache::set_fp8_scales: scales must be finite and positive");
    if (groups_[g].pool.used_pages() != 0)
      throw cache_error(cache_errc::invalid_argument,
                        "kvc::kv_cache::set_fp8_scales: layer " + std::to_string(layer) +
                            " already holds tokens; set its scales before the first append");
    k_scale_[layer] = k_scale;
    v_scale_[layer] = v_scale;
    ++epoch_;  // views carry the scales
  }

  // ---- admission: what a batch would take, asked without exceptions ----

  /// What plan_append(batch) would do now, found without taking anything and without
  /// throwing: `valid` is false when it would refuse the batch for another reason than pages
  /// (an open plan, a released or repeated sequence, a token count out of range), and then
  /// every `pages[g]` is 0; otherwise `pages[g]` is what group g would take (fresh pages, and
  /// copies of shared pages the step writes) and `fits` whether every group has them free.
  struct admission {
    bool valid = false;
    bool fits = false;
    std::array<std::int64_t, static_cast<std::size_t>(num_groups)> pages{};
  };
  admission admit(std::span<const append_request> batch) const noexcept {
    admission a;
    if (open_ticket_ != 0) return a;
    try {
      std::vector<bool> seen(sequences_.size(), false);  // as plan_append's check
      std::int64_t total = 0;
      for (const append_request& request : batch) {
        if (!contains(request.sequence) || seen[request.sequence.slot]) return admission{};
        seen[request.sequence.slot] = true;
        const std::int64_t length = sequences_[request.sequence.slot].length;
        if (request.tokens < 0 || request.tokens > max_sequence_tokens - length ||
            total > max_sequence_tokens - request.tokens)
          return admission{};  // refused: no page counts
        total += request.tokens;
        for (int g = 0; g < num_groups; ++g) {
          a.pages[static_cast<std::size_t>(g)] +=
              step_need_of(request.sequence.slot, g, length, request.tokens).pages();
        }
      }
    } catch (...) {  // out of memory for the check itself: nothing can be said
      return admission{};
    }
    a.valid = true;
    a.fits = true;
    for (int g = 0; g < num_groups; ++g)
      a.fits = a.fits && a.pages[static_cast<std::size_t>(g)] <= groups_[g].pool.free_pages();
    return a;
  }

  /// Whether plan_append(batch) would succeed now.
  bool can_append(std::span<const append_request> batch) const noexcept {
    const admission a = admit(batch);
    return a.valid && a.fits;
  }

  /// How many new sequences of `tokens` tokens each (appended in one step) the free pages
  /// hold now: the least over the groups of free pages / pages a sequence takes there
  /// (unlimited_tokens when none takes any, 0 for a negative count or one over 2^40).
  std::int64_t sequences_that_fit(std::int64_t tokens) const noexcept {
    if (tokens < 0 || tokens > max_sequence_tokens) return 0;
    std::int64_t fit = unlimited_tokens;
    for (int g = 0; g < num_groups; ++g) {
      const std::int64_t pages = step_pages::of(windows_[g], page_tokens, 0, 0, tokens).fresh;
      if (pages > 0) fit = std::min(fit, groups_[g].pool.free_pages() / pages);
    }
    return fit;
  }

  // ---- appending ----

  /// Checks a batch and takes the pages it needs (copying shared pages it will write).
  append_plan plan_append(std::span<const append_request> batch) {
    no_open_plan("plan_append");
    append_plan plan;
    plan.entries_.reserve(batch.size());
    std::vector<bool> seen(sequences_.size(), false);
    for (const append_request& request : batch) {
      const std::uint32_t slot = checked(request.sequence);
      if (seen[slot])
        throw cache_error(cache_errc::duplicate_sequence,
                          "kvc::kv_cache::plan_append: the batch names sequence " +
                              std::to_string(slot) + " twice");
      seen[slot] = true;
      if (request.tokens < 0 || request.tokens > max_sequence_tokens - sequences_[slot].length)
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache::plan_append: " + std::to_string(request.tokens) +
                              " new tokens for sequence " + std::to_string(slot) +
                              ": a count must be in 0..2^40 - length");
      if (plan.total_tokens_ > max_sequence_tokens - request.tokens)
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache::plan_append: the batch has more than 2^40 tokens");
      plan.entries_.push_back({slot, sequences_[slot].length, request.tokens, plan.total_tokens_});
      plan.total_tokens_ += request.tokens;
    }

    // Count the pages of every group before taking any.
    std::vector<step_need> steps;
    steps.reserve(plan.entries_.size() * num_groups);
    detail::signed_array<std::int64_t, num_groups> needed{};
    std::int64_t fresh_total = 0;
    for (const auto& e : plan.entries_)
      for (int g = 0; g < num_groups; ++g) {
        steps.push_back(step_need_of(e.slot, g, e.old_length, e.tokens));
        needed[g] += steps.back().pages();
        fresh_total += steps.back().step.fresh;
      }
    for (int g = 0; g < num_groups; ++g)
      if (needed[g] > groups_[g].pool.free_pages())
        throw cache_error(cache_errc::out_of_pages,
                          "kvc::kv_cache::plan_append: group " + std::to_string(g) + " needs " +
                              std::to_string(needed[g]) + " pages, " +
                              std::to_string(groups_[g].pool.free_pages()) + " are free");

    plan.groups_ = num_groups;
    plan.changes_.resize(plan.entries_.size() * num_groups);
    plan.new_pages_.reserve(static_cast<std::size_t>(fresh_total));
    plan.written_.assign(num_layers, false);
    // Nothing above took a page; from here a failure (a device copy) gives back what was taken.
    try {
      for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
        const auto& e = plan.entries_[i];
        for (int g = 0; g < num_groups; ++g) {
          const step_need& need = steps[i * num_groups + static_cast<std::size_t>(g)];
          auto& change = plan.change(i, g);
          group_state& group = groups_[g];
          change.new_begin = change.new_end = static_cast<std::int32_t>(plan.new_pages_.size());
          if (need.copy_on_write) {
            const page_id shared =
                sequences_[e.slot].pages[g][static_cast<std::size_t>(need.step.write_entry)];
            change.cow_page = group.pool.allocate();
            for (int l = 0; l < group.layers; ++l)
              allocator_.copy(page_memory(g, l, change.cow_page), page_memory(g, l, shared),
                              group.geometry.page_bytes);
          }
          for (std::int64_t p = 0; p < need.step.fresh; ++p) {
            plan.new_pages_.push_back(group.pool.allocate());
            change.new_end = static_cast<std::int32_t>(plan.new_pages_.size());
          }
        }
      }
    } catch (...) {
      give_back(plan);
      throw;
    }
    plan.ticket_ = open_ticket_ = next_ticket_++;
    plan.owner_ = this;
    plan.notify_ = &kv_cache::notify;
    open_plan_ = &plan;
    return plan;  // the move (or elision) tells the cache where the plan lives now
  }

  /// Stores one layer's K/V for every token of the plan that its window keeps.
  void write(const append_plan& plan, int layer, const kv_input& k, const kv_input& v) {
    is_open(plan, "write");
    const int g = owning_group(layer);
    const group_state& group = groups_[g];
    const page_geometry& geo = group.geometry;
    check_kv_input(k, plan.total_tokens_, geo.kv_heads, geo.k_dim,
                   input_name{"kvc::kv_cache", "K", layer});
    if (geo.latent) {
      if (v.data != nullptr)
        throw cache_error(cache_errc::shape_mismatch,
                          "kvc::kv_cache::write: layer " + std::to_string(layer) +
                              " is a latent layer: its values are part of K; pass no V");
    } else {
      check_kv_input(v, plan.total_tokens_, geo.kv_heads, geo.v_dim,
                     input_name{"kvc::kv_cache", "V", layer});
    }
    const int slot_in_group = groups::value.slot[layer];
    const float k_inverse = 1.0f / k_scale_[layer], v_inverse = 1.0f / v_scale_[layer];
    const window_shape& window = windows_[g];
    for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
      const auto& e = plan.entries_[i];
      const std::int64_t end = e.old_length + e.tokens;
      const step_pages step = step_of(plan, i, g);
      const auto& change = plan.change(i, g);
      const page_id* held = sequences_[e.slot].pages[g].data();
      const page_id* fresh = plan.new_pages_.data() + change.new_begin;
      for (std::int64_t position = e.old_length; position < end; ++position) {
        if (!window.keeps(end, position)) continue;  // slid out within the step
        const page_id page = step.page_of(position, held, fresh, change.cow_page);
        const std::int64_t row = e.first_input + (position - e.old_length);
        with_page(g, slot_in_group, page, [&](std::byte* memory) {
          const int token = static_cast<int>(position % page_tokens);
          for (int head = 0; head < geo.kv_heads; ++head) {
            numeric::store_converted(
                k.type, k.vector(row, head), geo.k_type, geo.k_dim, k_inverse,
                memory + geo.k_offset(token, head),
                reinterpret_cast<float*>(memory + geo.k_scale_offset(token, head)));
            if (!geo.latent)
              numeric::store_converted(
                  v.type, v.vector(row, head), geo.v_type, geo.v_dim, v_inverse,
                  memory + geo.v_offset(token, head),
                  reinterpret_cast<float*>(memory + geo.v_scale_offset(token, head)));
          }
        });
      }
    }
    plan.written_[static_cast<std::size_t>(layer)] = true;
  }

  /// Records that a kernel stored layer's K/V for this step in the step's pages, as write()
  /// would (kvc::kernels::append, on a device or in the SIMT emulator), so that commit() takes
  /// the layer as written. The cache cannot see those bytes: call it once the kernel has
  /// finished (its stream synchronized, or ordered before the attention that reads it).
  /// Throws plan_conflict for a plan that is not the open one, invalid_layer for a layer that
  /// owns no cache; the plan is unchanged then.
  void mark_written(const append_plan& plan, int layer) {
    is_open(plan, "mark_written");
    static_cast<void>(owning_group(layer));
    plan.written_[static_cast<std::size_t>(layer)] = true;
  }

  /// The step's sequences grow; pages their windows no longer keep go back to the pools.
  /// Every cache-owning layer must have been written (otherwise its new positions would
  /// hold whatever the pages held before: another sequence's keys): invalid_argument, and
  /// the plan stays open.
  void commit(append_plan& plan) {
    is_open(plan, "commit");
    if (plan.total_tokens_ > 0)
      for (int l = 0; l < num_layers; ++l)
        if (Model::layer_summaries[static_cast<std::size_t>(l)].owns_cache() &&
            !plan.written_[static_cast<std::size_t>(l)])
          throw cache_error(cache_errc::invalid_argument,
                            "kvc::kv_cache::commit: layer " + std::to_string(l) +
                                " was not written; write every layer that owns a cache, or "
                                "abort the plan");
    // The only steps that can throw (growing the page tables) come first.
    for (std::size_t i = 0; i < plan.entries_.size(); ++i)
      for (int g = 0; g < num_groups; ++g) {
        const auto& change = plan.change(i, g);
        std::vector<page_id>& table = sequences_[plan.entries_[i].slot].pages[g];
        table.reserve(table.size() + static_cast<std::size_t>(change.new_end - change.new_begin));
      }
    for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
      const auto& e = plan.entries_[i];
      sequence_state& s = sequences_[e.slot];
      const std::int64_t new_length = e.old_length + e.tokens;
      for (int g = 0; g < num_groups; ++g) {
        const auto& change = plan.change(i, g);
        const step_pages step = step_of(plan, i, g);  // before the table changes
        std::vector<page_id>& table = s.pages[g];
        page_pool& pool = groups_[g].pool;
        const window_shape& window = windows_[g];
        if (change.cow_page >= 0) {
          auto& replaced = table[static_cast<std::size_t>(step.write_entry)];
          pool.release(replaced);
          replaced = change.cow_page;
        }
        if (window.bounded()) {  // drop the pages the window no longer keeps
          std::size_t kept = 0;
          for (std::size_t j = 0; j < table.size(); ++j) {
            if (step.keeps_entry(static_cast<std::int64_t>(j)))
              table[kept++] = table[j];
            else
              pool.release(table[j]);
          }
          table.resize(kept);
          s.valid_from[g] = std::max(s.valid_from[g], window.keep_begin(new_length));
        }
        table.insert(table.end(), plan.new_pages_.begin() + change.new_begin,
                     plan.new_pages_.begin() + change.new_end);
      }
      s.length = new_length;
    }
    close(plan);
  }

  /// Gives back everything the plan took: the cache is as before plan_append.
  void abort(append_plan& plan) {
    is_open(plan, "abort");
    give_back(plan);
    close(plan);
  }

  /// One step for every cache-owning layer at once: plan, write each layer, commit. Every
  /// input is checked before anything changes.
  void append(std::span<const append_request> batch, std::span<const layer_input> layers) {
    std::int64_t total = 0;
    for (const append_request& request : batch) {
      if (request.tokens < 0 || request.tokens > max_sequence_tokens - total)
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache::append: token counts must be in 0..2^40 in all");
      total += request.tokens;
    }
    detail::signed_array<bool, num_layers> given{};
    for (const layer_input& input : layers) {
      const int g = owning_group(input.layer);
      if (given[input.layer])
        throw cache_error(
            cache_errc::invalid_argument,
            "kvc::kv_cache::append: layer " + std::to_string(input.layer) + " is given twice");
      given[input.layer] = true;
      const page_geometry& geo = groups_[g].geometry;
      check_kv_input(input.k, total, geo.kv_heads, geo.k_dim,
                     input_name{"kvc::kv_cache", "K", input.layer});
      if (!geo.latent)
        check_kv_input(input.v, total, geo.kv_heads, geo.v_dim,
                       input_name{"kvc::kv_cache", "V", input.layer});
    }
    for (int l = 0; l < num_layers; ++l)
      if (Model::layer_summaries[static_cast<std::size_t>(l)].owns_cache() && !given[l])
        throw cache_error(cache_errc::invalid_argument,
                          "kvc::kv_cache::append: no K/V given for layer " + std::to_string(l));
    append_plan plan = plan_append(batch);  // aborts by itself if a write throws
    for (const layer_input& input : layers) write(plan, input.layer, input.k, input.v);
    commit(plan);
  }

  // ---- reading ----

  /// Dequantized K ([kv_heads][k_dim]) and V ([kv_heads][v_dim]) of one position; false when
  /// the cache no longer holds it: the layer's window does not show it, and the rollback
  /// reserve does not keep it either. v may be null; k may not (invalid_argument). The sizes
  /// are the caller's to get right: the span form checks them.
  bool read(sequence_id sequence, int layer, std::int64_t position, float* k, float* v) const {
    const sequence_state& s = sequences_[checked(sequence)];
    const int g = any_group(layer);
    if (k == nullptr)
      throw cache_error(cache_errc::invalid_argument, "kvc::kv_cache::read: null k");
    if (position < 0 || position >= s.length)
      throw cache_error(cache_errc::invalid_argument,
                        "kvc::kv_cache::read: position " + std::to_string(position) +
                            " is outside the sequence's " + std::to_string(s.length) + " tokens");
    const group_state& group = groups_[g];
    if (!group.window.visible(s.length - 1, position) &&
        !(windows_[g].keeps(s.length, position) && position >= s.valid_from[g]))
      return false;
    const auto kept = windows_[g].pages_listed(s.length, page_tokens,
                                               static_cast<std::int64_t>(s.pages[g].size()));
    const page_id page =
        s.pages[g][static_cast<std::size_t>(kept.entry_of(position / page_tokens))];
    const page_geometry& geo = group.geometry;
    const int scale_layer = source_of(layer);  // a shared layer reads with its source's scales
    std::vector<std::byte> staging;
    const std::byte* memory = readable_page(g, groups::value.slot[layer], page, staging);
    const int token = static_cast<int>(position % page_tokens);
    for (int head = 0; head < geo.kv_heads; ++head) {
      numeric::load_vector(geo.k_type, memory + geo.k_offset(token, head),
                           scale_at(memory, geo.k_scale_offset(token, head)), geo.k_dim,
                           k_scale_[scale_layer], k + head * geo.k_dim);
      if (v != nullptr)
        numeric::load_vector(geo.v_type, memory + geo.v_offset(token, head),
                             scale_at(memory, geo.v_scale_offset(token, head)), geo.v_dim,
                             geo.latent ? k_scale_[scale_layer] : v_scale_[scale_layer],
                             v + head * geo.v_dim);
    }
    return true;
  }

  /// read() into sized buffers: k must hold kv_heads * k_dim floats and v (empty: no
  /// values) kv_heads * v_dim, or shape_mismatch.
  bool read(sequence_id sequence, int layer, std::int64_t position, std::span<float> k,
            std::span<float> v) const {
    const page_geometry& geo = groups_[any_group(layer)].geometry;
    const auto check = [&](const char* name, std::size_t given, int dim) {
      const auto needed = static_cast<std::size_t>(geo.kv_heads) * static_cast<std::size_t>(dim);
      if (given < needed)
        throw cache_error(cache_errc::shape_mismatch,
                          std::string("kvc::kv_cache::read: ") + name + " holds " +
                              std::to_string(given) + " floats, layer " + std::to_string(layer) +
                              " needs " + std::to_string(needed));
    };
    check("k", k.size(), geo.k_dim);
    if (!v.empty()) check("v", v.size(), geo.v_dim);
    return read(sequence, layer, position, k.data(), v.empty() ? nullptr : v.data());
  }

  // ---- page tables and views ----

  /// The CSR page table of a layer's group for a batch of sequences, as committed. While a
  /// plan is open this is the step's prefix (what extend() takes with the new K/V).
  page_table_csr page_table(int layer, std::span<const sequence_id> batch) const {
    page_table_csr csr;
    page_table(layer, batch, csr);
    return csr;
  }

  /// page_table() into a table the engine keeps: its memory is reused, so a warm table
  /// allocates nothing. On error the table is left empty.
  void page_table(int layer, std::span<const sequence_id> batch, page_table_csr& csr) const {
    csr.clear();
    const int g = any_group(layer);
    for (const sequence_id& id : batch) checked(id);
    try {
      csr.indptr.reserve(batch.size() + 1);
      csr.last_page_len.reserve(batch.size());
      csr.seq_lens.reserve(batch.size());
      for (const sequence_id& id : batch) {
        const sequence_state& s = sequences_[id.slot];
        csr.indices.insert(csr.indices.end(), s.pages[g].begin(), s.pages[g].end());
        push_sequence(csr, s.length);
      }
    } catch (...) {  // out of memory: never a half-filled table
      csr.clear();
      throw;
    }
    stamp(csr, g);
  }

  /// The page table of an open step: the plan's sequences, in its order, with the pages
  /// they will hold once it is committed (a copied shared page in place of the shared one,
  /// the fresh pages, windows as after the step) and their lengths with the new tokens. Once
  /// layer l's new K/V are written, decode and extend of layer l over this table see them:
  /// the result is bit for bit that of the same call after commit.
  page_table_csr step_table(const append_plan& plan, int layer) const {
    page_table_csr csr;
    step_table(plan, layer, csr);
    return csr;
  }

  void step_table(const append_plan& plan, int layer, page_table_csr& csr) const {
    csr.clear();
    is_open(plan, "step_table");
    const int g = any_group(layer);
    csr.indptr.reserve(plan.entries_.size() + 1);
    csr.last_page_len.reserve(plan.entries_.size());
    csr.seq_lens.reserve(plan.entries_.size());
    try {
      fill_step_table(plan, g, csr);
    } catch (...) {  // out of memory: never a half-filled table
      csr.clear();
      throw;
    }
    stamp(csr, g);
    csr.new_tokens = plan.total_tokens_;
  }

 private:
  void fill_step_table(const append_plan& plan, int g, page_table_csr& csr) const {
    const window_shape& window = windows_[g];
    for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
      const auto& e = plan.entries_[i];
      const auto& change = plan.change(i, g);
      const std::vector<page_id>& table = sequences_[e.slot].pages[g];
      const std::int64_t new_length = e.old_length + e.tokens;
      const step_pages step = step_of(plan, i, g);
      const std::int64_t cow_entry = change.cow_page >= 0 ? step.write_entry : -1;
      for (std::size_t j = 0; j < table.size(); ++j) {
        const auto entry = static_cast<std::int64_t>(j);
        if (window.bounded() && !step.keeps_entry(entry)) continue;
        csr.indices.push_back(entry == cow_entry ? change.cow_page : table[j]);
      }
      csr.indices.insert(csr.indices.end(), plan.new_pages_.begin() + change.new_begin,
                         plan.new_pages_.begin() + change.new_end);
      push_sequence(csr, new_length);
    }
  }

 public:
  /// A view of one layer over a page table (which must outlive the view) of this cache's
  /// current epoch, and of the layer's group. Host memory only is readable through it on the
  /// host; device memory, by device kernels.
  paged_layer_view view(int layer, const page_table_csr& table) const {
    const int g = any_group(layer);
    if (table.epoch != epoch_)
      throw cache_error(cache_errc::stale_table,
                        "kvc::kv_cache::view: the page table is from epoch " +
                            std::to_string(table.epoch) + ", the cache is at " +
                            std::to_string(epoch_) +
                            " (a commit, abort, truncate, fork or release came in between); "
                            "refill it");
    if (table.group != g)
      throw cache_error(cache_errc::plan_mismatch,
                        "kvc::kv_cache::view: the page table lists group " +
                            std::to_string(table.group) + "'s pages, layer " +
                            std::to_string(layer) + " is in group " + std::to_string(g));
    const int owner = source_of(layer);
    paged_layer_view v;
    v.memory = page_memory(g, groups::value.slot[layer], 0);
    v.geometry = groups_[g].geometry;
    v.window = windows_[g];
    v.k_scale = k_scale_[owner];
    v.v_scale = v_scale_[owner];
    v.batch = table.batch();
    v.indptr = table.indptr.data();
    v.indices = table.indices.data();
    v.last_page_len = table.last_page_len.data();
    v.seq_lens = table.seq_lens.data();
    v.serial = table.serial;
    v.group = g;
    v.layer = layer;
    v.q_heads = Model::layer_summaries[static_cast<std::size_t>(layer)].q_heads;
    v.new_tokens = table.new_tokens;
    v.epoch = table.epoch;
    v.live_epoch = &epoch_;
    return v;
  }

  /// Throws std::logic_error unless every reference count equals the number of page-table
  /// entries (and open-plan pages) naming the page, the free lists hold exactly the
  /// unreferenced pages, and every
  /// sequence holds the pages its windows keep (no more; after a truncation or a fork at a
  /// position, maybe fewer recent ones, never fewer than it sees). For tests.
  void check_invariants() const {
    for (int g = 0; g < num_groups; ++g) {
      const page_pool& pool = groups_[g].pool;
      const window_shape& window = windows_[g];
      std::vector<std::int32_t> references(static_cast<std::size_t>(pool.capacity()), 0);
      for (const sequence_state& s : sequences_) {
        if (!s.alive) {
          if (!s.pages[g].empty()) throw std::logic_error("a released sequence holds pages");
          continue;
        }
        const auto held = static_cast<std::int64_t>(s.pages[g].size());
        const auto listed = window.pages_listed(s.length, page_tokens, held);
        const auto kept = window.pages_kept(s.length, page_tokens);
        const std::int64_t seen_begin = window.recent_begin(s.length);
        const bool sees_recent = seen_begin < s.length;
        if (held > kept.count() || (s.length > 0 && held == 0) ||
            (sees_recent && listed.entry_of(seen_begin / page_tokens) < 0))
          throw std::logic_error("group " + std::to_string(g) + ": a sequence of " +
                                 std::to_string(s.length) + " tokens holds " +
                                 std::to_string(held) + " pages, it keeps " +
                                 std::to_string(kept.count()));
        for (page_id p : s.pages[g]) ++references[static_cast<std::size_t>(p)];
      }
      if (open_plan_ != nullptr)  // the open plan's pages are its own until commit
        for (std::size_t i = 0; i < open_plan_->entries_.size(); ++i) {
          const auto& change = open_plan_->change(i, g);
          if (change.cow_page >= 0) ++references[static_cast<std::size_t>(change.cow_page)];
          for (std::int32_t p = change.new_begin; p < change.new_end; ++p)
            ++references[static_cast<std::size_t>(
                open_plan_->new_pages_[static_cast<std::size_t>(p)])];
        }
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
  }

 private:
  struct sequence_state {
    bool alive = false;
    std::uint64_t generation = 0;
    std::int64_t length = 0;
    detail::signed_array<std::vector<page_id>, num_groups> pages;
    /// Per group: from this position on, every recent position the window keeps holds its
    /// K/V (earlier ones may lie in a held page unwritten: a step longer than the window
    /// stores only what it keeps). Truncation and fork at a position check against it.
    detail::signed_array<std::int64_t, num_groups> valid_from{};
  };

  struct group_state {
    page_pool pool{0};
    page_geometry geometry{};
    window_shape window{};  ///< the layers' window: what attention sees
    int layers = 0;
    std::byte* memory = nullptr;  ///< [layer in group][page][page_bytes]
    std::uint64_t memory_bytes = 0;
  };

  // What one step does to one sequence in one group.
  // A step of one sequence in one group, and whether the page it writes into is shared
  // (then copied first): what the step takes from the group's pool.
  struct step_need {
    step_pages step;
    bool copy_on_write = false;
    std::int64_t pages() const { return step.fresh + (copy_on_write ? 1 : 0); }
  };

  static constexpr const layer_summary& group_summary(int g) {
    return Model::layer_summaries[static_cast<std::size_t>(groups::value.info[g].first_layer)];
  }
  static constexpr std::uint64_t group_page_bytes(int g) {
    return page_geometry::make(group_summary(g), page_tokens, layout).page_bytes;
  }
  static constexpr std::uint64_t group_layers(int g) {
    return static_cast<std::uint64_t>(groups::value.info[g].layers);
  }

  void set_reserve(std::int64_t reserve) {
    // Bounded, so that the page-pattern scans over a window's horizon stay short.
    if (reserve < 0 || reserve > max_rollback_reserve)
      throw cache_error(
          cache_errc::invalid_argument,
          "kvc::kv_cache: rollback_reserve must be in 0..65536, not " + std::to_string(reserve));
    rollback_reserve_ = reserve;
    for (int g = 0; g < num_groups; ++g) {
      windows_[g] = group_summary(g).window;
      if (windows_[g].bounded()) windows_[g].reserve = reserve;
    }
  }

  void build(const detail::signed_array<std::int64_t, num_groups>& pages) {
    try {
      for (int g = 0; g < num_groups; ++g) {
        group_state& group = groups_[g];
        group.pool = page_pool(pages[g]);
        group.geometry = page_geometry::make(group_summary(g), page_tokens, layout);
        group.window = group_summary(g).window;
        group.layers = groups::value.info[g].layers;
        group.memory_bytes = static_cast<std::uint64_t>(pages[g]) * group.geometry.page_bytes *
                             static_cast<std::uint64_t>(group.layers);
        group.memory = allocator_.allocate(group.memory_bytes);
      }
    } catch (...) {  // the destructor will not run: give back what was taken
      for (group_state& group : groups_)
        if (group.memory != nullptr) allocator_.deallocate(group.memory, group.memory_bytes);
      throw;
    }
    k_scale_.fill(1.0f);
    v_scale_.fill(1.0f);
  }

  std::uint32_t checked(sequence_id sequence) const {
    if (!contains(sequence))
      throw cache_error(cache_errc::unknown_sequence,
                        "kvc::kv_cache: sequence " + std::to_string(sequence.slot) +
                            " (generation " + std::to_string(sequence.generation) +
                            ") is unknown or released");
    return sequence.slot;
  }

  // The group of a layer that may be read (its own cache or the one it shares).
  int any_group(int layer) const {
    if (layer < 0 || layer >= num_layers || groups::value.group[layer] < 0)
      throw cache_error(cache_errc::invalid_layer, "kvc::kv_cache: layer " + std::to_string(layer) +
                                                       " does not exist or keeps no KV cache");
    return groups::value.group[layer];
  }
  // The group of a layer that may be written (one that owns its cache).
  int owning_group(int layer) const {
    const int g = any_group(layer);
    if (!Model::layer_summaries[static_cast<std::size_t>(layer)].owns_cache())
      throw cache_error(cache_errc::invalid_layer,
                        "kvc::kv_cache: layer " + std::to_string(layer) + " reads layer " +
                            std::to_string(source_of(layer)) + "'s cache and owns none");
    return g;
  }
  static int source_of(int layer) {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(layer)];
    return s.kind == layer_kind::shared_kv ? s.source_layer : layer;
  }

  void no_open_plan(const char* what) const {
    if (open_ticket_ != 0)
      throw cache_error(cache_errc::plan_conflict,
                        std::string("kvc::kv_cache::") + what +
                            ": an append plan is open; commit or abort it first");
  }
  void is_open(const append_plan& plan, const char* what) const {
    if (plan.owner_ != this || plan.ticket_ == 0 || plan.ticket_ != open_ticket_)
      throw cache_error(cache_errc::plan_conflict, std::string("kvc::kv_cache::") + what +
                                                       ": the plan is not this cache's open plan");
  }
  void close(append_plan& plan) noexcept {
    open_ticket_ = 0;
    open_plan_ = nullptr;
    plan.ticket_ = 0;
    plan.owner_ = nullptr;
    ++epoch_;
  }
  // Releases every page the plan took (none of it is in a sequence's table yet). Its changes
  // exist for every entry and group from before the first page was taken.
  void give_back(append_plan& plan) noexcept {
    for (std::size_t i = 0; i < plan.entries_.size(); ++i)
      for (int g = 0; g < num_groups; ++g) {
        const auto& change = plan.change(i, g);
        if (change.cow_page >= 0) groups_[g].pool.release(change.cow_page);
        for (std::int32_t p = change.new_begin; p < change.new_end; ++p)
          groups_[g].pool.release(plan.new_pages_[static_cast<std::size_t>(p)]);
      }
  }
  static void notify(void* cache, append_plan& plan, append_plan::event what) noexcept {
    auto& self = *static_cast<kv_cache*>(cache);
    if (what == append_plan::event::moved) {
      self.open_plan_ = &plan;
    } else {
      self.give_back(plan);
      self.close(plan);
    }
  }

  void push_sequence(page_table_csr& csr, std::int64_t length) const {
    csr.indptr.push_back(static_cast<std::int32_t>(csr.indices.size()));
    csr.last_page_len.push_back(
        length == 0 ? 0 : static_cast<std::int32_t>((length - 1) % page_tokens + 1));
    csr.seq_lens.push_back(length);
  }
  void stamp(page_table_csr& csr, int g) const {
    csr.epoch = epoch_;
    csr.serial = ++table_serial_;
    csr.group = g;
  }

  // How many leading entries of the sequence's table in group g a sequence cut to `tokens`
  // keeps (its pages up to its last; the sinks and the run before it stay in place), or
  // rollback_exceeded when the window has let go of what the shorter sequence would see.
  std::size_t kept_entries(std::uint32_t slot, int g, std::int64_t tokens, const char* what) const {
    const sequence_state& s = sequences_[slot];
    if (tokens < 0 || tokens > s.length)
      throw cache_error(cache_errc::invalid_argument,
                        std::string("kvc::kv_cache::") + what + ": " + std::to_string(tokens) +
                            " tokens, the sequence has " + std::to_string(s.length));
    if (!can_cut(slot, g, tokens))
      throw cache_error(
          cache_errc::rollback_exceeded,
          std::string("kvc::kv_cache::") + what + ": at " + std::to_string(tokens) +
              " tokens, group " + std::to_string(g) + "'s window sees from position " +
              std::to_string(groups_[g].window.recent_begin(tokens)) + ", but the sequence of " +
              std::to_string(s.length) + " keeps only from " + std::to_string(s.valid_from[g]) +
              " (a rollback reserve of at least " + std::to_string(s.length - tokens) +
              " tokens would keep it)");
    if (tokens == 0) return 0;
    const auto listed = windows_[g].pages_listed(s.length, page_tokens,
                                                 static_cast<std::int64_t>(s.pages[g].size()));
    const std::int64_t last = (tokens - 1) / page_tokens;
    // can_cut guarantees that the last page is held: in the sinks, or in the recent run.
    if (listed.sink_pages > 0 && last < listed.recent_first)
      return static_cast<std::size_t>(last + 1);
    return static_cast<std::size_t>(listed.entry_of(last) + 1);
  }

  // Whether the sequence, cut to `tokens`, still holds everything its window shows.
  bool can_cut(std::uint32_t slot, int g, std::int64_t tokens) const {
    const sequence_state& s = sequences_[slot];
    const window_shape& window = groups_[g].window;
    if (!window.bounded() || tokens == 0) return true;
    const std::int64_t seen_begin = window.recent_begin(tokens);
    return seen_begin >= tokens || seen_begin >= s.valid_from[g];
  }

  step_need step_need_of(std::uint32_t slot, int g, std::int64_t n, std::int64_t tokens) const {
    const std::vector<page_id>& held = sequences_[slot].pages[g];
    step_need need{step_pages::of(windows_[g], page_tokens, static_cast<std::int64_t>(held.size()),
                                  n, tokens)};
    need.copy_on_write =
        need.step.writes_held_page &&
        groups_[g].pool.references(held[static_cast<std::size_t>(need.step.write_entry)]) > 1;
    return need;
  }

  // The step of the plan's entry i in group g, from the pages the sequence lists now (before
  // commit changes them).
  step_pages step_of(const append_plan& plan, std::size_t i, int g) const {
    const auto& e = plan.entries_[i];
    return step_pages::of(windows_[g], page_tokens,
                          static_cast<std::int64_t>(sequences_[e.slot].pages[g].size()),
                          e.old_length, e.tokens);
  }

  std::int64_t tokens_available_in_group(std::uint32_t slot, int g) const {
    const std::int64_t n = sequences_[slot].length;
    const std::int64_t free = groups_[g].pool.free_pages();
    const window_shape& window = windows_[g];
    const auto fits = [&](std::int64_t k) { return step_need_of(slot, g, n, k).pages() <= free; };
    if (!window.bounded()) {  // pages grow with k: the largest k that fits, by bisection
      std::int64_t low = 0, high = std::min((free + 2) * page_tokens, max_sequence_tokens - n);
      while (low < high) {
        const std::int64_t mid = low + (high - low + 1) / 2;
        if (fits(mid))
          low = mid;
        else
          high = mid - 1;
      }
      return low;
    }
    // A bounded window's demand is periodic once the step covers the window's pattern:
    // if nothing up to there fails, nothing ever will.
    const std::int64_t horizon = window.pattern_horizon(page_tokens) + page_tokens;
    for (std::int64_t k = 1; k <= horizon; ++k)
      if (!fits(k)) return k - 1;
    return unlimited_tokens;
  }

  std::byte* page_memory(int g, int slot_in_group, page_id page) const {
    const group_state& group = groups_[g];
    return group.memory + (static_cast<std::uint64_t>(slot_in_group) *
                               static_cast<std::uint64_t>(group.pool.capacity()) +
                           static_cast<std::uint64_t>(page)) *
                              group.geometry.page_bytes;
  }

  // Runs fn on a host-writable image of the page, written back if the memory is not the host's.
  template <class Fn>
  void with_page(int g, int slot_in_group, page_id page, Fn&& fn) {
    std::byte* memory = page_memory(g, slot_in_group, page);
    if constexpr (Allocator::host_accessible) {
      fn(memory);
    } else {
      const std::uint64_t bytes = groups_[g].geometry.page_bytes;
      staging_.resize(bytes);
      allocator_.download(staging_.data(), memory, bytes);
      fn(staging_.data());
      allocator_.upload(memory, staging_.data(), bytes);
    }
  }
  const std::byte* readable_page(int g, int slot_in_group, page_id page,
                                 std::vector<std::byte>& staging) const {
    const std::byte* memory = page_memory(g, slot_in_group, page);
    if constexpr (Allocator::host_accessible) {
      return memory;
    } else {
      staging.resize(groups_[g].geometry.page_bytes);
      const_cast<Allocator&>(allocator_).download(staging.data(), memory, staging.size());
      return staging.data();
    }
  }

  static const float* scale_at(const std::byte* memory, std::uint64_t offset) {
    return reinterpret_cast<const float*>(memory + offset);
  }

  Allocator allocator_;
  detail::signed_array<group_state, num_groups> groups_;
  detail::signed_array<window_shape, num_groups> windows_{};  ///< what each group keeps pages for
  std::int64_t rollback_reserve_ = 0;
  std::vector<sequence_state> sequences_;
  std::vector<std::uint32_t> free_slots_;
  detail::signed_array<float, num_layers> k_scale_{};
  detail::signed_array<float, num_layers> v_scale_{};
  std::uint64_t next_ticket_ = 1;
  std::uint64_t open_ticket_ = 0;
  append_plan* open_plan_ = nullptr;
  std::uint64_t epoch_ = 1;
  mutable std::uint64_t table_serial_ = 0;
  std::vector<std::byte> staging_;
};

}  // namespace kvc
