// The decode kernels on a GPU (label gpu): a cache in device memory and a host cache with the
// same history; kvc::cuda::decode on the device against kvc::cpu::decode (its portable float
// path, itself checked against the reference by test_attention_decode) on the host, within
// 1e-4 relative (fp32 arithmetic on both sides, in another order). The shapes of the
// emulator's tests: every storage dtype and mixed K/V dtypes, groups of 1, 4, 7 and 8, windows,
// chunks, streaming sinks, learned sinks, soft-cap, MLA (16-bit and fp8 on the tensor cores),
// groups of 5 to 16 on the tensor cores (bf16, fp16, int8: raw fragments; groups of 4 in fp8
// and int8 opted in), HND pages, split and unsplit, inside
// an open step; and a whole decode step (append, then decode, in every layer of a 4-layer
// model) captured as a CUDA graph. Reports itself skipped where no GPU exists.

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
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/backend/cuda/page_table.cuh"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/kernels/append.hpp"
#include "kvc/models/deepseek.hpp"

namespace {
using namespace kvc;
using namespace kvc::testing::shapes;

int failures = 0;

// The CPU decode the kernels are compared with: float arithmetic on the stored values, as
// theirs (the portable code, whatever the host CPU).
cpu::cpu_options portable_cpu() {
  cpu::cpu_options options;
  options.features = cpu_features::none();
  return options;
}

using kvc::testing::to_device;
using kvc::testing::to_host;

int compare(const std::vector<float>& got, const std::vector<float>& expected) {
  int bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(expected[i]);
    bad +=
        !both_nan && !(std::fabs(got[i] - expected[i]) <= 1e-4f * (1.0f + std::fabs(expected[i])));
  }
  return bad;
}

// What the latent tensor-core kernel's 16-bit query and weights allow per row (docs/simt.md):
// `score` bounds every score's error, `largest` is the row's largest |v|. Empty: the CUDA-core
// kernels, which compute as the CPU does.
struct tensor_core_bounds {
  std::vector<double> score, largest;
};

// Decodes `view` (host arrays) of `cache_view` with the device kernels and the CPU; prints and
// counts a failure when they differ.
template <class Spec, class Paging, class Block>
void check_view(const std::string& name, const paged_layer_view& host_view,
                const paged_layer_view& device_view, const std::vector<float>& q,
                int min_split_tokens, const std::vector<float>& sinks,
                const tensor_core_bounds& bounds = {}) {
  using shape = kernels::decode_shape_of<Spec, Paging>;
  const int rows = host_view.batch * Spec::q_heads;
  const auto params = attention::attention_params_of<Spec>(sinks.empty() ? nullptr : sinks.data());
  float* sinks_device = sinks.empty() ? nullptr : to_device(sinks);
  attention::attention_params device_params = params;
  device_params.sink_logits = sinks_device;
  attention::decode_plan plan;
  kvc::cuda::plan_decode<shape, Block>(host_view, Spec::q_heads, plan, min_split_tokens);
  kvc::cuda::device_decode_plan device_plan;
  device_plan.upload(plan, nullptr);
  float* q_device = to_device(q);
  float* out_device = to_device(std::vector<float>(static_cast<std::size_t>(rows) * Spec::v_dim));
  float* lse_device = to_device(std::vector<float>(static_cast<std::size_t>(rows)));
  kvc::cuda::decode<shape, Block>(plan, device_plan, device_view, q_device, out_device, lse_device,
                                  device_params, nullptr);
  const cudaError_t status = cudaDeviceSynchronize();
  const std::vector<float> out = to_host(out_device, static_cast<std::size_t>(rows) * Spec::v_dim);
  const std::vector<float> lse = to_host(lse_device, static_cast<std::size_t>(rows));
  const cpu::decode_plan host_plan = cpu::plan_decode(host_view, Spec::q_heads, 1);
  cpu::decode_workspace workspace;
  std::vector<float> host_out(out.size()), host_lse(lse.size());
  cpu::decode(host_plan, host_view, q.data(), host_out.data(), host_lse.data(), params, workspace,
              cpu::serial(), portable_cpu());
  int bad = status != cudaSuccess ? 1 : 0;
  if (status == cudaSuccess && bounds.score.empty()) {
    bad = compare(out, host_out) + compare(lse, host_lse);
  } else if (status == cudaSuccess) {
    const double rounding = Spec::k_type::id == dtype_id::bf16 ? 0x1p-8 : 0x1p-11;
    const auto off = [](float got, float want, double bound) {
      const bool both_nan = std::isnan(got) && std::isnan(want);
      return !both_nan && !(std::fabs(static_cast<double>(got) - want) <= bound);
    };
    for (std::size_t r = 0; r < lse.size(); ++r) {
      const double score = bounds.score[r], largest = bounds.largest[r];
      bad += off(lse[r], host_lse[r],
                 2e-4 * std::max(1.0, std::fabs(static_cast<double>(host_lse[r]))) + score);
      for (int d = 0; d < Spec::v_dim; ++d)
        bad += off(out[r * Spec::v_dim + static_cast<std::size_t>(d)],
                   host_out[r * Spec::v_dim + static_cast<std::size_t>(d)],
                   (4e-4 + 2 * score + rounding) * largest + 2e-5);
    }
  }
  constexpr kernels::decode_path path = kernels::decode_path_of<shape, Block>;
  std::printf("%s %s (%s kernel, %zu items): %s\n", bad ? "FAIL" : "ok", name.c_str(),
              kernels::decode_wgmma_in_sm90a_code<shape, Block>
                  ? "tensor-core, warpgroups in sm_90a code"
              : path == kernels::decode_path::tensor_cores ? "tensor-core"
              : path == kernels::decode_path::warpgroups   ? "warpgroup"
              : path == kernels::decode_path::streamed     ? "streamed"
                                                           : "tiled",
              plan.items.size(),
              status != cudaSuccess ? cudaGetErrorString(status)
                                    : (std::to_string(bad) + " values differ").c_str());
  failures += bad > 0;
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
  cudaFree(sinks_device);
}

template <class Spec, class Paging = paged<16>,
          class Block = kernels::decode_block<kernels::decode_shape_of<Spec, Paging>>>
void check_layer(const std::string& name, const std::vector<int>& lengths, int min_split_tokens,
                 const std::vector<float>& sinks = {}, bool in_step = false) {
  struct one : model<1, Spec> {};
  std::int64_t pages = 8;
  for (const int n : lengths) pages += n / Paging::page_tokens + 3;
  kv_cache<one, Paging, kvc::cuda::device_allocator> device(capacity_pages{pages});
  kv_cache<one, Paging> host(capacity_pages{pages});
  std::mt19937 rng(static_cast<std::uint32_t>(lengths.size() * 7 + name.size()));
  std::normal_distribution<float> normal;
  // A latent layer's values are part of K: it is given no V.
  constexpr int kv = Spec::kv_heads, kd = Spec::k_dim, vd = Spec::is_latent ? 0 : Spec::v_dim;
  const auto random_input = [&](int tokens) {
    std::vector<float> k(static_cast<std::size_t>(tokens) * kv * kd),
        v(static_cast<std::size_t>(tokens) * kv * (vd > 0 ? vd : 1));
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    return std::pair{k, v};
  };
  std::vector<sequence_id> device_ids, host_ids;
  for (const int tokens : lengths) {
    device_ids.push_back(device.add_sequence());
    host_ids.push_back(host.add_sequence());
    if (tokens == 0) continue;
    auto [k, v] = random_input(tokens);
    const layer_input in{0, fp32_input(k.data(), tokens, kv, kd),
                         vd > 0 ? fp32_input(v.data(), tokens, kv, vd) : kv_input{}};
    const append_request dr{device_ids.back(), tokens}, hr{host_ids.back(), tokens};
    device.append({&dr, 1}, {&in, 1});
    host.append({&hr, 1}, {&in, 1});
  }
  std::vector<float> q(lengths.size() * Spec::q_heads * kd);
  for (float& x : q) x = normal(rng);
  if (!in_step) {
    const page_table_csr host_table = host.page_table(0, host_ids);
    const page_table_csr device_table = device.page_table(0, device_ids);
    kvc::cuda::device_page_table arrays;
    arrays.upload(device_table, nullptr);
    tensor_core_bounds bounds;
    constexpr kernels::decode_path path =
        kernels::decode_path_of<kernels::decode_shape_of<Spec, Paging>, Block>;
    if constexpr (path == kernels::decode_path::tensor_cores ||
                  path == kernels::decode_path::warpgroups) {
      // Per (sequence, query head): sum_d |q_d k_d| over the keys, and the largest |v|.
      const double rounding = Spec::k_type::id == dtype_id::bf16 ? 0x1p-8 : 0x1p-11;
      std::vector<float> kk(static_cast<std::size_t>(kv) * kd),
          vv(static_cast<std::size_t>(kv) * (vd > 0 ? vd : kd));
      for (std::size_t b = 0; b < lengths.size(); ++b)
        for (int h = 0; h < Spec::q_heads; ++h) {
          const int kv_head = h / Spec::group_size;
          double products = 0, largest = 0;
          for (int p = 0; p < lengths[b]; ++p) {
            if (!host.read(host_ids[b], 0, p, kk.data(), vv.data())) continue;
            double sum = 0;
            for (int d = 0; d < kd; ++d)
              sum += std::fabs(
                  static_cast<double>(q[(b * Spec::q_heads + static_cast<std::size_t>(h)) * kd +
                                        static_cast<std::size_t>(d)]) *
                  kk[static_cast<std::size_t>(kv_head * kd + d)]);
            products = std::max(products, sum);
            for (int d = 0; d < Spec::v_dim; ++d)  // a latent's values: the first v_dim of K
              largest =
                  std::max(largest, std::fabs(static_cast<double>(
                                        vd > 0 ? vv[static_cast<std::size_t>(kv_head * vd + d)]
                                               : kk[static_cast<std::size_t>(kv_head * kd + d)])));
          }
          bounds.score.push_back(rounding * std::fabs(Spec::softmax_scale_value) * products);
          bounds.largest.push_back(largest);
        }
    }
    check_view<Spec, Paging, Block>(name, host.view(0, host_table),
                                    arrays.view(device.view(0, device_table)), q, min_split_tokens,
                                    sinks, bounds);
    return;
  }
  // One more token for every sequence, written into an open step on both caches.
  std::vector<append_request> device_requests, host_requests;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    device_requests.push_back({device_ids[i], 1});
    host_requests.push_back({host_ids[i], 1});
  }
  auto [k, v] = random_input(static_cast<int>(lengths.size()));
  const int n = static_cast<int>(lengths.size());
  append_plan device_step = device.plan_append(device_requests);
  append_plan host_step = host.plan_append(host_requests);
  device.write(device_step, 0, fp32_input(k.data(), n, kv, kd),
               vd > 0 ? fp32_input(v.data(), n, kv, vd) : kv_input{});
  host.write(host_step, 0, fp32_input(k.data(), n, kv, kd),
             vd > 0 ? fp32_input(v.data(), n, kv, vd) : kv_input{});
  const page_table_csr device_table = device.step_table(device_step, 0);
  const page_table_csr host_table = host.step_table(host_step, 0);
  kvc::cuda::device_page_table arrays;
  arrays.upload(device_table, nullptr);
  check_view<Spec, Paging, Block>(name, host.view(0, host_table),
                                  arrays.view(device.view(0, device_table)), q, min_split_tokens,
                                  sinks);
  device.commit(device_step);
  host.commit(host_step);
}

template <class Storage>
void check_dtype(int min_split) {
  const std::string name = "gqa 8/2 d128 " + std::string(dtype_name(Storage::k_type::id)) + "/" +
                           std::string(dtype_name(Storage::v_type::id)) + " split " +
                           std::to_string(min_split);
  check_layer<llama_shape<Storage>>(name, {1, 100, 1500}, min_split);
}

// A decode step of a 4-layer model on one stream, captured as a CUDA graph: append every
// layer's new K/V into the open step, then decode it; replayed, against the CPU's decode.
void check_graph_step() {
  using spec = layer<gqa<8, 2>, head_dim<128>, storage<fp16>>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  struct four : model<4, spec> {};
  constexpr int batch = 3, layers = 4;
  kv_cache<four, paged<16>, kvc::cuda::device_allocator> device(capacity_pages{64});
  kv_cache<four, paged<16>> host(capacity_pages{64});
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<sequence_id> device_ids, host_ids;
  for (const int tokens : {5, 40, 300}) {
    std::vector<float> k(static_cast<std::size_t>(tokens) * 2 * 128), v(k.size());
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    std::vector<layer_input> in;
    for (int l = 0; l < layers; ++l)
      in.push_back({l, fp32_input(k.data(), tokens, 2, 128), fp32_input(v.data(), tokens, 2, 128)});
    device_ids.push_back(device.add_sequence());
    host_ids.push_back(host.add_sequence());
    const append_request dr{device_ids.back(), tokens}, hr{host_ids.back(), tokens};
    device.append({&dr, 1}, in);
    host.append({&hr, 1}, in);
  }
  std::vector<append_request> dr, hr;
  for (int s = 0; s < batch; ++s) {
    dr.push_back({device_ids[s], 1});
    hr.push_back({host_ids[s], 1});
  }
  append_plan device_step = device.plan_append(dr);
  append_plan host_step = host.plan_append(hr);
  // The step's new K/V (fp16 on the device, the same values as floats on the host).
  std::vector<float> k(batch * 2 * 128), v(k.size()), q(batch * 8 * 128);
  for (float& x : k) x = numeric::fp16_to_float(numeric::fp16_from_float(normal(rng)));
  for (float& x : v) x = numeric::fp16_to_float(numeric::fp16_from_float(normal(rng)));
  for (float& x : q) x = normal(rng);
  std::vector<std::uint16_t> k16(k.size()), v16(v.size());
  for (std::size_t i = 0; i < k.size(); ++i) {
    k16[i] = numeric::fp16_from_float(k[i]);
    v16[i] = numeric::fp16_from_float(v[i]);
  }
  std::uint16_t* k_device = to_device(k16);
  std::uint16_t* v_device = to_device(v16);
  float* q_device = to_device(q);
  float* out_device = to_device(std::vector<float>(layers * q.size()));
  float* lse_device = to_device(std::vector<float>(layers * batch * 8));
  const page_table_csr table = device.step_table(device_step, 0);
  // The step's table and new-token offsets, uploaded once for every layer.
  const std::vector<std::int64_t> token_indptr{0, 1, 2, 3};
  kvc::cuda::device_page_table arrays;
  arrays.upload(table, nullptr, token_indptr.data());
  attention::decode_plan plan;
  kvc::cuda::plan_decode<shape>(device.view(0, table), 8, plan);
  kvc::cuda::device_decode_plan device_plan;
  device_plan.upload(plan, nullptr);  // allocated before the capture: none inside it
  cudaDeviceSynchronize();
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  cudaGraph_t graph;
  cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
  for (int l = 0; l < layers; ++l) {
    const paged_layer_view view = arrays.view(device.view(l, table));
    const kvc::kernels::append_work work = kvc::kernels::make_append_work(
        view, arrays.token_indptr(), fp16_input(k_device, batch, 2, 128),
        fp16_input(v_device, batch, 2, 128), 1);
    kvc::cuda::append<fp16, fp16, fp16>(work, stream);
    kvc::cuda::decode<shape>(plan, device_plan, view, q_device, out_device + l * q.size(),
                             lse_device + l * batch * 8, attention::attention_params_of<spec>(),
                             stream);
  }
  const cudaError_t captured = cudaStreamEndCapture(stream, &graph);
  cudaGraphExec_t exec{};
  const cudaError_t made =
      captured == cudaSuccess ? cudaGraphInstantiate(&exec, graph, 0) : captured;
  const cudaError_t ran = made == cudaSuccess ? cudaGraphLaunch(exec, stream) : made;
  const cudaError_t status = ran == cudaSuccess ? cudaStreamSynchronize(stream) : ran;
  const paged_layer_view kept = arrays.view(device.view(0, table));
  for (int l = 0; l < layers; ++l) device.mark_written(device_step, l);
  device.commit(device_step);
  int bad = status != cudaSuccess;
  // The step's device views are stale once it is committed: both launchers refuse them.
  int refused = 0;
  try {
    kvc::cuda::decode<shape>(plan, device_plan, kept, q_device, out_device, lse_device,
                             attention::attention_params_of<spec>(), stream);
  } catch (const cache_error& e) {
    refused += e.code() == cache_errc::stale_table;
  }
  try {
    kvc::cuda::append<fp16, fp16, fp16>(
        kvc::kernels::make_append_work(kept, arrays.token_indptr(),
                                       fp16_input(k_device, batch, 2, 128),
                                       fp16_input(v_device, batch, 2, 128)),
        stream);
  } catch (const cache_error& e) {
    refused += e.code() == cache_errc::stale_table;
  }
  std::printf("%s stale device views refused by decode and append\n", refused == 2 ? "ok" : "FAIL");
  failures += refused != 2;
  const std::vector<float> out = to_host(out_device, layers * q.size());
  const std::vector<float> lse = to_host(lse_device, static_cast<std::size_t>(layers) * batch * 8);
  for (int l = 0; l < layers; ++l) {
    host.write(host_step, l, fp32_input(k.data(), batch, 2, 128),
               fp32_input(v.data(), batch, 2, 128));
    const page_table_csr host_table = host.step_table(host_step, l);
    const paged_layer_view host_view = host.view(l, host_table);
    const cpu::decode_plan host_plan = cpu::plan_decode(host_view, 8, 1);
    cpu::decode_workspace workspace;
    std::vector<float> host_out(q.size()), host_lse(batch * 8);
    cpu::decode(host_plan, host_view, q.data(), host_out.data(), host_lse.data(),
                attention::attention_params_of<spec>(), workspace, cpu::serial(), portable_cpu());
    bad +=
        compare(std::vector<float>(out.begin() + l * q.size(), out.begin() + (l + 1) * q.size()),
                host_out) +
        compare(std::vector<float>(lse.begin() + l * batch * 8, lse.begin() + (l + 1) * batch * 8),
                host_lse);
  }
  host.commit(host_step);
  std::printf("%s a 4-layer decode step as one CUDA graph: %s\n", bad ? "FAIL" : "ok",
              status != cudaSuccess ? cudaGetErrorString(status)
                                    : (std::to_string(bad) + " values differ").c_str());
  failures += bad > 0;
  if (made == cudaSuccess) cudaGraphExecDestroy(exec);
  if (captured == cudaSuccess) cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(k_device);
  cudaFree(v_device);
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  for (const int min_split : {64, 4096}) {
    check_dtype<storage<fp32>>(min_split);
    check_dtype<storage<fp16>>(min_split);
    check_dtype<storage<bf16>>(min_split);
    check_dtype<storage<fp8_e4m3>>(min_split);
    check_dtype<storage<fp8_e5m2>>(min_split);
    check_dtype<storage<int8>>(min_split);
    check_dtype<storage<kvc::int4>>(min_split);
    check_dtype<storage<int8, fp16>>(min_split);
    check_dtype<storage<kvc::int4, fp8_e4m3>>(min_split);
  }
  check_layer<gpt2_shape<storage<fp16>>>("group 1 (MHA) fp16", {1, 17, 700}, 64);
  check_layer<qwen_shape<storage<bf16>>>("group 7 bf16", {64, 5, 900}, 64);
  // Groups of 4 opted into the tensor cores (kernels::tensor_core_block).
  check_layer<llama_shape<storage<fp8_e4m3>>, paged<16>,
              kernels::tensor_core_block<
                  kernels::decode_shape_of<llama_shape<storage<fp8_e4m3>>, paged<16>>>>(
      "group 4 fp8 e4m3, tensor cores by choice", {1, 100, 1500}, 64);
  check_layer<
      llama_shape<storage<int8>>, paged<16>,
      kernels::tensor_core_block<kernels::decode_shape_of<llama_shape<storage<int8>>, paged<16>>>>(
      "group 4 int8, tensor cores by choice, split", {1, 100, 1500}, 16);
  check_layer<group8_shape<storage<int8>>>("group 8, d48 int8", {33, 400}, 64);
  check_layer<layer<gqa<16, 2>, head_dim<128>, storage<fp16>>>("group 8 d128 fp16", {33, 400}, 64);
  check_layer<mistral_shape<storage<fp16>>>("sliding window 40", {39, 40, 41, 530}, 64);
  check_layer<gemma2_shape<storage<bf16>>>("window 24, soft-cap, scale", {10, 47, 300}, 64);
  check_layer<gemma3_shape<storage<fp8_e4m3>>>("MQA window 20", {21, 296}, 64);
  check_layer<llama4_shape<storage<int8>>>("chunked 24", {23, 24, 25, 48, 49, 300}, 64);
  check_layer<streaming_shape<storage<kvc::int4>>, paged<4>>("streaming 4 + 20, pages of 4",
                                                             {1, 2, 4, 5, 24, 25, 290}, 16);
  check_layer<gpt_oss_shape<storage<bf16>>>("learned sinks, window 32", {1, 31, 32, 33, 520}, 16,
                                            {0.5f, -1.0f, 3.0f, 0.0f, 10.0f, -5.0f, 1.0f, 2.0f});
  check_layer<deepseek_shape<storage<fp8_e4m3>>>("MLA 64 + 16 fp8, 16 heads", {1, 40, 370}, 64);
  check_layer<deepseek_shape<storage<fp16>>>("MLA 64 + 16 fp16, 16 heads", {1, 40, 370}, 64);
  check_layer<deepseek_shape<storage<bf16>>>("MLA 64 + 16 bf16, 16 heads", {1, 40, 370}, 64);
  check_layer<models::mla_layer<128>, paged<64>>("DeepSeek V3 MLA 512 + 64, 128 heads",
                                                 {1, 100, 1500}, 64);
  check_layer<models::mla_layer<64>>("Kimi K2 MLA, 64 heads, split", {700, 33}, 32);
#if defined(KVC_DEVICE_WGMMA)
  // The warpgroup MLA decode (sm_90a: built where CMAKE_CUDA_ARCHITECTURES has 90a), on a
  // compute capability 9.0 device.
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  if (properties.major == 9 && properties.minor == 0) {
    // The two layers above ran the warpgroup kernel (their default in sm_90a code); the opt-in
    // runs it too, and a tensor_core_block keeps mma.sync.
    using v3_shape = kernels::decode_shape_of<models::mla_layer<128>, paged<64>>;
    check_layer<models::mla_layer<128>, paged<64>, kernels::warpgroup_decode_block<v3_shape>>(
        "DeepSeek V3 MLA 512 + 64, 128 heads, warpgroups", {1, 100, 1500}, 64);
    check_layer<models::mla_layer<128>, paged<64>, kernels::tensor_core_block<v3_shape>>(
        "DeepSeek V3 MLA 512 + 64, 128 heads, mma.sync", {1, 100, 1500}, 64);
    using k2_shape = kernels::decode_shape_of<models::mla_layer<64>, paged<16>>;
    check_layer<models::mla_layer<64>, paged<16>, kernels::tensor_core_block<k2_shape>>(
        "Kimi K2 MLA, 64 heads, split, mma.sync", {700, 33}, 32);
  } else {
    std::printf("warpgroup MLA decode: not run on compute capability %d.%d\n", properties.major,
                properties.minor);
  }
#endif
  check_layer<layer<mqa<128>, latent<512, 64>, storage<fp8_e4m3>, inv_sqrt_scale<192>>, paged<64>>(
      "DeepSeek V3 MLA fp8, 128 heads, split", {1, 100, 1500}, 64);
  check_layer<layer<gqa<32, 2>, head_dim<128>, storage<int8>>>("group 16 d128 int8", {1, 100, 900},
                                                               64);
  check_layer<layer<gqa<32, 2>, head_dim<128>, storage<bf16>>>("group 16 d128 bf16", {1, 100, 900},
                                                               64);
  check_layer<layer<gqa<24, 2>, head_dim<64>, sliding_window<40>, storage<fp16>, learned_sinks>>(
      "group 12 d64 fp16, window 40, learned sinks", {1, 39, 40, 41, 300}, 16,
      std::vector<float>(24, 0.5f));
  check_layer<group6_shape<storage<fp16>>, paged<48, page_layout::hnd>>("HND pages of 48",
                                                                        {47, 48, 530}, 64);
  check_layer<llama_shape<storage<int8>>>("in an open step int8", {30, 16, 500}, 64, {}, true);
  check_layer<mistral_shape<storage<bf16>>>("in an open step, window", {39, 40, 300}, 64, {}, true);
  check_graph_step();
  std::printf("%s\n", failures == 0 ? "all passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
