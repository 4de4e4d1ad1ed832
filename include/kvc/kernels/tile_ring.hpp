#pragma once
// A ring of tile buffers between producer threads (which copy tiles in) and consumer threads
// (which compute on them), synchronised by named barriers instead of the block barrier, as in
// FlashAttention-3's warp-specialised kernels: buffer b has a "full" barrier, which the
// producers arrive at once tile t (t % Buffers == b) has landed and the consumers wait at, and
// an "empty" barrier, which the consumers arrive at once they are done with the tile and the
// producers wait at before they copy tile t + Buffers into it. Neither side waits for more
// than the buffer it needs next, so the producers run up to Buffers tiles ahead.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::kernels {

/// The ring's barrier ids are FirstId .. FirstId + 2 Buffers - 1 (named barriers 1 to 15; 0 is
/// the block barrier's); Producers and Consumers are whole warps, each of them calls every
/// member below for every tile, in tile order.
template <unsigned Buffers, unsigned Producers, unsigned Consumers, unsigned FirstId = 1>
struct tile_ring {
  static_assert(Buffers >= 1 && FirstId >= 1 && FirstId + 2 * Buffers <= 16,
                "kvc::kernels::tile_ring: its 2 x Buffers barriers are among ids 1 to 15");
  static_assert(Producers % warp_size == 0 && Consumers % warp_size == 0 && Producers > 0 &&
                    Consumers > 0,
                "kvc::kernels::tile_ring: producers and consumers are whole warps");
  static constexpr unsigned buffers = Buffers, threads = Producers + Consumers;

  KVC_HOST_DEVICE static constexpr unsigned buffer(std::int64_t t) {
    return static_cast<unsigned>(t % Buffers);
  }
  KVC_HOST_DEVICE static constexpr unsigned full_id(std::int64_t t) { return FirstId + buffer(t); }
  KVC_HOST_DEVICE static constexpr unsigned empty_id(std::int64_t t) {
    return FirstId + Buffers + buffer(t);
  }

  /// Producer: waits until tile t's buffer is free (the consumers released tile t - Buffers).
  template <class Context>
  KVC_HOST_DEVICE static void acquire(const Context& ctx, std::int64_t t) {
    if (t >= Buffers) ctx.sync_named(empty_id(t), threads);
  }
  /// Producer: tile t is in its buffer. What the consumers read must be there first: the
  /// producer's copies waited for (wait_copies), and fenced (fence_shared_async) where wgmma
  /// reads them.
  template <class Context>
  KVC_HOST_DEVICE static void publish(const Context& ctx, std::int64_t t) {
    ctx.arrive_named(full_id(t), threads);
  }
  /// Consumer: waits until tile t is in its buffer.
  template <class Context>
  KVC_HOST_DEVICE static void wait(const Context& ctx, std::int64_t t) {
    ctx.sync_named(full_id(t), threads);
  }
  /// Consumer: done with tile t (every read of it, a wgmma's included, complete). Of `count`
  /// tiles, the last Buffers are not released: no producer waits for their buffers.
  template <class Context>
  KVC_HOST_DEVICE static void release(const Context& ctx, std::int64_t t, std::int64_t count) {
    if (t + Buffers < count) ctx.arrive_named(empty_id(t), threads);
  }
};

}  // namespace kvc::kernels
