#pragma once
// Where page memory comes from. An allocator provides:
//   allocate(bytes) / deallocate(pointer, bytes)
//   copy(destination, source, bytes)        page memory to page memory (copy-on-write)
//   upload(page memory, host source, bytes) / download(host destination, page memory, bytes)
//   host_accessible                          whether the cache may read and write it directly
// host_allocator is the default; backend/cuda/device_allocator.hpp provides device memory.

#include <concepts>
#include <cstddef>
#include <cstring>
#include <new>

namespace kvc {

template <class A>
concept page_allocator = requires(A a, std::byte* p, const std::byte* cp, void* h, const void* ch,
                                  std::size_t n) {
  { a.allocate(n) } -> std::same_as<std::byte*>;
  a.deallocate(p, n);
  a.copy(p, cp, n);
  a.upload(p, ch, n);
  a.download(h, cp, n);
  { A::host_accessible } -> std::convertible_to<bool>;
};

/// Host memory, 64-byte aligned, zero-filled.
struct host_allocator {
  static constexpr bool host_accessible = true;
  static constexpr std::align_val_t alignment{64};

  std::byte* allocate(std::size_t bytes) {
    auto* p = static_cast<std::byte*>(::operator new(bytes == 0 ? 1 : bytes, alignment));
    std::memset(p, 0, bytes);
    return p;
  }
  void deallocate(std::byte* p, std::size_t) { ::operator delete(p, alignment); }
  void copy(std::byte* destination, const std::byte* source, std::size_t bytes) {
    std::memcpy(destination, source, bytes);
  }
  void upload(std::byte* destination, const void* source, std::size_t bytes) {
    std::memcpy(destination, source, bytes);
  }
  void download(void* destination, const std::byte* source, std::size_t bytes) {
    std::memcpy(destination, source, bytes);
  }
};

}  // namespace kvc
