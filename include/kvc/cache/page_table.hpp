#pragma once
// Page tables as kernels take them.
//
// page_table_csr is the CSR form paged-attention engines already pass (FlashInfer's
// paged_kv_t): sequence b's pages are indices[indptr[b] .. indptr[b + 1]), in position order,
// and its last page holds last_page_len[b] tokens. kvc adds seq_lens[b], the tokens the
// sequence has seen: a window layer lists only the pages it keeps, and the window's
// pages_listed(seq_len, page_tokens, entries) says which positions they hold (the sink
// pages, then a run of pages that ends with the last one).
//
// A table also says what it was made for: the cache's epoch (bumped by every call that
// changes a sequence's pages, its length or a layer's scales: commit, abort, truncate, fork,
// release, set_fp8_scales), the layer group, and a serial number of its own. A view made from
// it carries the epoch and where the cache keeps its current one: the cache refuses to make a
// view of a table from an older epoch, and decode, extend and the device launchers refuse a
// view that a later call made stale (cache_errc::stale_table, one comparison); attention plans
// refuse a view of another table (cache_errc::plan_mismatch). Nothing reads pages that now
// belong to someone else. A view made by hand (live_epoch null) is not checked.

// paged_layer_view is non-owning and trivially copyable: one layer's memory, its page
// geometry, window and fp8 scales, and pointers into a page_table_csr that must outlive it.

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/config.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/window.hpp"

namespace kvc {

struct page_table_csr {
  std::vector<std::int32_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<std::int32_t> last_page_len;
  std::vector<std::int64_t> seq_lens;
  std::uint64_t epoch = 0;   ///< the cache's epoch when the table was made (0: not by a cache)
  std::uint64_t serial = 0;  ///< which table this is (0: not by a cache)
  std::int32_t group = -1;   ///< the layer group whose pages it lists
  /// A step table (kv_cache::step_table): the step's new tokens, all sequences together;
  /// -1 for a table of committed sequences.
  std::int64_t new_tokens = -1;

  std::int32_t batch() const { return static_cast<std::int32_t>(last_page_len.size()); }

  /// Empties the table, keeping its memory (refilling allocates nothing once warm).
  void clear() {
    indptr.assign(1, 0);
    indices.clear();
    last_page_len.clear();
    seq_lens.clear();
    epoch = serial = 0;
    group = -1;
    new_tokens = -1;
  }
};

struct paged_layer_view {
  const std::byte* memory = nullptr;  ///< page p of this layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};
  float k_scale = 1.0f;  ///< fp8 only: stored keys are keys / k_scale
  float v_scale = 1.0f;  ///< fp8 only: stored values are values / v_scale (a latent: k_scale)
  std::int32_t batch = 0;
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int32_t* last_page_len = nullptr;
  const std::int64_t* seq_lens = nullptr;
  std::uint64_t serial = 0;  ///< the table's serial (attention plans check it)
  std::int32_t group = -1;
  std::int32_t layer = -1;       ///< the layer it views (-1: not made by a cache)
  std::int32_t q_heads = 0;      ///< the layer's query heads (0: not known, not checked)
  std::int64_t new_tokens = -1;  ///< the table's new_tokens: -1 unless a step table
  std::uint64_t epoch = 0;       ///< the table's epoch
  /// The cache's current epoch, read on the host by the calls that take the view (null: a
  /// view not made by a cache, not checked).
  const std::uint64_t* live_epoch = nullptr;

  /// Returns whether the cache has changed none of its sequences since the view's table was made.
  bool current() const { return live_epoch == nullptr || *live_epoch == epoch; }

  /// Returns the view of the table's first `sequences` sequences (the prefix of a CSR table is a
  /// table): an engine that orders a step's batch decode rows first decodes them over
  /// first(decodes) of the step's view. Attention plans are made for it as for any view.
  KVC_HOST_DEVICE constexpr paged_layer_view first(std::int32_t sequences) const {
    paged_layer_view v = *this;
    v.batch = sequences < 0 ? 0 : (sequences < batch ? sequences : batch);
    return v;
  }

  /// Returns which logical pages sequence `sequence`'s entries are.
  KVC_HOST_DEVICE constexpr window_shape::kept_pages kept(std::int32_t sequence) const {
    return window.pages_listed(seq_lens[sequence], geometry.page_tokens,
                               indptr[sequence + 1] - indptr[sequence]);
  }

  /// Returns the page holding `position` of `sequence`, or null when the window no longer keeps it.
  KVC_HOST_DEVICE const std::byte* page_of(std::int32_t sequence, std::int64_t position) const {
    if (position < 0 || position >= seq_lens[sequence] ||
        !window.visible(seq_lens[sequence] - 1, position))
      return nullptr;
    const std::int64_t entry = kept(sequence).entry_of(position / geometry.page_tokens);
    return memory +
           static_cast<std::uint64_t>(indices[indptr[sequence] + entry]) * geometry.page_bytes;
  }
};

static_assert(std::is_trivially_copyable_v<paged_layer_view>);

/// Points a view at a table: its rows, serial, epoch, group and step (kv_cache::view does
/// this after checking the table; a view made by hand, with live_epoch null, may too).
inline void attach_table(paged_layer_view& view, const page_table_csr& table) {
  view.batch = table.batch();
  view.indptr = table.indptr.data();
  view.indices = table.indices.data();
  view.last_page_len = table.last_page_len.data();
  view.seq_lens = table.seq_lens.data();
  view.serial = table.serial;
  view.group = table.group;
  view.new_tokens = table.new_tokens;
  view.epoch = table.epoch;
}

/// Throws stale_table unless the view is current: its cache has committed, aborted,
/// truncated, forked or released since its table was made, so its pages and lengths may now
/// be another sequence's.
inline void check_current(const paged_layer_view& view, const char* who) {
  if (!view.current())  // live_epoch is read only then: a view that is current may have none
    detail::fail(cache_errc::stale_table, who, ": the view is of a page table from epoch ",
                 view.epoch, ", the cache is at ", *view.live_epoch,
                 " (a commit, abort, truncate, fork, release or set_fp8_scales came in between); "
                 "refill the table and make the view again");
}

}  // namespace kvc
