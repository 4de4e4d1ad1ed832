#pragma once
// The part of the CUDA runtime API that kvc's CUDA backend (backend/cuda/) and an engine's
// host code call, on the host: device memory is host memory, a stream runs its work in order
// as it is queued, stream capture records that work into a graph that cudaGraphLaunch
// replays, and kernels run in the SIMT emulator (backend/simt/launch.hpp). With it, a GPU
// engine written against kvc::cuda compiles with a host compiler and runs on a machine
// without a GPU, bit for bit as the emulator runs the kernels (docs/simt.md, "A CUDA engine
// without a GPU"). It is reached through the cuda_runtime.h beside it
// (kvc/backend/simt/cuda_runtime/, the target kvc::cuda_emulated), never included directly.
//
// What it does not emulate: several devices, events, peer access, pinned-memory semantics
// and the timing of asynchronous work (every queued operation has finished when its call
// returns, unless a graph records it).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "kvc/backend/simt/architecture.hpp"

// The runtime's types and constants, with CUDA's names and values (driver_types.h).
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorGraphExecUpdateFailure = 910,
};
using cudaError_t = cudaError;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};
inline constexpr unsigned cudaStreamDefault = 0x00;
inline constexpr unsigned cudaStreamNonBlocking = 0x01;

namespace kvc::simt::emulated_cuda {
/// A graph's node: what it runs, and its type (CUDA updates an executable graph only where
/// each node keeps its type).
enum class node_type : unsigned char { kernel, memcpy, memset };
struct graph_node {
  node_type type;
  std::function<void()> run;
};
}  // namespace kvc::simt::emulated_cuda
struct CUgraph_st {
  std::vector<kvc::simt::emulated_cuda::graph_node> nodes;
};
struct CUgraphExec_st {
  std::vector<kvc::simt::emulated_cuda::graph_node> nodes;
};
struct CUstream_st {
  CUgraph_st* capture = nullptr;  ///< the graph being recorded, or null
  bool capture_invalidated = false;
};
using cudaStream_t = CUstream_st*;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
enum cudaGraphExecUpdateResult {
  cudaGraphExecUpdateSuccess = 0,
  cudaGraphExecUpdateError = 1,
  cudaGraphExecUpdateErrorTopologyChanged = 2,
  cudaGraphExecUpdateErrorNodeTypeChanged = 3,
  cudaGraphExecUpdateErrorFunctionChanged = 4,
  cudaGraphExecUpdateErrorParametersChanged = 5,
  cudaGraphExecUpdateErrorNotSupported = 6,
  cudaGraphExecUpdateErrorUnsupportedFunctionChange = 7,
  cudaGraphExecUpdateErrorAttributesChanged = 8,
};
/// CUDA's also names the nodes at fault, which the emulator's graphs do not have.
struct cudaGraphExecUpdateResultInfo {
  cudaGraphExecUpdateResult result = cudaGraphExecUpdateSuccess;
};

namespace kvc::simt::emulated_cuda {

/// The emulated device: what cudaDeviceGetAttribute reports and how kernels are run. By
/// default an H100/H200 (132 SMs, sm_90 limits), one block at a time.
struct device_settings {
  int multiprocessors = 132;
  architecture target = sm_90;
  unsigned concurrent_blocks = 1;
};
inline device_settings& settings() {
  static device_settings value;
  return value;
}

namespace detail {

struct state {
  std::mutex mutex;
  std::map<const void*, std::size_t> allocations;  ///< device memory: base and size
  std::string last_failure;
};
inline state& runtime() {
  static state value;
  return value;
}
inline cudaError_t& last_error() {
  thread_local cudaError_t value = cudaSuccess;
  return value;
}

inline cudaError_t fail(cudaError_t error, std::string why = {}) {
  last_error() = error;
  if (!why.empty()) {
    const std::lock_guard lock(runtime().mutex);
    runtime().last_failure = std::move(why);
  }
  return error;
}

// Runs one operation; what it throws (a kernel's launch_error) is a launch failure.
inline cudaError_t run(const std::function<void()>& operation) {
  try {
    operation();
  } catch (const std::exception& e) {
    return fail(cudaErrorLaunchFailure, e.what());
  }
  return cudaSuccess;
}

}  // namespace detail

/// Returns what the last failed operation said (a kernel's launch_error, say): CUDA's error codes
/// cannot carry it.
inline std::string last_failure() {
  const std::lock_guard lock(detail::runtime().mutex);
  return detail::runtime().last_failure;
}

/// Queues `operation`, a node of type `type`, on `stream`: recorded when the stream is being
/// captured, run now otherwise (a stream runs its work in order, and nothing else runs beside
/// it).
inline cudaError_t enqueue(cudaStream_t stream, node_type type, std::function<void()> operation) {
  if (stream != nullptr && stream->capture != nullptr) {
    stream->capture->nodes.push_back({type, std::move(operation)});
    return cudaSuccess;
  }
  return detail::run(operation);
}

}  // namespace kvc::simt::emulated_cuda

// The calls, in the global namespace as CUDA's are.

inline const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure (emulated)";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched:
      return "capture was not initiated in this stream";
    case cudaErrorGraphExecUpdateFailure:
      return "the graph update was not performed because it included changes which violated "
             "constraints specific to instantiated graph update";
  }
  return "unrecognized error code";
}
inline cudaError_t cudaGetLastError() {
  return std::exchange(kvc::simt::emulated_cuda::detail::last_error(), cudaSuccess);
}
inline cudaError_t cudaPeekAtLastError() { return kvc::simt::emulated_cuda::detail::last_error(); }

inline cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidDevice);
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  namespace emulated = kvc::simt::emulated_cuda;
  if (value == nullptr) return emulated::detail::fail(cudaErrorInvalidValue);
  if (device != 0) return emulated::detail::fail(cudaErrorInvalidDevice);
  switch (attribute) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = static_cast<int>(emulated::settings().target.max_threads_per_block);
      return cudaSuccess;
    case cudaDevAttrWarpSize:
      *value = 32;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = emulated::settings().multiprocessors;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(emulated::settings().target.max_shared_bytes_per_block);
      return cudaSuccess;
  }
  return emulated::detail::fail(cudaErrorInvalidValue);
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// Device memory: host memory, 256-byte aligned as cudaMalloc's, uninitialized.
inline cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  namespace emulated = kvc::simt::emulated_cuda;
  if (pointer == nullptr) return emulated::detail::fail(cudaErrorInvalidValue);
  void* memory = ::operator new (bytes == 0 ? 1 : bytes, std::align_val_t{256}, std::nothrow);
  if (memory == nullptr) return emulated::detail::fail(cudaErrorMemoryAllocation);
  const std::lock_guard lock(emulated::detail::runtime().mutex);
  emulated::detail::runtime().allocations.emplace(memory, bytes);
  *pointer = memory;
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
inline cudaError_t cudaFree(void* pointer) {
  namespace emulated = kvc::simt::emulated_cuda;
  if (pointer == nullptr) return cudaSuccess;
  {
    const std::lock_guard lock(emulated::detail::runtime().mutex);
    if (emulated::detail::runtime().allocations.erase(pointer) == 0)
      return emulated::detail::fail(cudaErrorInvalidValue);
  }
  ::operator delete (pointer, std::align_val_t{256});
  return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes,
                                   cudaMemcpyKind, cudaStream_t stream = nullptr) {
  if (bytes > 0 && (destination == nullptr || source == nullptr))
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  namespace emulated = kvc::simt::emulated_cuda;
  return emulated::enqueue(stream, emulated::node_type::memcpy,
                           [=] { std::memmove(destination, source, bytes); });
}
inline cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes,
                              cudaMemcpyKind kind) {
  return cudaMemcpyAsync(destination, source, bytes, kind, nullptr);
}
inline cudaError_t cudaMemsetAsync(void* destination, int value, std::size_t bytes,
                                   cudaStream_t stream = nullptr) {
  if (bytes > 0 && destination == nullptr)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  namespace emulated = kvc::simt::emulated_cuda;
  return emulated::enqueue(stream, emulated::node_type::memset,
                           [=] { std::memset(destination, value, bytes); });
}
inline cudaError_t cudaMemset(void* destination, int value, std::size_t bytes) {
  return cudaMemsetAsync(destination, value, bytes, nullptr);
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  if (stream == nullptr) return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{};
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidResourceHandle);
  delete stream->capture;
  delete stream;
  return cudaSuccess;
}
/// Waits for the stream's work. A stream that is being captured cannot be waited for: as in CUDA,
/// the wait fails and the capture is invalidated (cudaStreamEndCapture then fails and gives no
/// graph).
inline cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream != nullptr && stream->capture != nullptr) {
    stream->capture_invalidated = true;
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

// Graphs: capture records what is queued on the stream, instantiation copies the record,
// a launch replays it on the launching stream.
inline cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (stream == nullptr || stream->capture != nullptr)  // the legacy stream cannot be captured
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorStreamCaptureUnsupported);
  stream->capture = new CUgraph_st{};
  stream->capture_invalidated = false;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  if (stream == nullptr || stream->capture == nullptr)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorStreamCaptureUnmatched);
  *graph = std::exchange(stream->capture, nullptr);
  if (std::exchange(stream->capture_invalidated, false)) {
    delete *graph;
    *graph = nullptr;
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorStreamCaptureInvalidated);
  }
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                        unsigned long long = 0) {
  if (exec == nullptr || graph == nullptr)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
// An update takes the new graph's work where its nodes are the executable graph's, one for one
// and of the same types (kernels with other arguments, grids or even functions), and otherwise
// leaves the executable graph as it was and fails, as CUDA does where the topology or a node's type
// changed. (CUDA refuses some changes within a node besides, such as a kernel node moving to
// another context, that the emulator cannot have.)
inline cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                       cudaGraphExecUpdateResultInfo* info) {
  if (info != nullptr) info->result = cudaGraphExecUpdateError;
  if (exec == nullptr || graph == nullptr || info == nullptr)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  const auto& now = exec->nodes;
  const auto& next = graph->nodes;
  info->result = cudaGraphExecUpdateSuccess;
  if (now.size() != next.size()) {
    info->result = cudaGraphExecUpdateErrorTopologyChanged;
  } else {
    for (std::size_t i = 0; i < now.size(); ++i)
      if (now[i].type != next[i].type) info->result = cudaGraphExecUpdateErrorNodeTypeChanged;
  }
  if (info->result != cudaGraphExecUpdateSuccess)
    return kvc::simt::emulated_cuda::detail::fail(cudaErrorGraphExecUpdateFailure);
  exec->nodes = next;
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return kvc::simt::emulated_cuda::detail::fail(cudaErrorInvalidValue);
  for (const kvc::simt::emulated_cuda::graph_node& node : exec->nodes)
    if (const cudaError_t status = kvc::simt::emulated_cuda::enqueue(stream, node.type, node.run);
        status != cudaSuccess)
      return status;
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
