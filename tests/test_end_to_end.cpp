// End to end: a miniature decoder per family (random weights; Llama-like GQA, DeepSeek-like
// MLA in absorbed form, Gemma-like five sliding layers per global one, gpt-oss-like learned
// sinks with alternating windows) reads a 4-token prompt and generates 256 tokens with the
// paged cache and the CPU backend (extend over the cache before each step, then write and
// commit). Its logits must match, within the bound docs/attention.md states per storage
// dtype, those of one pass over the whole history without a cache, in double precision.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "kvc/backend/cpu/extend.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "miniature_decoder.hpp"

using namespace kvc;
using namespace kvc::testing::miniature;

namespace {

constexpr int prompt = 4, generated = 256;

// Greedy generation with the cache and the CPU backend; returns the tokens and the logits of
// every position read.
template <class Model, class Paging>
std::pair<std::vector<int>, std::vector<std::vector<float>>> generate_cached(
    const decoder<Model>& dec) {
  kv_cache<Model, Paging> cache(capacity_pages{(prompt + generated) / Paging::page_tokens + 2});
  const sequence_id seq = cache.add_sequence();
  cpu::thread_pool pool(2);
  // Each step attends over the cache before it and the step's own K/V (cpu::extend), then
  // writes them and commits.
  return generate(dec, {3, 17, 29, 8}, prompt + generated, [&](std::vector<float>& x, int n) {
    const std::vector<sequence_id> ids{seq};
    std::vector<page_table_csr> tables;  // the cache before this step, per layer
    for (int l = 0; l < Model::num_layers; ++l) tables.push_back(cache.page_table(l, ids));
    const append_request request{seq, n};
    append_plan plan = cache.plan_append({&request, 1});
    for (int l = 0; l < Model::num_layers; ++l) {
      const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
      std::vector<float> q(static_cast<std::size_t>(n * s.q_heads * s.k_dim)),
          k(static_cast<std::size_t>(n * s.kv_heads * s.k_dim)),
          v(static_cast<std::size_t>(n * s.kv_heads * s.v_dim)),
          o(static_cast<std::size_t>(n * s.q_heads * s.v_dim)),
          lse(static_cast<std::size_t>(n * s.q_heads));
      dec.project_qkv(l, x.data(), n, q.data(), k.data(), v.data());
      const kv_input k_in = fp32_input(k.data(), n, s.kv_heads, s.k_dim);
      const kv_input v_in = s.latent ? kv_input{} : fp32_input(v.data(), n, s.kv_heads, s.v_dim);
      const std::int32_t qo[] = {0, n};
      cpu::extend(cache.view(l, tables[static_cast<std::size_t>(l)]), qo, s.q_heads, q.data(), k_in,
                  v_in, o.data(), lse.data(), dec.params[static_cast<std::size_t>(l)], pool.ref());
      cache.write(plan, l, k_in, v_in);
      for (int t = 0; t < n; ++t)
        dec.finish_layer(l, o.data() + t * s.q_heads * s.v_dim, x.data() + t * d_model);
    }
    cache.commit(plan);
  });
}

// The largest logit difference, relative to the largest logit magnitude, over every position.
template <class Model, class Paging = paged<16>>
double run(std::uint32_t seed) {
  const decoder<Model> dec(seed);
  const auto [tokens, cached] = generate_cached<Model, Paging>(dec);
  REQUIRE(tokens.size() == static_cast<std::size_t>(prompt + generated));
  REQUIRE(cached.size() == static_cast<std::size_t>(prompt + generated - 1));
  return relative_difference(cached, logits_without_cache(dec, tokens));
}

template <class S>
using mla_layer = layer<mqa<4>, latent<16, 8>, S, inv_sqrt_scale<24>>;

template <class S>
struct deepseek_like : model<2, mla_layer<S>> {};

}  // namespace

TEST_CASE("end to end: Llama-like grouped-query decoder") {
  CHECK(run<llama_like<storage<fp32>>>(1) <= bound_fp32);
  CHECK(run<llama_like<storage<bf16>>>(1) <= bound_8_or_16_bit);
  CHECK(run<llama_like<storage<fp8_e4m3>>, paged<8>>(1) <= bound_8_or_16_bit);
}
TEST_CASE("end to end: DeepSeek-like latent-attention decoder") {
  CHECK(run<deepseek_like<storage<fp32>>>(2) <= bound_fp32);
  CHECK(run<deepseek_like<storage<bf16>>>(2) <= bound_8_or_16_bit);
}
TEST_CASE("end to end: Gemma-like 5:1 sliding-window decoder") {
  CHECK(run<gemma_like<storage<fp32>>>(3) <= bound_fp32);
  CHECK(run<gemma_like<storage<bf16>>, paged<4, page_layout::hnd>>(3) <= bound_8_or_16_bit);
}
TEST_CASE("end to end: gpt-oss-like decoder with learned sinks") {
  CHECK(run<gpt_oss_like<storage<fp32>>>(4) <= bound_fp32);
  CHECK(run<gpt_oss_like<storage<int8>>>(4) <= bound_8_or_16_bit);
}
