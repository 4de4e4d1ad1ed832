#pragma once
// Launches the append kernel (kernels/append.hpp) on a stream: one layer of an open step,
// its pages in device memory (a device allocator's cache), the work's arrays and inputs too.
//   kvc::cuda::append<int8>(work, stream);
// No allocation and no synchronization: the launch is queued on `stream`; a launch error
// throws std::runtime_error (kvc::cuda::launch). A step of no sequence launches nothing.
// A kernel of dtypes other than the work's layer and input is refused before the launch
// (cache_error dtype_mismatch, kernels::check_append_kernel).

#include <cuda_runtime.h>

#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cuda {

/// Block: a multiple of 32 threads, one warp per new token at a time (128 by default).
template <class KType, class VType = KType, class Input = fp32,
          class Block = kernels::block_shape<128>>
void append(const kernels::append_work& work, cudaStream_t stream) {
  static_assert(Block::threads % kernels::warp_size == 0,
                "kvc::cuda::append: a block of whole warps");
  kernels::check_append_kernel<KType, VType, Input>(work, "kvc::cuda::append");
  if (work.batch <= 0 || work.geometry.kv_heads <= 0) return;
  launch(kernels::append_grid<Block>(work), Block{}, 0, stream,
         kernels::append<KType, VType, Input>{work});
}

}  // namespace kvc::cuda
