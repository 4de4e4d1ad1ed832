// The decode on tensor cores (kernels/decode_mma.hpp) in the SIMT emulator against the
// double-precision reference, within the tensor cores' bounds (tests/simt_decode_check.hpp).
// MLA: DeepSeek's real 512 + 64 latent at 16, 64 and 128 heads, head counts that leave row
// groups and row chunks part empty, split-K and the merge, learned sinks, windows, soft-cap,
// pages of 1 to 64 tokens, HND pages, key counts around the tiles of 32. Large groups: 5, 7,
// 8, 9, 12, 16 and 64 query heads per KV head (Llama 4 Scout, Qwen2.5-7B, Llama 3 70B,
// Qwen3-Next, GLM-4.5, Llama 3 405B, Qwen3-235B), dims 64 to 256,
// windows and learned sinks (gpt-oss-like), chunks, fp16 K with bf16 V. The [tsan] cases run
// under ThreadSanitizer in .ci/run.

#include <catch2/catch.hpp>
#include <cstdint>
#include <utility>
#include <vector>

#include "attention_shapes.hpp"
#include "kvc/kernels/decode.hpp"
#include "simt_decode_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::simt_decode;

namespace {

// DeepSeek's latent (tests/attention_shapes.hpp) at scaled-down head counts.
using shapes::deepseek_latent;
template <class S>
using latent_16 = deepseek_latent<16>::shape<S>;
template <class S>
using latent_24 = deepseek_latent<24>::shape<S>;
template <class S>
using latent_64 = deepseek_latent<64>::shape<S>;
template <class S>
using latent_80 = deepseek_latent<80>::shape<S>;
template <class S>
using latent_128 = deepseek_latent<128>::shape<S>;
template <class S>
using sink_latent = layer<mqa<16>, latent<512, 64>, S, inv_sqrt_scale<192>, learned_sinks>;
// Small latents reach the other tile size (64 keys) and odd counts of mma steps.
template <class S>
using small_latent = layer<mqa<16>, latent<64, 16>, S, inv_sqrt_scale<24>>;
template <class S>
using window_latent = layer<mqa<16>, latent<96, 32>, sliding_window<40>, S, inv_sqrt_scale<64>>;
template <class S>
using capped_latent = layer<mqa<32>, latent<128, 32>, S, logit_softcap<30>, inv_sqrt_scale<96>>;

template <template <class> class Shape, class Paging = paged<16>>
using shape_of = kernels::decode_shape_of<Shape<storage<bf16>>, Paging>;
template <template <class> class Shape, class Paging = paged<16>>
using block_of = kernels::decode_block<shape_of<Shape, Paging>>;

decode_options<fp16, bf16> sixteen_bit() { return {}; }

// The dtypes converted into fp16 tiles, fp8 with layer scales other than 1.
template <class... Dtypes>
decode_options<Dtypes...> eight_bit() {
  decode_options<Dtypes...> options;
  options.k_scale = 0.37f;
  options.v_scale = 2.5f;
  return options;
}
auto every_eight_bit() { return eight_bit<fp8_e4m3, fp8_e5m2, int8, kvc::int4>(); }

}  // namespace

// Large query groups (kvc::models: GLM-4.5's 12, Llama 3 405B's and Qwen3-235B's 16).
template <class S>
using group12_shape = layer<gqa<24, 2>, head_dim<128>, S>;
template <class S>
using group16_shape = layer<gqa<16, 1>, head_dim<128>, S>;
template <class S>
using group9_window_shape = layer<gqa<18, 2>, head_dim<64>, sliding_window<40>, S>;
template <class S>
using group16_sinks_shape = layer<gqa<32, 2>, head_dim<64>, sliding_window<32>, S, learned_sinks>;
template <class S>
using group64_shape = layer<mqa<64>, head_dim<128>, S>;
template <class S>
using group12_wide_shape = layer<gqa<12, 1>, head_dim<256>, S, logit_softcap<50>>;
// fp16 K, bf16 V, whatever the storage policy given.
template <class S>
using group12_mixed_shape = layer<gqa<24, 2>, head_dim<64>, storage<fp16, bf16>>;
template <class S>
using group10_chunked_shape = layer<gqa<10, 1>, head_dim<96, 64>, chunked<24>, S>;
// Groups of 5 to 8 (kvc::models: Llama 3 70B's and Qwen3-32B's 8, Qwen2.5-7B's 7, Llama 4
// Scout's 5, Qwen3-Next's 8 at dim 256).
template <class S>
using group8_d128_shape = layer<gqa<16, 2>, head_dim<128>, S>;
template <class S>
using group5_shape = layer<gqa<10, 2>, head_dim<128>, chunked<24>, S>;
template <class S>
using group7_int4_shape = layer<gqa<14, 2>, head_dim<64>, S>;
template <class S>
using group8_wide_shape = layer<gqa<8, 1>, head_dim<256>, S>;
// bf16 K read as stored, int8 V read raw, whatever the storage policy given.
template <class S>
using group12_bf16_int8_shape = layer<gqa<24, 2>, head_dim<64>, storage<bf16, int8>>;

TEST_CASE("the decode runs on tensor cores for latents of 16 heads or more") {
  using kernels::decode_path;
  using kernels::decode_path_of;
  STATIC_REQUIRE(decode_path_of<shape_of<latent_128>> == decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<shape_of<latent_16>> == decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<kernels::decode_shape_of<latent_64<storage<fp16>>, paged<64>>> ==
                 decode_path::tensor_cores);
  // Two warps per 16 heads, at most 8 warps: 64 heads a block, 128 in two row chunks.
  STATIC_REQUIRE(block_of<latent_16>::threads == 64);
  STATIC_REQUIRE(block_of<latent_24>::threads == 128);
  STATIC_REQUIRE(block_of<latent_128>::threads == 256);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_128>>::row_chunks == 2);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_80>>::row_chunks == 2);
  // DeepSeek's 576-dim latent at 128 heads fits the smallest target's shared memory (sm_80),
  // in fp8 too (its raw tiles are half the size, and a converted tile is added).
  using fp8_latent = kernels::decode_shape_of<latent_128<storage<fp8_e4m3>>, paged<64>>;
  STATIC_REQUIRE(decode_path_of<fp8_latent> == decode_path::tensor_cores);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_128>>::shared_bytes <= 163 * 1024);
  STATIC_REQUIRE(kernels::decode<fp8_latent>::shared_bytes <= 163 * 1024);
  STATIC_REQUIRE(decode_path_of<kernels::decode_shape_of<latent_16<storage<int4>>, paged<16>>> ==
                 decode_path::tensor_cores);
  // fp32, fewer heads, a block of an odd warp count: the CUDA-core kernels.
  STATIC_REQUIRE(decode_path_of<kernels::decode_shape_of<latent_128<storage<fp32>>, paged<16>>> ==
                 decode_path::tiled);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<
          layer<mqa<8>, latent<512, 64>, storage<bf16>, inv_sqrt_scale<192>>, paged<16>>> ==
      decode_path::tiled);
  STATIC_REQUIRE(decode_path_of<shape_of<latent_16>, kernels::block_shape<96>> ==
                 decode_path::tiled);
  STATIC_REQUIRE(
      kernels::decode_block<kernels::decode_shape_of<layer<gqa<8, 2>, head_dim<128>, storage<bf16>>,
                                                     paged<16>>>::threads == 128);
}

TEST_CASE("the decode runs on tensor cores for groups of more than 4") {
  using kernels::decode_path;
  using kernels::decode_path_of;
  STATIC_REQUIRE(decode_path_of<shape_of<group12_shape>> == decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<shape_of<group16_shape>> == decode_path::tensor_cores);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<group9_window_shape<storage<fp16>>, paged<16>>> ==
      decode_path::tensor_cores);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<layer<gqa<24, 2>, head_dim<128>, storage<fp16, bf16>>,
                                              paged<16>>> == decode_path::tensor_cores);
  STATIC_REQUIRE(block_of<group16_shape>::threads == 64);
  STATIC_REQUIRE(block_of<group64_shape>::threads == 256);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<group16_shape<storage<fp8_e4m3>>, paged<16>>> ==
      decode_path::tensor_cores);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<group16_shape<storage<int4>>, paged<16>>> ==
      decode_path::tensor_cores);
  // Groups of 5 to 8 (Llama 3 70B, Qwen2.5, Qwen3-32B, gpt-oss, Llama 4 Scout, MiniMax-M2)
  // in every dtype but fp32, on 2 warps (16 rows, 8 to 11 of them empty).
  STATIC_REQUIRE(kernels::max_streamed_group == 4);
  STATIC_REQUIRE(decode_path_of<shape_of<group8_d128_shape>> == decode_path::tensor_cores);
  STATIC_REQUIRE(block_of<group8_d128_shape>::threads == 64);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<group8_d128_shape<storage<fp8_e4m3>>, paged<16>>> ==
      decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<shape_of<group5_shape>> == decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<shape_of<group7_int4_shape>> == decode_path::tensor_cores);
  // Groups of 4 or fewer, fp32, and blocks of an odd number of warps: CUDA cores.
  STATIC_REQUIRE(
      decode_path_of<
          kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<bf16>>, paged<16>>> ==
      decode_path::streamed);
  STATIC_REQUIRE(
      decode_path_of<
          kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<int8>>, paged<16>>> ==
      decode_path::streamed);
  STATIC_REQUIRE(
      decode_path_of<kernels::decode_shape_of<group16_shape<storage<fp32>>, paged<16>>> ==
      decode_path::streamed);
  STATIC_REQUIRE(decode_path_of<shape_of<group8_d128_shape>, kernels::block_shape<96>> ==
                 decode_path::streamed);
}

TEST_CASE("simt group decode: Llama 3 70B's groups of 8 at dim 128, every dtype, split and not",
          "[simt]") {
  check_decode<group8_d128_shape, paged<16>, block_of<group8_d128_shape>>({1, 31, 32, 33, 100}, 51,
                                                                          sixteen_bit());
  check_decode<group8_d128_shape, paged<16>, block_of<group8_d128_shape>>({33, 100}, 52,
                                                                          every_eight_bit());
  auto options = eight_bit<fp8_e4m3, int8>();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<group8_d128_shape, paged<16>, block_of<group8_d128_shape>>({130, 7}, 53,
                                                                                options) > 2);
}

TEST_CASE("simt group decode: groups of 5 and 7 (Llama 4 Scout, Qwen2.5-7B), int4 and pages of 8",
          "[simt][tsan]") {
  check_decode<group5_shape, paged<16>, block_of<group5_shape>>({1, 40}, 54, sixteen_bit());
  check_decode<group7_int4_shape, paged<8>, block_of<group7_int4_shape, paged<8>>>(
      {8, 9, 70}, 55, eight_bit<kvc::int4>());
}

// Groups of 2 to 4 opt into the tensor cores with kernels::tensor_core_block.
template <class S>
using group4_shape = layer<gqa<8, 2>, head_dim<128>, S>;
template <class S>
using group2_window_shape = layer<gqa<4, 2>, head_dim<64>, sliding_window<24>, S>;
template <template <class> class Shape, class Paging = paged<16>>
using opted_in = kernels::tensor_core_block<shape_of<Shape, Paging>>;

TEST_CASE("a tensor_core_block opts a group of 2 to 4 into the tensor cores") {
  using kernels::decode_path;
  using kernels::decode_path_of;
  STATIC_REQUIRE(decode_path_of<shape_of<group4_shape>> == decode_path::streamed);
  STATIC_REQUIRE(decode_path_of<shape_of<group4_shape>, opted_in<group4_shape>> ==
                 decode_path::tensor_cores);
  STATIC_REQUIRE(opted_in<group4_shape>::threads == 64);
  // The block names the opt-in; the layer it runs may have another dtype.
  using int8_shape = kernels::decode_shape_of<group4_shape<storage<int8>>, paged<16>>;
  STATIC_REQUIRE(decode_path_of<int8_shape, opted_in<group4_shape>> == decode_path::tensor_cores);
  STATIC_REQUIRE(decode_path_of<shape_of<group2_window_shape>, opted_in<group2_window_shape>> ==
                 decode_path::tensor_cores);
  // A latent of fewer than 16 heads too (the CUDA-core tiled kernel by default).
  using small_latent_shape =
      kernels::decode_shape_of<layer<mqa<4>, latent<64, 16>, storage<bf16>, inv_sqrt_scale<24>>,
                               paged<16>>;
  STATIC_REQUIRE(decode_path_of<small_latent_shape> == decode_path::tiled);
  STATIC_REQUIRE(
      decode_path_of<small_latent_shape, kernels::tensor_core_block<small_latent_shape>> ==
      decode_path::tensor_cores);
}

TEST_CASE("simt group decode: a group of 4 on the tensor cores by choice, every dtype, split",
          "[simt][tsan]") {
  check_decode<group4_shape, paged<16>, opted_in<group4_shape>>({1, 33, 100}, 58,
                                                                every_eight_bit());
  auto options = sixteen_bit();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<group4_shape, paged<16>, opted_in<group4_shape>>({90, 3}, 59, options) > 2);
}

TEST_CASE("simt group decode: a group of 2 with a window on the tensor cores by choice", "[simt]") {
  check_decode<group2_window_shape, paged<8>, opted_in<group2_window_shape, paged<8>>>(
      {23, 24, 25, 70}, 60, eight_bit<fp8_e4m3, int8>());
}

// Raw 8-bit K beside V of another kind: int4 (an fp16 tile), fp16 (as stored), e5m2 of 48
// dims (not a multiple of 64: an fp16 tile); whatever the storage policy given.
template <class S>
using group8_fp8_int4_shape = layer<gqa<16, 2>, head_dim<128>, storage<fp8_e4m3, kvc::int4>>;
template <class S>
using group6_int8_fp16_shape = layer<gqa<12, 2>, head_dim<64>, storage<int8, fp16>>;
template <class S>
using group8_narrow_v_shape = layer<gqa<16, 2>, head_dim<64, 48>, storage<fp8_e5m2>>;

TEST_CASE("simt group decode: raw 8-bit keys beside int4, fp16 and narrow values", "[simt]") {
  STATIC_REQUIRE(kernels::mma_decode_tiling<shape_of<group8_fp8_int4_shape>, 2>::k_raw);
  STATIC_REQUIRE(!kernels::mma_decode_tiling<shape_of<group8_fp8_int4_shape>, 2>::v_raw);
  STATIC_REQUIRE(!kernels::mma_decode_tiling<shape_of<group8_narrow_v_shape>, 2>::v_raw);
  check_decode<group8_fp8_int4_shape, paged<16>, block_of<group8_fp8_int4_shape>>(
      {1, 33, 100}, 61, eight_bit<fp8_e4m3>());
  check_decode<group6_int8_fp16_shape, paged<16>, block_of<group6_int8_fp16_shape>>(
      {40}, 62, eight_bit<int8>());
  check_decode<group8_narrow_v_shape, paged<16>, block_of<group8_narrow_v_shape>>(
      {70}, 63, eight_bit<fp8_e5m2>());
}

TEST_CASE("simt group decode: Qwen3-Next's groups of 8 at dim 256, fp8 and bf16", "[simt]") {
  check_decode<group8_wide_shape, paged<16>, block_of<group8_wide_shape>>({31, 32, 33, 90}, 56,
                                                                          eight_bit<fp8_e4m3>());
  check_decode<group8_wide_shape, paged<16>, block_of<group8_wide_shape>>({65}, 57, sixteen_bit());
}

TEST_CASE("simt group decode: groups of 12 and 16 at dim 128", "[simt][tsan]") {
  check_decode<group12_shape, paged<16>, block_of<group12_shape>>({1, 64, 65, 150}, 41,
                                                                  sixteen_bit());
  check_decode<group16_shape, paged<16>, block_of<group16_shape>>({33, 100}, 42, sixteen_bit());
}

TEST_CASE("simt group decode: a group of 64 (MQA), split and merged", "[simt]") {
  auto options = sixteen_bit();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<group64_shape, paged<16>, block_of<group64_shape>>({90, 7}, 43, options) > 2);
}

TEST_CASE("simt group decode: a window with learned sinks (gpt-oss-like), split and not",
          "[simt]") {
  auto options = sixteen_bit();
  options.sink_logits.assign(32, 0.0f);
  for (int h = 0; h < 32; ++h)
    options.sink_logits[static_cast<std::size_t>(h)] = 0.25f * static_cast<float>(h) - 4.0f;
  check_decode<group16_sinks_shape, paged<16>, block_of<group16_sinks_shape>>({1, 31, 32, 33, 100},
                                                                              44, options);
  options.min_split_tokens = 16;
  options.workers = 8;
  check_decode<group16_sinks_shape, paged<16>, block_of<group16_sinks_shape>>({100}, 45, options);
}

TEST_CASE("simt group decode: a group of 9 with a window, pages of 8 and HND pages", "[simt]") {
  check_decode<group9_window_shape, paged<8>, block_of<group9_window_shape, paged<8>>>(
      {39, 40, 41, 130}, 46, sixteen_bit());
  using hnd = paged<32, page_layout::hnd>;
  check_decode<group9_window_shape, hnd, block_of<group9_window_shape, hnd>>({5, 77}, 47,
                                                                             sixteen_bit());
}

TEST_CASE("simt group decode: dim 256 with soft-cap, tiles of 32", "[simt]") {
  check_decode<group12_wide_shape, paged<16>, block_of<group12_wide_shape>>({31, 32, 33, 90}, 48,
                                                                            sixteen_bit());
}

TEST_CASE("simt group decode: fp16 keys with bf16 values", "[simt]") {
  check_decode<group12_mixed_shape, paged<16>, block_of<group12_mixed_shape>>({20, 70}, 50,
                                                                              sixteen_bit());
}

TEST_CASE("simt group decode: chunked attention, K and V of different dims", "[simt]") {
  check_decode<group10_chunked_shape, paged<16>, block_of<group10_chunked_shape>>(
      {23, 24, 25, 48, 49, 100}, 49, sixteen_bit());
}

TEST_CASE("simt latent decode: DeepSeek V2-Lite's 16 heads of 512 + 64", "[simt][tsan]") {
  check_decode<latent_16, paged<16>, block_of<latent_16>>({1, 31, 32, 33, 100}, 21, sixteen_bit());
}

TEST_CASE("simt latent decode: DeepSeek V3's 128 heads, two row chunks", "[simt]") {
  check_decode<latent_128, paged<64>, block_of<latent_128, paged<64>>>({70, 1}, 22, sixteen_bit());
}

TEST_CASE("simt latent decode: Kimi K2's 64 heads split along the sequence and merged", "[simt]") {
  auto options = sixteen_bit();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<latent_64, paged<16>, block_of<latent_64>>({150, 9}, 23, options) > 4);
}

TEST_CASE("simt latent decode: 24 heads, a row group half full", "[simt][tsan]") {
  check_decode<latent_24, paged<16>, block_of<latent_24>>({45, 2}, 24, sixteen_bit());
}

TEST_CASE("simt latent decode: 80 heads, a second row chunk of one row group", "[simt]") {
  check_decode<latent_80, paged<32>, block_of<latent_80, paged<32>>>({40}, 25, sixteen_bit());
}

TEST_CASE("simt latent decode: learned sinks, split and not", "[simt]") {
  auto options = sixteen_bit();
  options.sink_logits.assign(16, 0.0f);
  for (int h = 0; h < 16; ++h)
    options.sink_logits[static_cast<std::size_t>(h)] = 0.5f * static_cast<float>(h) - 3.0f;
  check_decode<sink_latent, paged<16>, block_of<sink_latent>>({1, 60}, 26, options);
  options.min_split_tokens = 16;
  options.workers = 8;
  CHECK(check_decode<sink_latent, paged<16>, block_of<sink_latent>>({90}, 27, options) > 1);
}

TEST_CASE("simt latent decode: pages of 1, 8 and 64 tokens, HND pages", "[simt]") {
  check_decode<small_latent, paged<1>, block_of<small_latent, paged<1>>>({1, 5, 70}, 28,
                                                                         sixteen_bit());
  check_decode<small_latent, paged<8>, block_of<small_latent, paged<8>>>({7, 8, 9, 130}, 29,
                                                                         sixteen_bit());
  check_decode<latent_16, paged<64>, block_of<latent_16, paged<64>>>({63, 64, 65}, 30,
                                                                     sixteen_bit());
  using hnd = paged<16, page_layout::hnd>;
  check_decode<small_latent, hnd, block_of<small_latent, hnd>>({17, 100}, 31, sixteen_bit());
}

TEST_CASE("simt latent decode: odd mma steps (latent 64 + 16) over tiles of 64 keys",
          "[simt][tsan]") {
  check_decode<small_latent, paged<16>, block_of<small_latent>>({1, 63, 64, 65, 200}, 32,
                                                                sixteen_bit());
}

TEST_CASE("simt latent decode: a sliding window, longer and shorter than the window", "[simt]") {
  check_decode<window_latent, paged<16>, block_of<window_latent>>({39, 40, 41, 130}, 33,
                                                                  sixteen_bit());
}

TEST_CASE("simt latent decode: soft-cap", "[simt]") {
  check_decode<capped_latent, paged<16>, block_of<capped_latent>>({5, 77}, 34, sixteen_bit());
}

TEST_CASE("simt latent decode: large and small spreads of the queries and the latents", "[simt]") {
  auto options = sixteen_bit();
  options.q_spread = 4.0f;
  options.kv_spread = 2.0f;
  check_decode<latent_16, paged<16>, block_of<latent_16>>({50}, 35, options);
  options.q_spread = 0.01f;
  options.kv_spread = 0.01f;
  check_decode<latent_16, paged<16>, block_of<latent_16>>({50}, 36, options);
}

TEST_CASE("simt latent decode: 8-bit latents (fp8 with layer scales, int8, int4)", "[simt][tsan]") {
  check_decode<latent_16, paged<16>, block_of<latent_16>>({1, 33, 100}, 37, every_eight_bit());
}

TEST_CASE("simt latent decode: DeepSeek V3's 128 heads in fp8, split and merged", "[simt]") {
  auto options = eight_bit<fp8_e4m3>();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<latent_128, paged<64>, block_of<latent_128, paged<64>>>({90, 3}, 38, options) >
        4);
}

TEST_CASE("simt latent decode: 8-bit latents in a window, HND pages", "[simt]") {
  check_decode<window_latent, paged<16>, block_of<window_latent>>({39, 41, 130}, 39,
                                                                  eight_bit<fp8_e5m2, kvc::int4>());
  using hnd = paged<16, page_layout::hnd>;
  check_decode<small_latent, hnd, block_of<small_latent, hnd>>({17, 100}, 40,
                                                               eight_bit<fp8_e4m3, int8>());
}

TEST_CASE("simt group decode: 8-bit groups of 16 at dim 128, split and not", "[simt][tsan]") {
  check_decode<group16_shape, paged<16>, block_of<group16_shape>>({1, 65, 150}, 51,
                                                                  every_eight_bit());
  auto options = eight_bit<fp8_e4m3, int8>();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<group16_shape, paged<16>, block_of<group16_shape>>({120}, 52, options) > 2);
}

TEST_CASE("simt group decode: 8-bit windows with learned sinks, chunks, soft-cap", "[simt]") {
  auto options = eight_bit<kvc::int4, fp8_e4m3>();
  options.sink_logits.assign(32, 0.0f);
  for (int h = 0; h < 32; ++h)
    options.sink_logits[static_cast<std::size_t>(h)] = 0.25f * static_cast<float>(h) - 4.0f;
  check_decode<group16_sinks_shape, paged<16>, block_of<group16_sinks_shape>>({1, 33, 100}, 53,
                                                                              options);
  check_decode<group10_chunked_shape, paged<16>, block_of<group10_chunked_shape>>(
      {23, 25, 49}, 54, eight_bit<int8, fp8_e5m2>());
  check_decode<group12_wide_shape, paged<16>, block_of<group12_wide_shape>>(
      {31, 90}, 55, eight_bit<fp8_e4m3, kvc::int4>());
}

TEST_CASE("simt group decode: bf16 keys with int8 values", "[simt]") {
  decode_options<fp32> options;  // the first layer: every layer is bf16 / int8
  check_decode<group12_bf16_int8_shape, paged<16>, block_of<group12_bf16_int8_shape>>({20, 70}, 56,
                                                                                      options);
}
