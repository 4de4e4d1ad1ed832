#pragma once
// The tensor-core extend (prefill) kernel: many new query tokens per sequence, causal, over
// the view of an open step whose new K/V the append kernel has written (the cached prefix and
// the step's own tokens), on the warp matrix multiply-accumulate (kernels/mma.hpp).
//
//   kernels::plan_extend(view, token_indptr, q_heads, kernels::extend_mma<shape>::rows, plan);
//   launch(kernels::extend_grid<shape>(work), block, kernels::extend_mma<shape>::shared_bytes,
//          kernels::extend_mma<shape, block>{work});
//
// One block runs one (tile of query rows, KV head): 32 rows a warp (two mma row tiles) for
// dims up to 128, 16 above, the rows of a tile being (new token, query head of the group)
// pairs, so a tile reads each key once for the whole group, and each key and value fragment
// loaded feeds both row tiles. The block stages the tile's query rows (times the softmax
// scale, rounded to the tensor cores' 16-bit input) in shared memory once; a warp of one row
// tile keeps its A fragments in registers, one of two loads them from there a k step at a time
// (its registers hold 32 rows' accumulators). Keys and values come in tiles of 32 positions,
// staged in shared memory by 16-byte asynchronous copies as stored, two tile buffers so that
// the next tile is in flight while the block computes on this one; fp16 and bf16 are the
// tensor cores' inputs as they are, fp8, int8 and int4 are converted exactly into an fp16
// tile once they land. Per tile and row tile, a warp: scores S = Q K^T (k_dim / 16 x 4 mma),
// masks (causal, window, chunk, sinks of the window), soft-cap, the online softmax per row in
// registers (a row's 4 lanes agree through two shuffles), the weights rounded to the values'
// 16-bit type as the A fragments of O += P V (2 x v_dim / 8 mma). The sums of weights stay in
// fp32.
//
// Tiles of keys that no row of the block sees (before the first row's window, past the last
// row, between the sinks and the window) are skipped, not masked; a warp skips a staged tile
// that none of its rows sees. A staged slot no row of the block sees is zero-filled, never
// read. Numerics (docs/simt.md): the query rows and the weights are rounded to fp16 or bf16
// (2^-11 or 2^-8 of themselves), products are exact and sums fp32.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/attention/online_softmax.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/extend_rows.hpp"
#include "kvc/kernels/extend_work.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/mma_softmax.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/slot_copy.hpp"
#include "kvc/kernels/tile_convert.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

namespace detail {
template <class Type>
inline constexpr bool mma_storable = !std::is_same_v<Type, fp32>;
}  // namespace detail

/// Whether the tensor-core extend takes a layer shape: K and V stored in any dtype but fp32,
/// vectors of whole 16-byte pieces, k_dim a multiple of 16 and v_dim of 8 (whole mma steps),
/// both at most 256 (a warp's accumulators and query fragments stay in registers).
template <class Shape>
inline constexpr bool mma_extend_supports =
    detail::mma_storable<typename Shape::k_type>&& detail::mma_storable<typename Shape::v_type>&&
                Shape::k_vector_bytes %
            16 ==
        0 &&
    Shape::v_vector_bytes % 16 == 0 && Shape::k_dim % 16 == 0 && Shape::v_dim % 8 == 0 &&
    Shape::k_dim <= 256 && Shape::v_dim <= 256;

/// The extend kernel's shared memory: the query tile, two key/value tile buffers, then for K
/// or V not read as stored one converted tile each, then the block's and the warps' bounds
/// (detail::extend_block_bounds, extend_warp_bounds). A tile buffer holds per slot whether it is
/// staged and its int8 / int4 scales, then the vectors: as stored for the tensor cores'
/// types, in rows 16 bytes longer than a vector (so that the 8 rows a fragment load reads fall
/// in different banks); raw for the others, which the block converts into the fp16 tile.
template <class Shape, unsigned Warps>
struct extend_tiling {
  using k_type = typename Shape::k_type;
  using v_type = typename Shape::v_type;
  static constexpr bool k_stored = mma_reads_stored<k_type>;
  static constexpr bool v_stored = Shape::latent ? k_stored : mma_reads_stored<v_type>;
  /// 16-row mma tiles a warp: two where a warp's accumulators of 32 rows fit its registers
  /// (dims up to 128), so that each key and value fragment loaded feeds two mma.
  static constexpr int row_tiles = Shape::k_dim <= 128 && Shape::v_dim <= 128 ? 2 : 1;
  static constexpr int rows = 16 * row_tiles * static_cast<int>(Warps);
  /// Key positions a tile: 64 would halve the rescales and barriers a key, but 32 rows of 64
  /// scores spill (ptxas, sm_90: 260 bytes at dim 128).
  static constexpr int keys = 32;
  static constexpr int k_stride = Shape::k_dim + 8;  ///< 16-bit values from a row to the next
  static constexpr int v_stride = Shape::latent ? k_stride : Shape::v_dim + 8;
  static constexpr std::size_t pad16(std::size_t bytes) { return (bytes + 15) / 16 * 16; }
  static constexpr std::size_t k_tile_bytes = std::size_t{keys} * k_stride * 2;
  static constexpr std::size_t v_tile_bytes = Shape::latent ? 0 : std::size_t{keys} * v_stride * 2;
  static constexpr std::size_t k_row = k_stored ? std::size_t{k_stride} * 2 : Shape::k_vector_bytes;
  static constexpr std::size_t v_row = v_stored ? std::size_t{v_stride} * 2 : Shape::v_vector_bytes;
  static constexpr std::size_t q_bytes = pad16(std::size_t{rows} * k_stride * 2);
  // Within a buffer:
  static constexpr std::size_t held = 0;  ///< an int32 per slot, 1 if staged
  static constexpr std::size_t k_scales = pad16(std::size_t{keys} * 4);  ///< int8 / int4
  static constexpr std::size_t v_scales = k_scales + std::size_t{keys} * 4;
  static constexpr std::size_t k_values = pad16(v_scales + std::size_t{keys} * 4);
  static constexpr std::size_t v_values = k_values + std::size_t{keys} * k_row;
  static constexpr std::size_t buffer_bytes =
      pad16(v_values + (Shape::latent ? 0 : std::size_t{keys} * v_row));
  // After both buffers:
  static constexpr std::size_t k_converted = q_bytes + 2 * buffer_bytes;
  static constexpr std::size_t v_converted = k_converted + (k_stored ? 0 : k_tile_bytes);
  static constexpr std::size_t bounds = v_converted + (v_stored ? 0 : v_tile_bytes);
  static constexpr std::size_t warp_bounds = bounds + sizeof(detail::extend_block_bounds);
  static constexpr std::size_t shared_bytes =
      pad16(warp_bounds + Warps * sizeof(detail::extend_warp_bounds));
};

template <class Shape, class Block = block_shape<128>>
struct extend_mma {
  static_assert(mma_extend_supports<Shape>,
                "kvc::kernels::extend_mma: the tensor-core extend takes K and V stored in any "
                "dtype but fp32 (storage<fp16>, bf16, fp8_e4m3, fp8_e5m2, int8, int4), vectors of "
                "whole 16-byte pieces, k_dim a multiple of 16 and v_dim of 8, both at most 256");
  using tiling = extend_tiling<Shape, Block::warps>;
  static_assert(Block::threads % warp_size == 0 && Block::y == 1 && Block::z == 1 &&
                    Block::threads % tiling::keys == 0,
                "kvc::kernels::extend_mma: a one-dimensional block of whole warps, a multiple of "
                "the key tile's slots");
  static constexpr int rows = tiling::rows;
  static constexpr int row_chunks = 1;  ///< a block takes a tile's rows of one KV head
  static constexpr std::size_t shared_bytes = tiling::shared_bytes;

  extend_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    // Two bodies, so that a layer without a soft-cap runs a loop without its tanh.
    if (work.softcap > 0.0f)
      run<true>(ctx);
    else
      run<false>(ctx);
  }

 private:
  template <bool SoftCapped, class Context>
  KVC_HOST_DEVICE void run(const Context& ctx) const {
    using k_type = typename Shape::k_type;
    using v_type = typename Shape::v_type;
    constexpr mma_input k_input = mma_input_of<k_type>, v_input = mma_input_of<v_type>;
    constexpr int group = Shape::group, k_dim = Shape::k_dim, v_dim = Shape::v_dim;
    constexpr int keys = tiling::keys, k_stride = tiling::k_stride, v_stride = tiling::v_stride;
    constexpr int k_steps = k_dim / mma_k, key_blocks = keys / mma_n, p_steps = keys / mma_k;
    constexpr int v_blocks = v_dim / mma_n;
    constexpr int row_tiles = tiling::row_tiles, warp_rows = 16 * row_tiles;
    constexpr auto threads = static_cast<int>(Block::threads);
    constexpr float log2e = 1.4426950408889634f, ln2 = 0.6931471805599453f;
    const auto thread = static_cast<int>(ctx.thread_rank());
    const auto lane = static_cast<int>(ctx.lane()), warp = static_cast<int>(ctx.warp());
    const int quad = lane / 4, pair = lane % 4;  // a fragment's row group and column pair
    const page_geometry& geo = work.geometry;

    std::byte* shared = ctx.dynamic_shared();
    auto* q_tile = reinterpret_cast<std::uint32_t*>(shared);
    auto& bounds = *reinterpret_cast<detail::extend_block_bounds*>(shared + tiling::bounds);
    auto* warp_bounds = reinterpret_cast<detail::extend_warp_bounds*>(shared + tiling::warp_bounds);
    const auto head = static_cast<int>(ctx.block_idx().y);
    const std::int64_t tiles = detail::set_up_extend_rows<Shape, rows, warp_rows, keys, threads>(
        ctx, work, head, bounds, warp_bounds,
        [&](int r, int d) { return q_tile + r * (k_stride / 2) + d / 2; });
    const auto tile_start = [&](std::int64_t t) {
      return detail::extend_tile_start<keys>(bounds, t);
    };
    const auto buffer = [&](std::int64_t t) {
      return shared + tiling::q_bytes + static_cast<std::size_t>(t % 2) * tiling::buffer_bytes;
    };
    // Starts staging key tile t: Block::threads / keys threads a slot, each finding the slot's
    // page once, then copying its share of the K and V vectors' 16-byte pieces (consecutive
    // threads, consecutive pieces); zeros where no row of the block looks (held 0 there).
    constexpr int slot_threads = threads / keys;
    const int slot = thread / slot_threads, slot_thread = thread % slot_threads;
    const auto stage = [&](std::int64_t t) {
      std::byte* base = buffer(t);
      const auto [page, vector] =
          detail::extend_source_of<Shape>(work, bounds, tile_start(t) + slot, head);
      if (slot_thread == 0) {
        reinterpret_cast<std::int32_t*>(base + tiling::held)[slot] = page != nullptr ? 1 : 0;
        // int8 / int4: the vectors' scales, zeros where no row looks.
        if constexpr (k_type::scale == scaling::per_token_head)
          ctx.copy_async_4(
              base + tiling::k_scales + 4 * slot,
              page != nullptr ? page + geo.k_scales + vector * scale_bytes : work.memory,
              page != nullptr);
        if constexpr (!Shape::latent && v_type::scale == scaling::per_token_head)
          ctx.copy_async_4(
              base + tiling::v_scales + 4 * slot,
              page != nullptr ? page + geo.v_scales + vector * scale_bytes : work.memory,
              page != nullptr);
      }
      // A slot no row sees reads nothing: its source is the page memory's start, for an
      // address that is one.
      copy_slot<static_cast<int>(Shape::k_vector_bytes / 16), slot_threads>(
          ctx, base + tiling::k_values + std::size_t{static_cast<unsigned>(slot)} * tiling::k_row,
          page != nullptr ? page + geo.k_values + vector * Shape::k_vector_bytes : work.memory,
          slot_thread, page != nullptr);
      if constexpr (!Shape::latent)
        copy_slot<static_cast<int>(Shape::v_vector_bytes / 16), slot_threads>(
            ctx, base + tiling::v_values + std::size_t{static_cast<unsigned>(slot)} * tiling::v_row,
            page != nullptr ? page + geo.v_values + vector * Shape::v_vector_bytes : work.memory,
            slot_thread, page != nullptr);
    };

    // The warp's rows: row tile r holds rows 16 r to 16 r + 15 of the warp's, and lane (quad,
    // pair) rows quad and quad + 8 of each. One row tile keeps its query fragments in
    // registers; with two, the accumulators take those registers and each k step's fragments
    // are loaded from the staged tile as the scores need them.
    ctx.sync();
    const detail::extend_warp_bounds& mine = warp_bounds[warp];
    // The rows (and columns) this lane names for ldmatrix: lanes 8 j .. 8 j + 7 give matrix j.
    const int matrix = lane / 8, matrix_row = lane % 8;
    mma_a q_fragments[row_tiles == 1 ? std::size_t{k_steps} : 1];
    if constexpr (row_tiles == 1)
      for (int s = 0; s < k_steps; ++s)
        for (int h = 0; h < 4; ++h)
          q_fragments[s].reg[h] = q_tile[(warp * 16 + quad + 8 * (h % 2)) * (k_stride / 2) + s * 8 +
                                         pair + 4 * (h / 2)];
    const auto* q_halves = reinterpret_cast<const std::uint16_t*>(q_tile);
    const auto query_fragment = [&](int r, int s) {
      if constexpr (row_tiles == 1) {
        return q_fragments[s];
      } else {
        const mma_matrices a = ctx.template load_matrices<false>(
            q_halves + (warp * warp_rows + 16 * r + 8 * (matrix % 2) + matrix_row) * k_stride +
            s * 16 + 8 * (matrix / 2));
        return mma_a{{a.reg[0], a.reg[1], a.reg[2], a.reg[3]}};
      }
    };
    const float softcap = work.softcap * log2e, softcap_inverse = ln2 / work.softcap;
    mma_softmax<std::size_t{key_blocks}> softmax[std::size_t{row_tiles}];
    mma_c acc[std::size_t{row_tiles}][std::size_t{v_blocks}] = {};

    if (tiles > 0) stage(0);
    for (std::int64_t t = 0; t < tiles; ++t) {
      // This tile has landed, and every thread is done with the other buffer (the last tile's),
      // which now takes the next tile while this one is computed.
      ctx.wait_async_copies();
      ctx.sync();
      if (t + 1 < tiles) stage(t + 1);
      const std::byte* base = buffer(t);
      // K or V not read as stored: the block converts the raw tile into the fp16 one (exact),
      // then meets again before any warp reads it.
      const staged_tile staged = convert_staged<Shape, tiling, threads>(ctx, base, shared);
      if constexpr (converts_tiles<tiling>) ctx.sync();
      const std::int64_t start = tile_start(t);
      if (mine.first_row > bounds.last_row || start > mine.last ||
          (start + keys <= mine.recent_begin && start >= mine.sinks_end))
        continue;  // none of this warp's rows sees the tile
      const std::int32_t* held = staged.held;
      const float* k_scales = staged.k_scales;
      const float* v_scales = staged.v_scales;
      const std::uint16_t* k_tile = staged.k;
      const std::uint16_t* v_tile = staged.v;

      // Scores S = Q K^T, a k step at a time: ldmatrix gives B (key n's values k, as stored)
      // for two blocks of keys at once, which every row tile's A fragment of the step
      // multiplies.
      mma_c scores[std::size_t{row_tiles}][std::size_t{key_blocks}] = {};
      unroll<k_steps>([&](auto s) {
        mma_a q[std::size_t{row_tiles}];
        unroll<row_tiles>([&](auto r) { q[r] = query_fragment(r, s); });
        unroll<key_blocks / 2>([&](auto block_pair) {
          constexpr int n = 2 * decltype(block_pair)::value;
          const mma_matrices b = ctx.template load_matrices<false>(
              k_tile + (n * 8 + 8 * (matrix / 2) + matrix_row) * k_stride + s * 16 +
              8 * (matrix % 2));
          unroll<row_tiles>([&](auto r) {
            scores[r][n] =
                ctx.template mma_m16n8k16<k_input>(q[r], {{b.reg[0], b.reg[1]}}, scores[r][n]);
            scores[r][n + 1] =
                ctx.template mma_m16n8k16<k_input>(q[r], {{b.reg[2], b.reg[3]}}, scores[r][n + 1]);
          });
        });
      });
      if constexpr (k_type::scale == scaling::per_token_head)  // int8 / int4 keys' scales
        unroll<row_tiles>([&](auto r) {
          for (int n = 0; n < key_blocks; ++n)
            for (int i = 0; i < 4; ++i) scores[r][n].reg[i] *= k_scales[n * 8 + 2 * pair + i % 2];
        });
      // Masks (only where some key of the tile is hidden from some row of the warp: the
      // diagonal, a window's edge, the sinks, a short last tile), in slots from the tile's start:
      // a row sees slots up to `last`, and from `recent` on or below `sinks`.
      unroll<row_tiles>([&](auto r) {
        detail::mask_extend_scores<Shape, warp_rows>(scores[r], work.window, bounds, mine,
                                                     mine.first_row + 16 * r, start, held, lane);
      });
      mma_a weights[std::size_t{row_tiles}][std::size_t{p_steps}];
      unroll<row_tiles>([&](auto r) {
        softmax[r].template cap<SoftCapped>(scores[r], softcap, softcap_inverse);
        const mma_softmax_step step = softmax[r].next(ctx, scores[r]);
        if constexpr (v_type::scale == scaling::per_token_head)  // int8 / int4 values' scales
          softmax[r].template weights<v_input>(
              scores[r], step, pair, [&](int j) { return v_scales[j]; }, weights[r]);
        else
          softmax[r].template weights<v_input>(scores[r], step, pair, unit_value_scale{},
                                               weights[r]);
        step.rescale(ctx, acc[r]);
      });
      // O += P V: ldmatrix.trans gives B (key k's value n, stored [k][n]) for two blocks of 8
      // dims at once, which every row tile's weights multiply.
      unroll<p_steps>([&](auto s) {
        unroll<(v_blocks + 1) / 2>([&](auto block_pair) {
          constexpr int d = 2 * decltype(block_pair)::value;
          const int dims = 8 * (d + (d + 1 < v_blocks ? matrix / 2 : 0));
          const mma_matrices b = ctx.template load_matrices<true>(
              v_tile + (s * 16 + matrix_row + 8 * (matrix % 2)) * v_stride + dims);
          unroll<row_tiles>([&](auto r) {
            acc[r][d] = ctx.template mma_m16n8k16<v_input>(weights[r][s], {{b.reg[0], b.reg[1]}},
                                                           acc[r][d]);
            if constexpr (d + 1 < v_blocks)
              acc[r][d + 1] = ctx.template mma_m16n8k16<v_input>(
                  weights[r][s], {{b.reg[2], b.reg[3]}}, acc[r][d + 1]);
          });
        });
      });
    }

    // The rows' results: a row's sum of weights over its 4 lanes, then out and lse (sinks
    // included, natural-log units), as the decode kernel finishes a sequence of one split.
    unroll<row_tiles>([&](auto r) { softmax[r].finish(ctx); });
    if (mine.first_row > bounds.last_row) return;
    const float v_factor = v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    // (Unrolled, so that no register array is indexed at run time.)
    unroll<2 * row_tiles>([&](auto half) {
      constexpr int r = decltype(half)::value / 2, h = decltype(half)::value % 2;
      const std::int64_t row = mine.first_row + 16 * r + quad + 8 * h;
      if (row <= bounds.last_row) {
        const int q_head = head * group + static_cast<int>(row % group);
        const std::int64_t out_row = (bounds.row0 + row / group) * work.q_heads + q_head;
        const finished_row f =
            finish_row(softmax[r].m[h] * ln2, softmax[r].l[h], v_factor, work.sink_logits, q_head);
        float* out = work.out + out_row * v_dim + 2 * pair;
        for (int d = 0; d < v_blocks; ++d) {
          out[d * 8] = f.weight == 0.0f ? 0.0f : acc[r][d].reg[2 * h] * f.weight;
          out[d * 8 + 1] = f.weight == 0.0f ? 0.0f : acc[r][d].reg[2 * h + 1] * f.weight;
        }
        if (pair == 0) work.lse[out_row] = f.lse;
      }
    });
  }
};

}  // namespace kvc::kernels
