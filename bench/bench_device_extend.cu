// GPU benchmarks of the tensor-core extend kernels (runs only where a CUDA device exists), on a
// Llama 3 8B layer (32 query heads, 8 KV heads, dim 128, pages of 16 tokens) in fp16, bf16 and
// fp8 e4m3 (tiles converted into fp16 as they land):
// - prefill of 2048 tokens x 8 sequences (causal, from nothing);
// - extend of 256 tokens over an 8k prefix x 8 sequences (bottom-right causal);
// the cases of ../shared/gpu/torch_prefill_anchor.py, with its FLOP count: 4 x 32 heads x 128
// x the visible (query, key) pairs; and on DeepSeek V3's latent layer (128 heads over a 512 + 64
// latent, bf16, pages of 64, absorbed form: 2 x 128 x (576 + 512) flops a visible pair), the
// prefill of 2048 tokens (one sequence) and an extend of 512 over 8k x 4. Each row reports
// TFLOPs and fraction_of_peak over a tensor-core throughput loop (mma.sync m16n8k16 of the same
// input type through the SIMT context, independent accumulators, every SM full) measured in
// this binary: the peak that kernels on mma.sync can reach. In a build for sm_90a (an H100 or
// H200: scripts/gpu-check.sh makes one there) the Llama rows also run the warpgroup extend
// (`/warpgroups`, kernels::warpgroup_extend_block, wgmma), their fraction_of_peak over a loop
// of wgmma m64n256k16 (bench/wgmma_peak.cuh). Timed with CUDA events around each launch
// (manual time).
//
//   build/bench/bench_device_extend --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// The pages hold random values in a shuffled order, in copies for 256 MiB when one is smaller.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "device_pages.cuh"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/extend.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/models/deepseek.hpp"
#include "mma_peak.cuh"
#if defined(KVC_DEVICE_WGMMA)
#include "wgmma_peak.cuh"
#endif

namespace {
using namespace kvc;
using namespace kvc::bench_device;

template <class Storage>
using llama3_8b_layer = layer<gqa<32, 8>, head_dim<128>, Storage>;

// batch sequences of `prefix` cached tokens and `fresh` new ones, all in the view's pages, of a
// layer of Spec in pages of PageTokens, on the extend kernel of Block (the shape's default, or
// warpgroup_extend_block).
template <class Storage, class Spec = llama3_8b_layer<Storage>, int PageTokens = 16,
          template <class> class Block = kernels::extend_block>
void extend_row(benchmark::State& state) {
  using spec = Spec;
  using shape = kernels::decode_shape_of<spec, paged<PageTokens>>;
  using block = Block<shape>;
#if defined(KVC_DEVICE_WGMMA)
  if constexpr (!std::is_same_v<block, kernels::extend_block<shape>>) {
    int major = 0, minor = 0;  // sm_90a code runs on compute capability 9.0 only
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
    if (major != 9 || minor != 0) {
      state.SkipWithError("the warpgroup extend needs a compute capability 9.0 device");
      return;
    }
  }
#endif
  constexpr kernels::mma_input input = kernels::mma_input_of<typename Storage::k_type>;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t fresh = state.range(1), prefix = state.range(2);
  const std::int64_t length = prefix + fresh;
  const int copies =
      copies_for(static_cast<double>(batch) * static_cast<double>(length) * spec::bytes_per_token);
  const device_layer pages = device_layer::make<spec, Storage, PageTokens>(batch, length, copies);
  std::vector<std::int64_t> token_indptr{0};
  for (int s = 0; s < batch; ++s) token_indptr.push_back(token_indptr.back() + fresh);
  std::int64_t* indptr = device_copy(token_indptr);
  const auto rows = static_cast<std::size_t>(token_indptr.back());
  std::vector<float> q_host(rows * spec::q_heads * spec::k_dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (float& x : q_host) x = normal(rng);
  float* q = device_copy(q_host);
  float* out = device_copy(std::vector<float>(rows * spec::q_heads * spec::v_dim));
  float* lse = device_copy(std::vector<float>(rows * spec::q_heads));
  const auto params = attention::attention_params_of<spec>();
  // One plan serves every copy: they differ only in their pages.
  kernels::extend_plan plan;
  kvc::cuda::plan_extend<shape, block>(pages.host_view(0), token_indptr, spec::q_heads, plan);
  kvc::cuda::device_extend_plan device_plan;
  device_plan.upload(plan, nullptr);
  const auto run = [&](int copy) {
    paged_layer_view view = pages.device_view(copy);
    view.serial = plan.table_serial;  // the copies differ only in their pages
    kvc::cuda::extend<shape, block>(plan, device_plan, view, token_indptr, indptr, q, out, lse,
                                    params, nullptr);
  };
  time_rotating(state, copies, run, "extend");
  const double visible = static_cast<double>(fresh) * static_cast<double>(prefix) +
                         static_cast<double>(fresh) * static_cast<double>(fresh + 1) / 2;
  const double flops = 2.0 * batch * spec::q_heads * (spec::k_dim + spec::v_dim) * visible;
  state.counters["TFLOPs"] =
      benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  double peak = mma_peak<input>();
#if defined(KVC_DEVICE_WGMMA)
  if constexpr (!std::is_same_v<block, kernels::extend_block<shape>>) peak = wgmma_peak<input>();
#endif
  state.counters["fraction_of_peak"] =
      benchmark::Counter(flops / peak, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tiles"] = static_cast<double>(plan.tiles.size());
  cudaFree(indptr);
  cudaFree(q);
  cudaFree(out);
  cudaFree(lse);
}

void extend_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "new", "prefix"});
  b->Args({8, 2048, 0})->Args({8, 256, 8192})->Args({1, 2048, 0});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}
// The two cases of the issue's targets only (prefill 2048 x 8, extend 256 over 8k x 8).
void headline_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "new", "prefix"});
  b->Args({8, 2048, 0})->Args({8, 256, 8192});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}

BENCHMARK(extend_row<storage<fp16>>)->Name("device_extend/llama3_8b/fp16")->Apply(extend_arguments);
BENCHMARK(extend_row<storage<bf16>>)->Name("device_extend/llama3_8b/bf16")->Apply(extend_arguments);
BENCHMARK(extend_row<storage<fp8_e4m3>>)
    ->Name("device_extend/llama3_8b/fp8_e4m3")
    ->Apply(headline_arguments);
#if defined(KVC_DEVICE_WGMMA)
BENCHMARK(
    extend_row<storage<fp16>, llama3_8b_layer<storage<fp16>>, 16, kernels::warpgroup_extend_block>)
    ->Name("device_extend/llama3_8b/fp16/warpgroups")
    ->Apply(extend_arguments);
BENCHMARK(
    extend_row<storage<bf16>, llama3_8b_layer<storage<bf16>>, 16, kernels::warpgroup_extend_block>)
    ->Name("device_extend/llama3_8b/bf16/warpgroups")
    ->Apply(extend_arguments);
BENCHMARK(extend_row<storage<fp8_e4m3>, llama3_8b_layer<storage<fp8_e4m3>>, 16,
                     kernels::warpgroup_extend_block>)
    ->Name("device_extend/llama3_8b/fp8_e4m3/warpgroups")
    ->Apply(headline_arguments);
#endif

void latent_arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "new", "prefix"});
  b->Args({1, 2048, 0})->Args({4, 512, 8192});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
}
// A block per new token (kernels/extend_by_token.hpp).
BENCHMARK(extend_row<storage<bf16>, models::mla_layer<128>, 64>)
    ->Name("device_extend/deepseek_v3/bf16")
    ->Apply(latent_arguments);
}  // namespace

int main(int argc, char** argv) {
  return run_device_benchmarks(argc, argv, [] {
    std::printf(
        "mma.sync m16n8k16 fp16 %.0f TFLOP/s, bf16 %.0f TFLOP/s; copy %.0f GB/s (read + "
        "write)\n",
        mma_peak<kernels::mma_input::fp16>() / 1e12, mma_peak<kernels::mma_input::bf16>() / 1e12,
        copy_bandwidth() / 1e9);
#if defined(KVC_DEVICE_WGMMA)
    std::printf("wgmma m64n256k16 fp16 %.0f TFLOP/s, bf16 %.0f TFLOP/s\n",
                wgmma_peak<kernels::mma_input::fp16>() / 1e12,
                wgmma_peak<kernels::mma_input::bf16>() / 1e12);
#endif
  });
}
