// Prefix reuse's own cost on Llama 3 8B (32 layers, 8 KV heads x 128 dims, bf16, pages of 16),
// against what a hit saves: reading the reused K/V once costs more than finding it, and the
// prefill it replaces (the K/V projections and attention of every reused token) far more.
//   prefix/find/llama3_8b/tokens:<n>    find_prefix of a prompt whose first n tokens are stored
//   prefix/store/llama3_8b/tokens:<n>   store_prefix of a computed n-token sequence, index empty
//   prefix/start/llama3_8b/tokens:<n>   add_sequence(hit) and release of a hit of n tokens
// Counters: seconds per prompt token, and lookup_vs_read: the call's time over the time to read the
// n tokens' K/V (131,072 bytes each) at the stream bandwidth measured in the same binary.
//   prefix/evict/cached:<n>
//       a step that takes 8 of n cached pages (plan_append, then abort, which gives them back):
//       the eviction order is kept as it changes, so this should not grow with n. A one-layer
//       model of 16-byte vectors, so that n reaches 65,536 pages (a million tokens) cheaply.
//   prefix/trace/llama3_8b_x2/reuse:<0|1>/threads:2
//       the prefill a serving trace saves: 4 chats of 3 turns on a shared 256-token system
//       prompt (each turn a 32-token message and a 32-token answer), served in turn order.
//       Each prompt is prefilled (K/V written, extend attention over the cache, two layers of
//       Llama 3 8B's shape, fp16) from its hit (reuse:1, then its pages stored) or from its
//       first token (reuse:0); the answer's K/V are appended without attention in both.
//       Counters: computed_fraction, the prompt tokens prefilled over all prompt tokens, and
//       seconds per prompt token; time saved is the ratio of the two rows.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include <optional>
#include <random>

#include "kvc/attention/layer_params.hpp"
#include "kvc/backend/cpu/extend.hpp"
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

// ---- eviction ----

using small_layer = kvc::layer<kvc::mqa<1>, kvc::head_dim<8>, kvc::storage<kvc::fp16>>;
using small_cache = kvc::kv_cache<kvc::model<1, small_layer>, kvc::paged<16>>;

void evict(benchmark::State& state) {
  const std::int64_t cached = state.range(0);
  small_cache cache{kvc::capacity_pages{cached + 8}};
  std::vector<float> kv(64 * 8, 0.0f);
  const kvc::layer_input layer{0, kvc::fp32_input(kv.data(), 64, 1, 8),
                               kvc::fp32_input(kv.data(), 64, 1, 8)};
  std::vector<std::int32_t> prompt(64);
  std::int32_t next = 0;
  for (std::int64_t p = 0; p < cached; p += 4) {  // prompts of 4 pages, stored and let go
    const kvc::sequence_id s = cache.add_sequence();
    const kvc::append_request request{s, 64};
    cache.append({&request, 1}, {&layer, 1});
    for (std::int32_t& t : prompt) t = next++;
    cache.store_prefix(s, prompt);
    cache.release(s);
  }
  const kvc::append_request step{cache.add_sequence(), 16 * 16};  // 8 free pages, 8 cached
  for (auto _ : state) {
    kvc::append_plan plan = cache.plan_append({&step, 1});
    cache.abort(plan);
  }
  if (cache.cached_pages(0) != cached) state.SkipWithError("the cached pages changed");
}

// ---- the serving trace ----

using trace_layer = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::storage<kvc::fp16>>;
using trace_model = kvc::model<2, trace_layer>;
using trace_cache = kvc::kv_cache<trace_model, kvc::paged<16>>;
constexpr int trace_chats = 4, trace_turns = 3;
constexpr std::int64_t system_tokens = 256, message_tokens = 32, answer_tokens = 32;
constexpr std::int64_t longest_prompt =
    system_tokens + trace_turns * (message_tokens + answer_tokens);

kvc::cpu::parallel_for_ref two_threads() {
  static kvc::cpu::thread_pool pool(2);
  return pool.ref();
}

// One run of the trace on a fresh cache, with random queries and K/V (the same for every
// prompt: attention's time does not depend on the values).
struct trace_run {
  trace_cache cache{kvc::capacity_pages{512}};
  kvc::cpu::extend_workspace workspace;
  kvc::page_table_csr table;
  std::vector<float> q, k, v, out, lse;
  std::int64_t prompt_tokens = 0, computed_tokens = 0;

  trace_run() {
    std::mt19937 random(3);
    std::normal_distribution<float> normal;
    const auto rows = static_cast<std::size_t>(longest_prompt);
    for (auto* x : {&q, &out}) x->resize(rows * 32 * 128);
    for (auto* x : {&k, &v}) x->resize(rows * 8 * 128);
    lse.resize(rows * 32);
    for (auto* x : {&q, &k, &v})
      for (float& f : *x) f = normal(random);
  }

  // Appends positions [from, to) of the sequence: their K/V in both layers, and with
  // `attend` the prefill's attention of those rows over everything before them.
  void prefill(kvc::sequence_id s, std::int64_t from, std::int64_t to, bool attend) {
    const std::int64_t rows = to - from;
    const kvc::append_request request{s, rows};
    kvc::append_plan plan = cache.plan_append({&request, 1});
    const std::vector<std::int32_t> qo{0, static_cast<std::int32_t>(rows)};
    const std::vector<kvc::sequence_id> batch{s};
    for (int l = 0; l < trace_model::num_layers; ++l) {
      const kvc::kv_input new_k = kvc::fp32_input(k.data(), rows, 8, 128);
      const kvc::kv_input new_v = kvc::fp32_input(v.data(), rows, 8, 128);
      if (attend) {
        cache.page_table(l, batch, table);  // the committed prefix
        kvc::cpu::extend(cache.view(l, table), qo, 32, q.data(), new_k, new_v, out.data(),
                         lse.data(), kvc::attention::layer_params<trace_model>(l), workspace,
                         two_threads());
      }
      cache.write(plan, l, new_k, new_v);
    }
    cache.commit(plan);
  }

  void serve(bool reuse) {
    std::vector<std::vector<std::int32_t>> history(trace_chats);
    for (auto& h : history)
      for (std::int64_t t = 0; t < system_tokens; ++t) h.push_back(static_cast<std::int32_t>(t));
    for (int turn = 0; turn < trace_turns; ++turn)
      for (int chat = 0; chat < trace_chats; ++chat) {
        std::vector<std::int32_t>& tokens = history[static_cast<std::size_t>(chat)];
        const std::int32_t base = 1000 + 100000 * chat + 1000 * turn;
        for (std::int32_t t = 0; t < message_tokens; ++t) tokens.push_back(base + t);
        const auto prompt = static_cast<std::int64_t>(tokens.size());
        std::int64_t from = 0;
        kvc::sequence_id s;
        if (reuse) {
          const auto hit = cache.find_prefix(tokens);
          s = cache.add_sequence(hit);
          from = hit.tokens;
        } else {
          s = cache.add_sequence();
        }
        prefill(s, from, prompt, true);
        for (std::int32_t t = 0; t < answer_tokens; ++t) tokens.push_back(base + 500 + t);
        prefill(s, prompt, static_cast<std::int64_t>(tokens.size()), false);
        if (reuse) cache.store_prefix(s, tokens);
        cache.release(s);
        prompt_tokens += prompt;
        computed_tokens += prompt - from;
      }
  }
};

void trace(benchmark::State& state) {
  const bool reuse = state.range(0) != 0;
  std::int64_t prompt_tokens = 0, computed_tokens = 0;
  std::optional<trace_run> run;
  for (auto _ : state) {
    state.PauseTiming();
    run.emplace();  // a fresh cache: every iteration serves the same trace
    state.ResumeTiming();
    run->serve(reuse);
    prompt_tokens += run->prompt_tokens;
    computed_tokens += run->computed_tokens;
  }
  state.counters["computed_fraction"] =
      static_cast<double>(computed_tokens) / static_cast<double>(prompt_tokens);
  state.counters["seconds_per_prompt_token"] =
      benchmark::Counter(static_cast<double>(prompt_tokens),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(find)->Name("prefix/find/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);
BENCHMARK(store)->Name("prefix/store/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);
BENCHMARK(start)->Name("prefix/start/llama3_8b")->ArgName("tokens")->Arg(1024)->Arg(8192);
BENCHMARK(evict)->Name("prefix/evict")->ArgName("cached")->Arg(1024)->Arg(65536);
BENCHMARK(trace)
    ->Name("prefix/trace/llama3_8b_x2/threads:2")
    ->ArgName("reuse")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
