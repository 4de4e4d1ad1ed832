#pragma once
// The decode kernels: one new query token per sequence over a paged layer view (the
// committed table or an open step's), split along the sequence (split-K), then merged.
//
//   kernels::plan_device_decode<shape>(view, q_heads, slots, plan);   // or attention::plan_decode
//   auto work = kernels::make_decode_work<shape>(plan, kernels::plan_arrays_of(plan), view,
//                                                q, out, lse, params, partial);
//   launch(kernels::decode_grid<shape>(work), block, kernels::decode<shape>::shared_bytes,
//          kernels::decode<shape, block>{work});   // on a GPU: kvc::cuda::decode_shared_bytes
//   launch(kernels::merge_grid(work), block, 0, kernels::merge{work});   // when split
//
// A plan's items are ranges of 16-token key blocks over the kept pages, a sequence's splits
// consecutive (kvc/attention/decode_plan.hpp); any plan made for the view works. One block
// runs one (item, KV head, row chunk) and reads the KV head's keys and values once for all the
// rows of the chunk. An item that is its sequence's only split writes out and lse itself
// (sinks included); the splits of the others go to the workspace in the CPU's slot format and
// the merge kernel combines them.
//
// decode<Shape, Block> is one of three kernels, chosen at compile time from the shape
// (decode_path_of<Shape> says which), or a fourth by opt-in:
// - decode_mma (kernels/decode_mma.hpp), on tensor cores, where the query group makes the
//   scores and weighted sums matrix products worth their 16-bit rounding of the query and the
//   weights: latent (MLA) layers of 16 query heads or more, and attention layers with groups
//   of more than 4 (Llama 3 70B, Qwen2.5, Qwen3-32B, gpt-oss, Llama 3 405B), K and V in any
//   dtype but fp32;
// - decode_streamed (kernels/decode_streamed.hpp), made to read memory at its bandwidth:
//   attention layers of a fixed page size whose K and V vectors are whole 16-byte pieces and
//   whose v_dim is a multiple of 32 (every gallery layer but MLA);
// - decode_tiled (kernels/decode_tiled.hpp), the general path: other MLA layers, odd dims, a
//   page size not known at compile time;
// - decode_wgmma (kernels/decode_wgmma.hpp), fp16, bf16 and fp8 latents on Hopper's wgmma (sm_90a):
//   by default in device code built for sm_90a for the latents it takes at 64 query heads or
//   more (DeepSeek V2/V3, Kimi K2: decode_mma_or_wgmma, still decode_path::tensor_cores), or
//   anywhere by opt-in, where the Block is a warpgroup_decode_block.
// The block a shape's kernel is made for is decode_block<Shape> (128 threads; 64 per 16 query
// heads, up to 256, for the tensor-core kernel); the launchers take it by default.
// Specialized at compile time on what the layer's typedef fixes (decode_shape: dtypes, group
// size, dims, latent, layout, page size, whether a window masks): any group size works.
// Positions a window drops are never listed; a listed token outside the query's window is
// masked. Soft-cap, scale and learned sinks are run-time parameters (attention_params).

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_mma.hpp"
#include "kvc/kernels/decode_streamed.hpp"
#include "kvc/kernels/decode_tiled.hpp"
#include "kvc/kernels/decode_wgmma.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::kernels {

/// The decode kernels.
enum class decode_path : std::uint8_t {
  tensor_cores,  ///< decode_mma: MLA and large groups on tensor cores (decode_wgmma in sm_90a
                 ///< code where decode_wgmma_in_sm90a_code)
  streamed,      ///< decode_streamed: at the memory's bandwidth, CUDA cores
  tiled,         ///< decode_tiled: the general path, CUDA cores
  warpgroups,    ///< decode_wgmma by opt-in (warpgroup_decode_block), in any device code
};

/// The largest query group of an attention layer that the CUDA-core kernels decode by
/// default; larger groups go to the tensor cores (decode_path_of).
inline constexpr int max_streamed_group = 4;

namespace detail {
// The tensor cores pay where the CUDA cores would be bound by arithmetic: a latent of 16 heads
// or more (its 576 dims a head), or a group of more than 4. Past 4 rows the streamed kernel
// issues 7 to 8 instructions per 16-bit K/V byte (groups of 7 and 8 spill), and 8-bit
// storage reads K/V once per row chunk of 4; the tensor-core kernel issues 1.5 (16-bit) and
// 3.4 to 5.1 (8-bit) for any group up to 16 (docs/benchmarks.md, sm_90).
template <class Shape>
inline constexpr bool mma_decode_shape = mma_decode_supports<Shape> &&
                                         (Shape::latent ? Shape::group >= 16
                                                        : Shape::group > max_streamed_group);
}  // namespace detail

/// The block a shape's decode kernel is made for, what the launchers take by default.
template <class Shape>
using decode_block =
    std::conditional_t<detail::mma_decode_shape<Shape>, mma_decode_block<Shape>, block_shape<128>>;

/// The opt-in to the tensor-core decode for a layer whose group the CUDA cores take by default
/// (groups of 2 to 4, latents under 16 heads), as the Block of the launchers and planners:
///   kvc::cuda::plan_decode<shape, kvc::kernels::tensor_core_block<shape>>(view, heads, plan);
///   kvc::cuda::decode<shape, kvc::kernels::tensor_core_block<shape>>(plan, device_plan, ...);
/// Faster where the CUDA cores are bound by arithmetic (8-bit storage: about half the
/// instructions a K/V byte at a group of 4), at the tensor cores' looser bound: the query and
/// the weights rounded to 16 bits (fp16 for 8-bit storage; docs/simt.md). Shape must be one
/// the tensor-core kernel takes (a compile-time error names what it takes); the block, given
/// for another layer's shape, opts that layer in where the kernel takes it too.
template <class Shape>
struct tensor_core_block : mma_decode_block<Shape> {
  static_assert(mma_decode_supports<Shape>,
                "kvc::kernels::tensor_core_block: the tensor-core decode takes K and V stored in "
                "fp16 or bf16, or in fp8 e4m3, fp8 e5m2, int8 or int4 with vectors of whole "
                "16-byte pieces; k_dim and v_dim multiples of 16, at most 576 and 512 for a "
                "latent layer and 256 otherwise");
};

namespace detail {
template <class Block>
inline constexpr bool opts_into_tensor_cores = false;
template <class Shape>
inline constexpr bool opts_into_tensor_cores<tensor_core_block<Shape>> = true;
template <class Block>
inline constexpr bool opts_into_warpgroups = false;
template <class Shape>
inline constexpr bool opts_into_warpgroups<warpgroup_decode_block<Shape>> = true;
// At 64 heads or more the warpgroup kernel's rows are all used, and its block and row chunks
// are the tensor-core kernel's (two warpgroups, 64 rows): one plan serves both.
template <class Shape, class Block>
inline constexpr bool wgmma_in_sm90a_code =
    wgmma_decode_supports<Shape>&& Shape::group >= 64 && !opts_into_tensor_cores<Block> &&
    Block::threads == 2 * warpgroup_threads && Block::y == 1 && Block::z == 1;
}  // namespace detail

/// Which kernel decode<Shape, Block> is: the warpgroup kernel for a warpgroup_decode_block and
/// a layer it takes, else the tensor-core kernel for the layers it takes
/// (any storage but fp32, vectors of whole 16-byte pieces; latent layers of 16 query heads or
/// more, other layers of groups above max_streamed_group, any of them with a
/// tensor_core_block; a block of 2, 4, 6 or 8 warps), else the streamed kernel where it takes
/// the shape, else the tiled one.
template <class Shape, class Block = decode_block<Shape>>
inline constexpr decode_path decode_path_of =
    detail::opts_into_warpgroups<Block>&& wgmma_decode_supports<Shape> ? decode_path::warpgroups
    : (detail::mma_decode_shape<Shape> ||
       (detail::opts_into_tensor_cores<Block> && mma_decode_supports<Shape>)) &&
            Block::threads % 64 == 0 && Block::threads <= 256 && Block::y == 1 && Block::z == 1
        ? decode_path::tensor_cores
    : streamed_tiling<Shape, Block::warps>::supported ? decode_path::streamed
                                                      : decode_path::tiled;

/// Whether decode<Shape, Block>, on the tensor-core path, runs the warpgroup kernel
/// (decode_wgmma) in device code built for sm_90a and the mma.sync one (decode_mma) in any
/// other: fp16, bf16 and fp8 latents of 64 query heads or more in the default block (DeepSeek V2
/// and V3, Kimi K2). A tensor_core_block keeps such a layer on mma.sync everywhere.
template <class Shape, class Block = decode_block<Shape>>
inline constexpr bool decode_wgmma_in_sm90a_code =
    decode_path_of<Shape, Block> ==
    decode_path::tensor_cores&& detail::wgmma_in_sm90a_code<Shape, Block>;

/// The tensor-core decode of a latent that the warpgroup kernel also takes
/// (decode_wgmma_in_sm90a_code): decode_wgmma in device code built for sm_90a, decode_mma in
/// any other (sm_80, sm_90, the emulator), chosen when the device code is compiled. Both run
/// row chunks of 64 heads in blocks of 256 threads and write the same results, so one plan
/// serves both. The warpgroup kernel's shared memory (sm90a_shared_bytes, three tiles of
/// latents) fits only Hopper's 227 KiB a block: the launchers give a kernel that names
/// sm90a_shared_bytes that much where the device allows it (every compute capability 9.0
/// device, the only one sm_90a code runs on), shared_bytes elsewhere.
template <class Shape, class Block>
struct decode_mma_or_wgmma {
  using mma_kernel = decode_mma<Shape, Block>;
  using wgmma_kernel = decode_wgmma<Shape, Block>;
  static_assert(mma_kernel::row_chunks == wgmma_kernel::row_chunks,
                "kvc::kernels::decode_mma_or_wgmma: both kernels make the same row chunks");
  static constexpr int row_chunks = mma_kernel::row_chunks;
  static constexpr std::size_t shared_bytes = mma_kernel::shared_bytes;
  static constexpr std::size_t sm90a_shared_bytes =
      wgmma_kernel::shared_bytes > shared_bytes ? wgmma_kernel::shared_bytes : shared_bytes;

  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // Launched with the mma.sync kernel's shared memory where sm90a_shared_bytes was due
    // (kvc::cuda::decode_shared_bytes), the warpgroup kernel would run past it: trap instead.
    std::uint32_t given = 0;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(given));
    if (given < wgmma_kernel::shared_bytes) __trap();
    wgmma_kernel{work}(ctx);
#else
    mma_kernel{work}(ctx);
#endif
  }
};

/// Whether decode<Shape, Block> is the streamed kernel.
template <class Shape, class Block = decode_block<Shape>>
inline constexpr bool streamed_decode = decode_path_of<Shape, Block> == decode_path::streamed;

/// The decode kernel of a shape (decode_path_of).
template <class Shape, class Block = decode_block<Shape>>
using decode = std::conditional_t<
    decode_path_of<Shape, Block> == decode_path::warpgroups, decode_wgmma<Shape, Block>,
    std::conditional_t<
        decode_path_of<Shape, Block> == decode_path::tensor_cores,
        std::conditional_t<decode_wgmma_in_sm90a_code<Shape, Block>,
                           decode_mma_or_wgmma<Shape, Block>, decode_mma<Shape, Block>>,
        std::conditional_t<decode_path_of<Shape, Block> == decode_path::streamed,
                           decode_streamed<Shape, Block>, decode_tiled<Shape, Block>>>>;

/// Returns the blocks of a decode launch: x an item of the plan, y a KV head and row chunk.
template <class Shape, class Block = decode_block<Shape>>
dims3 decode_grid(const decode_work& work) {
  return {static_cast<std::uint32_t>(work.items),
          static_cast<std::uint32_t>(work.geometry.kv_heads * decode<Shape, Block>::row_chunks), 1};
}

/// Plans for the device kernels (attention::plan_decode_for_slots): `slots` is how many
/// decode blocks the device runs at once (its SM count times the blocks an SM holds:
/// kvc::cuda::decode_blocks_at_once); a sequence is split only when the batch does not fill
/// them, never below min_split_tokens. Refills `plan`, reusing its memory.
template <class Shape, class Block = decode_block<Shape>>
void plan_device_decode(const paged_layer_view& view, int q_heads, int slots,
                        attention::decode_plan& plan, int min_split_tokens = 64,
                        const char* who = "kvc::kernels::plan_device_decode") {
  attention::plan_decode_for_slots(view, q_heads,
                                   view.geometry.kv_heads * decode<Shape, Block>::row_chunks, slots,
                                   plan, min_split_tokens, who);
}

}  // namespace kvc::kernels
