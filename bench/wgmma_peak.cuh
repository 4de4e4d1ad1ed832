#pragma once
// Hopper's wgmma throughput as a GPU benchmark measures it (bench_device_decode.cu, built for
// sm_90a): every warpgroup runs a chain of wgmma m64n256k16 with A from registers and B from
// an 8 KiB tile in shared memory, four to a group and one group in flight, every SM full. The
// ceiling of a kernel built on wgmma (the warpgroup MLA decode), as mma_peak.cuh is of one
// built on mma.sync.

#include <cuda_runtime.h>

#include <cstdint>

#include "device_pages.cuh"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "mma_peak.cuh"

namespace kvc::bench_device {

template <kernels::mma_input Input>
struct wgmma_loop {
  float* sink;
  int rounds;

  template <class Context>
  __device__ void operator()(const Context& ctx) const {
    std::byte* shared = ctx.dynamic_shared();
    std::byte* tile = shared + (1024 - ctx.shared_address(shared) % 1024) % 1024;
    for (unsigned i = ctx.thread_rank(); i < 8192 / 4; i += ctx.block_threads())
      reinterpret_cast<std::uint32_t*>(tile)[i] = 0x3C003C00u ^ (i << 3);
    ctx.fence_shared_async();
    ctx.sync();
    kernels::mma_a a{};
    for (int i = 0; i < 4; ++i) a.reg[i] = 0x3C003C00u ^ (ctx.lane() << 3);
    // B: 16 x 256, MN-major with the 128-byte swizzle (rows of 64 values, 1 KiB a 64 columns).
    const kernels::wgmma_descriptor b = kernels::make_wgmma_descriptor(
        ctx.shared_address(tile), 2048, 1024, kernels::wgmma_swizzle::bytes_128);
    kernels::wgmma_d<256> d{};
    ctx.wgmma_fence(d);
    for (int r = 0; r < rounds; ++r) {
      ctx.wgmma_fence();
      for (int j = 0; j < 4; ++j)
        ctx.template wgmma<Input, kernels::wgmma_major::mn>(a, b, d, true);
      ctx.wgmma_commit();
      ctx.template wgmma_wait<1>();
    }
    ctx.template wgmma_wait<0>(d);
    float folded = 0.0f;
    for (const float x : d.reg) folded += x;
    if (folded == 1.2345f) sink[0] = folded;  // almost never: keeps the products
  }
};

/// FLOP/s of wgmma m64n256k16 with fp32 accumulation, two warpgroups a block, every SM full.
template <kernels::mma_input Input>
inline double wgmma_peak() {
  static const double peak = [] {
    constexpr int rounds = 1024;
    return loop_flops<kernels::block_shape<256>>(
        [](float* sink) {
          return wgmma_loop<Input>{sink, rounds};
        },
        2, 8192 + 1024, 2.0 * 64 * 256 * 16 * 4 * rounds * 2, "wgmma_loop");
  }();
  return peak;
}

}  // namespace kvc::bench_device
