// Attention as an engine's step runs it (include/kvc/cache/kv_cache.hpp, step_table).
//   step_decode/llama3_8b/fp16/batch:<b>/ctx:<n>/in_step:<0|1>/threads:2
//       one query per sequence over n tokens of a Llama-3-8B layer: over committed tokens
//       (in_step:0, a table of the committed cache), or inside an open step whose one new
//       token per sequence is written (in_step:1, the step's table; the sequences hold n - 1
//       committed tokens and the step's own). Both read n tokens per sequence.
//   engine_step/llama3_8b_x4/fp16/batch:16/ctx:<n>/threads:2
//       a whole step of a 4-layer Llama-3-8B-shaped model for 16 sequences: plan_append, then
//       for every layer write the new K/V and decode over the step's view, then abort (so
//       that every iteration starts from the same cache). Its parts are timed in the same
//       loop: the append alone (plan, 4 writes, abort) and the decodes alone (4 layers over a
//       committed table of the same length); step_over_parts = step / (append + decode).
// Decode rows report KV bytes read per second and fraction_of_stream, the ratio to a
// streaming read with the same threads, measured in this binary right after the kernel.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kvc/attention/layer_params.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "machine_limits.hpp"

namespace {

using llama_layer = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::storage<kvc::fp16>>;
constexpr int q_heads = 32, kv_heads = 8, dim = 128;

kvc::cpu::parallel_for_ref two_threads() {
  static kvc::cpu::thread_pool pool(2);
  return pool.ref();
}

double elapsed(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `batch` sequences of `tokens` tokens in every layer: random K/V, one chunk of 1024 tokens
// generated and appended over and over (bandwidth does not depend on the values).
template <class Cache>
std::vector<kvc::sequence_id> fill(Cache& cache, int batch, std::int64_t tokens) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  constexpr std::int64_t chunk = 1024;
  std::vector<float> k(static_cast<std::size_t>(chunk * kv_heads * dim)), v(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  std::vector<kvc::sequence_id> ids;
  for (int b = 0; b < batch; ++b) ids.push_back(cache.add_sequence());
  std::vector<kvc::layer_input> inputs;
  for (int l = 0; l < Cache::num_layers; ++l)
    inputs.push_back({l, kvc::fp32_input(k.data(), chunk, kv_heads, dim),
                      kvc::fp32_input(v.data(), chunk, kv_heads, dim)});
  for (kvc::sequence_id id : ids)
    for (std::int64_t done = 0; done < tokens; done += chunk) {
      const std::int64_t n = std::min(chunk, tokens - done);
      for (auto& in : inputs) in.k.tokens = in.v.tokens = n;
      const kvc::append_request request{id, n};
      cache.append({&request, 1}, inputs);
    }
  return ids;
}

std::vector<float> random_floats(std::size_t n) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void report_bytes(benchmark::State& state, double bytes_per_call, double seconds) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["bytes_per_second"] = bytes_per_call * calls / seconds;
  const double stream = kvc::bench::stream_read_bytes_per_second(two_threads());
  state.counters["fraction_of_stream"] = bytes_per_call * calls / seconds / stream;
  state.counters["stream_GBps"] = stream / 1e9;
}

void step_decode(benchmark::State& state, int batch, std::int64_t context, bool in_step) {
  using model = kvc::model<1, llama_layer>;
  kvc::kv_cache<model, kvc::paged<16>> cache(kvc::capacity_pages{batch * (context / 16 + 2)});
  const std::vector<kvc::sequence_id> ids = fill(cache, batch, in_step ? context - 1 : context);
  const auto parallel = two_threads();
  const std::vector<float> q = random_floats(static_cast<std::size_t>(batch) * q_heads * dim);
  std::vector<float> out(q.size()), lse(static_cast<std::size_t>(batch) * q_heads);
  const std::vector<float> new_kv = random_floats(static_cast<std::size_t>(batch) * kv_heads * dim);
  std::vector<kvc::append_request> requests;
  for (kvc::sequence_id id : ids) requests.push_back({id, 1});
  kvc::append_plan plan;
  kvc::page_table_csr table;
  if (in_step) {
    plan = cache.plan_append(requests);
    const kvc::kv_input kv = kvc::fp32_input(new_kv.data(), batch, kv_heads, dim);
    cache.write(plan, 0, kv, kv);
    cache.step_table(plan, 0, table);
  } else {
    cache.page_table(0, ids, table);
  }
  const kvc::paged_layer_view view = cache.view(0, table);
  const kvc::cpu::decode_plan decode_plan = kvc::cpu::plan_decode(view, q_heads, 2);
  kvc::cpu::decode_workspace workspace;
  const auto params = kvc::attention::layer_params<model>(0);
  kvc::cpu::decode(decode_plan, view, q.data(), out.data(), lse.data(), params, workspace,
                   parallel);
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    kvc::cpu::decode(decode_plan, view, q.data(), out.data(), lse.data(), params, workspace,
                     parallel);
    benchmark::DoNotOptimize(out.data());
    seconds += elapsed(start);
  }
  report_bytes(state,
               static_cast<double>(batch) * static_cast<double>(context) *
                   static_cast<double>(cache.geometry(0).page_bytes) / 16,
               seconds);
}

void engine_step(benchmark::State& state, std::int64_t context) {
  constexpr int batch = 16, layers = 4;
  struct model : kvc::model<layers, llama_layer> {};
  kvc::kv_cache<model, kvc::paged<16>> cache(kvc::capacity_pages{batch * (context / 16 + 2)});
  const std::vector<kvc::sequence_id> ids = fill(cache, batch, context);
  const auto parallel = two_threads();
  const std::vector<float> q = random_floats(static_cast<std::size_t>(batch) * q_heads * dim);
  std::vector<float> out(q.size()), lse(static_cast<std::size_t>(batch) * q_heads);
  const std::vector<float> new_kv = random_floats(static_cast<std::size_t>(batch) * kv_heads * dim);
  const kvc::kv_input kv = kvc::fp32_input(new_kv.data(), batch, kv_heads, dim);
  std::vector<kvc::append_request> requests;
  for (kvc::sequence_id id : ids) requests.push_back({id, 1});
  kvc::page_table_csr step_table, committed;
  kvc::cpu::decode_plan step_plan, committed_plan;
  kvc::cpu::decode_workspace workspace;

  const auto step = [&] {  // the engine's step
    kvc::append_plan plan = cache.plan_append(requests);
    cache.step_table(plan, 0, step_table);
    step_plan = kvc::cpu::plan_decode(cache.view(0, step_table), q_heads, 2);
    for (int l = 0; l < layers; ++l) {
      cache.write(plan, l, kv, kv);
      kvc::cpu::decode(step_plan, cache.view(l, step_table), q.data(), out.data(), lse.data(),
                       kvc::attention::layer_params<model>(l), workspace, parallel);
    }
    cache.abort(plan);
  };
  const auto append_part = [&] {
    kvc::append_plan plan = cache.plan_append(requests);
    for (int l = 0; l < layers; ++l) cache.write(plan, l, kv, kv);
    cache.abort(plan);
  };
  const auto decode_part = [&] {
    cache.page_table(0, ids, committed);
    committed_plan = kvc::cpu::plan_decode(cache.view(0, committed), q_heads, 2);
    for (int l = 0; l < layers; ++l)
      kvc::cpu::decode(committed_plan, cache.view(l, committed), q.data(), out.data(), lse.data(),
                       kvc::attention::layer_params<model>(l), workspace, parallel);
  };
  step();
  append_part();
  decode_part();
  double step_seconds = 0, append_seconds = 0, decode_seconds = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    step();
    step_seconds += elapsed(start);
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    append_part();
    append_seconds += elapsed(start);
    start = std::chrono::steady_clock::now();
    decode_part();
    decode_seconds += elapsed(start);
    state.ResumeTiming();
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["step_ms"] = step_seconds / calls * 1e3;
  state.counters["append_ms"] = append_seconds / calls * 1e3;
  state.counters["decode_ms"] = decode_seconds / calls * 1e3;
  state.counters["step_over_parts"] = step_seconds / (append_seconds + decode_seconds);
  report_bytes(state,
               static_cast<double>(layers) * batch * static_cast<double>(context + 1) *
                   static_cast<double>(cache.geometry(0).page_bytes) / 16,
               step_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  for (int batch : {1, 16})
    for (std::int64_t context : {4096, 32768})
      for (bool in_step : {false, true})
        benchmark::RegisterBenchmark(
            ("step_decode/llama3_8b/fp16/batch:" + std::to_string(batch) + "/ctx:" +
             std::to_string(context) + "/in_step:" + std::to_string(in_step ? 1 : 0) + "/threads:2")
                .c_str(),
            [=](benchmark::State& state) { step_decode(state, batch, context, in_step); })
            ->Unit(benchmark::kMillisecond);
  for (std::int64_t context : {4096, 16384})
    benchmark::RegisterBenchmark(
        ("engine_step/llama3_8b_x4/fp16/batch:16/ctx:" + std::to_string(context) + "/threads:2")
            .c_str(),
        [=](benchmark::State& state) { engine_step(state, context); })
        ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
