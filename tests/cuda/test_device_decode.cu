// The decode kernels on a GPU (label gpu): a cache in device memory and a host cache with the
// same history; kvc::cuda::decode on the device against kvc::cpu::decode (its portable float
// path, itself checked against the reference by test_attention_decode) on the host, for every
// storage dtype, split and unsplit, within 1e-4 relative (fp32 arithmetic on both sides, in
// another order). Reports itself skipped where no GPU exists.

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "device_present.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/cache/kv_cache.hpp"

namespace {
using namespace kvc;

template <class T>
T* to_device(const std::vector<T>& host) {
  void* p = nullptr;
  if (cudaMalloc(&p, host.size() * sizeof(T) + 16) != cudaSuccess) std::abort();
  cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(p);
}

template <class Storage>
using shape_layer = layer<gqa<8, 2>, head_dim<128>, Storage>;

int failures = 0;

template <class Storage>
void check_dtype(int min_split_tokens) {
  using spec = shape_layer<Storage>;
  struct one : model<1, spec> {};
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  kv_cache<one, paged<16>, kvc::cuda::device_allocator> device(capacity_pages{256});
  kv_cache<one, paged<16>> host(capacity_pages{256});
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<sequence_id> device_ids, host_ids;
  for (const int tokens : {1, 100, 1500}) {
    std::vector<float> k(static_cast<std::size_t>(tokens) * 2 * 128), v(k.size());
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    const layer_input in{0, fp32_input(k.data(), tokens, 2, 128),
                         fp32_input(v.data(), tokens, 2, 128)};
    device_ids.push_back(device.add_sequence());
    host_ids.push_back(host.add_sequence());
    const append_request dr{device_ids.back(), tokens}, hr{host_ids.back(), tokens};
    device.append({&dr, 1}, {&in, 1});
    host.append({&hr, 1}, {&in, 1});
  }
  const page_table_csr host_table = host.page_table(0, host_ids);
  const page_table_csr device_table = device.page_table(0, device_ids);
  paged_layer_view view = device.view(0, device_table);
  view.indptr = to_device(device_table.indptr);
  view.indices = to_device(device_table.indices);
  view.last_page_len = to_device(device_table.last_page_len);
  view.seq_lens = to_device(device_table.seq_lens);
  std::vector<float> q(3 * 8 * 128);
  for (float& x : q) x = normal(rng);
  const auto params = attention::attention_params_of<spec>();

  attention::decode_plan plan;
  kvc::cuda::plan_decode<shape>(device.view(0, device_table), 8, plan, min_split_tokens);
  kvc::cuda::device_decode_plan device_plan;
  device_plan.upload(plan, nullptr);
  float* q_device = to_device(q);
  float* out_device = to_device(std::vector<float>(3 * 8 * 128));
  float* lse_device = to_device(std::vector<float>(3 * 8));
  kvc::cuda::decode<shape>(plan, device_plan, view, q_device, out_device, lse_device, params,
                           nullptr);
  std::vector<float> out(3 * 8 * 128), lse(3 * 8);
  cudaMemcpy(out.data(), out_device, out.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaMemcpy(lse.data(), lse_device, lse.size() * sizeof(float), cudaMemcpyDeviceToHost);
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::printf("FAIL %s: %s\n", dtype_name(Storage::k_type::id).data(),
                cudaGetErrorString(cudaGetLastError()));
    ++failures;
    return;
  }

  cpu::decode_plan host_plan = cpu::plan_decode(host.view(0, host_table), 8, 1);
  host_plan.vectorized = false;
  cpu::decode_workspace workspace;
  std::vector<float> host_out(out.size()), host_lse(lse.size());
  cpu::decode(host_plan, host.view(0, host_table), q.data(), host_out.data(), host_lse.data(),
              params, workspace, cpu::serial());
  int bad = 0;
  for (std::size_t i = 0; i < out.size(); ++i)
    bad += std::fabs(out[i] - host_out[i]) > 1e-4f * (1.0f + std::fabs(host_out[i]));
  for (std::size_t i = 0; i < lse.size(); ++i)
    bad += std::fabs(lse[i] - host_lse[i]) > 1e-4f * (1.0f + std::fabs(host_lse[i]));
  std::printf("%s %s (%zu items): %d values differ\n", bad ? "FAIL" : "ok",
              dtype_name(Storage::k_type::id).data(), plan.items.size(), bad);
  failures += bad > 0;
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
  cudaFree(const_cast<std::int32_t*>(view.indptr));
  cudaFree(const_cast<std::int32_t*>(view.indices));
  cudaFree(const_cast<std::int32_t*>(view.last_page_len));
  cudaFree(const_cast<std::int64_t*>(view.seq_lens));
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  for (const int min_split : {256, 4096}) {
    check_dtype<storage<fp32>>(min_split);
    check_dtype<storage<fp16>>(min_split);
    check_dtype<storage<bf16>>(min_split);
    check_dtype<storage<fp8_e4m3>>(min_split);
    check_dtype<storage<fp8_e5m2>>(min_split);
    check_dtype<storage<int8>>(min_split);
    check_dtype<storage<kvc::int4>>(min_split);
    check_dtype<storage<int8, fp16>>(min_split);
  }
  std::printf("%s\n", failures == 0 ? "all passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
