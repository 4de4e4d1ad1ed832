// The SIMT host emulator (backend/simt/): indices, barrier, shuffles, reductions, shared
// memory, asynchronous copies and vector loads, CUDA's limits, and the errors it reports
// instead of hanging. Every expectation is computed on the host from the shape alone.
// Run under ThreadSanitizer by .ci/run; the hidden test "[.race]" is the kernel without its
// barrier that ThreadSanitizer must report (docs/simt.md).

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kvc/backend/simt/host_threads.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/kernels/row_sums.hpp"
#include "simt_named_barriers.hpp"
#include "simt_probe.hpp"

using kvc::kernels::block_shape;
using kvc::kernels::dims3;
using kvc::simt::launch;
using kvc::simt::launch_errc;
using kvc::simt::launch_error;
using kvc::simt::launch_options;

namespace {

// Runs the launch and returns the error it reports (the test fails if it reports none).
template <class Block, class Kernel>
launch_error launch_failure(dims3 grid, Block block, std::size_t shared_bytes, const Kernel& kernel,
                            const launch_options& options = {}) {
  try {
    launch(grid, block, shared_bytes, kernel, options);
  } catch (const launch_error& error) {
    return error;
  }
  FAIL("the launch reported no error");
  return launch_error(launch_errc::invalid_shape, "unreachable");
}

struct index_record {
  dims3 grid, block, block_idx, thread_idx;
  unsigned rank, lane, warp, threads;
  int visits;
};

template <class Block>
void check_indices(dims3 grid, unsigned concurrent_blocks) {
  const std::uint64_t total = grid.volume() * Block::threads;
  std::vector<index_record> records(total);
  std::vector<std::atomic<int>> visits(total);
  launch(grid, Block{}, 0,
         [&](const auto& ctx) {
           const dims3 b = ctx.block_idx();
           const std::uint64_t block =
               b.x + std::uint64_t{grid.x} * (b.y + std::uint64_t{grid.y} * b.z);
           const std::uint64_t slot = block * Block::threads + ctx.thread_rank();
           records[slot] = {ctx.grid_dim(),   ctx.block_dim(),     ctx.block_idx(),
                            ctx.thread_idx(), ctx.thread_rank(),   ctx.lane(),
                            ctx.warp(),       ctx.block_threads(), 0};
           visits[slot].fetch_add(1);
         },
         {.concurrent_blocks = concurrent_blocks});
  std::uint64_t slot = 0;
  for (std::uint32_t bz = 0; bz < grid.z; ++bz)
    for (std::uint32_t by = 0; by < grid.y; ++by)
      for (std::uint32_t bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < Block::z; ++tz)
          for (unsigned ty = 0; ty < Block::y; ++ty)
            for (unsigned tx = 0; tx < Block::x; ++tx, ++slot) {
              const index_record& r = records[slot];
              const unsigned rank = tx + Block::x * (ty + Block::y * tz);
              REQUIRE(visits[slot].load() == 1);
              CHECK(r.grid == grid);
              CHECK(r.block == dims3{Block::x, Block::y, Block::z});
              CHECK(r.block_idx == dims3{bx, by, bz});
              CHECK(r.thread_idx == dims3{tx, ty, tz});
              CHECK(r.rank == rank);
              CHECK(r.lane == rank % 32);
              CHECK(r.warp == rank / 32);
              CHECK(r.threads == Block::x * Block::y * Block::z);
            }
}

}  // namespace

TEST_CASE("every thread of every block runs once, with its indices and sizes", "[simt]") {
  check_indices<block_shape<64>>({5, 1, 1}, 1);
  check_indices<block_shape<8, 4>>({3, 2, 1}, 1);
  check_indices<block_shape<4, 3, 5>>({2, 3, 2}, 2);
  check_indices<block_shape<1>>({4, 1, 3}, 3);
}

TEST_CASE("a barrier orders shared memory: write, sync, read the neighbour", "[simt]") {
  constexpr unsigned threads = 96, rounds = 20, blocks = 3;
  std::vector<unsigned> seen(blocks * threads * rounds);
  launch({blocks, 1, 1}, block_shape<threads>{}, threads * sizeof(unsigned), [&](const auto& ctx) {
    unsigned* shared = ctx.template dynamic_shared<unsigned>();
    const unsigned rank = ctx.thread_rank(), block = ctx.block_idx().x;
    for (unsigned round = 0; round < rounds; ++round) {
      shared[rank] = 1000 * block + 10 * rank + round;
      ctx.sync();
      seen[(block * threads + rank) * rounds + round] = shared[(rank + round + 1) % threads];
      ctx.sync();
    }
  });
  for (unsigned block = 0; block < blocks; ++block)
    for (unsigned rank = 0; rank < threads; ++rank)
      for (unsigned round = 0; round < rounds; ++round)
        CHECK(seen[(block * threads + rank) * rounds + round] ==
              1000 * block + 10 * ((rank + round + 1) % threads) + round);
}

template <unsigned Threads>
void check_probe(unsigned blocks) {
  std::vector<kvc::testing::probe_record> records(blocks * Threads);
  launch({blocks, 1, 1}, block_shape<Threads>{}, 0, kvc::testing::shuffle_probe{records.data()});
  for (unsigned block = 0; block < blocks; ++block)
    for (unsigned rank = 0; rank < Threads; ++rank) {
      INFO("block of " << Threads << " threads, thread " << rank);
      CHECK(records[block * Threads + rank] == kvc::testing::expected_probe(rank, Threads));
    }
}

TEST_CASE("shuffles and warp and block reductions, in full and partial warps", "[simt]") {
  check_probe<32>(2);
  check_probe<48>(2);  // a partial warp of 16 lanes
  check_probe<96>(1);
  check_probe<100>(1);  // a partial warp of 4 lanes
  check_probe<128>(2);
  check_probe<1024>(1);
}

TEST_CASE("float reductions: sum and max in every thread", "[simt]") {
  constexpr unsigned threads = 128;
  std::vector<float> warp_sums(threads), warp_maxima(threads), block_sums(threads),
      block_maxima(threads);
  const auto value = [](unsigned rank) {
    return static_cast<float>((rank * 13) % 29) * 0.25f - 2.0f;
  };
  launch({1, 1, 1}, block_shape<threads>{}, 0, [&](const auto& ctx) {
    const unsigned rank = ctx.thread_rank();
    warp_sums[rank] = ctx.warp_sum(value(rank));
    warp_maxima[rank] = ctx.warp_max(value(rank));
    block_sums[rank] = ctx.block_sum(value(rank));
    block_maxima[rank] = ctx.block_max(value(rank));
  });
  float block_sum = 0.0f, block_max = value(0);
  for (unsigned r = 0; r < threads; ++r) {
    block_sum += value(r);
    block_max = std::max(block_max, value(r));
  }
  for (unsigned rank = 0; rank < threads; ++rank) {
    float warp_sum = 0.0f, warp_max = value(rank / 32 * 32);
    for (unsigned l = 0; l < 32; ++l) {
      warp_sum += value(rank / 32 * 32 + l);
      warp_max = std::max(warp_max, value(rank / 32 * 32 + l));
    }
    CHECK(warp_sums[rank] == Approx(warp_sum));  // quarters: exact in any order
    CHECK(warp_maxima[rank] == warp_max);
    CHECK(block_sums[rank] == Approx(block_sum));
    CHECK(block_maxima[rank] == block_max);
  }
}

TEST_CASE("dynamic shared memory is the block's own and starts undefined", "[simt]") {
  constexpr unsigned threads = 64, words = 256, blocks = 6;
  for (unsigned concurrent : {1u, 3u}) {
    std::vector<unsigned> wrong(blocks, 0), first_word(blocks, 0);
    std::vector<std::uintptr_t> address(blocks);
    launch({blocks, 1, 1}, block_shape<threads>{}, words * sizeof(unsigned),
           [&](const auto& ctx) {
             unsigned* shared = ctx.template dynamic_shared<unsigned>();
             const unsigned block = ctx.block_idx().x, rank = ctx.thread_rank();
             if (rank == 0) {
               first_word[block] = shared[0];
               address[block] = reinterpret_cast<std::uintptr_t>(shared);
             }
             ctx.sync();
             for (unsigned i = rank; i < words; i += threads) shared[i] = block * 1000 + i;
             ctx.sync();
             unsigned bad = 0;
             for (unsigned i = 0; i < words; ++i) bad += shared[i] != block * 1000 + i;
             ctx.sync();
             if (rank == 0) wrong[block] = bad;
           },
           {.concurrent_blocks = concurrent});
    for (unsigned block = 0; block < blocks; ++block) {
      CHECK(wrong[block] == 0);
      CHECK(first_word[block] == 0xffff'ffffu);  // not the previous block's, not zero
      CHECK(address[block] % 16 == 0);
    }
  }
}

TEST_CASE("row sums through asynchronous copies, a wait, barriers and a block sum", "[simt]") {
  constexpr std::uint32_t rows = 5, columns = 100, tile = 32;  // 4 tiles, the last of 4 floats
  alignas(16) static float input[rows * columns];
  for (std::uint32_t i = 0; i < rows * columns; ++i) input[i] = static_cast<float>(i % 9) - 3.0f;
  std::vector<float> sums(rows, -1.0f);
  launch({rows, 1, 1}, block_shape<16>{}, tile * sizeof(float),
         kvc::kernels::row_sums{input, sums.data(), columns, tile});
  for (std::uint32_t r = 0; r < rows; ++r) {
    float expected = 0.0f;
    for (std::uint32_t c = 0; c < columns; ++c) expected += input[r * columns + c];
    CHECK(sums[r] == expected);  // small integers: exact in any order
  }
}

TEST_CASE("an asynchronous copy lands at the wait, not before", "[simt]") {
  alignas(16) static std::uint32_t source[4 * 8];
  for (std::uint32_t i = 0; i < 4 * 8; ++i) source[i] = 7 * i + 1;
  std::vector<std::uint32_t> before(8), after(8);
  launch({1, 1, 1}, block_shape<8>{}, 8 * 16, [&](const auto& ctx) {
    auto* shared = ctx.template dynamic_shared<std::uint32_t>();
    const unsigned rank = ctx.thread_rank();
    ctx.copy_async(shared + 4 * rank, source + 4 * rank);
    before[rank] = shared[4 * rank];
    ctx.wait_async_copies();
    ctx.sync();
    after[rank] = shared[4 * ((rank + 1) % 8) + 3];
  });
  for (unsigned rank = 0; rank < 8; ++rank) {
    CHECK(before[rank] == 0xffff'ffffu);
    CHECK(after[rank] == source[4 * ((rank + 1) % 8) + 3]);
  }
}

TEST_CASE("16-byte vector loads, and misaligned addresses refused", "[simt]") {
  alignas(16) static std::uint32_t words[4 * 32];
  for (std::uint32_t i = 0; i < 4 * 32; ++i) words[i] = 0x1000u * i + 3u;
  std::vector<kvc::kernels::vec16> loaded(32);
  launch({1, 1, 1}, block_shape<32>{}, 0, [&](const auto& ctx) {
    loaded[ctx.thread_rank()] = ctx.load_16(words + 4 * ctx.thread_rank());
  });
  for (std::uint32_t t = 0; t < 32; ++t) {
    CHECK(loaded[t].x == words[4 * t]);
    CHECK(loaded[t].y == words[4 * t + 1]);
    CHECK(loaded[t].z == words[4 * t + 2]);
    CHECK(loaded[t].w == words[4 * t + 3]);
  }
  const auto misaligned_load =
      launch_failure({1, 1, 1}, block_shape<32>{}, 0, [&](const auto& ctx) {
        (void)ctx.load_16(words + 4 * ctx.thread_rank() + (ctx.thread_rank() == 5 ? 1 : 0));
      });
  CHECK(misaligned_load.code() == launch_errc::misaligned_address);
  CHECK_THAT(misaligned_load.what(), Catch::Contains("not 16-byte aligned (thread 5)"));
  const auto misaligned_copy =
      launch_failure({1, 1, 1}, block_shape<4>{}, 64, [&](const auto& ctx) {
        ctx.copy_async(ctx.template dynamic_shared<std::byte>() + 8, words);
      });
  CHECK(misaligned_copy.code() == launch_errc::misaligned_address);
  const auto outside_shared = launch_failure(
      {1, 1, 1}, block_shape<4>{}, 64, [&](const auto& ctx) { ctx.copy_async(words + 64, words); });
  CHECK(outside_shared.code() == launch_errc::not_shared_memory);
}

TEST_CASE("CUDA's limits: threads per block, block and grid sizes, shared memory", "[simt]") {
  int runs = 0;
  const auto count_runs = [&](const auto&) { ++runs; };  // never runs: refused before
  CHECK(launch_failure({1, 1, 1}, block_shape<1025>{}, 0, count_runs).code() ==
        launch_errc::too_many_threads);
  CHECK(launch_failure({1, 1, 1}, block_shape<32, 32, 2>{}, 0, count_runs).code() ==
        launch_errc::too_many_threads);
  CHECK(launch_failure({1, 1, 1}, block_shape<1, 1, 65>{}, 0, count_runs).code() ==
        launch_errc::too_many_threads);
  CHECK(launch_failure({0, 1, 1}, block_shape<32>{}, 0, count_runs).code() ==
        launch_errc::invalid_shape);
  CHECK(launch_failure({1, 65536, 1}, block_shape<32>{}, 0, count_runs).code() ==
        launch_errc::invalid_shape);
  CHECK(launch_failure({1, 1, 1}, block_shape<32>{}, 163 * 1024 + 1, count_runs).code() ==
        launch_errc::shared_memory_exceeded);
  const launch_options hopper{.target = kvc::simt::sm_90};
  const auto over_hopper =
      launch_failure({1, 1, 1}, block_shape<32>{}, 227 * 1024 + 1, count_runs, hopper);
  CHECK(over_hopper.code() == launch_errc::shared_memory_exceeded);
  CHECK_THAT(over_hopper.what(), Catch::Contains("sm_90 gives a block at most 232448"));
  CHECK(runs == 0);

  // At the limits, the launches run.
  std::atomic<int> threads_run{0};
  const auto count_threads = [&](const auto&) { threads_run.fetch_add(1); };
  launch({1, 1, 1}, block_shape<1024>{}, 163 * 1024, count_threads);
  launch({1, 1, 1}, block_shape<2>{}, 227 * 1024, count_threads, hopper);
  launch({1, 1, 1}, block_shape<1, 1, 64>{}, 0, count_threads);
  CHECK(threads_run.load() == 1024 + 2 + 64);
}

TEST_CASE("a barrier that not every thread reaches is reported, not hung", "[simt]") {
  SECTION("a thread returns before the barrier") {
    const auto error = launch_failure({1, 1, 1}, block_shape<64>{}, 0, [](const auto& ctx) {
      if (ctx.thread_rank() == 3) return;
      ctx.sync();
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("63 of 64 threads wait at the barrier and 1 exited "
                                             "without reaching it (the first: thread 3)"));
  }
  SECTION("half the block skips a block reduction, in the third block only") {
    std::atomic<int> blocks_begun{0};
    const auto error = launch_failure({6, 1, 1}, block_shape<128>{}, 0, [&](const auto& ctx) {
      if (ctx.thread_rank() == 0) blocks_begun.fetch_add(1);
      if (ctx.block_idx().x == 2 && ctx.thread_rank() >= 64) return;
      (void)ctx.block_sum(1);
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("block (2, 0, 0)"));
    CHECK(blocks_begun.load() == 3);  // no block begins after the failing one
  }
  SECTION("threads wait at a second barrier that the others never reach") {
    const auto error = launch_failure({2, 1, 1}, block_shape<40>{}, 0, [](const auto& ctx) {
      ctx.sync();
      if (ctx.thread_rank() % 2 == 0) ctx.sync();
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
  }
}

TEST_CASE("a shuffle that not every named lane joins is reported, not hung", "[simt]") {
  SECTION("half the warp returns") {
    const auto error = launch_failure({1, 1, 1}, block_shape<64>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 1 && ctx.lane() >= 16) return;
      (void)ctx.shfl_xor(1, 1);
    });
    CHECK(error.code() == launch_errc::shuffle_divergence);
    CHECK_THAT(error.what(), Catch::Contains("warp 1: lanes 0x0000ffff wait in shfl_xor with "
                                             "member mask 0xffffffff, and lane 16 exited"));
  }
  SECTION("a lane waits at the barrier instead") {
    const auto error = launch_failure({1, 1, 1}, block_shape<32>{}, 0, [](const auto& ctx) {
      if (ctx.lane() != 7) (void)ctx.warp_sum(1);
      ctx.sync();
    });
    CHECK(error.code() == launch_errc::shuffle_divergence);
    CHECK_THAT(error.what(), Catch::Contains("lane 7 waits at a block barrier instead"));
  }
  SECTION("the default mask names lanes that a partial warp does not have") {
    const auto error = launch_failure({1, 1, 1}, block_shape<48>{}, 0,
                                      [](const auto& ctx) { (void)ctx.shfl_idx(1, 0); });
    CHECK(error.code() == launch_errc::shuffle_divergence);
    CHECK_THAT(error.what(), Catch::Contains("that this warp of 16 lanes does not have"));
  }
  SECTION("lanes of one warp call different shuffles") {
    const auto error = launch_failure({1, 1, 1}, block_shape<32>{}, 0, [](const auto& ctx) {
      if (ctx.lane() < 8)
        (void)ctx.shfl_xor(1, 1);
      else
        (void)ctx.shfl_down(1, 1u);
    });
    CHECK(error.code() == launch_errc::shuffle_divergence);
  }
  SECTION("a lane reads a lane outside the member mask") {
    const auto error = launch_failure({1, 1, 1}, block_shape<32>{}, 0, [](const auto& ctx) {
      if (ctx.lane() < 16) (void)ctx.shfl_down(1, 1u, 0x0000ffffu);
    });
    CHECK(error.code() == launch_errc::shuffle_divergence);
    CHECK_THAT(error.what(), Catch::Contains("lane 15 reads lane 16"));
  }
  SECTION("a member mask without the calling lane") {
    const auto error = launch_failure({1, 1, 1}, block_shape<32>{}, 0, [](const auto& ctx) {
      (void)ctx.shfl_xor(1, 1, 0x0000ffffu);
    });
    CHECK(error.code() == launch_errc::shuffle_divergence);
    CHECK_THAT(error.what(), Catch::Contains("which does not name the lane itself"));
  }
}

TEST_CASE("an exception thrown in a kernel reaches the caller once the block is torn down",
          "[simt]") {
  std::atomic<int> blocks_begun{0}, past_barrier{0};
  const auto kernel = [&](const auto& ctx) {
    if (ctx.thread_rank() == 0) blocks_begun.fetch_add(1);
    if (ctx.block_idx().x == 1 && ctx.thread_rank() == 37)
      throw std::runtime_error("thread 37 of block 1 gives up");
    ctx.sync();
    past_barrier.fetch_add(1);
  };
  for (unsigned concurrent : {1u, 2u}) {
    blocks_begun = 0;
    past_barrier = 0;
    CHECK_THROWS_WITH(
        launch({4, 1, 1}, block_shape<64>{}, 0, kernel, {.concurrent_blocks = concurrent}),
        "thread 37 of block 1 gives up");
    if (concurrent == 1) {
      CHECK(blocks_begun.load() == 2);   // blocks 0 and 1; none after the failure
      CHECK(past_barrier.load() == 64);  // block 0 only: block 1 never passed its barrier
    } else {  // block 0's team may take block 2 before block 1 has failed
      CHECK(blocks_begun.load() >= 2);
      CHECK(past_barrier.load() % 64 == 0);
      CHECK(past_barrier.load() <= 64 * (blocks_begun.load() - 1));
    }
  }
  // The emulator keeps nothing from a failed launch.
  std::atomic<int> threads_run{0};
  launch({2, 1, 1}, block_shape<64>{}, 0, [&](const auto& ctx) {
    ctx.sync();
    threads_run.fetch_add(1);
  });
  CHECK(threads_run.load() == 128);
}

TEST_CASE("blocks spread over the cores give what blocks one after another give", "[simt]") {
  constexpr std::uint32_t rows = 12, columns = 64, tile = 16;
  alignas(16) static float input[rows * columns];
  for (std::uint32_t i = 0; i < rows * columns; ++i)
    input[i] = static_cast<float>((i * 7) % 23) * 0.5f;
  std::vector<float> serial(rows), spread(rows), expected(rows, 0.0f);
  const auto run = [&](std::vector<float>& out, unsigned concurrent) {
    launch({rows, 1, 1}, block_shape<32>{}, tile * sizeof(float),
           kvc::kernels::row_sums{input, out.data(), columns, tile},
           {.concurrent_blocks = concurrent});
  };
  run(serial, 1);
  run(spread, 3);
  for (std::uint32_t r = 0; r < rows; ++r)
    for (std::uint32_t c = 0; c < columns; ++c) expected[r] += input[r * columns + c];
  CHECK(spread == serial);  // the same fold order in each block, whatever thread runs it
  CHECK(serial == expected);
  check_indices<block_shape<32, 2>>({7, 1, 1}, 4);
}

TEST_CASE("the host threads are kept from one launch to the next, and shared by host threads",
          "[simt]") {
  auto& host = kvc::simt::detail::host_threads::instance();
  // Each CUDA thread of a launch has a host thread of its own; a second launch of the same size
  // makes none (the first made them, unless a test before it did) and leaves them all idle.
  const auto thread_ids = [] {
    std::mutex mutex;
    std::set<std::thread::id> ids;
    launch({2, 1, 1}, block_shape<192>{}, 0, [&](const auto& ctx) {
      ctx.sync();
      const std::lock_guard lock(mutex);
      ids.insert(std::this_thread::get_id());
    });
    return ids;
  };
  const std::set<std::thread::id> first = thread_ids();
  CHECK(first.size() == 192);
  const std::size_t idle = host.idle_count();
  CHECK(idle >= 192);
  const std::set<std::thread::id> second = thread_ids();
  CHECK(second.size() == 192);
  CHECK(host.idle_count() == idle);
  CHECK(std::includes(first.begin(), first.end(), second.begin(), second.end()));
  // Two teams of 96 borrow 192 threads too (whichever team ends up running the blocks).
  launch({4, 1, 1}, block_shape<96>{}, 0, [](const auto& ctx) { ctx.sync(); },
         {.concurrent_blocks = 2});
  CHECK(host.idle_count() == idle);

  // Launches from two host threads at once borrow threads of their own.
  std::vector<unsigned> results[2];
  const auto launches = [&](unsigned which) {
    for (unsigned round = 0; round < 5; ++round) {
      std::vector<unsigned> out(128);
      launch({2, 1, 1}, block_shape<64>{}, 64 * sizeof(unsigned), [&](const auto& ctx) {
        unsigned* shared = ctx.template dynamic_shared<unsigned>();
        const unsigned rank = ctx.thread_rank();
        shared[rank] = 100 * which + 10 * round + rank;
        ctx.sync();
        out[ctx.block_idx().x * 64 + rank] = shared[63 - rank];
      });
      results[which].insert(results[which].end(), out.begin(), out.end());
    }
  };
  std::thread other(launches, 1u);
  launches(0);
  other.join();
  for (unsigned which = 0; which < 2; ++which) {
    REQUIRE(results[which].size() == 5 * 128);
    for (unsigned i = 0; i < 5 * 128; ++i)
      CHECK(results[which][i] == 100 * which + 10 * (i / 128) + 63 - i % 64);
  }
}

TEST_CASE("named barriers: a producer warp fills a ring of buffers for two warpgroups", "[simt]") {
  const bool producer_warpgroup = GENERATE(false, true);
  using ring = kvc::testing::named_barrier_ring<>;
  constexpr unsigned tiles = 9, blocks = 3;
  alignas(16) static float source[blocks * tiles * ring::tile];
  for (unsigned i = 0; i < blocks * tiles * ring::tile; ++i) source[i] = ring::source_value(i);
  std::vector<float> sums(blocks * ring::consumers, -1.0f);
  if (producer_warpgroup) {  // three warpgroups, registers moved from the producer's
    using warpgroups = kvc::testing::named_barrier_ring<true>;
    launch({blocks, 1, 1}, block_shape<warpgroups::block_threads>{}, ring::shared_bytes,
           warpgroups{source, sums.data(), tiles}, {.concurrent_blocks = 2});
  } else {
    launch({blocks, 1, 1}, block_shape<ring::threads>{}, ring::shared_bytes,
           ring{source, sums.data(), tiles}, {.concurrent_blocks = 2});
  }
  for (unsigned block = 0; block < blocks; ++block)
    for (unsigned rank = 0; rank < ring::consumers; ++rank) {
      INFO("block " << block << ", thread " << rank);
      CHECK(sums[block * ring::consumers + rank] == ring::expected_sum(source, tiles, block, rank));
    }
}

TEST_CASE("named barriers: two warpgroups take turns (FlashAttention-3's ping-pong)", "[simt]") {
  using ping_pong = kvc::testing::named_barrier_ping_pong;
  constexpr unsigned turns = 12;
  std::vector<unsigned> seen(turns * 128, 0);
  // Three blocks one after another on one team: the phase the last turn leaves open must not
  // reach the next block.
  launch({3, 1, 1}, block_shape<ping_pong::threads>{}, turns * 128 * sizeof(unsigned),
         ping_pong{seen.data(), turns}, {.concurrent_blocks = 1});
  for (unsigned turn = 0; turn < turns; ++turn)
    for (unsigned column = 0; column < 128; ++column) CHECK(seen[turn * 128 + column] == turn + 1);
}

TEST_CASE("named barriers against their rules are reported, not hung", "[simt]") {
  const auto in_64_threads = [](auto kernel) {
    return launch_failure({1, 1, 1}, block_shape<64>{}, 0, kernel);
  };
  SECTION("id 0 (the block barrier's) and id 16 (there are 16)") {
    for (unsigned id : {0u, 16u}) {
      const auto error = in_64_threads([id](const auto& ctx) { ctx.sync_named(id, 64); });
      CHECK(error.code() == launch_errc::barrier_misuse);
      CHECK_THAT(error.what(), Catch::Contains("ids 1 to 15 are the kernel's"));
    }
  }
  SECTION("a count that is not whole warps, or more than the block has") {
    for (unsigned count : {0u, 48u, 96u}) {
      const auto error = in_64_threads([count](const auto& ctx) { ctx.arrive_named(1, count); });
      CHECK(error.code() == launch_errc::barrier_misuse);
      CHECK_THAT(error.what(), Catch::Contains("a multiple of 32 up to the block's 64"));
    }
  }
  SECTION("calls of one phase with different counts") {
    const auto error = launch_failure({1, 1, 1}, block_shape<96>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 2) return;
      ctx.sync_named(7, ctx.warp() == 0 ? 64 : 96);
    });
    CHECK(error.code() == launch_errc::barrier_misuse);
    CHECK_THAT(error.what(), Catch::Contains("every call of a phase names the same count"));
  }
  SECTION("a thread arriving twice in one phase") {
    const auto error = in_64_threads([](const auto& ctx) {
      if (ctx.warp() == 1) return;
      ctx.arrive_named(3, 64);
      ctx.arrive_named(3, 64);
    });
    CHECK(error.code() == launch_errc::barrier_misuse);
    CHECK_THAT(error.what(), Catch::Contains("a second time in one phase"));
  }
  SECTION("lanes of one warp in different calls") {
    const auto error = in_64_threads([](const auto& ctx) {
      if (ctx.warp() == 0 && ctx.lane() < 16)
        ctx.arrive_named(6, 64);
      else
        ctx.sync_named(6, 64);
    });
    CHECK(error.code() == launch_errc::barrier_misuse);
    CHECK_THAT(error.what(), Catch::Contains("(every lane of a warp makes the same call)"));
  }
  SECTION("half of each warp arrives: the warps are never counted") {
    const auto error = in_64_threads([](const auto& ctx) {
      if (ctx.lane() < 16) ctx.arrive_named(5, 32);
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("lanes 0x0000ffff of warp 0 wait at named barrier 5 "
                                             "for the rest of their warp, and lane 16 exited"));
  }
  SECTION("a warp that exits without arriving") {
    const auto error = launch_failure({1, 1, 1}, block_shape<96>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 2) return;
      ctx.sync_named(2, 96);
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("named barrier 2 counts 96 threads, 64 have arrived, "
                                             "and thread 64 exited without arriving"));
  }
  SECTION("the barrier waited at is named, not one with arrivals only") {
    const auto error = launch_failure({1, 1, 1}, block_shape<96>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 2) return;
      ctx.arrive_named(1, 96);  // handed back, nobody waits
      ctx.sync_named(9, 96);
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("named barrier 9 counts 96 threads, 64 have arrived"));
  }
  SECTION("two warps each waiting at the barrier the other never reaches") {
    const auto error = in_64_threads([](const auto& ctx) { ctx.sync_named(1 + ctx.warp(), 64); });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("named barrier 1 counts 64 threads, 32 have arrived, "
                                             "and thread 32 waits at named barrier 2 instead"));
  }
}

TEST_CASE("register limits are set by whole warpgroups, all in the same call", "[simt]") {
  SECTION("one warp lowers where the other three raise") {
    const auto error = launch_failure({1, 1, 1}, block_shape<128>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 2)
        ctx.template lower_registers<40>();
      else
        ctx.template raise_registers<232>();
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(),
               Catch::Contains("warpgroup divergence in block (0, 0, 0), warpgroup 0"));
  }
  SECTION("one warp lowers to another count") {
    const auto error = launch_failure({1, 1, 1}, block_shape<128>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 3)
        ctx.template lower_registers<24>();
      else
        ctx.template lower_registers<40>();
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("lower_registers<"));
  }
  SECTION("a warp leaves before it") {
    const auto error = launch_failure({1, 1, 1}, block_shape<256>{}, 0, [](const auto& ctx) {
      if (ctx.warp() == 7) return;
      ctx.template lower_registers<24>();
    });
    CHECK(error.code() == launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Contains("warpgroup 1: 96 of its 128 threads wait in "
                                             "lower_registers, and thread 224 exited"));
  }
  SECTION("a block whose last warpgroup is not whole") {
    const auto error = launch_failure({1, 1, 1}, block_shape<160>{}, 0,
                                      [](const auto& ctx) { ctx.template raise_registers<256>(); });
    CHECK(error.code() == launch_errc::wgmma_misuse);
    CHECK_THAT(error.what(), Catch::Contains("raise_registers in a block of 160 threads"));
  }
}

TEST_CASE("a named barrier counts warps: two warps complete a phase of 32 each", "[simt]") {
  // Legal on a GPU: each warp's arrival is 32 threads, a phase of its own; were lanes counted
  // one by one, lanes of both warps could share a phase.
  std::vector<unsigned> seen(64, 0);
  launch({4, 1, 1}, block_shape<64>{}, 64 * sizeof(unsigned), [&](const auto& ctx) {
    unsigned* shared = ctx.template dynamic_shared<unsigned>();
    const unsigned rank = ctx.thread_rank();
    shared[rank] = rank + 1;
    for (int round = 0; round < 8; ++round) ctx.sync_named(1, 32);
    ctx.sync_warp();
    if (ctx.block_idx().x == 0) seen[rank] = shared[rank ^ 1u];
  });
  for (unsigned rank = 0; rank < 64; ++rank) CHECK(seen[rank] == (rank ^ 1u) + 1);
}

TEST_CASE("a named barrier counts a block's partial last warp as a whole warp", "[simt]") {
  // 48 threads: warp 1 has 16 lanes and counts 32 once they have all arrived (the PTX ISA marks
  // warps' arrival), so a count of 64 completes; the barrier orders the writes before it.
  std::vector<unsigned> seen(48, 0);
  launch({1, 1, 1}, block_shape<48>{}, 48 * sizeof(unsigned), [&](const auto& ctx) {
    unsigned* shared = ctx.template dynamic_shared<unsigned>();
    shared[ctx.thread_rank()] = 3 * ctx.thread_rank() + 1;
    ctx.sync_named(15, 64);
    seen[ctx.thread_rank()] = shared[(ctx.thread_rank() + 17) % 48];
  });
  for (unsigned rank = 0; rank < 48; ++rank) CHECK(seen[rank] == 3 * ((rank + 17) % 48) + 1);
}

// Not run by CTest: the kernel of the barrier test with its barriers removed, for
// ThreadSanitizer to report (docs/simt.md shows the report). Without ThreadSanitizer it
// usually passes: the race is real, its effect rare.
TEST_CASE("a kernel without its barrier races", "[.race]") {
  constexpr unsigned threads = 64;
  std::vector<unsigned> seen(threads);
  launch({1, 1, 1}, block_shape<threads>{}, threads * sizeof(unsigned), [&](const auto& ctx) {
    unsigned* shared = ctx.template dynamic_shared<unsigned>();
    const unsigned rank = ctx.thread_rank();
    shared[rank] = 10 * rank;
    // ctx.sync();  -- removed
    seen[rank] = shared[(rank + 1) % threads];
  });
  SUCCEED("ThreadSanitizer, if present, has reported the race on the shared array");
}
