#pragma once
// A kernel that runs the warpgroup matrix multiply-accumulate of the SIMT context
// (kernels/wgmma.hpp) on problems whose A and B the host has laid out in shared memory's
// canonical layouts: each warpgroup of the block copies its images of A (64 x K) and B
// (K x N) into shared memory, aligned to 1024 bytes of the shared window, loads C by
// wgmma_d_place, runs K / 16 wgmma (A from registers by wgmma_a_place, or by descriptor),
// and stores D back by wgmma_d_place. test_simt_wgmma runs it in the emulator; the
// expectations are a plain matrix product on the host. A Fault other than none breaks one
// rule, for the tests that the emulator catches a kernel that breaks it. The number of K steps
// is a run-time value here, so each wgmma sits behind a branch and ptxas reports a
// warpgroup.arrive injected before it (C7519): a kernel's steps are compile-time constants.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/unroll.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::testing {

/// A matrix image in shared memory: how a descriptor names it, and its K step.
struct wgmma_image {
  kernels::wgmma_swizzle swizzle = kernels::wgmma_swizzle::none;
  std::uint32_t leading = 0, stride = 0;
  std::uint32_t step = 0;   ///< bytes from one 16-wide slice of K to the next
  std::uint32_t bytes = 0;  ///< the image's size, a multiple of 1024
};

enum class wgmma_fault : std::uint8_t {
  none,
  no_fence,             ///< no wgmma_fence before the first wgmma
  d_layout,             ///< C and D loaded and stored with row and column bits exchanged
  read_before_wait,     ///< D stored before the wait (reads NaN in the emulator)
  overwrite_b,          ///< B zeroed after the commit, before the wait
  copy_into_b,          ///< B copied again by copy_async after the commit, landed after the wait
  wait_names_pending,   ///< two groups, wgmma_wait<1> names the newer one's accumulator
  exit_pending,         ///< no wgmma_wait at all
  divergent_descriptor  ///< warp 1 gives B's descriptor 16 bytes further on
};

template <kernels::mma_input Input, kernels::wgmma_major MajorA, kernels::wgmma_major MajorB, int N,
          bool AInRegisters, wgmma_fault Fault = wgmma_fault::none>
struct wgmma_probe {
  const std::byte* images;  ///< per warpgroup: A's image, then B's
  const std::uint16_t* a;   ///< per warpgroup: A row-major, 64 x k (for A in registers)
  const float* c;           ///< per warpgroup: 64 x N, row-major
  float* d;
  wgmma_image a_image, b_image;
  int k = 16;  ///< a multiple of 16, at most 16 x max_steps
  static constexpr int max_steps = 4;
  bool accumulate_c = true;  ///< false: the first wgmma ignores C (scale-d 0)

  /// Dynamic shared memory the launch needs for `warpgroups` warpgroups.
  std::size_t shared_bytes(unsigned warpgroups) const {
    return 1024 + std::size_t{warpgroups} * (a_image.bytes + b_image.bytes);
  }

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    std::byte* shared = ctx.dynamic_shared();
    std::byte* tiles = shared + (1024 - ctx.shared_address(shared) % 1024) % 1024;
    const std::uint32_t span = a_image.bytes + b_image.bytes;
    const std::uint32_t total = span * (ctx.block_threads() / kernels::warpgroup_threads);
    for (std::uint32_t at = 16 * ctx.thread_rank(); at < total; at += 16 * ctx.block_threads())
      std::memcpy(tiles + at, images + at, 16);
    ctx.fence_shared_async();
    ctx.sync();

    const unsigned thread = ctx.thread_rank() % kernels::warpgroup_threads;
    const int group = static_cast<int>(ctx.warp() / 4);
    std::byte* a_tile = tiles + static_cast<std::uint32_t>(group) * span;
    std::byte* b_tile = a_tile + a_image.bytes;
    const auto place = [&](int i) {
      const kernels::mma_place p = kernels::wgmma_d_place(thread, i);
      return Fault == wgmma_fault::d_layout ? (p.row ^ 1) * N + (p.column ^ 1)
                                            : p.row * N + p.column;
    };
    kernels::wgmma_d<N> acc;
    for (int i = 0; i < N / 2; ++i) acc.reg[i] = c[group * 64 * N + place(i)];
    // A's fragments (in registers) are written before the fence, as wgmma requires.
    kernels::mma_a fragments[max_steps]{};
    if constexpr (AInRegisters)
      for (int step = 0; step < k / 16; ++step)
        for (int i = 0; i < 8; ++i) {
          const kernels::mma_place p = kernels::wgmma_a_place(thread, i);
          fragments[step].set(i, a[group * 64 * k + p.row * k + 16 * step + p.column]);
        }
    if constexpr (Fault != wgmma_fault::no_fence) ctx.wgmma_fence(acc);

    const auto descriptor = [&](const std::byte* tile, const wgmma_image& image, int step) {
      return kernels::make_wgmma_descriptor(ctx.shared_address(tile), image.leading, image.stride,
                                            image.swizzle)
          .advanced(static_cast<std::uint32_t>(step) * image.step);
    };
    const auto multiply = [&](kernels::wgmma_d<N>& into, int step, bool accumulate) {
      kernels::wgmma_descriptor b = descriptor(b_tile, b_image, step);
      if (Fault == wgmma_fault::divergent_descriptor && ctx.warp() % 4 == 1) b = b.advanced(16);
      if constexpr (AInRegisters)
        ctx.template wgmma<Input, MajorB>(fragments[step], b, into, accumulate);
      else
        ctx.template wgmma<Input, MajorA, MajorB>(descriptor(a_tile, a_image, step), b, into,
                                                  accumulate);
    };
    kernels::unroll<max_steps>([&](int step) {
      if (step < k / 16) multiply(acc, step, step > 0 || accumulate_c);
    });
    ctx.wgmma_commit();

    float* out = d + group * 64 * N;
    if constexpr (Fault == wgmma_fault::read_before_wait)
      for (int i = 0; i < N / 2; ++i) out[place(i)] = acc.reg[i];
    if constexpr (Fault == wgmma_fault::overwrite_b) {
      ctx.sync();
      for (std::uint32_t at = 16 * thread; at < b_image.bytes;
           at += 16 * kernels::warpgroup_threads)
        std::memset(b_tile + at, 0, 16);
      ctx.fence_shared_async();
      ctx.sync();
    }
    if constexpr (Fault == wgmma_fault::copy_into_b)
      for (std::uint32_t at = 16 * thread; at < b_image.bytes;
           at += 16 * kernels::warpgroup_threads)
        ctx.copy_async(b_tile + at, images + (b_tile - tiles) + at);
    if constexpr (Fault == wgmma_fault::exit_pending) return;
    if constexpr (Fault == wgmma_fault::wait_names_pending) {
      kernels::wgmma_d<N> second = acc;
      multiply(second, 0, true);
      ctx.wgmma_commit();
      ctx.template wgmma_wait<1>(acc, second);
      ctx.template wgmma_wait<0>(second);
    } else {
      ctx.template wgmma_wait<0>(acc);
    }
    if constexpr (Fault == wgmma_fault::copy_into_b) ctx.wait_async_copies();
    if constexpr (Fault != wgmma_fault::read_before_wait)
      for (int i = 0; i < N / 2; ++i) out[place(i)] = acc.reg[i];
  }
};

}  // namespace kvc::testing
