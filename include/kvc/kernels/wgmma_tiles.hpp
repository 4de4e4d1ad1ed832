#pragma once
// What the warpgroup kernels (kernels/decode_wgmma.hpp, kernels/extend_wgmma.hpp) share about
// their loop over key tiles: each tile's scores are issued, then the last tile's P V, and the
// tile's softmax runs while the tensor cores do P V (as FlashAttention-3 overlaps a
// warpgroup's softmax with its matrix products); O is rescaled once that P V is in, and the
// tile's P packed into the registers the next P V reads. And how a tile stored in 8 or 4 bits
// becomes the 16-bit rows wgmma reads.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/mma_softmax.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "kvc/numeric/unpack.hpp"

namespace kvc::kernels {

/// Runs tiles 0 .. count - 1 of a warpgroup kernel: stage(0), then attend(t, pending) for each
/// (pending a std::bool_constant, true but for the first: whether the last tile's P V is in
/// flight; a compile-time branch, so that ptxas sees O's P V in flight on every path through
/// the softmax and adds no wait of its own), then the last tile's P V, waited for.
template <class Context, int N, std::size_t Steps, class Stage, class Attend, class Weigh>
KVC_HOST_DEVICE void run_wgmma_tiles(const Context& ctx, std::int64_t count, wgmma_d<N>& o,
                                     mma_a (&weights)[Steps], const Stage& stage,
                                     const Attend& attend, const Weigh& weigh_values) {
  if (count == 0) return;
  stage(0);
  attend(0, std::false_type{});
  for (std::int64_t t = 1; t < count; ++t) attend(t, std::true_type{});
  ctx.wgmma_fence(o, weights);
  weigh_values(count - 1);
  ctx.template wgmma_wait<0>(o, weights);
}

/// Waits until a tile's rows are there for wgmma: this thread's copies landed, then (Converts:
/// a barrier, so that every thread's raw rows are in and the 16-bit rows two tiles back are
/// free) the tile converted, then fenced for the async proxy, and a barrier.
template <bool Converts, class Context, class Convert>
KVC_HOST_DEVICE void land_wgmma_tile(const Context& ctx, const Convert& convert) {
  ctx.wait_async_copies();
  if constexpr (Converts) {
    ctx.sync();
    convert();
  }
  ctx.fence_shared_async();
  ctx.sync();
}

/// Once a tile's scores are committed: the last tile's P V issued behind them (ValuesPending),
/// the next tile's copies started, and the scores waited for, only them.
template <bool ValuesPending, int N, class Context, class WeighLast, class StageNext>
KVC_HOST_DEVICE void weigh_last_and_wait_scores(const Context& ctx, wgmma_d<N>& scores,
                                                const WeighLast& weigh_last,
                                                const StageNext& stage_next) {
  if constexpr (ValuesPending) {
    weigh_last();
    stage_next();
    ctx.template wgmma_wait<1>(scores);
  } else {
    stage_next();
    ctx.template wgmma_wait<0>(scores);
  }
}

/// A tile's masked scores (log2 units) into the online softmax, soft-capped first where
/// SoftCapped, while the last tile's P V runs (ValuesPending); then that P V waited for and O
/// rescaled where a row's maximum moved; then the tile's weights, times value_scale(slot) (the
/// int8 / int4 values' scales), rounded to Input, packed into `weights`. row_sums: two floats
/// of this thread's in shared memory.
template <bool SoftCapped, bool ValuesPending, mma_input Input, std::size_t KeyBlocks, int N,
          class Context, class ValueScale = unit_value_scale>
KVC_HOST_DEVICE void softmax_under_values(const Context& ctx, mma_softmax<KeyBlocks>& softmax,
                                          mma_c (&scores)[KeyBlocks], float softcap,
                                          float softcap_inverse, int pair, float* row_sums,
                                          wgmma_d<N>& o, mma_a (&weights)[KeyBlocks / 2],
                                          const ValueScale& value_scale = {}) {
  softmax.template cap<SoftCapped>(scores, softcap, softcap_inverse);
  const mma_softmax_step step = softmax.next(ctx, scores);
  softmax.exponentiate(scores, step, pair, value_scale);
  if constexpr (ValuesPending) {
    // ptxas hoists a wgmma wait to just after the last shared-memory access before it:
    // storing the row sums, which every exponential and the maxima feed, keeps the softmax
    // ahead of the wait, while P V runs.
    row_sums[0] = softmax.l[0];
    row_sums[1] = softmax.l[1];
    ctx.template wgmma_wait<0>(o, weights);
    if (ctx.warp_any(step.factor[0] != 1.0f || step.factor[1] != 1.0f))
      for (int i = 0; i < N / 2; ++i) o.reg[i] *= step.factor[i / 2 % 2];
  }
  mma_softmax<KeyBlocks>::template pack<Input>(scores, weights);
}

/// Converts 8 values of a row stored as Type (fp8, int8, int4: fp16 holds every value, so
/// exactly; scales apply apart) into fp16 in 64-dim rows of 128 bytes with the 128-byte
/// swizzle: chunk `chunk` of the raw row at `raw_row` (Type::bits bytes at Type::bits chunk)
/// to row `row` of the slice chunk / 8 of `rows` (slices of slice_bytes), 16 bytes stored at
/// once.
template <class Type>
KVC_HOST_DEVICE void convert_chunk_to_fp16(const std::byte* raw_row, std::byte* rows,
                                           std::uint32_t slice_bytes, std::uint32_t row,
                                           std::uint32_t chunk) {
  static_assert(Type::bits == 8 || Type::bits == 4,
                "kvc::kernels::convert_chunk_to_fp16: 8-bit or 4-bit storage");
  std::uint32_t pairs[4];
  if constexpr (Type::bits == 8) {
    const vec8 values = *reinterpret_cast<const vec8*>(raw_row + 8 * chunk);
    numeric::unpack_fp16<Type>(values.x, pairs);
    numeric::unpack_fp16<Type>(values.y, pairs + 2);
  } else {
    numeric::unpack_fp16<Type>(*reinterpret_cast<const std::uint32_t*>(raw_row + 4 * chunk), pairs);
  }
  *reinterpret_cast<vec16*>(rows + chunk / 8 * slice_bytes + swizzled_128_offset(row, chunk % 8)) =
      vec16{pairs[0], pairs[1], pairs[2], pairs[3]};
}

/// Where key tile t of a warpgroup kernel lies in its shared memory, from the Tiling's
/// constants: its 16-bit rows, what wgmma reads (Tiling::tiles buffers in turn after q_bytes);
/// where its copies land (those rows, or in 8-bit and 4-bit storage one of two raw buffers); its
/// flags (an int32 a slot, 1 where staged) after what lands.
template <class Tiling>
struct wgmma_tile_places {
  KVC_HOST_DEVICE static constexpr std::uint32_t rows(std::int64_t t) {
    return Tiling::q_bytes + static_cast<std::uint32_t>(t % Tiling::tiles) * Tiling::tile_bytes;
  }
  KVC_HOST_DEVICE static constexpr std::uint32_t landing(std::int64_t t) {
    return Tiling::converts ? Tiling::raw + static_cast<std::uint32_t>(t % 2) * Tiling::raw_bytes
                            : rows(t);
  }
  KVC_HOST_DEVICE static constexpr std::uint32_t flags(std::int64_t t) {
    return landing(t) + (Tiling::converts ? Tiling::raw_held : Tiling::held);
  }
};

}  // namespace kvc::kernels
