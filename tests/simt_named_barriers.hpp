#pragma once
// Two kernels that meet at named barriers instead of the block barrier, as FlashAttention-3's
// warp-specialised kernels do: a producer warp filling a ring of two buffers for two consumer
// warpgroups, and two warpgroups taking turns. test_simt runs them in the emulator, tests/cuda
// on a GPU; both compare with what the host computes from the inputs alone.

#include <cstddef>
#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/tile_ring.hpp"

namespace kvc::testing {

/// Warps 0-7 (two warpgroups) consume and warp 8 produces, through a kernels::tile_ring of two
/// buffers: tile t of 128 floats is copied into buffer t % 2, announced on barrier "full" and
/// handed back on "empty" (256 + 32 threads each). Consumer thread r adds (t + 1) times element (r
/// + t) % 128 of every tile. Blocks of 288 threads, 2 x 128 floats of shared memory, one block per
/// blockIdx.x. With `ProducerWarpgroup` (sm_90a on a GPU), the block is three whole warpgroups, 384
/// threads, as in FlashAttention-3: the producer's lowers its registers to 40 a thread and the
/// consumers raise theirs to 232 (setmaxnreg), and warps 9-11 then leave.
template <bool ProducerWarpgroup = false>
struct named_barrier_ring {
  static constexpr unsigned consumers = 256, threads = consumers + 32, tile = 128;
  static constexpr unsigned block_threads = ProducerWarpgroup ? consumers + 128 : threads;
  /// One block an SM: the launch bound from which ptxas takes the registers a thread has at
  /// entry (168 for 384 threads), which setmaxnreg then moves (it is dropped without one).
  static constexpr int min_blocks_per_sm = 1;
  static constexpr unsigned shared_bytes = 2 * tile * sizeof(float);
  const float* source;  ///< tiles x 128 floats per block, 16-byte aligned
  float* sums;          ///< consumers per block
  unsigned tiles;

  static KVC_HOST_DEVICE float weighted(float value, unsigned t) {
    return value * static_cast<float>(t + 1);
  }
  /// What consumer `rank` of block `block` sums, on the host (exact: small integers).
  static float expected_sum(const float* host_source, unsigned tiles, unsigned block,
                            unsigned rank) {
    float sum = 0.0f;
    for (unsigned t = 0; t < tiles; ++t)
      sum += weighted(host_source[(std::size_t{block} * tiles + t) * tile + (rank + t) % tile], t);
    return sum;
  }
  /// The source values the tests use: integers below 1000.
  static float source_value(std::size_t i) { return static_cast<float>((i * 7919u) % 1000u); }

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    float* buffers = ctx.template dynamic_shared<float>();
    const unsigned rank = ctx.thread_rank();
    const float* block_source = source + ctx.block_idx().x * tiles * tile;
    if constexpr (ProducerWarpgroup) {
      if (rank >= consumers) {
        ctx.template lower_registers<40>();
        if (ctx.warp() != consumers / 32) return;
      } else {
        ctx.template raise_registers<232>();
      }
    }
    using ring = kernels::tile_ring<2, 32, consumers>;
    if (ctx.warp() == consumers / 32) {
      for (unsigned t = 0; t < tiles; ++t) {
        ring::acquire(ctx, t);
        const unsigned b = ring::buffer(t);
        ctx.copy_async(buffers + b * tile + 4 * ctx.lane(),
                       block_source + t * tile + 4 * ctx.lane());
        ctx.commit_copies();
        ctx.template wait_copies<0>();
        ring::publish(ctx, t);
      }
      return;
    }
    float sum = 0.0f;
    for (unsigned t = 0; t < tiles; ++t) {
      ring::wait(ctx, t);
      sum += weighted(buffers[ring::buffer(t) * tile + (rank + t) % tile], t);
      ring::release(ctx, t, tiles);
    }
    sums[ctx.block_idx().x * consumers + rank] = sum;
  }
};

/// Two warpgroups take turns: warpgroup g waits on barrier 1 + g for its turn and hands the
/// turn over on the other's. Each turn adds one to what the other warpgroup wrote in the turn
/// before, so turn t's values are t + 1 only if the turns came in order. Blocks of 256
/// threads, turns x 128 unsigned of shared memory; `seen` gets them (turns x 128).
struct named_barrier_ping_pong {
  static constexpr unsigned threads = 256;
  unsigned* seen;
  unsigned turns;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    unsigned* log = ctx.template dynamic_shared<unsigned>();
    const unsigned group = ctx.thread_rank() / 128, column = ctx.thread_rank() % 128;
    for (unsigned turn = group; turn < turns; turn += 2) {
      if (turn != 0) ctx.sync_named(1 + group, threads);
      log[turn * 128 + column] = turn == 0 ? 1u : log[(turn - 1) * 128 + column] + 1u;
      ctx.arrive_named(2 - group, threads);
    }
    ctx.sync();
    for (unsigned turn = group; turn < turns; turn += 2)
      seen[turn * 128 + column] = log[turn * 128 + column];
  }
};

}  // namespace kvc::testing
