#pragma once
// Page tables as kernels take them.
//
// page_table_csr is the CSR form paged-attention engines already pass (FlashInfer's
// paged_kv_t): sequence b's pages are indices[indptr[b] .. indptr[b + 1]), in position order,
// and its last page holds last_page_len[b] tokens. kvc adds seq_lens[b], the tokens the
// sequence has seen: a window layer lists only the pages it keeps, and the window's
// kept_pages(seq_len) says which positions they hold.
//
// paged_layer_view is non-owning and trivially copyable: one layer's memory, its page
// geometry, window and fp8 scales, and pointers into a page_table_csr that must outlive it.

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kvc/config.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/window.hpp"

namespace kvc {

struct page_table_csr {
  std::vector<std::int32_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<std::int32_t> last_page_len;
  std::vector<std::int64_t> seq_lens;

  std::int32_t batch() const { return static_cast<std::int32_t>(last_page_len.size()); }
};

struct paged_layer_view {
  const std::byte* memory = nullptr;  ///< page p of this layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};
  float k_scale = 1.0f;  ///< fp8 only: stored keys are keys / k_scale
  float v_scale = 1.0f;
  std::int32_t batch = 0;
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int32_t* last_page_len = nullptr;
  const std::int64_t* seq_lens = nullptr;

  KVC_HOST_DEVICE constexpr window_shape::kept_pages kept(std::int32_t sequence) const {
    return window.pages_kept(seq_lens[sequence], geometry.page_tokens);
  }

  /// The page holding `position` of `sequence`, or null when the window no longer keeps it.
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

}  // namespace kvc
