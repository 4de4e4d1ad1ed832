#pragma once
// The tiled decode kernel: the general path, for the shapes the streamed kernel
// (kernels/decode_streamed.hpp) does not take: latent (MLA) layers, vectors that are not
// whole 16-byte pieces, page sizes not known at compile time.
//
// One block runs one (item, KV head, row chunk): it stages a tile of up to 64 tokens of the
// KV head's keys and values in shared memory (16-byte asynchronous copies where the vectors
// allow), and every query row of the chunk reads the tile from there, so a tile is read from
// memory once for its whole query group (a group too large for the registers is cut into row
// chunks, each reading the tile). Two tile buffers: the next tile's copies are issued before
// the block computes on this one. Per tile: scores (a thread per row and token), the online
// softmax (a warp per row), the weighted values (a thread per value dimension, all rows in
// registers). An item that is its sequence's only split writes out and lse itself (sinks
// included); the splits of the others go to the workspace in the CPU's slot format and the
// merge kernel combines them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/online_softmax.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// The rows of a query group one block takes, and the tiles it stages. A thread keeps
/// rows x ceil(v_dim / threads) accumulators in registers, at most 64; the two tile buffers
/// (keys, values) and the scores stay within 96 KiB of shared memory, so that two blocks fit
/// an SM of sm_80 and sm_90.
template <class Shape, unsigned Threads>
struct decode_tiling {
  static constexpr int values_per_thread =
      (Shape::v_dim + static_cast<int>(Threads) - 1) / static_cast<int>(Threads);
  static constexpr int max_rows = 64 / values_per_thread > 0 ? 64 / values_per_thread : 1;
  static constexpr int row_chunks = (Shape::group + max_rows - 1) / max_rows;
  static constexpr int rows = (Shape::group + row_chunks - 1) / row_chunks;

  static constexpr std::size_t pad16(std::size_t bytes) { return (bytes + 15) / 16 * 16; }
  // Rows of the staged vectors are 16 bytes longer than 16-byte multiples: a quarter-warp's
  // 16-byte reads of consecutive tokens then fall in different banks.
  static constexpr std::size_t k_row_bytes = pad16(Shape::k_vector_bytes) + 16;
  static constexpr std::size_t v_row_bytes = Shape::latent ? 0 : pad16(Shape::v_vector_bytes) + 16;

  // Two tile buffers: the next tile is staged while the block computes on this one.
  struct offsets {
    std::size_t q = 0, scores = 0, m = 0, l = 0, factor = 0;
    std::size_t buffer = 0;  ///< where the first tile buffer starts; the second follows it
    std::size_t buffer_bytes = 0;
    // Within a buffer:
    std::size_t position = 0, k_scales = 0, v_scales = 0, keys = 0, values = 0;
    std::size_t total = 0;
  };
  static constexpr offsets layout_for(int tile_tokens) {
    const auto n = static_cast<std::size_t>(tile_tokens);
    const auto r = static_cast<std::size_t>(rows);
    offsets o;
    o.scores = pad16(o.q + r * static_cast<std::size_t>(Shape::k_dim) * sizeof(float));
    o.m = pad16(o.scores + r * n * sizeof(float));
    o.l = pad16(o.m + r * sizeof(float));
    o.factor = pad16(o.l + r * sizeof(float));
    o.buffer = pad16(o.factor + r * sizeof(float));
    o.k_scales = pad16(o.position + n * sizeof(std::int64_t));
    o.v_scales = pad16(o.k_scales + n * sizeof(float));
    o.keys = pad16(o.v_scales + n * sizeof(float));
    o.values = o.keys + n * k_row_bytes;
    o.buffer_bytes = pad16(o.values + n * v_row_bytes);
    o.total = o.buffer + 2 * o.buffer_bytes;
    return o;
  }
  static constexpr std::size_t shared_budget = 96 * 1024;
  static constexpr int slots = layout_for(64).total <= shared_budget   ? 64
                               : layout_for(32).total <= shared_budget ? 32
                                                                       : 16;
  static constexpr offsets shared = layout_for(slots);
};

namespace detail {

// Value i of a 32-bit word of stored values (little-endian, as x86 and NVIDIA GPUs are),
// before its scale (per-vector for int8 / int4, per-layer for fp8). Staged vectors are read
// as the 32-bit words their copies wrote, never through another type.
template <class Type>
KVC_HOST_DEVICE inline float word_value(std::uint32_t word, int i) {
  if constexpr (Type::bits == 32) {
    return numeric::float_from_bits(word);
  } else if constexpr (std::is_same_v<Type, int8>) {
    return static_cast<float>(static_cast<std::int8_t>((word >> (8 * i)) & 0xFFu));
  } else if constexpr (std::is_same_v<Type, int4>) {
    return static_cast<float>(static_cast<int>(((word >> (4 * i)) & 0xFu) ^ 8u) - 8);
  } else {
    using codec = numeric::codec<Type>;
    constexpr std::uint32_t mask = (1u << Type::bits) - 1u;
    return codec::decode(static_cast<typename codec::stored>((word >> (Type::bits * i)) & mask));
  }
}

// Value d of a staged vector (4-byte aligned; its row may be read past its end, into the
// padding).
template <class Type>
KVC_HOST_DEVICE inline float raw_value(const std::byte* vector, int d) {
  constexpr int per_word = 32 / Type::bits;
  return word_value<Type>(reinterpret_cast<const std::uint32_t*>(vector)[d / per_word],
                          d % per_word);
}

// The dot product of a query row (floats) and a staged vector of Dim values, 16 bytes of the
// vector at a time where its size allows.
template <class Type, int Dim, class Context>
KVC_HOST_DEVICE inline float dot_raw(const Context& ctx, const float* q, const std::byte* vector) {
  constexpr int bytes = Dim * Type::bits / 8;
  constexpr int per_word = 32 / Type::bits;
  float sum = 0.0f;
  if constexpr (bytes % 16 == 0) {
    for (int c = 0; c < bytes / 16; ++c) {
      const vec16 chunk = ctx.load_16(vector + 16 * c);
      const std::uint32_t words[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
      const float* q_chunk = q + c * 4 * per_word;
      for (int w = 0; w < 4; ++w)
        for (int i = 0; i < per_word; ++i)
          sum += q_chunk[w * per_word + i] * word_value<Type>(words[w], i);
    }
  } else {
    for (int d = 0; d < Dim; ++d) sum += q[d] * raw_value<Type>(vector, d);
  }
  return sum;
}

// Copies `bytes` bytes from global to shared memory with the threads of the block, in 16-,
// 4- or 1-byte pieces as the size allows (both ends 16-byte aligned for 16).
template <std::uint32_t Bytes, class Context>
KVC_HOST_DEVICE inline void copy_piece(const Context& ctx, std::byte* destination,
                                       const std::byte* source, std::uint32_t piece) {
  if constexpr (Bytes % 16 == 0) {
    ctx.copy_async(destination + 16 * piece, source + 16 * piece);
  } else if constexpr (Bytes % 4 == 0) {
    reinterpret_cast<std::uint32_t*>(destination)[piece] =
        reinterpret_cast<const std::uint32_t*>(source)[piece];
  } else {
    destination[piece] = source[piece];
  }
}
template <std::uint32_t Bytes>
inline constexpr std::uint32_t pieces_of = Bytes % 16 == 0  ? Bytes / 16
                                           : Bytes % 4 == 0 ? Bytes / 4
                                                            : Bytes;

}  // namespace detail

template <class Shape, class Block = block_shape<128>>
struct decode_tiled {
  static_assert(Block::threads % warp_size == 0, "kernels::decode: a block of whole warps");
  using tiling = decode_tiling<Shape, Block::threads>;
  static constexpr std::size_t shared_bytes = tiling::shared.total;
  static constexpr int row_chunks = tiling::row_chunks;
  static constexpr int rows = tiling::rows, slots = tiling::slots;
  static constexpr int values_per_thread = tiling::values_per_thread;

  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    using k_type = typename Shape::k_type;
    using v_type = typename Shape::v_type;
    constexpr auto threads = static_cast<int>(Block::threads);
    constexpr auto layout = tiling::shared;
    const auto thread = static_cast<int>(ctx.thread_rank());
    const page_geometry& geo = work.geometry;
    const attention::decode_plan::item item = work.plan.items[ctx.block_idx().x];
    const auto head = static_cast<int>(ctx.block_idx().y) / tiling::row_chunks;
    const int first_row = static_cast<int>(ctx.block_idx().y) % tiling::row_chunks * rows;
    const int block_rows = Shape::group - first_row < rows ? Shape::group - first_row : rows;
    const int q_head0 = head * Shape::group + first_row;
    const std::int64_t length = work.seq_lens[item.sequence];
    const std::int64_t query_position = length - 1;

    std::byte* shared = ctx.dynamic_shared();
    auto* q_rows = reinterpret_cast<float*>(shared + layout.q);
    auto* scores = reinterpret_cast<float*>(shared + layout.scores);
    auto* m = reinterpret_cast<float*>(shared + layout.m);
    auto* l = reinterpret_cast<float*>(shared + layout.l);
    auto* factor = reinterpret_cast<float*>(shared + layout.factor);
    constexpr std::size_t v_row_bytes = Shape::latent ? tiling::k_row_bytes : tiling::v_row_bytes;

    // The query rows, scaled (and by the keys' fp8 scale: keys are scored raw).
    const float q_factor = work.scale * (k_type::scale == scaling::per_layer ? work.k_scale : 1.0f);
    const float* q_in =
        work.q + std::int64_t{item.sequence} * work.q_stride + std::int64_t{q_head0} * Shape::k_dim;
    for (int i = thread; i < block_rows * Shape::k_dim; i += threads)
      q_rows[i] = q_in[i] * q_factor;
    for (int r = thread; r < rows; r += threads) {
      m[r] = attention::negative_infinity;
      l[r] = 0.0f;
    }
    float acc[static_cast<std::size_t>(rows)][static_cast<std::size_t>(values_per_thread)] = {};

    const int page_tokens = geo.page_tokens;
    const int slot_width = page_tokens < attention::key_block ? page_tokens : attention::key_block;
    const int blocks_per_tile = slots / slot_width;
    const int tile_slots = blocks_per_tile * slot_width;
    const std::int32_t entries_begin = work.indptr[item.sequence];
    const auto kept = work.window.pages_listed(length, page_tokens,
                                               work.indptr[item.sequence + 1] - entries_begin);
    const auto page_of_entry = [&](std::int64_t entry) {
      return work.memory +
             static_cast<std::uint64_t>(work.indices[entries_begin + entry]) * geo.page_bytes;
    };
    // Slot j of the tile from key block `first_block`: its page and token, or none.
    struct slot_place {
      const std::byte* page;
      int token;
      std::int64_t position;
    };
    const auto place = [&](std::int64_t first_block, int j) {
      const std::int64_t block = first_block + j / slot_width;
      if (block >= item.block_end) return slot_place{nullptr, 0, -1};
      const std::int64_t entry = block / work.blocks_per_page;
      const auto token =
          static_cast<int>(block % work.blocks_per_page) * attention::key_block + j % slot_width;
      const std::int64_t page_first = kept.logical_page(entry) * page_tokens;
      if (token >= page_tokens || page_first + token >= length) return slot_place{nullptr, 0, -1};
      return slot_place{page_of_entry(entry), token, page_first + token};
    };
    const auto vector_index = [&](int token) {
      return Shape::layout == page_layout::nhd
                 ? static_cast<std::uint64_t>(token) * static_cast<std::uint64_t>(geo.kv_heads) +
                       static_cast<std::uint64_t>(head)
                 : static_cast<std::uint64_t>(head) * static_cast<std::uint64_t>(page_tokens) +
                       static_cast<std::uint64_t>(token);
    };

    // A tile buffer: positions (-1: no token, or one the query does not see), the int8 / int4
    // scales, the vectors (a latent layer's values are its keys).
    struct tile_buffer {
      std::int64_t* position;
      float* k_scales;
      float* v_scales;
      std::byte* keys;
      std::byte* values;
    };
    const auto buffer = [&](std::int64_t tile) {
      std::byte* base =
          shared + layout.buffer + static_cast<std::size_t>(tile % 2) * layout.buffer_bytes;
      return tile_buffer{
          reinterpret_cast<std::int64_t*>(base + layout.position),
          reinterpret_cast<float*>(base + layout.k_scales),
          reinterpret_cast<float*>(base + (Shape::latent ? layout.k_scales : layout.v_scales)),
          base + layout.keys, base + (Shape::latent ? layout.keys : layout.values)};
    };
    // Starts staging the tile of key blocks from `first_block`: positions and scales stored,
    // vectors copied (asynchronously where they are whole 16-byte pieces).
    const auto stage = [&](std::int64_t first_block, const tile_buffer& t) {
      for (int j = thread; j < tile_slots; j += threads) {
        const slot_place p = place(first_block, j);
        const bool seen = p.page != nullptr &&
                          (!Shape::windowed || work.window.visible(query_position, p.position));
        t.position[j] = seen ? p.position : -1;
        if (seen && k_type::scale == scaling::per_token_head)
          t.k_scales[j] = *reinterpret_cast<const float*>(p.page + geo.k_scales +
                                                          vector_index(p.token) * scale_bytes);
        if (seen && !Shape::latent && v_type::scale == scaling::per_token_head)
          t.v_scales[j] = *reinterpret_cast<const float*>(p.page + geo.v_scales +
                                                          vector_index(p.token) * scale_bytes);
      }
      constexpr std::uint32_t k_pieces = detail::pieces_of<Shape::k_vector_bytes>;
      for (int i = thread; i < tile_slots * static_cast<int>(k_pieces); i += threads) {
        const int j = i / static_cast<int>(k_pieces);
        const slot_place p = place(first_block, j);
        if (p.page == nullptr) continue;
        detail::copy_piece<Shape::k_vector_bytes>(
            ctx, t.keys + static_cast<std::size_t>(j) * tiling::k_row_bytes,
            p.page + geo.k_values + vector_index(p.token) * Shape::k_vector_bytes,
            static_cast<std::uint32_t>(i % static_cast<int>(k_pieces)));
      }
      if constexpr (!Shape::latent) {
        constexpr std::uint32_t v_pieces = detail::pieces_of<Shape::v_vector_bytes>;
        for (int i = thread; i < tile_slots * static_cast<int>(v_pieces); i += threads) {
          const int j = i / static_cast<int>(v_pieces);
          const slot_place p = place(first_block, j);
          if (p.page == nullptr) continue;
          detail::copy_piece<Shape::v_vector_bytes>(
              ctx, t.values + static_cast<std::size_t>(j) * tiling::v_row_bytes,
              p.page + geo.v_values + vector_index(p.token) * Shape::v_vector_bytes,
              static_cast<std::uint32_t>(i % static_cast<int>(v_pieces)));
        }
      }
    };

    const std::int64_t tiles =
        (item.block_end - item.block_begin + blocks_per_tile - 1) / blocks_per_tile;
    if (tiles > 0) stage(item.block_begin, buffer(0));
    const auto warp = static_cast<int>(ctx.warp()), lane = static_cast<int>(ctx.lane());
    constexpr auto warps = static_cast<int>(Block::warps);
    constexpr auto lanes = static_cast<int>(warp_size);
    for (std::int64_t tile = 0; tile < tiles; ++tile) {
      const tile_buffer t = buffer(tile);
      // This tile has landed, and every thread is done with the other buffer (the last
      // tile's), which now takes the next tile while this one is computed.
      ctx.wait_async_copies();
      ctx.sync();
      if (tile + 1 < tiles)
        stage(item.block_begin + (tile + 1) * blocks_per_tile, buffer(tile + 1));

      // Scores: a thread per (row, slot).
      for (int i = thread; i < block_rows * tile_slots; i += threads) {
        const int r = i / tile_slots, j = i % tile_slots;
        float s = attention::negative_infinity;
        if (t.position[j] >= 0) {
          s = detail::dot_raw<k_type, Shape::k_dim>(
              ctx, q_rows + r * Shape::k_dim,
              t.keys + static_cast<std::size_t>(j) * tiling::k_row_bytes);
          if constexpr (k_type::scale == scaling::per_token_head) s *= t.k_scales[j];
          if (work.softcap > 0.0f) s = work.softcap * tanhf(s / work.softcap);
        }
        scores[r * tile_slots + j] = s;
      }
      ctx.sync();

      // The online softmax: a warp per row turns its scores into weights (times the values'
      // int8 / int4 scales).
      for (int r = warp; r < block_rows; r += warps) {
        float* row = scores + r * tile_slots;
        float local = attention::negative_infinity;
        for (int j = lane; j < tile_slots; j += lanes) local = row[j] > local ? row[j] : local;
        const float tile_most = ctx.warp_max(local);
        const float old_most = m[r];
        const float most = tile_most > old_most ? tile_most : old_most;
        const float f =
            old_most == attention::negative_infinity ? 0.0f : detail::exp_of(old_most - most);
        float part = 0.0f;
        for (int j = lane; j < tile_slots; j += lanes) {
          // A NaN score stays NaN (and so does the row's result); a masked one weighs 0.
          const float p =
              row[j] == attention::negative_infinity ? 0.0f : detail::exp_of(row[j] - most);
          if constexpr (v_type::scale == scaling::per_token_head)
            row[j] = p * (t.position[j] >= 0 ? t.v_scales[j] : 0.0f);
          else
            row[j] = p;
          part += p;
        }
        const float sum = ctx.warp_sum(part);
        if (lane == 0) {
          l[r] = l[r] * f + sum;
          m[r] = most;
          factor[r] = f;
        }
      }
      ctx.sync();

      // Values: a thread per value dimension, every row of the block. The loops over the
      // accumulators run to compile-time bounds, so that they stay in registers on a GPU.
      for (int k = 0; k < values_per_thread; ++k) {
        const int d = thread + k * threads;
        if (d < Shape::v_dim) {
          for (int r = 0; r < rows; ++r)
            if (r < block_rows) acc[r][k] *= factor[r];
          for (int j = 0; j < tile_slots; ++j) {
            if (t.position[j] < 0) continue;  // its staged vector is stale
            const float v =
                detail::raw_value<v_type>(t.values + static_cast<std::size_t>(j) * v_row_bytes, d);
            for (int r = 0; r < rows; ++r)
              if (r < block_rows) acc[r][k] += scores[r * tile_slots + j] * v;
          }
        }
      }
    }
    // The result: final when the item is its sequence's only split, else a partial one.
    const float v_factor = v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    const bool only = work.plan.splits[item.sequence] == 1;
    for (int r = 0; r < rows; ++r) {
      if (r >= block_rows) break;
      const int q_head = q_head0 + r;
      const float row_l = l[r], row_m = m[r];
      if (only) {
        const std::int64_t row = std::int64_t{item.sequence} * work.q_heads + q_head;
        const finished_row f = finish_row(row_m, row_l, v_factor, work.sink_logits, q_head);
        for (int k = 0; k < values_per_thread; ++k) {
          const int d = thread + k * threads;
          if (d < Shape::v_dim)
            work.out[row * Shape::v_dim + d] = f.weight == 0.0f ? 0.0f : acc[r][k] * f.weight;
        }
        if (thread == 0) work.lse[row] = f.lse;
      } else {
        const attention::partial_slot partials{work.q_heads, Shape::v_dim};
        float* slot = work.partial + std::int64_t{ctx.block_idx().x} * partials.floats();
        for (int k = 0; k < values_per_thread; ++k) {
          const int d = thread + k * threads;
          if (d < Shape::v_dim) slot[partials.acc(q_head) + d] = acc[r][k] * v_factor;
        }
        if (thread == 0) {
          slot[partials.m(q_head)] = row_m;
          slot[partials.l(q_head)] = row_l;
        }
      }
    }
  }
};

}  // namespace kvc::kernels
