// The tensor-core extend (prefill) kernel in the SIMT emulator against the reference backend
// (tests/simt_extend_check.hpp), for the gallery families' layer shapes (head counts scaled
// down, real head dims), fp16 and bf16 storage, windows, chunks, sinks, soft-cap, pages of
// several sizes, prompts that cross page and tile boundaries, and batches of mixed lengths;
// then the refusals before launch. .ci/run runs the cases tagged [tsan] under ThreadSanitizer.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention_shapes.hpp"
#include "error_code.hpp"
#include "simt_extend_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::shapes;
using namespace kvc::testing::simt_extend;

namespace {

// Gemma 3's real head dim (256): one row tile (16 rows) a warp.
template <class S>
using gemma3_wide_shape = layer<gqa<4, 2>, head_dim<256>, sliding_window<40>, S>;
// Qwen2.5-7B's group of 7 query heads: tiles of 128 rows end inside a token's group.
template <class S>
using qwen_small_shape = layer<gqa<7, 1>, head_dim<64>, S>;

}  // namespace

TEST_CASE("simt extend: Llama-like grouped queries, a prompt from nothing and over a prefix",
          "[simt][tsan]") {
  check_both<llama_shape>({{0, 37}, {70, 20}, 1});
}

TEST_CASE("simt extend: GPT-2-like multi-head attention", "[simt]") {
  check_both<gpt2_shape>({{5}, {40}, 2});
}

TEST_CASE("simt extend: a group of 7 (Qwen), tiles that end inside a token's group", "[simt]") {
  check_both<qwen_small_shape>({{12, 0}, {23, 30}, 3});
}

TEST_CASE("simt extend: Qwen's group of 7 at head dim 128", "[simt]") {
  check_extend<qwen_shape<storage<bf16>>>({{3}, {19}, 4});
}

TEST_CASE("simt extend: Mistral's sliding window, starting in the prefix and in the new tokens",
          "[simt][tsan]") {
  // The third sequence's first row (position 102) sees from position 63, one before a key tile.
  check_both<mistral_shape>({{90, 0, 102}, {30, 60, 20}, 5});
}

TEST_CASE("simt extend: Gemma-2-like soft-capped window", "[simt]") {
  check_both<gemma2_shape>({{50}, {45}, 6});
}

TEST_CASE("simt extend: Gemma-3-like window over one query group (MQA)", "[simt]") {
  check_both<gemma3_shape>({{33, 1}, {40, 25}, 7});
}

TEST_CASE("simt extend: Gemma 3's head dim 256 (16 rows a warp)", "[simt]") {
  check_both<gemma3_wide_shape>({{60}, {50}, 8});
}

TEST_CASE("simt extend: Llama-4-like chunks ending in the prefix and in the new tokens", "[simt]") {
  check_both<llama4_shape>({{30, 0}, {40, 50}, 9});
}

TEST_CASE("simt extend: streaming sinks and a window, whole tiles between them skipped", "[simt]") {
  check_both<streaming_shape>({{100, 2}, {25, 40}, 10});
}

TEST_CASE("simt extend: gpt-oss-like window with learned sinks", "[simt]") {
  check_both<gpt_oss_shape>(
      {{20, 0}, {20, 35}, 11, {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -2.0f, 1.0f, 0.25f}});
}

TEST_CASE("simt extend: DeepSeek-like latent layer (K 80 = 64 + 16, V its first 64)",
          "[simt][tsan]") {
  check_both<deepseek_shape>({{9}, {21}, 12});
}

TEST_CASE("simt extend: groups of 6 and 8 at head dims 32 and 48", "[simt]") {
  check_both<group6_shape>({{17}, {22}, 13});
  check_both<group8_shape>({{0}, {26}, 14});
}

TEST_CASE("simt extend: pages of 1, 8 and 64 tokens", "[simt]") {
  check_extend<llama_shape<storage<fp16>>, paged<1>>({{5}, {18}, 15});
  check_extend<mistral_shape<storage<bf16>>, paged<8>>({{51}, {30}, 16});
  check_extend<gemma2_shape<storage<fp16>>, paged<64>>({{70}, {60}, 17});
}

TEST_CASE("simt extend: head-major pages", "[simt]") {
  check_both_paged<llama_shape, paged<16, page_layout::hnd>>({{20}, {30}, 18});
}

TEST_CASE("simt extend: a batch of mixed lengths, sequences without new tokens among them",
          "[simt]") {
  check_both<gemma2_shape>({{0, 64, 5, 0, 17}, {16, 0, 1, 33, 64}, 19});
}

TEST_CASE("simt extend: one new token is a decode step", "[simt]") {
  check_both<llama_shape>({{40, 100, 0}, {1, 1, 1}, 20});
}

TEST_CASE("simt extend: large and small values", "[simt]") {
  extend_case c{{10}, {30}, 21};
  c.spread = 8.0f;  // scores of tens: the online softmax rescales at every tile
  check_both<gemma2_shape>(c);
  c.spread = 0.01f;
  c.seed = 22;
  check_both<llama_shape>(c);
}

TEST_CASE("simt extend: refusals before launch, with a clear code", "[simt]") {
  using spec = mistral_shape<storage<fp16>>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  constexpr int q_heads = spec::q_heads, kv_heads = spec::kv_heads, dim = spec::k_dim;
  // A reserve of 8 tokens: a step of 9 new tokens keeps what its first row sees, one of 10 not.
  kv_cache<model<1, spec>, paged<16>> cache(capacity_pages{32, 8});
  std::mt19937 rng(30);
  const sequence_id a = cache.add_sequence();
  append_random(cache, a, 50, rng);
  std::normal_distribution<float> normal;
  std::vector<float> k(10 * kv_heads * dim), q(10 * q_heads * dim);
  for (float& x : k) x = normal(rng);
  for (float& x : q) x = normal(rng);
  const float poison = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(10 * q_heads * dim, poison), lse(10 * q_heads, poison);
  const auto params = attention::attention_params_of<spec>();
  const auto untouched = [&] {
    for (const float x : out) REQUIRE(std::isnan(x));
    for (const float x : lse) REQUIRE(std::isnan(x));
  };

  const append_request ten{a, 10};
  append_plan plan = cache.plan_append({&ten, 1});
  const page_table_csr table = cache.step_table(plan, 0);
  cache.write(plan, 0, fp32_input(k.data(), 10, kv_heads, dim),
              fp32_input(k.data(), 10, kv_heads, dim));
  const paged_layer_view view = cache.view(0, table);
  const std::vector<std::int64_t> indptr{0, 10};
  const auto run = [&](const kernels::extend_plan& p, const paged_layer_view& v,
                       const std::vector<std::int64_t>& offsets, const float* queries) {
    simt::extend<shape>(p, v, offsets, queries, out.data(), lse.data(), params);
  };
  // 10 rows over a window of 40 with a reserve of 8: the first row's keys may be gone. The
  // plan is refused and left as it was, and no launch takes a plan never made for the step.
  kernels::extend_plan extend_plan;
  CHECK(code_of([&] { simt::plan_extend<shape>(view, indptr, q_heads, extend_plan); }) ==
        cache_errc::invalid_argument);
  CHECK(extend_plan.tiles.empty());
  CHECK(extend_plan.serial == 0);
  CHECK(code_of([&] { run(extend_plan, view, indptr, q.data()); }) == cache_errc::plan_mismatch);
  untouched();
  cache.abort(plan);

  const append_request nine{a, 9};
  plan = cache.plan_append({&nine, 1});
  const page_table_csr table9 = cache.step_table(plan, 0);
  cache.write(plan, 0, fp32_input(k.data(), 9, kv_heads, dim),
              fp32_input(k.data(), 9, kv_heads, dim));
  const paged_layer_view view9 = cache.view(0, table9);
  const std::vector<std::int64_t> indptr9{0, 9};
  kernels::extend_plan plan9;
  simt::plan_extend<shape>(view9, indptr9, q_heads, plan9);
  // A plan of another table, other offsets than the step's, no query rows.
  CHECK(code_of([&] { run(extend_plan, view9, indptr9, q.data()); }) == cache_errc::plan_mismatch);
  CHECK(code_of([&] { run(plan9, view9, {0, 8}, q.data()); }) == cache_errc::plan_mismatch);
  CHECK(code_of([&] { run(plan9, view9, indptr9, nullptr); }) == cache_errc::invalid_argument);
  // A kernel made for another layer: bf16 storage, or no window.
  using bf16_shape = kernels::decode_shape_of<mistral_shape<storage<bf16>>, paged<16>>;
  CHECK(code_of([&] {
          simt::extend<bf16_shape>(plan9, view9, indptr9, q.data(), out.data(), lse.data(), params);
        }) == cache_errc::shape_mismatch);
  using full_shape = kernels::decode_shape<fp16, fp16, spec::group_size, dim, dim, false>;
  CHECK(code_of([&] {
          simt::extend<full_shape>(plan9, view9, indptr9, q.data(), out.data(), lse.data(), params);
        }) == cache_errc::shape_mismatch);
  // Offsets that do not fit the view.
  CHECK(code_of([&] {
          simt::plan_extend<shape>(view9, std::vector<std::int64_t>{0}, q_heads, plan9);
        }) == cache_errc::invalid_argument);
  CHECK(code_of([&] {
          simt::plan_extend<shape>(view9, std::vector<std::int64_t>{0, 60}, q_heads, plan9);
        }) == cache_errc::invalid_argument);
  CHECK(code_of([&] { simt::plan_extend<shape>(view9, indptr9, 3, plan9); }) ==
        cache_errc::shape_mismatch);
  untouched();
  // The step's view once the step is committed.
  simt::plan_extend<shape>(view9, indptr9, q_heads, plan9);
  run(plan9, view9, indptr9, q.data());
  for (std::size_t i = 0; i < 9 * q_heads; ++i) REQUIRE(std::isfinite(lse[i]));
  cache.commit(plan);
  CHECK(code_of([&] { run(plan9, view9, indptr9, q.data()); }) == cache_errc::stale_table);
}

TEST_CASE("simt extend: fp8, int8 and int4 storage, converted into fp16 tiles on the way in",
          "[simt][tsan]") {
  extend_case c{{30, 0}, {25, 40}, 40};
  c.k_scale = 0.37f;  // fp8 layer scales: K's folded into the query, V's into the result
  c.v_scale = 2.5f;
  check_extend<llama_shape<storage<fp8_e4m3>>>(c);
  check_extend<llama_shape<storage<fp8_e5m2>>>(c);
  check_extend<llama_shape<storage<int8>>>(c);
  check_extend<llama_shape<storage<kvc::int4>>>(c);
}

TEST_CASE("simt extend: converted dtypes with windows, sinks, soft-cap and a latent layer",
          "[simt]") {
  check_extend<gemma2_shape<storage<int8>>>({{50}, {45}, 41});
  check_extend<streaming_shape<storage<kvc::int4>>>({{100, 2}, {25, 40}, 42});
  check_extend<gpt_oss_shape<storage<fp8_e4m3>>>(
      {{20}, {35}, 43, {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -2.0f, 1.0f, 0.25f}});
  check_extend<deepseek_shape<storage<int8>>>({{9}, {21}, 44});
  check_extend<mixed_dtype_shape<storage<fp16>>>({{33, 0}, {20, 30}, 45});  // int4 K, fp8 V
}
