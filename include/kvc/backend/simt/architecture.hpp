#pragma once
// The limits of the GPU that an emulated launch is checked against, and how it runs.
// max_shared_bytes_per_block is the opt-in maximum of dynamic shared memory (the CUDA
// launcher raises cudaFuncAttributeMaxDynamicSharedMemorySize above the 48 KiB default),
// less nothing for static shared memory, which the emulator does not count.

#include <cstddef>

namespace kvc::simt {

class memory_traffic;  // kvc/backend/simt/traffic.hpp

struct architecture {
  const char* name;
  std::size_t max_shared_bytes_per_block;
  unsigned max_threads_per_block = 1024;
};

inline constexpr architecture sm_80{"sm_80", 163 * 1024};  // A100
inline constexpr architecture sm_90{"sm_90", 227 * 1024};  // H100, H200

struct launch_options {
  /// sm_80 by default: the smallest limits of the architectures the library builds for.
  architecture target = sm_80;
  /// How many blocks run at the same time, each on its own set of host threads; 1 runs
  /// the blocks one after another.
  unsigned concurrent_blocks = 1;
  /// Where to record the launch's global memory accesses (none when null).
  memory_traffic* traffic = nullptr;
};

}  // namespace kvc::simt
