// Appending K/V to the paged cache, on a Llama-3-8B layer (8 KV heads x 128 dims, pages of
// 16 tokens, NHD), from fp16 keys and values as an engine produces them:
//   append/llama3_8b/<storage>/batch:64        64 sequences x 1 token (decode)
//   append/llama3_8b/<storage>/tokens:2048     1 sequence x 2048 tokens (prefill)
// Bytes are the fp16 K/V read plus the page bytes written (scales included);
// fraction_of_stream is the bandwidth over memcpy's for as many bytes, in the same binary.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "kvc/numeric/half.hpp"
#include "stream_baseline.hpp"

namespace {

template <class Storage>
struct llama3_8b_layer : kvc::model<1, kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, Storage>> {};
constexpr int kv_heads = 8, head_dim = 128;

template <class Storage>
void append(benchmark::State& state, int sequences, int tokens_per_step, int steps_per_fill) {
  using cache_type = kvc::kv_cache<llama3_8b_layer<Storage>, kvc::paged<16>>;
  const std::int64_t tokens_per_sequence = std::int64_t{tokens_per_step} * steps_per_fill;
  cache_type cache(kvc::capacity_pages{sequences * (tokens_per_sequence / 16 + 1)});
  const std::int64_t step_tokens = std::int64_t{sequences} * tokens_per_step;
  std::vector<std::uint16_t> k(static_cast<std::size_t>(step_tokens * kv_heads * head_dim)),
      v(k.size());
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = kvc::numeric::fp16_from_float(static_cast<float>(i % 251) / 100.0f - 1.0f);
    v[i] = kvc::numeric::fp16_from_float(static_cast<float>(i % 241) / 50.0f - 2.0f);
  }
  const kvc::layer_input input{0, kvc::fp16_input(k.data(), step_tokens, kv_heads, head_dim),
                               kvc::fp16_input(v.data(), step_tokens, kv_heads, head_dim)};
  std::vector<kvc::append_request> batch;
  const auto refill = [&] {
    for (const auto& r : batch) cache.release(r.sequence);
    batch.clear();
    for (int s = 0; s < sequences; ++s) batch.push_back({cache.add_sequence(), tokens_per_step});
  };
  refill();
  const auto& geometry = cache.geometry(0);
  const std::size_t page_bytes_per_token = geometry.page_bytes / 16;
  const std::size_t bytes =
      static_cast<std::size_t>(step_tokens) *
      (2 * kv_heads * head_dim * sizeof(std::uint16_t) + page_bytes_per_token);
  int steps = 0;
  kvc::bench::run_streaming(
      state, bytes,
      [&] {
        cache.append(batch, {&input, 1});
      },
      [&] {
        if (++steps == steps_per_fill) {
          steps = 0;
          refill();
        }
      });
}

// 64 sequences grow to 1024 tokens (256 MiB of fp16 pages) before they start again.
template <class Storage>
void decode_batch(benchmark::State& state) {
  append<Storage>(state, 64, 1, 1024);
}
// The sequence grows to 32k tokens (128 MiB of fp16 pages) before it starts again, so the
// pages written are not still in the caches.
template <class Storage>
void prefill(benchmark::State& state) {
  append<Storage>(state, 1, 2048, 16);
}

}  // namespace

BENCHMARK_TEMPLATE(decode_batch, kvc::storage<kvc::fp16>)->Name("append/llama3_8b/fp16/batch:64");
BENCHMARK_TEMPLATE(decode_batch, kvc::storage<kvc::fp8_e4m3>)
    ->Name("append/llama3_8b/fp8_e4m3/batch:64");
BENCHMARK_TEMPLATE(decode_batch, kvc::storage<kvc::int8>)->Name("append/llama3_8b/int8/batch:64");
BENCHMARK_TEMPLATE(prefill, kvc::storage<kvc::fp16>)->Name("append/llama3_8b/fp16/tokens:2048");
BENCHMARK_TEMPLATE(prefill, kvc::storage<kvc::fp8_e4m3>)
    ->Name("append/llama3_8b/fp8_e4m3/tokens:2048");
BENCHMARK_TEMPLATE(prefill, kvc::storage<kvc::int8>)->Name("append/llama3_8b/int8/tokens:2048");

BENCHMARK_MAIN();
