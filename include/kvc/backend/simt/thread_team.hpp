#pragma once
// The host threads that play one CUDA block at a time: one thread per CUDA thread, reused
// for block after block of a launch. One mutex per team guards every barrier, every warp
// exchange and the bookkeeping of who waits where, so that a block in which every live
// thread waits and none can ever be released is seen at once and reported as a
// launch_error (barrier or shuffle divergence) instead of hanging. A waiting thread sleeps on
// a semaphore of its own, released by the thread that ends the wait once it has written what
// the sleeper reads (a shuffle's result, whether the block is torn down): a barrier wakes
// each thread once, without the whole team then queueing for the mutex (docs/simt.md,
// "Threads or fibers"). The mutex and the semaphores are also what ThreadSanitizer sees: a
// barrier orders the shared memory accesses around it, and a kernel without its barrier is
// reported as a race.

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <vector>

#include "kvc/backend/simt/errors.hpp"
#include "kvc/backend/simt/launch_state.hpp"
#include "kvc/backend/simt/named_barriers.hpp"
#include "kvc/backend/simt/team_records.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt::detail {

/// Thrown into the threads of a block that is being torn down (another thread failed).
/// Not a std::exception, so a kernel's catch (const std::exception&) lets it pass.
struct block_torn_down {};

class thread_team {
 public:
  thread_team(unsigned threads, std::size_t shared_bytes, launch_state& launch)
      : launch_(launch),
        threads_(threads),
        warp_count_((threads + kernels::warp_size - 1) / kernels::warp_size),
        shared_bytes_(shared_bytes),
        shared_(shared_bytes == 0 ? nullptr : new std::byte[shared_bytes]),
        copy_targets_(std::make_unique<std::atomic<std::uint16_t>[]>((shared_bytes + 3) / 4)),
        block_slots_(new slot[threads]),
        mma_fragments_(new mma_fragment[2 * std::size_t{threads}]),
        warps_(new warp_exchange[warp_count_]),
        warpgroups_(threads / warpgroup_size),
        status_(threads, thread_status::running),
        sleepers_(new sleeper[threads]),
        named_waits_(threads, 0) {
    for (unsigned w = 0; w < warp_count_; ++w)
      warps_[w].lanes = w + 1 < warp_count_ ? kernels::warp_size : threads - w * kernels::warp_size;
  }
  thread_team(const thread_team&) = delete;
  thread_team& operator=(const thread_team&) = delete;

  /// Begins the first block, once every thread of the team exists.
  void start() {
    std::unique_lock lock(mutex_);
    wake_list woken;
    begin_next_block(woken);
    lock.unlock();
    release(woken);
  }
  /// Thread `rank` waits for the block after the one numbered `seen`; false when the team is
  /// done.
  bool wait_for_block(unsigned rank, std::uint64_t& seen, kernels::dims3& block_idx) {
    std::unique_lock lock(mutex_);
    // Woken, it reads without the lock what begin_next_block wrote before the release, which
    // changes again only once this thread has finished the block.
    if (block_sequence_ == seen) sleep(lock, rank, true);
    seen = block_sequence_;
    if (done_) return false;
    block_idx = block_idx_;
    return true;
  }

  /// Waits at the block barrier (__syncthreads): every thread of the block must reach it.
  void sync(unsigned rank) {
    std::unique_lock lock(mutex_);
    if (aborted_) throw block_torn_down{};
    if (++at_barrier_ == threads_) {
      at_barrier_ = 0;
      wake_list woken;
      for (unsigned r = 0; r < threads_; ++r)
        if (status_[r] == thread_status::at_barrier) {
          status_[r] = thread_status::running;
          mark_woken(r, woken);
        }
      lock.unlock();
      release(woken);
      return;
    }
    status_[rank] = thread_status::at_barrier;
    check_progress();
    if (aborted_ || sleep(lock, rank, false)) throw block_torn_down{};
  }

  /// Waits until every thread of the calling thread's warpgroup (threads 128 g .. 128 g + 127)
  /// is here, in the same call (`call`: "wgmma_wait", where the emulator's warpgroup matrix
  /// multiply-accumulate gathers its operands, or a register limit's).
  void sync_warpgroup(unsigned rank, const char* call, unsigned argument = 0) {
    std::unique_lock lock(mutex_);
    if (aborted_) throw block_torn_down{};
    warpgroup_state& group = warpgroups_[rank / warpgroup_size];
    if (group.arrived == 0) {
      group.call = call;
      group.argument = argument;
    } else if (std::strcmp(group.call, call) != 0 || group.argument != argument) {
      const auto named = [](const char* name, unsigned value) {
        return value == 0 ? std::string(name) : text_of({name, "<", std::to_string(value), ">"});
      };
      fail_locked(std::make_exception_ptr(
          launch_error(launch_errc::barrier_divergence,
                       text_of({"kvc::simt: warpgroup divergence in block ", dims_text(block_idx_),
                                ", warpgroup ", std::to_string(rank / warpgroup_size), ": thread ",
                                std::to_string(rank), " calls ", named(call, argument), " while ",
                                std::to_string(group.arrived), " of its threads wait in ",
                                named(group.call, group.argument)}))));
      throw block_torn_down{};
    }
    if (++group.arrived == warpgroup_size) {
      group.arrived = 0;
      wake_list woken;
      const unsigned first = rank / warpgroup_size * warpgroup_size;
      for (unsigned r = first; r < first + warpgroup_size; ++r)
        if (status_[r] == thread_status::at_warpgroup) {
          status_[r] = thread_status::running;
          --at_warpgroup_;
          mark_woken(r, woken);
        }
      lock.unlock();
      release(woken);
      return;
    }
    status_[rank] = thread_status::at_warpgroup;
    ++at_warpgroup_;
    check_progress();
    if (aborted_ || sleep(lock, rank, false)) throw block_torn_down{};
  }

  /// Arrives at named barrier `id` (1 to 15) counting toward `threads` (bar.arrive id,
  /// threads) and, with `wait`, waits until the phase has them all (bar.sync id, threads). The
  /// lane first waits for the rest of its warp: the warp is what is counted.
  void named_barrier(unsigned rank, unsigned id, unsigned threads, bool wait) {
    std::unique_lock lock(mutex_);
    if (aborted_) throw block_torn_down{};
    const auto where = [&] {
      return text_of({"kvc::simt: named barrier ", std::to_string(id), " in block ",
                      dims_text(block_idx_), ": thread ", std::to_string(rank),
                      wait ? " syncs" : " arrives", " counting ", std::to_string(threads),
                      " threads"});
    };
    if (std::string wrong = named_barrier_call_error(id, threads, warp_count_); !wrong.empty())
      misuse_locked(where() + wrong);
    named_barrier_state& barrier = named_[id];
    const unsigned warp = rank / kernels::warp_size;
    named_arrival result{};
    if (std::string wrong = barrier.join(warp, rank % kernels::warp_size,
                                         warp_lane_mask(warps_[warp].lanes), threads, wait, result);
        !wrong.empty())
      misuse_locked(where() + wrong);
    if (result == named_arrival::lane_waits) return wait_named(lock, rank, id, false);
    // The warp is counted: its other lanes, asleep for it, go on (bar.arrive) or wait for the
    // phase (bar.sync, as this lane does).
    wake_list woken;
    for (unsigned r = warp * kernels::warp_size; r < warp * kernels::warp_size + warps_[warp].lanes;
         ++r)
      if (r != rank && waits_named(r, id, false)) {
        if (wait)
          named_waits_[r] = named_wait(id, true);
        else
          wake_named(r, woken);
      }
    if (result == named_arrival::phase_complete) {
      barrier.close_phase();
      for (unsigned r = 0; r < threads_; ++r)
        if (waits_named(r, id, true)) wake_named(r, woken);
      lock.unlock();
      release(woken);
      return;
    }
    if (wait) return wait_named(lock, rank, id, true);
    lock.unlock();
    release(woken);
  }

  /// Returns the ring of wgmma records of warpgroup `warpgroup`: wgmma_ring_operations
  /// operations of warpgroup_size records each, made when the warpgroup first needs it.
  wgmma_record* wgmma_ring(unsigned warpgroup) {
    std::lock_guard lock(mutex_);
    std::unique_ptr<wgmma_record[]>& ring = warpgroups_[warpgroup].ring;
    if (!ring)
      ring = std::make_unique<wgmma_record[]>(std::size_t{wgmma_ring_operations} * warpgroup_size);
    return ring.get();
  }

  /// Exchanges values in a warp collective: the lanes named in `members` each give a value; lane
  /// `source`'s value comes back (shuffles), or all members' values folded by `combine`
  /// (reductions).
  void exchange(unsigned rank, collective kind, unsigned members, unsigned source,
                const slot& value, std::size_t value_size, combine_function combine, slot& result) {
    std::unique_lock lock(mutex_);
    if (aborted_) throw block_torn_down{};
    const unsigned warp = rank / kernels::warp_size, lane = rank % kernels::warp_size;
    warp_exchange& exchange = warps_[warp];
    const unsigned lane_bit = 1u << lane;
    const unsigned existing = warp_lane_mask(exchange.lanes);
    const auto where = [&] {
      return "kvc::simt: shuffle divergence in block " + dims_text(block_idx_) + ", warp " +
             std::to_string(warp) + ": lane " + std::to_string(lane) + " calls " +
             collective_name(kind) + " with member mask " + hex(members);
    };
    if ((members & lane_bit) == 0) abort_locked(where() + ", which does not name the lane itself");
    if ((members & ~existing) != 0)
      abort_locked(where() + ", which names lanes " + hex(members & ~existing) +
                   " that this warp of " + std::to_string(exchange.lanes) + " lanes does not have");
    if (exchange.arrived == 0) {
      exchange.members = members;
      exchange.kind = kind;
      exchange.value_size = value_size;
      exchange.combine = combine;
    } else if (exchange.members != members || exchange.kind != kind ||
               exchange.value_size != value_size || exchange.combine != combine) {
      abort_locked(where() + " while lanes " + hex(exchange.arrived) + " wait in " +
                   collective_name(exchange.kind) + " with member mask " + hex(exchange.members) +
                   " (or with a value of another type)");
    }
    exchange.values[lane] = value;
    exchange.sources[lane] = source;
    exchange.arrived |= lane_bit;
    if (exchange.arrived == members) {
      wake_list woken;
      complete(exchange, warp, woken);
      result = exchange.results[lane];
      lock.unlock();
      release(woken);
      return;
    }
    status_[rank] = thread_status::at_shuffle;
    ++at_shuffle_;
    check_progress();
    if (aborted_ || sleep(lock, rank, false)) throw block_torn_down{};
    result = exchange.results[lane];  // written before the wake-up, and not again before we join
  }

  /// Reports `error` as the block's failure and tears the block down (never returns).
  [[noreturn]] void abort(const launch_error& error) {
    std::unique_lock lock(mutex_);
    fail_locked(std::make_exception_ptr(error));
    throw block_torn_down{};
  }
  /// Fails the block when a kernel thread threw: the first error of the block is kept, the block
  /// torn down.
  void fail(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    fail_locked(std::move(error));
  }

  /// Records that the calling thread has left the kernel. The last thread of a block starts the
  /// next.
  void finish(unsigned rank) {
    std::unique_lock lock(mutex_);
    status_[rank] = thread_status::exited;
    if (++finished_ < threads_) {
      check_progress();
      return;
    }
    if (aborted_) launch_.record(error_);
    wake_list woken;
    begin_next_block(woken);
    lock.unlock();
    release(woken);
  }

  std::byte* shared_memory() const { return shared_.get(); }
  std::size_t shared_bytes() const { return shared_bytes_; }

  /// Counts, per 4-byte word of shared memory, the asynchronous copies in flight that write it
  /// (started by any thread, not yet landed), so that an instruction reading shared memory
  /// (wgmma, ldmatrix) while a copy still writes it fails: a race on a GPU, however the
  /// emulator would order the two.
  void copy_started(const std::byte* destination, unsigned bytes) {
    for (std::size_t w = word_of(destination); w < word_of(destination + bytes); ++w)
      copy_targets_[w].fetch_add(1, std::memory_order_relaxed);
  }
  void copy_landed(const std::byte* destination, unsigned bytes) {
    for (std::size_t w = word_of(destination); w < word_of(destination + bytes); ++w)
      copy_targets_[w].fetch_sub(1, std::memory_order_relaxed);
  }
  /// Whether a copy in flight writes the word of shared memory at `offset`.
  bool copy_in_flight(std::size_t offset) const {
    return copy_targets_[offset / 4].load(std::memory_order_relaxed) != 0;
  }
  /// Returns one value per thread, for block reductions (ordered by the barriers around them).
  slot* block_slots() const { return block_slots_.get(); }
  /// Returns two areas of one A and B fragment per thread, for the warp's matrix
  /// multiply-accumulate (used in turn, each ordered by the warp barrier of its call).
  mma_fragment* mma_fragments() const { return mma_fragments_.get(); }

 private:
  std::size_t word_of(const std::byte* shared) const {
    return static_cast<std::size_t>(shared - shared_.get()) / 4;
  }

  enum class thread_status : unsigned char {
    running,
    at_barrier,
    at_shuffle,
    at_warpgroup,
    at_named,
    exited
  };

  struct warpgroup_state {
    unsigned arrived = 0;
    const char* call = "";  ///< what the arrived threads call (a string literal)
    unsigned argument = 0;  ///< and with what (a register limit's count)
    std::unique_ptr<wgmma_record[]> ring;
  };

  struct warp_exchange {
    unsigned lanes = kernels::warp_size;  ///< lanes this warp has (the last may be partial)
    unsigned arrived = 0;                 ///< lanes that joined the pending exchange
    unsigned members = 0;
    collective kind = collective::shfl_xor;
    std::size_t value_size = 0;
    combine_function combine = nullptr;
    std::array<slot, kernels::warp_size> values{}, results{};
    std::array<unsigned, kernels::warp_size> sources{};
  };

  // A thread's own wake-up: `asleep` (under the mutex) says that it waits, so that each sleep
  // is released once; `torn_down` is written before the release, which orders it (and
  // whatever else the waker wrote) before the sleeper's reads.
  struct sleeper {
    std::binary_semaphore woken{0};
    bool asleep = false, for_block = false, torn_down = false;
  };
  // Sleeps until woken, from under the lock, and returns without it: whether the block was torn
  // down (a block's start never tears down).
  bool sleep(std::unique_lock<std::mutex>& lock, unsigned rank, bool for_block) {
    sleeper& s = sleepers_[rank];
    s.asleep = true;
    s.for_block = for_block;
    lock.unlock();
    s.woken.acquire();
    return s.torn_down;
  }
  void wake(unsigned rank, bool torn_down) {
    sleeper& s = sleepers_[rank];
    if (!s.asleep) return;
    s.asleep = false;
    s.torn_down = torn_down;
    s.woken.release();
  }
  // A wait's end marks its sleepers under the mutex and releases them once it is free: a
  // thread woken under it would queue for it at its next barrier. Until its release a marked
  // thread is still in that sleep, so the release is its own. (Blocks of more than 1024
  // threads, which CUDA does not have, are woken under the mutex.)
  struct wake_list {
    std::array<std::uint16_t, 1024> ranks;
    unsigned count = 0;
  };
  void mark_woken(unsigned rank, wake_list& list) {
    sleeper& s = sleepers_[rank];
    if (!s.asleep) return;
    if (list.count == list.ranks.size()) return wake(rank, false);
    s.asleep = false;
    s.torn_down = false;
    list.ranks[list.count++] = static_cast<std::uint16_t>(rank);
  }
  void release(const wake_list& list) {
    for (unsigned i = 0; i < list.count; ++i) sleepers_[list.ranks[i]].woken.release();
  }

  // Results are written per lane by the lane that completes the exchange: a lane reads its
  // own result after it wakes, and no exchange can overwrite it before the lane joins again.
  void complete(warp_exchange& exchange, unsigned warp, wake_list& woken) {
    const unsigned members = exchange.members;
    const bool reduction = exchange.combine != nullptr;
    for (unsigned lane = 0; lane < kernels::warp_size; ++lane) {
      if (reduction || (members >> lane & 1u) == 0) continue;
      const unsigned source = exchange.sources[lane];
      if ((members >> source & 1u) == 0)
        abort_locked("kvc::simt: shuffle divergence in block " + dims_text(block_idx_) + ", warp " +
                     std::to_string(warp) + ": lane " + std::to_string(lane) + " reads lane " +
                     std::to_string(source) + " in " + collective_name(exchange.kind) +
                     ", which the member mask " + hex(members) +
                     " does not name (its value would be undefined)");
    }
    slot folded{};
    if (reduction) exchange.combine(exchange.values.data(), members, folded);
    for (unsigned lane = 0; lane < kernels::warp_size; ++lane) {
      if ((members >> lane & 1u) == 0) continue;
      exchange.results[lane] = reduction ? folded : exchange.values[exchange.sources[lane]];
      thread_status& s = status_[warp * kernels::warp_size + lane];
      if (s == thread_status::at_shuffle) {
        s = thread_status::running;
        --at_shuffle_;
        mark_woken(warp * kernels::warp_size + lane, woken);
      }
    }
    exchange.arrived = 0;
  }

  // Every live thread waits and nothing it waits for can happen any more: name the cause.
  void check_progress() {
    if (aborted_) return;
    const unsigned live = threads_ - finished_;
    if (live == 0 || at_barrier_ + at_shuffle_ + at_warpgroup_ + at_named_ != live) return;
    fail_locked(std::make_exception_ptr(diagnose()));
  }

  launch_error diagnose() const {
    for (std::size_t g = 0; g < warpgroups_.size(); ++g) {
      if (warpgroups_[g].arrived == 0) continue;
      unsigned missing = static_cast<unsigned>(g) * warpgroup_size;
      while (status_[missing] == thread_status::at_warpgroup) ++missing;
      return launch_error(launch_errc::barrier_divergence,
                          "kvc::simt: warpgroup divergence in block " + dims_text(block_idx_) +
                              ", warpgroup " + std::to_string(g) + ": " +
                              std::to_string(warpgroups_[g].arrived) +
                              " of its 128 threads wait in " + warpgroups_[g].call +
                              ", and thread " + std::to_string(missing) +
                              (status_[missing] == thread_status::exited
                                   ? std::string(" exited without reaching it")
                                   : whereabouts(missing)));
    }
    for (unsigned w = 0; w < warp_count_; ++w) {
      const warp_exchange& exchange = warps_[w];
      if (exchange.arrived == 0) continue;
      const unsigned missing = exchange.members & ~exchange.arrived;
      const unsigned lane = static_cast<unsigned>(std::countr_zero(missing));
      const thread_status s = status_[w * kernels::warp_size + lane];
      return launch_error(
          launch_errc::shuffle_divergence,
          "kvc::simt: shuffle divergence in block " + dims_text(block_idx_) + ", warp " +
              std::to_string(w) + ": lanes " + hex(exchange.arrived) + " wait in " +
              collective_name(exchange.kind) + " with member mask " + hex(exchange.members) +
              ", and lane " + std::to_string(lane) +
              (s == thread_status::exited ? std::string(" exited without joining it")
                                          : whereabouts(w * kernels::warp_size + lane)));
    }
    // A barrier that threads wait at (phases with arrivals only are not what hangs): lanes
    // waiting for the rest of their warp, or warps for the phase.
    for (unsigned id = 1; id < named_barrier_ids; ++id) {
      const named_barrier_state& barrier = named_[id];
      bool waited_at = false;
      for (unsigned r = 0; r < threads_ && !waited_at; ++r)
        waited_at = waits_named(r, id, false) || waits_named(r, id, true);
      if (!waited_at) continue;
      if (const unsigned w = barrier.partial_warp(warp_count_); w < warp_count_) {
        const unsigned lane = static_cast<unsigned>(std::countr_one(barrier.pending[w]));
        return launch_error(
            launch_errc::barrier_divergence,
            text_of({"kvc::simt: barrier divergence in block ", dims_text(block_idx_), ": lanes ",
                     hex(barrier.pending[w]), " of warp ", std::to_string(w),
                     " wait at named barrier ", std::to_string(id),
                     " for the rest of their warp, and lane ", std::to_string(lane),
                     whereabouts(w * kernels::warp_size + lane)}));
      }
      // The first thread of a warp not counted in the phase, one that has not exited if any.
      unsigned missing = threads_;
      for (unsigned r = 0; r < threads_; ++r)
        if ((barrier.warps_in >> (r / kernels::warp_size) & 1u) == 0 &&
            (missing == threads_ ||
             (status_[missing] == thread_status::exited && status_[r] != thread_status::exited)))
          missing = r;
      return launch_error(
          launch_errc::barrier_divergence,
          text_of({"kvc::simt: barrier divergence in block ", dims_text(block_idx_),
                   ": named barrier ", std::to_string(id), " counts ",
                   std::to_string(barrier.expected), " threads, ", std::to_string(barrier.arrived),
                   " have arrived, and thread ", std::to_string(missing), whereabouts(missing)}));
    }
    unsigned first_exited = threads_;
    for (unsigned r = 0; r < threads_ && first_exited == threads_; ++r)
      if (status_[r] == thread_status::exited) first_exited = r;
    return launch_error(launch_errc::barrier_divergence,
                        "kvc::simt: barrier divergence in block " + dims_text(block_idx_) + ": " +
                            std::to_string(at_barrier_) + " of " + std::to_string(threads_) +
                            " threads wait at the barrier and " + std::to_string(finished_) +
                            " exited without reaching it (the first: thread " +
                            std::to_string(first_exited) + ")");
  }

  // A thread at a named barrier waits for the rest of its warp or for the phase: the id in
  // the low 4 bits, 16 for the phase.
  static unsigned char named_wait(unsigned id, bool for_phase) {
    return static_cast<unsigned char>(id | (for_phase ? 16u : 0u));
  }
  bool waits_named(unsigned rank, unsigned id, bool for_phase) const {
    return status_[rank] == thread_status::at_named &&
           named_waits_[rank] == named_wait(id, for_phase);
  }
  void wake_named(unsigned rank, wake_list& woken) {
    status_[rank] = thread_status::running;
    --at_named_;
    mark_woken(rank, woken);
  }
  void wait_named(std::unique_lock<std::mutex>& lock, unsigned rank, unsigned id, bool for_phase) {
    status_[rank] = thread_status::at_named;
    named_waits_[rank] = named_wait(id, for_phase);
    ++at_named_;
    check_progress();
    if (aborted_ || sleep(lock, rank, false)) throw block_torn_down{};
  }

  // Where a thread that a wait lacks is instead, after a space. (Returned whole: GCC 12's
  // -Wrestrict trips on a literal + std::string&&, a false positive.)
  std::string whereabouts(unsigned rank) const {
    switch (status_[rank]) {
      case thread_status::exited:
        return " exited without arriving";
      case thread_status::at_named:
        return text_of(
            {" waits at named barrier ", std::to_string(named_waits_[rank] & 15u), " instead"});
      case thread_status::at_warpgroup:
        return text_of({" waits in ", warpgroups_[rank / warpgroup_size].call, " instead"});
      case thread_status::at_shuffle:
        return " waits in a warp shuffle instead";
      default:
        return " waits at a block barrier instead";
    }
  }

  void fail_locked(std::exception_ptr error) {
    if (!aborted_) {
      aborted_ = true;
      error_ = std::move(error);
    }
    for (unsigned r = 0; r < threads_; ++r)
      if (!sleepers_[r].for_block) wake(r, true);
  }
  [[noreturn]] void abort_locked(const std::string& what) {
    fail_locked(std::make_exception_ptr(launch_error(launch_errc::shuffle_divergence, what)));
    throw block_torn_down{};
  }
  [[noreturn]] void misuse_locked(const std::string& what) {
    fail_locked(std::make_exception_ptr(launch_error(launch_errc::barrier_misuse, what)));
    throw block_torn_down{};
  }

  // CUDA leaves shared memory undefined at a block's start; all ones (NaN as floats, -1 as
  // integers) makes a kernel that assumes zeros fail its test.
  void begin_next_block(wake_list& woken) {
    kernels::dims3 next;
    if (aborted_ || !launch_.take_block(next)) {
      done_ = true;
    } else {
      block_idx_ = next;
      finished_ = at_barrier_ = at_shuffle_ = at_warpgroup_ = at_named_ = 0;
      for (named_barrier_state& barrier : named_) barrier.reset();
      for (auto& s : status_) s = thread_status::running;
      for (unsigned w = 0; w < warp_count_; ++w) warps_[w].arrived = 0;
      for (warpgroup_state& group : warpgroups_) group.arrived = 0;
      if (shared_bytes_ != 0) std::memset(shared_.get(), 0xff, shared_bytes_);
    }
    ++block_sequence_;
    for (unsigned r = 0; r < threads_; ++r)
      if (sleepers_[r].for_block) mark_woken(r, woken);
  }

  launch_state& launch_;
  const unsigned threads_, warp_count_;
  const std::size_t shared_bytes_;
  const std::unique_ptr<std::byte[]> shared_;
  const std::unique_ptr<std::atomic<std::uint16_t>[]> copy_targets_;  ///< copy_started
  const std::unique_ptr<slot[]> block_slots_;
  const std::unique_ptr<mma_fragment[]> mma_fragments_;
  const std::unique_ptr<warp_exchange[]> warps_;
  std::vector<warpgroup_state> warpgroups_;  ///< whole warpgroups only
  std::vector<thread_status> status_;
  const std::unique_ptr<sleeper[]> sleepers_;
  std::vector<unsigned char> named_waits_;  ///< named_wait(): where a thread at_named waits

  std::mutex mutex_;
  std::uint64_t block_sequence_ = 0;
  bool done_ = false;
  kernels::dims3 block_idx_{};
  unsigned finished_ = 0, at_barrier_ = 0, at_shuffle_ = 0, at_warpgroup_ = 0, at_named_ = 0;
  std::array<named_barrier_state, named_barrier_ids> named_{};
  bool aborted_ = false;
  std::exception_ptr error_;
};

}  // namespace kvc::simt::detail
