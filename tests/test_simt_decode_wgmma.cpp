// The latent (MLA) decode on Hopper's warpgroup matrix multiply-accumulate
// (kernels/decode_wgmma.hpp: the default in sm_90a code of latents of 64 heads or more, an
// opt-in by warpgroup_decode_block anywhere) in the SIMT emulator against
// the double-precision reference, within the tensor cores' bounds
// (tests/simt_decode_check.hpp): DeepSeek's 512 + 64 latent at 16, 64 and 128 heads (row
// chunks of 64, part empty), fp16, bf16, fp8 e4m3 and e5m2, key counts around the tiles of 32,
// pages of 16 and 64 and HND pages, split-K and the merge, learned sinks, a window, a soft-capped
// latent of 128 + 64.

#include <catch2/catch.hpp>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "attention_shapes.hpp"
#include "kvc/kernels/decode.hpp"
#include "simt_decode_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::simt_decode;

namespace {

using shapes::deepseek_latent;
template <class S>
using latent_16 = deepseek_latent<16>::shape<S>;
template <class S>
using latent_64 = deepseek_latent<64>::shape<S>;
template <class S>
using latent_128 = deepseek_latent<128>::shape<S>;
template <class S>
using sink_latent = layer<mqa<16>, latent<512, 64>, S, inv_sqrt_scale<192>, learned_sinks>;
template <class S>
using window_latent = layer<mqa<16>, latent<256, 64>, sliding_window<40>, S, inv_sqrt_scale<64>>;
template <class S>
using capped_latent = layer<mqa<32>, latent<128, 64>, S, logit_softcap<30>, inv_sqrt_scale<96>>;

template <template <class> class Shape, class Paging = paged<16>>
using shape_of = kernels::decode_shape_of<Shape<storage<bf16>>, Paging>;
template <template <class> class Shape, class Paging = paged<16>>
using warpgroups = kernels::warpgroup_decode_block<shape_of<Shape, Paging>>;

decode_options<fp16, bf16> sixteen_bit() { return {}; }

}  // namespace

TEST_CASE("a warpgroup_decode_block opts a latent into the warpgroup decode") {
  using kernels::decode_path;
  using kernels::decode_path_of;
  STATIC_REQUIRE(decode_path_of<shape_of<latent_128>, warpgroups<latent_128>> ==
                 decode_path::warpgroups);
  STATIC_REQUIRE(decode_path_of<shape_of<latent_128>> == decode_path::tensor_cores);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_128>, warpgroups<latent_128>>::row_chunks == 2);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_16>, warpgroups<latent_16>>::row_chunks == 1);
  // Three buffers of 32 tokens of DeepSeek's latent, its 64 query rows and the score exchange
  // fit Hopper's shared memory (227 KiB a block), not sm_80's 163 KiB.
  STATIC_REQUIRE(kernels::decode<shape_of<latent_128>, warpgroups<latent_128>>::shared_bytes <=
                 simt::sm_90.max_shared_bytes_per_block);
  STATIC_REQUIRE(kernels::decode<shape_of<latent_128>, warpgroups<latent_128>>::shared_bytes >
                 simt::sm_80.max_shared_bytes_per_block);
  // fp8 latents are converted into fp16 tiles (two of them and two raw buffers); int8 and
  // int4 latents and dims the kernel does not take stay on the other kernels.
  using fp8_latent = kernels::decode_shape_of<latent_128<storage<fp8_e4m3>>, paged<16>>;
  STATIC_REQUIRE(kernels::wgmma_decode_supports<fp8_latent>);
  STATIC_REQUIRE(kernels::wgmma_decode_tiling<fp8_latent>::tiles == 2);
  STATIC_REQUIRE(
      kernels::decode<fp8_latent, kernels::warpgroup_decode_block<fp8_latent>>::shared_bytes <=
      simt::sm_90.max_shared_bytes_per_block);
  STATIC_REQUIRE(!kernels::wgmma_decode_supports<
                 kernels::decode_shape_of<latent_128<storage<int8>>, paged<16>>>);
  STATIC_REQUIRE(
      !kernels::wgmma_decode_supports<kernels::decode_shape_of<
          layer<mqa<16>, latent<96, 32>, storage<bf16>, inv_sqrt_scale<64>>, paged<16>>>);
}

TEST_CASE(
    "in sm_90a code the warpgroup kernel is the default decode of latents of 64 heads or "
    "more") {
  using kernels::decode_wgmma_in_sm90a_code;
  STATIC_REQUIRE(decode_wgmma_in_sm90a_code<shape_of<latent_128>>);
  STATIC_REQUIRE(decode_wgmma_in_sm90a_code<shape_of<latent_64>>);
  STATIC_REQUIRE(std::is_same_v<
                 kernels::decode<shape_of<latent_128>>,
                 kernels::decode_mma_or_wgmma<shape_of<latent_128>, kernels::block_shape<256>>>);
  // Its shared memory: the mma.sync kernel's for every target, the warpgroup kernel's where
  // the device gives it (the CUDA launcher asks).
  using kernel = kernels::decode<shape_of<latent_128>>;
  STATIC_REQUIRE(
      kernel::shared_bytes ==
      kernels::decode_mma<shape_of<latent_128>, kernels::block_shape<256>>::shared_bytes);
  STATIC_REQUIRE(kernel::sm90a_shared_bytes ==
                 kernels::decode<shape_of<latent_128>, warpgroups<latent_128>>::shared_bytes);
  // fp8 latents too; 16 heads would fill a quarter of its rows; a tensor_core_block keeps
  // mma.sync; int8 latents are not the warpgroup kernel's.
  STATIC_REQUIRE(decode_wgmma_in_sm90a_code<
                 kernels::decode_shape_of<latent_128<storage<fp8_e5m2>>, paged<16>>>);
  STATIC_REQUIRE(!decode_wgmma_in_sm90a_code<shape_of<latent_16>>);
  STATIC_REQUIRE(!decode_wgmma_in_sm90a_code<shape_of<latent_128>,
                                             kernels::tensor_core_block<shape_of<latent_128>>>);
  STATIC_REQUIRE(
      std::is_same_v<
          kernels::decode<shape_of<latent_128>, kernels::tensor_core_block<shape_of<latent_128>>>,
          kernels::decode_mma<shape_of<latent_128>,
                              kernels::tensor_core_block<shape_of<latent_128>>>>);
  STATIC_REQUIRE(
      !decode_wgmma_in_sm90a_code<kernels::decode_shape_of<latent_128<storage<int8>>, paged<16>>>);
}

TEST_CASE("simt warpgroup MLA decode: DeepSeek's latent at 64 heads, fp16 and bf16",
          "[simt][tsan]") {
  check_decode<latent_64, paged<16>, warpgroups<latent_64>>({1, 31, 32, 33, 100}, 71,
                                                            sixteen_bit());
}

TEST_CASE("simt warpgroup MLA decode: 16 and 128 heads, pages of 64 and HND pages", "[simt]") {
  check_decode<latent_16, paged<64>, warpgroups<latent_16, paged<64>>>({64, 65, 130}, 72,
                                                                       sixteen_bit());
  using hnd = paged<32, page_layout::hnd>;
  check_decode<latent_128, hnd, warpgroups<latent_128, hnd>>({40, 97}, 73, sixteen_bit());
}

TEST_CASE(
    "simt warpgroup MLA decode: pages of 12 and 5 tokens, which leave a tile's last "
    "slots empty",
    "[simt]") {
  check_decode<latent_64, paged<12>, warpgroups<latent_64, paged<12>>>({11, 12, 25, 70}, 80,
                                                                       sixteen_bit());
  decode_options<fp8_e5m2> options;
  options.k_scale = 1.5f;
  check_decode<latent_64, paged<5>, warpgroups<latent_64, paged<5>>>({4, 31, 33, 66}, 81, options);
}

TEST_CASE("simt warpgroup MLA decode: split and merged, learned sinks", "[simt]") {
  auto options = sixteen_bit();
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<latent_64, paged<16>, warpgroups<latent_64>>({90, 7}, 74, options) > 2);
  options.sink_logits.assign(16, 0.0f);
  for (int h = 0; h < 16; ++h)
    options.sink_logits[static_cast<std::size_t>(h)] = 0.5f * static_cast<float>(h) - 4.0f;
  check_decode<sink_latent, paged<16>, warpgroups<sink_latent>>({1, 70}, 75, options);
}

TEST_CASE("simt warpgroup MLA decode: a window and a soft-capped latent", "[simt]") {
  check_decode<window_latent, paged<16>, warpgroups<window_latent>>({39, 40, 41, 120}, 76,
                                                                    sixteen_bit());
  check_decode<capped_latent, paged<16>, warpgroups<capped_latent>>({1, 45, 100}, 77,
                                                                    sixteen_bit());
}

TEST_CASE(
    "simt warpgroup MLA decode: fp8 e4m3 and e5m2 latents, layer scales, converted into "
    "fp16 tiles",
    "[simt]") {
  decode_options<fp8_e4m3, fp8_e5m2> options;
  options.k_scale = 0.37f;
  options.v_scale = 2.5f;
  options.min_split_tokens = 16;
  options.workers = 4;
  CHECK(check_decode<latent_64, paged<16>, warpgroups<latent_64>>({1, 33, 90}, 78, options) > 3);
  check_decode<latent_128, paged<64>, warpgroups<latent_128, paged<64>>>({64, 130}, 79, options);
}
