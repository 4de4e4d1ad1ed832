#pragma once
// Decode on the GPU with the device kernels (kernels/decode.hpp): plan once per batch, then
// launch for every layer of the group.
//
//   using shape = kvc::kernels::decode_shape_of<llama3_8b_layer, paged<16>>;
//   kvc::cuda::plan_decode<shape>(view, q_heads, plan);        // host, once per batch
//   device_plan.upload(plan, stream);                          // once per batch
//   kvc::cuda::decode<shape>(plan, device_plan, view, q, out, lse, params, stream);  // per layer
//
// The plan splits a sequence only when the batch does not fill the device (the occupancy
// API says how many decode blocks it holds: attention::plan_decode_for_slots). A
// device_decode_plan holds the plan's arrays and the split-K workspace in device memory; it
// allocates only in upload() or reserve(), when a plan needs more than it has. decode()
// neither allocates nor synchronizes: two kernel launches queued on `stream` (the merge
// only when the plan splits a sequence), so a step can be captured in a CUDA graph. A
// shape, plan or buffer that does not fit throws kvc::cache_error before anything is
// launched (kernels::make_decode_work); CUDA errors throw std::runtime_error.
//
// q, out and lse, the view's page memory and its table arrays are device memory (a cache
// with kvc::cuda::device_allocator; the table uploaded with kvc::cuda::device_page_table).
// q is an attention::query_rows: a sequence's row of q_heads x k_dim floats may sit
// token_stride floats after the last one, as in a fused QKV projection ([batch][q + 2 kv
// heads][dim]), and is read in place.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cuda/launch.cuh"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::cuda {

namespace detail {
template <class Kernel>
std::size_t decode_shared_bytes(int device) {
  if constexpr (requires { Kernel::sm90a_shared_bytes; }) {
    if (device < 0) check_launch(cudaGetDevice(&device), "cudaGetDevice");
    int limit = 0;
    check_launch(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                 "cudaDeviceGetAttribute (shared memory a block)");
    if (static_cast<std::size_t>(limit) >= Kernel::sm90a_shared_bytes)
      return Kernel::sm90a_shared_bytes;
  }
  return Kernel::shared_bytes;
}
}  // namespace detail

/// The dynamic shared memory decode<Shape, Block> is launched with on `device` (the current
/// one by default): the kernel's shared_bytes, or for a kernel whose sm_90a code needs more
/// (kernels::decode_mma_or_wgmma) that where the device's opt-in limit allows it, as on every
/// compute capability 9.0 device. What plan_decode and decode use; a launch of one's own
/// gives the kernel this much (its sm_90a code traps on less).
template <class Shape, class Block = kernels::decode_block<Shape>>
std::size_t decode_shared_bytes(int device = -1) {
  return detail::decode_shared_bytes<kernels::decode<Shape, Block>>(device);
}

/// Returns the decode blocks the device runs at once: its SM count times the blocks of the shape's
/// decode kernel an SM holds (the occupancy API on the compiled kernel).
template <class Shape, class Block = kernels::decode_block<Shape>>
int decode_blocks_at_once(int device = -1) {
  if (device < 0) detail::check_launch(cudaGetDevice(&device), "cudaGetDevice");
  int sms = 0;
  detail::check_launch(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                       "cudaDeviceGetAttribute (SM count)");
  using kernel = kernels::decode<Shape, Block>;
  const int per_sm =
      resident_blocks<Block, kernel>(detail::decode_shared_bytes<kernel>(device), device);
  return sms * (per_sm > 0 ? per_sm : 1);
}

/// Plans a batch for the current device (kernels::plan_device_decode): split only
/// when the batch does not fill the device, no split shorter than min_split_tokens.
template <class Shape, class Block = kernels::decode_block<Shape>>
void plan_decode(const paged_layer_view& view, int q_heads, attention::decode_plan& plan,
                 int min_split_tokens = 64) {
  kernels::plan_device_decode<Shape, Block>(view, q_heads, decode_blocks_at_once<Shape, Block>(),
                                            plan, min_split_tokens, "kvc::cuda::plan_decode");
}

/// A plan's arrays and its split-K workspace in device memory.
class device_decode_plan {
 public:
  device_decode_plan() = default;
  device_decode_plan(const device_decode_plan&) = delete;
  device_decode_plan& operator=(const device_decode_plan&) = delete;
  device_decode_plan(device_decode_plan&& other) noexcept { swap(other); }
  device_decode_plan& operator=(device_decode_plan&& other) noexcept {
    swap(other);
    return *this;
  }
  ~device_decode_plan() {
    cudaFree(arrays_);
    cudaFree(workspace_);
  }

  /// Makes room for plans of up to `items` items, `batch` sequences and `workspace_floats`
  /// floats of partial results, ahead of the step.
  void reserve(std::size_t items, std::size_t batch, std::size_t workspace_floats) {
    const std::size_t bytes = array_bytes(items, batch);
    if (bytes > array_capacity_) {
      void* memory = nullptr;
      detail::check_launch(cudaMalloc(&memory, bytes), "cudaMalloc (decode plan)");
      cudaFree(arrays_);
      arrays_ = static_cast<std::byte*>(memory);
      array_capacity_ = bytes;
    }
    if (workspace_floats > workspace_capacity_) {
      void* memory = nullptr;
      detail::check_launch(cudaMalloc(&memory, workspace_floats * sizeof(float)),
                           "cudaMalloc (decode workspace)");
      cudaFree(workspace_);
      workspace_ = static_cast<float*>(memory);
      workspace_capacity_ = workspace_floats;
    }
  }

  /// Copies the plan's arrays to the device on `stream` (from pageable memory: the plan may
  /// change once the call returns). Launches that use it must be on the same stream, or
  /// ordered after it.
  void upload(const attention::decode_plan& plan, cudaStream_t stream) {
    const std::size_t items = plan.items.size(), batch = plan.splits.size();
    reserve(items, batch, plan.workspace_floats());
    const std::size_t item_bytes = items * sizeof(attention::decode_plan::item);
    const std::size_t batch_bytes = batch * sizeof(std::int32_t);
    if (items > 0)
      detail::check_launch(
          cudaMemcpyAsync(arrays_, plan.items.data(), item_bytes, cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync (decode plan)");
    if (batch > 0) {
      detail::check_launch(
          cudaMemcpyAsync(arrays_ + first_item_offset(items), plan.first_item.data(), batch_bytes,
                          cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync (decode plan)");
      detail::check_launch(
          cudaMemcpyAsync(arrays_ + splits_offset(items, batch), plan.splits.data(), batch_bytes,
                          cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync (decode plan)");
    }
    serial_ = plan.table_serial;
    group_ = plan.layer_group;
    items_ = items;
    batch_ = batch;
  }

  /// Returns whether the arrays on the device are those of `plan` (the last upload was of it).
  bool holds(const attention::decode_plan& plan) const {
    return arrays_ != nullptr && serial_ == plan.table_serial && group_ == plan.layer_group &&
           items_ == plan.items.size() && batch_ == plan.splits.size();
  }

  kernels::decode_plan_arrays arrays() const {
    return {reinterpret_cast<const attention::decode_plan::item*>(arrays_),
            reinterpret_cast<const std::int32_t*>(arrays_ + first_item_offset(items_)),
            reinterpret_cast<const std::int32_t*>(arrays_ + splits_offset(items_, batch_))};
  }
  float* workspace() const { return workspace_; }

 private:
  static std::size_t first_item_offset(std::size_t items) {
    return items * sizeof(attention::decode_plan::item);
  }
  static std::size_t splits_offset(std::size_t items, std::size_t batch) {
    return first_item_offset(items) + batch * sizeof(std::int32_t);
  }
  static std::size_t array_bytes(std::size_t items, std::size_t batch) {
    return splits_offset(items, batch) + batch * sizeof(std::int32_t);
  }
  void swap(device_decode_plan& other) noexcept {
    std::swap(arrays_, other.arrays_);
    std::swap(array_capacity_, other.array_capacity_);
    std::swap(workspace_, other.workspace_);
    std::swap(workspace_capacity_, other.workspace_capacity_);
    std::swap(serial_, other.serial_);
    std::swap(group_, other.group_);
    std::swap(items_, other.items_);
    std::swap(batch_, other.batch_);
  }

  std::byte* arrays_ = nullptr;
  std::size_t array_capacity_ = 0;
  float* workspace_ = nullptr;
  std::size_t workspace_capacity_ = 0;
  std::uint64_t serial_ = 0;
  std::int32_t group_ = -1;
  std::size_t items_ = 0, batch_ = 0;
};

/// One layer's decode on `stream`: out [batch][q_heads][v_dim] and lse [batch][q_heads]
/// (natural log), in device memory.
template <class Shape, class Block = kernels::decode_block<Shape>,
          class MergeBlock = kernels::block_shape<128>>
void decode(const attention::decode_plan& plan, const device_decode_plan& device_plan,
            const paged_layer_view& view, attention::query_rows q, float* out, float* lse,
            const attention::attention_params& params, cudaStream_t stream) {
  kvc::detail::require(device_plan.holds(plan), cache_errc::plan_mismatch,
                       "kvc::cuda::decode: the device plan holds another plan; upload() it first");
  const kernels::decode_work work =
      kernels::make_decode_work<Shape>(plan, device_plan.arrays(), view, q, out, lse, params,
                                       device_plan.workspace(), "kvc::cuda::decode");
  if (work.items == 0) return;
  using kernel = kernels::decode<Shape, Block>;
  launch(kernels::decode_grid<Shape, Block>(work), Block{}, detail::decode_shared_bytes<kernel>(-1),
         stream, kernel{work});
  if (work.split_sequences > 0)
    launch(kernels::merge_grid(work), MergeBlock{}, 0, stream, kernels::merge<Shape::v_dim>{work});
}

}  // namespace kvc::cuda
