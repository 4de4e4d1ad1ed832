#pragma once
// The extend (prefill) of layers too wide for the row-tile kernel (kernels/extend_mma.hpp):
// DeepSeek's and Kimi K2's latents of 576 dims, whose values are 512, in absorbed form, in
// any storage but fp32 (8-bit latents read raw into the fragments, 4-bit ones converted into
// fp16 tiles). One
// block runs one new token's query heads over one KV head (a row chunk of them for groups past
// 64), with the tensor-core decode's body (kernels/decode_mma.hpp): two warps per 16 heads,
// each multiplying half of the latent's dims for the scores and taking half of the values'.
// The token's position is the block's query position, so the causal mask and the window are
// the held flags of the staged slots, and the block reads the key blocks from the window's
// first kept page (from the first listed page where the layer keeps sinks) to its own token.
//
//   kernels::plan_extend(view, token_indptr, q_heads, kernels::extend_by_token<shape>::rows,
//                        plan);  // a tile per new token
//   launch(kernels::extend_grid<shape>(work), block, kernels::extend_by_token<shape>::shared_bytes,
//          kernels::extend_by_token<shape, block>{work});
//
// Each block reads its keys on its own: over a prompt of n tokens a latent is read about n / 2
// times per row chunk, against once per 64 to 128 rows for the row-tile kernel. A block of 64 heads
// does 2 x 64 x (576 + 512) flops for each 1152-byte latent it reads (121 a byte, near an
// H200's ratio of tensor-core flops to memory bytes), and the blocks of consecutive tokens
// read the same latents at about the same time, mostly from L2.
// Numerics are the tensor-core decode's (docs/simt.md).

#include <cstdint>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_mma.hpp"
#include "kvc/kernels/extend_work.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::kernels {

template <class Shape, class Block = mma_decode_block<Shape>>
struct extend_by_token {
  static_assert(mma_decode_supports<Shape>,
                "kvc::kernels::extend: no tensor-core extend takes this layer. The row-tile "
                "kernel takes K and V stored in any dtype but fp32 with k_dim a multiple of 16 "
                "and v_dim of 8, both at most 256; wider layers (MLA's 576/512) need storage "
                "other than fp32, dims multiples of 16, at most 576 and 512 for a latent and "
                "256 otherwise");
  using rows_kernel = decode_mma<Shape, Block>;
  /// A plan tile: one new token's query group.
  static constexpr int rows = Shape::group;
  static constexpr int row_chunks = rows_kernel::row_chunks;
  static constexpr std::size_t shared_bytes = rows_kernel::shared_bytes;

  extend_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const extend_tile tile = work.tiles[ctx.block_idx().x];
    const std::int64_t tokens =
        work.token_indptr[tile.sequence + 1] - work.token_indptr[tile.sequence];
    const std::int64_t length = work.seq_lens[tile.sequence];
    const std::int64_t token = tile.first_row / Shape::group;
    const std::int64_t position = length - tokens + token;
    const std::int64_t page_tokens =
        Shape::page_tokens > 0 ? Shape::page_tokens : work.geometry.page_tokens;
    const std::int64_t blocks_per_page =
        (page_tokens + attention::key_block - 1) / attention::key_block;
    const auto block_of = [&](std::int64_t entry, std::int64_t p) {
      return entry * blocks_per_page + p % page_tokens / attention::key_block;
    };
    const window_shape& window = work.window;
    const auto kept = window.pages_listed(
        length, page_tokens, work.indptr[tile.sequence + 1] - work.indptr[tile.sequence]);
    // The plan checked that the view keeps the window of every new token, so both pages are
    // listed.
    const std::int64_t recent = window.recent_begin(position + 1);
    const std::int64_t block_begin = window.sink_end(position + 1) > 0
                                         ? 0
                                         : block_of(kept.entry_of(recent / page_tokens), recent);
    const std::int64_t block_end = block_of(kept.entry_of(position / page_tokens), position) + 1;
    const mma_rows_item item{tile.sequence, work.token_indptr[tile.sequence] + token,
                             position,      block_begin,
                             block_end,     blocks_per_page,
                             nullptr};
    // Two bodies, so that a layer without a soft-cap runs a loop without its tanh.
    if (work.softcap > 0.0f)
      rows_kernel::template attend<true>(ctx, work, item);
    else
      rows_kernel::template attend<false>(ctx, work, item);
  }
};

}  // namespace kvc::kernels
