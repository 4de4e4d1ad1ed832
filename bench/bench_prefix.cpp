// Prefix reuse's own cost on Llama 3 8B (32 layers, 8 KV heads x 128 dims, bf16, pages of 16),
// against what a hit saves: reading the reused K/V once costs more than finding it, and the
// prefill it replaces (the K/V projections and attention of every reused token) far more.
//   prefix/find/llama3_8b/tokens:<n>    find_prefix of a prompt whose first n tokens are stored
//   prefix/store/llama3_8b/tokens:<n>   store_prefix of a computed n-token sequence, index empty
//   prefix/start/llama3_8b/tokens:<n>   add_sequence(hit) and release of a hit of n tokens
// Counters: seconds per prompt token, and lookup_vs_read: the call's time over the time to read the
// n tokens' K/V (131,072 bytes each) at the stream bandwidth measured in the same binary.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/models/llama.hpp"
#include "machine_limits.hpp"

namespace {

using model = kvc::models::llama3_8b;
using cache_type = kvc::kv_cache<model, kvc::paged<16>>;
constexpr std::int64_t bytes_per_token = 131072;

// A cache holding one computed sequence of `tokens` tokens (zeros: the index never reads them).
struct scene {
  cache_type cache;
  std::vector<std::int32_t> prompt;
  kvc::sequence_id sequence;
  explicit scene(std::int64_t tokens) : cache(kvc::capacity_pages{tokens / 16 + 4}) {
    prompt.resize(static_cast<std::size_t>(tokens) + 1);
    std::iota(prompt.begin(), prompt.end(), 1000);
    sequence = cache.add_sequence();
    std::vector<float> kv(static_cast<std::size_t>(tokens * 8 * 128), 0.0f);
    std::vector<kvc::layer_input> layers;
    for (int l = 0; l < model::num_layers; ++l)
      layers.push_back({l, kvc::fp32_input(kv.data(), tokens, 8, 128),
                        kvc::fp32_input(kv.data(), tokens, 8, 128)});
    const kvc::append_request request{sequence, tokens};
    cache.append({&request, 1}, layers);
  }
  std::span<const std::int32_t> stored() const {
    return std::span(prompt).first(prompt.size() - 1);
  }
};

void report(benchmark::State& state, std::int64_t tokens) {
  static const double bandwidth = kvc::bench::stream_read_bytes_per_second(kvc::cpu::serial());
  const double read_seconds = static_cast<double>(tokens * bytes_per_token) / bandwidth;
  state.counters["seconds_per_token"] =
      benchmark::Counter(static_cast<double>(state.iterations() * tokens),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["lookup_vs_read"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * read_seconds,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void find(benchmark::State& state) {
  const std::int64_t tokens = state.range(0);
  scene s(tokens);
  s.cache.store_prefix(s.sequence, s.stored());
  for (auto _ : state) {
    const auto hit = s.cache.find_prefix(s.prompt);
    benchmark::DoNotOptimize(hit.tokens);
    if (hit.tokens != tokens) state.SkipWithError("the prompt did not hit");
  }
  report(state, tokens);
}

void store(benchmark::State& state) {
  const std::int64_t tokens = state.range(0);
  scene s(tokens);
  for (auto _ : state) {
    s.cache.store_prefix(s.sequence, s.stored());
    state.PauseTiming();
    s.cache.clear_prefixes();
    state.ResumeTiming();
  }
  report(state, tokens);
}

void start(benchmark::State& state) {
  const std::int64_t tokens = state.range(0);
  scene s(tokens);
  s.cache.store_prefix(s.sequence, s.stored());
  const auto hit = s.cache.find_prefix(s.prompt);
  for (auto _ : state) {
    const kvc::sequence_id id = s.cache.add_sequence(hit);
    s.cache.release(id);
  }
  report(state, tokens);
}

}  // namespace

BENCHMARK(find)->Name("prefix/find/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);
BENCHMARK(store)->Name("prefix/store/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);
BENCHMARK(start)->Name("prefix/start/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);

BENCHMARK_MAIN();
