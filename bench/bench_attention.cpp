// Attention on the CPU backend, batch 1.
//   decode/llama3_8b/<dtype>/ctx:<n>/threads:<t>   one query over a cached context (32 query
//                                                  heads, 8 KV heads, dim 128), NHD pages
//   decode/llama3_8b/<dtype>/cold/ctx:<n>/threads:<t>   the same, the KV pages flushed from
//                                                  every cache level before each call
//   decode/llama3_8b/<dtype>/layout:hnd/ctx:32768/threads:<t>   the same in HND pages
//   decode/llama3_8b/<dtype>/avx2/ctx:32768/threads:<t>   the same on the 8-lane AVX2 kernels
//                                                  where the CPU has AVX-512 (its features
//                                                  less avx512 in kvc::cpu::cpu_options)
//   decode/llama3_8b/int8/query8/ctx:32768/threads:<t>   int8 keys against the query rounded
//                                                  to 8 bits (cpu_options::int8_query, VNNI)
//   decode/llama3_8b/bf16/products/ctx:<n>/threads:<t>   bf16 keys and values multiplied by
//                                                  the query and weights rounded to bf16
//                                                  (cpu_options::bf16_products, AVX-512 BF16)
//   decode/llama3_8b/fp16/page:<p>/ctx:32768/threads:<t>   pages of 256 tokens, and of 32768
//                                                  (a contiguous cache: one page)
//   kernel/llama3_8b/fp16/<scores|values>/ctx:<n>  one group kernel of that decode alone, over
//                                                  16, 512 or 16384 tokens (L1, L2, L3), 1 thread
//   decode/deepseek_v3/bf16/ctx:<n>/threads:<t>    MLA: 128 heads over one 512 + 64 latent
//   prefill/llama3_8b/fp16/tokens:2048/threads:<t> 2048 new tokens, causal, empty prefix
//   extend/llama3_8b/fp16[/page:256]/prefix:8192/tokens:256/threads:<t>   256 new tokens
//                                                  after 8192 cached ones (pages of 16 or 256)
// Llama decode reports KV bytes read per second and fraction_of_stream, the ratio to a
// streaming read (the sum of a 256 MiB buffer) with the same threads; MLA decode and prefill
// report FLOP/s and fraction_of_peak, the ratio to an FMA loop with the same threads. Both
// baselines are measured in this binary, right after the kernel.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/numeric/half.hpp"
#include "machine_limits.hpp"

namespace {

kvc::cpu::parallel_for_ref pool_of(int threads) {
  static kvc::cpu::thread_pool one(1), two(2);
  return threads == 1 ? one.ref() : two.ref();
}

template <class Layer>
struct one_layer : kvc::model<1, Layer> {};

// Appends `context` tokens of random keys and values to layer 0 of a new sequence.
template <class Cache>
kvc::sequence_id fill_random(Cache& cache, std::int64_t context, std::mt19937& rng) {
  const kvc::sequence_id sequence = cache.add_sequence();
  const kvc::page_geometry& geometry = cache.geometry(0);
  std::normal_distribution<float> normal;
  constexpr std::int64_t chunk = 1024;
  std::vector<float> k(static_cast<std::size_t>(chunk * geometry.kv_heads * geometry.k_dim));
  std::vector<float> v(static_cast<std::size_t>(chunk * geometry.kv_heads * geometry.v_dim));
  for (std::int64_t done = 0; done < context; done += chunk) {
    const std::int64_t tokens = std::min(chunk, context - done);
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    kvc::layer_input in{
        0, kvc::fp32_input(k.data(), tokens, geometry.kv_heads, geometry.k_dim), {}};
    if (!geometry.latent)
      in.v = kvc::fp32_input(v.data(), tokens, geometry.kv_heads, geometry.v_dim);
    const kvc::append_request request{sequence, tokens};
    cache.append({&request, 1}, {&in, 1});
  }
  return sequence;
}

// Flushes every page a view lists from every cache level, as a real model's other layers
// would between two calls of this one (a 4k context fits in a large L3 and would otherwise be
// read from it).
void evict(const kvc::paged_layer_view& view) {
#if defined(__x86_64__)
  for (std::int32_t s = 0; s < view.batch; ++s)
    for (std::int32_t e = view.indptr[s]; e < view.indptr[s + 1]; ++e) {
      const std::byte* page =
          view.memory + static_cast<std::uint64_t>(view.indices[e]) * view.geometry.page_bytes;
      for (std::uint64_t line = 0; line < view.geometry.page_bytes; line += 64)
        _mm_clflush(page + line);
    }
  _mm_mfence();
#else
  (void)view;
#endif
}

// The CPU options a row sets: its features less AVX-512, or a numerics option. Every decode
// row's label is the kernel choice that ran (kvc::cpu::kernel_choice::describe).
struct kernel_switches {
  bool avx512 = true, int8_query = false, bf16_products = false;
  kvc::cpu::cpu_options options() const {
    kvc::cpu::cpu_options o;
    o.features.avx512 = o.features.avx512 && avx512;
    o.int8_query = int8_query;
    o.bf16_products = bf16_products;
    return o;
  }
};

template <class Layer, kvc::page_layout Layout = kvc::page_layout::nhd, int PageTokens = 16>
void decode(benchmark::State& state, std::int64_t context, int threads, bool compute_bound,
            bool cold = false, kernel_switches switches = {}) {
  using cache_type = kvc::kv_cache<one_layer<Layer>, kvc::paged<PageTokens, Layout>>;
  cache_type cache(kvc::capacity_pages{context / PageTokens + 2});
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  const kvc::sequence_id sequence = fill_random(cache, context, rng);
  const kvc::page_geometry& geometry = cache.geometry(0);
  const kvc::page_table_csr table = cache.page_table(0, std::vector<kvc::sequence_id>{sequence});
  const kvc::paged_layer_view view = cache.view(0, table);
  constexpr int q_heads = Layer::q_heads;
  std::vector<float> q(static_cast<std::size_t>(q_heads * geometry.k_dim));
  for (float& x : q) x = normal(rng);
  std::vector<float> out(static_cast<std::size_t>(q_heads * geometry.v_dim)), lse(q_heads);
  const auto parallel = pool_of(threads);
  const kvc::cpu::decode_plan plan = kvc::cpu::plan_decode(view, q_heads, threads);
  const kvc::cpu::cpu_options options = switches.options();
  state.SetLabel(kvc::cpu::choose_kernels(geometry, plan.group, options).describe());
  kvc::cpu::decode_workspace workspace;
  const auto params = kvc::attention::attention_params_of<Layer>();
  kvc::cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, workspace, parallel,
                   options);

  double seconds = 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      evict(view);
      state.ResumeTiming();
    }
    const auto start = std::chrono::steady_clock::now();
    kvc::cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, workspace, parallel,
                     options);
    benchmark::DoNotOptimize(out.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double calls = static_cast<double>(state.iterations());
  if (compute_bound) {
    const double flops =
        static_cast<double>(context) * q_heads * (geometry.k_dim + geometry.v_dim) * 2;
    state.counters["FLOP_per_second"] = flops * calls / seconds;
    const double peak = kvc::bench::fma_peak_flops(parallel);
    state.counters["fraction_of_peak"] = flops * calls / seconds / peak;
    state.counters["peak_GFLOPs"] = peak / 1e9;
  } else {
    const double bytes = static_cast<double>(context) * static_cast<double>(geometry.page_bytes) /
                         geometry.page_tokens;
    state.counters["bytes_per_second"] = bytes * calls / seconds;
    const double stream = kvc::bench::stream_read_bytes_per_second(parallel);
    state.counters["fraction_of_stream"] = bytes * calls / seconds / stream;
    state.counters["stream_GBps"] = stream / 1e9;
  }
  if (switches.bf16_products) {  // what the products instruction gives against FMAs here
    state.counters["bf16_dot_GFLOPs"] = kvc::bench::bf16_dot_peak_flops(parallel) / 1e9;
    state.counters["fma_GFLOPs"] = kvc::bench::fma_peak_flops(parallel) / 1e9;
  }
}

// `tokens` new tokens of a Llama-3-8B layer, fp16 K/V in, attending causally to each other
// and to `prefix` cached fp16 tokens.
template <int PageTokens = 16>
void extend(benchmark::State& state, std::int64_t prefix, int tokens, int threads) {
  using layer = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::storage<kvc::fp16>>;
  constexpr int q_heads = 32, kv_heads = 8, dim = 128;
  kvc::kv_cache<one_layer<layer>, kvc::paged<PageTokens>> cache(
      kvc::capacity_pages{(prefix + tokens) / PageTokens + 2});
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  const kvc::sequence_id sequence = fill_random(cache, prefix, rng);
  const kvc::page_table_csr table = cache.page_table(0, std::vector<kvc::sequence_id>{sequence});
  std::vector<float> q(static_cast<std::size_t>(tokens) * q_heads * dim);
  for (float& x : q) x = normal(rng);
  std::vector<std::uint16_t> k(static_cast<std::size_t>(tokens) * kv_heads * dim), v(k.size());
  for (auto& x : k) x = kvc::numeric::fp16_from_float(normal(rng));
  for (auto& x : v) x = kvc::numeric::fp16_from_float(normal(rng));
  std::vector<float> out(static_cast<std::size_t>(tokens) * q_heads * dim),
      lse(static_cast<std::size_t>(tokens) * q_heads);
  const std::int32_t qo_indptr[] = {0, tokens};
  const auto parallel = pool_of(threads);
  const auto params = kvc::attention::attention_params_of<layer>();
  kvc::cpu::extend_workspace workspace;
  const auto run = [&] {
    kvc::cpu::extend(cache.view(0, table), qo_indptr, q_heads, q.data(),
                     kvc::fp16_input(k.data(), tokens, kv_heads, dim),
                     kvc::fp16_input(v.data(), tokens, kv_heads, dim), out.data(), lse.data(),
                     params, workspace, parallel);
  };
  run();
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    run();
    benchmark::DoNotOptimize(out.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // Causal: query i sees prefix + i + 1 keys; two FMAs (score and value) per dim.
  const double keys_seen = static_cast<double>(tokens) * static_cast<double>(prefix) +
                           static_cast<double>(tokens) * (tokens + 1) / 2;
  const double flops = keys_seen * q_heads * (dim + dim) * 2;
  const double calls = static_cast<double>(state.iterations());
  state.counters["FLOP_per_second"] = flops * calls / seconds;
  state.counters["fraction_of_peak"] =
      flops * calls / seconds / kvc::bench::fma_peak_flops(parallel);
}

template <class Storage>
using llama3_8b_layer = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, Storage>;
using deepseek_v3_layer = kvc::layer<kvc::mqa<128>, kvc::latent<512, 64>, kvc::storage<kvc::bf16>,
                                     kvc::inv_sqrt_scale<192>>;

// One group kernel of decode alone (the scores, or the weighted values) over every KV head
// of a `context`-token Llama-3-8B fp16 layer, without the softmax, the read-ahead or the loop
// around them: from L1 (16 tokens), L2 (512) and L3 (16384), it tells the kernel's own
// speed from what the cache levels add. FLOP/s and fraction_of_peak as for MLA.
void group_kernel(benchmark::State& state, std::int64_t context, bool values) {
  using layer = llama3_8b_layer<kvc::storage<kvc::fp16>>;
  using cache_type = kvc::kv_cache<one_layer<layer>, kvc::paged<16>>;
  cache_type cache(kvc::capacity_pages{context / 16 + 2});
  std::mt19937 rng(3);
  const kvc::sequence_id sequence = fill_random(cache, context, rng);
  const kvc::page_table_csr table = cache.page_table(0, std::vector<kvc::sequence_id>{sequence});
  const kvc::paged_layer_view view = cache.view(0, table);
  const kvc::page_geometry& geometry = view.geometry;
  constexpr int group = layer::q_heads / layer::kv_heads, key_block = kvc::cpu::key_block;
  const kvc::cpu::kernel_choice choice =
      kvc::cpu::choose_kernels(geometry, group, kvc::cpu::cpu_options{});
  const kvc::cpu::group_kernels kernels = kvc::cpu::group_kernels::of(choice, geometry, group);
  state.SetLabel(choice.describe());
  if (!kernels.usable()) {
    state.SkipWithError("no group kernels on this CPU");
    return;
  }
  std::vector<float> q(static_cast<std::size_t>(group * geometry.k_dim), 0.01f);
  std::vector<float> weights(static_cast<std::size_t>(group * key_block), 1.0f / key_block);
  std::vector<float> scores(weights.size()), acc(static_cast<std::size_t>(group * geometry.v_dim));
  const auto run = [&] {
    kvc::cpu::read_ahead none;
    for (std::int32_t e = view.indptr[0]; e < view.indptr[1]; ++e) {
      const std::byte* page =
          view.memory + static_cast<std::uint64_t>(view.indices[e]) * geometry.page_bytes;
      for (int head = 0; head < geometry.kv_heads; ++head) {
        const auto vectors = kvc::cpu::head_vectors::of(geometry, page, 0, head, !values);
        if (values)
          kernels.accumulate(weights.data(), vectors, geometry.v_dim, key_block, acc.data(), none);
        else
          kernels.scores(q.data(), geometry.k_dim, vectors, key_block, scores.data(), none);
      }
    }
    benchmark::DoNotOptimize(scores.data());
    benchmark::DoNotOptimize(acc.data());
  };
  run();
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double flops = static_cast<double>(context) * geometry.kv_heads * group *
                       (values ? geometry.v_dim : geometry.k_dim) * 2;
  const double calls = static_cast<double>(state.iterations());
  state.counters["FLOP_per_second"] = flops * calls / seconds;
  state.counters["fraction_of_peak"] =
      flops * calls / seconds / kvc::bench::fma_peak_flops(pool_of(1));
}

template <class Storage>
void register_llama(const char* dtype) {
  for (std::int64_t context : {1024, 4096, 16384, 32768})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("decode/llama3_8b/" + std::string(dtype) + "/ctx:" + std::to_string(context) +
           "/threads:" + std::to_string(threads))
              .c_str(),
          [=](benchmark::State& state) {
            decode<llama3_8b_layer<Storage>>(state, context, threads, false);
          })
          ->Unit(benchmark::kMicrosecond);
  for (std::int64_t context : {4096, 32768})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("decode/llama3_8b/" + std::string(dtype) + "/cold/ctx:" + std::to_string(context) +
           "/threads:" + std::to_string(threads))
              .c_str(),
          [=](benchmark::State& state) {
            decode<llama3_8b_layer<Storage>>(state, context, threads, false, true);
          })
          ->Unit(benchmark::kMicrosecond);
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(("decode/llama3_8b/" + std::string(dtype) +
                                  "/avx2/ctx:32768/threads:" + std::to_string(threads))
                                     .c_str(),
                                 [=](benchmark::State& state) {
                                   decode<llama3_8b_layer<Storage>>(state, 32768, threads, false,
                                                                    false, {.avx512 = false});
                                 })
        ->Unit(benchmark::kMicrosecond);
  if (std::string(dtype) == "int8")
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("decode/llama3_8b/int8/query8/ctx:32768/threads:" + std::to_string(threads)).c_str(),
          [=](benchmark::State& state) {
            decode<llama3_8b_layer<Storage>>(state, 32768, threads, false, false,
                                             {.int8_query = true});
          })
          ->Unit(benchmark::kMicrosecond);
  if (std::string(dtype) == "bf16")
    for (std::int64_t context : {4096, 32768})
      for (int threads : {1, 2})
        benchmark::RegisterBenchmark(
            ("decode/llama3_8b/bf16/products/ctx:" + std::to_string(context) +
             "/threads:" + std::to_string(threads))
                .c_str(),
            [=](benchmark::State& state) {
              decode<llama3_8b_layer<Storage>>(state, context, threads, false, false,
                                               {.bf16_products = true});
            })
            ->Unit(benchmark::kMicrosecond);
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(("decode/llama3_8b/" + std::string(dtype) +
                                  "/layout:hnd/ctx:32768/threads:" + std::to_string(threads))
                                     .c_str(),
                                 [=](benchmark::State& state) {
                                   decode<llama3_8b_layer<Storage>, kvc::page_layout::hnd>(
                                       state, 32768, threads, false);
                                 })
        ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_llama<kvc::storage<kvc::fp16>>("fp16");
  for (int threads : {1, 2}) {
    const std::string suffix = "/ctx:32768/threads:" + std::to_string(threads);
    using fp16_layer = llama3_8b_layer<kvc::storage<kvc::fp16>>;
    benchmark::RegisterBenchmark(("decode/llama3_8b/fp16/page:256" + suffix).c_str(),
                                 [=](benchmark::State& state) {
                                   decode<fp16_layer, kvc::page_layout::nhd, 256>(state, 32768,
                                                                                  threads, false);
                                 })
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("decode/llama3_8b/fp16/page:32768" + suffix).c_str(),
                                 [=](benchmark::State& state) {
                                   decode<fp16_layer, kvc::page_layout::nhd, 32768>(state, 32768,
                                                                                    threads, false);
                                 })
        ->Unit(benchmark::kMicrosecond);
  }
  for (const char* kernel : {"scores", "values"})
    for (std::int64_t context : {16, 512, 16384})
      benchmark::RegisterBenchmark(
          ("kernel/llama3_8b/fp16/" + std::string(kernel) + "/ctx:" + std::to_string(context))
              .c_str(),
          [=](benchmark::State& state) {
            group_kernel(state, context, std::string(kernel) == "values");
          })
          ->Unit(benchmark::kMicrosecond);
  register_llama<kvc::storage<kvc::bf16>>("bf16");
  register_llama<kvc::storage<kvc::fp8_e5m2>>("fp8_e5m2");
  register_llama<kvc::storage<kvc::int8>>("int8");
  for (std::int64_t context : {4096, 16384})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(("decode/deepseek_v3/bf16/ctx:" + std::to_string(context) +
                                    "/threads:" + std::to_string(threads))
                                       .c_str(),
                                   [=](benchmark::State& state) {
                                     decode<deepseek_v3_layer>(state, context, threads, true);
                                   })
          ->Unit(benchmark::kMicrosecond);
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(
        ("prefill/llama3_8b/fp16/tokens:2048/threads:" + std::to_string(threads)).c_str(),
        [=](benchmark::State& state) { extend(state, 0, 2048, threads); })
        ->Unit(benchmark::kMillisecond);
  for (int threads : {1, 2}) {
    const std::string suffix = "prefix:8192/tokens:256/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(
        ("extend/llama3_8b/fp16/" + suffix).c_str(),
        [=](benchmark::State& state) { extend(state, 8192, 256, threads); })
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(
        ("extend/llama3_8b/fp16/page:256/" + suffix).c_str(),
        [=](benchmark::State& state) { extend<256>(state, 8192, 256, threads); })
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
