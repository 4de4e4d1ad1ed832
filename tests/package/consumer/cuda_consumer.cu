// A CUDA consumer: the device allocator through kvc::cuda. It builds wherever nvcc is; it
// runs its allocation only where a GPU is present.
#include <cstdio>

#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/kvc.hpp"
#include "kvc/models/llama.hpp"

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("kvc cuda consumer: built; no GPU to run on\n");
    return 0;
  }
  kvc::kv_cache<kvc::models::llama3_8b, kvc::paged<16>, kvc::cuda::device_allocator> cache(
      kvc::capacity_pages{4});
  const kvc::sequence_id sequence = cache.add_sequence();
  std::printf("kvc cuda consumer: a device cache, sequence of %lld tokens\n",
              static_cast<long long>(cache.length(sequence)));
  return 0;
}
