#pragma once
// The latent (MLA) decode on Hopper's warpgroup matrix multiply-accumulate (kernels/wgmma.hpp,
// sm_90a): DeepSeek's absorbed attention with the query heads as the rows of the products, as
// FlashMLA does (deepseek-ai/FlashMLA, csrc/sm90/decode), for latents stored in fp16 or bf16,
// or in fp8 e4m3 or e5m2, converted exactly into fp16 tiles in shared memory as they land.
// The default decode of the latents it takes at 64 query heads or more in device code built
// for sm_90a (kernels/decode.hpp, decode_mma_or_wgmma), an opt-in anywhere else
// (warpgroup_decode_block); the tensor-core decode of kernels/decode_mma.hpp (mma.sync) is the
// kernel of sm_80, sm_90 and smaller groups.
//
// One block of two warpgroups runs one (item, row chunk of 64 query heads). The query rows
// (scale and log2 e folded in, rounded to the latent's 16-bit type) are staged once, the
// latents in tiles of 32 tokens by 16-byte asynchronous copies into three buffers (the next
// tile in flight while the block computes on this one and the last), all in rows of 64 dims of
// 128 bytes with the 128-byte swizzle, the layout wgmma reads without bank conflicts (fp8 lands
// raw in two buffers, then the block converts it into two such tiles of fp16). Per tile:
// - scores S = Q K^T (64 x 32): each warpgroup multiplies half of the latent's dims (18
//   m64n32k16 for DeepSeek's 576, A and B by descriptor), the two add their halves through
//   shared memory, so both hold the same full scores (addition commutes);
// - the last tile's O += P V, issued behind the scores so that the tensor cores run it while
//   the warps exchange the scores and take their softmax (as FlashAttention-3 overlaps a
//   warpgroup's softmax with its matrix products): each warpgroup the dims of its half of V
//   (the latent's first v_dim dims, read MN-major from the same rows), P from registers: 2
//   m64n256k16 for DeepSeek's 512;
// - the online softmax per row in registers (kernels/mma_softmax.hpp: a warpgroup's D is, per
//   warp, mma.sync's C fragment of its 16 rows), in log2 units; O rescaled once that P V is in.
// Two block barriers a tile (three for fp8): the tile has landed (and tile t - 2's buffer is
// free; fp8: then is converted), and the halves of the scores are written. Numerics as the
// tensor-core decode (docs/simt.md): the query and the weights rounded to 16 bits, products exact,
// sums fp32.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/online_softmax.hpp"
#include "kvc/attention/partial_result.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_mma.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/mma_softmax.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "kvc/kernels/wgmma_tiles.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// Whether the warpgroup decode takes a layer shape: a latent stored in fp16 or bf16, or in fp8
/// e4m3 or e5m2 (converted exactly into fp16 tiles in shared memory), k_dim a multiple of 64 up
/// to 576, v_dim 128, 256 or 512 (a warpgroup's half of V one wgmma's N).
template <class Shape>
inline constexpr bool wgmma_decode_supports =
    Shape::latent &&
    (mma_reads_stored<typename Shape::k_type> || std::is_same_v<typename Shape::k_type, fp8_e4m3> ||
     std::is_same_v<typename Shape::k_type, fp8_e5m2>)&&Shape::k_dim
            % 64 ==
        0 &&
    Shape::k_dim <= 576 && (Shape::v_dim == 128 || Shape::v_dim == 256 || Shape::v_dim == 512) &&
    Shape::v_dim <= Shape::k_dim;

/// The opt-in to the warpgroup decode, as the Block of the launchers and planners (two
/// warpgroups; sm_90a on a GPU, where the CUDA backend must be built for 90a):
///   kvc::simt::decode<shape, kvc::kernels::warpgroup_decode_block<shape>>(plan, view, ...);
template <class Shape>
struct warpgroup_decode_block : block_shape<2 * warpgroup_threads> {
  static_assert(wgmma_decode_supports<Shape>,
                "kvc::kernels::warpgroup_decode_block: the warpgroup decode takes a latent layer "
                "stored in fp16, bf16, fp8 e4m3 or fp8 e5m2, k_dim a multiple of 64 up to 576, "
                "v_dim 128, 256 or 512");
};

/// The warpgroup decode's shared memory, from a 1024-byte aligned start (the launch asks for
/// 1024 bytes more): the query rows; the tiles of 16-bit rows wgmma reads, three (each its
/// keys' rows, then a flag per slot, 1 when staged) where the latents are stored in 16 bits and
/// land there, else two, converted from two buffers of raw rows as stored (each then its
/// flags); each warpgroup's half of the scores, and each thread's row sums.
template <class Shape>
struct wgmma_decode_tiling {
  static constexpr int rows = 64, keys = 32;
  static constexpr bool converts = !mma_reads_stored<typename Shape::k_type>;
  static constexpr int slices = Shape::k_dim / 64;  ///< 64 dims a swizzled row of 128 bytes
  static constexpr std::uint32_t q_slice = rows * 128, k_slice = keys * 128;
  static constexpr std::uint32_t q_bytes = slices * q_slice;
  static constexpr std::uint32_t held = slices * k_slice;  ///< a tile's flags, where they land
  /// Tile t's scores, tile t - 1's values, and tile t + 1 landing; converted, t + 1 lands raw.
  static constexpr int tiles = converts ? 2 : 3;
  static constexpr std::uint32_t tile_bytes = converts ? held : held + 1024;  // 1024-aligned
  static constexpr std::uint32_t raw_row = Shape::k_vector_bytes;
  static constexpr std::uint32_t raw_held = keys * raw_row;  ///< a raw buffer's flags
  static constexpr std::uint32_t raw_bytes = converts ? raw_held + keys * 4 : 0;
  static constexpr std::uint32_t raw = q_bytes + tiles * tile_bytes;
  static constexpr std::uint32_t exchange = raw + 2 * raw_bytes;
  static constexpr std::uint32_t exchange_floats = rows * keys;                  ///< a warpgroup's
  static constexpr std::uint32_t row_sums = exchange + 2 * exchange_floats * 4;  ///< 2 a thread
  static constexpr std::size_t shared_bytes = 1024 + row_sums + 2 * 256 * 4;
};

template <class Shape, class Block = warpgroup_decode_block<Shape>>
struct decode_wgmma {
  static_assert(wgmma_decode_supports<Shape>,
                "kvc::kernels::decode_wgmma: a latent layer stored in fp16, bf16, fp8 e4m3 or fp8 "
                "e5m2, k_dim a multiple of 64 up to 576, v_dim 128, 256 or 512");
  static_assert(Block::threads == 2 * warpgroup_threads && Block::y == 1 && Block::z == 1,
                "kvc::kernels::decode_wgmma: a one-dimensional block of two warpgroups");
  using tiling = wgmma_decode_tiling<Shape>;
  static constexpr int rows = tiling::rows;
  static constexpr int row_chunks = (Shape::group + rows - 1) / rows;
  static constexpr std::size_t shared_bytes = tiling::shared_bytes;

  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const mma_rows_item rows_item = decode_rows_item<Shape>(work, ctx.block_idx().x);
    if (work.softcap > 0.0f)
      attend<true>(ctx, work, rows_item);
    else
      attend<false>(ctx, work, rows_item);
  }

  template <bool SoftCapped, class Context>
  KVC_HOST_DEVICE static void attend(const Context& ctx, const decode_work& work,
                                     const mma_rows_item& item) {
    using k_type = typename Shape::k_type;
    constexpr mma_input input = mma_input_of<k_type>;
    constexpr int k_dim = Shape::k_dim, v_dim = Shape::v_dim, v_half = v_dim / 2;
    constexpr int keys = tiling::keys, half_steps = k_dim / 32;  // a warpgroup's K steps
    constexpr auto threads = static_cast<int>(Block::threads);
    constexpr float log2e = 1.4426950408889634f, ln2 = 0.6931471805599453f;
    const auto thread = static_cast<int>(ctx.thread_rank());
    const auto lane = static_cast<int>(ctx.lane());
    const int group_warp = static_cast<int>(ctx.warp()) % 4, half = thread / 128;
    const int quad = lane / 4, pair = lane % 4;
    const page_geometry& geo = work.geometry;

    const int first_row = static_cast<int>(ctx.block_idx().y) % row_chunks * rows;
    const int block_rows = Shape::group - first_row < rows ? Shape::group - first_row : rows;
    const std::int64_t length = work.seq_lens[item.sequence];
    const std::int64_t query_position = item.query_position;

    std::byte* shared = ctx.dynamic_shared();
    std::byte* tiles = shared + (1024 - ctx.shared_address(shared) % 1024) % 1024;
    const std::uint32_t tiles_address = ctx.shared_address(tiles);

    // The query rows, scaled (softmax scale and log2 e: scores in log2 units, for exp2),
    // rounded to the latent's 16-bit type; rows past the block's are zeros.
    const float q_factor =
        work.scale * log2e * (k_type::scale == scaling::per_layer ? work.k_scale : 1.0f);
    const float* q_in = work.q + item.query * work.q_stride + std::int64_t{first_row} * k_dim;
    for (int i = thread; i < rows * (k_dim / 2); i += threads) {
      const int r = i / (k_dim / 2), d = 2 * (i % (k_dim / 2));
      const std::uint32_t word =
          r < block_rows
              ? mma_pack<input>(q_in[r * k_dim + d] * q_factor, q_in[r * k_dim + d + 1] * q_factor)
              : 0u;
      *reinterpret_cast<std::uint32_t*>(
          tiles + static_cast<std::uint32_t>(d / 64) * tiling::q_slice +
          swizzled_128_offset(static_cast<std::uint32_t>(r),
                              static_cast<std::uint32_t>(d % 64 / 8)) +
          static_cast<std::uint32_t>(d % 8) * 2) = word;
    }

    // Tile t's slot j is token j % slot_width of key block first + j / slot_width, for j below
    // tile_slots (pages of fewer than 16 tokens that do not divide 32 leave the last slots
    // empty: 24 of 32 with pages of 12).
    const int page_tokens = Shape::page_tokens > 0 ? Shape::page_tokens : geo.page_tokens;
    const int slot_width = page_tokens < attention::key_block ? page_tokens : attention::key_block;
    const int blocks_per_tile = keys / slot_width, tile_slots = blocks_per_tile * slot_width;
    const std::int32_t entries_begin = work.indptr[item.sequence];
    const auto kept = work.window.pages_listed(length, page_tokens,
                                               work.indptr[item.sequence + 1] - entries_begin);
    // Tile t's 16-bit rows (what wgmma reads), where its copies land, and its flags.
    using places = wgmma_tile_places<tiling>;
    const auto buffer = [&](std::int64_t t) { return places::rows(t); };
    const auto landing = [&](std::int64_t t) { return places::landing(t); };
    const auto flags = [&](std::int64_t t) {
      return reinterpret_cast<std::int32_t*>(tiles + places::flags(t));
    };
    // Starts staging tile t: 8 threads a slot, 16-byte pieces of its vector (9 each of
    // DeepSeek's 1152 bytes in bf16), placed in the slot's row of each 64-dim slice, or in
    // 8-bit storage the raw row as stored; zeros where there is no token or the query does not
    // see it (its flag 0 there).
    constexpr int slot_threads = threads / keys,
                  pieces = static_cast<int>(Shape::k_vector_bytes) / 16;
    const int slot = thread / slot_threads, slot_thread = thread % slot_threads;
    const auto stage = [&](std::int64_t t) {
      const std::uint32_t base = landing(t);
      const std::int64_t block = item.block_begin + t * blocks_per_tile + slot / slot_width;
      const std::byte* source = nullptr;
      if (slot < tile_slots && block < item.block_end) {
        const std::int64_t entry = block / item.blocks_per_page;
        const int token = static_cast<int>(block % item.blocks_per_page) * attention::key_block +
                          slot % slot_width;
        const std::int64_t position = kept.logical_page(entry) * page_tokens + token;
        if (token < page_tokens && position <= query_position &&
            (!Shape::windowed || work.window.visible(query_position, position)))
          source =
              work.memory +
              static_cast<std::uint64_t>(work.indices[entries_begin + entry]) * geo.page_bytes +
              geo.k_values +
              static_cast<std::uint64_t>(Shape::layout == page_layout::nhd
                                             ? std::int64_t{token} * geo.kv_heads
                                             : std::int64_t{token}) *
                  Shape::k_vector_bytes;
      }
      if (slot_thread == 0) flags(t)[slot] = source != nullptr ? 1 : 0;
      for (int piece = slot_thread; piece < pieces; piece += slot_threads) {
        const auto at = static_cast<std::uint32_t>(piece);
        ctx.copy_async(
            tiles + base +
                (tiling::converts
                     ? static_cast<std::uint32_t>(slot) * tiling::raw_row + 16 * at
                     : at / 8 * tiling::k_slice +
                           swizzled_128_offset(static_cast<std::uint32_t>(slot), at % 8)),
            source != nullptr ? source + 16 * piece : work.memory, source != nullptr);
      }
    };
    // Converts landed tile t from its raw rows into its 16-bit rows, exactly (fp16 holds every
    // fp8 value): thread (slot, slot_thread) takes the 8 values of chunk slot_thread of each
    // 64-dim slice of its slot's row, 16 bytes stored at once at one place of the swizzled
    // row (8 threads a row of 128 bytes: no bank conflict).
    const auto convert = [&](std::int64_t t) {
      if constexpr (tiling::converts) {
        static_assert(threads == 8 * keys, "kvc::kernels::decode_wgmma: 8 threads a slot");
        const std::byte* raw =
            tiles + landing(t) + static_cast<std::uint32_t>(slot) * tiling::raw_row;
        unroll<tiling::slices>([&](auto slice) {
          convert_chunk_to_fp16<k_type>(raw, tiles + buffer(t), tiling::k_slice,
                                        static_cast<std::uint32_t>(slot),
                                        static_cast<std::uint32_t>(8 * slice + slot_thread));
        });
      }
    };

    mma_softmax<std::size_t{keys / 8}> softmax;
    wgmma_d<v_half> o;
    for (float& x : o.reg) x = 0.0f;
    const float softcap = work.softcap * log2e, softcap_inverse = ln2 / work.softcap;
    auto* exchange = reinterpret_cast<float*>(tiles + tiling::exchange);
    float* exchange_mine = exchange + std::size_t{half == 0 ? 0u : tiling::exchange_floats};
    const float* exchange_partner =
        exchange + std::size_t{half == 0 ? tiling::exchange_floats : 0u};
    const int group_thread = thread % 128;
    float* row_sums = reinterpret_cast<float*>(tiles + tiling::row_sums) + 2 * thread;

    const std::int64_t tiles_count =
        (item.block_end - item.block_begin + blocks_per_tile - 1) / blocks_per_tile;
    // O += P V of tile t over this warpgroup's half of V: tokens 16 s on (two 8-row groups of
    // 1024 bytes), its dims 64 at a time one slice on (MN-major), P from registers.
    mma_a weights[std::size_t{keys / 16}]{};
    const auto weigh_values = [&](std::int64_t t) {
      unroll<keys / 16>([&](auto s) {
        const wgmma_descriptor b = make_wgmma_descriptor(
            tiles_address + buffer(t) +
                static_cast<std::uint32_t>(half * v_half / 64) * tiling::k_slice +
                static_cast<std::uint32_t>(s) * 2048,
            tiling::k_slice, 1024, wgmma_swizzle::bytes_128);
        ctx.template wgmma<input, wgmma_major::mn>(weights[s], b, o, true);
      });
      ctx.wgmma_commit();
    };
    // Tile t; with values_pending (every tile but the first: a compile-time branch, so that
    // ptxas sees O's P V in flight on every path through the softmax), the last tile's P V
    // runs on the tensor cores while this one's softmax does.
    const auto attend_tile = [&](std::int64_t t, auto values_pending) {
      // This tile has landed (visible to wgmma, the async proxy), every thread is done with
      // tile t - 2's buffer, which now takes the next tile, and the partner has read the last
      // tile's scores.
      land_wgmma_tile<tiling::converts>(ctx, [&] { convert(t); });
      const std::uint32_t base = buffer(t);
      const std::int32_t* held = flags(t);

      // This warpgroup's half of the scores: K step s reads 16 dims of the query's and the
      // keys' rows (32 bytes into a 128-byte row, 64 dims a slice); then the last tile's P V,
      // issued second so that the scores are waited for first; then the next tile's copies,
      // into the buffer neither reads, while the tensor cores work.
      wgmma_d<keys> partial{};
      ctx.wgmma_fence(partial, o, weights);
      unroll<half_steps>([&](auto index) {
        const int s = half * half_steps + index;
        const std::uint32_t within = static_cast<std::uint32_t>(s % 4) * 32;
        const wgmma_descriptor a = make_wgmma_descriptor(
            tiles_address + static_cast<std::uint32_t>(s / 4) * tiling::q_slice + within, 16, 1024,
            wgmma_swizzle::bytes_128);
        const wgmma_descriptor b = make_wgmma_descriptor(
            tiles_address + base + static_cast<std::uint32_t>(s / 4) * tiling::k_slice + within, 16,
            1024, wgmma_swizzle::bytes_128);
        ctx.template wgmma<input, wgmma_major::k, wgmma_major::k>(a, b, partial, index > 0);
      });
      ctx.wgmma_commit();
      weigh_last_and_wait_scores<decltype(values_pending)::value>(
          ctx, partial, [&] { weigh_values(t - 1); },
          [&] {
            if (t + 1 < tiles_count) stage(t + 1);
          });
      // The halves added: each warpgroup writes its own and reads its partner's after the
      // barrier, value i of thread g at i * 128 + g.
      for (int i = 0; i < keys / 2; ++i) exchange_mine[i * 128 + group_thread] = partial.reg[i];
      ctx.sync();
      mma_c scores[std::size_t{keys / 8}];
      for (int i = 0; i < keys / 2; ++i)
        scores[i / 4].reg[i % 4] = partial.reg[i] + exchange_partner[i * 128 + group_thread];

      // Masks (a slot without a token the query sees), soft-cap, the online softmax, all while
      // the last tile's P V runs; then O rescaled, and this tile's P into the registers that
      // P V read.
      for (int n = 0; n < keys / 8; ++n)
        for (int i = 0; i < 4; ++i)
          if (held[n * 8 + 2 * pair + i % 2] == 0) scores[n].reg[i] = attention::negative_infinity;
      softmax_under_values<SoftCapped, decltype(values_pending)::value, input>(
          ctx, softmax, scores, softcap, softcap_inverse, pair, row_sums, o, weights);
    };
    run_wgmma_tiles(ctx, tiles_count, o, weights, stage, attend_tile, weigh_values);

    // The rows' results, as the tensor-core decode writes them: out and lse (sinks included)
    // when the item is its sequence's only split, else a partial result for the merge.
    softmax.finish(ctx);
    const bool only = item.partial == nullptr;
    const float v_factor = Shape::v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    const attention::partial_slot partials{work.q_heads, v_dim};
    unroll<2>([&](auto h) {
      const int r = group_warp * 16 + quad + 8 * h;
      if (r >= block_rows) return;
      const int q_head = first_row + r;
      const std::int64_t row = item.query * work.q_heads + q_head;
      const int first_dim = half * v_half + 2 * pair;
      if (only) {
        const finished_row f =
            finish_row(softmax.m[h] * ln2, softmax.l[h], 1.0f, work.sink_logits, q_head);
        const float weight = f.weight * v_factor;
        float* out = work.out + row * v_dim + first_dim;
        for (int d = 0; d < v_half / 8; ++d)
          for (int e = 0; e < 2; ++e)
            out[8 * d + e] = weight == 0.0f ? 0.0f : o.reg[4 * d + 2 * h + e] * weight;
        if (half == 0 && pair == 0) work.lse[row] = f.lse;
      } else {
        float* slot_floats = item.partial;
        float* out = slot_floats + partials.acc(q_head) + first_dim;
        for (int d = 0; d < v_half / 8; ++d)
          for (int e = 0; e < 2; ++e) out[8 * d + e] = o.reg[4 * d + 2 * h + e] * v_factor;
        if (half == 0 && pair == 0) {
          slot_floats[partials.m(q_head)] = softmax.m[h] * ln2;
          slot_floats[partials.l(q_head)] = softmax.l[h];
        }
      }
    });
  }
};

}  // namespace kvc::kernels
