#pragma once
// What the teams of one launch share (the blocks not yet handed out, the first error), and
// how the emulator's messages name blocks and lane masks.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt::detail {

inline std::string hex(unsigned value) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text = "0x00000000";
  for (int i = 9; i >= 2; --i, value >>= 4) text[static_cast<std::size_t>(i)] = digits[value & 15u];
  return text;
}

/// The pieces, appended one by one (GCC 12's -Wrestrict trips on literal + std::string&&).
inline std::string text_of(std::initializer_list<std::string_view> pieces) {
  std::string text;
  for (std::string_view piece : pieces) text += piece;
  return text;
}

inline std::string dims_text(kernels::dims3 d) {
  // Appended piece by piece: "(" + std::string&& trips GCC 12's -Wrestrict (a false positive).
  std::string text(1, '(');
  text += std::to_string(d.x);
  text += ", ";
  text += std::to_string(d.y);
  text += ", ";
  text += std::to_string(d.z);
  text += ')';
  return text;
}

/// What the teams of one launch share: the blocks not yet handed out and the first error.
class launch_state {
 public:
  explicit launch_state(kernels::dims3 grid) : grid_(grid), blocks_(grid.volume()) {}

  /// Returns the next block to run; false once every block is handed out or the launch failed.
  bool take_block(kernels::dims3& block_idx) {
    if (failed_.load(std::memory_order_acquire)) return false;
    const std::uint64_t block = next_block_.fetch_add(1, std::memory_order_relaxed);
    if (block >= blocks_) return false;
    block_idx.x = static_cast<std::uint32_t>(block % grid_.x);
    block_idx.y = static_cast<std::uint32_t>(block / grid_.x % grid_.y);
    block_idx.z = static_cast<std::uint32_t>(block / (std::uint64_t{grid_.x} * grid_.y));
    return true;
  }
  void record(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    if (!first_error_) first_error_ = std::move(error);
    failed_.store(true, std::memory_order_release);
  }
  void rethrow_first_error() {
    std::lock_guard lock(mutex_);
    if (first_error_) std::rethrow_exception(first_error_);
  }

 private:
  kernels::dims3 grid_;
  std::uint64_t blocks_;
  std::atomic<std::uint64_t> next_block_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_error_;
};

}  // namespace kvc::simt::detail
