#pragma once
// Runs a kernel functor on the CPU as CUDA would run it on a GPU:
//   kvc::simt::launch(grid, kernels::block_shape<128>{}, shared_bytes, kernel);
// calls kernel(ctx) once per CUDA thread of every block, with a kvc::simt::context.
//
// The launch checks CUDA's limits first (launch_error: invalid_shape, too_many_threads,
// shared_memory_exceeded). It then makes options.concurrent_blocks teams of host threads,
// one thread per CUDA thread, each team with its block's shared memory; a team runs block
// after block until none is left, so shared memory is made once per launch and not per
// block, and the host threads are kept from one launch to the next (host_threads.hpp). A
// divergent barrier or shuffle, a misaligned copy, or an exception thrown by the kernel tears
// the block down; no new block starts, and the first error is rethrown here once every
// thread has returned.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "kvc/backend/simt/architecture.hpp"
#include "kvc/backend/simt/context.hpp"
#include "kvc/backend/simt/errors.hpp"
#include "kvc/backend/simt/host_threads.hpp"
#include "kvc/backend/simt/thread_team.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt {

namespace detail {

template <class Block, class Kernel>
void run_thread(thread_team& team, unsigned rank, kernels::dims3 grid, const Kernel& kernel,
                memory_traffic* traffic) {
  thread_state state;
  state.traffic = traffic;
  state.team = &team;
  const context<Block> ctx(team, state, rank, grid);
  std::uint64_t seen = 0;
  kernels::dims3 block_idx;
  while (team.wait_for_block(rank, seen, block_idx)) {
    state.begin_block(block_idx, grid);
    try {
      kernel(ctx);
      state.complete_copies();  // copies never waited for still land, as on a GPU
      if (state.wgmma.issued != state.wgmma.done)
        throw launch_error(launch_errc::wgmma_misuse,
                           "kvc::simt: thread " + std::to_string(rank) + " of block " +
                               dims_text(block_idx) + " left the kernel with " +
                               std::to_string(state.wgmma.issued - state.wgmma.done) +
                               " wgmma not waited for (undefined on a GPU)");
    } catch (const block_torn_down&) {
    } catch (...) {
      team.fail(std::current_exception());
    }
    state.drop_copies();
    team.finish(rank);
  }
}

template <class Block>
void check_launch(kernels::dims3 grid, std::size_t shared_bytes, const architecture& target) {
  const std::string shape = "kvc::simt::launch: block (" + std::to_string(Block::x) + ", " +
                            std::to_string(Block::y) + ", " + std::to_string(Block::z) +
                            "), grid " + dims_text(grid);
  if (Block::x == 0 || Block::y == 0 || Block::z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    throw launch_error(launch_errc::invalid_shape, shape + ": a dimension is 0");
  if (Block::threads > target.max_threads_per_block || Block::x > 1024 || Block::y > 1024 ||
      Block::z > 64)
    throw launch_error(launch_errc::too_many_threads,
                       shape + ": " + std::to_string(Block::threads) + " threads per block; " +
                           target.name + " runs at most " +
                           std::to_string(target.max_threads_per_block) +
                           " (and at most 1024 x 1024 x 64)");
  if (grid.x > 0x7fff'ffffu || grid.y > 65535 || grid.z > 65535)
    throw launch_error(launch_errc::invalid_shape,
                       shape + ": the grid is at most 2^31-1 x 65535 x 65535 blocks");
  if (shared_bytes > target.max_shared_bytes_per_block)
    throw launch_error(launch_errc::shared_memory_exceeded,
                       shape + ": " + std::to_string(shared_bytes) +
                           " bytes of dynamic shared memory per block; " + target.name +
                           " gives a block at most " +
                           std::to_string(target.max_shared_bytes_per_block));
}

}  // namespace detail

template <class Block, class Kernel>
void launch(kernels::dims3 grid, Block, std::size_t shared_bytes, const Kernel& kernel,
            const launch_options& options = {}) {
  detail::check_launch<Block>(grid, shared_bytes, options.target);
  detail::launch_state state(grid);
  const std::uint64_t blocks = grid.volume();
  const unsigned team_count = static_cast<unsigned>(
      std::min<std::uint64_t>(std::max(options.concurrent_blocks, 1u), blocks));

  std::vector<std::unique_ptr<detail::thread_team>> teams;
  for (unsigned t = 0; t < team_count; ++t)
    teams.push_back(std::make_unique<detail::thread_team>(Block::threads, shared_bytes, state));
  // Thread i of the launch plays thread i % Block::threads of team i / Block::threads.
  struct launch_job {
    const std::vector<std::unique_ptr<detail::thread_team>>& teams;
    kernels::dims3 grid;
    const Kernel& kernel;
    memory_traffic* traffic;
  } job{teams, grid, kernel, options.traffic};
  const auto play = [](const void* context, unsigned index) {
    const auto& j = *static_cast<const launch_job*>(context);
    detail::run_thread<Block, Kernel>(*j.teams[index / Block::threads], index % Block::threads,
                                      j.grid, j.kernel, j.traffic);
  };
  detail::host_threads::instance().run(team_count * Block::threads, {play, &job}, [&] {
    for (auto& team : teams) team->start();
  });
  state.rethrow_first_error();
}

}  // namespace kvc::simt
