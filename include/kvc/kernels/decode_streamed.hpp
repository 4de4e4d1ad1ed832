#pragma once
// The streamed decode kernel: the fast path for attention layers whose vectors are whole
// 16-byte pieces and whose page size the paging policy fixes (kernels/decode.hpp picks it;
// the tiled kernel takes the rest). Made to read memory at its bandwidth on Hopper and Ampere.
//
// One block runs one (plan item, KV head, row chunk), all the rows of the chunk at once, so a
// K/V byte is read once for the whole query group. The item's tokens are cut into stages of
// a few tokens inside one page (stage_tokens, about 4 KiB of K and V), and the warps take the
// stages in turn, each warp on its own: it keeps three stages in shared memory, two of them in
// flight (asynchronous copies in commit groups, a partial wait), with its own online-softmax
// state; no block barrier until the warps' states are merged at the end.
//
// In a stage (lane l of a warp):
// - copies: the 16-byte pieces of the stage's K vectors, then V vectors, piece i = l + 32 j
//   (coalesced: consecutive lanes read consecutive bytes of one vector); a slot past the
//   item, the sequence or the window is zero-filled, not read;
// - scores: the lane multiplies the pieces of K it copied itself (k_lanes lanes a token) by
//   its slice of every query row, held in registers (each value converted once, by hardware
//   instructions: numeric/unpack.hpp), then a butterfly over the token's lanes that leaves
//   each lane one row's sum (reduce-scatter: rows + log2(k_lanes / rows) shuffles a token);
// - softmax: a lane per (token, row), exp2 of scores in log2 units, the row's stage maximum
//   by shuffles; the weights (times int8/int4 value scales) go to shared memory;
// - values: lane l owns v_dim / 32 output dimensions of every row and adds each token's
//   values times its weights.
// Three warp barriers a stage (sync_warp), no division (the page size is a constant), no
// call. The result is the tiled kernel's: out and lse for a sequence of one split, else the
// CPU's slot format for the merge kernel.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/online_softmax.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/numeric/unpack.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

namespace detail {
constexpr bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }
constexpr int floor_power_of_two(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
constexpr int ceil_power_of_two(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}
constexpr std::size_t round16(std::size_t bytes) { return (bytes + 15) / 16 * 16; }
}  // namespace detail

/// How the streamed kernel covers a decode shape with blocks of Warps warps; `supported`
/// says whether it takes the shape at all.
template <class Shape, unsigned Warps>
struct streamed_tiling {
  using k_type = typename Shape::k_type;
  using v_type = typename Shape::v_type;
  static constexpr int k_chunks = static_cast<int>(Shape::k_vector_bytes / 16);
  static constexpr int v_chunks = static_cast<int>(Shape::v_vector_bytes / 16);
  static constexpr int v_values_per_lane = Shape::v_dim / 32;
  static constexpr int v_lane_bits = v_values_per_lane * v_type::bits;
  static constexpr bool supported =
      !Shape::latent && Shape::page_tokens > 0 && Shape::k_vector_bytes % 16 == 0 &&
      Shape::v_vector_bytes % 16 == 0 && k_chunks > 0 &&
      (k_chunks % 32 == 0 || detail::is_power_of_two(k_chunks)) && Shape::v_dim % 32 == 0 &&
      (v_lane_bits % 32 == 0 || (detail::is_power_of_two(v_lane_bits) && v_lane_bits >= 4));

  static constexpr int k_lanes = k_chunks < 32 ? k_chunks : 32;  ///< lanes a K vector
  static constexpr int k_chunks_per_lane = k_chunks / (k_lanes > 0 ? k_lanes : 1);
  static constexpr int tokens_per_pass = 32 / (k_lanes > 0 ? k_lanes : 1);
  static constexpr int k_values_per_chunk = 128 / k_type::bits;
  static constexpr int k_values_per_lane = k_chunks_per_lane * k_values_per_chunk;

  // Rows: the query slices in registers stay within 64 floats a lane, and with the rows'
  // output values and partial sums within about 104 (the rest of the 128 that four blocks of
  // 128 threads an SM leave holds addresses and the stage's values; more would spill).
  static constexpr int by_query = k_values_per_lane >= 64 ? 1 : 64 / k_values_per_lane;
  static constexpr int by_registers = 104 / (k_values_per_lane + v_values_per_lane + 1);
  static constexpr int max_rows =
      by_query < by_registers ? by_query : (by_registers > 0 ? by_registers : 1);
  static constexpr int row_chunks = (Shape::group + max_rows - 1) / max_rows;
  static constexpr int rows = (Shape::group + row_chunks - 1) / row_chunks;
  static constexpr int padded_rows = detail::ceil_power_of_two(rows);
  static constexpr int weight_stride = (rows + 3) / 4 * 4;  ///< floats a token's weights take

  // Stages: about 4 KiB of K and V, at most 16 tokens, inside one page and aligned to 16.
  static constexpr int page_alignment =
      detail::floor_power_of_two(Shape::page_tokens & -Shape::page_tokens) < 16
          ? (Shape::page_tokens & -Shape::page_tokens)
          : 16;
  static constexpr int by_bytes = detail::floor_power_of_two(
      static_cast<int>(4096 / (Shape::k_vector_bytes + Shape::v_vector_bytes)));
  static constexpr int stage_tokens = by_bytes < page_alignment ? by_bytes : page_alignment;
  static constexpr int passes = (stage_tokens + tokens_per_pass - 1) / tokens_per_pass;
  static constexpr int k_pieces = stage_tokens * k_chunks, v_pieces = stage_tokens * v_chunks;
  static constexpr int softmax_rows_per_lane = (rows * stage_tokens + 31) / 32;
  static constexpr bool k_scaled = k_type::scale == scaling::per_token_head;
  static constexpr bool v_scaled = v_type::scale == scaling::per_token_head;

  // A stage in shared memory: keys, values, then the int8 / int4 scales.
  static constexpr std::size_t keys = 0;
  static constexpr std::size_t values = keys + std::size_t{Shape::k_vector_bytes} * stage_tokens;
  static constexpr std::size_t k_scales =
      values + std::size_t{Shape::v_vector_bytes} * stage_tokens;
  static constexpr std::size_t v_scales =
      detail::round16(k_scales + (k_scaled ? 4 * stage_tokens : 0));
  static constexpr std::size_t stage_bytes =
      detail::round16(v_scales + (v_scaled ? 4 * stage_tokens : 0));
  static constexpr int stages = 3;
  // A warp's area: its stages, the stage's scores / weights, the rows' rescaling factors.
  static constexpr std::size_t weights = stages * stage_bytes;
  static constexpr std::size_t factors =
      weights + detail::round16(sizeof(float) * stage_tokens * weight_stride);
  static constexpr std::size_t warp_bytes =
      factors + detail::round16(sizeof(float) * weight_stride);
  // At the end the warps' states (m, l, o of each row) meet in the same memory.
  static constexpr std::size_t state_floats = 2 + static_cast<std::size_t>(Shape::v_dim);
  static constexpr std::size_t merge_bytes = Warps * rows * state_floats * sizeof(float);
  static constexpr std::size_t shared_bytes =
      Warps * warp_bytes > merge_bytes ? Warps* warp_bytes : merge_bytes;
};

template <class Shape, class Block = block_shape<128>>
struct decode_streamed {
  static_assert(Block::threads % warp_size == 0, "kernels::decode: a block of whole warps");
  using tiling = streamed_tiling<Shape, Block::warps>;
  static_assert(tiling::supported, "kernels::decode_streamed: a shape the streamed kernel takes");
  static constexpr std::size_t shared_bytes = tiling::shared_bytes;
  static constexpr int row_chunks = tiling::row_chunks;
  /// Blocks an SM should hold (the launcher's register budget): four of 128 threads.
  static constexpr int min_blocks_per_sm = Block::threads <= 128 ? 4 : 1;

  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    using k_type = typename Shape::k_type;
    using v_type = typename Shape::v_type;
    using t = tiling;
    constexpr int S = t::stage_tokens, R = t::rows, PR = t::padded_rows;
    constexpr int KV = t::k_values_per_lane, VE = t::v_values_per_lane;
    constexpr int P = Shape::page_tokens, warps = static_cast<int>(Block::warps);
    constexpr int blocks_per_page = (P + attention::key_block - 1) / attention::key_block;
    const auto lane = static_cast<int>(ctx.lane()), warp = static_cast<int>(ctx.warp());
    const page_geometry& geo = work.geometry;
    const attention::decode_plan::item item = work.plan.items[ctx.block_idx().x];
    const auto head = static_cast<int>(ctx.block_idx().y) / row_chunks;
    const int first_row = static_cast<int>(ctx.block_idx().y) % row_chunks * R;
    const int block_rows = Shape::group - first_row < R ? Shape::group - first_row : R;
    const int q_head0 = head * Shape::group + first_row;
    const std::int64_t length = work.seq_lens[item.sequence];
    const std::int32_t entries_begin = work.indptr[item.sequence];
    const std::int32_t entries = work.indptr[item.sequence + 1] - entries_begin;
    const auto kept = work.window.pages_listed(length, P, entries);

    // The item's key blocks as slots: slot x is token x % P of entry x / P.
    const auto slot_of = [](std::int64_t block) {
      const int within = static_cast<int>(block % blocks_per_page) * attention::key_block;
      return block / blocks_per_page * P + (within < P ? within : P);
    };
    const std::int64_t x_begin = slot_of(item.block_begin), x_end = slot_of(item.block_end);
    const auto stages_total = static_cast<int>((x_end - x_begin + S - 1) / S);
    const int my_stages = warp < stages_total ? (stages_total - 1 - warp) / warps + 1 : 0;
    // Slots from x_begin on, in 32 bits: the first's entry and token; the slots before `valid`
    // are the item's and hold tokens of the sequence (its last page may be partly written).
    const auto entry0 = static_cast<std::int32_t>(x_begin / P);
    const auto token0 = static_cast<int>(x_begin % P);
    const std::int64_t sequence_end =
        std::int64_t{entries - 1} * P + (length - kept.logical_page(entries - 1) * P);
    const auto valid = static_cast<int>((x_end < sequence_end ? x_end : sequence_end) - x_begin);

    // This lane's slice of every row's query, scaled by the softmax scale in log2 units (and
    // by the keys' fp8 scale). Slot i holds row i ^ row_mask: lanes that keep the upper half of
    // the rows at a step of the reduction hold them in the lower slots, so that every lane
    // keeps its lower slots and sends its upper ones (reduce_scatter needs no select).
    constexpr float log2e = 1.4426950408889634f;
    const float q_factor =
        work.scale * log2e * (k_type::scale == scaling::per_layer ? work.k_scale : 1.0f);
    int row_mask = 0;
    for (int mask = t::k_lanes / 2, held = PR; mask >= 1 && held > 1; mask /= 2, held /= 2)
      row_mask |= (lane & mask) != 0 ? held / 2 : 0;
    float q[std::size_t{PR}][std::size_t{KV}];
    for (int slot = 0; slot < PR; ++slot)
      for (int j = 0; j < t::k_chunks_per_lane; ++j) {
        const int chunk = (lane + 32 * j) % t::k_chunks;
        const int r = slot ^ row_mask;
        const float* q_row = work.q + std::int64_t{item.sequence} * work.q_stride +
                             std::int64_t{q_head0 + r} * Shape::k_dim;
        for (int e = 0; e < t::k_values_per_chunk; ++e)
          q[slot][j * t::k_values_per_chunk + e] =
              r < block_rows ? q_row[chunk * t::k_values_per_chunk + e] * q_factor : 0.0f;
      }

    // Where this lane's pieces sit: their token in the stage and their offset from the
    // stage's first vector in the page.
    const std::uint32_t token_stride =
        Shape::layout == page_layout::nhd ? static_cast<std::uint32_t>(geo.kv_heads) : 1u;
    const auto piece_token = [&](int j, int chunks) { return (lane + 32 * j) / chunks; };

    std::byte* const area = ctx.dynamic_shared() + static_cast<std::size_t>(warp) * t::warp_bytes;
    float* const weights = reinterpret_cast<float*>(area + t::weights);
    float* const factors = reinterpret_cast<float*>(area + t::factors);
    const auto stage_area = [&](int k) {
      return area + static_cast<std::size_t>(k % t::stages) * t::stage_bytes;
    };

    // Stage k of this warp: its page entry and first token, and which of its tokens the query
    // sees: those before `limit` (the item's end, the sequence's) and, in a window, outside
    // [sinks, recent).
    struct stage_place {
      std::int32_t entry;
      int token, limit, sinks, recent;
    };
    const std::int64_t sink_end = Shape::windowed ? work.window.sink_end(length) : 0;
    const std::int64_t recent_begin = Shape::windowed ? work.window.recent_begin(length) : 0;
    const auto clamp = [](auto v) { return static_cast<int>(v < 0 ? 0 : (v > S ? S : v)); };
    const auto place = [&](int k) {
      const int relative = (warp + k * warps) * S;
      const int from_entry = token0 + relative;
      stage_place s{entry0 + from_entry / P, from_entry % P, clamp(valid - relative), 0, 0};
      if constexpr (Shape::windowed) {
        const std::int64_t position = kept.logical_page(s.entry) * P + s.token;
        s.sinks = clamp(sink_end - position);
        s.recent = clamp(recent_begin - position);
      }
      return s;
    };
    const auto seen = [](const stage_place& s, int token) {
      return token < s.limit && (!Shape::windowed || token < s.sinks || token >= s.recent);
    };
    const auto issue = [&](int k) {
      if (k < my_stages) {
        const stage_place s = place(k);
        const std::byte* page =
            work.memory +
            static_cast<std::uint64_t>(work.indices[entries_begin + s.entry]) * geo.page_bytes;
        std::byte* const stage = stage_area(k);
        const auto first = static_cast<std::uint32_t>(s.token);
        const std::uint32_t first_vector =
            Shape::layout == page_layout::nhd
                ? first * token_stride + static_cast<std::uint32_t>(head)
                : static_cast<std::uint32_t>(head) * P + first;
        const std::byte* k_base = page + geo.k_values + first_vector * Shape::k_vector_bytes;
        const std::byte* v_base = page + geo.v_values + first_vector * Shape::v_vector_bytes;
        // The stage's vectors of one kind (K or V: Chunks 16-byte pieces of Bytes each).
        const auto copy_vectors = [&](auto chunks, auto bytes, std::byte* destination,
                                      const std::byte* base) {
          constexpr int n = decltype(chunks)::value, pieces = S * n;
          unroll<(pieces + 31) / 32>([&](auto j) {
            const int piece = lane + 32 * j;
            if (pieces % 32 == 0 || piece < pieces) {
              const int token = piece_token(j, n), chunk = piece % n;
              ctx.copy_async(destination + 16 * piece,
                             base +
                                 static_cast<std::uint32_t>(token) * token_stride *
                                     static_cast<std::uint32_t>(decltype(bytes)::value) +
                                 16 * chunk,
                             seen(s, token));
            }
          });
        };
        copy_vectors(index<t::k_chunks>{}, index<static_cast<int>(Shape::k_vector_bytes)>{},
                     stage + t::keys, k_base);
        copy_vectors(index<t::v_chunks>{}, index<static_cast<int>(Shape::v_vector_bytes)>{},
                     stage + t::values, v_base);
        if constexpr (t::k_scaled || t::v_scaled) {
          // Lane i < S copies token i's K scale, lane 16 + i its V scale.
          const int token = lane % 16;
          const bool is_k = lane < 16;
          if (token < S && (is_k ? t::k_scaled : t::v_scaled)) {
            const std::uint32_t vector =
                first_vector + static_cast<std::uint32_t>(token) * token_stride;
            ctx.copy_async_4(stage + (is_k ? t::k_scales : t::v_scales) + 4 * token,
                             page + (is_k ? geo.k_scales : geo.v_scales) + vector * scale_bytes,
                             seen(s, token));
          }
        }
      }
      ctx.commit_copies();  // an empty group past the last stage keeps the count uniform
    };

    float o[std::size_t{R}][std::size_t{VE}] = {};
    float m[t::softmax_rows_per_lane], l[t::softmax_rows_per_lane];
    for (int i = 0; i < t::softmax_rows_per_lane; ++i) {
      m[i] = attention::negative_infinity;
      l[i] = 0.0f;
    }
    const int softmax_token = lane % S;
    // The soft-cap in log2 units: log2e c tanh(s / c) = c' tanh(s log2e / c'), c' = c log2e.
    const float softcap = work.softcap * log2e;
    const float inverse_softcap = softcap > 0.0f ? 1.0f / softcap : 0.0f;

    // The stages, in a loop made twice: with the logit soft-cap and without.
    const auto stream = [&](auto capped) {
      issue(0);
      issue(1);
      for (int k = 0; k < my_stages; ++k) {
        // Stage k has landed (this lane's copies, then every lane's), and every lane is done
        // with stage k - 1, whose memory now takes stage k + 2.
        ctx.template wait_copies<1>();
        ctx.sync_warp();
        issue(k + 2);
        const std::byte* const stage = stage_area(k);
        const stage_place s = place(k);  // the same as issue(k)'s

        // Scores of this lane's tokens, each row's sum left in one lane of the token's.
        unroll<t::passes>([&](auto pass) {
          float part[std::size_t{PR}] = {};
          unroll<t::k_chunks_per_lane>([&](auto j) {
            const int piece = lane + 32 * (pass * t::k_chunks_per_lane + j);
            if (t::k_pieces % 32 != 0 && piece >= t::k_pieces) return;
            const vec16 chunk = ctx.load_16(stage + t::keys + 16 * piece);
            const std::uint32_t words[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
            constexpr int per_word = numeric::values_per_word<k_type>;
            for (int w = 0; w < 4; ++w) {
              float value[std::size_t{per_word}];
              numeric::unpack_word<k_type>(words[w], value);
              for (int e = 0; e < per_word; ++e)
                for (int r = 0; r < PR; ++r)
                  part[r] += q[r][j * t::k_values_per_chunk + w * per_word + e] * value[e];
            }
          });
          reduce_scatter<PR, t::k_lanes>(ctx, part);
          constexpr int rows_held = PR > t::k_lanes ? PR / t::k_lanes : 1;
          constexpr int sharers = PR < t::k_lanes ? t::k_lanes / PR : 1;
          const int token = (lane + 32 * pass * t::k_chunks_per_lane) / t::k_chunks;
          if (lane % sharers == 0 && token < S) {
            const bool visible = seen(s, token);
            for (int h = 0; h < rows_held; ++h) {
              const int r = row_mask + h;
              if (r >= R) continue;
              float score = part[h];
              if constexpr (t::k_scaled)
                score *= reinterpret_cast<const float*>(stage + t::k_scales)[token];
              if constexpr (decltype(capped)::value)
                score = softcap * tanhf(score * inverse_softcap);
              weights[token * t::weight_stride + r] =
                  visible ? score : attention::negative_infinity;
            }
          }
        });
        ctx.sync_warp();

        // The online softmax: a lane per (token, row); the row's lanes are lane % S apart.
        for (int i = 0; i < t::softmax_rows_per_lane; ++i) {
          const int r = lane / S + i * (32 / S);
          // Lanes past the rows (r >= R) take part in the shuffles with nothing to add.
          float* const weight = weights + softmax_token * t::weight_stride + (r < R ? r : 0);
          const float score = r < R ? *weight : attention::negative_infinity;
          float most = score;
          for (int mask = S / 2; mask >= 1; mask /= 2)
            most = fmaxf(most, ctx.shfl_xor(most, mask, ctx.warp_members()));
          const float old_most = m[i];
          const float new_most = fmaxf(old_most, most);
          const float factor =
              old_most == attention::negative_infinity ? 0.0f : exp2f(old_most - new_most);
          // A NaN score stays NaN (and so does the row's result); a masked one weighs 0.
          const float p = score == attention::negative_infinity ? 0.0f : exp2f(score - new_most);
          l[i] = l[i] * factor + p;
          m[i] = new_most;
          if (r < R) {
            if constexpr (t::v_scaled)
              *weight = p * reinterpret_cast<const float*>(stage + t::v_scales)[softmax_token];
            else
              *weight = p;
            if (softmax_token == 0) factors[r] = factor;
          }
        }
        ctx.sync_warp();

        // Values: lane l's dimensions of every row.
        // The rows' maxima rarely move once a few stages are in: rescale only when one did
        // (the factors are the same in every lane, so the branch is too).
        bool rescale = false;
        for (int r = 0; r < R; ++r) rescale = rescale || factors[r] != 1.0f;
        if (rescale)
          for (int r = 0; r < R; ++r) {
            const float factor = factors[r];
            for (int e = 0; e < VE; ++e) o[r][e] *= factor;
          }
        unroll<S>([&](auto token) {
          float value[std::size_t{VE}];
          load_values(ctx,
                      stage + t::values +
                          std::size_t{Shape::v_vector_bytes} * static_cast<std::size_t>(token),
                      lane, value);
          const float* const p = weights + token * t::weight_stride;
          for (int r = 0; r < R; ++r)
            for (int e = 0; e < VE; ++e) o[r][e] += p[r] * value[e];
        });
      }
    };
    if (softcap > 0.0f)
      stream(index<1>{});
    else
      stream(index<0>{});
    ctx.wait_async_copies();

    // The row's l over its lanes; then the warps' states meet in shared memory.
    for (int i = 0; i < t::softmax_rows_per_lane; ++i)
      for (int mask = S / 2; mask >= 1; mask /= 2)
        l[i] += ctx.shfl_xor(l[i], mask, ctx.warp_members());
    ctx.sync();
    float* const states = ctx.template dynamic_shared<float>();
    const auto state_of = [&](int w, int r) {
      return states + static_cast<std::size_t>(w * R + r) * t::state_floats;
    };
    if (softmax_token == 0)
      for (int i = 0; i < t::softmax_rows_per_lane; ++i) {
        const int r = lane / S + i * (32 / S);
        if (r < R) {
          state_of(warp, r)[0] = m[i];
          state_of(warp, r)[1] = l[i];
        }
      }
    for (int r = 0; r < R; ++r)
      for (int e = 0; e < VE; ++e) state_of(warp, r)[2 + lane * VE + e] = o[r][e];
    ctx.sync();

    const float v_factor = v_type::scale == scaling::per_layer ? work.v_scale : 1.0f;
    const bool only = work.plan.splits[item.sequence] == 1;
    constexpr float ln2 = 0.6931471805599453f;
    const auto threads = static_cast<int>(Block::threads);
    for (int i = static_cast<int>(ctx.thread_rank()); i < block_rows * Shape::v_dim; i += threads) {
      const int r = i / Shape::v_dim, d = i % Shape::v_dim;
      float most = attention::negative_infinity;
      for (int w = 0; w < warps; ++w) most = fmaxf(most, state_of(w, r)[0]);
      float row_l = 0.0f, acc = 0.0f;
      for (int w = 0; w < warps; ++w) {
        const float* state = state_of(w, r);
        if (state[0] == attention::negative_infinity) continue;
        const float f = exp2f(state[0] - most);
        row_l += state[1] * f;
        acc += state[2 + d] * f;
      }
      const float row_m = most * ln2;  // natural-log units, as the CPU's
      const int q_head = q_head0 + r;
      if (only) {
        const std::int64_t row = std::int64_t{item.sequence} * work.q_heads + q_head;
        const finished_row f = finish_row(row_m, row_l, v_factor, work.sink_logits, q_head);
        work.out[row * Shape::v_dim + d] = f.weight == 0.0f ? 0.0f : acc * f.weight;
        if (d == 0) work.lse[row] = f.lse;
      } else {
        const attention::partial_slot partials{work.q_heads, Shape::v_dim};
        float* slot = work.partial + std::int64_t{ctx.block_idx().x} * partials.floats();
        slot[partials.acc(q_head) + d] = acc * v_factor;
        if (d == 0) {
          slot[partials.m(q_head)] = row_m;
          slot[partials.l(q_head)] = row_l;
        }
      }
    }
  }

 private:
  // Sums `part` (Rows partial sums, slot i of row i ^ row_mask) over the Lanes lanes of a
  // token (lanes that differ in their lowest log2(Lanes) bits). Halving the slots at each step
  // while there are several, it leaves max(Rows / Lanes, 1) whole sums in the lowest slots,
  // rows row_mask and on.
  template <int Rows, int Lanes, class Context>
  KVC_HOST_DEVICE static void reduce_scatter(const Context& ctx, float (&part)[std::size_t{Rows}]) {
    int held = Rows;
    for (int mask = Lanes / 2; mask >= 1; mask /= 2) {
      if (held > 1) {
        const int half = held / 2;
        for (int i = 0; i < half; ++i)
          part[i] += ctx.shfl_xor(part[i + half], mask, ctx.warp_members());
        held = half;
      } else {
        part[0] += ctx.shfl_xor(part[0], mask, ctx.warp_members());
      }
    }
  }

  // This lane's v_dim / 32 values of a staged V vector.
  template <class Context>
  KVC_HOST_DEVICE static void load_values(const Context& ctx, const std::byte* vector, int lane,
                                          float (&value)[std::size_t{tiling::v_values_per_lane}]) {
    using v_type = typename Shape::v_type;
    constexpr int bits = tiling::v_lane_bits;
    constexpr int per_word = numeric::values_per_word<v_type>;
    if constexpr (bits >= 32) {
      std::uint32_t words[std::size_t{bits / 32}];
      const std::byte* at = vector + lane * (bits / 8);
      if constexpr (bits == 128) {
        const vec16 v = ctx.load_16(at);
        words[0] = v.x, words[1] = v.y, words[2] = v.z, words[3] = v.w;
      } else if constexpr (bits == 64) {
        const vec8 v = ctx.load_8(at);
        words[0] = v.x, words[1] = v.y;
      } else {
        for (int w = 0; w < bits / 32; ++w)
          words[w] = reinterpret_cast<const std::uint32_t*>(at)[w];
      }
      for (int w = 0; w < bits / 32; ++w)
        numeric::unpack_word<v_type>(words[w], value + w * per_word);
    } else {
      const int first_bit = lane * bits;
      const std::uint32_t word =
          reinterpret_cast<const std::uint32_t*>(vector)[first_bit / 32] >> (first_bit % 32);
      float all[std::size_t{per_word}];
      numeric::unpack_word<v_type>(word, all);
      for (int e = 0; e < tiling::v_values_per_lane; ++e) value[e] = all[e];
    }
  }
};

}  // namespace kvc::kernels
