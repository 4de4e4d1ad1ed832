// Storage conversions over 16 Mi floats (64 MiB), the work an append does per value:
// encode/numeric/<dtype>. Each reports bytes/s (fp32 read + stored bytes written) and
// fraction_of_stream, the ratio to memcpy moving as many bytes, timed in the same binary.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "stream_baseline.hpp"

namespace {

constexpr std::size_t values = std::size_t{16} << 20;
constexpr int vector_dim = 128;  // one token-head vector of a Llama-3-8B layer

const std::vector<float>& inputs() {
  static const std::vector<float> x = [] {
    std::vector<float> v(values);
    for (std::size_t i = 0; i < values; ++i)
      v[i] = static_cast<float>(static_cast<int>(i * 2654435761u % 2001) - 1000) / 97.0f;
    return v;
  }();
  return x;
}

template <class DType>
void encode(benchmark::State& state) {
  using codec = kvc::numeric::codec<DType>;
  const std::vector<float>& x = inputs();
  std::vector<typename codec::stored> out(values);
  kvc::bench::run_streaming(state, values * (sizeof(float) + sizeof(typename codec::stored)), [&] {
    for (std::size_t i = 0; i < values; ++i) out[i] = codec::encode(x[i]);
    benchmark::DoNotOptimize(out.data());
  });
}

void encode_int8(benchmark::State& state) {
  const std::vector<float>& x = inputs();
  std::vector<std::int8_t> out(values);
  std::vector<float> scales(values / vector_dim);
  const std::size_t bytes = values * (sizeof(float) + 1) + scales.size() * sizeof(float);
  kvc::bench::run_streaming(state, bytes, [&] {
    for (std::size_t v = 0; v < values / vector_dim; ++v)
      scales[v] = kvc::numeric::quantize_int8(x.data() + v * vector_dim, vector_dim,
                                              out.data() + v * vector_dim);
    benchmark::DoNotOptimize(out.data());
  });
}

}  // namespace

BENCHMARK_TEMPLATE(encode, kvc::fp16)->Name("encode/numeric/fp16");
BENCHMARK_TEMPLATE(encode, kvc::bf16)->Name("encode/numeric/bf16");
BENCHMARK_TEMPLATE(encode, kvc::fp8_e4m3)->Name("encode/numeric/fp8_e4m3");
BENCHMARK_TEMPLATE(encode, kvc::fp8_e5m2)->Name("encode/numeric/fp8_e5m2");
BENCHMARK(encode_int8)->Name("encode/numeric/int8/dim:128");

BENCHMARK_MAIN();
