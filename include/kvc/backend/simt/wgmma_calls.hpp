#pragma once
// What the host emulator does for the SIMT context's warpgroup matrix multiply-accumulate
// (kernels/wgmma.hpp): a thread's issued, committed and waited-for operations, and the
// rules it checks. An operation is done at the wait that covers it, the latest moment the
// PTX ISA allows: each thread of the warpgroup computes its own values of D then, from
// the records every thread left at the issue (its A fragment, the descriptors) and shared
// memory as it is at the wait. Until then the accumulator's registers hold NaN and its value
// lives in a shadow, so that a kernel that reads D too early, or overwrites a tile a pending
// operation still reads, fails its test.
//
// Rules (launch_errc::wgmma_misuse where broken): a wgmma_fence before a thread's first
// wgmma of the block and between a wgmma_wait and its next wgmma; whole warpgroups; the
// same shape and descriptors from every thread of the warpgroup; at most
// wgmma_in_flight_limit operations not waited for; no accumulator named to wgmma_wait that a
// later group still writes; every operation waited for before the thread leaves the kernel.
// A wait is a meeting of the warpgroup's 128 threads (thread_team::sync_warpgroup).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "kvc/backend/simt/errors.hpp"
#include "kvc/backend/simt/thread_team.hpp"
#include "kvc/backend/simt/wgmma.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::simt::detail {

/// One thread's wgmma bookkeeping, kept from block to block (reset when a block begins).
struct wgmma_thread_state {
  /// An operation issued and not yet done: its number in the block, its accumulator.
  struct pending {
    std::uint64_t operation;
    float* d;
    bool accumulate;
  };
  /// The value of an accumulator while operations on it are pending.
  struct shadow {
    float* d;
    int n;
    int pending;
    float values[128];
  };
  std::vector<pending> open;                ///< not yet committed
  std::deque<std::vector<pending>> groups;  ///< committed, oldest first
  std::vector<shadow> shadows;
  std::uint64_t issued = 0, done = 0;
  bool fenced = false;

  void reset() {
    open.clear();
    groups.clear();
    shadows.clear();
    issued = done = 0;
    fenced = false;
  }
  void commit() {
    groups.push_back(std::move(open));
    open.clear();
  }
  shadow* shadow_of(const float* d) {
    for (shadow& s : shadows)
      if (s.d == d) return &s;
    return nullptr;
  }
};

/// The wgmma calls of one thread of a block.
struct warpgroup_calls {
  thread_team& team;
  wgmma_thread_state& state;
  unsigned rank;
  kernels::dims3 block;
  unsigned block_threads;
  std::uint32_t shared_window_base;  ///< the shared address of the block's dynamic memory

  [[noreturn]] void error(const std::string& what) const {
    team.abort(launch_error(launch_errc::wgmma_misuse, "kvc::simt: " + what + " (block " +
                                                           dims_text(block) + ", thread " +
                                                           std::to_string(rank) + ")"));
  }
  unsigned warpgroup() const { return rank / kernels::warpgroup_threads; }
  void check_whole_warpgroup(const char* what) const {
    if (warpgroup() >= block_threads / kernels::warpgroup_threads)
      error(std::string(what) + " in a block of " + std::to_string(block_threads) +
            " threads, whose last warpgroup is not whole");
  }

  void issue(wgmma_shape shape, const std::uint32_t (&a)[4], std::uint64_t a_descriptor,
             std::uint64_t b_descriptor, float* d, bool accumulate) const {
    if (!state.fenced)
      error("wgmma without a wgmma_fence since the block began or the thread's last wgmma_wait");
    check_whole_warpgroup("wgmma");
    if (state.issued - state.done >= wgmma_in_flight_limit)
      error("more than " + std::to_string(wgmma_in_flight_limit) +
            " wgmma issued and not waited for");
    if (wgmma_base_offset(a_descriptor) != 0 || wgmma_base_offset(b_descriptor) != 0)
      error("a wgmma descriptor with a base offset (not emulated; align the tile instead)");
    const std::uint64_t operation = state.issued++;
    wgmma_record& record = team.wgmma_ring(
        warpgroup())[operation % wgmma_ring_operations * kernels::warpgroup_threads +
                     rank % kernels::warpgroup_threads];
    std::copy(a, a + 4, record.a);
    record.a_descriptor = a_descriptor;
    record.b_descriptor = b_descriptor;
    record.shape = shape.packed();
    wgmma_thread_state::shadow* s = state.shadow_of(d);
    if (s == nullptr) {
      s = &state.shadows.emplace_back();
      s->d = d;
      s->n = shape.n;
      s->pending = 0;
      std::copy(d, d + shape.n / 2, s->values);
      std::fill(d, d + shape.n / 2, std::numeric_limits<float>::quiet_NaN());
    } else if (s->n != shape.n) {
      error("wgmma of N " + std::to_string(shape.n) + " on an accumulator pending with N " +
            std::to_string(s->n));
    }
    ++s->pending;
    state.open.push_back({operation, d, accumulate});
  }

  /// Does the thread's committed groups but the newest `pending`, once every thread of the
  /// warpgroup is here (and so has issued them).
  void wait(std::size_t pending) const {
    check_whole_warpgroup("wgmma_wait");
    team.sync_warpgroup(rank, "wgmma_wait");
    const wgmma_record* ring = team.wgmma_ring(warpgroup());
    while (state.groups.size() > pending) {
      for (const wgmma_thread_state::pending& operation : state.groups.front())
        complete(ring, operation);
      state.groups.pop_front();
    }
    state.fenced = false;
  }

  void complete(const wgmma_record* ring, const wgmma_thread_state::pending& operation) const {
    const wgmma_record* records =
        ring + operation.operation % wgmma_ring_operations * kernels::warpgroup_threads;
    const unsigned thread = rank % kernels::warpgroup_threads;
    const wgmma_record& own = records[thread];
    for (unsigned t = 0; t < kernels::warpgroup_threads; ++t)
      if (records[t].shape != own.shape || records[t].a_descriptor != own.a_descriptor ||
          records[t].b_descriptor != own.b_descriptor)
        error("warpgroup divergence: threads " + std::to_string(rank) + " and " +
              std::to_string(rank - thread + t) +
              " give different shapes or descriptors to the same wgmma");
    const std::byte* shared = team.shared_memory();
    const std::size_t shared_bytes = team.shared_bytes();
    const auto read = [&](std::uint32_t address) {
      const std::uint32_t offset = address - shared_window_base;
      if (address < shared_window_base || std::size_t{offset} + 2 > shared_bytes)
        error("a wgmma descriptor reads shared address " + std::to_string(address) +
              ", outside the block's dynamic shared memory");
      if (team.copy_in_flight(offset))
        team.abort(launch_error(launch_errc::copy_race,
                                "kvc::simt: a wgmma reads shared address " +
                                    std::to_string(address) +
                                    " while an asynchronous copy in flight still writes it"));
      std::uint16_t bits;
      std::memcpy(&bits, shared + offset, sizeof bits);
      return bits;
    };
    wgmma_thread_state::shadow* s = state.shadow_of(operation.d);
    wgmma_thread_result(records, thread, s->values, operation.accumulate, read);
    ++state.done;
    if (--s->pending == 0) {
      std::copy(s->values, s->values + s->n / 2, s->d);
      *s = state.shadows.back();
      state.shadows.pop_back();
    }
  }

  void check_not_pending(const float* d) const {
    if (state.shadow_of(d) != nullptr)
      error(
          "wgmma_wait names an accumulator that wgmma still write after it (a group not waited "
          "for, or not committed)");
  }
};

}  // namespace kvc::simt::detail
