// Policies: head sharing, dims, storage sizes, variants, and the window arithmetic that the
// footprint, the page reclamation and the attention masks all derive from.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <vector>

#include "kvc/policy/head_dim.hpp"
#include "kvc/policy/heads.hpp"
#include "kvc/policy/latent.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/variant.hpp"
#include "kvc/policy/window.hpp"

using namespace kvc;

TEST_CASE("head sharing aliases") {
  STATIC_REQUIRE(mha<25>::q_heads == 25);
  STATIC_REQUIRE(mha<25>::kv_heads == 25);
  STATIC_REQUIRE(mha<25>::group_size == 1);
  STATIC_REQUIRE(gqa<32, 8>::group_size == 4);
  STATIC_REQUIRE(gqa<40, 10>::group_size == 4);  // any group size, not a closed list
  STATIC_REQUIRE(gqa<28, 4>::group_size == 7);
  STATIC_REQUIRE(mqa<4>::kv_heads == 1);
  STATIC_REQUIRE(mqa<4>::group_size == 4);
}

TEST_CASE("head dims and latent vectors") {
  STATIC_REQUIRE(head_dim<128>::v_dim == 128);
  STATIC_REQUIRE(head_dim<192, 128>::k_dim == 192);
  STATIC_REQUIRE(head_dim<192, 128>::v_dim == 128);
  STATIC_REQUIRE(latent<512, 64>::cached_dim == 576);
  STATIC_REQUIRE(latent<512, 0>::cached_dim == 512);
}

TEST_CASE("bytes of one stored token-head vector, scales included") {
  STATIC_REQUIRE(vector_bytes<fp32>(128) == 512);
  STATIC_REQUIRE(vector_bytes<fp16>(128) == 256);
  STATIC_REQUIRE(vector_bytes<bf16>(128) == 256);
  STATIC_REQUIRE(vector_bytes<fp8_e4m3>(128) == 128);  // per-layer scale: not per token
  STATIC_REQUIRE(vector_bytes<fp8_e5m2>(128) == 128);
  STATIC_REQUIRE(vector_bytes<int8>(128) == 128 + 4);
  STATIC_REQUIRE(vector_bytes<int4>(128) == 64 + 4);
  STATIC_REQUIRE(vector_bytes<int4>(576) == 288 + 4);
}

TEST_CASE("softmax scales and soft-cap") {
  STATIC_REQUIRE(default_scale::value(64) == 0.125);
  STATIC_REQUIRE(inv_sqrt_scale<256>::value(0) == 0.0625);
  STATIC_REQUIRE(softmax_scale<1>::value(256) == 1.0);
  STATIC_REQUIRE(softmax_scale<1, 8>::value(256) == 0.125);
  STATIC_REQUIRE(logit_softcap<50>::cap == 50.0);
  STATIC_REQUIRE(logit_softcap<61, 2>::cap == 30.5);
  // 1/sqrt(192) to the last bit of a double
  constexpr double s = inv_sqrt_scale<192>::value(0);
  CHECK(s == Approx(0.07216878364870323).epsilon(1e-16));
  CHECK(s * s * 192 == Approx(1.0).epsilon(1e-15));
}

TEST_CASE("paging policies") {
  STATIC_REQUIRE(paged<16>::page_tokens == 16);
  STATIC_REQUIRE(paged<16>::layout == page_layout::nhd);
  STATIC_REQUIRE(paged<64, page_layout::hnd>::layout == page_layout::hnd);
  STATIC_REQUIRE(!unpaged::is_paged);
}

namespace {

// The positions a window keeps, by brute force from its definition, independent of
// window_shape's arithmetic.
std::vector<bool> kept_by_definition(window_kind kind, std::int64_t sinks, std::int64_t tokens,
                                     std::int64_t n) {
  std::vector<bool> kept(static_cast<std::size_t>(n), false);
  for (std::int64_t k = 0; k < n; ++k) {
    bool keep = true;
    switch (kind) {
      case window_kind::full:
        break;
      case window_kind::sliding:
        keep = k >= n - tokens;
        break;
      case window_kind::chunked:
        keep = k / tokens == (n - 1) / tokens;
        break;
      case window_kind::streaming:
        keep = k < sinks || k >= n - tokens;
        break;
    }
    kept[static_cast<std::size_t>(k)] = keep;
  }
  return kept;
}

void check_window(const window_shape& w, std::int64_t max_n) {
  for (std::int64_t n = 0; n <= max_n; ++n) {
    const auto kept = kept_by_definition(w.kind, w.sink_tokens, w.tokens, n);
    std::int64_t count = 0;
    for (bool k : kept) count += k ? 1 : 0;
    INFO("kind " << static_cast<int>(w.kind) << " sinks " << w.sink_tokens << " tokens " << w.tokens
                 << " n " << n);
    REQUIRE(w.tokens_held(n) == count);
    // The query at position n - 1 sees exactly the kept tokens.
    for (std::int64_t k = 0; k < n; ++k)
      REQUIRE(w.visible(n - 1, k) == kept[static_cast<std::size_t>(k)]);
    REQUIRE_FALSE(w.visible(n, n + 1));  // never a later key
    for (std::int64_t page_tokens : {1, 3, 4, 16}) {
      std::set<std::int64_t> pages;
      for (std::int64_t k = 0; k < n; ++k)
        if (kept[static_cast<std::size_t>(k)]) pages.insert(k / page_tokens);
      REQUIRE(w.pages_held(n, page_tokens) == static_cast<std::int64_t>(pages.size()));
      // The kept pages, listed in order, are exactly those pages; entry_of inverts the list.
      const auto kept_pages = w.pages_kept(n, page_tokens);
      REQUIRE(kept_pages.sink_pages <= kept_pages.recent_first);
      std::int64_t entry = 0;
      for (std::int64_t page : pages) {
        REQUIRE(kept_pages.logical_page(entry) == page);
        REQUIRE(kept_pages.entry_of(page) == entry);
        ++entry;
      }
      for (std::int64_t page = 0; page * page_tokens < n; ++page)
        if (!pages.count(page)) REQUIRE(kept_pages.entry_of(page) == -1);
    }
  }
}

}  // namespace

TEST_CASE("window arithmetic matches the definition of each window") {
  check_window(full_attention::shape, 70);
  check_window(sliding_window<1>::shape, 40);
  check_window(sliding_window<7>::shape, 70);
  check_window(sliding_window<16>::shape, 70);
  check_window(chunked<1>::shape, 40);
  check_window(chunked<5>::shape, 70);
  check_window(chunked<16>::shape, 70);
  check_window(streaming<1, 1>::shape, 40);
  check_window(streaming<4, 8>::shape, 70);
  check_window(streaming<5, 3>::shape, 70);
  check_window(streaming<17, 9>::shape, 70);
}

TEST_CASE("windows as the gallery uses them") {
  constexpr window_shape gemma_local = sliding_window<1024>::shape;
  STATIC_REQUIRE(gemma_local.tokens_held(100) == 100);
  STATIC_REQUIRE(gemma_local.tokens_held(1024) == 1024);
  STATIC_REQUIRE(gemma_local.tokens_held(1'000'000) == 1024);
  // A window that straddles page boundaries holds ceil(W / P) + 1 pages at most.
  STATIC_REQUIRE(gemma_local.pages_held(1'000'000, 16) == 64);  // 1e6 % 16 == 0: aligned
  STATIC_REQUIRE(gemma_local.pages_held(1'000'001, 16) == 65);
  constexpr window_shape llama4_chunk = chunked<8192>::shape;
  STATIC_REQUIRE(llama4_chunk.tokens_held(8192) == 8192);
  STATIC_REQUIRE(llama4_chunk.tokens_held(8193) == 1);
  STATIC_REQUIRE(llama4_chunk.visible(8192, 8191) == false);
  STATIC_REQUIRE(llama4_chunk.visible(8191, 0) == true);
  constexpr window_shape streaming_llm = streaming<4, 1020>::shape;
  STATIC_REQUIRE(streaming_llm.tokens_held(1'000'000) == 1024);
  STATIC_REQUIRE(streaming_llm.visible(999'999, 3));
  STATIC_REQUIRE_FALSE(streaming_llm.visible(999'999, 4));
}

TEST_CASE("the most pages a bounded window ever holds") {
  for (const window_shape w :
       {sliding_window<7>::shape, sliding_window<16>::shape, sliding_window<1024>::shape,
        chunked<5>::shape, chunked<6>::shape, chunked<16>::shape, streaming<3, 4>::shape,
        streaming<17, 9>::shape}) {
    for (std::int64_t page_tokens : {1, 3, 4, 16}) {
      std::int64_t most = 0;
      for (std::int64_t n = 1; n <= 3000; ++n) {
        most = std::max(most, w.pages_held(n, page_tokens));
        if (n % 97 == 0) REQUIRE(w.max_pages_held(n, page_tokens) == most);
      }
      INFO("kind " << static_cast<int>(w.kind) << " tokens " << w.tokens << " P " << page_tokens);
      REQUIRE(w.max_pages_held(1'000'000, page_tokens) == most);
    }
  }
  STATIC_REQUIRE(sliding_window<1024>::shape.max_pages_held(1'000'000, 16) == 65);
  STATIC_REQUIRE(full_attention::shape.max_pages_held(100, 16) == 7);
}
