#pragma once
// Shared by the attention tests: a cache of one layer per storage dtype for a layer shape,
// filled with random K/V, and the comparison of a backend's output with the reference.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/backend/cpu/attend.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "reference/reference_attention.hpp"

namespace kvc::testing {

/// Two threads, as CI has: work really is split, and results must not depend on it.
inline cpu::thread_pool& pool() {
  static cpu::thread_pool p(2);
  return p;
}

/// One layer of Shape<storage<T>> for every storage dtype T, in this order.
template <template <class> class Shape>
struct every_dtype_model
    : stack<repeat<1, Shape<storage<fp32>>>, repeat<1, Shape<storage<fp16>>>,
            repeat<1, Shape<storage<bf16>>>, repeat<1, Shape<storage<fp8_e4m3>>>,
            repeat<1, Shape<storage<fp8_e5m2>>>, repeat<1, Shape<storage<int8>>>,
            repeat<1, Shape<storage<int4>>>> {};
inline constexpr int dtype_layers = 7;

/// Appends `tokens` random tokens (normal, sd `spread`) to every layer of a cache.
template <class Cache>
void append_random(Cache& cache, sequence_id sequence, std::int64_t tokens, std::mt19937& rng,
                   float spread = 1.0f) {
  std::normal_distribution<float> normal(0.0f, spread);
  using model = typename Cache::groups;
  std::vector<std::vector<float>> k(Cache::num_layers), v(Cache::num_layers);
  std::vector<layer_input> inputs;
  for (int l = 0; l < Cache::num_layers; ++l) {
    (void)sizeof(model);
    const page_geometry& geo = cache.geometry(Cache::group_of_layer(l));
    k[static_cast<std::size_t>(l)].resize(
        static_cast<std::size_t>(tokens * geo.kv_heads * geo.k_dim));
    for (float& x : k[static_cast<std::size_t>(l)]) x = normal(rng);
    layer_input in{
        l, fp32_input(k[static_cast<std::size_t>(l)].data(), tokens, geo.kv_heads, geo.k_dim), {}};
    if (!geo.latent) {
      v[static_cast<std::size_t>(l)].resize(
          static_cast<std::size_t>(tokens * geo.kv_heads * geo.v_dim));
      for (float& x : v[static_cast<std::size_t>(l)]) x = normal(rng);
      in.v = fp32_input(v[static_cast<std::size_t>(l)].data(), tokens, geo.kv_heads, geo.v_dim);
    }
    inputs.push_back(in);
  }
  const append_request request{sequence, tokens};
  cache.append({&request, 1}, inputs);
}

/// Allowances beyond fp32 rounding, for kernels that round their inputs (docs/attention.md,
/// numerics): `score` bounds the error of every score (the softmax-scaled logit), `weight`
/// that of the weights relative to the largest of their block of keys.
struct rounding_allowance {
  double score = 0, weight = 0;
};

/// |out - ref| <= (2e-4 + 2 score + key_block weight) max|v| + 1e-5 per value, |lse - ref| <=
/// 1e-4 max(1, |lse|) + score: fp32 accumulation against double, on the same (dequantized)
/// keys and values, plus what the allowance grants.
inline void compare_with_reference(const reference_result& ref,
                                   const std::vector<std::vector<float>>& values, const float* out,
                                   float lse, int v_dim, rounding_allowance allowance = {}) {
  double largest = 0;
  for (const auto& v : values)
    for (float x : v) largest = std::max(largest, std::fabs(static_cast<double>(x)));
  if (std::isnan(ref.lse)) {
    for (int d = 0; d < v_dim; ++d) REQUIRE(std::isnan(out[d]));
    return;
  }
  if (std::isinf(ref.lse)) {
    REQUIRE(std::isinf(lse));
    REQUIRE(lse < 0);
  } else {
    REQUIRE(std::fabs(lse - ref.lse) <= 1e-4 * std::max(1.0, std::fabs(ref.lse)) + allowance.score);
  }
  const double out_bound =
      (2e-4 + 2 * allowance.score + cpu::key_block * allowance.weight) * largest + 1e-5;
  for (int d = 0; d < v_dim; ++d)
    REQUIRE(std::fabs(out[d] - ref.out[static_cast<std::size_t>(d)]) <= out_bound);
}

/// Half an ulp of a 16-bit type, relative: what rounding a value to it may move it by.
inline double rounding_of(dtype_id type) { return type == dtype_id::bf16 ? 0x1p-8 : 0x1p-11; }

/// What the tensor cores' 16-bit inputs grant (docs/simt.md): the query row (softmax scale
/// applied) rounded to K's type moves every score by at most rounding * scale * sum_d |q_d k_d|;
/// the weights rounded to V's type move the output by at most rounding * max|v|. A soft-cap c
/// adds 2^-20 c to the scores: the kernels' tanh (kernels/mma_softmax.hpp, tanh_fast: below
/// 2^-22.4 on the host, about 2^-21 with the GPU's approximate exp2 and division).
inline rounding_allowance tensor_core_allowance(const float* q_row, int k_dim,
                                                const std::vector<std::vector<float>>& keys,
                                                double softmax_scale, dtype_id k_type,
                                                dtype_id v_type, double softcap = 0) {
  double score = 0;
  for (const auto& k : keys) {
    double sum = 0;
    for (int d = 0; d < k_dim; ++d)
      sum += std::fabs(static_cast<double>(q_row[d]) * k[static_cast<std::size_t>(d)]);
    score = std::max(score, sum);
  }
  return {rounding_of(k_type) * std::fabs(softmax_scale) * score + 0x1p-20 * softcap,
          rounding_of(v_type) / cpu::key_block};
}

}  // namespace kvc::testing
