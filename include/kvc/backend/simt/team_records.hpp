#pragma once
// What the threads of an emulated block leave with their team for one another: a lane's value
// in a warp exchange, a lane's mma fragments, a warpgroup thread's part of a wgmma, and the
// limits of those exchanges.

#include <cstddef>
#include <cstdint>

namespace kvc::simt::detail {

enum class collective : unsigned char {
  shfl_xor,
  shfl_down,
  shfl_idx,
  warp_sum,
  warp_max,
  sync_warp
};

inline const char* collective_name(collective kind) {
  switch (kind) {
    case collective::shfl_xor:
      return "shfl_xor";
    case collective::shfl_down:
      return "shfl_down";
    case collective::shfl_idx:
      return "shfl_idx";
    case collective::warp_sum:
      return "warp_sum";
    case collective::warp_max:
      return "warp_max";
    case collective::sync_warp:
      return "sync_warp";
  }
  return "collective";
}

/// One lane's value in a warp exchange (CUDA shuffles move at most 8 bytes).
struct slot {
  alignas(8) std::byte bytes[8];
};

/// One lane's A and B fragments of a warp matrix multiply-accumulate (kernels/mma.hpp).
struct mma_fragment {
  std::uint32_t a[4], b[2];
};

/// One warpgroup thread's part of an issued warpgroup matrix multiply-accumulate
/// (kernels/wgmma.hpp): its A fragment when A is in registers, and what every thread of the
/// warpgroup must give alike (descriptors and shape), kept per thread so that they are compared.
struct wgmma_record {
  std::uint32_t a[4];
  std::uint64_t a_descriptor, b_descriptor;
  std::uint32_t shape;
};
/// The most wgmma operations a thread may have issued and not yet waited for. The records of
/// a warpgroup's operations live in a ring of twice as many: a thread writes an operation's
/// record while another may still read the records of the operations it waits for, and both
/// lie within this many of the last operation every thread had issued at the last wait.
inline constexpr unsigned wgmma_in_flight_limit = 128;
inline constexpr unsigned wgmma_ring_operations = 2 * wgmma_in_flight_limit;
inline constexpr unsigned warpgroup_size = 128;

/// Folds the values of the member lanes into one (warp reductions).
using combine_function = void (*)(const slot* values, unsigned members, slot& result);

}  // namespace kvc::simt::detail
