// kernels::row_sums written by hand against CUDA's intrinsics, for the zero-cost check of
// the SIMT context (scripts/compare_simt_ptx.sh compares its PTX with that of the context
// version; docs/simt.md gives the result). Two twins: one that hands the sum to every
// thread as ctx.block_sum does, one that leaves it in thread 0 as CUB does.

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_reduce.cuh>

#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/row_sums.hpp"

// The arguments as one struct, as a hand-written kernel with many arguments would take them
// (and as the functor is passed): the comparison is then about the bodies.
struct row_sums_arguments {
  const float* input;
  float* output;
  std::uint32_t columns;
  std::uint32_t tile_floats;
};

template <unsigned Threads, bool Broadcast>
__global__ void __launch_bounds__(Threads) row_sums_by_hand(const row_sums_arguments arguments) {
  const float* input = arguments.input;
  float* output = arguments.output;
  const std::uint32_t columns = arguments.columns, tile_floats = arguments.tile_floats;
  extern __shared__ uint4 dynamic_shared[];
  float* tile = reinterpret_cast<float*>(dynamic_shared);
  const std::uint32_t row = blockIdx.x;
  const float* source = input + std::uint64_t{row} * columns;
  float partial = 0.0f;
  for (std::uint32_t start = 0; start < columns; start += tile_floats) {
    const std::uint32_t count = columns - start < tile_floats ? columns - start : tile_floats;
    for (std::uint32_t chunk = threadIdx.x; chunk < count / 4; chunk += Threads) {
      const auto destination = static_cast<unsigned>(__cvta_generic_to_shared(tile + 4 * chunk));
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(destination),
                   "l"(source + start + 4 * chunk)
                   : "memory");
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    __syncthreads();
    for (std::uint32_t i = threadIdx.x; i < count; i += Threads) partial += tile[i];
    __syncthreads();
  }
  using reduce = cub::BlockReduce<float, Threads, cub::BLOCK_REDUCE_WARP_REDUCTIONS>;
  __shared__ typename reduce::TempStorage storage;
  if constexpr (Broadcast) {
    __shared__ float result;
    const float folded = reduce(storage).Sum(partial);
    if (threadIdx.x == 0) result = folded;
    __syncthreads();
    const float sum = result;
    if (threadIdx.x == 0) output[row] = sum;
  } else {
    const float sum = reduce(storage).Sum(partial);
    if (threadIdx.x == 0) output[row] = sum;
  }
}

template __global__ void row_sums_by_hand<128, true>(const row_sums_arguments);
template __global__ void row_sums_by_hand<128, false>(const row_sums_arguments);
template __global__ void kvc::cuda::detail::run_kernel<
    kvc::kernels::block_shape<128>, kvc::kernels::row_sums>(const kvc::kernels::row_sums);
