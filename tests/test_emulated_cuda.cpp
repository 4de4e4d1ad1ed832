// The CUDA runtime emulated on the host (kvc::cuda_emulated): code written against kvc::cuda,
// built by the host compiler, runs its kernels in the SIMT emulator. kvc::cuda::decode gives
// simt::decode's bits; a captured graph runs nothing until it is launched, and replays, and
// an executable graph takes an update of the same nodes (cudaGraphExecUpdate); the
// runtime refuses what CUDA refuses (a wait on a capturing stream, freeing memory it did not
// allocate); the launchers' refusals (a stale view) reach the caller as on a GPU.

#include <cuda_runtime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/backend/cuda/page_table.cuh"
#include "kvc/backend/simt/decode.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/config.hpp"

using namespace kvc;

namespace {

using tested_layer = layer<gqa<4, 2>, head_dim<64>, storage<fp16>>;
struct one_layer : model<1, tested_layer> {};
using shape = kernels::decode_shape_of<tested_layer, paged<16>>;

template <class T>
T* device_copy(const std::vector<T>& host) {
  T* device = nullptr;
  REQUIRE(cudaMalloc(&device, host.size() * sizeof(T)) == cudaSuccess);
  REQUIRE(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) ==
          cudaSuccess);
  return device;
}

}  // namespace

TEST_CASE("emulated CUDA: kvc::cuda::decode, captured in a graph, gives simt::decode's bits") {
  kv_cache<one_layer, paged<16>, cuda::device_allocator> cache(capacity_pages{16});
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const std::vector<sequence_id> ids{cache.add_sequence(), cache.add_sequence()};
  std::vector<float> k(120 * 2 * 64), v(k.size()), q(2 * 4 * 64);
  for (auto* x : {&k, &v, &q})
    for (float& e : *x) e = normal(rng);
  const std::vector<append_request> batch{{ids[0], 100}, {ids[1], 20}};
  const layer_input in{0, fp32_input(k.data(), 120, 2, 64), fp32_input(v.data(), 120, 2, 64)};
  cache.append(batch, {&in, 1});  // through the allocator's upload: cudaMemcpyAsync

  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view host_view = cache.view(0, table);
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  cuda::device_page_table device_table;
  device_table.upload(table, stream);
  const paged_layer_view view = device_table.view(host_view);
  attention::decode_plan plan;
  cuda::plan_decode<shape>(view, 4, plan);
  REQUIRE(plan.items.size() > 2);  // the 132 emulated SMs split the sequences: merge runs too
  cuda::device_decode_plan device_plan;
  device_plan.upload(plan, stream);
  float* q_device = device_copy(q);
  float* out_device = device_copy(std::vector<float>(q.size(), -1.0f));
  float* lse_device = device_copy(std::vector<float>(8, -1.0f));
  const auto params = attention::attention_params_of<tested_layer>();

  // A wait inside a capture fails and spoils the capture, as in CUDA.
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudaStreamSynchronize(stream) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaGetLastError() == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamEndCapture(stream, &graph) == cudaErrorStreamCaptureInvalidated);
  CHECK(graph == nullptr);
  CHECK(cudaGetLastError() == cudaErrorStreamCaptureInvalidated);  // else the next launch fails

  REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  cuda::decode<shape>(plan, device_plan, view, q_device, out_device, lse_device, params, stream);
  REQUIRE(cudaStreamEndCapture(stream, &graph) == cudaSuccess);
  std::vector<float> out(q.size()), lse(8);
  REQUIRE(cudaMemcpy(out.data(), out_device, out.size() * sizeof(float), cudaMemcpyDeviceToHost) ==
          cudaSuccess);
  CHECK(out == std::vector<float>(q.size(), -1.0f));  // recorded, not run

  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, stream) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  REQUIRE(cudaMemcpy(out.data(), out_device, out.size() * sizeof(float), cudaMemcpyDeviceToHost) ==
          cudaSuccess);
  REQUIRE(cudaMemcpy(lse.data(), lse_device, lse.size() * sizeof(float), cudaMemcpyDeviceToHost) ==
          cudaSuccess);

  // The same kernels through the emulator's own entry point, over the host table.
  attention::decode_workspace workspace;
  std::vector<float> expected(q.size()), expected_lse(8);
  simt::decode<shape>(plan, host_view, q.data(), expected.data(), expected_lse.data(), params,
                      workspace);
  CHECK(out == expected);
  CHECK(lse == expected_lse);

  // A replay writes the same again.
  REQUIRE(cudaMemset(out_device, 0, out.size() * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, stream) == cudaSuccess);
  REQUIRE(cudaMemcpy(out.data(), out_device, out.size() * sizeof(float), cudaMemcpyDeviceToHost) ==
          cudaSuccess);
  CHECK(out == expected);

  // The launcher's checks run on the host, as on a GPU: a view kept across an append is stale.
  const std::vector<append_request> one{{ids[1], 1}};
  const layer_input next{0, fp32_input(k.data(), 1, 2, 64), fp32_input(v.data(), 1, 2, 64)};
  cache.append(one, {&next, 1});
  try {
    cuda::decode<shape>(plan, device_plan, view, q_device, out_device, lse_device, params, stream);
    FAIL("a stale view was launched");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::stale_table);
  }

  int not_ours = 0;
  CHECK(cudaFree(&not_ours) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);  // read once, then cleared
  cudaGraph_t no_graph = nullptr;
  CHECK(cudaStreamEndCapture(stream, &no_graph) == cudaErrorStreamCaptureUnmatched);
  CHECK(cudaGetLastError() == cudaErrorStreamCaptureUnmatched);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
  cudaStreamDestroy(stream);
}

namespace {
struct fill_rows {
  float* out;
  float value;
  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    out[ctx.block_idx().x * 32 + ctx.thread_rank()] = value;
  }
};
}  // namespace

TEST_CASE(
    "emulated CUDA: an executable graph takes a new capture of the same nodes in place, and "
    "refuses other nodes unchanged") {
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
  float* out = device_copy(std::vector<float>(64, 0.0f));
  const auto capture = [&](unsigned blocks, float value, bool then_clear) {
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cuda::launch(kernels::dims3{blocks, 1, 1}, kernels::block_shape<32>{}, 0, stream,
                 fill_rows{out, value});
    if (then_clear) REQUIRE(cudaMemsetAsync(out, 0, 64 * sizeof(float), stream) == cudaSuccess);
    REQUIRE(cudaStreamEndCapture(stream, &graph) == cudaSuccess);
    return graph;
  };
  const auto run = [&](cudaGraphExec_t exec) {
    REQUIRE(cudaMemset(out, 0, 64 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, stream) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    std::vector<float> host(64);
    REQUIRE(cudaMemcpy(host.data(), out, 64 * sizeof(float), cudaMemcpyDeviceToHost) ==
            cudaSuccess);
    return host;
  };
  std::vector<float> ones(64, 0.0f);
  std::fill(ones.begin(), ones.begin() + 32, 1.0f);

  cudaGraph_t graph = capture(1, 1.0f, false);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  cudaGraphDestroy(graph);  // the executable graph has its own copy
  CHECK(run(exec) == ones);

  // The same kernel over another grid with another argument: updated in place.
  graph = capture(2, 2.0f, false);
  cudaGraphExecUpdateResultInfo info{};
  CHECK(cudaGraphExecUpdate(exec, graph, &info) == cudaSuccess);
  CHECK(info.result == cudaGraphExecUpdateSuccess);
  cudaGraphDestroy(graph);
  CHECK(run(exec) == std::vector<float>(64, 2.0f));

  // One node more, or a node of another type: refused, the executable graph as it was.
  graph = capture(2, 3.0f, true);
  CHECK(cudaGraphExecUpdate(exec, graph, &info) == cudaErrorGraphExecUpdateFailure);
  CHECK(info.result == cudaGraphExecUpdateErrorTopologyChanged);
  CHECK(cudaGetLastError() == cudaErrorGraphExecUpdateFailure);
  cudaGraphDestroy(graph);
  REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(out, 0, 64 * sizeof(float), stream) == cudaSuccess);
  REQUIRE(cudaStreamEndCapture(stream, &graph) == cudaSuccess);
  CHECK(cudaGraphExecUpdate(exec, graph, &info) == cudaErrorGraphExecUpdateFailure);
  CHECK(info.result == cudaGraphExecUpdateErrorNodeTypeChanged);
  cudaGraphDestroy(graph);
  // Left unread, the refusal fails the next launch, as kvc::cuda::launch reads
  // cudaGetLastError on a GPU; then it is read.
  CHECK_THROWS_WITH(cuda::launch(kernels::dims3{1, 1, 1}, kernels::block_shape<32>{}, 0, stream,
                                 fill_rows{out, 4.0f}),
                    Catch::Contains("the graph update was not performed"));
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(run(exec) == std::vector<float>(64, 2.0f));
  CHECK(cudaGraphExecUpdate(exec, nullptr, &info) == cudaErrorInvalidValue);
  (void)cudaGetLastError();

  cudaGraphExecDestroy(exec);
  cudaFree(out);
  cudaStreamDestroy(stream);
}

namespace {
using latent_layer = layer<mqa<64>, latent<512, 64>, storage<bf16>, inv_sqrt_scale<192>>;
struct latent_model : model<1, latent_layer> {};
using latent_shape = kernels::decode_shape_of<latent_layer, paged<16>>;
using latent_kernel = kernels::decode<latent_shape>;

// Restores the emulated device's settings whatever the test does.
struct emulated_target {
  simt::emulated_cuda::device_settings saved = simt::emulated_cuda::settings();
  explicit emulated_target(const simt::architecture& target) {
    simt::emulated_cuda::settings().target = target;
  }
  emulated_target(const emulated_target&) = delete;
  emulated_target& operator=(const emulated_target&) = delete;
  ~emulated_target() { simt::emulated_cuda::settings() = saved; }
};
}  // namespace

TEST_CASE(
    "emulated CUDA: a latent of 64 heads gets the warpgroup kernel's shared memory where "
    "the device gives it, and runs on sm_80's") {
  // Its kernel is decode_mma_or_wgmma: the warpgroup decode in sm_90a code, which needs
  // Hopper's shared memory; mma.sync in any other code, here too.
  STATIC_REQUIRE(kernels::decode_wgmma_in_sm90a_code<latent_shape>);
  STATIC_REQUIRE(latent_kernel::sm90a_shared_bytes > simt::sm_80.max_shared_bytes_per_block);
  STATIC_REQUIRE(latent_kernel::shared_bytes <= simt::sm_80.max_shared_bytes_per_block);
  kv_cache<latent_model, paged<16>, cuda::device_allocator> cache(capacity_pages{8});
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  const std::vector<sequence_id> ids{cache.add_sequence()};
  std::vector<float> k(40 * 576), q(64 * 576);
  for (auto* x : {&k, &q})
    for (float& e : *x) e = normal(rng);
  const append_request request{ids[0], 40};
  const layer_input in{0, fp32_input(k.data(), 40, 1, 576), kv_input{}};
  cache.append({&request, 1}, {&in, 1});
  const page_table_csr table = cache.page_table(0, ids);
  cuda::device_page_table device_table;
  device_table.upload(table, nullptr);
  const paged_layer_view view = device_table.view(cache.view(0, table));
  const auto params = attention::attention_params_of<latent_layer>();
  float* q_device = device_copy(q);
  float* out_device = device_copy(std::vector<float>(64 * 512));
  float* lse_device = device_copy(std::vector<float>(64));
  for (const simt::architecture& target : {simt::sm_90, simt::sm_80}) {
    const emulated_target on(target);
    CHECK(cuda::decode_shared_bytes<latent_shape>(0) ==
          (target.max_shared_bytes_per_block >= latent_kernel::sm90a_shared_bytes
               ? latent_kernel::sm90a_shared_bytes
               : latent_kernel::shared_bytes));
    attention::decode_plan plan;
    cuda::plan_decode<latent_shape>(view, 64, plan);
    cuda::device_decode_plan device_plan;
    device_plan.upload(plan, nullptr);
    // The emulator refuses a launch asking more shared memory than the target gives.
    CHECK_NOTHROW(cuda::decode<latent_shape>(plan, device_plan, view, q_device, out_device,
                                             lse_device, params, nullptr));
  }
  cudaFree(q_device);
  cudaFree(out_device);
  cudaFree(lse_device);
}
