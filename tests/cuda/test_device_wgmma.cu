// The warpgroup matrix multiply-accumulate on a GPU (sm_90a): the probe and problems that
// test_simt_wgmma runs in the host emulator (tests/wgmma_probe.hpp, wgmma_problem.hpp),
// launched through kvc::cuda::launch, D against the same host expectations. Built for
// sm_90a only; where no device, or one that is not compute capability 9.0, is present it
// reports itself skipped.

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "device_memory.hpp"
#include "device_present.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "named_barrier_runs.hpp"
#include "wgmma_problem.hpp"

namespace {

using kvc::kernels::mma_input;
using kvc::kernels::wgmma_major;
using kvc::kernels::wgmma_swizzle;

int failures = 0;

template <mma_input Input, wgmma_major MajorA, wgmma_major MajorB, int N, bool AInRegisters,
          unsigned Threads = 128>
void run(const kvc::testing::wgmma_problem_options& options, unsigned seed, const char* what) {
  kvc::testing::wgmma_problem<Input, MajorA, MajorB, N, AInRegisters> problem(options, seed);
  auto probe = problem.probe;
  std::byte* images = kvc::testing::to_device(problem.images);
  std::uint16_t* a = kvc::testing::to_device(problem.a);
  float* c = kvc::testing::to_device(problem.c);
  float* d = kvc::testing::to_device(problem.d);
  probe.images = images;
  probe.a = a;
  probe.c = c;
  probe.d = d;
  kvc::cuda::launch({1, 1, 1}, kvc::kernels::block_shape<Threads>{},
                    probe.shared_bytes(options.warpgroups), nullptr, probe);
  const cudaError_t status = cudaDeviceSynchronize();
  problem.d = kvc::testing::to_host(d, problem.d.size());
  for (void* p : {static_cast<void*>(images), static_cast<void*>(a), static_cast<void*>(c),
                  static_cast<void*>(d)})
    cudaFree(p);
  const auto counts = problem.check();
  std::printf("wgmma %s: %s, %d wrong, %d NaN\n", what, cudaGetErrorString(status), counts.wrong,
              counts.nan);
  failures += status != cudaSuccess || counts.wrong != 0 ? 1 : 0;
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  if (properties.major != 9 || properties.minor != 0) {
    std::printf("SKIPPED: wgmma needs compute capability 9.0 (sm_90a); device 0 is %d.%d\n",
                properties.major, properties.minor);
    return 0;
  }
  constexpr wgmma_swizzle swizzles[] = {wgmma_swizzle::none, wgmma_swizzle::bytes_32,
                                        wgmma_swizzle::bytes_64, wgmma_swizzle::bytes_128};
  unsigned seed = 1;
  for (wgmma_swizzle swizzle : swizzles) {
    kvc::testing::wgmma_problem_options o;
    o.swizzle_a = o.swizzle_b = swizzle;
    o.k = swizzle == wgmma_swizzle::bytes_32 ? 16 : swizzle == wgmma_swizzle::bytes_64 ? 32 : 64;
    run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, false>(o, seed++, "SS fp16 K K");
    run<mma_input::bf16, wgmma_major::k, wgmma_major::mn, 64, false>(o, seed++, "SS bf16 K MN");
    run<mma_input::bf16, wgmma_major::mn, wgmma_major::mn, 64, false>(o, seed++, "SS bf16 MN MN");
    run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, true>(o, seed++, "RS fp16 K");
  }
  kvc::testing::wgmma_problem_options o;
  run<mma_input::bf16, wgmma_major::k, wgmma_major::mn, 256, true>(o, seed++, "RS bf16 N 256");
  run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 128, false>(o, seed++, "SS fp16 N 128");
  o.warpgroups = 2;
  o.integers = true;
  run<mma_input::bf16, wgmma_major::k, wgmma_major::mn, 64, false, 256>(o, seed++,
                                                                        "two warpgroups");
  // FlashAttention-3's block: a producer warpgroup gives its registers to two consumer
  // warpgroups (setmaxnreg), and they meet at named barriers.
  failures += std::abs(kvc::testing::run_named_barrier_ring<true>(132, 33));
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
