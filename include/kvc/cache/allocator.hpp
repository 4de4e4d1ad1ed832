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

#if defined(__linux__)
#include <sys/mman.h>
#endif

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

/// Host memory, zero-filled, 64-byte aligned. A block of at least `huge_page_bytes` (a KV
/// pool, in practice) is aligned to that size and, on Linux, advised into transparent huge
/// pages: attention reads the pool in long streams, and over 4 KiB pages (a TLB miss every
/// 4 KiB) a streaming read ran about a fifth slower on the machine of docs/benchmarks.md.
/// The advice is a hint: where the system disables transparent huge pages, the block is
/// ordinary memory. `huge_pages = false` leaves it out (the kernel may then stall a first
/// touch to compact memory into huge pages, which a latency-bound engine may not want).
struct host_allocator {
  static constexpr bool host_accessible = true;
  static constexpr std::align_val_t alignment{64};
  static constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;
  bool huge_pages = true;

  /// Returns the alignment of a block of `bytes`.
  static constexpr std::align_val_t alignment_for(std::size_t bytes) {
    return bytes >= huge_page_bytes ? std::align_val_t{huge_page_bytes} : alignment;
  }

  std::byte* allocate(std::size_t bytes) {
    auto* p = static_cast<std::byte*>(::operator new(bytes == 0 ? 1 : bytes, alignment_for(bytes)));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Before the first touch, so that the pages are faulted in huge.
    if (huge_pages && bytes >= huge_page_bytes) ::madvise(p, bytes, MADV_HUGEPAGE);
#endif
    std::memset(p, 0, bytes);
    return p;
  }
  void deallocate(std::byte* p, std::size_t bytes) { ::operator delete(p, alignment_for(bytes)); }
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
