#pragma once
// Reading the next block ahead, spread over the kernels that compute this one.

#include <cstddef>
#include <cstdint>

namespace kvc::cpu {

/// Memory to bring into cache while a block is computed: the next block's vectors and scales,
/// up to four runs of equal pieces (for HND pages, one piece per KV head). Each kernel call
/// touches lines_per_call lines of it, a few at each step (a tile of keys, a token of a column
/// tile of values), so that the requests stay spread out; a burst of them stalls the core, and
/// the hardware prefetchers do not follow the heads of a page read one after another. The
/// lines go to L2 (prefetcht1): they are read a block of work later.
struct read_ahead {
  /// `count` pieces of `bytes` bytes, `stride` apart from `first`.
  struct pieces {
    const std::byte* first = nullptr;
    std::uint64_t bytes = 0, stride = 0;
    int count = 0;
  };
  pieces runs[4];
  int lines_per_call = 0;

  /// Lines per step for a call of `steps` steps.
  int lines_per_step(int steps) const { return (lines_per_call + steps - 1) / steps; }
  void step(int lines) {
    for (int i = 0; i < lines; ++i) {
      if (next_ >= end_ && !next_piece()) return;
      __builtin_prefetch(next_, 0, 2);
      next_ += 64;
    }
  }
  /// Lines in all, for sharing them out over the calls.
  std::uint64_t lines() const {
    std::uint64_t n = 0;
    for (const pieces& run : runs)
      n += static_cast<std::uint64_t>(run.count) * ((run.bytes + 63) / 64);
    return n;
  }

 private:
  const std::byte* next_ = nullptr;
  const std::byte* end_ = nullptr;
  int run_ = 0, piece_ = 0;

  bool next_piece() {
    for (; run_ < 4; ++run_, piece_ = 0) {
      const pieces& run = runs[run_];
      if (piece_ < run.count && run.bytes > 0) {
        next_ = run.first + static_cast<std::uint64_t>(piece_) * run.stride;
        end_ = next_ + run.bytes;
        ++piece_;
        return true;
      }
    }
    return false;
  }
};

}  // namespace kvc::cpu
