#pragma once
// Device memory for kv_cache pages: kv_cache<Model, paged<P>, cuda::device_allocator>.
// Page copies (copy-on-write) are cudaMemcpyAsync on the allocator's stream. An engine writes
// a step's K/V with kvc::cuda::append (then kv_cache::mark_written); the cache's own write
// and read go through host staging of whole pages (download, change, upload): correct, and
// slow, for tests and tools.
// CUDA errors throw std::runtime_error naming the call.

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace kvc::cuda {

class device_allocator {
 public:
  static constexpr bool host_accessible = false;

  device_allocator() = default;  ///< the default stream
  explicit device_allocator(cudaStream_t stream) : stream_(stream) {}

  std::byte* allocate(std::size_t bytes) {
    void* pointer = nullptr;
    check(cudaMalloc(&pointer, bytes == 0 ? 1 : bytes), "cudaMalloc");
    check(cudaMemsetAsync(pointer, 0, bytes, stream_), "cudaMemsetAsync");
    return static_cast<std::byte*>(pointer);
  }
  void deallocate(std::byte* pointer, std::size_t) { cudaFree(pointer); }
  void copy(std::byte* destination, const std::byte* source, std::size_t bytes) {
    check(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync (device to device)");
  }
  // From pageable host memory the call returns once the source has been staged, so the
  // caller may reuse its buffer at once.
  void upload(std::byte* destination, const void* source, std::size_t bytes) {
    check(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync (host to device)");
  }
  void download(void* destination, const std::byte* source, std::size_t bytes) {
    check(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (device to host)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  cudaStream_t stream() const { return stream_; }

 private:
  static void check(cudaError_t status, const char* call) {
    if (status != cudaSuccess)
      throw std::runtime_error(std::string("kvc::cuda::device_allocator: ") + call + ": " +
                               cudaGetErrorString(status));
  }

  cudaStream_t stream_ = nullptr;
};

}  // namespace kvc::cuda
