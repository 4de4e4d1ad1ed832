#pragma once
// The decode kernels: one new query token per sequence over a paged layer view (the
// committed table or an open step's), split along the sequence (split-K), then merged.
//
//   auto plan = attention::plan_decode(view, q_heads, kernels::decode_workers(...));
//   auto work = kernels::make_decode_work<shape>(plan, kernels::plan_arrays_of(plan), view,
//                                                q, out, lse, params, partial);
//   launch(kernels::decode_grid<shape>(work), block, kernels::decode<shape>::shared_bytes,
//          kernels::decode<shape, block>{work});
//   launch(kernels::merge_grid(work), block, 0, kernels::merge{work});   // when split
//
// The plan is the CPU's (kvc/attention/decode_plan.hpp): items of 16-token key blocks over
// the kept pages, a sequence's splits consecutive. One block runs one (item, KV head, row
// chunk): it stages a tile of up to 64 tokens of the KV head's keys and values in shared
// memory (16-byte asynchronous copies where the vectors allow), and every query row of the
// chunk reads the tile from there, so a tile is read from memory once for its whole query
// group (a group too large for the registers is cut into row chunks, each reading the tile).
// Two tile buffers: the next tile's copies are issued before the block computes on this one.
// Per tile: scores (a thread per row and token), the online softmax (a warp per row), the
// weighted values (a thread per value dimension, all rows in registers). An item that is its
// sequence's only split writes out and lse itself (sinks included); the splits of the others
// go to the workspace in the CPU's slot format and the merge kernel combines them.
//
// Specialized at compile time on what the layer's typedef fixes (decode_shape: dtypes,
// group size, dims, latent, layout, whether a window masks): any group size works.
// Positions a window drops are never listed; a listed token outside the query's window is
// masked. Soft-cap, scale and learned sinks are run-time parameters (attention_params).

#include <cmath>
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
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// What a layer's typedef fixes for its decode kernel. Windowed: whether the layer's window
/// can hide a listed token from the query (any window but full attention).
template <class KType, class VType, int Group, int KDim, int VDim, bool Latent,
          page_layout Layout = page_layout::nhd, bool Windowed = false>
struct decode_shape {
  static_assert(storage_dtype<KType> && storage_dtype<VType>, "decode_shape: storage dtypes");
  static_assert(Group >= 1 && KDim >= 1 && VDim >= 1, "decode_shape: positive group and dims");
  static_assert(!Latent || VDim <= KDim, "decode_shape: a latent layer's V is part of its K");
  using k_type = KType;
  using v_type = std::conditional_t<Latent, KType, VType>;
  static constexpr int group = Group, k_dim = KDim, v_dim = VDim;
  static constexpr bool latent = Latent, windowed = Windowed;
  static constexpr page_layout layout = Layout;
  static constexpr std::uint32_t k_vector_bytes =
      static_cast<std::uint32_t>(KDim * KType::bits / 8);
  static constexpr std::uint32_t v_vector_bytes =
      static_cast<std::uint32_t>(VDim * v_type::bits / 8);

  /// Whether a layer's geometry is one this shape was made for.
  static constexpr bool fits(const page_geometry& g) {
    return g.k_type == KType::id && g.k_dim == KDim && g.v_dim == VDim && g.latent == Latent &&
           g.layout == Layout && (Latent || g.v_type == VType::id);
  }
};

/// The decode shape of a layer spec in a cache of the given paging.
template <class Layer, class Paging>
using decode_shape_of =
    decode_shape<typename Layer::k_type, typename Layer::v_type, Layer::group_size, Layer::k_dim,
                 Layer::v_dim, Layer::is_latent, Paging::layout, Layer::window_value.bounded()>;

/// The plan's arrays where the kernels read them: the plan's own vectors for the host
/// emulator, copies in device memory for a GPU (kvc::cuda::device_decode_plan).
struct decode_plan_arrays {
  const attention::decode_plan::item* items = nullptr;
  const std::int32_t* first_item = nullptr;  ///< [batch]
  const std::int32_t* splits = nullptr;      ///< [batch]
};

inline decode_plan_arrays plan_arrays_of(const attention::decode_plan& plan) {
  return {plan.items.data(), plan.first_item.data(), plan.splits.data()};
}

/// What one decode launch reads and writes: one layer, one plan. Plain pointers and counts,
/// trivially copyable; every array is the engine's (device memory on a GPU).
struct decode_work {
  const std::byte* memory = nullptr;  ///< page p of the layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};
  float k_scale = 1.0f, v_scale = 1.0f;  ///< fp8 only: the layer's scales
  std::int32_t batch = 0;
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int64_t* seq_lens = nullptr;
  const float* q = nullptr;  ///< [batch][q_heads][k_dim]
  float scale = 1.0f, softcap = 0.0f;
  const float* sink_logits = nullptr;  ///< [q_heads] or null
  decode_plan_arrays plan{};
  std::int32_t items = 0;
  std::int32_t q_heads = 0;
  std::int32_t blocks_per_page = 1;
  std::int32_t split_sequences = 0;  ///< sequences of more than one split: 0, no merge
  float* partial = nullptr;          ///< plan.workspace_floats() floats, for the splits
  float* out = nullptr;              ///< [batch][q_heads][v_dim]
  float* lse = nullptr;              ///< [batch][q_heads], natural log
};

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

KVC_HOST_DEVICE inline float exp_of(float x) { return expf(x); }

}  // namespace detail

/// Blocks of a decode launch: x an item of the plan, y a KV head and row chunk.
template <class Shape, class Block = block_shape<128>>
dims3 decode_grid(const decode_work& work) {
  return {static_cast<std::uint32_t>(work.items),
          static_cast<std::uint32_t>(work.geometry.kv_heads *
                                     decode_tiling<Shape, Block::threads>::row_chunks),
          1};
}

/// How many workers to plan for (attention::plan_decode's `threads`, which makes about
/// four items a worker): enough blocks for `waves` rounds of `blocks_at_once` (an SM count
/// times the blocks an SM holds).
template <class Shape, class Block = block_shape<128>>
int decode_workers(int kv_heads, int blocks_at_once, int waves = 1) {
  const int per_item = kv_heads * decode_tiling<Shape, Block::threads>::row_chunks;
  const int wanted = blocks_at_once * waves;
  const int items = (wanted + per_item - 1) / (per_item > 0 ? per_item : 1);
  return (items + 3) / 4 > 0 ? (items + 3) / 4 : 1;
}

/// The plan for the device kernels: attention::plan_decode (the CPU's planner) with enough
/// items that the grid fills `blocks_at_once` blocks (for a GPU, its SM count times 2: a
/// block takes at most 96 KiB of shared memory), no split shorter than min_split_tokens.
/// Refills `plan`, reusing its memory.
template <class Shape, class Block = block_shape<128>>
void plan_device_decode(const paged_layer_view& view, int q_heads, int blocks_at_once,
                        attention::decode_plan& plan, int min_split_tokens = 256,
                        const char* who = "kvc::kernels::plan_device_decode") {
  attention::plan_decode(view, q_heads,
                         decode_workers<Shape, Block>(view.geometry.kv_heads, blocks_at_once), plan,
                         min_split_tokens, who);
}

template <class Shape, class Block = block_shape<128>>
struct decode {
  static_assert(Block::threads % warp_size == 0, "kernels::decode: a block of whole warps");
  using tiling = decode_tiling<Shape, Block::threads>;
  static constexpr std::size_t shared_bytes = tiling::shared.total;
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
        work.q + (std::int64_t{item.sequence} * work.q_heads + q_head0) * Shape::k_dim;
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
        float lse =
            row_l > 0.0f || row_l != row_l ? row_m + logf(row_l) : attention::negative_infinity;
        float weight = row_l > 0.0f || row_l != row_l ? v_factor / row_l : 0.0f;
        if (work.sink_logits != nullptr) {
          const attention::merge_weights w =
              attention::merge_weights_for(lse, work.sink_logits[q_head]);
          weight *= w.a;
          lse = w.lse;
        }
        for (int k = 0; k < values_per_thread; ++k) {
          const int d = thread + k * threads;
          if (d < Shape::v_dim)
            work.out[row * Shape::v_dim + d] = weight == 0.0f ? 0.0f : acc[r][k] * weight;
        }
        if (thread == 0) work.lse[row] = lse;
      } else {
        const auto slot_floats = static_cast<std::int64_t>(work.q_heads) * (Shape::v_dim + 2);
        float* slot = work.partial + std::int64_t{ctx.block_idx().x} * slot_floats;
        for (int k = 0; k < values_per_thread; ++k) {
          const int d = thread + k * threads;
          if (d < Shape::v_dim) slot[q_head * Shape::v_dim + d] = acc[r][k] * v_factor;
        }
        if (thread == 0) {
          slot[work.q_heads * Shape::v_dim + q_head] = row_m;
          slot[work.q_heads * (Shape::v_dim + 1) + q_head] = row_l;
        }
      }
    }
  }
};

/// The merge kernel's blocks: one per (sequence, query head).
inline dims3 merge_grid(const decode_work& work) {
  return {static_cast<std::uint32_t>(work.batch), static_cast<std::uint32_t>(work.q_heads), 1};
}

/// Combines a split sequence's partial results (acc, m, l of each split) into out and lse,
/// then adds the sink logit: the CPU's finish_row and apply_sink. A sequence of one split
/// was finished by the decode kernel and is left alone. No shared memory, no barrier.
template <int VDim>
struct merge {
  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const auto sequence = static_cast<std::int32_t>(ctx.block_idx().x);
    const auto q_head = static_cast<int>(ctx.block_idx().y);
    const std::int32_t parts = work.plan.splits[sequence];
    if (parts <= 1) return;
    const auto slot_floats = static_cast<std::int64_t>(work.q_heads) * (VDim + 2);
    const float* first = work.partial + std::int64_t{work.plan.first_item[sequence]} * slot_floats;
    const float* m = first + std::int64_t{work.q_heads} * VDim + q_head;
    const float* l = m + work.q_heads;
    float most = attention::negative_infinity;
    for (int p = 0; p < parts; ++p) most = m[p * slot_floats] > most ? m[p * slot_floats] : most;
    float total = 0.0f;
    for (int p = 0; p < parts; ++p) {
      const float part_l = l[p * slot_floats];
      if (part_l != 0.0f) total += part_l * detail::exp_of(m[p * slot_floats] - most);
    }
    const std::int64_t row = std::int64_t{sequence} * work.q_heads + q_head;
    float lse = total == 0.0f ? attention::negative_infinity : most + logf(total);
    float sink_weight = 1.0f;
    if (work.sink_logits != nullptr) {
      const attention::merge_weights w =
          attention::merge_weights_for(lse, work.sink_logits[q_head]);
      sink_weight = w.a;
      lse = w.lse;
    }
    for (int d = static_cast<int>(ctx.thread_rank()); d < VDim;
         d += static_cast<int>(ctx.block_threads())) {
      float sum = 0.0f;
      if (total != 0.0f && sink_weight != 0.0f)
        for (int p = 0; p < parts; ++p) {
          if (l[p * slot_floats] == 0.0f) continue;
          const float w = detail::exp_of(m[p * slot_floats] - most) / total;
          sum += w * first[p * slot_floats + q_head * VDim + d];
        }
      work.out[row * VDim + d] = sum * sink_weight;
    }
    if (ctx.thread_rank() == 0) work.lse[row] = lse;
  }
};

/// The work of a decode launch, checked: the view's layer must be of Shape (its dtypes, dims,
/// layout, a window only if Shape masks, and q_heads its group times its KV heads), the plan made
/// for the view (as the CPU checks), the page memory 16-byte aligned. Throws cache_error
/// (shape_mismatch, plan_mismatch, invalid_argument) with the reason, before anything is launched.
/// `partial` holds plan.workspace_floats() floats (unused when no sequence is split).
template <class Shape>
decode_work make_decode_work(const attention::decode_plan& plan, decode_plan_arrays arrays,
                             const paged_layer_view& view, const float* q, float* out, float* lse,
                             const attention::attention_params& params, float* partial,
                             const char* who = "kvc::kernels::decode") {
  const page_geometry& geo = view.geometry;
  if (!Shape::fits(geo))
    throw cache_error(cache_errc::shape_mismatch,
                      std::string(who) + ": the kernel was made for another layer (dtypes " +
                          std::string(dtype_name(Shape::k_type::id)) + "/" +
                          std::string(dtype_name(Shape::v_type::id)) + ", dims " +
                          std::to_string(Shape::k_dim) + "/" + std::to_string(Shape::v_dim) +
                          "); the view's layer stores " + std::string(dtype_name(geo.k_type)) +
                          "/" + std::string(dtype_name(geo.v_type)) + " of dims " +
                          std::to_string(geo.k_dim) + "/" + std::to_string(geo.v_dim));
  if (plan.q_heads != Shape::group * geo.kv_heads)
    throw cache_error(cache_errc::shape_mismatch,
                      std::string(who) + ": the kernel takes groups of " +
                          std::to_string(Shape::group) + " query heads per KV head, the plan " +
                          std::to_string(plan.q_heads) + " query heads over " +
                          std::to_string(geo.kv_heads));
  if (!Shape::windowed && view.window.bounded())
    throw cache_error(cache_errc::shape_mismatch,
                      std::string(who) +
                          ": the kernel was made for full attention, and the view's layer has "
                          "a window (use the layer's own decode_shape_of)");
  attention::check_plan(plan, view, who);
  if (reinterpret_cast<std::uintptr_t>(view.memory) % 16 != 0)
    throw cache_error(cache_errc::invalid_argument,
                      std::string(who) + ": page memory must be 16-byte aligned");
  if (plan.batch > 0 && (q == nullptr || out == nullptr || lse == nullptr))
    throw cache_error(cache_errc::invalid_argument, std::string(who) + ": null q, out or lse");
  decode_work w;
  w.memory = view.memory;
  w.geometry = geo;
  w.window = view.window;
  w.k_scale = view.k_scale;
  w.v_scale = view.v_scale;
  w.batch = view.batch;
  w.indptr = view.indptr;
  w.indices = view.indices;
  w.seq_lens = view.seq_lens;
  w.q = q;
  w.scale = params.scale;
  w.softcap = params.softcap;
  w.sink_logits = params.sink_logits;
  w.plan = arrays;
  w.items = static_cast<std::int32_t>(plan.items.size());
  w.q_heads = plan.q_heads;
  w.blocks_per_page = plan.blocks_per_page;
  for (const std::int32_t s : plan.splits) w.split_sequences += s > 1 ? 1 : 0;
  if (w.split_sequences > 0 && partial == nullptr)
    throw cache_error(cache_errc::invalid_argument,
                      std::string(who) + ": the plan splits sequences, and no workspace is given");
  w.partial = partial;
  w.out = out;
  w.lse = lse;
  return w;
}

}  // namespace kvc::kernels
