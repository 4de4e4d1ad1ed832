#pragma once
// A baseline buffer from the allocator the caches use: a physical limit measured over other
// pages (4 KiB ones rather than huge) would not be the same limit.

#include <algorithm>
#include <cstddef>

#include "kvc/cache/allocator.hpp"

namespace kvc::bench {

template <class T>
class host_memory {
 public:
  host_memory(std::size_t count, T value)
      : count_(count), data_(reinterpret_cast<T*>(allocator_.allocate(count * sizeof(T)))) {
    std::fill(data_, data_ + count_, value);
  }
  host_memory(const host_memory&) = delete;
  host_memory& operator=(const host_memory&) = delete;
  ~host_memory() { allocator_.deallocate(reinterpret_cast<std::byte*>(data_), count_ * sizeof(T)); }

  T* data() const { return data_; }

 private:
  host_allocator allocator_;
  std::size_t count_;
  T* data_;
};

}  // namespace kvc::bench
