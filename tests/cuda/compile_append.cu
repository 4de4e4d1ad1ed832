// The append kernel (kernels/append.hpp) as device code: kvc::cuda::append instantiated for
// every storage dtype and input dtype, built for every architecture of
// CMAKE_CUDA_ARCHITECTURES (80 and 90 by default). Compiled, not run: test_simt_append
// checks the same kernel's bytes in the host emulator.

#include <cuda_runtime.h>

#include "kvc/backend/cuda/append.cuh"

namespace kvc::testing {

void append_every_dtype(const kernels::append_work& work, cudaStream_t stream) {
  cuda::append<fp32>(work, stream);
  cuda::append<fp16>(work, stream);
  cuda::append<bf16>(work, stream);
  cuda::append<fp8_e4m3>(work, stream);
  cuda::append<fp8_e5m2>(work, stream);
  cuda::append<int8>(work, stream);
  cuda::append<int4>(work, stream);
  cuda::append<int8, fp16>(work, stream);
  cuda::append<int8, int8, fp16>(work, stream);
  cuda::append<fp8_e4m3, fp8_e4m3, bf16, kernels::block_shape<64>>(work, stream);
}

}  // namespace kvc::testing
