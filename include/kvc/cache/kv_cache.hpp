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
// - Window checkpoints (capacity_*::checkpoint_every = N): window groups also keep, beside the
//   pages they list, the pages a prefix hit at each multiple of N needs (policy/checkpoints.hpp);
//   kernels never see them, the prefix index stores them.
// - Every error throws cache_error and leaves the cache exactly as it was.
//
// This file is the facade: it orders every call (all that can throw comes first, then the
// changes, which cannot fail), so the strong guarantee is visible here. Its parts, each one
// job: requests.hpp (handles, requests, capacities), kv_input.hpp (new K/V and their one
// check), cache_sizing.hpp (pages per group from a capacity), group_storage.hpp (pools and
// page memory, storing and loading a token), sequence_table.hpp (slots, generations, what a
// sequence lists, rollback), step_pages.hpp (what a step does to a sequence's pages in a
// group), append_plan.hpp, page_table_fill.hpp (filling page tables, views), layer_groups.hpp,
// prefix_reuse.hpp (the content index of full pages); the calls of admission_calls.hpp,
// rollback_calls.hpp and prefix_calls.hpp are bases of the facade; debug_access.hpp checks the
// invariants across them.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvc/cache/admission_calls.hpp"
#include "kvc/cache/allocator.hpp"
#include "kvc/cache/append_plan.hpp"
#include "kvc/cache/cache_sizing.hpp"
#include "kvc/cache/debug_access.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/group_storage.hpp"
#include "kvc/cache/kv_input.hpp"
#include "kvc/cache/layer_groups.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/cache/page_table_fill.hpp"
#include "kvc/cache/prefix_calls.hpp"
#include "kvc/cache/prefix_reuse.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/cache/rollback_calls.hpp"
#include "kvc/cache/sequence_table.hpp"
#include "kvc/cache/step_demand.hpp"
#include "kvc/cache/step_pages.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/window.hpp"
#include "kvc/prefix/page_key.hpp"

namespace kvc {

template <model_type Model, class Paging = paged<16>, class Allocator = host_allocator>
class kv_cache : public detail::admission_calls<kv_cache<Model, Paging, Allocator>,
                                                layer_groups<Model>::num_groups>,
                 public detail::rollback_calls<kv_cache<Model, Paging, Allocator>,
                                               layer_groups<Model>::num_groups>,
                 public detail::prefix_calls<kv_cache<Model, Paging, Allocator>,
                                             layer_groups<Model>::num_groups> {
  static_assert(Paging::is_paged, "kvc::kv_cache<Model, Paging>: Paging must be paged<P, layout>");
  static_assert(page_allocator<Allocator>,
                "kvc::kv_cache<Model, Paging, Allocator>: Allocator must provide allocate, "
                "deallocate, copy, upload, download and host_accessible");
  using sizing = detail::cache_sizing<Model, Paging>;

 public:
  using groups = layer_groups<Model>;
  static constexpr int num_layers = Model::num_layers;
  static constexpr int num_groups = groups::num_groups;
  static constexpr int page_tokens = Paging::page_tokens;
  static constexpr page_layout layout = Paging::layout;

  // (Parameter names unlike an engine's globals: a class template's would warn under -Wshadow.)
  explicit kv_cache(capacity_pages requested_capacity, Allocator memory_source = {})
      : kv_cache(sizing::of(requested_capacity), std::move(memory_source)) {}
  explicit kv_cache(capacity_bytes requested_capacity, Allocator memory_source = {})
      : kv_cache(sizing::of(requested_capacity), std::move(memory_source)) {}

  kv_cache(const kv_cache&) = delete;
  kv_cache& operator=(const kv_cache&) = delete;

  ~kv_cache() = default;

  // ---- sequences ----

  sequence_id add_sequence() { return sequences_.add(); }
  using detail::prefix_calls<kv_cache, num_groups>::add_sequence;  // from a prefix hit
  // fork, truncate, can_truncate, tokens_available: detail::rollback_calls.

  void release(sequence_id id) {
    no_open_plan("release");
    sequences_.release(sequences_.checked(id),
                       [&](int g, page_id let_go) { storage_.pool(g).release(let_go); });
    ++epoch_;
  }

  bool contains(sequence_id id) const { return sequences_.contains(id); }

  /// Returns the tokens appended to the sequence so far (windows do not shorten it).
  std::int64_t length(sequence_id id) const { return sequences_[sequences_.checked(id)].length; }

  /// Returns the rollback reserve the cache was built with.
  std::int64_t rollback_reserve() const { return sizing_.rollback_reserve; }
  /// Returns the window checkpoints' period the cache was built with (0: none).
  std::int64_t checkpoint_every() const { return sizing_.checkpoint_every; }

  // ---- pages ----

  static constexpr int group_of_layer(int layer) { return groups::value.group[layer]; }
  std::int64_t capacity_pages_of(int group) const { return storage_.pool(group).capacity(); }
  std::int64_t free_pages(int group) const { return storage_.pool(group).free_pages(); }
  std::int64_t used_pages(int group) const { return storage_.pool(group).used_pages(); }
  /// Returns the pages the sequence holds in a group (shared pages included).
  std::int64_t pages_of(sequence_id id, int group) const {
    return static_cast<std::int64_t>(sequences_[sequences_.checked(id)].pages[group].size());
  }
  /// Returns the pages the sequence holds in a group for window checkpoints (beside pages_of).
  std::int64_t checkpoint_pages_of(sequence_id id, int group) const {
    return static_cast<std::int64_t>(sequences_[sequences_.checked(id)].checkpoints[group].size());
  }
  const page_geometry& geometry(int group) const { return storage_.geometry(group); }
  /// Returns the window a group keeps pages for (the layers' window, with the rollback reserve).
  const window_shape& kept_window(int group) const { return sizing_.kept_windows[group]; }
  /// Returns the bytes of the pages in use, every layer of every group (shared pages once), and
  /// of the state snapshots the prefix index holds.
  std::uint64_t used_bytes() const { return storage_.used_bytes() + prefix_.snapshot_bytes(); }
  std::uint64_t memory_bytes() const { return storage_.memory_bytes(); }
  /// Returns the epoch, bumped by every call that changes a sequence's pages or length (commit,
  /// abort, truncate, fork, release): page tables from an older epoch are stale.
  std::uint64_t epoch() const { return epoch_; }

  // ---- fp8 scales ----

  /// Sets an fp8 layer's scales: stored keys are keys / k_scale, values / v_scale (a latent
  /// layer stores no values: its latents take k_scale, v_scale is not used). Allowed only
  /// while the layer's group holds no token, since stored values would change meaning.
  void set_fp8_scales(int layer, float k_scale, float v_scale) {
    no_open_plan("set_fp8_scales");
    const int g = groups::writable(layer);
    const auto valid = [](float s) { return std::isfinite(s) && s > 0; };
    detail::require(valid(k_scale) && valid(v_scale), cache_errc::invalid_argument,
                    "kvc::kv_cache::set_fp8_scales: scales must be finite and positive");
    detail::require(storage_.pool(g).used_pages() == 0, cache_errc::invalid_argument,
                    "kvc::kv_cache::set_fp8_scales: layer ", layer,
                    " already holds tokens; set its scales before the first append");
    k_scale_[layer] = k_scale;
    v_scale_[layer] = v_scale;
    ++epoch_;  // views carry the scales
  }

  // ---- appending ----

  /// Checks a batch and takes the pages it needs (copying shared pages it will write).
  append_plan plan_append(std::span<const append_request> batch) {
    no_open_plan("plan_append");
    std::vector<step_need> needs;  // [request][group]
    detail::signed_array<std::int64_t, num_groups> needed{};
    if (auto error = detail::batch_demand(sequences_, batch, need_of(), needed, &needs))
      throw *error;
    for (int g = 0; g < num_groups; ++g)
      detail::require(needed[g] <= available_pages(g), cache_errc::out_of_pages,
                      "kvc::kv_cache::plan_append: group ", g, " needs ", needed[g], " pages, ",
                      storage_.pool(g).free_pages(), " are free and ",
                      storage_.pool(g).cached_pages(), " cached");
    std::int64_t fresh_total = 0;
    for (const step_need& need : needs) fresh_total += need.step.fresh + need.step.checkpoint_fresh;
    append_plan plan;
    plan.size_for(
        batch, [&](std::uint32_t seq_slot) { return sequences_[seq_slot].length; }, num_groups,
        num_layers, fresh_total);
    for (std::size_t i = 0; i < plan.entries_.size(); ++i)  // so that commit cannot throw
      for (int g = 0; g < num_groups; ++g) {
        sequence& s = sequences_[plan.entries_[i].slot];
        const step_pages& step = needs[i * num_groups + static_cast<std::size_t>(g)].step;
        s.pages[g].reserve(s.pages[g].size() + static_cast<std::size_t>(step.fresh));
        if (sizing_.checkpoints[g].active())  // the step's checkpoint pages, and those let go
          s.checkpoints[g].reserve(s.checkpoints[g].size() + s.pages[g].size() +
                                   static_cast<std::size_t>(step.checkpoint_fresh));
      }
    prefix_.plan_victims(needed, storage_);  // cached pages the step takes beyond the free ones
    // Nothing above took a page; from here a failure (a device copy) gives back what was taken.
    try {
      for (std::size_t i = 0; i < plan.entries_.size(); ++i)
        for (int g = 0; g < num_groups; ++g) {
          const step_need& need = needs[i * num_groups + static_cast<std::size_t>(g)];
          page_pool& pool = storage_.pool(g);
          plan.take(i, g, need.copy_on_write, need.step.fresh, need.step.checkpoint_fresh,
                    [&] { return prefix_.take(g, pool); });
          if (need.copy_on_write)
            storage_.copy_page(
                g, plan.change(i, g).cow_page,
                detail::at(sequences_[plan.entries_[i].slot].pages[g], need.step.write_entry));
        }
    } catch (...) {
      give_back(plan);
      throw;
    }
    open_.open(plan, this, &kv_cache::notify);
    return plan;  // the move (or elision) tells the cache where the plan lives now
  }

  /// Stores one layer's K/V for every token of the plan that its window keeps, and with window
  /// checkpoints every token of a checkpoint page.
  void write(const append_plan& plan, int layer, const kv_input& k, const kv_input& v) {
    is_open(plan, "write");
    const int g = groups::writable(layer);
    check_layer_input(k, v, plan.total_tokens_, storage_.geometry(g), "kvc::kv_cache::write",
                      layer);
    const int slot_in_group = groups::value.slot[layer];
    const float k_inverse = 1.0f / k_scale_[layer], v_inverse = 1.0f / v_scale_[layer];
    const window_shape& window = sizing_.kept_windows[g];
    const window_checkpoints& checkpoints = sizing_.checkpoints[g];
    for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
      const auto& e = plan.entries_[i];
      const std::int64_t end = e.old_length + e.tokens;
      const step_pages step = step_of(plan, i, g);
      const auto& change = plan.change(i, g);
      const page_id* held = sequences_[e.slot].pages[g].data();
      const page_id* fresh = plan.fresh_pages(i, g).data();
      const page_id* held_back = plan.checkpoint_pages(i, g).data();
      std::int64_t back_page = -1;  // the checkpoint page being written, and its page
      page_id back = -1;
      for (std::int64_t position = e.old_length; position < end; ++position) {
        const std::int64_t logical = position / page_tokens;
        if (!window.keeps(end, position) && !checkpoints.wants(logical)) continue;  // slid out
        page_id page = -1;
        if (logical < step.checkpoint_first || logical > step.checkpoint_last) {
          page = step.page_of(position, held, fresh, change.cow_page);
        } else {  // a checkpoint page the window no longer lists after the step
          if (logical != back_page)
            back = held_back[checkpoints.wanted_in(step.checkpoint_first, logical - 1)];
          back_page = logical;
          page = back;
        }
        storage_.store_token(g, slot_in_group, page, static_cast<int>(position % page_tokens), k, v,
                             e.first_input + (position - e.old_length), k_inverse, v_inverse);
      }
    }
    plan.written_[static_cast<std::size_t>(layer)] = true;
  }

  /// Records that a kernel stored layer's K/V for this step in the step's pages, as write()
  /// would (kvc::kernels::append, on a device or in the SIMT emulator), so that commit() takes
  /// the layer as written. The cache cannot see those bytes: call it once the kernel has
  /// finished (its stream synchronized, or ordered before the attention that reads it).
  /// Throws plan_conflict for a plan that is not the open one, invalid_layer for a layer that
  /// owns no cache; the plan is unchanged then. A kernel stores only what the window keeps, so
  /// with window checkpoints the step keeps none of those it would have taken in the layer's
  /// group (nor the pages it left partly written).
  void mark_written(const append_plan& plan, int layer) {
    is_open(plan, "mark_written");
    const int g = groups::writable(layer);
    plan.written_[static_cast<std::size_t>(layer)] = true;
    plan.by_kernel_[static_cast<std::size_t>(g)] = true;
  }

  /// Commits the plan: the step's sequences grow; pages their windows no longer keep go back.
  /// Every cache-owning layer must have been written (otherwise its new positions would
  /// hold whatever the pages held before: another sequence's keys): invalid_argument, and
  /// the plan stays open.
  void commit(append_plan& plan) {
    is_open(plan, "commit");
    for (int l = 0; l < num_layers && plan.total_tokens_ > 0; ++l)
      detail::require(!Model::layer_summaries[static_cast<std::size_t>(l)].owns_cache() ||
                          plan.written_[static_cast<std::size_t>(l)],
                      cache_errc::invalid_argument, "kvc::kv_cache::commit: layer ", l,
                      " was not written; write every layer that owns a cache, or abort the plan");
    // plan_append made room in the page tables: nothing below throws.
    for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
      const auto& e = plan.entries_[i];
      sequence& s = sequences_[e.slot];
      const std::int64_t new_length = e.old_length + e.tokens;
      for (int g = 0; g < num_groups; ++g) {
        const auto& change = plan.change(i, g);
        const window_shape& window = sizing_.kept_windows[g];
        const step_pages step = step_of(plan, i, g);
        const bool by_kernel = plan.by_kernel_[static_cast<std::size_t>(g)];
        // A page the window lets go stays for a checkpoint when it is complete: not the page a
        // kernel left partly written.
        const std::int64_t partial =
            by_kernel && e.old_length % page_tokens != 0 ? e.old_length / page_tokens : -1;
        const window_checkpoints& rule = sizing_.checkpoints[g];
        const auto release = [&](page_id let_go) { storage_.pool(g).release(let_go); };
        detail::apply_step(s.pages[g], step, window.bounded(), change.cow_page,
                           plan.fresh_pages(i, g), [&](page_id let_go, std::int64_t logical) {
                             detail::keep_or_release(s, g, rule, partial, let_go, logical, release);
                           });
        detail::keep_step_checkpoints(s, g, rule, step, plan.checkpoint_pages(i, g), by_kernel,
                                      release);
        if (window.bounded()) {
          s.valid_from[g] = std::max(s.valid_from[g], window.keep_begin(new_length));
          if (const std::int64_t kept = window.keep_begin(new_length);
              by_kernel && kept > e.old_length)  // [old_length, kept) unwritten
            s.complete_from[g] =
                std::max(s.complete_from[g], (kept + page_tokens - 1) / page_tokens * page_tokens);
        }
      }
      s.length = new_length;
    }
    prefix_.settle_lent();
    prefix_.end_step();
    close(plan);
  }

  /// Gives back everything the plan took: the cache is as before plan_append, except for
  /// cached pages of the prefix index the step took and wrote into (they are free now).
  void abort(append_plan& plan) {
    is_open(plan, "abort");
    give_back(plan);
    close(plan);
  }

  /// Appends one step for every cache-owning layer at once: plan, write each layer, commit. Every
  /// input is checked before anything changes.
  void append(std::span<const append_request> batch, std::span<const layer_input> layers) {
    std::int64_t total = 0;
    for (const append_request& request : batch) {
      detail::require(request.tokens >= 0 && request.tokens <= max_sequence_tokens - total,
                      cache_errc::invalid_argument,
                      "kvc::kv_cache::append: token counts must be in 0..2^40 in all");
      total += request.tokens;
    }
    check_step_input(
        layers, total, num_layers,
        [this](int layer) -> const page_geometry& {
          return storage_.geometry(groups::writable(layer));
        },
        [](int layer) {
          return Model::layer_summaries[static_cast<std::size_t>(layer)].owns_cache();
        },
        "kvc::kv_cache::append");
    append_plan plan = plan_append(batch);  // aborts by itself if a write throws
    for (const layer_input& input : layers) write(plan, input.layer, input.k, input.v);
    commit(plan);
  }

  // ---- reading ----

  /// Reads the dequantized K ([kv_heads][k_dim]) and V ([kv_heads][v_dim]) of one position; false
  /// when the cache no longer holds it: the layer's window does not show it, and the rollback
  /// reserve does not keep it either. v may be null; k may not (invalid_argument). The sizes
  /// are the caller's to get right: the span form checks them.
  bool read(sequence_id id, int layer, std::int64_t position, float* k, float* v) const {
    const sequence& s = sequences_[sequences_.checked(id)];
    const int g = groups::readable(layer);
    detail::require(k != nullptr, cache_errc::invalid_argument, "kvc::kv_cache::read: null k");
    detail::require(position >= 0 && position < s.length, cache_errc::invalid_argument,
                    "kvc::kv_cache::read: position ", position, " is outside the sequence's ",
                    s.length, " tokens");
    const page_id page = detail::page_holding(s, g, storage_.window(g), sizing_.kept_windows[g],
                                              page_tokens, position);
    if (page < 0) return false;
    const int source = groups::source_of(layer);  // a shared layer reads with its source's scales
    storage_.load_token(g, groups::value.slot[layer], page,
                        static_cast<int>(position % page_tokens), k_scale_[source],
                        storage_.geometry(g).latent ? k_scale_[source] : v_scale_[source], k, v);
    return true;
  }

  /// Reads into sized buffers: k must hold kv_heads * k_dim floats and v (empty: no
  /// values) kv_heads * v_dim, or shape_mismatch.
  bool read(sequence_id id, int layer, std::int64_t position, std::span<float> k,
            std::span<float> v) const {
    check_token_buffers(storage_.geometry(groups::readable(layer)), k.size(), v.size(),
                        "kvc::kv_cache::read", layer);
    return read(id, layer, position, k.data(), v.empty() ? nullptr : v.data());
  }

  // ---- page tables and views ----

  /// Returns the CSR page table of a layer's group for a batch of sequences, as committed. While a
  /// plan is open this is the step's prefix (what extend() takes with the new K/V).
  page_table_csr page_table(int layer, std::span<const sequence_id> batch) const {
    page_table_csr csr;
    page_table(layer, batch, csr);
    return csr;
  }

  /// Fills page_table() into a table the engine keeps: its memory is reused, so a warm table
  /// allocates nothing. On error the table is left empty.
  void page_table(int layer, std::span<const sequence_id> batch, page_table_csr& csr) const {
    csr.clear();
    const int g = groups::readable(layer);
    for (const sequence_id& id : batch) sequences_.checked(id);
    detail::fill_table(csr, batch.size(), [&] {
      for (const sequence_id& listed : batch) {
        const sequence& s = sequences_[listed.slot];
        csr.indices.insert(csr.indices.end(), s.pages[g].begin(), s.pages[g].end());
        detail::push_row(csr, s.length, page_tokens);
      }
    });
    stamp(csr, g);
  }

  /// Returns the page table of an open step: the plan's sequences, in its order, with the pages
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
    const int g = groups::readable(layer);
    detail::fill_table(csr, plan.entries_.size(), [&] {
      for (std::size_t i = 0; i < plan.entries_.size(); ++i) {
        const auto& e = plan.entries_[i];
        detail::push_step_entries(csr, step_of(plan, i, g), sizing_.kept_windows[g].bounded(),
                                  sequences_[e.slot].pages[g], plan.change(i, g).cow_page,
                                  plan.fresh_pages(i, g));
        detail::push_row(csr, e.old_length + e.tokens, page_tokens);
      }
    });
    stamp(csr, g);
    csr.new_tokens = plan.total_tokens_;
  }

  /// Returns a view of one layer over a page table (which must outlive the view) of this cache's
  /// current epoch, and of the layer's group. Host memory only is readable through it on the
  /// host; device memory, by device kernels.
  paged_layer_view view(int layer, const page_table_csr& table) const {
    const int g = groups::readable(layer);
    detail::check_view_table(table, epoch_, g, layer);
    const int source = groups::source_of(layer);
    paged_layer_view v;
    v.memory = storage_.page_memory(g, groups::value.slot[layer], 0);
    v.geometry = storage_.geometry(g);
    v.window = sizing_.kept_windows[g];
    v.k_scale = k_scale_[source];
    // A latent's values are its keys' first dims, stored with the keys' scale.
    v.v_scale = v.geometry.latent ? k_scale_[source] : v_scale_[source];
    attach_table(v, table);
    v.layer = layer;
    v.q_heads = Model::layer_summaries[static_cast<std::size_t>(layer)].q_heads;
    v.live_epoch = &epoch_;
    return v;
  }

  /// Throws std::logic_error unless the pools, the sequences' page lists and the open plan
  /// agree (debug_access.hpp says what is checked). For tests.
  void check_invariants() const { detail::cache_debug_access::check_invariants(*this); }

 private:
  friend struct detail::cache_debug_access;
  friend class detail::admission_calls<kv_cache, num_groups>;
  friend class detail::prefix_calls<kv_cache, num_groups>;
  friend class detail::rollback_calls<kv_cache, num_groups>;
  using sequence = detail::sequence_state<num_groups>;

  using step_need = detail::step_need;

  kv_cache(const sizing& decided, Allocator memory_source)
      : sizing_(decided),
        storage_(decided.pages, decided.snapshot_memory_bytes(), std::move(memory_source)) {
    k_scale_.fill(1.0f);
    v_scale_.fill(1.0f);
    for (int g = 0; g < num_groups; ++g) {
      seen_windows_[static_cast<std::size_t>(g)] = storage_.window(g);
      first_layers_[static_cast<std::size_t>(g)] = groups::value.info[g].first_layer;
    }
    prefix_.set_layout(prefix::key_layout::of<Model, Paging>(), seen_windows_);
    prefix_.set_snapshots(decided.state_snapshots,
                          detail::recurrent_states_of(Model::layer_summaries));
  }

  void no_open_plan(const char* who) const { open_.require_none(who); }
  void is_open(const append_plan& plan, const char* who) const {
    open_.require_open(plan, this, who);
  }
  void close(append_plan& plan) noexcept {
    open_.close(plan);
    ++epoch_;
  }
  // Releases every page the plan took (none of it is in a sequence's list yet); cached pages
  // it took from the prefix index go back there, unless a copy or a layer's K/V was written
  // into them.
  void give_back(const append_plan& plan) noexcept {
    prefix_.restore_lent(storage_, written_by{plan});
    plan.for_each_taken(release_taken{*this});
    prefix_.end_step();
  }
  // Whether a step wrote into a page it took: a copy, or any layer's K/V. (Functors, not
  // lambdas: their names stay out of an engine's -Wshadow.)
  struct written_by {
    const append_plan& plan;
    bool operator()(int g, page_id page) const {
      bool written =
          std::find(plan.written_.begin(), plan.written_.end(), true) != plan.written_.end();
      for (std::size_t i = 0; i < plan.entries_.size(); ++i)
        written = written || plan.change(i, g).cow_page == page;
      return written;
    }
  };
  struct release_taken {
    kv_cache& cache;
    void operator()(int g, page_id page) const {
      if (!cache.prefix_.restored(g, page)) cache.storage_.pool(g).release(page);
    }
  };
  static void notify(void* cache, append_plan& plan, append_plan::event what) noexcept {
    auto& self = *static_cast<kv_cache*>(cache);
    if (what == append_plan::event::moved) {
      self.open_.moved_to(plan);
    } else {
      self.give_back(plan);
      self.close(plan);
    }
  }

  void stamp(page_table_csr& csr, int g) const {
    csr.epoch = epoch_;
    csr.serial = ++table_serial_;
    csr.group = g;
  }

  step_need step_need_of(std::uint32_t slot, int g, std::int64_t n, std::int64_t tokens) const {
    return detail::step_need_of(sequences_[slot], g, sizing_.kept_windows[g],
                                sizing_.checkpoints[g], page_tokens, storage_.pool(g), n, tokens);
  }

  struct need_getter {
    const kv_cache& cache;
    step_need operator()(std::uint32_t slot, int g, std::int64_t n, std::int64_t tokens) const {
      return cache.step_need_of(slot, g, n, tokens);
    }
  };
  need_getter need_of() const { return {*this}; }

  // The step of the plan's entry i in group g, from the pages the sequence lists now (before
  // commit changes them).
  step_pages step_of(const append_plan& plan, std::size_t i, int g) const {
    const auto& e = plan.entries_[i];
    return step_pages::of(sizing_.kept_windows[g], page_tokens,
                          static_cast<std::int64_t>(sequences_[e.slot].pages[g].size()),
                          e.old_length, e.tokens, sizing_.checkpoints[g]);
  }

  std::int64_t available_pages(int g) const {
    return storage_.pool(g).free_pages() + storage_.pool(g).cached_pages();
  }

  sizing sizing_;  ///< the rollback reserve, and the window each group keeps pages for
  detail::group_storage<Model, Paging, Allocator> storage_;
  detail::sequence_table<num_groups> sequences_;
  detail::signed_array<float, num_layers> k_scale_{};
  detail::signed_array<float, num_layers> v_scale_{};
  detail::open_plan_slot open_;
  std::array<window_shape, static_cast<std::size_t>(num_groups)> seen_windows_{};
  std::array<int, static_cast<std::size_t>(num_groups)> first_layers_{};
  detail::prefix_reuse<num_groups> prefix_;
  std::uint64_t epoch_ = 1;
  mutable std::uint64_t table_serial_ = 0;
};

}  // namespace kvc
