#pragma once
// The extend (prefill) kernel on Hopper's warpgroup matrix multiply-accumulate (kernels/
// wgmma.hpp, sm_90a), an opt-in by warpgroup_extend_block: the rows and the plan of the
// tensor-core extend (kernels/extend_mma.hpp), a warpgroup's 64 rows one wgmma's M, keys in
// tiles of 64 (32 at dims of 256; one wgmma's N), K and V stored in fp16 or bf16, or both in
// the same fp8 e4m3, fp8 e5m2, int8 or int4, converted exactly into fp16 rows in shared memory
// as they land (the integers' per-token scales applied to the scores and the weights); dims
// 64, 128 or 256.
//
//   kvc::cuda::plan_extend<shape, kvc::kernels::warpgroup_extend_block<shape>>(...);
//   kvc::cuda::extend<shape, kvc::kernels::warpgroup_extend_block<shape>>(...);
//
// One block of two warpgroups runs one (tile of 128 rows, KV head). The query rows (scale and
// log2 e folded in, rounded to K's 16-bit type) are staged once, the keys and values in tiles
// of 64 positions (32) by 16-byte asynchronous copies into three buffers (the next tile in flight
// while the block computes this one's scores and the last one's P V), all in rows of 64 dims
// of 128 bytes with the 128-byte swizzle, the layout wgmma reads without bank conflicts. Per
// tile, each warpgroup for its 64 rows:
// - scores S = Q K^T (64 x 64, k_dim / 16 m64n64k16, A and B by descriptor; m64n32k16 at 256);
// - the last tile's O += P V (64 / 16 m64n{v_dim}k16, P from registers, V read MN-major),
//   issued behind the scores so that the tensor cores run it while the warps mask the scores
//   and take their softmax (FlashAttention-3's overlap within a warpgroup);
// - masks, soft-cap and the online softmax per row in registers (kernels/mma_softmax.hpp: a
//   warpgroup's D is, per warp, mma.sync's C fragment of its 16 rows), in log2 units; O
//   rescaled once that P V is in, then this tile's P packed into the registers P V reads.
// One block barrier a tile (two where a tile is converted). Tiles of keys that no row of the block
// sees are skipped, as in the mma.sync kernel; a warpgroup computes every tile the block stages
// (its rows that do not see a key mask it). Numerics as the tensor-core extend (docs/simt.md): the
// query rows and the weights rounded to 16 bits, products exact, sums fp32.

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
#include "kvc/kernels/unroll.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "kvc/kernels/wgmma_tiles.hpp"
#include "kvc/numeric/unpack.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// Whether the warpgroup extend takes a layer shape: not a latent, K and V stored in fp16 or
/// bf16 (the inputs of wgmma), or both in the same fp8 e4m3, fp8 e5m2, int8 or int4 (converted
/// exactly into fp16 rows in shared memory as they land; int8 and int4 with their per-token
/// scales), k_dim and v_dim 64, 128 or 256 (whole 128-byte swizzled rows; O and the scores of
/// 64 rows stay in a warpgroup's registers).
template <class Shape>
inline constexpr bool wgmma_extend_supports =
    !Shape::latent &&
    ((mma_reads_stored<typename Shape::k_type> && mma_reads_stored<typename Shape::v_type>) ||
     (std::is_same_v<typename Shape::k_type, typename Shape::v_type> &&
      !std::is_same_v<typename Shape::k_type, fp32> &&
      numeric::unpacks_to_fp16<typename Shape::k_type>)) &&
    (Shape::k_dim == 64 || Shape::k_dim == 128 || Shape::k_dim == 256) &&
    (Shape::v_dim == 64 || Shape::v_dim == 128 || Shape::v_dim == 256);

/// The opt-in to the warpgroup extend, as the Block of the planners and launchers (two
/// warpgroups; sm_90a on a GPU, where the CUDA backend must be built for 90a):
///   kvc::cuda::extend<shape, kvc::kernels::warpgroup_extend_block<shape>>(...);
template <class Shape>
struct warpgroup_extend_block : block_shape<2 * warpgroup_threads> {
  static_assert(wgmma_extend_supports<Shape>,
                "kvc::kernels::warpgroup_extend_block: the warpgroup extend takes a layer (not a "
                "latent) with K and V stored in fp16 or bf16, or both in the same fp8 e4m3, fp8 "
                "e5m2, int8 or int4, k_dim and v_dim 64, 128 or 256");
};

/// The warpgroup extend's shared memory, from a 1024-byte aligned start (the launch asks for
/// 1024 bytes more): the query rows (64-dim slices of 128 rows); the tiles of 16-bit rows wgmma
/// reads (each the keys' rows, then the values'), three (each then a flag per slot, 1 when
/// staged) where K and V are stored in 16 bits and land there, else two, converted from two
/// buffers of raw rows as stored (each the keys', the values', then the flags and the int8 /
/// int4 scales); the block's and the warps' bounds, each thread's row sums.
template <class Shape>
struct wgmma_extend_tiling {
  static constexpr int rows = 2 * wgmma_m;
  /// One wgmma's N: 64 keys a tile, 32 where a dim is 256 (three tiles of 64 keys would not fit
  /// beside the query rows).
  static constexpr int keys = Shape::k_dim > 128 || Shape::v_dim > 128 ? 32 : 64;
  static constexpr bool converts = !mma_reads_stored<typename Shape::k_type>;
  static constexpr int k_slices = Shape::k_dim / 64, v_slices = Shape::v_dim / 64;
  static constexpr std::uint32_t q_slice = rows * 128, k_slice = keys * 128;
  static constexpr std::uint32_t q_bytes = k_slices * q_slice;
  static constexpr std::uint32_t v_rows = k_slices * k_slice;         ///< within a tile
  static constexpr std::uint32_t held = v_rows + v_slices * k_slice;  ///< its flags, if it lands
  /// Tile t's scores, tile t - 1's values, and tile t + 1 landing; converted, t + 1 lands raw.
  static constexpr int tiles = converts ? 2 : 3;
  static constexpr std::uint32_t tile_bytes = converts ? held : held + 1024;  // 1024-aligned
  static constexpr std::uint32_t raw_k_row = Shape::k_vector_bytes,
                                 raw_v_row = Shape::v_vector_bytes;
  static constexpr std::uint32_t raw_v_rows = keys * raw_k_row;             ///< within a raw buffer
  static constexpr std::uint32_t raw_held = raw_v_rows + keys * raw_v_row;  ///< its flags
  /// Then, for int8 and int4, the keys' and the values' scales.
  static constexpr bool scaled = Shape::k_type::scale == scaling::per_token_head;
  static constexpr std::uint32_t k_scales = raw_held + keys * 4, v_scales = k_scales + keys * 4;
  static constexpr std::uint32_t raw_end = scaled ? v_scales + keys * 4 : k_scales;
  static constexpr std::uint32_t raw_bytes = converts ? (raw_end + 15) / 16 * 16 : 0;
  static constexpr std::uint32_t raw = q_bytes + tiles * tile_bytes;
  static constexpr std::uint32_t bounds = raw + 2 * raw_bytes;
  static constexpr std::uint32_t warp_bounds = bounds + sizeof(detail::extend_block_bounds);
  static constexpr std::uint32_t row_sums = warp_bounds + 8 * sizeof(detail::extend_warp_bounds);
  static constexpr std::size_t shared_bytes = 1024 + row_sums + 2 * 256 * 4;  ///< 2 a thread
};

template <class Shape, class Block = warpgroup_extend_block<Shape>>
struct extend_wgmma {
  static_assert(wgmma_extend_supports<Shape>,
                "kvc::kernels::extend_wgmma: a layer (not a latent) with K and V stored in fp16 "
                "or bf16, or both in the same fp8 e4m3, fp8 e5m2, int8 or int4, k_dim and v_dim "
                "64, 128 or 256");
  static_assert(Block::threads == 2 * warpgroup_threads && Block::y == 1 && Block::z == 1,
                "kvc::kernels::extend_wgmma: a one-dimensional block of two warpgroups");
  using tiling = wgmma_extend_tiling<Shape>;
  static constexpr int rows = tiling::rows;
  static constexpr int row_chunks = 1;  ///< a block takes a tile's rows of one KV head
  static constexpr std::size_t shared_bytes = tiling::shared_bytes;

  extend_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    if (work.softcap > 0.0f)
      run<true>(ctx);
    else
      run<false>(ctx);
  }

 private:
  template <bool SoftCapped, class Context>
  KVC_HOST_DEVICE void run(const Context& ctx) const {
    using k_type = typename Shape::k_type;
    constexpr mma_input k_input = mma_input_of<k_type>,
                        v_input = mma_input_of<typename Shape::v_type>;
    constexpr int group = Shape::group, k_dim = Shape::k_dim, v_dim = Shape::v_dim;
    constexpr int keys = tiling::keys, k_steps = k_dim / wgmma_k, p_steps = keys / wgmma_k;
    constexpr auto threads = static_cast<int>(Block::threads);
    constexpr float log2e = 1.4426950408889634f, ln2 = 0.6931471805599453f;
    const auto thread = static_cast<int>(ctx.thread_rank());
    const auto lane = static_cast<int>(ctx.lane()), warp = static_cast<int>(ctx.warp());
    const int half = thread / 128, quad = lane / 4, pair = lane % 4;
    const page_geometry& geo = work.geometry;

    std::byte* shared = ctx.dynamic_shared();
    std::byte* tiles = shared + (1024 - ctx.shared_address(shared) % 1024) % 1024;
    const std::uint32_t tiles_address = ctx.shared_address(tiles);
    auto& bounds = *reinterpret_cast<detail::extend_block_bounds*>(tiles + tiling::bounds);
    auto* warp_bounds = reinterpret_cast<detail::extend_warp_bounds*>(tiles + tiling::warp_bounds);
    const auto head = static_cast<int>(ctx.block_idx().y);
    // Row r's dims d, d + 1 in slice d / 64 of the swizzled rows.
    const std::int64_t tile_count = detail::set_up_extend_rows<Shape, rows, 16, keys, threads>(
        ctx, work, head, bounds, warp_bounds, [&](int r, int d) {
          return reinterpret_cast<std::uint32_t*>(
              tiles + static_cast<std::uint32_t>(d / 64) * tiling::q_slice +
              swizzled_128_offset(static_cast<std::uint32_t>(r),
                                  static_cast<std::uint32_t>(d % 64 / 8)) +
              static_cast<std::uint32_t>(d % 8) * 2);
        });

    // Tile t's 16-bit rows (what wgmma reads), where its copies land, and its flags.
    using places = wgmma_tile_places<tiling>;
    const auto buffer = [&](std::int64_t t) { return places::rows(t); };
    const auto landing = [&](std::int64_t t) { return places::landing(t); };
    const auto flags = [&](std::int64_t t) {
      return reinterpret_cast<std::int32_t*>(tiles + places::flags(t));
    };
    // Starts staging key tile t: 4 threads a slot (8 for 32 keys), 16-byte pieces of its K and V
    // vectors placed in the slot's row of each 64-dim slice, or in 8-bit and 4-bit storage the
    // raw rows as stored; zeros where no row of the block looks (its flag 0 there).
    constexpr int slot_threads = threads / keys;
    constexpr int k_pieces = static_cast<int>(Shape::k_vector_bytes) / 16,
                  v_pieces = static_cast<int>(Shape::v_vector_bytes) / 16;
    const int slot = thread / slot_threads, slot_thread = thread % slot_threads;
    const auto stage = [&](std::int64_t t) {
      const std::uint32_t base = landing(t);
      const detail::extend_slot_source source = detail::extend_source_of<Shape>(
          work, bounds, detail::extend_tile_start<keys>(bounds, t) + slot, head);
      if (slot_thread == 0) {
        flags(t)[slot] = source.page != nullptr ? 1 : 0;
        // int8 / int4: the vectors' scales, zeros where no row looks.
        if constexpr (k_type::scale == scaling::per_token_head) {
          const auto scale_at = [&](std::uint32_t scales, std::uint64_t from) {
            ctx.copy_async_4(tiles + base + scales + 4 * static_cast<std::uint32_t>(slot),
                             source.page != nullptr
                                 ? source.page + from + source.vector * scale_bytes
                                 : work.memory,
                             source.page != nullptr);
          };
          scale_at(tiling::k_scales, geo.k_scales);
          scale_at(tiling::v_scales, geo.v_scales);
        }
      }
      // A whole number of pieces a thread where they divide (unrolled, no remainder loop).
      const auto copy_row = [&](auto pieces, std::uint32_t rows_at, std::uint32_t raw_at,
                                std::uint32_t raw_row, std::uint64_t values,
                                std::uint64_t vector_bytes) {
        constexpr int count = decltype(pieces)::value;
        unroll<(count + slot_threads - 1) / slot_threads>([&](auto i) {
          const int piece = slot_thread + slot_threads * static_cast<int>(decltype(i)::value);
          if (count % slot_threads != 0 && piece >= count) return;
          const auto at = static_cast<std::uint32_t>(piece);
          ctx.copy_async(
              tiles + base +
                  (tiling::converts
                       ? raw_at + static_cast<std::uint32_t>(slot) * raw_row + 16 * at
                       : rows_at + at / 8 * tiling::k_slice +
                             swizzled_128_offset(static_cast<std::uint32_t>(slot), at % 8)),
              source.page != nullptr ? source.page + values + source.vector * vector_bytes + 16 * at
                                     : work.memory,
              source.page != nullptr);
        });
      };
      copy_row(std::integral_constant<int, k_pieces>{}, 0, 0, tiling::raw_k_row, geo.k_values,
               Shape::k_vector_bytes);
      copy_row(std::integral_constant<int, v_pieces>{}, tiling::v_rows, tiling::raw_v_rows,
               tiling::raw_v_row, geo.v_values, Shape::v_vector_bytes);
    };
    // Converts landed tile t from its raw rows into its 16-bit rows, exactly: thread (slot,
    // slot_thread) takes chunks slot_thread, slot_thread + slot_threads, ... (8 values each) of
    // its slot's K and V rows.
    const auto convert = [&](std::int64_t t) {
      if constexpr (tiling::converts) {
        using stored = typename Shape::k_type;
        const std::byte* raw = tiles + landing(t);
        std::byte* converted = tiles + buffer(t);
        const auto row = static_cast<std::uint32_t>(slot);
        static_assert(k_dim / 8 % slot_threads == 0 && v_dim / 8 % slot_threads == 0,
                      "kvc::kernels::extend_wgmma: whole chunks a thread");
        unroll<k_dim / 8 / slot_threads>([&](auto i) {
          convert_chunk_to_fp16<stored>(
              raw + row * tiling::raw_k_row, converted, tiling::k_slice, row,
              static_cast<std::uint32_t>(slot_thread + slot_threads * decltype(i)::value));
        });
        unroll<v_dim / 8 / slot_threads>([&](auto i) {
          convert_chunk_to_fp16<stored>(
              raw + tiling::raw_v_rows + row * tiling::raw_v_row, converted + tiling::v_rows,
              tiling::k_slice, row,
              static_cast<std::uint32_t>(slot_thread + slot_threads * decltype(i)::value));
        });
      }
    };

    ctx.sync();  // the query rows and the bounds
    const detail::extend_warp_bounds& mine = warp_bounds[warp];
    mma_softmax<std::size_t{keys / 8}> softmax;
    wgmma_d<v_dim> o;
    for (float& x : o.reg) x = 0.0f;
    mma_a weights[std::size_t{p_steps}]{};
    const float softcap = work.softcap * log2e, softcap_inverse = ln2 / work.softcap;
    float* row_sums = reinterpret_cast<float*>(tiles + tiling::row_sums) + 2 * thread;

    // O += P V of tile t: 16 positions a step (two 8-row groups of 1024 bytes), all v_dim
    // dims (the next 64 a slice on, MN-major), P from registers.
    const auto weigh_values = [&](std::int64_t t) {
      unroll<p_steps>([&](auto s) {
        const wgmma_descriptor b = make_wgmma_descriptor(
            tiles_address + buffer(t) + tiling::v_rows + static_cast<std::uint32_t>(s) * 2048,
            tiling::k_slice, 1024, wgmma_swizzle::bytes_128);
        ctx.template wgmma<v_input, wgmma_major::mn>(weights[s], b, o, true);
      });
      ctx.wgmma_commit();
    };
    const auto attend_tile = [&](std::int64_t t, auto values_pending) {
      // This tile has landed (visible to wgmma; in 8 bits, then converted), every thread is done
      // with tile t - 2's buffer, which now takes the next tile.
      land_wgmma_tile<tiling::converts>(ctx, [&] { convert(t); });
      const std::uint32_t base = buffer(t);
      const std::int32_t* held = flags(t);
      // int8 / int4: the tile's scales, after its flags.
      const auto scales = [&](std::uint32_t at) {
        return reinterpret_cast<const float*>(tiles + landing(t) + at);
      };

      // Scores: K step s reads 16 dims of the warpgroup's query rows and of the keys' rows (32
      // bytes into a 128-byte row, 64 dims a slice).
      wgmma_d<keys> s_acc{};
      ctx.wgmma_fence(s_acc, o, weights);
      unroll<k_steps>([&](auto index) {
        constexpr int s = decltype(index)::value;
        constexpr std::uint32_t within = (s % 4) * 32;
        const wgmma_descriptor a =
            make_wgmma_descriptor(tiles_address + (s / 4) * tiling::q_slice +
                                      static_cast<std::uint32_t>(half) * (wgmma_m * 128) + within,
                                  16, 1024, wgmma_swizzle::bytes_128);
        const wgmma_descriptor b =
            make_wgmma_descriptor(tiles_address + base + (s / 4) * tiling::k_slice + within, 16,
                                  1024, wgmma_swizzle::bytes_128);
        ctx.template wgmma<k_input, wgmma_major::k, wgmma_major::k>(a, b, s_acc, s > 0);
      });
      ctx.wgmma_commit();
      weigh_last_and_wait_scores<decltype(values_pending)::value>(
          ctx, s_acc, [&] { weigh_values(t - 1); },
          [&] {
            if (t + 1 < tile_count) stage(t + 1);
          });
      mma_c scores[std::size_t{keys / 8}];
      for (int i = 0; i < keys / 2; ++i) scores[i / 4].reg[i % 4] = s_acc.reg[i];
      if constexpr (k_type::scale == scaling::per_token_head)  // int8 / int4 keys' scales
        for (int n = 0; n < keys / 8; ++n)
          for (int i = 0; i < 4; ++i)
            scores[n].reg[i] *= scales(tiling::k_scales)[n * 8 + 2 * pair + i % 2];

      detail::mask_extend_scores<Shape, 16>(scores, work.window, bounds, mine, mine.first_row,
                                            detail::extend_tile_start<keys>(bounds, t), held, lane);
      if constexpr (k_type::scale == scaling::per_token_head)  // int8 / int4 values' scales
        softmax_under_values<SoftCapped, decltype(values_pending)::value, v_input>(
            ctx, softmax, scores, softcap, softcap_inverse, pair, row_sums, o, weights,
            [v_scales = scales(tiling::v_scales)](int j) { return v_scales[j]; });
      else
        softmax_under_values<SoftCapped, decltype(values_pending)::value, v_input>(
            ctx, softmax, scores, softcap, softcap_inverse, pair, row_sums, o, weights);
    };
    run_wgmma_tiles(ctx, tile_count, o, weights, stage, attend_tile, weigh_values);

    // The rows' results: a row's sum of weights over its 4 lanes, then out and lse (sinks
    // included, natural-log units), as the mma.sync kernel writes them.
    softmax.finish(ctx);
    const float v_factor = Shape::v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    unroll<2>([&](auto h) {
      const std::int64_t row = mine.first_row + quad + 8 * h;
      if (row > bounds.last_row) return;
      const int q_head = head * group + static_cast<int>(row % group);
      const std::int64_t out_row = (bounds.row0 + row / group) * work.q_heads + q_head;
      const finished_row f =
          finish_row(softmax.m[h] * ln2, softmax.l[h], v_factor, work.sink_logits, q_head);
      float* out = work.out + out_row * v_dim + 2 * pair;
      for (int d = 0; d < v_dim / 8; ++d)
        for (int e = 0; e < 2; ++e)
          out[8 * d + e] = f.weight == 0.0f ? 0.0f : o.reg[4 * d + 2 * h + e] * f.weight;
      if (pair == 0) work.lse[out_row] = f.lse;
    });
  }
};

}  // namespace kvc::kernels
