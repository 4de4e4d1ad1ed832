#pragma once
// The named-barrier kernels of tests/simt_named_barriers.hpp on a GPU, against the host's
// expectations: each returns how many values came back wrong, or -1 where the kernel failed
// (a launch that CUDA refuses throws, from kvc::cuda::launch).

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <vector>

#include "device_memory.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "simt_named_barriers.hpp"

namespace kvc::testing {

/// The producer warp (or, with ProducerWarpgroup, warpgroup: sm_90a) and two consumer
/// warpgroups over `tiles` tiles in each of `blocks` blocks.
template <bool ProducerWarpgroup>
int run_named_barrier_ring(unsigned blocks, unsigned tiles) {
  using ring = named_barrier_ring<ProducerWarpgroup>;
  std::vector<float> source(std::size_t{blocks} * tiles * ring::tile);
  for (std::size_t i = 0; i < source.size(); ++i) source[i] = ring::source_value(i);
  const std::vector<float> unset(std::size_t{blocks} * ring::consumers, -1.0f);
  float* device_source = to_device(source);
  float* device_sums = to_device(unset);
  kvc::cuda::launch({blocks, 1, 1}, kvc::kernels::block_shape<ring::block_threads>{},
                    ring::shared_bytes, nullptr, ring{device_source, device_sums, tiles});
  const cudaError_t status = cudaDeviceSynchronize();
  const std::vector<float> sums = to_host(device_sums, unset.size());
  cudaFree(device_source);
  cudaFree(device_sums);
  if (status != cudaSuccess) return -1;
  int wrong = 0;
  for (unsigned block = 0; block < blocks; ++block)
    for (unsigned rank = 0; rank < ring::consumers; ++rank)
      wrong += sums[std::size_t{block} * ring::consumers + rank] !=
               ring::expected_sum(source.data(), tiles, block, rank);
  std::printf("named barriers, a producer %s and 2 warpgroups, %u blocks x %u tiles: %d wrong\n",
              ProducerWarpgroup ? "warpgroup (setmaxnreg)" : "warp", blocks, tiles, wrong);
  return wrong;
}

/// Two warpgroups taking `turns` turns.
inline int run_named_barrier_ping_pong(unsigned turns) {
  const std::vector<unsigned> unset(std::size_t{turns} * 128, 0);
  unsigned* device_seen = to_device(unset);
  kvc::cuda::launch({1, 1, 1}, kvc::kernels::block_shape<named_barrier_ping_pong::threads>{},
                    turns * 128 * sizeof(unsigned), nullptr,
                    named_barrier_ping_pong{device_seen, turns});
  const cudaError_t status = cudaDeviceSynchronize();
  const std::vector<unsigned> seen = to_host(device_seen, unset.size());
  cudaFree(device_seen);
  if (status != cudaSuccess) return -1;
  int wrong = 0;
  for (unsigned turn = 0; turn < turns; ++turn)
    for (unsigned column = 0; column < 128; ++column)
      wrong += seen[turn * 128 + column] != turn + 1;
  std::printf("named barriers, 2 warpgroups taking %u turns: %d wrong\n", turns, wrong);
  return wrong;
}

}  // namespace kvc::testing
