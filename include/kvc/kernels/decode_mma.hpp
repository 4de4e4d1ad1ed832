#pragma once
// The tensor-core decode: the query heads that share a KV head are the rows of the matrix
// products, so each cached key and value (a latent, for MLA) is read once for all of them.
// kernels::decode picks it (kernels/decode.hpp) for
// - latent (MLA) layers in absorbed form, 16 query heads or more (DeepSeek V2/V3, Kimi K2),
//   as FlashMLA does (deepseek-ai/FlashMLA, csrc/sm90/decode);
// - attention layers whose groups pass 4 query heads (Llama 3 70B and 405B, Qwen2.5, Qwen3,
//   gpt-oss, GLM-4.5), where the CUDA-core kernel is bound by its arithmetic;
// and any layer whose block is a tensor_core_block; with K and V in fp16 or bf16 (read as
// stored), fp8 e4m3, fp8 e5m2 or int8 (read raw, converted in registers into the fragments:
// kernels/raw_fragments.hpp; V where its dims are a multiple of 64), or int4 (converted
// exactly into fp16 tiles in shared memory once a tile lands, as the extend kernel does);
// scales apply to the scores and the weights.
// Split-K items and the merge are the decode kernels' (kernels/decode_work.hpp).
//
// One block runs one (item, KV head, row chunk) with 2 warps per 16 query heads, up to 64
// heads a block (8 warps). The block stages its query rows (scale and log2 e folded in,
// rounded to K's 16-bit type) in shared memory once; keys and values come in tiles of 32 or
// 64 tokens, staged as stored by 16-byte asynchronous copies into two buffers, the next tile
// in flight while the block computes on this one. The two warps of a 16-head row group share
// its work:
// - scores S = Q K^T: each warp multiplies half of K's dims (its A fragments from the staged
//   query by ldmatrix, its B fragments from the tile), then the two add their halves through
//   shared memory, so both hold the same full scores (addition commutes: the same bits in
//   both);
// - the online softmax per row, in registers, in log2 units (both warps alike);
// - O += P V: each warp the dims of its half of V (a latent's first v_dim dims), at most
//   16 x 256 accumulators a warp, 128 floats a thread for DeepSeek's 512.
// Two block barriers a tile: the tile has landed (and the other buffer is free), and the
// halves of the scores are written; a third for a tile converted into fp16 (int4, or 8-bit V
// whose dims are not a multiple of 64). Numerics as
// the tensor-core extend (docs/simt.md): the query and the weights rounded to 16 bits,
// products exact, sums fp32.

#include <cstddef>
#include <cstdint>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/online_softmax.hpp"
#include "kvc/attention/partial_result.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/mma_softmax.hpp"
#include "kvc/kernels/raw_fragments.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/slot_copy.hpp"
#include "kvc/kernels/tile_convert.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/numeric/unpack.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// Whether the tensor-core decode takes a layer shape: K and V stored in fp16 or bf16 (read
/// as stored), or in fp8 e4m3, fp8 e5m2, int8 or int4 with vectors of whole 16-byte pieces
/// (converted exactly into fp16); k_dim and v_dim multiples of 16 (whole mma steps for
/// each half of V), at most 576 and 512 for a latent (DeepSeek's 512 + 64) and 256 each
/// otherwise (a warp's accumulators stay in registers, two tile buffers in shared memory).
template <class Shape>
inline constexpr bool mma_decode_supports = [] {
  using k_type = typename Shape::k_type;
  using v_type = typename Shape::v_type;
  constexpr bool k_readable = mma_reads_stored<k_type> ||
                              (numeric::unpacks_to_fp16<k_type> && Shape::k_vector_bytes % 16 == 0);
  constexpr bool v_readable = Shape::latent || mma_reads_stored<v_type> ||
                              (numeric::unpacks_to_fp16<v_type> && Shape::v_vector_bytes % 16 == 0);
  constexpr bool whole_steps = Shape::k_dim % 16 == 0 && Shape::v_dim % 16 == 0;
  constexpr bool in_registers = Shape::latent ? Shape::k_dim <= 576 && Shape::v_dim <= 512
                                              : Shape::k_dim <= 256 && Shape::v_dim <= 256;
  return k_readable && v_readable && whole_steps && in_registers;
}();

namespace detail {
constexpr unsigned mma_row_groups(int group) {
  return group >= 64 ? 4u : static_cast<unsigned>((group + 15) / 16);
}
}  // namespace detail

/// The block the tensor-core decode is made for: two warps per 16 query heads, at most 8 warps.
template <class Shape>
using mma_decode_block = block_shape<64 * detail::mma_row_groups(Shape::group)>;

/// The tensor-core decode's shared memory: the query rows, two tile buffers, for K or V not
/// read as stored one converted fp16 tile each, then each warp's half of the scores. A tile
/// buffer holds per slot an int32 (1 when staged) and the int8 / int4 vectors' scales, then
/// the keys and the values: fp16 and bf16 as stored, in rows 16 bytes longer than a vector
/// (so that the 8 rows a fragment load reads fall in different banks), like the converted
/// tiles; the other dtypes raw. Tiles of 64 tokens, 32 where a token's 16-bit rows pass 1 KiB
/// or the block has 2 warps.
template <class Shape, unsigned Warps>
struct mma_decode_tiling {
  using k_type = typename Shape::k_type;
  using v_type = typename Shape::v_type;
  // 8-bit K and V (fp8 e4m3, fp8 e5m2, int8) are read raw by the fragment loads and converted
  // in registers (kernels/raw_fragments.hpp), where V's dims come in whole pairs of 16 a warp;
  // int4 (and 8-bit V of other dims) is converted into an fp16 tile in shared memory first.
  static constexpr bool k_raw =
      raw_fragments_take<k_type> && (!Shape::latent || Shape::v_dim % 64 == 0);
  static constexpr bool v_raw =
      Shape::latent ? k_raw : raw_fragments_take<v_type> && Shape::v_dim % 64 == 0;
  static constexpr bool k_stored = mma_reads_stored<k_type> || k_raw;
  static constexpr bool v_stored = Shape::latent ? k_stored : mma_reads_stored<v_type> || v_raw;
  static constexpr bool k_scaled = k_type::scale == scaling::per_token_head;
  static constexpr bool v_scaled = !Shape::latent && v_type::scale == scaling::per_token_head;
  static constexpr int row_groups = static_cast<int>(Warps) / 2;
  static constexpr int rows = 16 * row_groups;
  static constexpr int k_stride = Shape::k_dim + 8;  ///< 16-bit values from a row to the next
  static constexpr int v_stride = Shape::latent ? k_stride : Shape::v_dim + 8;
  // Two threads or more a slot, so that a warp's copies read whole 32-byte sectors.
  static constexpr int widest_keys =
      (k_stride + (Shape::latent ? 0 : v_stride)) * 2 > 1024 ? 32 : 64;
  static constexpr int keys =
      widest_keys < 16 * static_cast<int>(Warps) ? widest_keys : 16 * static_cast<int>(Warps);
  static constexpr std::size_t pad16(std::size_t bytes) { return (bytes + 15) / 16 * 16; }
  // Raw rows, as 16-bit ones, 16 bytes longer than a vector (the rows a fragment load reads in
  // different banks); rows converted into a tile back to back.
  static constexpr std::size_t k_row = mma_reads_stored<k_type> ? std::size_t{k_stride} * 2
                                       : k_raw                  ? Shape::k_vector_bytes + 16
                                                                : Shape::k_vector_bytes;
  static constexpr std::size_t v_row = Shape::latent              ? k_row  // a latent's V: its K
                                       : mma_reads_stored<v_type> ? std::size_t{v_stride} * 2
                                       : v_raw                    ? Shape::v_vector_bytes + 16
                                                                  : Shape::v_vector_bytes;
  static constexpr std::size_t q_bytes = pad16(std::size_t{rows} * k_stride * 2);
  // Within a buffer:
  static constexpr std::size_t held = 0;
  static constexpr std::size_t k_scales = pad16(std::size_t{keys} * 4);
  static constexpr std::size_t v_scales = k_scales + (k_scaled ? std::size_t{keys} * 4 : 0);
  static constexpr std::size_t k_values = pad16(v_scales + (v_scaled ? std::size_t{keys} * 4 : 0));
  static constexpr std::size_t v_values = Shape::latent ? k_values : k_values + keys * k_row;
  static constexpr std::size_t buffer_bytes =
      pad16(k_values + keys * k_row + (Shape::latent ? 0 : keys * v_row));
  // After both buffers:
  static constexpr std::size_t k_converted = q_bytes + 2 * buffer_bytes;
  static constexpr std::size_t v_converted =
      k_converted + (k_stored ? 0 : std::size_t{keys} * k_stride * 2);
  static constexpr std::size_t exchange =
      v_converted + (v_stored || Shape::latent ? 0 : std::size_t{keys} * v_stride * 2);
  static constexpr int exchange_floats = keys / 2 * static_cast<int>(warp_size);  ///< a warp
  static constexpr std::size_t shared_bytes =
      exchange + std::size_t{Warps} * static_cast<std::size_t>(exchange_floats) * 4;
};

/// What one block of the tensor-core kernel attends: its page-table row, its row of q, out and
/// lse (a sequence for decode, a new token for extend), the position its query rows attend
/// from, the key blocks it reads (over the kept pages) and where a split writes its partial
/// result (null: the block finishes the rows, writing out and lse).
struct mma_rows_item {
  std::int32_t sequence = 0;
  std::int64_t query = 0;
  std::int64_t query_position = 0;
  std::int64_t block_begin = 0, block_end = 0;
  std::int64_t blocks_per_page = 1;
  float* partial = nullptr;
};

/// The rows item of decode block `block` (its item of the plan): its sequence's last position,
/// and its partial result's slot when the sequence has more than one split.
template <class Shape>
KVC_HOST_DEVICE mma_rows_item decode_rows_item(const decode_work& work, std::uint32_t block) {
  const attention::decode_plan::item item = work.plan.items[block];
  const bool only = work.plan.splits[item.sequence] == 1;
  return {item.sequence,
          item.sequence,
          work.seq_lens[item.sequence] - 1,
          item.block_begin,
          item.block_end,
          Shape::page_tokens > 0
              ? (Shape::page_tokens + attention::key_block - 1) / attention::key_block
              : work.blocks_per_page,
          only ? nullptr
               : work.partial + std::int64_t{block} *
                                    attention::partial_slot{work.q_heads, Shape::v_dim}.floats()};
}

template <class Shape, class Block = mma_decode_block<Shape>>
struct decode_mma {
  static_assert(mma_decode_supports<Shape>,
                "kvc::kernels::decode_mma: the tensor-core decode takes K and V stored in fp16 or "
                "bf16, or in fp8 e4m3, fp8 e5m2, int8 or int4 with vectors of whole 16-byte "
                "pieces; k_dim and v_dim multiples of 16, at most 576 and 512 for a latent layer "
                "and 256 otherwise");
  static_assert(Block::threads % 64 == 0 && Block::threads <= 256 && Block::y == 1 && Block::z == 1,
                "kvc::kernels::decode_mma: a one-dimensional block of 2 to 8 warps, an "
                "even count (two warps per 16 query heads)");
  using tiling = mma_decode_tiling<Shape, Block::warps>;
  static constexpr int rows = tiling::rows;
  static constexpr int row_chunks = (Shape::group + rows - 1) / rows;
  static constexpr std::size_t shared_bytes = tiling::shared_bytes;

  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const mma_rows_item rows_item = decode_rows_item<Shape>(work, ctx.block_idx().x);
    // Two bodies, so that a layer without a soft-cap runs a loop without its tanh.
    if (work.softcap > 0.0f)
      attend<true>(ctx, work, rows_item);
    else
      attend<false>(ctx, work, rows_item);
  }

  /// Attends one block's query rows (block_idx().y: a KV head and row chunk) over the item's
  /// key blocks. Work: decode_work or extend_work (the layer, q, out, lse, the parameters).
  template <bool SoftCapped, class Context, class Work>
  KVC_HOST_DEVICE static void attend(const Context& ctx, const Work& work,
                                     const mma_rows_item& item) {
    using k_type = typename Shape::k_type;
    using v_type = typename Shape::v_type;
    constexpr mma_input k_input = mma_input_of<k_type>;
    constexpr mma_input v_input = mma_input_of<v_type>;
    // A latent's values are its keys: their scales are K's (the view's v_scale is k_scale).
    constexpr bool values_scaled = Shape::latent ? tiling::k_scaled : tiling::v_scaled;
    constexpr int group = Shape::group, k_dim = Shape::k_dim, v_dim = Shape::v_dim;
    constexpr int keys = tiling::keys, k_stride = tiling::k_stride, v_stride = tiling::v_stride;
    constexpr int k_steps = k_dim / mma_k, first_half_steps = (k_steps + 1) / 2;
    // Both halves the same whole number of step pairs (DeepSeek's 576 dims: 18 steps each).
    constexpr bool even_halves = k_steps % 4 == 0;
    constexpr int key_blocks = keys / mma_n, p_steps = keys / mma_k;
    constexpr int v_half = v_dim / 2, v_blocks = v_half / mma_n;
    constexpr auto threads = static_cast<int>(Block::threads);
    constexpr auto lanes = static_cast<int>(warp_size);
    constexpr float log2e = 1.4426950408889634f, ln2 = 0.6931471805599453f;
    const auto thread = static_cast<int>(ctx.thread_rank());
    const auto lane = static_cast<int>(ctx.lane()), warp = static_cast<int>(ctx.warp());
    const int quad = lane / 4, pair = lane % 4;  // a fragment's row group and column pair
    const int row_group = warp / 2, half = warp % 2;
    const page_geometry& geo = work.geometry;

    const auto head = static_cast<int>(ctx.block_idx().y) / row_chunks;
    const int first_row = static_cast<int>(ctx.block_idx().y) % row_chunks * rows;
    const int block_rows = group - first_row < rows ? group - first_row : rows;
    const int q_head0 = head * group + first_row;
    const std::int64_t length = work.seq_lens[item.sequence];
    const std::int64_t query_position = item.query_position;

    std::byte* shared = ctx.dynamic_shared();
    auto* q_words = reinterpret_cast<std::uint32_t*>(shared);
    const auto* q_tile = reinterpret_cast<const std::uint16_t*>(shared);

    // The query rows, scaled (by the softmax scale, the keys' fp8 scale and log2(e): scores are
    // kept in log2 units, for exp2), rounded to K's 16-bit type; rows past the block's are zeros.
    const float q_factor =
        work.scale * log2e * (k_type::scale == scaling::per_layer ? work.k_scale : 1.0f);
    // For raw 8-bit keys the dims of each mma step are staged in the order their fragments
    // come in (kernels/raw_fragments.hpp).
    const float* q_in = work.q + item.query * work.q_stride + std::int64_t{q_head0} * k_dim;
    for (int i = thread; i < rows * (k_dim / 2); i += threads) {
      const int r = i / (k_dim / 2), w = i % (k_dim / 2);
      const int d = tiling::k_raw ? 16 * (w / 8) + raw_query_dim(w % 8) : 2 * w;
      q_words[r * (k_stride / 2) + w] = r < block_rows
                                            ? mma_pack<k_input>(q_in[r * k_dim + d] * q_factor,
                                                                q_in[r * k_dim + d + 1] * q_factor)
                                            : 0u;
    }

    // A tile is `blocks_per_tile` key blocks of the item: slot j is token j % slot_width of
    // block j / slot_width (a page smaller than a key block fills slot_width slots of it).
    const int page_tokens = Shape::page_tokens > 0 ? Shape::page_tokens : geo.page_tokens;
    const int slot_width = page_tokens < attention::key_block ? page_tokens : attention::key_block;
    const int blocks_per_tile = keys / slot_width;
    const int tile_slots = blocks_per_tile * slot_width;
    const std::int32_t entries_begin = work.indptr[item.sequence];
    const auto kept = work.window.pages_listed(length, page_tokens,
                                               work.indptr[item.sequence + 1] - entries_begin);
    const auto buffer = [&](std::int64_t t) {
      return shared + tiling::q_bytes + static_cast<std::size_t>(t % 2) * tiling::buffer_bytes;
    };
    // Starts staging tile t: Block::threads / keys threads a slot, each finding the slot's page
    // once, then copying its share of the K and V vectors' 16-byte pieces; zeros where there is
    // no token or the query does not see it (held 0 there).
    constexpr int slot_threads = threads / keys;
    const int slot = thread / slot_threads, slot_thread = thread % slot_threads;
    const std::int64_t blocks_per_page = item.blocks_per_page;
    const auto stage = [&](std::int64_t t) {
      std::byte* base = buffer(t);
      const std::int64_t first_block = item.block_begin + t * blocks_per_tile;
      const std::byte* page = nullptr;
      std::uint64_t index = 0;
      const std::int64_t block = first_block + slot / slot_width;
      if (slot < tile_slots && block < item.block_end) {
        const std::int64_t entry = block / blocks_per_page;
        const int token =
            static_cast<int>(block % blocks_per_page) * attention::key_block + slot % slot_width;
        const std::int64_t position = kept.logical_page(entry) * page_tokens + token;
        if (token < page_tokens && position <= query_position &&
            (!Shape::windowed || work.window.visible(query_position, position))) {
          index = static_cast<std::uint64_t>(Shape::layout == page_layout::nhd
                                                 ? std::int64_t{token} * geo.kv_heads + head
                                                 : std::int64_t{head} * page_tokens + token);
          page = work.memory +
                 static_cast<std::uint64_t>(work.indices[entries_begin + entry]) * geo.page_bytes;
        }
      }
      if (slot_thread == 0) {
        reinterpret_cast<std::int32_t*>(base + tiling::held)[slot] = page != nullptr ? 1 : 0;
        // int8 / int4: the vectors' scales, zeros where there is no token.
        if constexpr (tiling::k_scaled)
          ctx.copy_async_4(
              base + tiling::k_scales + 4 * slot,
              page != nullptr ? page + geo.k_scales + index * scale_bytes : work.memory,
              page != nullptr);
        if constexpr (tiling::v_scaled)
          ctx.copy_async_4(
              base + tiling::v_scales + 4 * slot,
              page != nullptr ? page + geo.v_scales + index * scale_bytes : work.memory,
              page != nullptr);
      }
      // A slot with no token reads nothing: its source is the page memory's start, for an
      // address that is one.
      copy_slot<static_cast<int>(Shape::k_vector_bytes / 16), slot_threads>(
          ctx, base + tiling::k_values + std::size_t{static_cast<unsigned>(slot)} * tiling::k_row,
          page != nullptr ? page + geo.k_values + index * Shape::k_vector_bytes : work.memory,
          slot_thread, page != nullptr);
      if constexpr (!Shape::latent)
        copy_slot<static_cast<int>(Shape::v_vector_bytes / 16), slot_threads>(
            ctx, base + tiling::v_values + std::size_t{static_cast<unsigned>(slot)} * tiling::v_row,
            page != nullptr ? page + geo.v_values + index * Shape::v_vector_bytes : work.memory,
            slot_thread, page != nullptr);
    };

    mma_softmax<std::size_t{key_blocks}> softmax;
    mma_c acc[std::size_t{v_blocks}] = {};
    const float softcap = work.softcap * log2e, softcap_inverse = ln2 / work.softcap;
    // The rows (and columns) this lane names for ldmatrix: lanes 8 j .. 8 j + 7 give matrix j.
    const int matrix = lane / 8, matrix_row = lane % 8;
    const int step_begin = half == 0 ? 0 : first_half_steps;
    const int step_end = half == 0 ? first_half_steps : k_steps;
    float* exchange_mine =
        reinterpret_cast<float*>(shared + tiling::exchange) + warp * tiling::exchange_floats;
    const float* exchange_partner = reinterpret_cast<const float*>(shared + tiling::exchange) +
                                    (warp ^ 1) * tiling::exchange_floats;

    const std::int64_t tiles =
        (item.block_end - item.block_begin + blocks_per_tile - 1) / blocks_per_tile;
    if (tiles > 0) stage(0);
    for (std::int64_t t = 0; t < tiles; ++t) {
      // This tile has landed, every thread is done with the other buffer (the last tile's),
      // which now takes the next tile, and the partner has read the last tile's scores.
      ctx.wait_async_copies();
      ctx.sync();
      const std::byte* base = buffer(t);
      // K or V not read as stored: the block converts the raw tile into the fp16 one (exact)
      // before the next tile's copies are issued, then meets again before any warp reads it.
      const staged_tile tile = convert_staged<Shape, tiling, threads>(ctx, base, shared);
      if (t + 1 < tiles) stage(t + 1);
      if constexpr (converts_tiles<tiling>) ctx.sync();
      const std::int32_t* held = tile.held;
      const float* k_scales = tile.k_scales;
      const float* v_scales = tile.v_scales;
      const std::uint16_t* k_tile = tile.k;
      const std::uint16_t* v_tile = tile.v;

      // This warp's half of the scores: ldmatrix gives A (the query, as stored) for one k step
      // and B (key n's values k, as stored) for two k steps at once.
      // A row group past the block's rows computes on zero query rows: the barriers are the
      // block's, and its warps stay converged for the shuffles.
      mma_c scores[std::size_t{key_blocks}] = {};
      unroll<(first_half_steps + 1) / 2>([&](auto pair_index) {
        const int s = step_begin + 2 * pair_index;
        if (!even_halves && s >= step_end) return;
        const bool two = even_halves || s + 1 < step_end;
        const std::uint16_t* q_row =
            q_tile + (row_group * 16 + matrix_row + 8 * (matrix % 2)) * k_stride + 8 * (matrix / 2);
        const mma_matrices a0 = ctx.template load_matrices<false>(q_row + s * 16);
        const mma_matrices a1 = two ? ctx.template load_matrices<false>(q_row + (s + 1) * 16) : a0;
        if constexpr (tiling::k_raw) {
          // Raw 8-bit keys: one load gives key blocks n and n + 1 for steps s and s + 1
          // (matrix m: block n + m / 2, step s + m % 2; a step past the half reads the row's
          // padding or the other half, unused).
          const auto* raw = reinterpret_cast<const std::byte*>(k_tile);
          unroll<key_blocks / 2>([&](auto block_pair) {
            constexpr int n = 2 * decltype(block_pair)::value;
            const mma_matrices b = ctx.template load_matrices<false>(
                raw + static_cast<std::size_t>((n + matrix / 2) * 8 + matrix_row) * tiling::k_row +
                static_cast<std::size_t>(s + matrix % 2) * 16);
            unroll<2>([&](auto m) {
              scores[n + m] = ctx.template mma_m16n8k16<k_input>(
                  {{a0.reg[0], a0.reg[1], a0.reg[2], a0.reg[3]}},
                  raw_key_fragment<k_type>(b.reg[2 * m]), scores[n + m]);
              if (two)
                scores[n + m] = ctx.template mma_m16n8k16<k_input>(
                    {{a1.reg[0], a1.reg[1], a1.reg[2], a1.reg[3]}},
                    raw_key_fragment<k_type>(b.reg[2 * m + 1]), scores[n + m]);
            });
          });
        } else {
          const int column = s * 16 + 8 * (two ? matrix : matrix % 2);
          unroll<key_blocks>([&](auto n) {
            const mma_matrices b = ctx.template load_matrices<false>(
                k_tile + (n * 8 + matrix_row) * k_stride + column);
            scores[n] = ctx.template mma_m16n8k16<k_input>(
                {{a0.reg[0], a0.reg[1], a0.reg[2], a0.reg[3]}}, {{b.reg[0], b.reg[1]}}, scores[n]);
            if (two)
              scores[n] =
                  ctx.template mma_m16n8k16<k_input>({{a1.reg[0], a1.reg[1], a1.reg[2], a1.reg[3]}},
                                                     {{b.reg[2], b.reg[3]}}, scores[n]);
          });
        }
      });
      // The two halves added: each warp writes its own, and reads its partner's after the
      // barrier (its 16 floats a lane in the same fragment places).
      for (int n = 0; n < key_blocks; ++n)
        for (int i = 0; i < 4; ++i) exchange_mine[(n * 4 + i) * lanes + lane] = scores[n].reg[i];
      ctx.sync();
      for (int n = 0; n < key_blocks; ++n)
        for (int i = 0; i < 4; ++i)
          scores[n].reg[i] += exchange_partner[(n * 4 + i) * lanes + lane];
      if constexpr (tiling::k_scaled)  // int8 / int4 keys' scales
        for (int n = 0; n < key_blocks; ++n)
          for (int i = 0; i < 4; ++i) scores[n].reg[i] *= k_scales[n * 8 + 2 * pair + i % 2];

      // Masks (a slot without a token the query sees), soft-cap, the online softmax.
      for (int n = 0; n < key_blocks; ++n)
        for (int i = 0; i < 4; ++i)
          if (held[n * 8 + 2 * pair + i % 2] == 0) scores[n].reg[i] = attention::negative_infinity;
      softmax.template cap<SoftCapped>(scores, softcap, softcap_inverse);
      const mma_softmax_step step = softmax.next(ctx, scores);
      mma_a weights[std::size_t{p_steps}];
      if constexpr (values_scaled)  // int8 / int4 values' scales
        softmax.template weights<v_input>(
            scores, step, pair, [&](int j) { return v_scales[j]; }, weights);
      else
        softmax.template weights<v_input>(scores, step, pair, unit_value_scale{}, weights);
      step.rescale(ctx, acc);
      // O += P V over this warp's half of V: ldmatrix.trans gives B (key k's value n, stored
      // [k][n]) for two blocks of 8 dims at once; from raw 8-bit values, for two chunks of 16
      // dims, each an even and an odd block (matrix m: keys 8 (m % 2) on, chunk m / 2).
      if constexpr (tiling::v_raw) {
        const auto* raw = reinterpret_cast<const std::byte*>(v_tile);
        unroll<p_steps>([&](auto s) {
          unroll<v_half / 32>([&](auto chunk_pair) {
            constexpr int chunk = 2 * decltype(chunk_pair)::value;
            const mma_matrices b = ctx.template load_matrices<true>(
                raw +
                static_cast<std::size_t>(s * 16 + matrix_row + 8 * (matrix % 2)) * tiling::v_row +
                static_cast<std::size_t>(half * v_half + 16 * (chunk + matrix / 2)));
            unroll<2>([&](auto c) {
              const raw_value_fragments f =
                  raw_value_fragments_of<v_type>(b.reg[2 * c], b.reg[2 * c + 1]);
              acc[2 * (chunk + c)] =
                  ctx.template mma_m16n8k16<v_input>(weights[s], f.even, acc[2 * (chunk + c)]);
              acc[2 * (chunk + c) + 1] =
                  ctx.template mma_m16n8k16<v_input>(weights[s], f.odd, acc[2 * (chunk + c) + 1]);
            });
          });
        });
      } else {
        unroll<p_steps>([&](auto s) {
          unroll<(v_blocks + 1) / 2>([&](auto block_pair) {
            constexpr int d = 2 * decltype(block_pair)::value;
            const int dims = half * v_half + 8 * (d + (d + 1 < v_blocks ? matrix / 2 : 0));
            const mma_matrices b = ctx.template load_matrices<true>(
                v_tile + (s * 16 + matrix_row + 8 * (matrix % 2)) * v_stride + dims);
            acc[d] = ctx.template mma_m16n8k16<v_input>(weights[s], {{b.reg[0], b.reg[1]}}, acc[d]);
            if constexpr (d + 1 < v_blocks)
              acc[d + 1] = ctx.template mma_m16n8k16<v_input>(weights[s], {{b.reg[2], b.reg[3]}},
                                                              acc[d + 1]);
          });
        });
      }
    }

    // The rows' results: a row's sum of weights over its 4 lanes, then out and lse (sinks
    // included) when the item is its sequence's only split, else a partial result for the merge
    // (natural-log units, as the other decode kernels write them).
    softmax.finish(ctx);
    const bool only = item.partial == nullptr;
    const float v_factor = v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    const attention::partial_slot partials{work.q_heads, v_dim};
    // The dim, past the warp's first, of accumulator d's value 2 h + e: block d holds dims
    // 8 d on, or for raw values the even (d even) or odd dims of the chunk of 16 d / 2.
    const auto dim_of = [&](int d, int e) {
      return tiling::v_raw ? 16 * (d / 2) + raw_value_dim(pair, e, d % 2 == 1)
                           : 8 * d + 2 * pair + e;
    };
    unroll<2>([&](auto h) {
      const int r = row_group * 16 + quad + 8 * h;
      if (r >= block_rows) return;
      const int q_head = q_head0 + r;
      const std::int64_t row = item.query * work.q_heads + q_head;
      const int first_dim = half * v_half;
      if (only) {
        // The V scale apart, so that finish_row divides a constant 1 by l (a reciprocal: a
        // general division would call its slow path and spill registers around the call).
        const finished_row f =
            finish_row(softmax.m[h] * ln2, softmax.l[h], 1.0f, work.sink_logits, q_head);
        const float weight = f.weight * v_factor;
        float* out = work.out + row * v_dim + first_dim;
        unroll<v_blocks>([&](auto d) {
          out[dim_of(d, 0)] = weight == 0.0f ? 0.0f : acc[d].reg[2 * h] * weight;
          out[dim_of(d, 1)] = weight == 0.0f ? 0.0f : acc[d].reg[2 * h + 1] * weight;
        });
        if (half == 0 && pair == 0) work.lse[row] = f.lse;
      } else {
        float* slot_floats = item.partial;
        float* out = slot_floats + partials.acc(q_head) + first_dim;
        unroll<v_blocks>([&](auto d) {
          out[dim_of(d, 0)] = acc[d].reg[2 * h] * v_factor;
          out[dim_of(d, 1)] = acc[d].reg[2 * h + 1] * v_factor;
        });
        if (half == 0 && pair == 0) {
          slot_floats[partials.m(q_head)] = softmax.m[h] * ln2;
          slot_floats[partials.l(q_head)] = softmax.l[h];
        }
      }
    });
  }
};

}  // namespace kvc::kernels
