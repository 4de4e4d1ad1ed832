#pragma once
// The test binary's allocation functions, for fault injection: malloc and free underneath,
// and the allocation that `failing_new::countdown` counts down to throws std::bad_alloc (the
// nothrow forms return null). Include it in exactly one file of a binary: it replaces every
// replaceable form of operator new and delete, so that sanitizers see matching pairs.

#include <cstddef>
#include <cstdlib>
#include <new>

namespace kvc::testing::failing_new {
/// > 0: the allocation that many from now fails; 0: none does.
inline long countdown = 0;
/// Allocations seen while counting down.
inline long seen = 0;
inline bool fail_now() {
  if (countdown <= 0) return false;
  ++seen;
  return --countdown == 0;
}
inline void* allocate(std::size_t bytes, std::size_t alignment) {
  if (alignment <= alignof(std::max_align_t)) return std::malloc(bytes == 0 ? 1 : bytes);
  return std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
}
}  // namespace kvc::testing::failing_new

void* operator new(std::size_t bytes) {
  if (kvc::testing::failing_new::fail_now()) throw std::bad_alloc();
  if (void* p = kvc::testing::failing_new::allocate(bytes, 0)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  if (kvc::testing::failing_new::fail_now()) throw std::bad_alloc();
  if (void* p = kvc::testing::failing_new::allocate(bytes, static_cast<std::size_t>(alignment)))
    return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  if (kvc::testing::failing_new::fail_now()) return nullptr;
  return kvc::testing::failing_new::allocate(bytes, 0);
}
void* operator new(std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  if (kvc::testing::failing_new::fail_now()) return nullptr;
  return kvc::testing::failing_new::allocate(bytes, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t bytes) { return operator new(bytes); }
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return operator new(bytes, alignment);
}
void* operator new[](std::size_t bytes, const std::nothrow_t& tag) noexcept {
  return operator new(bytes, tag);
}
void* operator new[](std::size_t bytes, std::align_val_t alignment,
                     const std::nothrow_t& tag) noexcept {
  return operator new(bytes, alignment, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
