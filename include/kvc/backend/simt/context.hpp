#pragma once
// The SIMT context of the host emulator: what a kernel functor sees of its launch when it
// runs on the CPU. The member names and meanings are those of kvc::cuda::simt_context
// (backend/cuda/simt_context.cuh), so one kernel body serves both; docs/simt.md lists them.
//
// One context per host thread, made once per launch; kernels take it by const reference.
// Shuffles and warp reductions meet in the team's warp exchange, block reductions and
// sync() at its barrier. Asynchronous copies are queued and done at wait_async_copies(),
// the latest moment CUDA allows, so that a kernel reading its copy too early sees stale
// data here as it could on a GPU.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include "kvc/backend/simt/errors.hpp"
#include "kvc/backend/simt/mma.hpp"
#include "kvc/backend/simt/thread_team.hpp"
#include "kvc/backend/simt/traffic.hpp"
#include "kvc/backend/simt/wgmma_calls.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::simt {

namespace detail {

/// What one host thread keeps from block to block.
struct thread_state {
  struct pending_copy {
    void* destination;
    const void* source;
    unsigned bytes;
    bool valid;  ///< false: zeros, the source is not read
  };
  kernels::dims3 block_idx{};
  std::uint64_t block_rank = 0;                     ///< the block's place in the grid, x fastest
  std::vector<pending_copy> pending_copies;         ///< not yet committed
  std::deque<std::vector<pending_copy>> committed;  ///< oldest first
  memory_traffic* traffic = nullptr;
  std::uint64_t reads = 0, writes = 0;  ///< global accesses in this block so far
  unsigned mma_area = 0;  ///< which of the two fragment areas the next mma_m16n8k16 uses

  wgmma_thread_state wgmma;  ///< the thread's warpgroup matrix multiply-accumulates
  thread_team* team = nullptr;

  void complete(std::vector<pending_copy>& copies) {
    for (const pending_copy& copy : copies) {
      if (copy.valid)
        std::memcpy(copy.destination, copy.source, copy.bytes);
      else
        std::memset(copy.destination, 0, copy.bytes);
      team->copy_landed(static_cast<const std::byte*>(copy.destination), copy.bytes);
    }
    copies.clear();
  }
  /// Forgets the copies not yet landed (a block torn down).
  void drop_copies() {
    for (const pending_copy& copy : pending_copies)
      team->copy_landed(static_cast<const std::byte*>(copy.destination), copy.bytes);
    for (const std::vector<pending_copy>& group : committed)
      for (const pending_copy& copy : group)
        team->copy_landed(static_cast<const std::byte*>(copy.destination), copy.bytes);
    pending_copies.clear();
    committed.clear();
  }
  void commit() {
    committed.push_back(std::move(pending_copies));
    pending_copies.clear();
  }
  /// Completes the oldest committed groups until at most `pending` remain.
  void complete_groups(std::size_t pending) {
    while (committed.size() > pending) {
      complete(committed.front());
      committed.pop_front();
    }
  }
  void complete_copies() {
    complete_groups(0);
    complete(pending_copies);
  }
  void begin_block(kernels::dims3 index, kernels::dims3 grid) {
    block_idx = index;
    block_rank = index.x + std::uint64_t{grid.x} * (index.y + std::uint64_t{grid.y} * index.z);
    reads = writes = 0;
    wgmma.reset();
  }
};

struct plus {
  template <class T>
  T operator()(T a, T b) const {
    return static_cast<T>(a + b);
  }
};
struct maximum {  // as cuda::maximum: a NaN in `a` is kept only when `b` is not larger
  template <class T>
  T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};

template <class T>
T from_slot(const slot& s) {
  T value;
  std::memcpy(&value, s.bytes, sizeof(T));
  return value;
}
template <class T>
slot to_slot(T value) {
  slot s{};
  std::memcpy(s.bytes, &value, sizeof(T));
  return s;
}

template <class T, class Operation>
void fold_lanes(const slot* values, unsigned members, slot& result) {
  bool first = true;
  T folded{};
  for (unsigned lane = 0; lane < kernels::warp_size; ++lane) {
    if ((members >> lane & 1u) == 0) continue;
    const T value = from_slot<T>(values[lane]);
    folded = first ? value : Operation{}(folded, value);
    first = false;
  }
  result = to_slot(folded);
}

}  // namespace detail

template <class Block>
class context {
 public:
  using block = Block;

  context(detail::thread_team& team, detail::thread_state& state, unsigned rank,
          kernels::dims3 grid)
      : team_(&team),
        state_(&state),
        rank_(rank),
        grid_(grid),
        thread_idx_{rank % Block::x, rank / Block::x % Block::y, rank / (Block::x * Block::y)} {}

  // Indices and sizes.
  kernels::dims3 grid_dim() const { return grid_; }
  kernels::dims3 block_idx() const { return state_->block_idx; }
  static constexpr kernels::dims3 block_dim() { return Block::dims(); }
  kernels::dims3 thread_idx() const { return thread_idx_; }
  /// Returns the thread's place in its block, x fastest (what warps are cut from).
  unsigned thread_rank() const { return rank_; }
  static constexpr unsigned block_threads() { return Block::threads; }
  unsigned lane() const { return rank_ % kernels::warp_size; }
  unsigned warp() const { return rank_ / kernels::warp_size; }
  /// Returns the lanes that the calling thread's warp has: all_lanes but in a partial last warp.
  unsigned warp_members() const {
    if constexpr (Block::last_warp_lanes == kernels::warp_size) {
      return kernels::all_lanes;
    } else {
      return warp() + 1 < Block::warps ? kernels::all_lanes : (1u << Block::last_warp_lanes) - 1u;
    }
  }

  /// Waits at the block barrier: every thread of the block must reach it.
  void sync() const { team_->sync(rank_); }
  /// Waits at named barrier `id` (1 to 15) until `threads` threads, whole warps, have arrived
  /// in its phase, this one included (bar.sync id, threads).
  void sync_named(unsigned id, unsigned threads) const {
    team_->named_barrier(rank_, id, threads, true);
  }
  /// Arrives at named barrier `id` counting toward `threads` and goes on (bar.arrive): how a
  /// producer tells its consumers that a buffer is ready, or they tell it that it is free.
  void arrive_named(unsigned id, unsigned threads) const {
    team_->named_barrier(rank_, id, threads, false);
  }

  // Warp shuffles: every lane named in `members` must make the same call.
  template <class T>
  T shfl_xor(T value, int lane_mask, unsigned members = kernels::all_lanes) const {
    return shuffle(detail::collective::shfl_xor, value,
                   lane() ^ (static_cast<unsigned>(lane_mask) & (kernels::warp_size - 1)), members);
  }
  /// Returns the value of lane + delta; lanes with no such lane keep their own value.
  template <class T>
  T shfl_down(T value, unsigned delta, unsigned members = kernels::all_lanes) const {
    const bool inside = delta < kernels::warp_size && lane() + delta < kernels::warp_size;
    return shuffle(detail::collective::shfl_down, value, inside ? lane() + delta : lane(), members);
  }
  template <class T>
  T shfl_idx(T value, int source_lane, unsigned members = kernels::all_lanes) const {
    return shuffle(detail::collective::shfl_idx, value,
                   static_cast<unsigned>(source_lane) & (kernels::warp_size - 1), members);
  }

  // Reductions over the calling thread's warp (its warp_members()) or block; every
  // participating thread gets the result. A block reduction is a barrier twice over.
  template <class T>
  T warp_sum(T value) const {
    return warp_reduce<T, detail::plus>(detail::collective::warp_sum, value);
  }
  template <class T>
  T warp_max(T value) const {
    return warp_reduce<T, detail::maximum>(detail::collective::warp_max, value);
  }
  /// Returns whether `value` is true in any lane of the calling thread's warp.
  bool warp_any(bool value) const { return warp_max(value ? 1 : 0) != 0; }
  template <class T>
  T block_sum(T value) const {
    return block_reduce<T, detail::plus>(value);
  }
  template <class T>
  T block_max(T value) const {
    return block_reduce<T, detail::maximum>(value);
  }

  /// Returns the block's dynamic shared memory (the launch's shared_bytes, 16-byte aligned).
  template <class T = std::byte>
  T* dynamic_shared() const {
    return reinterpret_cast<T*>(team_->shared_memory());
  }

  /// Starts copying 16 bytes from global to shared memory (cp.async); the destination may
  /// be read once this thread has waited for the copy (wait_copies, wait_async_copies), by
  /// other threads after a barrier that follows the wait. With `valid` false the 16 bytes
  /// become zeros and the source is not read.
  void copy_async(void* shared_destination, const void* global_source, bool valid = true) const {
    start_copy<16>(shared_destination, global_source, valid);
  }
  /// Copies the same way 4 bytes (both ends 4-byte aligned).
  void copy_async_4(void* shared_destination, const void* global_source, bool valid) const {
    start_copy<4>(shared_destination, global_source, valid);
  }
  /// Closes the calling thread's group of copies started since the last commit.
  void commit_copies() const { state_->commit(); }
  /// Waits until at most `Pending` of the calling thread's committed groups are in flight:
  /// the older groups land now, the newer ones only later (the latest moment CUDA allows).
  template <int Pending>
  void wait_copies() const {
    static_assert(Pending >= 0, "kvc::simt: wait_copies<N> needs N >= 0");
    state_->complete_groups(static_cast<std::size_t>(Pending));
  }
  /// Waits for every copy_async of the calling thread.
  void wait_async_copies() const { state_->complete_copies(); }

  /// Waits at the warp barrier (__syncwarp): every lane of the warp must reach it.
  void sync_warp() const {
    detail::slot result;
    team_->exchange(rank_, detail::collective::sync_warp, warp_members(), lane(), detail::slot{}, 0,
                    nullptr, result);
  }

  /// The warp's matrix multiply-accumulate D = A B + C, m16n8k16 with fp16 or bf16 inputs and
  /// fp32 C and D (mma.sync; fragment layouts in kernels/mma.hpp). Every lane of a full warp
  /// must call it; each gets its own fragment of D.
  template <kernels::mma_input Input>
  kernels::mma_c mma_m16n8k16(const kernels::mma_a& a, const kernels::mma_b& b,
                              const kernels::mma_c& c) const {
    if (warp_members() != kernels::all_lanes)
      team_->abort(launch_error(launch_errc::shuffle_divergence,
                                "kvc::simt: mma_m16n8k16 in a warp of fewer than 32 lanes"));
    // Two areas, used in turn: a lane writes an area again only after the next call's barrier,
    // which every lane reaches only once it has read this call's fragments.
    detail::mma_fragment* fragments =
        team_->mma_fragments() + state_->mma_area * Block::threads + warp() * kernels::warp_size;
    state_->mma_area ^= 1u;
    for (int r = 0; r < 4; ++r) fragments[lane()].a[r] = a.reg[r];
    for (int r = 0; r < 2; ++r) fragments[lane()].b[r] = b.reg[r];
    sync_warp();  // every lane's fragments are in
    return detail::mma_lane_result<Input>(fragments, lane(), c);
  }

  /// Loads four 8 x 8 matrices of 16-bit values from shared memory (ldmatrix.x4, .trans when
  /// Transposed; layout in kernels/mma.hpp): `row` is the 16-byte aligned row of shared memory
  /// this lane names. Every lane of a full warp must call it; the rows are read at the call.
  template <bool Transposed>
  kernels::mma_matrices load_matrices(const void* row) const {
    if (warp_members() != kernels::all_lanes)
      team_->abort(launch_error(launch_errc::shuffle_divergence,
                                "kvc::simt: load_matrices in a warp of fewer than 32 lanes"));
    const auto* bytes = static_cast<const std::byte*>(row);
    const std::byte* shared = team_->shared_memory();
    check_aligned(row, "load_matrices row");
    if (shared == nullptr || bytes < shared || bytes + 16 > shared + team_->shared_bytes())
      team_->abort(launch_error(launch_errc::not_shared_memory,
                                "kvc::simt: load_matrices row is not inside the block's dynamic "
                                "shared memory (thread " +
                                    std::to_string(rank_) + ")"));
    // The rows' addresses travel through the fragment areas, used in turn as by mma_m16n8k16.
    detail::mma_fragment* fragments =
        team_->mma_fragments() + state_->mma_area * Block::threads + warp() * kernels::warp_size;
    state_->mma_area ^= 1u;
    // Checked before the warp meets, so that no lane can land a copy after the meeting first.
    for (std::size_t word = 0; word < 4; ++word)
      if (team_->copy_in_flight(static_cast<std::size_t>(bytes - shared) + 4 * word))
        team_->abort(launch_error(launch_errc::copy_race,
                                  "kvc::simt: load_matrices reads a row of shared memory that an "
                                  "asynchronous copy in flight still writes (thread " +
                                      std::to_string(rank_) + ")"));
    std::memcpy(&fragments[lane()], &bytes, sizeof bytes);
    sync_warp();  // every lane's row is named
    const auto row_of = [&](unsigned source_lane) {
      const std::byte* r;
      std::memcpy(&r, &fragments[source_lane], sizeof r);
      return r;
    };
    const auto value = [](const std::byte* r, unsigned column) {
      std::uint16_t v;
      std::memcpy(&v, r + 2 * column, sizeof v);
      return std::uint32_t{v};
    };
    kernels::mma_matrices d{};
    const unsigned l = lane();
    for (unsigned m = 0; m < 4; ++m) {
      if constexpr (Transposed) {
        const unsigned first = m * 8 + 2 * (l % 4);
        d.reg[m] = value(row_of(first), l / 4) | value(row_of(first + 1), l / 4) << 16;
      } else {
        const std::byte* r = row_of(m * 8 + l / 4);
        d.reg[m] = value(r, 2 * (l % 4)) | value(r, 2 * (l % 4) + 1) << 16;
      }
    }
    return d;
  }

  /// Returns the shared-window address of a byte of the block's dynamic shared memory (what
  /// a wgmma descriptor holds). The emulator's window puts the buffer at 1152: 128-byte but not
  /// 1024-byte aligned, so that a kernel aligns its swizzled tiles itself, as it must on a GPU.
  std::uint32_t shared_address(const void* shared) const {
    const auto* byte = static_cast<const std::byte*>(shared);
    const std::byte* base = team_->shared_memory();
    if (base == nullptr || byte < base || byte >= base + team_->shared_bytes())
      team_->abort(launch_error(launch_errc::not_shared_memory,
                                "kvc::simt: shared_address of an address outside the block's "
                                "dynamic shared memory (thread " +
                                    std::to_string(rank_) + ")"));
    return shared_window_base + static_cast<std::uint32_t>(byte - base);
  }
  static constexpr std::uint32_t shared_window_base = 1152;

  /// Orders the calling thread's register accesses before the wgmma that follow (wgmma.fence).
  /// A thread must call it before its first wgmma of a block and between a wgmma_wait and its
  /// next wgmma (the emulator refuses a wgmma otherwise).
  template <class... Accumulators>
  void wgmma_fence(Accumulators&... /*operands*/) const {
    state_->wgmma.fenced = true;
  }
  /// Makes the block's shared memory writes visible to wgmma (fence.proxy.async.shared::cta):
  /// after the writes and before the barrier that orders them for the wgmma's threads.
  void fence_shared_async() const {}

  /// The warpgroup's D = A B + (accumulate ? D : 0), m64nNk16, A from registers (this thread's
  /// mma_a of its warp's 16 rows), B by descriptor (wgmma.mma_async ... RS). Every thread of a
  /// whole warpgroup makes the same call; it starts the operation, which wgmma_commit and
  /// wgmma_wait finish. Until then D reads as NaN, and A and B are read at the wait:
  /// registers as they were at this call, shared memory as it is then.
  template <kernels::mma_input Input, kernels::wgmma_major MajorB, int N>
  void wgmma(const kernels::mma_a& a, kernels::wgmma_descriptor b, kernels::wgmma_d<N>& d,
             bool accumulate) const {
    warpgroup().issue({N, Input, kernels::wgmma_major::k, MajorB, true}, a.reg, 0, b.bits, d.reg,
                      accumulate);
  }
  /// The same with A by descriptor (wgmma.mma_async ... SS).
  template <kernels::mma_input Input, kernels::wgmma_major MajorA, kernels::wgmma_major MajorB,
            int N>
  void wgmma(kernels::wgmma_descriptor a, kernels::wgmma_descriptor b, kernels::wgmma_d<N>& d,
             bool accumulate) const {
    const std::uint32_t none[4] = {};
    warpgroup().issue({N, Input, MajorA, MajorB, false}, none, a.bits, b.bits, d.reg, accumulate);
  }
  /// Closes the calling thread's group of wgmma issued since the last commit
  /// (wgmma.commit_group).
  void wgmma_commit() const { state_->wgmma.commit(); }
  /// Waits until at most `Pending` of the calling thread's committed groups of wgmma are in
  /// flight (wgmma.wait_group): the older ones are done now. The accumulators named are the
  /// registers the kernel reads next; the emulator refuses one that is still pending. A
  /// fragments of A from registers (or arrays of them) named here are kept as they are until
  /// the wait on a GPU, where the wgmma reads them late; the emulator read them at the issue.
  /// Every thread of the warpgroup makes the same call.
  template <int Pending, class... Operands>
  void wgmma_wait(Operands&... operands) const {
    static_assert(Pending >= 0 && Pending <= 7, "kvc::simt: wgmma_wait<N> needs 0 <= N <= 7");
    const detail::warpgroup_calls calls = warpgroup();
    calls.wait(static_cast<std::size_t>(Pending));
    (check_waited(calls, operands), ...);
  }

  /// Raises (setmaxnreg.inc) or lowers (setmaxnreg.dec) the calling warpgroup's registers a
  /// thread to `Registers` (sm_90a): how a warp-specialised kernel gives its producer's
  /// registers to its consumers. Every thread of a whole warpgroup makes the same call; the
  /// emulator, which has no register file, checks that and meets the warpgroup.
  template <unsigned Registers>
  void raise_registers() const {
    static_assert(kernels::valid_register_limit<Registers>,
                  "kvc::simt: setmaxnreg takes 24 to 256 registers, a multiple of 8");
    set_registers("raise_registers", Registers);
  }
  template <unsigned Registers>
  void lower_registers() const {
    static_assert(kernels::valid_register_limit<Registers>,
                  "kvc::simt: setmaxnreg takes 24 to 256 registers, a multiple of 8");
    set_registers("lower_registers", Registers);
  }

  /// Stores 16 bytes to global memory (st.global.v4; 16-byte aligned).
  void store_16(void* global_destination, kernels::vec16 value) const {
    check_aligned(global_destination, "store_16 destination");
    record(access::write, global_destination, 16);
    std::memcpy(global_destination, &value, sizeof value);
  }

  /// Loads 16 bytes at once from a 16-byte aligned address.
  kernels::vec16 load_16(const void* source) const {
    check_aligned(source, "load_16 source");
    kernels::vec16 value;
    std::memcpy(&value, source, sizeof value);
    return value;
  }
  /// Loads 8 bytes at once from an 8-byte aligned address.
  kernels::vec8 load_8(const void* source) const {
    if (reinterpret_cast<std::uintptr_t>(source) % 8 != 0)
      team_->abort(launch_error(launch_errc::misaligned_address,
                                "kvc::simt: load_8 source is not 8-byte aligned"));
    kernels::vec8 value;
    std::memcpy(&value, source, sizeof value);
    return value;
  }

 private:
  template <class T>
  static constexpr void check_shuffled_type() {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(detail::slot),
                  "kvc::simt: a shuffled or reduced value is trivially copyable, at most 8 bytes");
  }

  template <class T>
  T shuffle(detail::collective kind, T value, unsigned source, unsigned members) const {
    check_shuffled_type<T>();
    detail::slot result;
    team_->exchange(rank_, kind, members, source, detail::to_slot(value), sizeof(T), nullptr,
                    result);
    return detail::from_slot<T>(result);
  }

  template <class T, class Operation>
  T warp_reduce(detail::collective kind, T value) const {
    check_shuffled_type<T>();
    detail::slot result;
    team_->exchange(rank_, kind, warp_members(), lane(), detail::to_slot(value), sizeof(T),
                    &detail::fold_lanes<T, Operation>, result);
    return detail::from_slot<T>(result);
  }

  // Each thread folds all values in thread order: the same result in every thread.
  template <class T, class Operation>
  T block_reduce(T value) const {
    check_shuffled_type<T>();
    detail::slot* slots = team_->block_slots();
    slots[rank_] = detail::to_slot(value);
    sync();
    T folded = detail::from_slot<T>(slots[0]);
    for (unsigned r = 1; r < Block::threads; ++r)
      folded = Operation{}(folded, detail::from_slot<T>(slots[r]));
    sync();  // before the slots are written again
    return folded;
  }

  template <int N>
  static void check_waited(const detail::warpgroup_calls& calls, const kernels::wgmma_d<N>& d) {
    calls.check_not_pending(d.reg);
  }
  static void check_waited(const detail::warpgroup_calls& /*calls*/, const kernels::mma_a& /*a*/) {}
  template <class Operand, std::size_t Count>
  static void check_waited(const detail::warpgroup_calls& calls, const Operand (&operands)[Count]) {
    for (const Operand& operand : operands) check_waited(calls, operand);
  }

  void set_registers(const char* call, unsigned registers) const {
    warpgroup().check_whole_warpgroup(call);
    team_->sync_warpgroup(rank_, call, registers);
  }
  detail::warpgroup_calls warpgroup() const {
    return {*team_, state_->wgmma, rank_, state_->block_idx, Block::threads, shared_window_base};
  }

  template <unsigned Bytes>
  void start_copy(void* shared_destination, const void* global_source, bool valid) const {
    check_aligned(shared_destination, "copy_async destination", Bytes);
    if (valid) check_aligned(global_source, "copy_async source", Bytes);
    const auto* destination = static_cast<const std::byte*>(shared_destination);
    const std::byte* shared = team_->shared_memory();
    if (shared == nullptr || destination < shared ||
        destination + Bytes > shared + team_->shared_bytes())
      team_->abort(launch_error(launch_errc::not_shared_memory,
                                "kvc::simt: copy_async destination " +
                                    std::to_string(reinterpret_cast<std::uintptr_t>(destination)) +
                                    " is not inside the block's dynamic shared memory"));
    record(access::read, global_source, valid ? Bytes : 0);
    team_->copy_started(destination, Bytes);
    state_->pending_copies.push_back({shared_destination, global_source, Bytes, valid});
  }

  void record(access kind, const void* address, unsigned bytes) const {
    std::uint64_t& index = kind == access::read ? state_->reads : state_->writes;
    if (state_->traffic != nullptr)
      state_->traffic->add({state_->block_rank, warp(), index, kind,
                            reinterpret_cast<std::uintptr_t>(address), bytes});
    ++index;
  }

  void check_aligned(const void* address, const char* what, unsigned alignment = 16) const {
    const auto bits = reinterpret_cast<std::uintptr_t>(address);
    if (bits % alignment != 0)
      team_->abort(launch_error(launch_errc::misaligned_address,
                                std::string("kvc::simt: ") + what + " " + std::to_string(bits) +
                                    " is not " + std::to_string(alignment) +
                                    "-byte aligned (thread " + std::to_string(rank_) + ")"));
  }

  detail::thread_team* team_;
  detail::thread_state* state_;
  unsigned rank_;
  kernels::dims3 grid_;
  kernels::dims3 thread_idx_;
};

}  // namespace kvc::simt
