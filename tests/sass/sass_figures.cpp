// What the static SASS check needs to know of the decode kernels of sass_kernels.cu besides
// their SASS, one line per kernel:
//   <dtype> <dynamic shared bytes> <K/V bytes one thread reads per loop iteration> <kind>
// The streamed kernel's iteration is a warp's stage over 32 lanes; the tiled kernel's, a tile
// of the block over its threads. The tensor-core kernels give their shared memory and their
// block's threads instead ("extend"; "latent", "group16" and "group8": the tensor-core decode
// of DeepSeek V3's latent, Llama 3 405B's groups of 16 and Llama 3 70B's of 8;
// "latent_extend": the extend of that latent; in bf16 and fp8 e4m3).

#include <cstddef>
#include <cstdio>

#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/extend.hpp"
#include "kvc/model/layer.hpp"

namespace {
using namespace kvc;

template <class Storage>
void print(const char* name) {
  using shape = kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, Storage>, paged<16>>;
  using kernel = kernels::decode<shape>;
  constexpr std::size_t vectors = shape::k_vector_bytes + shape::v_vector_bytes;
  if constexpr (requires { kernel::tiling::stage_tokens; })
    std::printf("%s %zu %zu streamed\n", name, kernel::shared_bytes,
                kernel::tiling::stage_tokens * vectors / 32);
  else
    std::printf("%s %zu %zu tiled\n", name, kernel::shared_bytes, kernel::slots * vectors / 128);
}

template <class Storage>
void print_extend(const char* name) {
  using shape = kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, Storage>, paged<16>>;
  std::printf("%s %zu 128 extend\n", name, kernels::extend<shape>::shared_bytes);
}

template <class Storage>
void print_latent(const char* name) {
  using shape =
      kernels::decode_shape_of<layer<mqa<128>, latent<512, 64>, Storage, inv_sqrt_scale<192>>,
                               paged<64>>;
  std::printf("%s %zu %u latent\n", name, kernels::decode<shape>::shared_bytes,
              kernels::decode_block<shape>::threads);
  std::printf("%s %zu %u latent_extend\n", name, kernels::extend<shape>::shared_bytes,
              kernels::extend_block<shape>::threads);
  using group_shape =
      kernels::decode_shape_of<layer<gqa<128, 8>, head_dim<128>, Storage>, paged<16>>;
  std::printf("%s %zu %u group16\n", name, kernels::decode<group_shape>::shared_bytes,
              kernels::decode_block<group_shape>::threads);
  using group8_shape =
      kernels::decode_shape_of<layer<gqa<64, 8>, head_dim<128>, Storage>, paged<16>>;
  std::printf("%s %zu %u group8\n", name, kernels::decode<group8_shape>::shared_bytes,
              kernels::decode_block<group8_shape>::threads);
}
}  // namespace

int main() {
  print<storage<fp16>>("fp16");
  print<storage<bf16>>("bf16");
  print<storage<fp8_e4m3>>("fp8_e4m3");
  print<storage<int8>>("int8");
  print_extend<storage<fp16>>("fp16");
  print_extend<storage<bf16>>("bf16");
  print_latent<storage<bf16>>("bf16");
  print_latent<storage<fp8_e4m3>>("fp8_e4m3");
}
