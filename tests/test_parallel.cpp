// The built-in thread pool: every index runs once; an exception from any task reaches the
// caller only after every running task has returned, and cancels what was not handed out;
// a task may call run() on its own pool; the pool survives all of it. Run under
// ThreadSanitizer by .ci/run.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kvc/backend/cpu/parallel.hpp"

using kvc::cpu::thread_pool;

TEST_CASE("the thread pool runs every index exactly once") {
  thread_pool pool(3);
  for (std::size_t count : {1u, 2u, 7u, 1000u}) {
    std::vector<std::atomic<int>> runs(count);
    pool.run(count, [&](std::size_t i) { runs[i].fetch_add(1); });
    for (const auto& r : runs) CHECK(r.load() == 1);
  }
}

TEST_CASE("an exception from any task reaches the caller after every task has returned") {
  thread_pool pool(3);
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> running{0}, finished{0};
    const std::size_t thrower = static_cast<std::size_t>(round) % 64;
    bool caught = false;
    try {
      pool.run(64, [&](std::size_t i) {
        running.fetch_add(1);
        if (i == thrower) {
          running.fetch_sub(1);
          throw std::runtime_error("task " + std::to_string(i));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        finished.fetch_add(1);
        running.fetch_sub(1);
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "task " + std::to_string(thrower);
    }
    REQUIRE(caught);
    REQUIRE(running.load() == 0);  // nothing runs after run() has returned
    REQUIRE(finished.load() < 64);
  }
  // The pool is still whole.
  std::atomic<int> sum{0};
  pool.run(100, [&](std::size_t i) { sum.fetch_add(static_cast<int>(i)); });
  CHECK(sum.load() == 4950);
}

TEST_CASE("a task may call run on its own pool") {
  thread_pool pool(2);
  std::vector<std::atomic<int>> cells(8 * 16);
  pool.run(8, [&](std::size_t outer) {
    pool.run(16, [&](std::size_t inner) { cells[outer * 16 + inner].fetch_add(1); });
  });
  for (const auto& c : cells) CHECK(c.load() == 1);
  // Exceptions from an inner run reach the outer task, and through it the caller.
  CHECK_THROWS_AS(pool.run(4,
                           [&](std::size_t) {
                             pool.run(4, [](std::size_t j) {
                               if (j == 3) throw std::logic_error("inner");
                             });
                           }),
                  std::logic_error);
}

TEST_CASE("calls from several threads take turns") {
  thread_pool pool(2);
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r)
        pool.run(32, [&](std::size_t i) { total.fetch_add(static_cast<long>(i)); });
    });
  for (auto& t : callers) t.join();
  CHECK(total.load() == 4L * 50 * (31 * 32 / 2));
}
