// The decode and merge kernels (kernels/decode.hpp) in the SIMT emulator against the
// reference backend (tests/simt_decode_check.hpp). Run under ThreadSanitizer by .ci/run.
// The layer shape of every gallery family (head counts scaled down), every storage dtype:
// MHA, GQA, groups of 7, windows, soft-cap and scale, chunks, streaming, sinks, MLA, HND pages.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "simt_decode_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::simt_decode;

TEST_CASE("simt decode: multi-head attention (GPT-2)", "[simt]") {
  check_decode<gpt2_shape>({1, 17, 150}, 1);
}
TEST_CASE("simt decode: grouped-query attention (Llama)", "[simt]") {
  check_decode<llama_shape>({33, 1, 200}, 2);
}
TEST_CASE("simt decode: groups of 7 (Qwen 2.5)", "[simt]") { check_decode<qwen_shape>({64, 5}, 3); }
TEST_CASE("simt decode: groups of 7 kept on the CUDA cores (blocks of 3 warps)", "[simt]") {
  // Groups of more than 4 take the tensor cores by default; the streamed kernel stays the path
  // to fp32 arithmetic for them.
  using block = kernels::block_shape<96>;
  STATIC_REQUIRE(
      kernels::streamed_decode<kernels::decode_shape_of<qwen_shape<storage<bf16>>, paged<16>>,
                               block>);
  check_decode<qwen_shape, paged<16>, block>({64, 5}, 31);
}
TEST_CASE("simt decode: sliding window (Mistral), longer and shorter than the window", "[simt]") {
  check_decode<mistral_shape>({39, 40, 41, 130}, 4);
}
TEST_CASE("simt decode: sliding window with soft-cap and scale (Gemma 2)", "[simt]") {
  check_decode<gemma2_shape>({10, 47, 100}, 5);
}
TEST_CASE("simt decode: multi-query sliding window (Gemma 3)", "[simt]") {
  check_decode<gemma3_shape>({21, 96}, 6);
}
TEST_CASE("simt decode: chunked attention at chunk boundaries (Llama 4)", "[simt]") {
  check_decode<llama4_shape>({23, 24, 25, 48, 49, 100}, 7);
}
TEST_CASE("simt decode: streaming, a query that sees only sink tokens", "[simt]") {
  check_decode<streaming_shape, paged<4>>({1, 2, 4, 5, 24, 25, 90}, 8);
}
TEST_CASE("simt decode: learned sink logits (gpt-oss), split and not", "[simt]") {
  decode_options<> options;
  options.sink_logits = {0.5f, -1.0f, 3.0f, 0.0f, 10.0f, -5.0f, 1.0f, 2.0f};
  check_decode<gpt_oss_shape>({1, 31, 32, 33, 120}, 9, options);
  options.min_split_tokens = 16;
  options.workers = 8;
  CHECK(check_decode<gpt_oss_shape>({1, 33, 120}, 10, options) > 3);
}
TEST_CASE("simt decode: multi-head latent attention (DeepSeek)", "[simt]") {
  check_decode<deepseek_shape>({1, 40, 170}, 11);
  // A latent's values are its keys: an fp8 layer's V scale plays no part.
  decode_options<> options;
  options.k_scale = 0.5f;
  options.v_scale = 2.0f;
  check_decode<deepseek_shape>({1, 40}, 13, options);
}
TEST_CASE("simt decode: HND pages of 48 tokens (three key blocks a page)", "[simt]") {
  check_decode<group6_shape, paged<48, page_layout::hnd>>({47, 48, 130}, 12);
}
