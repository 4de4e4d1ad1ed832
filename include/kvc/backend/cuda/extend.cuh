#pragma once
// Extend (prefill) on the GPU with the tensor-core kernels (kernels/extend.hpp picks one from
// the layer's shape): plan once per step, then launch for every layer of the group, after the
// step's K/V are appended.
//
//   using shape = kvc::kernels::decode_shape_of<llama3_8b_layer, paged<16>>;
//   kvc::cuda::plan_extend<shape>(view, token_indptr, q_heads, plan);   // host, once per step
//   device_plan.upload(plan, stream);                                   // once per step
//   kvc::cuda::extend<shape>(plan, device_plan, view, token_indptr,
//                            device_table.token_indptr(), q, out, lse, params, stream);
//
// The plan is made from the step's view with host arrays (cache.view(layer, table)); `view`
// in extend() is its device view (kvc::cuda::device_page_table uploaded with the step's
// token_indptr, as for the append kernel), token_indptr the same offsets on the host (the
// launcher checks them against the plan and reads nothing of the device view's arrays). extend()
// neither allocates nor synchronizes: one kernel launch queued on `stream`, so a step can be
// captured in a CUDA graph. A shape, plan or buffer that does not fit throws kvc::cache_error
// before anything is launched (kernels::make_extend_work); CUDA errors throw std::runtime_error.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/kernels/extend.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::cuda {

/// Plans a step for the extend kernel of Shape (kernels::plan_extend with its tile).
template <class Shape, class Block = kernels::extend_block<Shape>>
void plan_extend(const paged_layer_view& view, std::span<const std::int64_t> token_indptr,
                 int q_heads, kernels::extend_plan& plan) {
  kernels::plan_extend(view, token_indptr, q_heads, kernels::extend<Shape, Block>::rows, plan,
                       "kvc::cuda::plan_extend");
}

/// A plan's tiles in device memory.
class device_extend_plan {
 public:
  device_extend_plan() = default;
  device_extend_plan(const device_extend_plan&) = delete;
  device_extend_plan& operator=(const device_extend_plan&) = delete;
  device_extend_plan(device_extend_plan&& other) noexcept { swap(other); }
  device_extend_plan& operator=(device_extend_plan&& other) noexcept {
    swap(other);
    return *this;
  }
  ~device_extend_plan() { cudaFree(tiles_); }

  /// Makes room for plans of up to `tiles` tiles, ahead of the step.
  void reserve(std::size_t tiles) {
    if (tiles <= capacity_ && tiles_ != nullptr) return;
    void* memory = nullptr;
    detail::check_launch(
        cudaMalloc(&memory, (tiles > 0 ? tiles : 1) * sizeof(kernels::extend_tile)),
        "cudaMalloc (extend plan)");
    cudaFree(tiles_);
    tiles_ = static_cast<kernels::extend_tile*>(memory);
    capacity_ = tiles;
  }

  /// Copies the plan's tiles to the device on `stream` (from pageable memory: the plan may
  /// change once the call returns).
  void upload(const kernels::extend_plan& plan, cudaStream_t stream) {
    reserve(plan.tiles.size());
    if (!plan.tiles.empty())
      detail::check_launch(cudaMemcpyAsync(tiles_, plan.tiles.data(),
                                           plan.tiles.size() * sizeof(kernels::extend_tile),
                                           cudaMemcpyHostToDevice, stream),
                           "cudaMemcpyAsync (extend plan)");
    held_ = &plan;
    serial_ = plan.serial;
    count_ = plan.tiles.size();
  }

  /// Returns whether the tiles on the device are `plan`'s as it is now (uploaded since it was
  /// last planned).
  bool holds(const kernels::extend_plan& plan) const {
    return tiles_ != nullptr && held_ == &plan && serial_ == plan.serial &&
           count_ == plan.tiles.size();
  }
  const kernels::extend_tile* tiles() const { return tiles_; }

 private:
  void swap(device_extend_plan& other) noexcept {
    std::swap(tiles_, other.tiles_);
    std::swap(capacity_, other.capacity_);
    std::swap(held_, other.held_);
    std::swap(serial_, other.serial_);
    std::swap(count_, other.count_);
  }

  kernels::extend_tile* tiles_ = nullptr;
  std::size_t capacity_ = 0;
  const kernels::extend_plan* held_ = nullptr;
  std::uint64_t serial_ = 0;
  std::size_t count_ = 0;
};

/// One layer's extend on `stream`: out [new tokens][q_heads][v_dim] and lse [new
/// tokens][q_heads] (natural log), q, out, lse and device_token_indptr in device memory.
template <class Shape, class Block = kernels::extend_block<Shape>>
void extend(const kernels::extend_plan& plan, const device_extend_plan& device_plan,
            const paged_layer_view& view, std::span<const std::int64_t> token_indptr,
            const std::int64_t* device_token_indptr, attention::query_rows q, float* out,
            float* lse, const attention::attention_params& params, cudaStream_t stream) {
  using kernel = kernels::extend<Shape, Block>;
  kvc::detail::require(device_plan.holds(plan), cache_errc::plan_mismatch,
                       "kvc::cuda::extend: the device plan holds another plan; upload() it first");
  const kernels::extend_work work = kernels::make_extend_work<Shape>(
      plan, device_plan.tiles(), view, token_indptr, device_token_indptr, q, out, lse, params,
      kernel::rows, "kvc::cuda::extend");
  if (work.tile_count == 0) return;
  launch(kernels::extend_grid<Shape, Block>(work), Block{}, kernel::shared_bytes, stream,
         kernel{work});
}

}  // namespace kvc::cuda
