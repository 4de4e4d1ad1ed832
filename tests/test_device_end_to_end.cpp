// End to end on the device backend: the miniature decoders of test_end_to_end.cpp
// (tests/miniature_decoder.hpp) run whole through kvc::cuda: a cache in device memory
// (cuda::device_allocator), each step's table uploaded (cuda::device_page_table), the step's
// new K/V stored by the append kernel, a prompt of 36 tokens attended by the extend kernels
// (row tiles; a block per token for a latent wider than they take), then 20 tokens generated one
// decode step at a time (the decode kernels: tensor cores for the latent's 16 heads). Built by
// the host compiler against the emulated CUDA runtime (kvc::cuda_emulated), so every kernel
// runs in the SIMT emulator. The logits must match those of one pass over the whole history
// without a cache, in double precision, within the bound the CPU backend meets
// (test_end_to_end.cpp): the tensor cores' rounding is inside it.

#include <cuda_runtime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/backend/cuda/page_table.cuh"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/model/with_layer.hpp"
#include "miniature_decoder.hpp"

using namespace kvc;
using namespace kvc::testing::miniature;

namespace {

constexpr int prompt = 36, generated = 20;

// Device memory for n values of T, freed at the end of the scope.
template <class T>
class device_buffer {
 public:
  explicit device_buffer(std::size_t n) : size_(n) {
    void* p = nullptr;
    REQUIRE(cudaMalloc(&p, (n > 0 ? n : 1) * sizeof(T)) == cudaSuccess);
    data_ = static_cast<T*>(p);
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(data_); }
  T* data() const { return data_; }
  void put(const std::vector<T>& host) const {
    REQUIRE(host.size() <= size_);
    REQUIRE(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) ==
            cudaSuccess);
  }
  std::vector<T> get(std::size_t n) const {
    std::vector<T> host(n);
    REQUIRE(cudaMemcpy(host.data(), data_, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// What a device step of one sequence keeps between layers: the plans and their device copies.
struct device_step {
  cudaStream_t stream = nullptr;
  attention::decode_plan decode_plan;
  cuda::device_decode_plan device_decode_plan;
  kernels::extend_plan extend_plan;
  cuda::device_extend_plan device_extend_plan;
};

// One layer of a step of n tokens on the device: its new K/V appended, then its attention
// over the step's view (extend for a prompt, decode for one token); returns out, [n][q_heads *
// v_dim].
template <class Layer, class Paging, class Cache>
std::vector<float> attend_on_device(Cache& cache, int l, const page_table_csr& table,
                                    const cuda::device_page_table& device_table,
                                    std::span<const std::int64_t> token_indptr,
                                    const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const float* sinks,
                                    device_step& step) {
  using spec = typename Layer::attention;
  using shape = kernels::decode_shape_of<spec, Paging>;
  const auto n = static_cast<int>(token_indptr.back());
  constexpr int q_heads = spec::q_heads, kv_heads = spec::kv_heads;
  device_buffer<float> q_device(q.size()), k_device(k.size()),
      v_device(std::max<std::size_t>(v.size(), 1));
  q_device.put(q);
  k_device.put(k);
  if (!spec::is_latent) v_device.put(v);
  const std::size_t rows = static_cast<std::size_t>(n) * q_heads;
  device_buffer<float> out(rows * spec::v_dim), lse(rows);
  const paged_layer_view host_view = cache.view(l, table);
  const paged_layer_view view = device_table.view(host_view);
  cuda::append<typename spec::k_type, typename spec::v_type, fp32>(
      kernels::make_append_work(
          view, device_table.token_indptr(), fp32_input(k_device.data(), n, kv_heads, spec::k_dim),
          spec::is_latent ? kv_input{} : fp32_input(v_device.data(), n, kv_heads, spec::v_dim), n),
      step.stream);
  const auto params = attention::attention_params_of<spec>(sinks);
  if (n == 1) {
    cuda::plan_decode<shape>(host_view, q_heads, step.decode_plan);
    step.device_decode_plan.upload(step.decode_plan, step.stream);
    cuda::decode<shape>(step.decode_plan, step.device_decode_plan, view, q_device.data(),
                        out.data(), lse.data(), params, step.stream);
  } else {
    cuda::plan_extend<shape>(host_view, token_indptr, q_heads, step.extend_plan);
    step.device_extend_plan.upload(step.extend_plan, step.stream);
    cuda::extend<shape>(step.extend_plan, step.device_extend_plan, view, token_indptr,
                        device_table.token_indptr(), q_device.data(), out.data(), lse.data(),
                        params, step.stream);
  }
  REQUIRE(cudaStreamSynchronize(step.stream) == cudaSuccess);
  return out.get(rows * spec::v_dim);
}

// Greedy generation on the device: the tokens and the logits of every position read.
template <class Model, class Paging>
std::pair<std::vector<int>, std::vector<std::vector<float>>> generate_on_device(
    const decoder<Model>& dec) {
  constexpr int layers = Model::num_layers;
  // A window layer's step of the whole prompt needs a rollback reserve of its tokens less one.
  kv_cache<Model, Paging, cuda::device_allocator> cache(
      capacity_pages{(prompt + generated) / Paging::page_tokens + 3, prompt - 1});
  const sequence_id seq = cache.add_sequence();
  device_step step;
  REQUIRE(cudaStreamCreate(&step.stream) == cudaSuccess);
  std::vector<cuda::device_page_table> device_tables(static_cast<std::size_t>(layers));
  std::vector<page_table_csr> tables(static_cast<std::size_t>(layers));
  std::vector<std::unique_ptr<device_buffer<float>>> sinks;  // the learned sinks, per layer
  for (const std::vector<float>& s : dec.sinks) {
    sinks.push_back(std::make_unique<device_buffer<float>>(s.size()));
    sinks.back()->put(s);
  }
  std::mt19937 rng(11);
  std::vector<int> prompt_tokens;
  for (int t = 0; t < prompt; ++t)
    prompt_tokens.push_back(static_cast<int>(rng() % static_cast<unsigned>(vocab)));
  auto result = generate(dec, prompt_tokens, prompt + generated, [&](std::vector<float>& x, int n) {
    const std::vector<std::int64_t> token_indptr{0, n};
    const append_request request{seq, n};
    append_plan plan = cache.plan_append({&request, 1});
    for (int l = 0; l < layers; ++l) {
      const auto i = static_cast<std::size_t>(l);
      cache.step_table(plan, l, tables[i]);
      device_tables[i].upload(tables[i], step.stream, token_indptr.data());
    }
    for (int l = 0; l < layers; ++l) {
      const auto i = static_cast<std::size_t>(l);
      const layer_summary& s = Model::layer_summaries[i];
      std::vector<float> q(static_cast<std::size_t>(n * s.q_heads * s.k_dim)),
          k(static_cast<std::size_t>(n * s.kv_heads * s.k_dim)),
          v(static_cast<std::size_t>(n * s.kv_heads * s.v_dim));
      dec.project_qkv(l, x.data(), n, q.data(), k.data(), v.data());
      std::vector<float> o;
      with_layer<Model>(l, [&]<class Layer>(std::type_identity<Layer>) {
        o = attend_on_device<Layer, Paging>(cache, l, tables[i], device_tables[i], token_indptr, q,
                                            k, v, sinks[i]->data(), step);
      });
      for (int t = 0; t < n; ++t)
        dec.finish_layer(l, o.data() + t * s.q_heads * s.v_dim, x.data() + t * d_model);
    }
    for (int l = 0; l < layers; ++l) cache.mark_written(plan, l);
    cache.commit(plan);
  });
  cudaStreamDestroy(step.stream);
  return result;
}

template <class Model, class Paging = paged<16>>
double run_on_device(std::uint32_t seed) {
  const decoder<Model> dec(seed);
  const auto [tokens, on_device] = generate_on_device<Model, Paging>(dec);
  REQUIRE(tokens.size() == static_cast<std::size_t>(prompt + generated));
  REQUIRE(on_device.size() == static_cast<std::size_t>(prompt + generated - 1));
  return relative_difference(on_device, logits_without_cache(dec, tokens));
}

// A latent of 256 + 32 at 16 heads (DeepSeek's is 512 + 64): too wide for the row tiles, so
// the per-token extend, and the tensor-core decode; half of DeepSeek's dims keeps the emulator's
// time down (test_simt_extend_latent checks the real ones).
template <class S>
struct deepseek_like : model<2, layer<mqa<16>, latent<256, 32>, S, inv_sqrt_scale<96>>> {};

}  // namespace

TEST_CASE("device end to end: Llama-like grouped-query decoder", "[simt]") {
  CHECK(run_on_device<llama_like<storage<bf16>>>(1) <= bound_8_or_16_bit);
}
TEST_CASE("device end to end: DeepSeek-like decoder of 288/256 latents", "[simt]") {
  CHECK(run_on_device<deepseek_like<storage<bf16>>, paged<64>>(2) <= bound_8_or_16_bit);
}
TEST_CASE("device end to end: Gemma-like 5:1 sliding-window decoder", "[simt]") {
  CHECK(run_on_device<gemma_like<storage<fp16>>, paged<8, page_layout::hnd>>(3) <=
        bound_8_or_16_bit);
}
TEST_CASE("device end to end: gpt-oss-like decoder with learned sinks, int8", "[simt]") {
  CHECK(run_on_device<gpt_oss_like<storage<int8>>>(4) <= bound_8_or_16_bit);
}
