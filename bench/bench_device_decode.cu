// GPU benchmarks of the device kernels (runs only where a CUDA device exists): decode of one
// Llama 3 8B layer (32 query heads, 8 KV heads, dim 128, pages of 16 tokens) in fp16, bf16,
// fp8 e4m3 and int8, batch 1 and 64, contexts of 4k and 32k; and the append kernel. Timed
// with CUDA events around each launch (manual time). Each row reports bytes_per_second (the
// KV bytes a decode reads; what an append reads and writes) and fraction_of_peak: that over
// the bandwidth of a device-to-device cudaMemcpyAsync of 1 GiB measured in the same binary
// (2 bytes of traffic per byte copied: it reads and writes).
//
//   build/bench/bench_device_decode --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// The pages are filled with a constant byte pattern on the device (the speed of decode does
// not depend on the values); the plan is made on the host and uploaded once per row.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/page_geometry.hpp"

namespace {
using namespace kvc;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "bench_device_decode: %s: %s\n", what, cudaGetErrorString(status));
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

/// Bytes of HBM traffic per second of a 1 GiB device-to-device copy (read + write).
double copy_bandwidth() {
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
    std::sort(times.begin(), times.end());
    cudaFree(a);
    cudaFree(b);
    return 2.0 * static_cast<double>(bytes) / (times[times.size() / 2] * 1e-3);
  }();
  return bandwidth;
}

template <class Storage>
using llama3_8b_layer = layer<gqa<32, 8>, head_dim<128>, Storage>;

// One layer's pages for `batch` sequences of `context` tokens, in device memory.
struct device_layer {
  page_geometry geometry;
  std::byte* memory = nullptr;
  page_table_csr table;  // host copies, for the plan
  std::int32_t *indptr = nullptr, *indices = nullptr, *last_page_len = nullptr;
  std::int64_t* seq_lens = nullptr;

  template <class Spec>
  static device_layer make(int batch, std::int64_t context) {
    device_layer d;
    d.geometry = page_geometry::make(
        layer_summary{layer_kind::attention, -1, Spec::q_heads, Spec::kv_heads, Spec::k_dim,
                      Spec::v_dim, false, Spec::k_type::id, Spec::v_type::id},
        16, page_layout::nhd);
    const std::int64_t pages_each = (context + 15) / 16;
    const std::size_t bytes = static_cast<std::size_t>(pages_each * batch) *
                              static_cast<std::size_t>(d.geometry.page_bytes);
    check(cudaMalloc(&d.memory, bytes), "cudaMalloc (pages)");
    check(cudaMemset(d.memory, 0x3C, bytes), "cudaMemset (pages)");
    d.table.indptr.assign(1, 0);
    for (int s = 0; s < batch; ++s) {
      for (std::int64_t p = 0; p < pages_each; ++p)
        d.table.indices.push_back(static_cast<std::int32_t>(s * pages_each + p));
      d.table.indptr.push_back(static_cast<std::int32_t>(d.table.indices.size()));
      d.table.last_page_len.push_back(static_cast<std::int32_t>(context - (pages_each - 1) * 16));
      d.table.seq_lens.push_back(context);
    }
    d.table.serial = 1;
    d.table.group = 0;
    d.indptr = device_copy(d.table.indptr);
    d.indices = device_copy(d.table.indices);
    d.last_page_len = device_copy(d.table.last_page_len);
    d.seq_lens = device_copy(d.table.seq_lens);
    return d;
  }
  paged_layer_view host_view() const {
    paged_layer_view v;
    v.memory = memory;
    v.geometry = geometry;
    v.batch = table.batch();
    v.indptr = table.indptr.data();
    v.indices = table.indices.data();
    v.last_page_len = table.last_page_len.data();
    v.seq_lens = table.seq_lens.data();
    v.serial = table.serial;
    v.group = table.group;
    return v;
  }
  paged_layer_view device_view() const {
    paged_layer_view v = host_view();
    v.indptr = indptr;
    v.indices = indices;
    v.last_page_len = last_page_len;
    v.seq_lens = seq_lens;
    return v;
  }
  void release() {
    cudaFree(memory);
    cudaFree(indptr);
    cudaFree(indices);
    cudaFree(last_page_len);
    cudaFree(seq_lens);
  }
};

template <class Storage>
void decode_row(benchmark::State& state) {
  using spec = llama3_8b_layer<Storage>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t context = state.range(1);
  device_layer layer = device_layer::make<spec>(batch, context);
  attention::decode_plan plan;
  kvc::cuda::plan_decode<shape>(layer.host_view(), spec::q_heads, plan);
  kvc::cuda::device_decode_plan device_plan;
  device_plan.upload(plan, nullptr);
  float* q = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32 * 128, 0.01f));
  float* out = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32 * 128));
  float* lse = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32));
  const paged_layer_view view = layer.device_view();
  const auto params = attention::attention_params_of<spec>();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  kvc::cuda::decode<shape>(plan, device_plan, view, q, out, lse, params, nullptr);  // warm
  check(cudaDeviceSynchronize(), "decode");
  for (auto _ : state) {
    cudaEventRecord(start);
    kvc::cuda::decode<shape>(plan, device_plan, view, q, out, lse, params, nullptr);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms * 1e-3);
  }
  check(cudaGetLastError(), "decode");
  const double kv_bytes = static_cast<double>(batch) * static_cast<double>(context) *
                          static_cast<double>(spec::bytes_per_token);
  state.counters["bytes_per_second"] =
      benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["copy_GBps"] = copy_bandwidth() / 1e9;
  state.counters["items"] = static_cast<double>(plan.items.size());
  state.counters["fraction_of_peak"] = benchmark::Counter(
      kv_bytes / copy_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(q);
  cudaFree(out);
  cudaFree(lse);
  layer.release();
}

template <class Storage>
void append_row(benchmark::State& state) {
  using spec = llama3_8b_layer<Storage>;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t tokens = state.range(1);
  const std::int64_t context = 4096;
  device_layer layer = device_layer::make<spec>(batch, context);
  std::vector<std::int64_t> token_indptr;
  for (int s = 0; s <= batch; ++s) token_indptr.push_back(s * tokens);
  std::int64_t* token_indptr_device = device_copy(token_indptr);
  const std::size_t inputs = static_cast<std::size_t>(batch * tokens) * 8 * 128;
  std::uint16_t* k = device_copy(std::vector<std::uint16_t>(inputs, 0x3C00));
  std::uint16_t* v = device_copy(std::vector<std::uint16_t>(inputs, 0x3C00));
  kernels::append_work work;
  work.memory = layer.memory;
  work.geometry = layer.geometry;
  work.batch = batch;
  work.indptr = layer.indptr;
  work.indices = layer.indices;
  work.seq_lens = layer.seq_lens;  // the last `tokens` positions of each sequence
  work.token_indptr = token_indptr_device;
  work.k = k;
  work.k_token_stride = 8 * 128;
  work.k_head_stride = 128;
  work.v = v;
  work.v_token_stride = 8 * 128;
  work.v_head_stride = 128;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  kvc::cuda::append<typename spec::k_type, typename spec::v_type, fp16>(work, nullptr);
  check(cudaDeviceSynchronize(), "append");
  for (auto _ : state) {
    cudaEventRecord(start);
    kvc::cuda::append<typename spec::k_type, typename spec::v_type, fp16>(work, nullptr);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms * 1e-3);
  }
  const double bytes = static_cast<double>(batch * tokens) *
                       (static_cast<double>(spec::bytes_per_token) + 2.0 * 8 * 128 * 2);
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_peak"] =
      benchmark::Counter(bytes / copy_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
  cudaFree(token_indptr_device);
  cudaFree(k);
  cudaFree(v);
  layer.release();
}

void decode_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "ctx"});
  for (const int batch : {1, 64})
    for (const int context : {4096, 32768}) b->Args({batch, context});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(decode_row<storage<fp16>>)->Name("device_decode/llama3_8b/fp16")->Apply(decode_arguments);
BENCHMARK(decode_row<storage<bf16>>)->Name("device_decode/llama3_8b/bf16")->Apply(decode_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>>)
    ->Name("device_decode/llama3_8b/fp8_e4m3")
    ->Apply(decode_arguments);
BENCHMARK(decode_row<storage<int8>>)->Name("device_decode/llama3_8b/int8")->Apply(decode_arguments);
BENCHMARK(append_row<storage<fp16>>)
    ->Name("device_append/llama3_8b/fp16")
    ->ArgNames({"batch", "tokens"})
    ->Args({64, 1})
    ->Args({8, 2048})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(append_row<storage<int8>>)
    ->Name("device_append/llama3_8b/int8")
    ->ArgNames({"batch", "tokens"})
    ->Args({64, 1})
    ->Args({8, 2048})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("device: %s, %d SMs, compute capability %d.%d; copy bandwidth %.0f GB/s\n",
              properties.name, properties.multiProcessorCount, properties.major, properties.minor,
              copy_bandwidth() / 1e9);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
