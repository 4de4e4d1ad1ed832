#pragma once
// The memory of a kv_cache: per layer group a page pool and one block of pages per layer of
// the group ([layer in group][page][page_bytes]), taken from the allocator when the cache is
// made and given back when it goes. It stores and loads one token's K/V (converting to and
// from the page's dtypes, through a host staging page when the memory is a device's) and
// copies a page in every layer (copy-on-write). Which page holds what is the cache's business.
//
//   detail::group_storage<Model, Paging, Allocator> storage(sizing.pages, allocator);
//   const page_id p = storage.pool(g).allocate();
//   storage.store_token(g, slot_in_group, p, token, k, v, row, 1 / k_scale, 1 / v_scale);

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kvc/cache/allocator.hpp"
#include "kvc/cache/cache_sizing.hpp"
#include "kvc/cache/kv_input.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/host_vector.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::detail {

template <model_type Model, class Paging, class Allocator>
class group_storage {
 public:
  using shapes = group_shapes<Model, Paging>;
  static constexpr int num_groups = shapes::num_groups;

  /// Takes pages_per_group[g] pages of every layer of group g, and snapshot_bytes for the
  /// recurrent-state snapshots; on error gives back what it took.
  group_storage(const signed_array<std::int64_t, num_groups>& pages_per_group,
                std::uint64_t snapshot_bytes, Allocator memory_source)
      : allocator_(std::move(memory_source)) {
    try {
      if (snapshot_bytes > 0) {
        states_ = allocator_.allocate(snapshot_bytes);
        state_bytes_ = snapshot_bytes;
      }
      for (int g = 0; g < num_groups; ++g) {
        group_memory& group = groups_[g];
        group.pool = page_pool(pages_per_group[g]);
        group.geometry = shapes::geometry(g);
        group.window = shapes::summary(g).window;
        group.layers = shapes::layers(g);
        group.memory_bytes = static_cast<std::uint64_t>(pages_per_group[g]) *
                             group.geometry.page_bytes * static_cast<std::uint64_t>(group.layers);
        group.memory = allocator_.allocate(group.memory_bytes);
      }
    } catch (...) {  // the destructor will not run
      deallocate();
      throw;
    }
  }
  group_storage(const group_storage&) = delete;
  group_storage& operator=(const group_storage&) = delete;
  ~group_storage() { deallocate(); }

  page_pool& pool(int g) { return groups_[g].pool; }
  const page_pool& pool(int g) const { return groups_[g].pool; }
  const page_geometry& geometry(int g) const { return groups_[g].geometry; }
  /// Returns the layers' window: what attention sees (the cache keeps pages for more with a
  /// reserve).
  const window_shape& window(int g) const { return groups_[g].window; }

  /// Returns where page `page` of the group's `slot_in_group`-th layer starts.
  std::byte* page_memory(int g, int slot_in_group, page_id page) const {
    const group_memory& group = groups_[g];
    return group.memory + (static_cast<std::uint64_t>(slot_in_group) *
                               static_cast<std::uint64_t>(group.pool.capacity()) +
                           static_cast<std::uint64_t>(page)) *
                              group.geometry.page_bytes;
  }

  /// Returns the snapshot memory at `offset` (a slot's first byte is slot * snapshot size).
  std::byte* state_memory(std::uint64_t offset) const { return states_ + offset; }
  /// Copies state bytes within the cache's kind of memory (into or out of a snapshot).
  void copy_state(void* to, const void* from, std::uint64_t bytes) {
    allocator_.copy(static_cast<std::byte*>(to), static_cast<const std::byte*>(from), bytes);
  }

  /// Copies page `from` over page `to` in every layer of the group.
  void copy_page(int g, page_id to, page_id from) {
    for (int l = 0; l < groups_[g].layers; ++l)
      allocator_.copy(page_memory(g, l, to), page_memory(g, l, from),
                      groups_[g].geometry.page_bytes);
  }

  /// Stores input row `row` of K (and of V, unless the group is latent) at `token` of the
  /// page, converted to the page's dtypes; fp8 divides by the layer's scales first.
  void store_token(int g, int slot_in_group, page_id page, int token, const kv_input& k,
                   const kv_input& v, std::int64_t row, float k_inverse, float v_inverse) {
    const page_geometry& geo = groups_[g].geometry;
    with_page(g, slot_in_group, page, [&](std::byte* image) {
      for (int kv_head = 0; kv_head < geo.kv_heads; ++kv_head) {
        numeric::store_converted(
            k.type, k.vector(row, kv_head), geo.k_type, geo.k_dim, k_inverse,
            image + geo.k_offset(token, kv_head),
            reinterpret_cast<float*>(image + geo.k_scale_offset(token, kv_head)));
        if (!geo.latent)
          numeric::store_converted(
              v.type, v.vector(row, kv_head), geo.v_type, geo.v_dim, v_inverse,
              image + geo.v_offset(token, kv_head),
              reinterpret_cast<float*>(image + geo.v_scale_offset(token, kv_head)));
      }
    });
  }

  /// Loads `token` of the page as floats: K ([kv_heads][k_dim]), and V ([kv_heads][v_dim])
  /// unless v is null; fp8 multiplied by the scales.
  void load_token(int g, int slot_in_group, page_id page, int token, float k_scale, float v_scale,
                  float* k, float* v) const {
    const page_geometry& geo = groups_[g].geometry;
    std::vector<std::byte> staging;
    const std::byte* memory = readable_page(g, slot_in_group, page, staging);
    const auto scale_at = [&](std::uint64_t offset) {
      return reinterpret_cast<const float*>(memory + offset);
    };
    for (int head = 0; head < geo.kv_heads; ++head) {
      numeric::load_vector(geo.k_type, memory + geo.k_offset(token, head),
                           scale_at(geo.k_scale_offset(token, head)), geo.k_dim, k_scale,
                           k + head * geo.k_dim);
      if (v != nullptr)
        numeric::load_vector(geo.v_type, memory + geo.v_offset(token, head),
                             scale_at(geo.v_scale_offset(token, head)), geo.v_dim, v_scale,
                             v + head * geo.v_dim);
    }
  }

  /// Returns the bytes of the pages in use, every layer of every group (shared pages once).
  std::uint64_t used_bytes() const { return bytes_of(&page_pool::used_pages); }
  /// Returns the bytes of the pages only the prefix index holds, every layer of every group.
  std::uint64_t cached_bytes() const { return bytes_of(&page_pool::cached_pages); }
  std::uint64_t memory_bytes() const {
    std::uint64_t bytes = state_bytes_;
    for (const group_memory& g : groups_) bytes += g.memory_bytes;
    return bytes;
  }

 private:
  struct group_memory {
    page_pool pool{0};
    page_geometry geometry{};
    window_shape window{};
    int layers = 0;
    std::byte* memory = nullptr;  ///< [layer in group][page][page_bytes]
    std::uint64_t memory_bytes = 0;
  };

  // The bytes of the pages that `pages_in` counts in each group's pool, every layer.
  std::uint64_t bytes_of(std::int64_t (page_pool::*pages_in)() const) const {
    std::uint64_t total = 0;
    for (const group_memory& g : groups_)
      total += static_cast<std::uint64_t>((g.pool.*pages_in)()) * g.geometry.page_bytes *
               static_cast<std::uint64_t>(g.layers);
    return total;
  }

  void deallocate() noexcept {
    if (states_ != nullptr) allocator_.deallocate(states_, state_bytes_);
    for (group_memory& g : groups_)
      if (g.memory != nullptr) allocator_.deallocate(g.memory, g.memory_bytes);
  }

  // Runs fn on a host-writable image of the page, written back if the memory is not the host's.
  template <class Fn>
  void with_page(int g, int slot_in_group, page_id page, Fn&& fn) {
    std::byte* memory = page_memory(g, slot_in_group, page);
    if constexpr (Allocator::host_accessible) {
      fn(memory);
    } else {
      const std::uint64_t bytes = groups_[g].geometry.page_bytes;
      staging_.resize(bytes);
      allocator_.download(staging_.data(), memory, bytes);
      fn(staging_.data());
      allocator_.upload(memory, staging_.data(), bytes);
    }
  }
  const std::byte* readable_page(int g, int slot_in_group, page_id page,
                                 std::vector<std::byte>& staging) const {
    const std::byte* memory = page_memory(g, slot_in_group, page);
    if constexpr (Allocator::host_accessible) {
      return memory;
    } else {
      staging.resize(groups_[g].geometry.page_bytes);
      const_cast<Allocator&>(allocator_).download(staging.data(), memory, staging.size());
      return staging.data();
    }
  }

  Allocator allocator_;
  signed_array<group_memory, num_groups> groups_;
  std::byte* states_ = nullptr;  ///< the recurrent-state snapshots, [slot][layer's state]
  std::uint64_t state_bytes_ = 0;
  std::vector<std::byte> staging_;
};

}  // namespace kvc::detail
