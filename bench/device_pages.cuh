#pragma once
// What the GPU benchmarks share (bench_device_decode.cu, bench_device_extend.cu): CUDA error
// checks, copies to the device, medians, the copy's bandwidth, random page contents that are finite
// in every storage dtype, one layer's pages for a batch in a shuffled order (in copies, so that
// rows rotate through more memory than L2 holds), CUDA event timing, and the benchmark's main.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "kvc/cache/page_table.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/page_geometry.hpp"

namespace kvc::bench_device {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "kvc device benchmark: %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

template <class T>
T* device_copy(const std::vector<T>& host) {
  void* p = nullptr;
  check(cudaMalloc(&p, host.size() * sizeof(T) + 16), "cudaMalloc");
  check(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return static_cast<T*>(p);
}

inline double median_ms(std::vector<float> times) {
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Random 32-bit words with `mask` applied: finite values of every storage dtype and scale.
__global__ void fill_random(std::uint32_t* words, std::size_t count, std::uint32_t mask,
                            std::uint32_t seed) {
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    std::uint32_t x = static_cast<std::uint32_t>(i) * 0x9E3779B9u ^ seed ^
                      static_cast<std::uint32_t>(i >> 32) * 0x85EBCA6Bu;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    words[i] = x & mask;
  }
}

template <class Storage>
constexpr std::uint32_t finite_mask() {
  // Clearing the top exponent bit keeps a float of that width finite (|x| < 2); a cleared
  // bit 30 keeps every 32-bit word (the int8 / int4 scales) a finite float too.
  using k = typename Storage::k_type;
  using v = typename Storage::v_type;
  if constexpr (k::bits == 8 && v::bits == 8 && k::scale != scaling::per_token_head &&
                v::scale != scaling::per_token_head)
    return 0xBFBFBFBFu;
  if constexpr (k::bits == 16 && v::bits == 16) return 0xBFFFBFFFu;
  return 0xBFFFFFFFu;
}

/// Bytes of HBM traffic per second of a 1 GiB device-to-device copy (read + write).
inline double copy_bandwidth() {
  static const double bandwidth = [] {
    constexpr std::size_t bytes = std::size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    check(cudaMalloc(&a, bytes), "cudaMalloc");
    check(cudaMalloc(&b, bytes), "cudaMalloc");
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm
    std::vector<float> times;
    for (int i = 0; i < 10; ++i) {
      cudaEventRecord(start);
      cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms);
    }
    cudaFree(a);
    cudaFree(b);
    return 2.0 * static_cast<double>(bytes) / (median_ms(times) * 1e-3);
  }();
  return bandwidth;
}

template <class Storage>
using llama3_8b_layer = layer<gqa<32, 8>, head_dim<128>, Storage>;

// `copies` independent sets of one layer's pages for `batch` sequences of `context` tokens,
// in device memory, pages in a shuffled order.
struct device_layer {
  page_geometry geometry;
  std::byte* memory = nullptr;
  std::vector<page_table_csr> tables;  // host copies, for the plans
  struct device_table {
    std::int32_t *indptr = nullptr, *indices = nullptr, *last_page_len = nullptr;
    std::int64_t* seq_lens = nullptr;
  };
  std::vector<device_table> device_tables;

  template <class Spec, class Storage, int PageTokens = 16>
  static device_layer make(int batch, std::int64_t context, int copies) {
    device_layer d;
    d.geometry = page_geometry::make(
        layer_summary{layer_kind::attention, -1, Spec::q_heads, Spec::kv_heads, Spec::k_dim,
                      Spec::v_dim, Spec::is_latent, Spec::k_type::id, Spec::v_type::id},
        PageTokens, page_layout::nhd);
    const std::int64_t pages_each = (context + PageTokens - 1) / PageTokens;
    const std::int64_t pages = pages_each * batch * copies;
    const auto bytes = static_cast<std::size_t>(pages) * d.geometry.page_bytes;
    check(cudaMalloc(&d.memory, bytes), "cudaMalloc (pages)");
    fill_random<<<1024, 256>>>(reinterpret_cast<std::uint32_t*>(d.memory), bytes / 4,
                               finite_mask<Storage>(), 12345u);
    check(cudaGetLastError(), "fill_random");
    std::vector<std::int32_t> order(static_cast<std::size_t>(pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    std::size_t next = 0;
    for (int c = 0; c < copies; ++c) {
      page_table_csr table;
      for (int s = 0; s < batch; ++s) {
        for (std::int64_t p = 0; p < pages_each; ++p) table.indices.push_back(order[next++]);
        table.indptr.push_back(static_cast<std::int32_t>(table.indices.size()));
        table.last_page_len.push_back(
            static_cast<std::int32_t>(context - (pages_each - 1) * PageTokens));
        table.seq_lens.push_back(context);
      }
      table.serial = static_cast<std::uint64_t>(c + 1);
      table.group = 0;
      d.device_tables.push_back({device_copy(table.indptr), device_copy(table.indices),
                                 device_copy(table.last_page_len), device_copy(table.seq_lens)});
      d.tables.push_back(std::move(table));
    }
    return d;
  }
  paged_layer_view host_view(int copy) const {
    const page_table_csr& table = tables[static_cast<std::size_t>(copy)];
    paged_layer_view v;
    v.memory = memory;
    v.geometry = geometry;
    attach_table(v, table);
    return v;
  }
  paged_layer_view device_view(int copy) const {
    paged_layer_view v = host_view(copy);
    const device_table& t = device_tables[static_cast<std::size_t>(copy)];
    v.indptr = t.indptr;
    v.indices = t.indices;
    v.last_page_len = t.last_page_len;
    v.seq_lens = t.seq_lens;
    return v;
  }
  ~device_layer() {
    cudaFree(memory);
    for (const device_table& t : device_tables) {
      cudaFree(t.indptr);
      cudaFree(t.indices);
      cudaFree(t.last_page_len);
      cudaFree(t.seq_lens);
    }
  }
  device_layer() = default;
  device_layer(device_layer&& other) noexcept
      : geometry(other.geometry),
        memory(std::exchange(other.memory, nullptr)),
        tables(std::move(other.tables)),
        device_tables(std::move(other.device_tables)) {}
};

// Copies of a case for 256 MiB of pages (at most 64), when one copy is smaller.
inline int copies_for(double bytes) {
  const double wanted = 256.0 * (1 << 20);
  return bytes >= wanted ? 1 : std::min(64, static_cast<int>(wanted / bytes) + 1);
}

struct event_timer {
  cudaEvent_t start{}, stop{};
  event_timer() {
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
  }
  ~event_timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  double seconds() const {
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    return ms * 1e-3;
  }
};

/// Runs run(copy) once per copy (warm), then times one launch per iteration with CUDA events,
/// rotating through the copies; `what` names the kernel in errors.
template <class Run>
void time_rotating(benchmark::State& state, int copies, const Run& run, const char* what) {
  for (int c = 0; c < copies; ++c) run(c);
  check(cudaDeviceSynchronize(), what);
  const event_timer timer;
  int next = 0;
  for (auto _ : state) {
    cudaEventRecord(timer.start);
    run(next);
    cudaEventRecord(timer.stop);
    state.SetIterationTime(timer.seconds());
    next = (next + 1) % copies;
  }
  check(cudaGetLastError(), what);
}

/// The main of a device benchmark: without a CUDA device it says so (CTest's skip marker);
/// with one it prints the device and what `limits` adds (the physical limits the rows are
/// measured against), then runs the benchmarks.
template <class Limits>
int run_device_benchmarks(int argc, char** argv, Limits&& limits) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("device: %s, %d SMs, compute capability %d.%d; ", properties.name,
              properties.multiProcessorCount, properties.major, properties.minor);
  limits();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace kvc::bench_device
