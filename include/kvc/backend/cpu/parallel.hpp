#pragma once
// How the CPU backend runs work in parallel. A parallel_for_ref is a non-owning handle to
// anything that can run task(i) for every i in [0, count) and return when all are done: an
// engine hands in its own pool this way. thread_pool is the built-in one; serial() runs
// everything on the calling thread. Handles and tasks are plain function pointers and
// object pointers: calling them allocates nothing.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace kvc::cpu {

/// A non-owning reference to a callable taking an index.
class task_ref {
 public:
  template <class F>
  task_ref(const F& f)  // NOLINT(google-explicit-constructor): a reference to any callable
      : object_(&f), call_([](const void* o, std::size_t i) { (*static_cast<const F*>(o))(i); }) {}
  void operator()(std::size_t i) const { call_(object_, i); }

 private:
  const void* object_;
  void (*call_)(const void*, std::size_t);
};

/// A non-owning handle to a parallel-for: run(count, task) calls task(i) for each i, in any
/// order and on any threads, and returns when all calls have returned.
class parallel_for_ref {
 public:
  using run_function = void (*)(void* executor, std::size_t count, task_ref task);
  parallel_for_ref(void* executor, run_function run, int threads)
      : executor_(executor), run_(run), threads_(threads) {}

  void operator()(std::size_t count, task_ref task) const { run_(executor_, count, task); }
  /// Returns how many threads the executor runs tasks on (for splitting work).
  int threads() const { return threads_; }

 private:
  void* executor_;
  run_function run_;
  int threads_;
};

/// Returns an executor that runs everything on the calling thread.
inline parallel_for_ref serial() {
  return {nullptr,
          [](void*, std::size_t count, task_ref task) {
            for (std::size_t i = 0; i < count; ++i) task(i);
          },
          1};
}

/// A fixed set of worker threads; the calling thread works too. Tasks are handed out one
/// index at a time from an atomic counter, so uneven tasks balance themselves.
///
/// run() returns only when no thread runs the task any more. A task that throws cancels the
/// indices not yet handed out; the first exception is rethrown to run()'s caller once every
/// running task has returned. A task may call run() on the same pool: the inner call runs on
/// the calling thread (the pool's threads are all busy with the outer one), which serves
/// nesting without deadlock. Calls from unrelated threads take turns.
class thread_pool {
 public:
  explicit thread_pool(int threads = static_cast<int>(std::thread::hardware_concurrency()))
      : threads_(threads < 1 ? 1 : threads) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  int threads() const { return threads_; }

  void run(std::size_t count, task_ref task) {
    if (count == 0) return;
    if (workers_.empty() || count == 1 || running_here() == this) {  // serial, or nested
      for (std::size_t i = 0; i < count; ++i) task(i);
      return;
    }
    std::unique_lock run_lock(run_mutex_);  // one job at a time
    {
      std::lock_guard lock(mutex_);
      task_ = &task;
      count_ = count;
      next_.store(0, std::memory_order_relaxed);
      busy_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    drain(task, count);
    std::exception_ptr error;
    {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [this] { return busy_ == 0; });
      task_ = nullptr;
      error = std::exchange(error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

  parallel_for_ref ref() {
    return {this,
            [](void* pool, std::size_t count, task_ref task) {
              static_cast<thread_pool*>(pool)->run(count, task);
            },
            threads_};
  }

 private:
  // The pool whose task this thread is running, if any (nested run() calls go serial).
  static const thread_pool*& running_here() {
    thread_local const thread_pool* pool = nullptr;
    return pool;
  }

  void drain(task_ref task, std::size_t count) noexcept {
    const thread_pool* outer = std::exchange(running_here(), this);
    for (std::size_t i = next_.fetch_add(1, std::memory_order_relaxed); i < count;
         i = next_.fetch_add(1, std::memory_order_relaxed)) {
      try {
        task(i);
      } catch (...) {
        next_.store(count, std::memory_order_relaxed);  // hand out nothing more
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    running_here() = outer;
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      const task_ref* task;
      std::size_t count;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        task = task_;
        count = count_;
      }
      drain(*task, count);
      {
        std::lock_guard lock(mutex_);
        if (--busy_ == 0) done_.notify_one();
      }
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const task_ref* task_ = nullptr;
  std::size_t count_ = 0;
  std::atomic<std::size_t> next_{0};
  int busy_ = 0;
  std::exception_ptr error_;  ///< the first exception of the current job
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
};

/// Returns the built-in pool: one per process, with a thread per hardware thread.
inline parallel_for_ref default_parallel_for() {
  static thread_pool pool;
  return pool.ref();
}

}  // namespace kvc::cpu
