#pragma once
// Hopper's warpgroup matrix multiply-accumulate (PTX wgmma.mma_async, sm_90a only): the four
// warps of a warpgroup (128 threads, warps 4g .. 4g + 3 of a block) compute together
// D = A B + D for A 64 x 16, B 16 x N (N a multiple of 8 up to 256), D 64 x N in fp32, A and B
// in fp16 or bf16. B, and A when not from registers, are read from shared memory through a
// 64-bit matrix descriptor; the operation is asynchronous (fence, commit, wait). Layouts and
// encodings here are from the PTX ISA 8.x, "Asynchronous Warpgroup Level Matrix Multiply-
// Accumulate Instructions" (section 9.7.15): "Register Fragments", "Shared Memory Matrix
// Layout" and "Matrix Descriptor Format"; the canonical layouts as CUTLASS states them in
// include/cute/atom/mma_traits_sm90_gmma.hpp (make_gmma_desc).
//
//   D, value i of warpgroup thread t (warp w = t / 32, lane = t % 32): row 16 w + lane / 4 +
//     8 ((i / 2) % 2), column 8 (i / 4) + 2 (lane % 4) + i % 2 (mma.sync's C fragment of the
//     warp's 16 rows, once per 8 columns)
//   A from registers: warp w holds rows 16 w .. 16 w + 15 as mma.sync's A fragment
//
//   const auto b = kernels::make_wgmma_descriptor(ctx.shared_address(tile), 0, 1024,
//                                                kernels::wgmma_swizzle::bytes_128);
//   ctx.wgmma_fence(d);
//   ctx.template wgmma<kernels::mma_input::bf16, kernels::wgmma_major::k>(a, b, d, true);
//   ctx.wgmma_commit();
//   ctx.template wgmma_wait<0>(d);

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::kernels {

/// The threads of a warpgroup: four consecutive warps, the first a multiple of 4.
inline constexpr unsigned warpgroup_threads = 128;
/// Rows of A and D, and the K of one instruction.
inline constexpr int wgmma_m = 64, wgmma_k = 16;

/// Whether a warpgroup may set its registers a thread to `Registers` (setmaxnreg, sm_90a: the
/// PTX ISA takes 24 to 256, a multiple of 8).
template <unsigned Registers>
inline constexpr bool valid_register_limit =
    Registers >= 24 && Registers <= 256 && Registers % 8 == 0;

/// How a matrix in shared memory is swizzled: 16-byte chunks of a row of 32, 64 or 128 bytes
/// exchanged by the row's place in its group of 8 (the descriptor's 2-bit layout type).
enum class wgmma_swizzle : std::uint8_t { none = 0, bytes_128 = 1, bytes_64 = 2, bytes_32 = 3 };

/// Which dimension of a matrix in shared memory is contiguous: K (A stored [m][k], B [n][k]),
/// or M / N (A stored [k][m], B [k][n]); the instruction's imm-trans-a and imm-trans-b.
enum class wgmma_major : std::uint8_t { k = 0, mn = 1 };

/// A shared memory matrix descriptor: start address in bits 0-13, leading dimension byte offset
/// in 16-29, stride dimension byte offset in 32-45 (each a byte count >> 4), base offset in
/// 49-51 (0 here: swizzled tiles are aligned to their pattern), swizzle in 62-63.
struct wgmma_descriptor {
  std::uint64_t bits;

  /// Returns the descriptor of the matrix `bytes` further on (a multiple of 16): the next
  /// 16 columns of K inside a swizzled row (32 bytes of 16-bit values), or the next tile.
  KVC_HOST_DEVICE constexpr wgmma_descriptor advanced(std::uint32_t bytes) const {
    const std::uint64_t start = (bits + (bytes >> 4)) & 0x3fffu;
    return {(bits & ~std::uint64_t{0x3fffu}) | start};
  }
};

/// Returns the descriptor of a matrix at `shared_address` (16-byte aligned, from the context's
/// shared_address), with the canonical layout's leading and stride byte offsets (multiples
/// of 16, below 256 KiB).
KVC_HOST_DEVICE constexpr wgmma_descriptor make_wgmma_descriptor(std::uint32_t shared_address,
                                                                 std::uint32_t leading_bytes,
                                                                 std::uint32_t stride_bytes,
                                                                 wgmma_swizzle swizzle) {
  const auto field = [](std::uint32_t bytes) { return std::uint64_t{(bytes & 0x3ffffu) >> 4}; };
  return {field(shared_address) | field(leading_bytes) << 16 | field(stride_bytes) << 32 |
          std::uint64_t{static_cast<std::uint8_t>(swizzle)} << 62};
}

/// A warpgroup thread's N / 2 floats of D.
template <int N>
struct wgmma_d {
  static_assert(N >= 8 && N <= 256 && N % 8 == 0,
                "kvc::kernels::wgmma_d<N>: wgmma's N is a multiple of 8 from 8 to 256");
  static constexpr int n = N;
  float reg[static_cast<unsigned>(N) / 2];
};

/// Where value i of warpgroup thread `thread`'s D lies.
KVC_HOST_DEVICE constexpr mma_place wgmma_d_place(unsigned thread, int i) {
  const int warp = static_cast<int>(thread / warp_size);
  const unsigned lane = thread % warp_size;
  return {16 * warp + static_cast<int>(lane / 4) + 8 * ((i / 2) % 2),
          8 * (i / 4) + 2 * static_cast<int>(lane % 4) + i % 2};
}
/// Where value i of warpgroup thread `thread`'s A (from registers) lies.
KVC_HOST_DEVICE constexpr mma_place wgmma_a_place(unsigned thread, int i) {
  const mma_place in_warp = mma_a_place(thread % warp_size, i);
  return {in_warp.row + 16 * static_cast<int>(thread / warp_size), in_warp.column};
}

/// The byte offset of 16-byte chunk `chunk` (0-7) of row `row` in rows of 128 bytes with the
/// 128-byte swizzle, from a 1024-byte aligned start: what a descriptor with
/// wgmma_swizzle::bytes_128 reads there. K-major, 64 16-bit values per row, the stride byte
/// offset 1024 (8 rows); the same rows read MN-major (B stored [k][n]) take the leading byte
/// offset of the next 64 columns' rows and the stride byte offset 1024.
KVC_HOST_DEVICE constexpr std::uint32_t swizzled_128_offset(std::uint32_t row,
                                                            std::uint32_t chunk) {
  return row * 128u + ((chunk ^ (row % 8u)) << 4);
}

}  // namespace kvc::kernels
