// Windows give memory back: a Gemma-3-27B-shaped cache (62 layers, five sliding layers of
// window 1024 per global one; tiny heads so the test is quick) takes 1,000,000 tokens, and
// after every page boundary each group holds exactly the pages its window needs: the local
// group never more than ceil(1024 / 16) + 1, the global group every page.

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "kvc/numeric/half.hpp"

using namespace kvc;

namespace {
using local = layer<mqa<2>, head_dim<2>, sliding_window<1024>, storage<bf16>>;
using global = layer<mqa<2>, head_dim<2>, storage<bf16>>;
struct gemma3_27b_shaped : model<62, pattern<local, local, local, local, local, global>> {};
using cache_type = kv_cache<gemma3_27b_shaped, paged<16>>;

constexpr std::int64_t total_tokens = 1'000'000;
constexpr std::int64_t local_limit = (1024 + 15) / 16 + 1;  // ceil(W / P) + 1
}  // namespace

TEST_CASE("a million tokens: local pages stay bounded, global pages grow") {
  STATIC_REQUIRE(cache_type::num_groups == 2);
  const int local_group = cache_type::group_of_layer(0);
  const int global_group = cache_type::group_of_layer(5);
  REQUIRE(local_group != global_group);

  // Exactly the bytes for one sequence of a million tokens: every page in the global group,
  // ceil(W / P) + 2 in the local one (a step takes its new page before the oldest goes).
  // Without reclamation the local group would run out after 1,056 tokens.
  const std::uint64_t page_bytes = 16 * 2 * 2 * 2;  // 16 tokens, K and V of 2 bf16 dims
  cache_type cache(capacity_bytes{(66 * 52 + 62'500 * 10) * page_bytes, total_tokens});
  REQUIRE(cache.capacity_pages_of(cache_type::group_of_layer(0)) == 66);
  REQUIRE(cache.capacity_pages_of(cache_type::group_of_layer(5)) == 62'500);
  const sequence_id seq = cache.add_sequence();

  // Steps of 1 and 7 tokens alternate, so page boundaries fall inside steps and between them.
  std::vector<float> values(7 * 2);
  std::vector<layer_input> inputs;
  std::int64_t n = 0, boundaries = 0;
  std::int64_t most_local_pages = 0;
  while (n < total_tokens) {
    const std::int64_t step = std::min<std::int64_t>((n / 8) % 2 == 0 ? 1 : 7, total_tokens - n);
    for (std::int64_t t = 0; t < step; ++t) {
      values[static_cast<std::size_t>(2 * t)] = static_cast<float>(n + t);  // K[0] = position
      values[static_cast<std::size_t>(2 * t + 1)] = -static_cast<float>(n + t);
    }
    inputs.clear();
    for (int l = 0; l < 62; ++l)
      inputs.push_back(
          {l, fp32_input(values.data(), step, 1, 2), fp32_input(values.data(), step, 1, 2)});
    const append_request request{seq, step};
    cache.append({&request, 1}, inputs);
    const std::int64_t before = n;
    n += step;
    if (before / 16 != n / 16 || n % 16 == 0) {  // crossed or reached a page boundary
      ++boundaries;
      const std::int64_t local_pages = cache.pages_of(seq, local_group);
      const std::int64_t first_local = n > 1024 ? (n - 1024) / 16 : 0;
      REQUIRE(local_pages == (n - 1) / 16 - first_local + 1);
      REQUIRE(local_pages <= local_limit);
      REQUIRE(cache.used_pages(local_group) == local_pages);
      REQUIRE(cache.pages_of(seq, global_group) == (n + 15) / 16);
      REQUIRE(cache.used_pages(global_group) == (n + 15) / 16);
      most_local_pages = std::max(most_local_pages, local_pages);
    }
  }
  CHECK(boundaries >= total_tokens / 16);
  CHECK(most_local_pages == local_limit);
  cache.check_invariants();

  // What is kept reads back: the window in a local layer, everything in a global one.
  float k[2], v[2];
  CHECK_FALSE(cache.read(seq, 0, total_tokens - 1025, k, v));
  REQUIRE(cache.read(seq, 0, total_tokens - 1024, k, v));
  CHECK(k[0] == numeric::bf16_to_float(numeric::bf16_from_float(total_tokens - 1024)));
  REQUIRE(cache.read(seq, 5, 0, k, v));
  CHECK(k[0] == 0.0f);
  REQUIRE(cache.read(seq, 5, 256, k, v));
  CHECK(v[1] == -256.0f);

  cache.release(seq);
  CHECK(cache.used_pages(local_group) == 0);
  CHECK(cache.used_pages(global_group) == 0);
}
