#pragma once
// Launches a kernel functor on the GPU:
//   kvc::cuda::launch(grid, kernels::block_shape<128>{}, shared_bytes, stream, kernel);
// runs kernel(ctx) in every thread of every block with a kvc::cuda::simt_context. The
// functor is passed by value (trivially copyable). Above the default 48 KiB of dynamic
// shared memory the launcher raises the kernel's limit first; CUDA errors throw
// std::runtime_error naming the call. Where CUDA is emulated (kvc::cuda_emulated puts
// kvc/backend/simt/cuda_runtime/cuda_runtime.h first), the kernels run in the SIMT emulator
// instead (kvc/backend/simt/cuda_launch.hpp).

#include <cuda_runtime.h>

#if defined(KVC_CUDA_EMULATED)
#include "kvc/backend/simt/cuda_launch.hpp"
#else

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kvc/backend/cuda/simt_context.cuh"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::cuda {

namespace detail {

template <class Block, class Kernel>
__global__ void __launch_bounds__(Block::threads) run_kernel(const Kernel kernel) {
  kernel(simt_context<Block>{});
}
// A kernel that names the blocks an SM should hold (Kernel::min_blocks_per_sm) gets that as
// its launch bound, which caps its registers accordingly.
template <class Block, class Kernel>
__global__ void __launch_bounds__(Block::threads, Kernel::min_blocks_per_sm)
    run_resident_kernel(const Kernel kernel) {
  kernel(simt_context<Block>{});
}

template <class Kernel>
concept names_min_blocks = requires {
  Kernel::min_blocks_per_sm;
};

/// Returns the __global__ function that runs Kernel in blocks of Block.
template <class Block, class Kernel>
constexpr auto kernel_function() {
  if constexpr (names_min_blocks<Kernel>)
    return &run_resident_kernel<Block, Kernel>;
  else
    return &run_kernel<Block, Kernel>;
}

inline void check_launch(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("kvc::cuda::launch: ") + call + ": " +
                             cudaGetErrorString(status));
}

}  // namespace detail

inline constexpr std::size_t default_dynamic_shared_bytes = 48 * 1024;

template <class Block, class Kernel>
void launch(kernels::dims3 grid, Block, std::size_t shared_bytes, cudaStream_t stream,
            const Kernel& kernel) {
  static_assert(Block::threads >= 1 && Block::threads <= 1024 && Block::x <= 1024 &&
                    Block::y <= 1024 && Block::z <= 64,
                "kvc::cuda::launch: a block has 1 to 1024 threads, at most 1024 x 1024 x 64");
  static_assert(std::is_trivially_copyable_v<Kernel>,
                "kvc::cuda::launch: the kernel functor is copied to the device, so it must be "
                "trivially copyable");
  constexpr auto function = detail::kernel_function<Block, Kernel>();
  if (shared_bytes > default_dynamic_shared_bytes)
    detail::check_launch(cudaFuncSetAttribute(function, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(shared_bytes)),
                         "cudaFuncSetAttribute (dynamic shared memory)");
  // Inside the #if, clang-format takes the launch brackets for three '>'.
  // clang-format off
  function<<<dim3(grid.x, grid.y, grid.z), dim3(Block::x, Block::y, Block::z), shared_bytes,
             stream>>>(kernel);
  // clang-format on
  detail::check_launch(cudaGetLastError(), "kernel launch");
}

/// Returns the blocks of Kernel that one SM of `device` holds at once with `shared_bytes` of
/// dynamic shared memory (the CUDA occupancy API on the compiled kernel: its registers too).
template <class Block, class Kernel>
int resident_blocks(std::size_t shared_bytes, int device = -1) {
  constexpr auto function = detail::kernel_function<Block, Kernel>();
  int current = 0;
  detail::check_launch(cudaGetDevice(&current), "cudaGetDevice");
  if (device < 0) device = current;
  // The calling thread's device is put back whatever happens.
  struct restore_device {
    int device;
    ~restore_device() { cudaSetDevice(device); }
  };
  const restore_device restore{current};
  if (current != device) detail::check_launch(cudaSetDevice(device), "cudaSetDevice");
  if (shared_bytes > default_dynamic_shared_bytes)
    detail::check_launch(cudaFuncSetAttribute(function, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(shared_bytes)),
                         "cudaFuncSetAttribute (dynamic shared memory)");
  int blocks = 0;
  detail::check_launch(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                           &blocks, function, static_cast<int>(Block::threads), shared_bytes),
                       "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return blocks;
}

}  // namespace kvc::cuda

#endif  // KVC_CUDA_EMULATED
