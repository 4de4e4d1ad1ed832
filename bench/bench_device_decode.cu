// GPU benchmarks of the device kernels (runs only where a CUDA device exists), on layers of
// Llama 3 8B (32 query heads, 8 KV heads, dim 128, pages of 16 tokens):
// - decode in fp16 and bf16 at batch 1, 16, 64 and 128 and contexts of 4k, 32k and 128k, and
//   in fp8 e4m3, fp8 e5m2, int8, int4 and int8 K / fp16 V at batch 64, 32k;
// - append of a decode step (64 sequences x 1 token) and of a prefill (8 x 2048), fp16 and int8;
// - a whole decode step of a 4-layer model (append then decode in every layer) as one CUDA
//   graph;
// and decode on the tensor cores (bf16): DeepSeek V3's MLA layer (128 heads over a 512 + 64
// latent, pages of 64) at batch 1, 16 and 64 and contexts of 4k and 32k, Kimi K2's (64 heads)
// and DeepSeek V2-Lite's (16) at batch 64 and 1, 32k, and a Llama 3 405B layer (groups of 16);
// DeepSeek V3's and Llama 3 405B's also in fp8 e4m3 at batch 64 and 1, 32k; a Llama 3 70B
// layer (groups of 8) in bf16 and fp8 e4m3 at batch 64 and 1, 32k, on the tensor cores and on
// the CUDA cores (`/cuda_cores`: the streamed kernel, blocks of 3 warps); Llama 3 8B's in
// bf16, fp8 e4m3 and int8 opted into the tensor cores (`/tensor_cores`) at batch 64 and 1, 32k;
// in a build for sm_90a, DeepSeek V3's on the warpgroup MLA decode (`/warpgroups`, wgmma).
// Timed with CUDA events around each launch (manual time). Each row reports bytes_per_second
// (the KV bytes a decode reads; what an append reads and writes), fraction_of_copy (over a
// device-to-device cudaMemcpyAsync of 1 GiB, counting its read and its write) and
// fraction_of_read (over a kernel that only reads 1 GiB with 16-byte loads), both measured in
// this binary; a tensor-core row also TFLOPs and fraction_of_peak (over a loop of mma.sync
// m16n8k16, bench/mma_peak.cuh, or for `/warpgroups` of wgmma m64n256k16,
// bench/wgmma_peak.cuh).
//
//   build/bench/bench_device_decode --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// The pages hold random values (finite in every dtype), in a shuffled order. A case whose
// pages fit in L2 several times over is made in enough copies (each with its own pages, table
// and plan) for 256 MiB, and the iterations rotate through them, so that no row reads from a
// cache that a real step would miss.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "device_pages.cuh"
#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/models/deepseek.hpp"
#include "mma_peak.cuh"
#if defined(KVC_DEVICE_WGMMA)
#include "wgmma_peak.cuh"
#endif

namespace {
using namespace kvc;

using namespace kvc::bench_device;

// Reads `words` 16-byte words, every SM busy, and folds them so that nothing is optimized away.
__global__ void read_only(const uint4* data, std::size_t words, unsigned* sink) {
  unsigned folded = 0;
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < words; i += stride) {
    const uint4 w = __ldcs(data + i);
    folded ^= w.x ^ w.y ^ w.z ^ w.w;
  }
  if (folded == 0x9E3779B9u) sink[0] = folded;  // almost never: keeps the loads
}

/// Bytes per second of a kernel that only reads 1 GiB (16-byte streaming loads).
double read_bandwidth() {
  static const double bandwidth = [] {
    constexpr std::size_t bytes = std::size_t{1} << 30;
    void* a = nullptr;
    unsigned* sink = nullptr;
    check(cudaMalloc(&a, bytes), "cudaMalloc");
    check(cudaMalloc(&sink, 4), "cudaMalloc");
    check(cudaMemset(a, 0x5A, bytes), "cudaMemset");
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<float> times;
    for (int i = 0; i < 11; ++i) {
      cudaEventRecord(start);
      read_only<<<sms * 8, 512>>>(static_cast<const uint4*>(a), bytes / 16, sink);
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      if (i > 0) times.push_back(ms);
    }
    check(cudaGetLastError(), "read_only");
    cudaFree(a);
    cudaFree(sink);
    return static_cast<double>(bytes) / (median_ms(times) * 1e-3);
  }();
  return bandwidth;
}

void add_limits(benchmark::State& state, double bytes) {
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_copy"] =
      benchmark::Counter(bytes / copy_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_read"] =
      benchmark::Counter(bytes / read_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
}

// Decode of `batch` sequences of `ctx` tokens of a layer of Spec in pages of PageTokens. A row
// the tensor cores run also reports its FLOPs (2 x heads x (k_dim + v_dim) a token) against
// the mma.sync loop.
template <class Storage, class Spec = llama3_8b_layer<Storage>, int PageTokens = 16,
          class Block = kernels::decode_block<kernels::decode_shape_of<Spec, paged<PageTokens>>>>
void decode_row(benchmark::State& state) {
  using spec = Spec;
  using shape = kernels::decode_shape_of<spec, paged<PageTokens>>;
  constexpr int q_heads = spec::q_heads;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t context = state.range(1);
  const double kv_bytes = static_cast<double>(batch) * static_cast<double>(context) *
                          static_cast<double>(spec::bytes_per_token);
  const int copies = copies_for(kv_bytes);
  const device_layer layer = device_layer::make<spec, Storage, PageTokens>(batch, context, copies);
  std::vector<attention::decode_plan> plans(static_cast<std::size_t>(copies));
  std::vector<kvc::cuda::device_decode_plan> device_plans(static_cast<std::size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    kvc::cuda::plan_decode<shape, Block>(layer.host_view(c), q_heads, plans[c]);
    device_plans[c].upload(plans[c], nullptr);
  }
  const auto rows = static_cast<std::size_t>(batch) * q_heads;
  std::vector<float> q_host(rows * spec::k_dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (float& x : q_host) x = normal(rng);
  float* q = device_copy(q_host);
  float* out = device_copy(std::vector<float>(rows * spec::v_dim));
  float* lse = device_copy(std::vector<float>(rows));
  std::vector<paged_layer_view> views;
  for (int c = 0; c < copies; ++c) views.push_back(layer.device_view(c));
  const auto params = attention::attention_params_of<spec>();
  const auto run = [&](int c) {
    kvc::cuda::decode<shape, Block>(plans[c], device_plans[c], views[c], q, out, lse, params,
                                    nullptr);
  };
  time_rotating(state, copies, run, "decode");
  add_limits(state, kv_bytes);
  constexpr kernels::decode_path path = kernels::decode_path_of<shape, Block>;
  if constexpr (path == kernels::decode_path::tensor_cores ||
                path == kernels::decode_path::warpgroups) {
    const double flops =
        2.0 * batch * static_cast<double>(context) * q_heads * (spec::k_dim + spec::v_dim);
    state.counters["TFLOPs"] =
        benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
    // Against the loop of the kernel's own instruction: mma.sync, or wgmma.
    constexpr kernels::mma_input input = kernels::mma_input_of<typename spec::k_type>;
    double peak = mma_peak<input>();
#if defined(KVC_DEVICE_WGMMA)
    // The warpgroup kernel runs where the device takes the build's sm_90a code (compute
    // capability 9.0); elsewhere a build with 90a among others runs mma.sync.
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
    if constexpr (path == kernels::decode_path::warpgroups ||
                  kernels::decode_wgmma_in_sm90a_code<shape, Block>)
      if (major == 9 && minor == 0) peak = wgmma_peak<input>();
#endif
    state.counters["fraction_of_peak"] =
        benchmark::Counter(flops / peak, benchmark::Counter::kIsIterationInvariantRate);
  }
  state.counters["items"] = static_cast<double>(plans[0].items.size());
  state.counters["copies"] = copies;
  cudaFree(q);
  cudaFree(out);
  cudaFree(lse);
}

// The append work of `tokens` new tokens per sequence at the end of each sequence of `layer`
// (copy c), from fp16 inputs.
kernels::append_work append_work_of(const device_layer& layer, int copy, const std::int64_t* indptr,
                                    const std::uint16_t* k, const std::uint16_t* v,
                                    std::int64_t tokens) {
  const paged_layer_view view = layer.device_view(copy);
  kernels::append_work work;
  work.memory = layer.memory;
  work.geometry = layer.geometry;
  work.batch = view.batch;
  work.indptr = view.indptr;
  work.indices = view.indices;
  work.seq_lens = view.seq_lens;  // the last `tokens` positions of each sequence
  work.token_indptr = indptr;
  work.max_new_tokens = tokens;
  work.k = k;
  work.k_token_stride = 8 * 128;
  work.k_head_stride = 128;
  work.v = v;
  work.v_token_stride = 8 * 128;
  work.v_head_stride = 128;
  return work;
}

template <class Storage>
void append_row(benchmark::State& state) {
  using spec = llama3_8b_layer<Storage>;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t tokens = state.range(1);
  const double bytes = static_cast<double>(batch * tokens) *
                       (static_cast<double>(spec::bytes_per_token) + 2.0 * 8 * 128 * 2);
  const int copies = copies_for(bytes);
  const device_layer layer = device_layer::make<spec, Storage>(batch, 4096, copies);
  std::vector<std::int64_t> token_indptr;
  for (int s = 0; s <= batch; ++s) token_indptr.push_back(s * tokens);
  std::int64_t* token_indptr_device = device_copy(token_indptr);
  const std::size_t inputs = static_cast<std::size_t>(batch * tokens) * 8 * 128;
  std::uint16_t* k = nullptr;
  std::uint16_t* v = nullptr;
  check(cudaMalloc(&k, inputs * 2 * static_cast<std::size_t>(copies)), "cudaMalloc");
  check(cudaMalloc(&v, inputs * 2 * static_cast<std::size_t>(copies)), "cudaMalloc");
  fill_random<<<256, 256>>>(reinterpret_cast<std::uint32_t*>(k), inputs / 2 * copies, 0xBFFFBFFFu,
                            1);
  fill_random<<<256, 256>>>(reinterpret_cast<std::uint32_t*>(v), inputs / 2 * copies, 0xBFFFBFFFu,
                            2);
  std::vector<kernels::append_work> works;
  for (int c = 0; c < copies; ++c)
    works.push_back(
        append_work_of(layer, c, token_indptr_device, k + inputs * c, v + inputs * c, tokens));
  const auto run = [&](int c) {
    kvc::cuda::append<typename spec::k_type, typename spec::v_type, fp16>(works[c], nullptr);
  };
  time_rotating(state, copies, run, "append");
  add_limits(state, bytes);
  cudaFree(token_indptr_device);
  cudaFree(k);
  cudaFree(v);
}

// A decode step of a 4-layer model of Llama 3 8B layers (fp16), batch 64: in every layer the
// step's new K/V appended, then decode; captured once as a CUDA graph, launched per iteration.
void graph_step_row(benchmark::State& state) {
  using spec = llama3_8b_layer<storage<fp16>>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  constexpr int layers = 4;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t context = state.range(1);
  std::vector<device_layer> model;
  for (int l = 0; l < layers; ++l)
    model.push_back(device_layer::make<spec, storage<fp16>>(batch, context, 1));
  attention::decode_plan plan;
  kvc::cuda::plan_decode<shape>(model[0].host_view(0), spec::q_heads, plan);
  kvc::cuda::device_decode_plan device_plan;
  device_plan.upload(plan, nullptr);
  std::vector<std::int64_t> token_indptr;
  for (int s = 0; s <= batch; ++s) token_indptr.push_back(s);
  std::int64_t* indptr = device_copy(token_indptr);
  const std::size_t inputs = static_cast<std::size_t>(batch) * 8 * 128;
  std::uint16_t* k = device_copy(std::vector<std::uint16_t>(inputs, 0x3C00));
  std::uint16_t* v = device_copy(std::vector<std::uint16_t>(inputs, 0xBC00));
  float* q = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32 * 128, 0.01f));
  float* out = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32 * 128));
  float* lse = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * 32));
  const auto params = attention::attention_params_of<spec>();
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaGraph_t graph;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture");
  for (int l = 0; l < layers; ++l) {
    // Each layer's view has its own pages; the plan serves them all (one table serial).
    paged_layer_view view = model[static_cast<std::size_t>(l)].device_view(0);
    view.serial = plan.table_serial;
    kvc::cuda::append<fp16, fp16, fp16>(append_work_of(model[l], 0, indptr, k, v, 1), stream);
    kvc::cuda::decode<shape>(plan, device_plan, view, q, out, lse, params, stream);
  }
  check(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec;
  check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
  check(cudaStreamSynchronize(stream), "graph");
  const event_timer timer;
  for (auto _ : state) {
    cudaEventRecord(timer.start, stream);
    cudaGraphLaunch(exec, stream);
    cudaEventRecord(timer.stop, stream);
    state.SetIterationTime(timer.seconds());
  }
  check(cudaGetLastError(), "graph");
  add_limits(state, static_cast<double>(layers) * batch * static_cast<double>(context) *
                        static_cast<double>(spec::bytes_per_token));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(indptr);
  cudaFree(k);
  cudaFree(v);
  cudaFree(q);
  cudaFree(out);
  cudaFree(lse);
}

void sixteen_bit_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "ctx"});
  for (const int context : {4096, 32768, 131072})
    for (const int batch : {1, 16, 64, 128}) b->Args({batch, context});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}
void other_dtype_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "ctx"})->Args({64, 32768})->Args({1, 32768});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}
void append_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "tokens"})->Args({64, 1})->Args({8, 2048});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}

BENCHMARK(decode_row<storage<fp16>>)
    ->Name("device_decode/llama3_8b/fp16")
    ->Apply(sixteen_bit_arguments);
BENCHMARK(decode_row<storage<bf16>>)
    ->Name("device_decode/llama3_8b/bf16")
    ->Apply(sixteen_bit_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>>)
    ->Name("device_decode/llama3_8b/fp8_e4m3")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<fp8_e5m2>>)
    ->Name("device_decode/llama3_8b/fp8_e5m2")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<int8>>)
    ->Name("device_decode/llama3_8b/int8")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<kvc::int4>>)
    ->Name("device_decode/llama3_8b/int4")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<int8, fp16>>)
    ->Name("device_decode/llama3_8b/int8_k_fp16_v")
    ->Apply(other_dtype_arguments);
void latent_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "ctx"})->ArgsProduct({{1, 16, 64}, {4096, 32768}});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}
// Tensor-core decode: DeepSeek V3's MLA (128 heads over a 512 + 64 latent, pages of 64),
// Kimi K2's 64 heads, V2-Lite's 16; Llama 3 405B's groups of 16.
BENCHMARK(decode_row<storage<bf16>, models::mla_layer<128>, 64>)
    ->Name("device_decode/deepseek_v3/bf16")
    ->Apply(latent_arguments);
#if defined(KVC_DEVICE_WGMMA)
// In a build for sm_90a (an H100 or H200) DeepSeek V3's and Kimi K2's rows run the warpgroup
// MLA decode (kernels/decode_wgmma.hpp); this one keeps mma.sync (kernels::tensor_core_block).
BENCHMARK(
    decode_row<
        storage<bf16>, models::mla_layer<128>, 64,
        kernels::tensor_core_block<kernels::decode_shape_of<models::mla_layer<128>, paged<64>>>>)
    ->Name("device_decode/deepseek_v3/bf16/mma_sync")
    ->Apply(latent_arguments);
#endif
BENCHMARK(decode_row<storage<bf16>, models::mla_layer<64>, 64>)
    ->Name("device_decode/kimi_k2/bf16")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<bf16>, models::mla_layer<16>, 64>)
    ->Name("device_decode/deepseek_v2_lite/bf16")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<bf16>, layer<gqa<128, 8>, head_dim<128>, storage<bf16>>>)
    ->Name("device_decode/llama3_405b/bf16")
    ->Apply(other_dtype_arguments);
// The same in fp8 e4m3, converted into fp16 tiles in shared memory.
BENCHMARK(decode_row<storage<fp8_e4m3>,
                     layer<mqa<128>, latent<512, 64>, storage<fp8_e4m3>, inv_sqrt_scale<192>>, 64>)
    ->Name("device_decode/deepseek_v3/fp8_e4m3")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>, layer<gqa<128, 8>, head_dim<128>, storage<fp8_e4m3>>>)
    ->Name("device_decode/llama3_405b/fp8_e4m3")
    ->Apply(other_dtype_arguments);
// Llama 3 8B's groups of 4 opted into the tensor cores (kernels::tensor_core_block).
template <class Storage>
using llama3_8b_tensor_cores =
    kernels::tensor_core_block<kernels::decode_shape_of<llama3_8b_layer<Storage>, paged<16>>>;
BENCHMARK(decode_row<storage<bf16>, llama3_8b_layer<storage<bf16>>, 16,
                     llama3_8b_tensor_cores<storage<bf16>>>)
    ->Name("device_decode/llama3_8b/bf16/tensor_cores")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>, llama3_8b_layer<storage<fp8_e4m3>>, 16,
                     llama3_8b_tensor_cores<storage<fp8_e4m3>>>)
    ->Name("device_decode/llama3_8b/fp8_e4m3/tensor_cores")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<int8>, llama3_8b_layer<storage<int8>>, 16,
                     llama3_8b_tensor_cores<storage<int8>>>)
    ->Name("device_decode/llama3_8b/int8/tensor_cores")
    ->Apply(other_dtype_arguments);
// Llama 3 70B's groups of 8 (64 query heads over 8 KV heads, dim 128) on the tensor cores, and
// on the CUDA cores (the streamed kernel, which blocks of 3 warps take) to compare.
template <class Storage>
using llama3_70b_layer = layer<gqa<64, 8>, head_dim<128>, Storage>;
BENCHMARK(decode_row<storage<bf16>, llama3_70b_layer<storage<bf16>>>)
    ->Name("device_decode/llama3_70b/bf16")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<bf16>, llama3_70b_layer<storage<bf16>>, 16, kernels::block_shape<96>>)
    ->Name("device_decode/llama3_70b/bf16/cuda_cores")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>, llama3_70b_layer<storage<fp8_e4m3>>>)
    ->Name("device_decode/llama3_70b/fp8_e4m3")
    ->Apply(other_dtype_arguments);
BENCHMARK(decode_row<storage<fp8_e4m3>, llama3_70b_layer<storage<fp8_e4m3>>, 16,
                     kernels::block_shape<96>>)
    ->Name("device_decode/llama3_70b/fp8_e4m3/cuda_cores")
    ->Apply(other_dtype_arguments);
BENCHMARK(append_row<storage<fp16>>)->Name("device_append/llama3_8b/fp16")->Apply(append_arguments);
BENCHMARK(append_row<storage<int8>>)->Name("device_append/llama3_8b/int8")->Apply(append_arguments);
BENCHMARK(graph_step_row)
    ->Name("device_step_graph/llama3_8b_4_layers/fp16")
    ->ArgNames({"batch", "ctx"})
    ->Args({64, 4096})
    ->Args({1, 4096})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);

}  // namespace

int main(int argc, char** argv) {
  return run_device_benchmarks(argc, argv, [] {
    std::printf(
        "copy %.0f GB/s (read + write), read %.0f GB/s, mma.sync m16n8k16 bf16 %.0f "
        "TFLOP/s\n",
        copy_bandwidth() / 1e9, read_bandwidth() / 1e9,
        mma_peak<kernels::mma_input::bf16>() / 1e12);
#if defined(KVC_DEVICE_WGMMA)
    std::printf("wgmma m64n256k16 bf16 %.0f TFLOP/s\n",
                wgmma_peak<kernels::mma_input::bf16>() / 1e12);
#endif
  });
}
