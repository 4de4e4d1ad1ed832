// GPU benchmarks of the tensor-core kernels (runs only where a CUDA device exists):
// - the extend kernel on a Llama 3 8B layer (32 query heads, 8 KV heads, dim 128, pages of 16
//   tokens) in fp16 and bf16: prefill of 2048 tokens x 8 sequences (causal, from nothing), and
//   extend of 256 tokens over an 8k prefix x 8 sequences (bottom-right causal); the cases of
//   ../shared/gpu/torch_prefill_anchor.py, with its FLOP count: 4 x 32 heads x 128 x the
//   visible (query, key) pairs;
// - the latent decode of a DeepSeek V3 layer (128 heads over a 512 + 64 latent, bf16, pages of
//   64 tokens) at batch 1, 16 and 64 and contexts of 4k and 32k, and of Kimi K2's 64 heads and
//   V2-Lite's 16 at batch 64, 32k: bytes_per_second and fraction_of_copy (the latents read,
//   over a 1 GiB device-to-device copy counting its read and its write), and its FLOPs
//   (2 x heads x (576 + 512) per latent).
// Each row reports TFLOPs and fraction_of_peak over a
// tensor-core throughput loop (mma.sync m16n8k16 of the same input type through the SIMT
// context, independent accumulators, every SM full) measured in this binary: the peak that
// kernels on mma.sync can reach. Timed with CUDA events around each launch (manual time).
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
#include <vector>

#include "device_pages.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/extend.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/models/deepseek.hpp"

namespace {
using namespace kvc;
using namespace kvc::bench_device;

// Every warp runs `rounds` x 8 independent mma.sync on values in registers, then folds them.
template <kernels::mma_input Input>
struct mma_loop {
  float* sink;
  int rounds;

  template <class Context>
  __device__ void operator()(const Context& ctx) const {
    kernels::mma_a a{};
    kernels::mma_b b{};
    for (int i = 0; i < 4; ++i) a.reg[i] = 0x3C003C00u ^ (ctx.lane() << 3);
    for (int i = 0; i < 2; ++i) b.reg[i] = 0x3C003C00u ^ (ctx.lane() << 5);
    kernels::mma_c c[8] = {};
    for (int r = 0; r < rounds; ++r)
#pragma unroll
      for (int j = 0; j < 8; ++j) c[j] = ctx.template mma_m16n8k16<Input>(a, b, c[j]);
    float folded = 0.0f;
    for (const kernels::mma_c& x : c) folded += x.reg[0] + x.reg[1] + x.reg[2] + x.reg[3];
    if (folded == 1.2345f) sink[0] = folded;  // almost never: keeps the products
  }
};

/// FLOP/s of mma.sync m16n8k16 with fp32 accumulation, every SM with 32 warps.
template <kernels::mma_input Input>
double mma_peak() {
  static const double peak = [] {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    float* sink = nullptr;
    check(cudaMalloc(&sink, 4), "cudaMalloc");
    constexpr int rounds = 4096;
    const kvc::kernels::dims3 grid{static_cast<std::uint32_t>(sms * 4), 1, 1};
    const mma_loop<Input> loop{sink, rounds};
    const event_timer timer;
    std::vector<float> times;
    for (int i = 0; i < 11; ++i) {
      cudaEventRecord(timer.start);
      kvc::cuda::launch(grid, kernels::block_shape<256>{}, 0, nullptr, loop);
      cudaEventRecord(timer.stop);
      const double seconds = timer.seconds();
      if (i > 0) times.push_back(static_cast<float>(seconds * 1e3));
    }
    check(cudaGetLastError(), "mma_loop");
    cudaFree(sink);
    const double flops = 2.0 * 16 * 8 * 16 * 8 * rounds * (grid.x * 256.0 / 32);
    return flops / (median_ms(times) * 1e-3);
  }();
  return peak;
}

template <class Storage>
using llama3_8b_layer = layer<gqa<32, 8>, head_dim<128>, Storage>;

// batch sequences of `prefix` cached tokens and `fresh` new ones, all in the view's pages.
template <class Storage>
void extend_row(benchmark::State& state) {
  using spec = llama3_8b_layer<Storage>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  constexpr kernels::mma_input input = kernels::mma_input_of<typename Storage::k_type>;
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t fresh = state.range(1), prefix = state.range(2);
  const std::int64_t length = prefix + fresh;
  const int copies =
      copies_for(static_cast<double>(batch) * static_cast<double>(length) * spec::bytes_per_token);
  const device_layer pages = device_layer::make<spec, Storage>(batch, length, copies);
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
  kvc::cuda::plan_extend<shape>(pages.host_view(0), token_indptr, spec::q_heads, plan);
  kvc::cuda::device_extend_plan device_plan;
  device_plan.upload(plan, nullptr);
  const auto run = [&](int copy) {
    paged_layer_view view = pages.device_view(copy);
    view.serial = plan.table_serial;  // the copies differ only in their pages
    kvc::cuda::extend<shape>(plan, device_plan, view, token_indptr, indptr, q, out, lse, params,
                             nullptr);
  };
  time_rotating(state, copies, run, "extend");
  const double visible = static_cast<double>(fresh) * static_cast<double>(prefix) +
                         static_cast<double>(fresh) * static_cast<double>(fresh + 1) / 2;
  const double flops = 4.0 * batch * spec::q_heads * spec::k_dim * visible;
  state.counters["TFLOPs"] =
      benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_peak"] =
      benchmark::Counter(flops / mma_peak<input>(), benchmark::Counter::kIsIterationInvariantRate);
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

// Decode of `batch` sequences of `ctx` tokens of a latent layer of Heads query heads.
template <int Heads>
void latent_decode_row(benchmark::State& state) {
  using spec = models::mla_layer<Heads>;
  using shape = kernels::decode_shape_of<spec, paged<64>>;
  static_assert(kernels::decode_path_of<shape> == kernels::decode_path::latent_mma);
  const auto batch = static_cast<int>(state.range(0));
  const std::int64_t context = state.range(1);
  const double kv_bytes = static_cast<double>(batch) * static_cast<double>(context) *
                          static_cast<double>(spec::bytes_per_token);
  const int copies = copies_for(kv_bytes);
  const device_layer pages = device_layer::make<spec, storage<bf16>, 64>(batch, context, copies);
  std::vector<attention::decode_plan> plans(static_cast<std::size_t>(copies));
  std::vector<kvc::cuda::device_decode_plan> device_plans(static_cast<std::size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    kvc::cuda::plan_decode<shape>(pages.host_view(c), Heads, plans[c]);
    device_plans[c].upload(plans[c], nullptr);
  }
  std::vector<float> q_host(static_cast<std::size_t>(batch) * Heads * spec::k_dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (float& x : q_host) x = normal(rng);
  float* q = device_copy(q_host);
  float* out = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * Heads * 512));
  float* lse = device_copy(std::vector<float>(static_cast<std::size_t>(batch) * Heads));
  const auto params = attention::attention_params_of<spec>();
  const auto run = [&](int c) {
    kvc::cuda::decode<shape>(plans[c], device_plans[c], pages.device_view(c), q, out, lse, params,
                             nullptr);
  };
  time_rotating(state, copies, run, "latent decode");
  const double flops = 2.0 * batch * static_cast<double>(context) * Heads * (576 + 512);
  state.counters["bytes_per_second"] =
      benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_copy"] = benchmark::Counter(
      kv_bytes / copy_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["TFLOPs"] =
      benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fraction_of_peak"] = benchmark::Counter(
      flops / mma_peak<kernels::mma_input::bf16>(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["items"] = static_cast<double>(plans[0].items.size());
  cudaFree(q);
  cudaFree(out);
  cudaFree(lse);
}

BENCHMARK(extend_row<storage<fp16>>)->Name("device_extend/llama3_8b/fp16")->Apply(extend_arguments);
BENCHMARK(extend_row<storage<bf16>>)->Name("device_extend/llama3_8b/bf16")->Apply(extend_arguments);
BENCHMARK(latent_decode_row<128>)
    ->Name("device_decode/deepseek_v3/bf16")
    ->ArgNames({"batch", "ctx"})
    ->ArgsProduct({{1, 16, 64}, {4096, 32768}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);
BENCHMARK(latent_decode_row<64>)
    ->Name("device_decode/kimi_k2/bf16")
    ->ArgNames({"batch", "ctx"})
    ->Args({64, 32768})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);
BENCHMARK(latent_decode_row<16>)
    ->Name("device_decode/deepseek_v2_lite/bf16")
    ->ArgNames({"batch", "ctx"})
    ->Args({64, 32768})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);

}  // namespace

int main(int argc, char** argv) {
  return run_device_benchmarks(argc, argv, [] {
    std::printf(
        "mma.sync m16n8k16 fp16 %.0f TFLOP/s, bf16 %.0f TFLOP/s; copy %.0f GB/s (read + "
        "write)\n",
        mma_peak<kernels::mma_input::fp16>() / 1e12, mma_peak<kernels::mma_input::bf16>() / 1e12,
        copy_bandwidth() / 1e9);
  });
}
