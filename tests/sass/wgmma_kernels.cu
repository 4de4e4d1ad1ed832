// Two kernels written against the SIMT context's wgmma the way docs/simt.md says to, in the
// shapes of DeepSeek's absorbed MLA decode on one warpgroup of 64 query heads and a tile of
// 64 tokens: the scores, Q (64 x 576, by descriptor) times the tile's keys (576 dims, as nine
// 64-dim slices of 128-byte swizzled rows), 36 m64n64k16; and O += P V, P (64 x 64, from
// registers) times 256 of V's dims (the same rows read MN-major), 4 m64n256k16.
// And the warpgroup MLA decode itself (kernels/decode_wgmma.hpp) for a DeepSeek V3 layer, the
// warpgroup extend (kernels/extend_wgmma.hpp) for a Llama 3 8B layer, and a block whose
// warpgroups hand registers over (setmaxnreg) and meet at named barriers.
// scripts/wgmma-sass-check.sh compiles them for sm_90a and reads the SASS.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../simt_named_barriers.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/extend.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "kvc/models/deepseek.hpp"

namespace kvc::testing {

inline constexpr std::uint32_t tile_rows = 64, slice_bytes = tile_rows * 128;  // 64 x 64 dims

template <class Context>
__device__ std::byte* aligned_tiles(const Context& ctx) {
  std::byte* shared = ctx.dynamic_shared();
  return shared + (1024 - ctx.shared_address(shared) % 1024) % 1024;
}

struct wgmma_scores_kernel {
  float* out;
  template <class Context>
  __device__ void operator()(const Context& ctx) const {
    std::byte* q = aligned_tiles(ctx);
    std::byte* keys = q + 9 * slice_bytes;
    kernels::wgmma_d<64> scores;
    ctx.wgmma_fence(scores);
    kernels::unroll<36>([&](int step) {
      const std::uint32_t offset = static_cast<std::uint32_t>(step / 4) * slice_bytes +
                                   static_cast<std::uint32_t>(step % 4) * 32;
      const auto a = kernels::make_wgmma_descriptor(ctx.shared_address(q) + offset, 16, 1024,
                                                    kernels::wgmma_swizzle::bytes_128);
      const auto b = kernels::make_wgmma_descriptor(ctx.shared_address(keys) + offset, 16, 1024,
                                                    kernels::wgmma_swizzle::bytes_128);
      ctx.template wgmma<kernels::mma_input::bf16, kernels::wgmma_major::k,
                         kernels::wgmma_major::k>(a, b, scores, step > 0);
    });
    ctx.wgmma_commit();
    ctx.template wgmma_wait<0>(scores);
    for (int i = 0; i < 32; ++i) out[ctx.thread_rank() * 32 + i] = scores.reg[i];
  }
};

struct wgmma_values_kernel {
  const kernels::mma_a* weights;  ///< per thread, 4 K steps
  float* out;
  template <class Context>
  __device__ void operator()(const Context& ctx) const {
    const std::byte* values = aligned_tiles(ctx);
    kernels::mma_a p[4];
    for (int s = 0; s < 4; ++s) p[s] = weights[ctx.thread_rank() * 4 + s];
    kernels::wgmma_d<256> o;
    for (int i = 0; i < 128; ++i) o.reg[i] = 0.0f;
    ctx.wgmma_fence(o);
    kernels::unroll<4>([&](int step) {
      // Tokens 16 step on (two 8-row groups of 1024 bytes), dims 64 at a time one slice on.
      const auto b = kernels::make_wgmma_descriptor(
          ctx.shared_address(values) + static_cast<std::uint32_t>(step) * 2048, slice_bytes, 1024,
          kernels::wgmma_swizzle::bytes_128);
      ctx.template wgmma<kernels::mma_input::bf16, kernels::wgmma_major::mn>(p[step], b, o, true);
    });
    ctx.wgmma_commit();
    ctx.template wgmma_wait<0>(o);
    for (int i = 0; i < 128; ++i) out[ctx.thread_rank() * 128 + i] = o.reg[i];
  }
};

void launch_wgmma_kernels(const kernels::mma_a* weights, float* out) {
  cuda::launch({1, 1, 1}, kernels::block_shape<128>{}, 19 * slice_bytes, nullptr,
               wgmma_scores_kernel{out});
  cuda::launch({1, 1, 1}, kernels::block_shape<128>{}, 5 * slice_bytes, nullptr,
               wgmma_values_kernel{weights, out});
}

// The decode of a DeepSeek V3 layer, pages of 64, in its default block: in sm_90a code the
// warpgroup MLA decode (kernels/decode_wgmma.hpp), so a dispatch that lost it would leave no
// 64x32x16 HGMMA here. The opt-in (warpgroup_decode_block) compiles the same body.
using deepseek_v3_shape = kernels::decode_shape_of<models::mla_layer<128>, paged<64>>;
using deepseek_v3_kernel = kernels::decode<deepseek_v3_shape>;
static_assert(kernels::decode_wgmma_in_sm90a_code<deepseek_v3_shape>);

// The same layer in fp8 e4m3: tiles converted into fp16 in shared memory, fp16 wgmma.
using deepseek_v3_fp8_shape = kernels::decode_shape_of<
    layer<mqa<128>, latent<512, 64>, storage<fp8_e4m3>, inv_sqrt_scale<192>>, paged<64>>;
using deepseek_v3_fp8_kernel = kernels::decode<deepseek_v3_fp8_shape>;
static_assert(kernels::decode_wgmma_in_sm90a_code<deepseek_v3_fp8_shape>);

void launch_wgmma_decode(const kernels::decode_work& work) {
  cuda::launch({1, 1, 1}, kernels::decode_block<deepseek_v3_shape>{},
               deepseek_v3_kernel::sm90a_shared_bytes, nullptr, deepseek_v3_kernel{work});
  cuda::launch({1, 1, 1}, kernels::decode_block<deepseek_v3_fp8_shape>{},
               deepseek_v3_fp8_kernel::sm90a_shared_bytes, nullptr, deepseek_v3_fp8_kernel{work});
}

// The warpgroup extend (kernels/extend_wgmma.hpp) of a Llama 3 8B layer (dim 128, bf16, pages
// of 16): in each of its two bodies, 8 m64n64k16 for the first tile's scores, 8 m64n64k16 and
// 4 m64n128k16 in the loop (this tile's scores, the last tile's P V), 4 m64n128k16 for the
// last P V; the same in fp16 for its fp8 e4m3 twin.
using llama3_8b_shape =
    kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<bf16>>, paged<16>>;
using llama3_8b_extend_block = kernels::warpgroup_extend_block<llama3_8b_shape>;
using llama3_8b_extend = kernels::extend<llama3_8b_shape, llama3_8b_extend_block>;
static_assert(std::is_same_v<llama3_8b_extend,
                             kernels::extend_wgmma<llama3_8b_shape, llama3_8b_extend_block>>);
// The same layer in fp8 e4m3: tiles converted into fp16 in shared memory, fp16 wgmma.
using llama3_8b_fp8_shape =
    kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<fp8_e4m3>>, paged<16>>;
using llama3_8b_fp8_extend_block = kernels::warpgroup_extend_block<llama3_8b_fp8_shape>;
using llama3_8b_fp8_extend = kernels::extend<llama3_8b_fp8_shape, llama3_8b_fp8_extend_block>;
// And in int8 and int4, with per-token scales.
using llama3_8b_int8_shape =
    kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<int8>>, paged<16>>;
using llama3_8b_int8_extend_block = kernels::warpgroup_extend_block<llama3_8b_int8_shape>;
using llama3_8b_int8_extend = kernels::extend<llama3_8b_int8_shape, llama3_8b_int8_extend_block>;
using llama3_8b_int4_shape =
    kernels::decode_shape_of<layer<gqa<32, 8>, head_dim<128>, storage<int4>>, paged<16>>;
using llama3_8b_int4_extend_block = kernels::warpgroup_extend_block<llama3_8b_int4_shape>;
using llama3_8b_int4_extend = kernels::extend<llama3_8b_int4_shape, llama3_8b_int4_extend_block>;
// A Gemma 3 layer of head dim 256 (bf16): tiles of 32 keys, in each body 16 + 16 m64n32k16
// and 2 + 2 m64n256k16.
using gemma3_shape =
    kernels::decode_shape_of<layer<gqa<8, 4>, head_dim<256>, sliding_window<1024>, storage<bf16>>,
                             paged<16>>;
using gemma3_extend_block = kernels::warpgroup_extend_block<gemma3_shape>;
using gemma3_extend = kernels::extend<gemma3_shape, gemma3_extend_block>;
void launch_wgmma_extend(const kernels::extend_work& work) {
  cuda::launch({1, 1, 1}, gemma3_extend_block{}, gemma3_extend::shared_bytes, nullptr,
               gemma3_extend{work});
  cuda::launch({1, 1, 1}, llama3_8b_extend_block{}, llama3_8b_extend::shared_bytes, nullptr,
               llama3_8b_extend{work});
  cuda::launch({1, 1, 1}, llama3_8b_fp8_extend_block{}, llama3_8b_fp8_extend::shared_bytes, nullptr,
               llama3_8b_fp8_extend{work});
  cuda::launch({1, 1, 1}, llama3_8b_int8_extend_block{}, llama3_8b_int8_extend::shared_bytes,
               nullptr, llama3_8b_int8_extend{work});
  cuda::launch({1, 1, 1}, llama3_8b_int4_extend_block{}, llama3_8b_int4_extend::shared_bytes,
               nullptr, llama3_8b_int4_extend{work});
}

// A warp-specialised block of three warpgroups (tests/simt_named_barriers.hpp): its producer
// warpgroup lowers its registers to 40 and its consumers raise theirs to 232, one
// USETMAXREG.DEALLOC and one USETMAXREG.TRY_ALLOC (ptxas drops both where the launch bound
// names no blocks an SM), and they meet at named barriers (BAR.ARV).
void launch_register_handover(const float* source, float* sums) {
  using ring = named_barrier_ring<true>;
  cuda::launch({1, 1, 1}, kernels::block_shape<ring::block_threads>{}, ring::shared_bytes, nullptr,
               ring{source, sums, 4});
}

}  // namespace kvc::testing
