// The warpgroup extend (prefill) kernel (kernels/extend_wgmma.hpp, the opt-in of
// kernels::warpgroup_extend_block) in the SIMT emulator against the reference backend
// (tests/simt_extend_check.hpp): the gallery families' layer shapes it takes (head counts
// scaled down, real head dims 64 and 128), fp16 and bf16 storage, windows, chunks, sinks,
// soft-cap, pages of several sizes, prompts that cross page and tile boundaries (tiles of 64
// keys, 32 at head dim 256, three buffers in turn), batches of mixed lengths; fp8 e4m3 and e5m2
// with layer scales, int8 and int4 with per-token scales.
// .ci/run runs the cases tagged [tsan] under ThreadSanitizer.

#include <catch2/catch.hpp>
#include <cstddef>

#include "attention_shapes.hpp"
#include "simt_extend_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::shapes;
using namespace kvc::testing::simt_extend;

namespace {

template <class Spec, class Paging = paged<16>>
std::size_t check_warpgroups(const extend_case& c) {
  using shape = kernels::decode_shape_of<Spec, Paging>;
  return check_extend<Spec, Paging, kernels::warpgroup_extend_block<shape>>(c);
}

template <template <class> class Shape, class Paging = paged<16>>
void check_both_warpgroups(const extend_case& c) {
  {
    INFO("fp16");
    check_warpgroups<Shape<storage<fp16>>, Paging>(c);
  }
  {
    INFO("bf16");
    check_warpgroups<Shape<storage<bf16>>, Paging>(c);
  }
}

// Gemma 3's head dim of 256 (1B, 4B, 12B): tiles of 32 keys.
template <class S>
using gemma3_wide_shape = layer<gqa<4, 2>, head_dim<256>, sliding_window<40>, S>;
// Gemma 2's head dim of 256 with its soft-cap.
template <class S>
using gemma2_wide_shape =
    layer<gqa<4, 2>, head_dim<256>, sliding_window<24>, S, logit_softcap<50>, inv_sqrt_scale<256>>;

// Qwen2.5-7B's group of 7 query heads at head dim 64: tiles of 128 rows end inside a token's
// group.
template <class S>
using qwen_small_shape = layer<gqa<7, 1>, head_dim<64>, S>;

using llama_fp16 = kernels::decode_shape_of<llama_shape<storage<fp16>>, paged<16>>;
static_assert(
    std::is_same_v<kernels::extend<llama_fp16, kernels::warpgroup_extend_block<llama_fp16>>,
                   kernels::extend_wgmma<llama_fp16, kernels::warpgroup_extend_block<llama_fp16>>>);
static_assert(!kernels::wgmma_extend_supports<
              kernels::decode_shape_of<streaming_shape<storage<fp16>>, paged<16>>>);
static_assert(!kernels::wgmma_extend_supports<
              kernels::decode_shape_of<mixed_dtype_shape<storage<fp16>>, paged<16>>>);
static_assert(!kernels::wgmma_extend_supports<
              kernels::decode_shape_of<deepseek_shape<storage<bf16>>, paged<16>>>);

}  // namespace

TEST_CASE(
    "simt warpgroup extend: Llama-like grouped queries, a prompt from nothing and over a "
    "prefix",
    "[simt][tsan]") {
  check_both_warpgroups<llama_shape>({{0, 37}, {70, 20}, 1});
}

TEST_CASE("simt warpgroup extend: a long prompt over a prefix, the three buffers in turn",
          "[simt]") {
  // 230 + 60 keys: 5 tiles of 64 keys, each buffer taken once or twice; 240 rows, 2 tiles.
  CHECK(check_warpgroups<llama_shape<storage<bf16>>>({{230}, {60}, 2}) == 2);  // row tiles
}

TEST_CASE("simt warpgroup extend: GPT-2-like multi-head attention at head dim 64", "[simt]") {
  check_both_warpgroups<gpt2_shape>({{5}, {40}, 3});
}

TEST_CASE("simt warpgroup extend: a group of 7 (Qwen), tiles that end inside a token's group",
          "[simt]") {
  check_both_warpgroups<qwen_small_shape>({{12, 0}, {23, 30}, 4});
  check_warpgroups<qwen_shape<storage<bf16>>>({{3}, {19}, 5});
}

TEST_CASE(
    "simt warpgroup extend: Mistral's sliding window, starting in the prefix and in the "
    "new tokens",
    "[simt]") {
  check_both_warpgroups<mistral_shape>({{90, 0, 102}, {30, 60, 20}, 6});
}

TEST_CASE("simt warpgroup extend: Gemma-2-like soft-capped window", "[simt]") {
  check_both_warpgroups<gemma2_shape>({{50}, {45}, 7});
}

TEST_CASE("simt warpgroup extend: Gemma-3-like window over one query group (MQA)", "[simt]") {
  check_both_warpgroups<gemma3_shape>({{33, 1}, {40, 25}, 8});
}

TEST_CASE("simt warpgroup extend: Llama-4-like chunks ending in the prefix and in the new tokens",
          "[simt]") {
  check_both_warpgroups<llama4_shape>({{30, 0}, {40, 50}, 9});
}

TEST_CASE("simt warpgroup extend: gpt-oss-like window with learned sinks", "[simt]") {
  extend_case c{{40, 3}, {30, 35}, 10};
  c.sink_logits = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.5f, 0.25f, 3.0f};
  check_both_warpgroups<gpt_oss_shape>(c);
}

TEST_CASE("simt warpgroup extend: pages of 1, 8 and 64 tokens, and head-major pages", "[simt]") {
  check_warpgroups<llama_shape<storage<fp16>>, paged<1>>({{5}, {18}, 11});
  check_warpgroups<mistral_shape<storage<bf16>>, paged<8>>({{51}, {30}, 12});
  check_warpgroups<gemma2_shape<storage<fp16>>, paged<64>>({{70}, {60}, 13});
  check_both_warpgroups<llama_shape, paged<16, page_layout::hnd>>({{20}, {30}, 14});
}

TEST_CASE(
    "simt warpgroup extend: a batch of mixed lengths, sequences without new tokens among "
    "them",
    "[simt]") {
  check_both_warpgroups<gemma2_shape>({{0, 64, 5, 0, 17}, {16, 0, 1, 33, 64}, 15});
}

TEST_CASE("simt warpgroup extend: one new token is a decode step", "[simt]") {
  check_both_warpgroups<llama_shape>({{40, 100, 0}, {1, 1, 1}, 16});
}

TEST_CASE("simt warpgroup extend: large and small values", "[simt]") {
  extend_case c{{10}, {30}, 17};
  c.spread = 8.0f;  // scores of tens: the online softmax rescales at every tile
  check_both_warpgroups<gemma2_shape>(c);
  c.spread = 0.01f;
  c.seed = 18;
  check_both_warpgroups<llama_shape>(c);
}

TEST_CASE("simt warpgroup extend: fp8 e4m3 and e5m2, converted into fp16 tiles as they land",
          "[simt][tsan]") {
  extend_case c{{0, 140}, {30, 10}, 19};  // 1 and 3 key tiles
  c.k_scale = 0.37f;
  c.v_scale = 2.5f;
  check_warpgroups<llama_shape<storage<fp8_e4m3>>>(c);
  check_warpgroups<llama_shape<storage<fp8_e5m2>>>(c);
}

TEST_CASE("simt warpgroup extend: fp8 with windows, sinks, soft-cap and pages of 64", "[simt]") {
  check_warpgroups<gemma2_shape<storage<fp8_e4m3>>>({{50}, {45}, 20});
  check_warpgroups<mistral_shape<storage<fp8_e5m2>>, paged<64>>({{90, 0}, {30, 60}, 21});
  extend_case c{{40, 3}, {30, 35}, 22};
  c.sink_logits = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.5f, 0.25f, 3.0f};
  check_warpgroups<gpt_oss_shape<storage<fp8_e4m3>>>(c);
}

TEST_CASE("simt warpgroup extend: head dim 256 (Gemma 2 and 3), tiles of 32 keys", "[simt]") {
  check_both_warpgroups<gemma3_wide_shape>({{70, 0}, {20, 40}, 23});
  check_both_warpgroups<gemma2_wide_shape>({{50}, {20}, 24});
  extend_case c{{100}, {12}, 25};
  c.k_scale = 0.37f;
  c.v_scale = 2.5f;
  check_warpgroups<gemma3_wide_shape<storage<fp8_e4m3>>>(c);
}

TEST_CASE("simt warpgroup extend: int8 and int4 with their per-token scales", "[simt]") {
  check_warpgroups<llama_shape<storage<int8>>>({{0, 140}, {30, 10}, 26});
  check_warpgroups<llama_shape<storage<kvc::int4>>>({{0, 140}, {30, 10}, 27});
  check_warpgroups<gemma2_shape<storage<int8>>>({{50}, {20}, 28});
  extend_case c{{40, 3}, {30, 35}, 29};
  c.sink_logits = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.5f, 0.25f, 3.0f};
  check_warpgroups<gpt_oss_shape<storage<kvc::int4>>>(c);
  check_warpgroups<gemma3_wide_shape<storage<int8>>>({{100}, {12}, 30});
  check_warpgroups<gemma3_wide_shape<storage<kvc::int4>>>({{100}, {12}, 31});
  check_warpgroups<gemma2_shape<storage<kvc::int4>>>({{50}, {20}, 32});
}
