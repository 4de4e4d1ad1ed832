#pragma once
// The named barriers of the emulated block (bar.sync and bar.arrive with an id and a thread
// count): one open phase per id, counted and checked against the PTX ISA's rules, so that a
// producer warp and its consumer warpgroups meet without the rest of the block. Id 0 is the
// block barrier's (sync()); ids 1 to 15 are the kernel's. As on a GPU, a barrier counts whole
// warps: a lane's call waits for the rest of its warp (the same call), then the warp adds 32
// to the phase (a block's partial last warp too). The team (thread_team.hpp) keeps who sleeps
// where; this header keeps the counts and names what breaks the rules.

#include <array>
#include <bit>
#include <cstdint>
#include <string>

#include "kvc/backend/simt/launch_state.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt::detail {

inline constexpr unsigned named_barrier_ids = 16;  ///< barriers a CTA has (PTX ISA, bar)
inline constexpr unsigned block_warps_limit = 32;  ///< 1024 threads

/// The lanes a warp of `lanes` lanes has (the block's last warp may be partial).
inline std::uint32_t warp_lane_mask(unsigned lanes) {
  return lanes == kernels::warp_size ? kernels::all_lanes : (std::uint32_t{1} << lanes) - 1u;
}

/// What a lane's call at a named barrier did.
enum class named_arrival : unsigned char {
  lane_waits,      ///< the lane waits for the rest of its warp
  warp_arrived,    ///< its warp, now whole, was counted into the open phase
  phase_complete,  ///< and that completed the phase
};

/// One named barrier: its open phase, and the lanes of each warp that called it and wait for
/// the rest of their warp.
struct named_barrier_state {
  unsigned expected = 0;       ///< the open phase's thread count, set by its first warp
  unsigned arrived = 0;        ///< threads counted into it, 32 a warp
  std::uint32_t warps_in = 0;  ///< the warps counted into it
  std::array<std::uint32_t, block_warps_limit> pending{};  ///< per warp, its lanes that called
  std::array<unsigned, block_warps_limit> pending_threads{};
  std::uint32_t pending_sync = 0;  ///< per warp: its pending lanes sync (else arrive)

  /// Lane `lane` of warp `warp` (whose lanes are `warp_mask`) calls, counting toward `threads`;
  /// `sync`: bar.sync, else bar.arrive. Returns what breaks the rules, or an empty text.
  std::string join(unsigned warp, unsigned lane, std::uint32_t warp_mask, unsigned threads,
                   bool sync, named_arrival& result) {
    const std::uint32_t warp_bit = std::uint32_t{1} << warp;
    if (pending[warp] == 0) {
      pending_threads[warp] = threads;
      pending_sync = sync ? pending_sync | warp_bit : pending_sync & ~warp_bit;
    } else if (pending_threads[warp] != threads || ((pending_sync & warp_bit) != 0) != sync) {
      return text_of({", while lanes ", hex(pending[warp]), " of its warp ",
                      (pending_sync & warp_bit) != 0 ? "sync" : "arrive", " counting ",
                      std::to_string(pending_threads[warp]),
                      " (every lane of a warp makes the same call)"});
    }
    pending[warp] |= std::uint32_t{1} << lane;
    if (pending[warp] != warp_mask) {
      result = named_arrival::lane_waits;
      return {};
    }
    pending[warp] = 0;
    if ((warps_in & warp_bit) != 0)
      return " a second time in one phase: its warp is counted in it already";
    if (arrived == 0) {
      expected = threads;
    } else if (threads != expected) {
      return text_of({", while warps ", hex(warps_in), " are counted in this phase toward ",
                      std::to_string(expected), " (every call of a phase names the same count)"});
    }
    warps_in |= warp_bit;
    arrived += kernels::warp_size;
    result = arrived == expected ? named_arrival::phase_complete : named_arrival::warp_arrived;
    return {};
  }
  void close_phase() { expected = arrived = warps_in = 0; }
  void reset() { *this = named_barrier_state{}; }

  /// The first warp of `warps` with lanes that wait for the rest of it, or `warps`.
  unsigned partial_warp(unsigned warps) const {
    for (unsigned w = 0; w < warps; ++w)
      if (pending[w] != 0) return w;
    return warps;
  }
};

/// What is wrong with a named barrier's id or count, or an empty text.
inline std::string named_barrier_call_error(unsigned id, unsigned threads, unsigned block_warps) {
  if (id == 0 || id >= named_barrier_ids)
    return ", but ids 1 to 15 are the kernel's (0 is the block barrier's, sync())";
  if (threads == 0 || threads % kernels::warp_size != 0 ||
      threads > block_warps * kernels::warp_size)
    return text_of({", but the count must be a multiple of 32 up to the block's ",
                    std::to_string(block_warps * kernels::warp_size), " (whole warps)"});
  return {};
}

}  // namespace kvc::simt::detail
