#pragma once
// The tensor cores' throughput as a GPU benchmark measures it (bench_device_extend.cu,
// bench_device_decode.cu): a loop of independent mma.sync m16n8k16 through the SIMT context,
// every SM full. The ceiling of any kernel built on mma.sync; Hopper's wgmma goes higher.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "device_pages.cuh"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::bench_device {

// Every warp runs `rounds` x 8 independent mma.sync on values in registers, then folds them.
template <kernels::mma_input Input>
struct mma_loop {
  float* sink;
  int rounds;

  template <class Context>
  __device__ void operator()(const Context& ctx) const {
    kernels::mma_a a{};
    kernels::mma_b b{};
    for (int i = 0; i < 4; ++i) a.reg[i] = 0x3C003C00u ^ (ctx.lane() << 3);
    for (int i = 0; i < 2; ++i) b.reg[i] = 0x3C003C00u ^ (ctx.lane() << 5);
    kernels::mma_c c[8] = {};
    for (int r = 0; r < rounds; ++r)
#pragma unroll
      for (int j = 0; j < 8; ++j) c[j] = ctx.template mma_m16n8k16<Input>(a, b, c[j]);
    float folded = 0.0f;
    for (const kernels::mma_c& x : c) folded += x.reg[0] + x.reg[1] + x.reg[2] + x.reg[3];
    if (folded == 1.2345f) sink[0] = folded;  // almost never: keeps the products
  }
};

/// FLOP/s of a throughput loop: `blocks_per_sm` blocks of Block an SM, each of
/// `flops_per_block`, the median of 10 launches after one to warm up. make_loop(sink) gives
/// the kernel, which writes to sink (4 bytes) only to keep its products.
template <class Block, class MakeLoop>
double loop_flops(const MakeLoop& make_loop, unsigned blocks_per_sm, std::size_t shared_bytes,
                  double flops_per_block, const char* name) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  float* sink = nullptr;
  check(cudaMalloc(&sink, 4), "cudaMalloc");
  const kvc::kernels::dims3 grid{static_cast<std::uint32_t>(sms) * blocks_per_sm, 1, 1};
  const auto loop = make_loop(sink);
  const event_timer timer;
  std::vector<float> times;
  for (int i = 0; i < 11; ++i) {
    cudaEventRecord(timer.start);
    kvc::cuda::launch(grid, Block{}, shared_bytes, nullptr, loop);
    cudaEventRecord(timer.stop);
    const double seconds = timer.seconds();
    if (i > 0) times.push_back(static_cast<float>(seconds * 1e3));
  }
  check(cudaGetLastError(), name);
  cudaFree(sink);
  return flops_per_block * grid.x / (median_ms(times) * 1e-3);
}

/// FLOP/s of mma.sync m16n8k16 with fp32 accumulation, every SM with 32 warps.
template <kernels::mma_input Input>
inline double mma_peak() {
  static const double peak = [] {
    constexpr int rounds = 4096;
    return loop_flops<kernels::block_shape<256>>(
        [](float* sink) {
          return mma_loop<Input>{sink, rounds};
        },
        4, 0, 2.0 * 16 * 8 * 16 * 8 * rounds * (256 / 32), "mma_loop");
  }();
  return peak;
}

}  // namespace kvc::bench_device
