#pragma once
// How the tensor-core kernels stage a tile (kernels/extend.hpp, kernels/decode_mma.hpp): the
// threads of a block are split into slots of SlotThreads consecutive threads, one slot per
// token of the tile, and a slot's threads copy its vector in 16-byte pieces, consecutive
// threads taking consecutive pieces (a warp reads whole sectors when SlotThreads >= 2).

#include <cstddef>

#include "kvc/config.hpp"

namespace kvc::kernels {

/// Copies a vector of Pieces 16-byte pieces from global memory at `source` to shared memory at
/// `row` asynchronously: thread `slot_thread` of its slot takes pieces slot_thread,
/// slot_thread + SlotThreads, ... When `valid` is false the pieces are zeros and nothing is
/// read (`source` must still be a mapped address).
template <int Pieces, int SlotThreads, class Context>
KVC_HOST_DEVICE inline void copy_slot(const Context& ctx, std::byte* row, const std::byte* source,
                                      int slot_thread, bool valid) {
  std::byte* to = row + 16 * slot_thread;
  const std::byte* from = source + 16 * slot_thread;
  for (int i = 0; i < (Pieces + SlotThreads - 1) / SlotThreads; ++i)
    if (Pieces % SlotThreads == 0 || slot_thread + i * SlotThreads < Pieces)
      ctx.copy_async(to + 16 * SlotThreads * i, from + 16 * SlotThreads * i, valid);
}

}  // namespace kvc::kernels
