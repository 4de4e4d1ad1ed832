#pragma once
// The named barriers of the emulated block (bar.sync and bar.arrive with an id and a thread
// count): one phase per id, counted and checked against the PTX ISA's rules, so that a
// producer warp and its consumer warpgroups meet without the rest of the block. Id 0 is the
// block barrier's (sync()); ids 1 to 15 are the kernel's. The team (thread_team.hpp) keeps
// who sleeps where; this header keeps the counts and names what breaks the rules.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string>

#include "kvc/backend/simt/launch_state.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt::detail {

inline constexpr unsigned named_barrier_ids = 16;  ///< barriers a CTA has (PTX ISA, bar)
inline constexpr unsigned block_warps_limit = 32;  ///< 1024 threads

/// One named barrier's open phase: who arrived, counting toward how many threads.
struct named_barrier_phase {
  unsigned expected = 0;  ///< the phase's thread count, set by its first arrival
  unsigned arrived = 0;   ///< threads counted so far (a partial last warp counts 32 once whole)
  std::array<std::uint32_t, block_warps_limit> lanes{};  ///< per warp, the lanes that arrived

  /// Counts lane `lane` of warp `warp` (of `warp_lanes` lanes) in; returns what breaks the
  /// rules, or an empty text.
  std::string arrive(unsigned warp, unsigned lane, unsigned warp_lanes, unsigned threads) {
    if (arrived == 0) {
      expected = threads;
    } else if (threads != expected) {
      return ", while " + std::to_string(arrived) +
             " threads have arrived in this phase counting " + std::to_string(expected) +
             " (every call of a phase names the same count)";
    }
    const std::uint32_t bit = std::uint32_t{1} << lane;
    if ((lanes[warp] & bit) != 0)
      return " a second time in one phase (its warp would be counted twice)";
    lanes[warp] |= bit;
    // A warp counts 32 threads, even the block's partial last one (the PTX ISA's warp-wide
    // bar): its missing lanes are added when its last lane arrives.
    arrived += lanes[warp] == whole_warp(warp_lanes) ? 1 + kernels::warp_size - warp_lanes : 1;
    if (arrived > expected)
      return ", which takes the phase past its count of " + std::to_string(expected);
    return {};
  }
  bool complete() const { return arrived == expected; }
  /// Names a warp that only some of whose lanes arrived in the completed phase, or nothing:
  /// bar.sync and bar.arrive are warp-wide, every lane of a warp calls them together.
  std::string partial_warp(const unsigned* warp_lanes, unsigned warps) const {
    for (unsigned w = 0; w < warps; ++w)
      if (lanes[w] != 0 && lanes[w] != whole_warp(warp_lanes[w]))
        return " completes the phase with lanes " + hex(lanes[w]) + " of warp " +
               std::to_string(w) + " (the others never arrived: every lane of a warp calls it)";
    return {};
  }
  void reset() { *this = named_barrier_phase{}; }

  /// Names the first thread of the block's `threads` that has not arrived in this phase.
  unsigned first_missing(unsigned threads) const {
    for (unsigned w = 0; w * kernels::warp_size < threads; ++w) {
      const unsigned warp_lanes = std::min(kernels::warp_size, threads - w * kernels::warp_size);
      if (lanes[w] != whole_warp(warp_lanes))
        return w * kernels::warp_size + static_cast<unsigned>(std::countr_one(lanes[w]));
    }
    return threads;
  }

  static std::uint32_t whole_warp(unsigned warp_lanes) {
    return warp_lanes == kernels::warp_size ? kernels::all_lanes : (1u << warp_lanes) - 1u;
  }
};

/// What is wrong with a named barrier's id or count, or an empty text.
inline std::string named_barrier_call_error(unsigned id, unsigned threads, unsigned block_warps) {
  if (id == 0 || id >= named_barrier_ids)
    return ", but ids 1 to 15 are the kernel's (0 is the block barrier's, sync())";
  if (threads == 0 || threads % kernels::warp_size != 0 ||
      threads > block_warps * kernels::warp_size)
    return ", but the count must be a multiple of 32 up to the block's " +
           std::to_string(block_warps * kernels::warp_size) + " (whole warps)";
  return {};
}

}  // namespace kvc::simt::detail
