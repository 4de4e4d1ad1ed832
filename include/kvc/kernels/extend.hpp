#pragma once
// The extend (prefill) kernels: many new query tokens per sequence, causal, over the view of an
// open step whose new K/V are written (the cached prefix and the step's own tokens), on tensor
// cores. Plan once per step (kernels::plan_extend, extend_work.hpp), launch for every layer.
//
//   kernels::plan_extend(view, token_indptr, q_heads, kernels::extend<shape>::rows, plan);
//   auto work = kernels::make_extend_work<shape>(plan, tiles, view, token_indptr,
//                                                device_token_indptr, q, out, lse, params,
//                                                kernels::extend<shape>::rows, who);
//   launch(kernels::extend_grid<shape>(work), kernels::extend_block<shape>{},
//          kernels::extend<shape>::shared_bytes, kernels::extend<shape>{work});
//
// extend<Shape, Block> is one of two kernels, chosen at compile time from the shape
// (extend_path_of<Shape> says which):
// - extend_mma (kernels/extend_mma.hpp): tiles of (new token, query head) rows, 32 a warp (16
//   for dims above 128), that read each key once per tile; K and V in any dtype but fp32
//   (8-bit and 4-bit converted into fp16 tiles on the way in), dims up to 256: every gallery
//   layer but the 576/512 latents;
// - extend_by_token (kernels/extend_by_token.hpp): a block per new token and KV head (row chunk),
//   the tensor-core decode's body at that token's position: MLA's 576/512 latents (DeepSeek V2,
//   V3, Kimi K2) in fp16 or bf16.
// An opt-in, extend_wgmma (kernels/extend_wgmma.hpp), runs the row tiles on Hopper's wgmma
// (sm_90a) where the Block is a warpgroup_extend_block: K and V in fp16 or bf16, or both in the
// same fp8, int8 or int4, dims 64, 128 or 256.
// A layer neither takes (fp32 storage, dims that are not whole mma steps, an 8-bit latent of 576)
// is refused at compile time with the constraints in the message.

#include <cstdint>
#include <type_traits>

#include "kvc/kernels/decode_mma.hpp"
#include "kvc/kernels/extend_by_token.hpp"
#include "kvc/kernels/extend_mma.hpp"
#include "kvc/kernels/extend_wgmma.hpp"
#include "kvc/kernels/extend_work.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::kernels {

/// The extend kernels.
enum class extend_path : std::uint8_t {
  row_tiles,     ///< extend_mma: tiles of (token, head) rows
  token_blocks,  ///< extend_by_token: a block per new token, the tensor-core decode's body
};

/// Whether an extend kernel takes a layer shape (the row-tile or the per-token one).
template <class Shape>
inline constexpr bool extend_supports = mma_extend_supports<Shape> || mma_decode_supports<Shape>;

/// Which kernel extend<Shape> is: the row-tile kernel where it takes the shape, else the
/// per-token one.
template <class Shape>
inline constexpr extend_path extend_path_of =
    mma_extend_supports<Shape> ? extend_path::row_tiles : extend_path::token_blocks;

/// The block a shape's extend kernel is made for, what the launchers take by default: 4 warps
/// for the row-tile kernel, two per 16 query heads (up to 8) for the per-token one.
template <class Shape>
using extend_block = std::conditional_t<extend_path_of<Shape> == extend_path::row_tiles,
                                        block_shape<128>, mma_decode_block<Shape>>;

namespace detail {
template <class Block>
inline constexpr bool opts_into_warpgroup_extend = false;
template <class Shape>
inline constexpr bool opts_into_warpgroup_extend<warpgroup_extend_block<Shape>> = true;
}  // namespace detail

/// The extend kernel of a shape (extend_path_of), or the warpgroup one (extend_wgmma) for a
/// warpgroup_extend_block.
template <class Shape, class Block = extend_block<Shape>>
using extend =
    std::conditional_t<detail::opts_into_warpgroup_extend<Block>, extend_wgmma<Shape, Block>,
                       std::conditional_t<extend_path_of<Shape> == extend_path::row_tiles,
                                          extend_mma<Shape, Block>, extend_by_token<Shape, Block>>>;

/// Returns the blocks of an extend launch: x a tile of the plan, y a KV head and row chunk.
template <class Shape, class Block = extend_block<Shape>>
dims3 extend_grid(const extend_work& work) {
  return {static_cast<std::uint32_t>(work.tile_count),
          static_cast<std::uint32_t>(work.geometry.kv_heads * extend<Shape, Block>::row_chunks), 1};
}

}  // namespace kvc::kernels
