#pragma once
// kvc::cuda::launch and kvc::cuda::resident_blocks where CUDA is emulated
// (kvc/backend/simt/cuda_runtime/cuda_runtime.h): the kernel functor is queued on the stream
// and runs in the SIMT emulator (simt::launch) with the emulated device's limits, so that
// kvc::cuda::append, decode and their checks run as on a GPU. kvc/backend/cuda/launch.cuh
// includes this in place of the GPU launcher.

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kvc/backend/simt/emulated_cuda_runtime.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::cuda {

namespace detail {

inline void check_launch(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("kvc::cuda::launch: ") + call + ": " +
                             cudaGetErrorString(status) + " (" +
                             simt::emulated_cuda::last_failure() + ")");
}

}  // namespace detail

inline constexpr std::size_t default_dynamic_shared_bytes = 48 * 1024;

template <class Block, class Kernel>
void launch(kernels::dims3 grid, Block, std::size_t shared_bytes, cudaStream_t stream,
            const Kernel& kernel) {
  static_assert(std::is_trivially_copyable_v<Kernel>,
                "kvc::cuda::launch: the kernel functor is copied to the device, so it must be "
                "trivially copyable");
  const simt::emulated_cuda::device_settings& device = simt::emulated_cuda::settings();
  simt::launch_options options;
  options.target = device.target;
  options.concurrent_blocks = device.concurrent_blocks;
  const cudaError_t queued = simt::emulated_cuda::enqueue(
      stream, simt::emulated_cuda::node_type::kernel, [grid, shared_bytes, kernel, options] {
        simt::launch(grid, Block{}, shared_bytes, kernel, options);
      });
  // The GPU's launcher reads cudaGetLastError after the launch, so an error an earlier call
  // left unread fails the launch there: here too.
  const cudaError_t unread = cudaGetLastError();
  detail::check_launch(queued != cudaSuccess ? queued : unread, "kernel launch");
}

/// Returns the blocks of Kernel one SM holds by its threads and shared memory (2,048 threads, 32
/// blocks and 228 KiB an SM, 1 KiB of it reserved per block, as on sm_80 and sm_90); the emulator
/// does not know registers.
template <class Block, class Kernel>
int resident_blocks(std::size_t shared_bytes, int = -1) {
  constexpr std::size_t sm_shared = 228 * 1024, reserved = 1024;
  const std::size_t warps = (Block::threads + kernels::warp_size - 1) / kernels::warp_size;
  const std::size_t by_threads = 2048 / (warps * kernels::warp_size);
  const std::size_t by_shared = sm_shared / (shared_bytes + reserved);
  return static_cast<int>(std::min({by_threads, by_shared, std::size_t{32}}));
}

}  // namespace kvc::cuda
