#pragma once
// The vocabulary that device kernels, the CUDA context and the host emulator share: grid
// sizes and indices (dims3), a block shape fixed at compile time (block_shape), a 16-byte
// vector (vec16) and the warp constants. A block's shape is a type because CUB's block
// reductions need it at compile time, and a compile-time blockDim costs the kernel nothing.

#include <cstdint>

#include "kvc/config.hpp"

namespace kvc::kernels {

inline constexpr unsigned warp_size = 32;
/// A member mask naming every lane of a full warp.
inline constexpr unsigned all_lanes = 0xffff'ffffu;

/// Sizes and indices in x, y, z (the shape of CUDA's dim3 and uint3).
struct dims3 {
  std::uint32_t x = 1, y = 1, z = 1;

  KVC_HOST_DEVICE constexpr std::uint64_t volume() const {
    return std::uint64_t{x} * std::uint64_t{y} * std::uint64_t{z};
  }
  friend constexpr bool operator==(const dims3&, const dims3&) = default;
};

/// The threads of a block, X fastest. The shape is not checked here: the launchers refuse
/// shapes that CUDA cannot run (the emulator reports them at run time, so it can be tested).
template <unsigned X, unsigned Y = 1, unsigned Z = 1>
struct block_shape {
  static constexpr unsigned x = X, y = Y, z = Z;
  static constexpr unsigned threads = X * Y * Z;
  static constexpr unsigned warps = (threads + warp_size - 1) / warp_size;
  /// Lanes of the last warp (32 when the block is a whole number of warps).
  static constexpr unsigned last_warp_lanes =
      threads % warp_size == 0 ? warp_size : threads % warp_size;
  static constexpr dims3 dims() { return {X, Y, Z}; }
};

/// 16 bytes loaded or stored at once (CUDA's uint4; one ld.global.v4 on the device).
struct alignas(16) vec16 {
  std::uint32_t x, y, z, w;
};
/// 8 bytes loaded at once (CUDA's uint2).
struct alignas(8) vec8 {
  std::uint32_t x, y;
};

}  // namespace kvc::kernels
