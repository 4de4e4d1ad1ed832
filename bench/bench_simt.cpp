// What one block barrier costs in the SIMT host emulator (one host thread per CUDA thread,
// a mutex per block and a semaphore per thread), against the alternative it was chosen over:
// fibers on one host thread, switched with swapcontext at each barrier. docs/simt.md quotes
// the figures. Each benchmark runs `barriers` barriers per block; the time per barrier is
// the counter "per_barrier", in wall time (the launch included, spread over the barriers; the
// host threads are made by the first launch and kept). emulator_launch is the time of a
// whole launch of one block with one barrier.

#include <benchmark/benchmark.h>
#include <ucontext.h>

#include <cstddef>
#include <vector>

#include "kvc/backend/simt/launch.hpp"

namespace {

constexpr int barriers = 200;

template <unsigned Threads>
void emulator_barrier(benchmark::State& state) {
  for (auto _ : state) {
    kvc::simt::launch({1, 1, 1}, kvc::kernels::block_shape<Threads>{}, 0, [](const auto& ctx) {
      for (int i = 0; i < barriers; ++i) ctx.sync();
    });
  }
  state.counters["per_barrier"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * barriers,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void emulator_launch(benchmark::State& state) {
  for (auto _ : state)
    kvc::simt::launch({1, 1, 1}, kvc::kernels::block_shape<256>{}, 0,
                      [](const auto& ctx) { ctx.sync(); });
}

// Fibers: a round-robin scheduler; a barrier is a switch to the next fiber, and a phase ends
// when the last fiber has switched back to the scheduler.
struct fiber_block {
  ucontext_t scheduler{};
  std::vector<ucontext_t> fibers;
  std::vector<std::vector<char>> stacks;
  int current = 0;
};
fiber_block* running_block = nullptr;

void fiber_body() {
  fiber_block& block = *running_block;
  for (int i = 0; i < barriers; ++i) {
    const int me = block.current;
    const int next = me + 1;
    if (next < static_cast<int>(block.fibers.size())) {
      block.current = next;
      swapcontext(&block.fibers[static_cast<std::size_t>(me)],
                  &block.fibers[static_cast<std::size_t>(next)]);
    } else {
      swapcontext(&block.fibers[static_cast<std::size_t>(me)], &block.scheduler);
    }
  }
}

void fiber_barrier(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    fiber_block block;
    block.fibers.resize(threads);
    block.stacks.assign(threads, std::vector<char>(64 * 1024));
    running_block = &block;
    for (std::size_t f = 0; f < threads; ++f) {
      getcontext(&block.fibers[f]);
      block.fibers[f].uc_stack.ss_sp = block.stacks[f].data();
      block.fibers[f].uc_stack.ss_size = block.stacks[f].size();
      block.fibers[f].uc_link = &block.scheduler;
      makecontext(&block.fibers[f], fiber_body, 0);
    }
    for (int phase = 0; phase <= barriers; ++phase) {  // the last phase lets the fibers return
      block.current = 0;
      swapcontext(&block.scheduler, &block.fibers[0]);
    }
  }
  state.counters["per_barrier"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * barriers,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(emulator_barrier<32>)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(emulator_barrier<128>)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(emulator_barrier<256>)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(emulator_barrier<1024>)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(emulator_launch)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(fiber_barrier)
    ->Arg(32)
    ->Arg(128)
    ->Arg(256)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
