// serve_device: the miniature engine of examples/serve.cpp with its whole step on the device.
//
// The same requests, batching, chunked prefill, forks, speculative decoding with rollback,
// prefix reuse and logit checks as serve (examples/serve_engine.hpp), but the cache's pages
// are in device memory (kvc::cuda::device_allocator) and each step runs on one stream as one
// CUDA graph: the rows' embeddings, then per layer the decoder's fused q/k/v projection, the
// append kernel (the K and V slices of the projection, in place), the attention (the decode
// kernels when every sequence of the step has one new token, the extend kernels otherwise, over
// the step's view) and the o-projection with the MLP. The host uploads the step's tables and
// plans before the graph and reads the last hidden states back after it; the logits, sampling
// and checks stay on the host. The executable graph is kept from step to step: a step's
// capture updates it (cudaGraphExecUpdate) where only the kernels' arguments and grids changed,
// as from one decode step to the next, and is instantiated anew where the work differs.
//
// Built by nvcc as serve_cuda (examples/serve_device.cu), and by the host compiler against the
// emulated CUDA runtime as serve_emulated (kvc::cuda_emulated), where every kernel runs in the
// SIMT emulator: CI runs that one at a small size with the same logit checks.

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/backend/cuda/page_table.cuh"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/model/with_layer.hpp"
#include "serve_engine.hpp"

namespace serve {

// ---- the decoder's kernels: a block of d_model threads a row, a thread a column ----

using row_block = kvc::kernels::block_shape<d_model>;

// x[r] = the embedding of the row's token.
struct embed_rows {
  const float* embed;
  const int* tokens;
  float* x;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const std::size_t r = ctx.block_idx().x, j = ctx.thread_rank();
    x[r * d_model + j] = embed[static_cast<std::size_t>(tokens[r]) * d_model + j];
  }
};

// qkv[r] = RMS-normalized x[r] times W_qkv (decoder::qkv).
struct project_qkv {
  const float* x;
  const float* w;
  float* qkv;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const std::size_t r = ctx.block_idx().x;
    const float* row = x + r * d_model;
    const float mine = row[ctx.thread_rank()];
    const float squares = ctx.block_sum(mine * mine);
    const float inverse_rms = 1.0f / sqrtf(squares / static_cast<float>(d_model) + 1e-6f);
    for (std::size_t j = ctx.thread_rank(); j < qkv_width; j += ctx.block_threads()) {
      float sum = 0.0f;
      for (std::size_t i = 0; i < d_model; ++i) sum += row[i] * inverse_rms * w[i * qkv_width + j];
      qkv[r * qkv_width + j] = sum;
    }
  }
};

// x[r] += o[r] W_o, then x[r] += tanh(x[r] W_mlp) (decoder::finish_layer); x[r] is staged in
// shared memory between the two.
struct finish_rows {
  const float* o;
  const float* w_o;
  const float* w_mlp;
  float* x;
  static constexpr std::size_t shared_bytes = d_model * sizeof(float);

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    constexpr std::size_t o_width = std::size_t{q_heads} * head_dim;
    float* staged = ctx.template dynamic_shared<float>();
    const std::size_t r = ctx.block_idx().x, j = ctx.thread_rank();
    float sum = x[r * d_model + j];
    for (std::size_t i = 0; i < o_width; ++i) sum += o[r * o_width + i] * w_o[i * d_model + j];
    staged[j] = sum;
    ctx.sync();
    float h = 0.0f;
    for (std::size_t i = 0; i < d_model; ++i) h += staged[i] * w_mlp[i * d_model + j];
    x[r * d_model + j] = sum + tanhf(h);
  }
};

// ---- device memory ----

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("serve_device: ") + what + ": " +
                             cudaGetErrorString(status));
}

// Device memory for values of T that grows only when a step needs more than any before it.
template <class T>
class device_array {
 public:
  device_array() = default;
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  ~device_array() { cudaFree(data_); }

  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    void* grown = nullptr;
    check(cudaMalloc(&grown, n * sizeof(T)), "cudaMalloc");
    cudaFree(data_);
    data_ = static_cast<T*>(grown);
    capacity_ = n;
  }
  // Copies host values in (stream ordered; `host` must live until the stream has read it).
  void put(const T* host, std::size_t n, cudaStream_t stream) {
    reserve(n);
    check(cudaMemcpyAsync(data_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync");
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// ---- a step on the device ----

template <class Model>
class device_forward {
 public:
  using allocator = kvc::cuda::device_allocator;
  using cache_type = kvc::kv_cache<Model, paging, allocator>;
  static constexpr int layers = Model::num_layers;
  static constexpr auto layer_count = static_cast<std::size_t>(layers);
  static constexpr auto groups = static_cast<std::size_t>(cache_type::num_groups);

  // A window layer's step of n tokens attends over the step's view, whose pages must still
  // hold the window of its first token: a rollback reserve of n - 1 (a prefill chunk, or a
  // speculative step's drafts and the token before them).
  device_forward(const decoder<Model>& model, const options& o)
      : reserve_(std::max(o.draft, o.chunk - 1)) {
    // A blocking stream: it waits for the copies the cache makes on the default stream
    // (the pages a fork's writer copies first).
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    const auto upload = [&](device_array<float>& to, const std::vector<float>& from) {
      to.put(from.data(), from.size(), stream_);
    };
    upload(embed_, model.embed);
    for (std::size_t l = 0; l < layer_count; ++l) {
      upload(w_qkv_[l], model.w_qkv[l]);
      upload(w_o_[l], model.w_o[l]);
      upload(w_mlp_[l], model.w_mlp[l]);
    }
    check(cudaStreamSynchronize(stream_), "uploading the weights");
  }
  device_forward(const device_forward&) = delete;
  device_forward& operator=(const device_forward&) = delete;
  ~device_forward() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    cudaStreamDestroy(stream_);
  }

  std::int64_t reserve() const { return reserve_; }
  /// Steps whose graph was instantiated, and steps that updated the last one.
  std::int64_t graph_instantiations() const { return graph_instantiations_; }
  std::int64_t graph_updates() const { return graph_updates_; }

  void run(cache_type& cache, kvc::append_plan& plan, const step_rows& step,
           std::vector<float>& x) {
    const std::size_t rows = step.tokens.size();
    token_indptr_.assign(1, 0);
    std::int64_t most = 0;
    for (const kvc::append_request& r : step.requests) {
      token_indptr_.push_back(token_indptr_.back() + r.tokens);
      most = std::max(most, r.tokens);
    }
    const bool decoding = most == 1;
    tokens_.put(step.tokens.data(), rows, stream_);
    x_.reserve(rows * d_model);
    qkv_.reserve(rows * qkv_width);
    out_.reserve(rows * q_heads * head_dim);
    lse_.reserve(rows * q_heads);
    // Per layer group: the step's table, and the plan of the decode or of the extend.
    for (std::size_t g = 0; g < groups; ++g) {
      const int l = first_layer(g);
      cache.step_table(plan, l, tables_[g]);
      device_tables_[g].upload(tables_[g], stream_, token_indptr_.data());
      kvc::with_layer<Model>(l, [&]<class Layer>(std::type_identity<Layer>) {
        using shape = kvc::kernels::decode_shape_of<typename Layer::attention, paging>;
        const kvc::paged_layer_view view = cache.view(l, tables_[g]);
        if (decoding) {
          kvc::cuda::plan_decode<shape>(view, q_heads, decode_plans_[g]);
          device_decode_plans_[g].upload(decode_plans_[g], stream_);
        } else {
          kvc::cuda::plan_extend<shape>(view, token_indptr_, q_heads, extend_plans_[g]);
          device_extend_plans_[g].upload(extend_plans_[g], stream_);
        }
      });
    }
    check(cudaStreamSynchronize(stream_), "uploading the step");  // the graph holds kernels only

    cudaGraph_t graph = nullptr;
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "capture");
    const kvc::kernels::dims3 grid{static_cast<std::uint32_t>(rows), 1, 1};
    kvc::cuda::launch(grid, row_block{}, 0, stream_,
                      embed_rows{embed_.data(), tokens_.data(), x_.data()});
    for (int l = 0; l < layers; ++l) {
      const auto i = static_cast<std::size_t>(l);
      const auto g = static_cast<std::size_t>(cache_type::group_of_layer(l));
      kvc::cuda::launch(grid, row_block{}, 0, stream_,
                        project_qkv{x_.data(), w_qkv_[i].data(), qkv_.data()});
      attend(cache, l, g, rows, most, decoding);
      kvc::cuda::launch(grid, row_block{}, finish_rows::shared_bytes, stream_,
                        finish_rows{out_.data(), w_o_[i].data(), w_mlp_[i].data(), x_.data()});
    }
    check(cudaStreamEndCapture(stream_, &graph), "capture");
    if (exec_ != nullptr) {
      cudaGraphExecUpdateResultInfo update{};
      const cudaError_t updated = cudaGraphExecUpdate(exec_, graph, &update);
      if (updated == cudaSuccess) {
        ++graph_updates_;
      } else if (updated == cudaErrorGraphExecUpdateFailure) {
        // Other nodes than the last step's: a new executable graph. The refusal is read, or
        // the next launch would report it.
        (void)cudaGetLastError();
        cudaGraphExecDestroy(exec_);
        exec_ = nullptr;
      } else {
        cudaGraphDestroy(graph);
        check(updated, "cudaGraphExecUpdate");
      }
    }
    if (exec_ == nullptr) {
      cudaGraphExec_t made = nullptr;
      const cudaError_t status = cudaGraphInstantiate(&made, graph, 0);
      if (status != cudaSuccess) cudaGraphDestroy(graph);
      check(status, "cudaGraphInstantiate");
      exec_ = made;
      ++graph_instantiations_;
    }
    cudaGraphDestroy(graph);  // the executable graph holds its own copy of the work
    x.resize(rows * d_model);
    check(cudaGraphLaunch(exec_, stream_), "cudaGraphLaunch");
    check(cudaMemcpyAsync(x.data(), x_.data(), rows * d_model * sizeof(float),
                          cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "the step");
    // The kernels wrote every layer's new K/V, and the stream is done: commit may publish them.
    for (int l = 0; l < layers; ++l) cache.mark_written(plan, l);
  }

 private:
  // Layer l's append of the step's K/V (the slices of the fused projection, in place) and its
  // attention over the step's view.
  void attend(cache_type& cache, int l, std::size_t g, std::size_t rows, std::int64_t most,
              bool decoding) {
    const kvc::paged_layer_view host_view = cache.view(l, tables_[g]);
    const kvc::paged_layer_view view = device_tables_[g].view(host_view);
    const auto slice = [&](int first_head) {
      return kvc::kv_input{qkv_.data() + static_cast<std::size_t>(first_head) * head_dim,
                           kvc::dtype_id::fp32,
                           static_cast<std::int64_t>(rows),
                           kv_heads,
                           head_dim,
                           qkv_width};
    };
    kvc::with_layer<Model>(l, [&]<class Layer>(std::type_identity<Layer>) {
      using spec = typename Layer::attention;
      using shape = kvc::kernels::decode_shape_of<spec, paging>;
      kvc::cuda::append<typename spec::k_type, typename spec::v_type, kvc::fp32>(
          kvc::kernels::make_append_work(view, device_tables_[g].token_indptr(), slice(q_heads),
                                         slice(q_heads + kv_heads), most),
          stream_);
      const auto params = kvc::attention::attention_params_of<spec>();
      const kvc::attention::query_rows q{qkv_.data(), qkv_width};
      if (decoding)
        kvc::cuda::decode<shape>(decode_plans_[g], device_decode_plans_[g], view, q, out_.data(),
                                 lse_.data(), params, stream_);
      else
        kvc::cuda::extend<shape>(extend_plans_[g], device_extend_plans_[g], view, token_indptr_,
                                 device_tables_[g].token_indptr(), q, out_.data(), lse_.data(),
                                 params, stream_);
    });
  }

  static constexpr int first_layer(std::size_t g) {
    return cache_type::groups::value.info[g].first_layer;
  }

  std::int64_t reserve_;
  cudaStream_t stream_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  std::int64_t graph_instantiations_ = 0, graph_updates_ = 0;
  device_array<float> embed_;
  std::array<device_array<float>, layer_count> w_qkv_, w_o_, w_mlp_;
  // Kept from step to step: refilled, and grown only by a step larger than any before it.
  device_array<int> tokens_;
  device_array<float> x_, qkv_, out_, lse_;
  std::vector<std::int64_t> token_indptr_;
  std::array<kvc::page_table_csr, groups> tables_;
  std::array<kvc::cuda::device_page_table, groups> device_tables_;
  std::array<kvc::attention::decode_plan, groups> decode_plans_;
  std::array<kvc::cuda::device_decode_plan, groups> device_decode_plans_;
  std::array<kvc::kernels::extend_plan, groups> extend_plans_;
  std::array<kvc::cuda::device_extend_plan, groups> device_extend_plans_;
};

}  // namespace serve

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  try {
    return serve::serve_main<serve::device_forward>(argc, argv);
  } catch (const std::exception& e) {
    std::printf("CHECK FAILED: %s\n", e.what());
    return 1;
  }
}
