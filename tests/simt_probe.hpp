#pragma once
// A kernel that records, per thread, what the SIMT context's indices, shuffles, reductions
// and votes return, and the same record computed on the host from the thread's rank
// alone (no emulator code involved). test_simt runs it in the emulator, tests/cuda on a GPU.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::testing {

struct probe_record {
  unsigned rank, lane, warp, members;
  int xor_1, xor_16, down_1, down_5, idx_0, idx_reversed;
  int warp_sum, warp_max, block_sum, block_max;
  bool any_large, any_first;
  friend bool operator==(const probe_record&, const probe_record&) = default;
};

KVC_HOST_DEVICE constexpr int probe_value(unsigned rank) {
  return static_cast<int>((rank * 37u) % 101u) - 50;
}

/// Every shuffle stays inside the lanes the warp has: xor 16 and shfl_down only run in full
/// warps (in a partial one they would read lanes that do not exist), and a partial warp has
/// an even number of lanes (for xor 1). One block per blockIdx.x.
struct shuffle_probe {
  probe_record* out;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const unsigned rank = ctx.thread_rank(), lane = ctx.lane();
    const unsigned members = ctx.warp_members();
    const unsigned left = ctx.block_threads() - ctx.warp() * 32u;
    const unsigned lanes = left < 32u ? left : 32u;
    const int value = probe_value(rank);
    probe_record r{};
    r.rank = rank;
    r.lane = lane;
    r.warp = ctx.warp();
    r.members = members;
    r.xor_1 = ctx.shfl_xor(value, 1, members);
    r.idx_0 = ctx.shfl_idx(value, 0, members);
    r.idx_reversed = ctx.shfl_idx(value, static_cast<int>(lanes - 1 - lane), members);
    if (members == kernels::all_lanes) {
      r.xor_16 = ctx.shfl_xor(value, 16);
      r.down_1 = ctx.shfl_down(value, 1u);
      r.down_5 = ctx.shfl_down(value, 5u);
    }
    r.warp_sum = ctx.warp_sum(value);
    r.warp_max = ctx.warp_max(value);
    r.block_sum = ctx.block_sum(value);
    r.block_max = ctx.block_max(value);
    r.any_large = ctx.warp_any(value > 47);  // true in some warps, false in others
    r.any_first = ctx.warp_any(rank == 0);
    out[std::uint64_t{ctx.block_idx().x} * ctx.block_threads() + rank] = r;
  }
};

/// What shuffle_probe must record for thread `rank` of a block of `threads`.
inline probe_record expected_probe(unsigned rank, unsigned threads) {
  const unsigned lane = rank % 32, warp = rank / 32, first = warp * 32;
  const unsigned lanes = threads - first < 32 ? threads - first : 32;
  probe_record r{};
  r.rank = rank;
  r.lane = lane;
  r.warp = warp;
  r.members = lanes == 32 ? 0xffff'ffffu : (1u << lanes) - 1;
  r.xor_1 = probe_value(first + (lane ^ 1u));
  r.idx_0 = probe_value(first);
  r.idx_reversed = probe_value(first + lanes - 1 - lane);
  if (lanes == 32) {
    r.xor_16 = probe_value(first + (lane ^ 16u));
    r.down_1 = probe_value(lane + 1 < 32 ? rank + 1 : rank);
    r.down_5 = probe_value(lane + 5 < 32 ? rank + 5 : rank);
  }
  r.warp_sum = 0;
  r.warp_max = probe_value(first);
  for (unsigned l = 0; l < lanes; ++l) {
    r.warp_sum += probe_value(first + l);
    if (probe_value(first + l) > r.warp_max) r.warp_max = probe_value(first + l);
  }
  r.any_large = false;
  for (unsigned l = 0; l < lanes; ++l) r.any_large = r.any_large || probe_value(first + l) > 47;
  r.any_first = warp == 0;
  r.block_sum = 0;
  r.block_max = probe_value(0);
  for (unsigned t = 0; t < threads; ++t) {
    r.block_sum += probe_value(t);
    if (probe_value(t) > r.block_max) r.block_max = probe_value(t);
  }
  return r;
}

}  // namespace kvc::testing
