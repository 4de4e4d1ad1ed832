#pragma once
// Whether a CUDA device can run the test; without one (CUDA's runtime then fails with
// error 35, not "no device") the test prints the marker CTest reports as skipped.

#include <cuda_runtime.h>

#include <cstdio>

namespace kvc::testing {

inline bool device_present() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) return true;
  std::printf("SKIPPED: no CUDA device\n");
  return false;
}

}  // namespace kvc::testing
