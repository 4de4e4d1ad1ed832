#pragma once
// The SIMT context on the GPU: what a kernel functor sees of its launch, mapped one to one
// onto CUDA's intrinsics (threadIdx, blockIdx, __syncthreads, __shfl_*_sync, cp.async) and
// CUB's WarpReduce and BlockReduce. Every member is __forceinline__ and the block's shape is
// a compile-time constant, so a kernel written against the context compiles to the code of
// the same kernel written against the intrinsics (docs/simt.md: the PTX comparison).
// The host emulator's context (backend/simt/context.hpp) has the same members.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>
#include <cuda/functional>

#include "kvc/backend/cuda/wgmma.cuh"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::cuda {

template <class Block>
class simt_context {
 public:
  using block = Block;

  // Indices and sizes. A dimension of extent 1 reads as the constant 0.
  __device__ __forceinline__ kernels::dims3 grid_dim() const {
    return {gridDim.x, gridDim.y, gridDim.z};
  }
  __device__ __forceinline__ kernels::dims3 block_idx() const {
    return {blockIdx.x, blockIdx.y, blockIdx.z};
  }
  __host__ __device__ static constexpr kernels::dims3 block_dim() { return Block::dims(); }
  __device__ __forceinline__ kernels::dims3 thread_idx() const {
    return {Block::x == 1 ? 0u : threadIdx.x, Block::y == 1 ? 0u : threadIdx.y,
            Block::z == 1 ? 0u : threadIdx.z};
  }
  /// Returns the thread's place in its block, x fastest (what warps are cut from).
  __device__ __forceinline__ unsigned thread_rank() const {
    const kernels::dims3 t = thread_idx();
    return t.x + Block::x * (t.y + Block::y * t.z);
  }
  __host__ __device__ static constexpr unsigned block_threads() { return Block::threads; }
  __device__ __forceinline__ unsigned lane() const { return thread_rank() % kernels::warp_size; }
  __device__ __forceinline__ unsigned warp() const { return thread_rank() / kernels::warp_size; }
  /// Returns the lanes that the calling thread's warp has: all_lanes but in a partial last warp.
  __device__ __forceinline__ unsigned warp_members() const {
    if constexpr (Block::last_warp_lanes == kernels::warp_size) {
      return kernels::all_lanes;
    } else {
      return warp() + 1 < Block::warps ? kernels::all_lanes : (1u << Block::last_warp_lanes) - 1u;
    }
  }

  __device__ __forceinline__ void sync() const { __syncthreads(); }
  // Named barriers: ids 1 to 15 (0 is __syncthreads'), counts in whole warps.
  __device__ __forceinline__ void sync_named(unsigned id, unsigned threads) const {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
  }
  __device__ __forceinline__ void arrive_named(unsigned id, unsigned threads) const {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
  }

  template <class T>
  __device__ __forceinline__ T shfl_xor(T value, int lane_mask,
                                        unsigned members = kernels::all_lanes) const {
    return __shfl_xor_sync(members, value, lane_mask);
  }
  template <class T>
  __device__ __forceinline__ T shfl_down(T value, unsigned delta,
                                         unsigned members = kernels::all_lanes) const {
    return __shfl_down_sync(members, value, delta);
  }
  template <class T>
  __device__ __forceinline__ T shfl_idx(T value, int source_lane,
                                        unsigned members = kernels::all_lanes) const {
    return __shfl_sync(members, value, source_lane);
  }

  // Reductions: CUB leaves the result in lane 0 (thread 0); one more shuffle (barrier)
  // hands it to every lane (thread), as the emulator does.
  template <class T>
  __device__ __forceinline__ T warp_sum(T value) const {
    return warp_reduce(value, ::cuda::std::plus<>{});
  }
  template <class T>
  __device__ __forceinline__ T warp_max(T value) const {
    return warp_reduce(value, ::cuda::maximum<>{});
  }
  __device__ __forceinline__ bool warp_any(bool value) const {
    return __any_sync(warp_members(), value ? 1 : 0) != 0;
  }
  template <class T>
  __device__ __forceinline__ T block_sum(T value) const {
    return block_reduce(value, ::cuda::std::plus<>{});
  }
  template <class T>
  __device__ __forceinline__ T block_max(T value) const {
    return block_reduce(value, ::cuda::maximum<>{});
  }

  /// Returns the block's dynamic shared memory (16-byte aligned).
  template <class T = std::byte>
  __device__ __forceinline__ T* dynamic_shared() const {
    extern __shared__ uint4 kvc_dynamic_shared[];
    return reinterpret_cast<T*>(kvc_dynamic_shared);
  }

  /// Starts copying 16 bytes from global to shared memory: cp.async on sm_80 and later, a
  /// plain copy before.
  __device__ __forceinline__ void copy_async(void* shared_destination,
                                             const void* global_source) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const auto destination = static_cast<unsigned>(__cvta_generic_to_shared(shared_destination));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(destination),
                 "l"(global_source)
                 : "memory");
#else
    *static_cast<uint4*>(shared_destination) = *static_cast<const uint4*>(global_source);
#endif
  }
  /// Copies the same way, but when `valid` is false the 16 bytes are zeros and the source is not
  /// read (cp.async's src-size 0). The copy keeps 128 bytes of the line in L2.
  __device__ __forceinline__ void copy_async(void* shared_destination, const void* global_source,
                                             bool valid) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const auto destination = static_cast<unsigned>(__cvta_generic_to_shared(shared_destination));
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(destination),
                 "l"(global_source), "r"(valid ? 16 : 0)
                 : "memory");
#else
    *static_cast<uint4*>(shared_destination) =
        valid ? *static_cast<const uint4*>(global_source) : uint4{0, 0, 0, 0};
#endif
  }
  /// Starts copying 4 bytes (both ends 4-byte aligned); zeros when `valid` is false.
  __device__ __forceinline__ void copy_async_4(void* shared_destination, const void* global_source,
                                               bool valid) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const auto destination = static_cast<unsigned>(__cvta_generic_to_shared(shared_destination));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(destination),
                 "l"(global_source), "r"(valid ? 4 : 0)
                 : "memory");
#else
    *static_cast<unsigned*>(shared_destination) =
        valid ? *static_cast<const unsigned*>(global_source) : 0u;
#endif
  }
  /// Closes the calling thread's group of copies started since the last commit.
  __device__ __forceinline__ void commit_copies() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
  }
  /// Waits until at most `Pending` of the calling thread's committed groups are in flight
  /// (the older ones have landed).
  template <int Pending>
  __device__ __forceinline__ void wait_copies() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
  }
  /// Waits for every copy_async of the calling thread.
  __device__ __forceinline__ void wait_async_copies() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
  }

  /// Waits at the warp barrier (__syncwarp): the warp's lanes meet, and their shared-memory writes
  /// before it are seen by the others after it.
  __device__ __forceinline__ void sync_warp() const { __syncwarp(warp_members()); }

  /// Loads 16 bytes at once from a 16-byte aligned address (ld.v4.u32).
  __device__ __forceinline__ kernels::vec16 load_16(const void* source) const {
    const uint4 value = *static_cast<const uint4*>(source);
    return {value.x, value.y, value.z, value.w};
  }
  /// Loads four 8 x 8 matrices of 16-bit values from shared memory (ldmatrix.x4, .trans when
  /// Transposed; layout in kernels/mma.hpp): `row` is the 16-byte aligned row this lane names
  /// (lanes 8 m to 8 m + 7: the rows of matrix m). Every lane of a full warp must call it.
  template <bool Transposed>
  __device__ __forceinline__ kernels::mma_matrices load_matrices(const void* row) const {
    kernels::mma_matrices d;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const auto address = static_cast<unsigned>(__cvta_generic_to_shared(row));
    if constexpr (Transposed)
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                   : "=r"(d.reg[0]), "=r"(d.reg[1]), "=r"(d.reg[2]), "=r"(d.reg[3])
                   : "r"(address));
    else
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                   : "=r"(d.reg[0]), "=r"(d.reg[1]), "=r"(d.reg[2]), "=r"(d.reg[3])
                   : "r"(address));
#else
    (void)row;
    __trap();  // no ldmatrix before sm_75; kvc's device code is for sm_80 and later
#endif
    return d;
  }

  /// The warp's matrix multiply-accumulate D = A B + C, m16n8k16 with fp16 or bf16 inputs and
  /// fp32 C and D (mma.sync, sm_80 and later; fragment layouts in kernels/mma.hpp). Every lane
  /// of a full warp must call it.
  template <kernels::mma_input Input>
  __device__ __forceinline__ kernels::mma_c mma_m16n8k16(const kernels::mma_a& a,
                                                         const kernels::mma_b& b,
                                                         const kernels::mma_c& c) const {
    kernels::mma_c d;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (Input == kernels::mma_input::fp16) {
      asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
          "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
          : "=f"(d.reg[0]), "=f"(d.reg[1]), "=f"(d.reg[2]), "=f"(d.reg[3])
          : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "r"(b.reg[0]),
            "r"(b.reg[1]), "f"(c.reg[0]), "f"(c.reg[1]), "f"(c.reg[2]), "f"(c.reg[3]));
    } else {
      asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
          "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
          : "=f"(d.reg[0]), "=f"(d.reg[1]), "=f"(d.reg[2]), "=f"(d.reg[3])
          : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "r"(b.reg[0]),
            "r"(b.reg[1]), "f"(c.reg[0]), "f"(c.reg[1]), "f"(c.reg[2]), "f"(c.reg[3]));
    }
#else
    (void)a, (void)b, (void)c;
    __trap();  // no mma.sync before sm_80
#endif
    return d;
  }

  /// Returns the shared-window address of a byte of shared memory (what a wgmma descriptor
  /// holds).
  __device__ __forceinline__ std::uint32_t shared_address(const void* shared) const {
    return static_cast<std::uint32_t>(__cvta_generic_to_shared(shared));
  }
  /// Makes the block's shared memory writes visible to wgmma (fence.proxy.async.shared::cta).
  __device__ __forceinline__ void fence_shared_async() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
  }

  // Hopper's warpgroup matrix multiply-accumulate (kernels/wgmma.hpp), sm_90a only: elsewhere
  // each member traps. The accumulators and A fragments (or arrays of them) named to
  // wgmma_fence and wgmma_wait are fenced as CUTLASS's warpgroup_fence_operand does, so the
  // compiler neither reads nor reuses them before the wait nor moves their writes past the
  // fence.
  template <class... Accumulators>
  __device__ __forceinline__ void wgmma_fence(Accumulators&... accumulators) const {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    (fence_registers(accumulators), ...);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
    ((void)accumulators, ...);
    __trap();
#endif
  }
  template <kernels::mma_input Input, kernels::wgmma_major MajorB, int N>
  __device__ __forceinline__ void wgmma(const kernels::mma_a& a, kernels::wgmma_descriptor b,
                                        kernels::wgmma_d<N>& d, bool accumulate) const {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    detail::wgmma_rs<Input, static_cast<int>(MajorB)>(d, a, b.bits, accumulate ? 1 : 0);
#else
    (void)a, (void)b, (void)d, (void)accumulate;
    __trap();
#endif
  }
  template <kernels::mma_input Input, kernels::wgmma_major MajorA, kernels::wgmma_major MajorB,
            int N>
  __device__ __forceinline__ void wgmma(kernels::wgmma_descriptor a, kernels::wgmma_descriptor b,
                                        kernels::wgmma_d<N>& d, bool accumulate) const {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    detail::wgmma_ss<Input, static_cast<int>(MajorA), static_cast<int>(MajorB)>(d, a.bits, b.bits,
                                                                                accumulate ? 1 : 0);
#else
    (void)a, (void)b, (void)d, (void)accumulate;
    __trap();
#endif
  }
  __device__ __forceinline__ void wgmma_commit() const {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
    __trap();
#endif
  }
  // setmaxnreg (sm_90a): the warpgroup's registers a thread raised or lowered to Registers.
  template <unsigned Registers>
  __device__ __forceinline__ void raise_registers() const {
    set_registers<true, Registers>();
  }
  template <unsigned Registers>
  __device__ __forceinline__ void lower_registers() const {
    set_registers<false, Registers>();
  }
  template <int Pending, class... Accumulators>
  __device__ __forceinline__ void wgmma_wait(Accumulators&... accumulators) const {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
    (fence_registers(accumulators), ...);
#else
    ((void)accumulators, ...);
    __trap();
#endif
  }

  /// Stores 16 bytes to global memory at once (st.global.v4; 16-byte aligned).
  __device__ __forceinline__ void store_16(void* global_destination, kernels::vec16 value) const {
    *static_cast<uint4*>(global_destination) = uint4{value.x, value.y, value.z, value.w};
  }
  /// Loads 8 bytes at once from an 8-byte aligned address (ld.v2.u32).
  __device__ __forceinline__ kernels::vec8 load_8(const void* source) const {
    const uint2 value = *static_cast<const uint2*>(source);
    return {value.x, value.y};
  }

 private:
  template <bool Raise, unsigned Registers>
  __device__ __forceinline__ static void set_registers() {
    static_assert(kernels::valid_register_limit<Registers>,
                  "kvc::cuda: setmaxnreg takes 24 to 256 registers, a multiple of 8");
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    if constexpr (Raise)
      asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
    else
      asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
#else
    __trap();
#endif
  }
  template <int N>
  __device__ __forceinline__ static void fence_registers(kernels::wgmma_d<N>& d) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) asm volatile("" : "+f"(d.reg[i])::"memory");
  }
  // An A fragment from registers stays in its registers, unchanged, until the wait names it.
  __device__ __forceinline__ static void fence_registers(kernels::mma_a& a) {
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(a.reg[i])::"memory");
  }

  template <class Operand, std::size_t Count>
  __device__ __forceinline__ static void fence_registers(Operand (&operands)[Count]) {
#pragma unroll
    for (std::size_t i = 0; i < Count; ++i) fence_registers(operands[i]);
  }

  template <class T, class Operation>
  __device__ __forceinline__ T warp_reduce(T value, Operation operation) const {
    using reduce = cub::WarpReduce<T>;
    __shared__ typename reduce::TempStorage storage[Block::warps];
    T folded;
    if constexpr (Block::last_warp_lanes == kernels::warp_size) {
      folded = reduce(storage[warp()]).Reduce(value, operation);
    } else {
      folded = warp() + 1 < Block::warps
                   ? reduce(storage[warp()]).Reduce(value, operation)
                   : reduce(storage[warp()])
                         .Reduce(value, operation, static_cast<int>(Block::last_warp_lanes));
    }
    return __shfl_sync(warp_members(), folded, 0);
  }

  // BLOCK_REDUCE_WARP_REDUCTIONS ends in one __syncthreads before thread 0 folds the warps'
  // totals; with the broadcast's barrier, a thread cannot write the storage or the result
  // of the next call before every thread has read this one's.
  template <class T, class Operation>
  __device__ __forceinline__ T block_reduce(T value, Operation operation) const {
    using reduce =
        cub::BlockReduce<T, Block::x, cub::BLOCK_REDUCE_WARP_REDUCTIONS, Block::y, Block::z>;
    __shared__ typename reduce::TempStorage storage;
    __shared__ T result;
    const T folded = reduce(storage).Reduce(value, operation);
    if (thread_rank() == 0) result = folded;
    __syncthreads();
    return result;
  }
};

}  // namespace kvc::cuda
