#pragma once
// A page table in device memory: uploaded once per step, it gives the device view of every
// layer of its group (the host view with the table's arrays swapped for the device's).
//
//   kvc::cuda::device_page_table device_table;                  // kept by the engine
//   device_table.upload(cache.step_table(plan, first_layer), stream);  // once per step
//   for (int layer : group_layers) {
//     const paged_layer_view view = device_table.view(cache.view(layer, table));
//     kvc::cuda::append<...>(kvc::kernels::make_append_work(view, ...), stream);
//     kvc::cuda::decode<shape>(decode_plan, device_plan, view, q, out, lse, params, stream);
//   }
//
// The device view keeps what the host view carries (the epoch and the cache's live epoch,
// the layer and its query heads), so that the launchers still refuse it once the cache has
// moved on (stale_table, docs/cache.md); view() refuses a host view of another table than the
// one uploaded (plan_mismatch). Memory grows in upload() only, when a table needs more than
// the last: a warm table allocates nothing, and the views can be captured in a CUDA graph.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "kvc/backend/cuda/launch.cuh"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"

namespace kvc::cuda {

class device_page_table {
 public:
  device_page_table() = default;
  device_page_table(const device_page_table&) = delete;
  device_page_table& operator=(const device_page_table&) = delete;
  device_page_table(device_page_table&& other) noexcept { swap(other); }
  device_page_table& operator=(device_page_table&& other) noexcept {
    swap(other);
    return *this;
  }
  ~device_page_table() { cudaFree(memory_); }

  /// Copies the table's arrays to the device on `stream` (from pageable memory: the table
  /// may change once the call returns). Launches that use its views must be on the same
  /// stream, or ordered after it. With `token_indptr` (batch + 1 offsets, a step's new rows
  /// per sequence: what make_append_work takes), uploads those as well.
  void upload(const page_table_csr& table, cudaStream_t stream,
              const std::int64_t* token_indptr = nullptr) {
    const auto batch = static_cast<std::size_t>(table.batch());
    const std::size_t pages = table.indices.size();
    serial_ = 0;  // holds no table until every copy is queued
    reserve(batch, pages);
    copy(indptr_offset(), table.indptr.data(), (batch + 1) * sizeof(std::int32_t), stream);
    copy(indices_offset(), table.indices.data(), pages * sizeof(std::int32_t), stream);
    copy(last_page_len_offset(), table.last_page_len.data(), batch * sizeof(std::int32_t), stream);
    copy(seq_lens_offset(), table.seq_lens.data(), batch * sizeof(std::int64_t), stream);
    if (token_indptr != nullptr)
      copy(token_indptr_offset(), token_indptr, (batch + 1) * sizeof(std::int64_t), stream);
    serial_ = table.serial;
    group_ = table.group;
    batch_ = batch;
    has_token_indptr_ = token_indptr != nullptr;
  }

  /// Returns the host view `host` (cache.view(layer, table) of the uploaded table) with the table's
  /// arrays in device memory. Throws plan_mismatch for a view of another table.
  paged_layer_view view(const paged_layer_view& host) const {
    kvc::detail::require(memory_ != nullptr && host.serial == serial_ && host.group == group_ &&
                             static_cast<std::size_t>(host.batch) <= batch_,
                         cache_errc::plan_mismatch,
                         "kvc::cuda::device_page_table::view: the view is of page table ",
                         host.serial, " of group ", host.group, ", the device holds table ",
                         serial_, " of group ", group_, "; upload() it first");
    paged_layer_view v = host;
    v.indptr = reinterpret_cast<const std::int32_t*>(memory_ + indptr_offset());
    v.indices = reinterpret_cast<const std::int32_t*>(memory_ + indices_offset());
    v.last_page_len = reinterpret_cast<const std::int32_t*>(memory_ + last_page_len_offset());
    v.seq_lens = reinterpret_cast<const std::int64_t*>(memory_ + seq_lens_offset());
    return v;
  }

  /// Returns the uploaded token_indptr (device memory), or null when the last upload had none.
  const std::int64_t* token_indptr() const {
    return has_token_indptr_
               ? reinterpret_cast<const std::int64_t*>(memory_ + token_indptr_offset())
               : nullptr;
  }

 private:
  // One allocation: seq_lens and token_indptr (8-byte values) first, then the 4-byte arrays.
  std::size_t seq_lens_offset() const { return 0; }
  std::size_t token_indptr_offset() const { return batch_capacity_ * sizeof(std::int64_t); }
  std::size_t indptr_offset() const {
    return token_indptr_offset() + (batch_capacity_ + 1) * sizeof(std::int64_t);
  }
  std::size_t last_page_len_offset() const {
    return indptr_offset() + (batch_capacity_ + 1) * sizeof(std::int32_t);
  }
  std::size_t indices_offset() const {
    return last_page_len_offset() + batch_capacity_ * sizeof(std::int32_t);
  }

  void reserve(std::size_t batch, std::size_t pages) {
    if (memory_ != nullptr && batch <= batch_capacity_ && pages <= page_capacity_) return;
    const std::size_t new_batch = batch > batch_capacity_ ? batch : batch_capacity_;
    const std::size_t new_pages = pages > page_capacity_ ? pages : page_capacity_;
    const std::size_t bytes = new_batch * sizeof(std::int64_t) +
                              (new_batch + 1) * (sizeof(std::int64_t) + sizeof(std::int32_t)) +
                              new_batch * sizeof(std::int32_t) + new_pages * sizeof(std::int32_t);
    void* memory = nullptr;
    detail::check_launch(cudaMalloc(&memory, bytes), "cudaMalloc (device page table)");
    cudaFree(memory_);
    memory_ = static_cast<std::byte*>(memory);
    batch_capacity_ = new_batch;
    page_capacity_ = new_pages;
  }

  void copy(std::size_t offset, const void* source, std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    detail::check_launch(
        cudaMemcpyAsync(memory_ + offset, source, bytes, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (device page table)");
  }

  void swap(device_page_table& other) noexcept {
    std::swap(memory_, other.memory_);
    std::swap(batch_capacity_, other.batch_capacity_);
    std::swap(page_capacity_, other.page_capacity_);
    std::swap(serial_, other.serial_);
    std::swap(group_, other.group_);
    std::swap(batch_, other.batch_);
    std::swap(has_token_indptr_, other.has_token_indptr_);
  }

  std::byte* memory_ = nullptr;
  std::size_t batch_capacity_ = 0, page_capacity_ = 0;
  std::uint64_t serial_ = 0;
  std::int32_t group_ = -1;
  std::size_t batch_ = 0;
  bool has_token_indptr_ = false;
};

}  // namespace kvc::cuda
