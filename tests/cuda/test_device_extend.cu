// The tensor-core extend kernel on a GPU (label gpu): a cache in device memory and a host cache
// with the same history and the same open step; kvc::cuda::extend on the device against
// kvc::cpu::extend over the host cache's step (fp32 on the stored values, itself checked against
// the reference by test_attention_extend), within the tensor cores' bounds of docs/simt.md
// (the query and the weights rounded to 16 bits), taken over every key of the sequence.
// Llama-like fp16 and bf16 layers from nothing and over a prefix, a window, a soft-cap,
// learned sinks, MLA (a small latent on the row tiles, DeepSeek's 512 + 64 on the per-token
// kernel, in fp16, bf16 and fp8) and int8 storage. Reports itself skipped where no GPU exists.

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "attention_shapes.hpp"
#include "device_memory.hpp"
#include "device_present.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/backend/cuda/page_table.cuh"
#include "kvc/cache/kv_cache.hpp"

namespace {
using namespace kvc;
using namespace kvc::testing::shapes;

int failures = 0;

using kvc::testing::to_device;
using kvc::testing::to_host;

template <class Spec,
          class Block = kernels::extend_block<kernels::decode_shape_of<Spec, paged<16>>>>
void check(const std::string& name, const std::vector<int>& prefix, const std::vector<int>& fresh,
           const std::vector<float>& sinks = {}) {
  using shape = kernels::decode_shape_of<Spec, paged<16>>;
  struct one : model<1, Spec> {};
  constexpr int kv = Spec::kv_heads, kd = Spec::k_dim, vd = Spec::is_latent ? 0 : Spec::v_dim;
  constexpr int q_heads = Spec::q_heads, out_dim = Spec::v_dim;
  std::int64_t pages = 8, most = 1;
  for (std::size_t b = 0; b < prefix.size(); ++b) {
    pages += (prefix[b] + fresh[b]) / 16 + 3;
    most = std::max<std::int64_t>(most, fresh[b]);
  }
  kv_cache<one, paged<16>, kvc::cuda::device_allocator> device(capacity_pages{pages, most});
  kv_cache<one, paged<16>> host(capacity_pages{pages, most});
  std::mt19937 rng(static_cast<std::uint32_t>(name.size() * 31 + prefix.size()));
  std::normal_distribution<float> normal;
  const auto random = [&](std::size_t n) {
    std::vector<float> x(n);
    for (float& v : x) v = normal(rng);
    return x;
  };
  std::vector<sequence_id> device_ids, host_ids;
  std::vector<append_request> device_step_requests, host_step_requests;
  std::vector<std::int64_t> token_indptr{0};
  for (std::size_t b = 0; b < prefix.size(); ++b) {
    device_ids.push_back(device.add_sequence());
    host_ids.push_back(host.add_sequence());
    token_indptr.push_back(token_indptr.back() + fresh[b]);
    device_step_requests.push_back({device_ids.back(), fresh[b]});
    host_step_requests.push_back({host_ids.back(), fresh[b]});
    if (prefix[b] == 0) continue;
    const auto k = random(static_cast<std::size_t>(prefix[b]) * kv * kd);
    const auto v = random(static_cast<std::size_t>(prefix[b]) * kv * (vd > 0 ? vd : 1));
    const layer_input in{0, fp32_input(k.data(), prefix[b], kv, kd),
                         vd > 0 ? fp32_input(v.data(), prefix[b], kv, vd) : kv_input{}};
    const append_request dr{device_ids.back(), prefix[b]}, hr{host_ids.back(), prefix[b]};
    device.append({&dr, 1}, {&in, 1});
    host.append({&hr, 1}, {&in, 1});
  }
  const std::int64_t rows = token_indptr.back();
  const auto k = random(static_cast<std::size_t>(rows) * kv * kd);
  const auto v = random(static_cast<std::size_t>(rows) * kv * (vd > 0 ? vd : 1));
  const auto q = random(static_cast<std::size_t>(rows) * q_heads * kd);
  append_plan device_step = device.plan_append(device_step_requests);
  append_plan host_step = host.plan_append(host_step_requests);
  const kv_input k_in = fp32_input(k.data(), rows, kv, kd);
  const kv_input v_in = vd > 0 ? fp32_input(v.data(), rows, kv, vd) : kv_input{};
  device.write(device_step, 0, k_in, v_in);
  host.write(host_step, 0, k_in, v_in);
  const page_table_csr device_table = device.step_table(device_step, 0);
  const page_table_csr host_table = host.step_table(host_step, 0);
  kvc::cuda::device_page_table arrays;
  arrays.upload(device_table, nullptr, token_indptr.data());
  const paged_layer_view device_view = arrays.view(device.view(0, device_table));
  const paged_layer_view host_view = host.view(0, host_table);

  const auto params = attention::attention_params_of<Spec>(sinks.empty() ? nullptr : sinks.data());
  float* sinks_device = sinks.empty() ? nullptr : to_device(sinks);
  attention::attention_params device_params = params;
  device_params.sink_logits = sinks_device;
  kernels::extend_plan plan;
  kvc::cuda::plan_extend<shape, Block>(device.view(0, device_table), token_indptr, q_heads, plan);
  kvc::cuda::device_extend_plan device_plan;
  device_plan.upload(plan, nullptr);
  const std::size_t out_size = static_cast<std::size_t>(rows) * q_heads * out_dim;
  const std::size_t lse_size = static_cast<std::size_t>(rows) * q_heads;
  float* q_device = to_device(q);
  float* out_device = to_device(std::vector<float>(out_size));
  float* lse_device = to_device(std::vector<float>(lse_size));
  kvc::cuda::extend<shape, Block>(plan, device_plan, device_view, token_indptr,
                                  arrays.token_indptr(), q_device, out_device, lse_device,
                                  device_params, nullptr);
  const cudaError_t status = cudaDeviceSynchronize();
  const std::vector<float> out = to_host(out_device, out_size), lse = to_host(lse_device, lse_size);
  std::vector<float> want_out(out_size), want_lse(lse_size);
  std::vector<std::int32_t> qo_indptr;
  for (const std::int64_t x : token_indptr) qo_indptr.push_back(static_cast<std::int32_t>(x));
  kvc::cpu::extend_workspace workspace;
  kvc::cpu::extend(host_view, qo_indptr, q_heads, q.data(), want_out.data(), want_lse.data(),
                   params, workspace, kvc::cpu::serial());
  device.commit(device_step);
  host.commit(host_step);  // the bounds below read the new tokens back
  // Per (sequence, query head): the largest |v| and sum_d |q_d k_d| over the sequence's keys.
  const double rounding = Spec::k_type::id == dtype_id::bf16 ? 0x1p-8 : 0x1p-11;
  int bad = 0;
  std::vector<float> kk(static_cast<std::size_t>(kv) * kd),
      vv(static_cast<std::size_t>(kv) * (vd > 0 ? vd : kd));
  for (std::size_t b = 0; b < prefix.size(); ++b)
    for (std::int64_t t = 0; t < fresh[b]; ++t) {
      const auto row = static_cast<std::size_t>(token_indptr[b] + t);
      for (int h = 0; h < q_heads; ++h) {
        const int kv_head = h / Spec::group_size;
        double largest = 0, products = 0;
        for (std::int64_t p = 0; p < prefix[b] + fresh[b]; ++p) {
          if (!host.read(host_ids[b], 0, p, kk.data(), vv.data())) continue;
          double sum = 0;
          for (int d = 0; d < kd; ++d)
            sum += std::fabs(static_cast<double>(q[(row * q_heads + h) * kd + d]) *
                             kk[static_cast<std::size_t>(kv_head * kd + d)]);
          products = std::max(products, sum);
          const int stride = vd > 0 ? vd : kd;
          for (int d = 0; d < out_dim; ++d)
            largest = std::max(
                largest,
                std::fabs(static_cast<double>(vv[static_cast<std::size_t>(kv_head * stride + d)])));
        }
        const double score = rounding * std::fabs(Spec::softmax_scale_value) * products;
        const std::size_t at = row * q_heads + static_cast<std::size_t>(h);
        const auto off = [](float got, float want, double bound) {
          const bool both_nan = std::isnan(got) && std::isnan(want);
          return !both_nan && !(std::fabs(static_cast<double>(got) - want) <= bound);
        };
        if (status == cudaSuccess) {
          bad += off(lse[at], want_lse[at],
                     2e-4 * std::max(1.0, std::fabs(static_cast<double>(want_lse[at]))) + score);
          for (int d = 0; d < out_dim; ++d)
            bad += off(out[at * out_dim + d], want_out[at * out_dim + d],
                       (4e-4 + 2 * score + rounding) * largest + 2e-5);
        }
      }
    }
  std::printf("%s extend %s (%zu tiles): %s\n", bad || status != cudaSuccess ? "FAIL" : "ok",
              name.c_str(), plan.tiles.size(),
              status != cudaSuccess ? cudaGetErrorString(status)
                                    : (std::to_string(bad) + " values differ").c_str());
  failures += bad > 0 || status != cudaSuccess;
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
  cudaFree(sinks_device);
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  check<llama_shape<storage<fp16>>>("gqa 8/2 d128 fp16", {0, 70, 300}, {37, 20, 130});
  check<llama_shape<storage<bf16>>>("gqa 8/2 d128 bf16", {0, 70, 300}, {37, 20, 130});
  check<mistral_shape<storage<bf16>>>("window 40 bf16", {90, 0, 102}, {30, 60, 20});
  check<gemma2_shape<storage<fp16>>>("soft-capped window fp16", {50}, {45});
  check<gpt_oss_shape<storage<bf16>>>("window with sinks bf16", {20, 0}, {20, 35},
                                      {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -2.0f, 1.0f, 0.25f});
  check<deepseek_shape<storage<bf16>>>("latent 64+16 bf16", {9}, {21});
  // DeepSeek's 512 + 64 latent: the per-token kernel, one and two row chunks.
  check<deepseek_latent<16>::shape<storage<bf16>>>("latent 512+64, 16 heads bf16", {0, 40},
                                                   {33, 9});
  check<deepseek_latent<128>::shape<storage<fp16>>>("latent 512+64, 128 heads fp16", {70}, {12});
  check<deepseek_latent<16>::shape<storage<fp8_e4m3>>>("latent 512+64, 16 heads fp8", {0, 40},
                                                       {33, 9});
  check<llama_shape<storage<int8>>>("gqa 8/2 d128 int8", {0, 70}, {37, 20});
#if defined(KVC_DEVICE_WGMMA)
  // The warpgroup extend (sm_90a: built where CMAKE_CUDA_ARCHITECTURES has 90a), on a compute
  // capability 9.0 device.
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  if (properties.major == 9 && properties.minor == 0) {
    const auto warpgroups = [](auto spec, const std::string& name, const std::vector<int>& prefix,
                               const std::vector<int>& fresh, const std::vector<float>& sinks) {
      using layer_spec = decltype(spec);
      using shape = kernels::decode_shape_of<layer_spec, paged<16>>;
      check<layer_spec, kernels::warpgroup_extend_block<shape>>(name + ", warpgroups", prefix,
                                                                fresh, sinks);
    };
    warpgroups(llama_shape<storage<fp16>>{}, "gqa 8/2 d128 fp16", {0, 70, 300}, {37, 20, 130}, {});
    warpgroups(llama_shape<storage<bf16>>{}, "gqa 8/2 d128 bf16", {0, 70, 300}, {37, 20, 130}, {});
    warpgroups(mistral_shape<storage<bf16>>{}, "window 40 bf16", {90, 0, 102}, {30, 60, 20}, {});
    warpgroups(gemma2_shape<storage<fp16>>{}, "soft-capped window fp16", {50}, {45}, {});
    warpgroups(gpt_oss_shape<storage<bf16>>{}, "window with sinks bf16", {20, 0}, {20, 35},
               {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -2.0f, 1.0f, 0.25f});
    warpgroups(llama_shape<storage<fp8_e4m3>>{}, "gqa 8/2 d128 fp8 e4m3", {0, 70}, {37, 20}, {});
    warpgroups(gpt_oss_shape<storage<fp8_e5m2>>{}, "window with sinks d64 fp8 e5m2", {20, 0},
               {20, 35}, {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -2.0f, 1.0f, 0.25f});
    warpgroups(layer<gqa<4, 2>, head_dim<256>, sliding_window<40>, storage<bf16>>{},
               "d256 window 40 bf16", {60, 0}, {50, 70}, {});
    warpgroups(llama_shape<storage<int8>>{}, "gqa 8/2 d128 int8", {0, 70}, {37, 20}, {});
    warpgroups(llama_shape<storage<kvc::int4>>{}, "gqa 8/2 d128 int4", {0, 70}, {37, 20}, {});
  } else {
    std::printf("warpgroup extend: not run on compute capability %d.%d\n", properties.major,
                properties.minor);
  }
#endif
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
