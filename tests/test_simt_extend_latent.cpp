// The extend (prefill) of MLA's 576/512 latents (kernels/extend_by_token.hpp: a block per new
// token, the tensor-core decode's body at its position) in the SIMT emulator against the
// reference backend (tests/simt_extend_check.hpp): DeepSeek V2-Lite's and V3's head counts and
// fewer, fp16, bf16, fp8 e4m3 with layer scales, int8 and int4, windows, chunks, sinks,
// soft-cap, pages of several sizes and both layouts, prompts over a prefix and batches of
// mixed lengths. Few layer types: each one's
// kernel is heavy for the compiler, in every build of .ci/run. The kernel's barriers and
// exchanges are the tensor-core decode's, whose cases run under ThreadSanitizer.

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention_shapes.hpp"
#include "kvc/kernels/extend.hpp"
#include "simt_extend_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::simt_extend;

namespace {

using shapes::deepseek_latent;
template <class S>
using latent_16 = deepseek_latent<16>::shape<S>;
template <class S>
using latent_4 = deepseek_latent<4>::shape<S>;
template <class S>
using latent_128 = deepseek_latent<128>::shape<S>;
template <class S>
using window_latent =
    layer<mqa<16>, latent<512, 64>, sliding_window<40>, S, inv_sqrt_scale<192>, learned_sinks>;
template <class S>
using chunked_latent = layer<mqa<16>, latent<512, 64>, chunked<24>, S, inv_sqrt_scale<192>>;
template <class S>
using streaming_latent = layer<mqa<16>, latent<512, 64>, streaming<4, 20>, S, inv_sqrt_scale<192>>;
template <class S>
using capped_latent = layer<mqa<32>, latent<512, 64>, S, logit_softcap<30>, inv_sqrt_scale<192>>;

template <template <class> class Shape, class Paging = paged<16>>
using shape_of = kernels::decode_shape_of<Shape<storage<bf16>>, Paging>;

std::vector<float> sinks_of(int heads) {
  std::vector<float> sinks(static_cast<std::size_t>(heads));
  for (int h = 0; h < heads; ++h)
    sinks[static_cast<std::size_t>(h)] = 0.4f * static_cast<float>(h % 9) - 1.5f;
  return sinks;
}

}  // namespace

TEST_CASE("the extend of 576/512 latents runs a block per new token, the others row tiles") {
  using kernels::extend_path;
  using kernels::extend_path_of;
  STATIC_REQUIRE(extend_path_of<shape_of<latent_128>> == extend_path::token_blocks);
  // 8-bit latents too (converted into fp16 tiles); fp32 has no tensor-core extend.
  using fp8_latent = kernels::decode_shape_of<latent_128<storage<fp8_e4m3>>, paged<64>>;
  STATIC_REQUIRE(extend_path_of<fp8_latent> == extend_path::token_blocks);
  STATIC_REQUIRE(kernels::extend_supports<fp8_latent>);
  STATIC_REQUIRE(
      !kernels::extend_supports<kernels::decode_shape_of<latent_128<storage<fp32>>, paged<64>>>);
  STATIC_REQUIRE(extend_path_of<shape_of<latent_4>> == extend_path::token_blocks);
  STATIC_REQUIRE(extend_path_of<shape_of<shapes::deepseek_shape>> == extend_path::row_tiles);
  STATIC_REQUIRE(extend_path_of<shape_of<shapes::llama_shape>> == extend_path::row_tiles);
  // The per-token kernel's tile is a token's group, its block two warps per 16 heads (8 at most).
  STATIC_REQUIRE(kernels::extend<shape_of<latent_128>>::rows == 128);
  STATIC_REQUIRE(kernels::extend<shape_of<latent_128>>::row_chunks == 2);
  STATIC_REQUIRE(kernels::extend_block<shape_of<latent_128>>::threads == 256);
  STATIC_REQUIRE(kernels::extend_block<shape_of<latent_16>>::threads == 64);
  STATIC_REQUIRE(kernels::extend_block<shape_of<shapes::llama_shape>>::threads == 128);
}

TEST_CASE("simt latent extend: V2-Lite's 16 heads, a prompt from nothing and over a prefix",
          "[simt]") {
  check_extend<latent_16<storage<bf16>>>({{0, 40}, {33, 6}, 1});
}

TEST_CASE("simt latent extend: V3's 128 heads, two row chunks, pages of 64", "[simt]") {
  check_extend<latent_128<storage<bf16>>, paged<64>>({{40}, {4}, 2});
}

TEST_CASE("simt latent extend: 4 heads, a row group part full", "[simt]") {
  check_extend<latent_4<storage<fp16>>>({{9}, {12}, 3});
}

TEST_CASE("simt latent extend: head-major pages of 8 tokens", "[simt]") {
  check_extend<latent_16<storage<bf16>>, paged<8, page_layout::hnd>>({{29}, {14}, 6});
}

TEST_CASE("simt latent extend: a sliding window with learned sinks", "[simt]") {
  extend_case c{{30, 0}, {12, 45}, 8};
  c.sink_logits = sinks_of(16);
  check_extend<window_latent<storage<bf16>>>(c);
}

TEST_CASE("simt latent extend: chunks and streaming sinks", "[simt]") {
  check_extend<chunked_latent<storage<bf16>>>({{20, 50}, {20, 3}, 9});
  check_extend<streaming_latent<storage<fp16>>>({{33}, {24}, 10});
}

TEST_CASE("simt latent extend: soft-cap, large and small values", "[simt]") {
  extend_case c{{12}, {14}, 11};
  c.spread = 4.0f;
  check_extend<capped_latent<storage<bf16>>>(c);
  c.spread = 0.01f;
  c.seed = 12;
  check_extend<latent_4<storage<fp16>>>(c);
}

TEST_CASE("simt latent extend: a batch of mixed lengths, sequences without new tokens", "[simt]") {
  check_extend<latent_16<storage<bf16>>>({{0, 64, 5, 0, 17}, {16, 0, 1, 9, 0}, 13});
}

TEST_CASE("simt latent extend: fp8 latents with layer scales, over a prefix", "[simt]") {
  extend_case c{{0, 37}, {21, 5}, 14};
  c.k_scale = 0.37f;
  c.v_scale = 2.5f;  // not used: a latent's values take the keys' scale
  check_extend<latent_16<storage<fp8_e4m3>>>(c);
}

TEST_CASE("simt latent extend: int8 and int4 latents, a sliding window with sinks", "[simt]") {
  check_extend<latent_4<storage<int8>>>({{30}, {9}, 15});
  extend_case c{{30, 0}, {6, 44}, 16};
  c.sink_logits = sinks_of(16);
  check_extend<window_latent<storage<int4>>>(c);
}
