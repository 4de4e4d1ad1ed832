#pragma once
// The host threads the emulator plays CUDA threads on, kept from one launch to the next:
// making and joining a block's 256 threads cost a launch about 17 ms on 2 vCPUs, where a
// barrier among them costs 0.5 ms (docs/simt.md). A launch borrows as many idle threads as it
// needs, makes more only when there are too few, hands each one job, and gives them back
// once every job has returned. An idle thread sleeps on its own semaphore; the threads end
// with the program.

#include <cstddef>
#include <memory>
#include <mutex>
#include <semaphore>
#include <thread>
#include <utility>
#include <vector>

namespace kvc::simt::detail {

class host_threads {
 public:
  /// What each borrowed thread runs: run(context, index), for its own index. It must not throw.
  struct job {
    void (*run)(const void* context, unsigned index) = nullptr;
    const void* context = nullptr;
  };

  /// The process's threads (made at the first launch, joined at exit).
  static host_threads& instance() {
    static host_threads threads;
    return threads;
  }

  host_threads() = default;
  host_threads(const host_threads&) = delete;
  host_threads& operator=(const host_threads&) = delete;
  ~host_threads() {
    for (const auto& idle : idle_) {
      idle->stop = true;
      idle->go.release();
      idle->thread.join();
    }
  }

  /// Runs `work` for the indices 0 .. count - 1, each on a thread of its own, calls started()
  /// once every thread has its job, and returns once every job has returned. Where too few
  /// threads exist and no more can be made it throws std::system_error and runs nothing.
  template <class Started>
  void run(unsigned count, job work, Started&& started) {
    std::vector<std::unique_ptr<worker>> borrowed = borrow(count);
    for (unsigned i = 0; i < count; ++i) {
      borrowed[i]->work = work;
      borrowed[i]->index = i;
      borrowed[i]->go.release();
    }
    std::forward<Started>(started)();
    for (const auto& w : borrowed) w->done.acquire();
    give_back(borrowed);
  }

  /// Threads made so far and idle now (for tests).
  std::size_t idle_count() {
    std::lock_guard lock(mutex_);
    return idle_.size();
  }

 private:
  // `go` starts a job (or, with stop, ends the thread), `done` says it returned; each write of
  // the launching thread comes before its release, and each of the job's before done's.
  struct worker {
    std::binary_semaphore go{0}, done{0};
    job work;
    unsigned index = 0;
    bool stop = false;
    std::thread thread;
  };

  static void serve(worker& w) {
    for (;;) {
      w.go.acquire();
      if (w.stop) return;
      w.work.run(w.work.context, w.index);
      w.done.release();
    }
  }

  // The idle list has room for every thread made (made_ counts those about to be), so that
  // giving threads back never allocates, and never throws with threads in hand.
  std::vector<std::unique_ptr<worker>> borrow(unsigned count) {
    std::vector<std::unique_ptr<worker>> borrowed;
    borrowed.reserve(count);
    {
      std::lock_guard lock(mutex_);
      const std::size_t taken = count < idle_.size() ? count : idle_.size();
      idle_.reserve(made_ + (count - taken));
      made_ += count - taken;
      for (std::size_t i = 0; i < taken; ++i) {
        borrowed.push_back(std::move(idle_.back()));
        idle_.pop_back();
      }
    }
    try {
      while (borrowed.size() < count) {
        auto w = std::make_unique<worker>();
        w->thread = std::thread(serve, std::ref(*w));
        borrowed.push_back(std::move(w));
      }
    } catch (...) {
      {
        std::lock_guard lock(mutex_);
        made_ -= count - borrowed.size();
      }
      give_back(borrowed);
      throw;
    }
    return borrowed;
  }

  void give_back(std::vector<std::unique_ptr<worker>>& borrowed) noexcept {
    std::lock_guard lock(mutex_);
    for (auto& w : borrowed) idle_.push_back(std::move(w));
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<worker>> idle_;
  std::size_t made_ = 0;
};

}  // namespace kvc::simt::detail
