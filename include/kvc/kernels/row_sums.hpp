#pragma once
// A small kernel written once for both SIMT contexts: the sum of each row of a row-major
// float matrix, one block per row. Each tile of the row goes from global to shared memory
// through asynchronous 16-byte copies, behind a wait and a barrier; each thread sums its
// share of the tile, and a block reduction gives the row's sum.
//
// Shared memory: tile_floats floats (launch with shared_bytes = tile_floats * 4). The
// columns and tile_floats are multiples of 4, input is 16-byte aligned.
// A kernel's call operator is KVC_HOST_DEVICE: the CUDA context calls it on the device, the
// emulator's on the host.

#include <cstdint>

#include "kvc/config.hpp"

namespace kvc::kernels {

struct row_sums {
  const float* input;
  float* output;
  std::uint32_t columns;
  std::uint32_t tile_floats;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    float* tile = ctx.template dynamic_shared<float>();
    const std::uint32_t row = ctx.block_idx().x;
    const float* source = input + std::uint64_t{row} * columns;
    float partial = 0.0f;
    for (std::uint32_t start = 0; start < columns; start += tile_floats) {
      const std::uint32_t count = columns - start < tile_floats ? columns - start : tile_floats;
      for (std::uint32_t chunk = ctx.thread_rank(); chunk < count / 4; chunk += ctx.block_threads())
        ctx.copy_async(tile + 4 * chunk, source + start + 4 * chunk);
      ctx.wait_async_copies();
      ctx.sync();
      for (std::uint32_t i = ctx.thread_rank(); i < count; i += ctx.block_threads())
        partial += tile[i];
      ctx.sync();  // every thread has read the tile before the next one overwrites it
    }
    const float sum = ctx.block_sum(partial);
    if (ctx.thread_rank() == 0) output[row] = sum;
  }
};

}  // namespace kvc::kernels
