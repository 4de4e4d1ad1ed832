#pragma once
// Copies between host vectors and device memory for the device tests: to_device allocates
// (16 bytes more, so that a vector of no element still has an address) and aborts when it
// cannot; the caller frees with cudaFree.

#include <cuda_runtime.h>

#include <cstdlib>
#include <vector>

namespace kvc::testing {

template <class T>
T* to_device(const std::vector<T>& host) {
  void* p = nullptr;
  if (cudaMalloc(&p, host.size() * sizeof(T) + 16) != cudaSuccess) std::abort();
  cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> to_host(const T* device, std::size_t count) {
  std::vector<T> host(count);
  cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost);
  return host;
}

}  // namespace kvc::testing
