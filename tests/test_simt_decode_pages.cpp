// The decode and merge kernels (kernels/decode.hpp) in the SIMT emulator against the
// reference backend (tests/simt_decode_check.hpp). Run under ThreadSanitizer by .ci/run.
// Pages of 4 to 512 tokens, split-K with the merge, mixed and odd dtypes and dims, row
// chunks, blocks of 32 to 128 threads, large scores and fp8 scales.

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

TEST_CASE("simt decode: pages of 8 tokens, groups of 8", "[simt]") {
  check_decode<group8_shape, paged<8>>({9, 100}, 13);
}
TEST_CASE("simt decode: pages of 512 tokens, split inside a page", "[simt]") {
  decode_options<> options;
  options.min_split_tokens = 64;
  CHECK(check_decode<llama_shape, paged<512>>({1, 300, 512}, 14, options) > 3);
}
TEST_CASE("simt decode: HND pages of 64 tokens, a long sequence", "[simt]") {
  check_decode<llama_shape, paged<64, page_layout::hnd>>({65, 300}, 15);
}
TEST_CASE("simt decode: split-K over many splits, merged", "[simt]") {
  decode_options<> options;
  options.min_split_tokens = 16;
  options.workers = 16;
  CHECK(check_decode<llama_shape>({700, 3}, 16, options) >= 30);
  CHECK(check_decode<deepseek_shape>({300}, 17, options) >= 16);
}
TEST_CASE("simt decode: keys and values stored in different dtypes, both layouts", "[simt]") {
  check_decode<mixed_dtype_shape>({1, 40, 129}, 18);
  check_decode<mixed_dtype_shape, paged<16, page_layout::hnd>>({77}, 19);
}
TEST_CASE("simt decode: vectors that are not 16-byte multiples", "[simt]") {
  check_decode<odd_dims_shape>({1, 19, 70}, 20);
}
TEST_CASE("simt decode: a group cut into row chunks", "[simt]") {
  // The streamed kernel holds 9 rows of 4 fp32 key values and 6 output values a lane, 6 rows
  // of 8 fp16 and 6 output values; the tiled one takes int4's V of 6 nibbles a lane. Blocks
  // of 3 warps keep the group of 24 off the tensor cores (test_simt_decode_mma has it there).
  using block = kernels::block_shape<96>;
  using fp32_shape = kernels::decode_shape_of<row_chunks_shape<storage<fp32>>, paged<16>>;
  using fp16_shape = kernels::decode_shape_of<row_chunks_shape<storage<fp16>>, paged<16>>;
  using int4_shape = kernels::decode_shape_of<row_chunks_shape<storage<kvc::int4>>, paged<16>>;
  STATIC_REQUIRE(kernels::decode<fp32_shape, block>::row_chunks == 3);
  STATIC_REQUIRE(kernels::decode<fp16_shape, block>::row_chunks == 4);
  STATIC_REQUIRE(kernels::streamed_decode<fp16_shape, block>);
  STATIC_REQUIRE(!kernels::streamed_decode<int4_shape, block>);
  STATIC_REQUIRE(kernels::decode_path_of<fp16_shape, kernels::block_shape<64>> ==
                 kernels::decode_path::tensor_cores);
  check_decode<row_chunks_shape, paged<16>, block>({1, 50, 90}, 21);
}
TEST_CASE("simt decode: blocks of one warp and of four", "[simt]") {
  check_decode<llama_shape, paged<16>, kernels::block_shape<32>>({40, 90}, 22);
  check_decode<gpt2_shape, paged<32>, kernels::block_shape<128>>({5, 70}, 23);
}
TEST_CASE("simt decode: scores of very large magnitude", "[simt]") {
  decode_options<> options;
  options.q_spread = 300.0f;
  check_decode<llama_shape>({50, 100}, 24, options);
}
TEST_CASE("simt decode: fp8 layers with scales other than 1", "[simt]") {
  decode_options<> options;
  options.k_scale = 0.37f;
  options.v_scale = 2.5f;
  check_decode<gemma2_shape>({10, 47, 100}, 25, options);
}
