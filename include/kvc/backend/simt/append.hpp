#pragma once
// The append kernel (kernels/append.hpp) in the host emulator, as kvc::cuda::append launches
// it on a GPU: the same check of the kernel's dtypes against the work
// (kernels::check_append_kernel), then the launch.
//
//   kvc::simt::append<int8>(kernels::make_append_work(view, token_indptr, k, v));

#include "kvc/backend/simt/architecture.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::simt {

/// Block: a multiple of 32 threads (64 by default: the emulator runs a thread per lane).
template <class KType, class VType = KType, class Input = fp32,
          class Block = kernels::block_shape<64>>
void append(const kernels::append_work& work, const launch_options& options = {}) {
  static_assert(Block::threads % kernels::warp_size == 0,
                "kvc::simt::append: a block of whole warps");
  kernels::check_append_kernel<KType, VType, Input>(work, "kvc::simt::append");
  if (work.batch <= 0 || work.geometry.kv_heads <= 0) return;
  launch(kernels::append_grid<Block>(work), Block{}, 0, kernels::append<KType, VType, Input>{work},
         options);
}

}  // namespace kvc::simt
