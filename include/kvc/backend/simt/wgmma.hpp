#pragma once
// The host emulator's warpgroup matrix multiply-accumulate (wgmma.mma_async m64nNk16,
// kernels/wgmma.hpp): where a shared memory matrix descriptor puts element (mn, k), and a
// thread's values of D from the warpgroup's records. Both are read here from the PTX ISA's
// text ("Shared Memory Matrix Layout", "Matrix Descriptor Format", "Register Fragments") in the
// direction the hardware reads (descriptor to address, element to the thread that holds it),
// the other way round from the helpers that kernels place their data with.
//
// Canonical layouts, for 16-bit values, in bytes from the descriptor's start address
// (W: 16 without a swizzle, else the swizzle's row of 32, 64 or 128 bytes):
//   K-major, no swizzle: (mn % 8) 16 + (mn / 8) SBO + (k / 8) LBO + (k % 8) 2
//   K-major, swizzled:   (mn % 8) W + (mn / 8) SBO + k 2
//   MN-major, no swizzle: (mn % 8) 2 + (mn / 8) SBO + (k % 8) 16 + (k / 8) LBO
//   MN-major, swizzled:  (mn % (W/2)) 2 + (mn / (W/2)) LBO + (k % 8) W + (k / 8) SBO
// A swizzle then exchanges bits 4.. of the shared address with bits 7.. (3 bits for 128-byte
// rows, 2 for 64, 1 for 32): address ^ ((address >> 7) % (W / 16)) << 4.

#include <cstdint>

#include "kvc/backend/simt/mma.hpp"
#include "kvc/backend/simt/thread_team.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::simt::detail {

/// What one wgmma multiplies, packed into a record's `shape`.
struct wgmma_shape {
  int n;
  kernels::mma_input input;
  kernels::wgmma_major major_a, major_b;
  bool a_in_registers;

  constexpr std::uint32_t packed() const {
    return static_cast<std::uint32_t>(n) | static_cast<std::uint32_t>(input) << 9 |
           static_cast<std::uint32_t>(major_a) << 10 | static_cast<std::uint32_t>(major_b) << 11 |
           static_cast<std::uint32_t>(a_in_registers) << 12;
  }
  static constexpr wgmma_shape unpacked(std::uint32_t bits) {
    return {static_cast<int>(bits & 511u), static_cast<kernels::mma_input>(bits >> 9 & 1u),
            static_cast<kernels::wgmma_major>(bits >> 10 & 1u),
            static_cast<kernels::wgmma_major>(bits >> 11 & 1u), (bits >> 12 & 1u) != 0};
  }
};

/// Returns the base offset field (bits 49-51) of a descriptor; the emulator takes only 0.
constexpr unsigned wgmma_base_offset(std::uint64_t descriptor) {
  return static_cast<unsigned>(descriptor >> 49 & 7u);
}

/// Returns the shared address of element (mn, k), k < 16, of the 16-bit matrix `descriptor`
/// describes, read with `major` contiguous.
constexpr std::uint32_t wgmma_element_address(std::uint64_t descriptor, kernels::wgmma_major major,
                                              std::uint32_t mn, std::uint32_t k) {
  const auto field = [&](int shift) {
    return static_cast<std::uint32_t>(descriptor >> shift & 0x3fffu) << 4;
  };
  const std::uint32_t start = field(0), leading = field(16), stride = field(32);
  const auto layout = static_cast<unsigned>(descriptor >> 62);
  const std::uint32_t row_bytes = layout == 0 ? 16 : layout == 1 ? 128 : layout == 2 ? 64 : 32;
  std::uint32_t address = start;
  if (major == kernels::wgmma_major::k) {
    if (layout == 0)
      address += mn % 8 * 16 + mn / 8 * stride + k / 8 * leading + k % 8 * 2;
    else
      address += mn % 8 * row_bytes + mn / 8 * stride + k * 2;
  } else {
    if (layout == 0) {
      address += mn % 8 * 2 + mn / 8 * stride + k % 8 * 16 + k / 8 * leading;
    } else {
      const std::uint32_t per_row = row_bytes / 2;  // values of MN in one swizzled row
      address += mn % per_row * 2 + mn / per_row * leading + k % 8 * row_bytes + k / 8 * stride;
    }
  }
  if (layout != 0) address ^= (address >> 7) % (row_bytes / 16) << 4;
  return address;
}

/// Computes thread `thread`'s values of D (shape.n / 2 floats, in `d`) of the warpgroup's
/// operation whose records are `records` (one per warpgroup thread): d = A B + (accumulate ?
/// d : 0). `read` returns the 16-bit value at a shared address. Products of fp16 or bf16 values
/// are exact; each value is summed in double and rounded once to fp32, as mma_lane_result.
template <class ReadShared>
void wgmma_thread_result(const wgmma_record* records, unsigned thread, float* d, bool accumulate,
                         const ReadShared& read) {
  const wgmma_record& own = records[thread];
  const wgmma_shape shape = wgmma_shape::unpacked(own.shape);
  const auto value = [&](std::uint16_t bits) -> double {
    return shape.input == kernels::mma_input::fp16 ? numeric::fp16_to_float(bits)
                                                   : numeric::bf16_to_float(bits);
  };
  const auto a_value = [&](std::uint32_t row, std::uint32_t k) -> double {
    if (!shape.a_in_registers)
      return value(read(wgmma_element_address(own.a_descriptor, shape.major_a, row, k)));
    // Warp row / 16 holds rows 16 w .. 16 w + 15 as mma.sync's A.
    const mma_holder holder = mma_a_holder(static_cast<int>(row % 16), static_cast<int>(k));
    const wgmma_record& from = records[row / 16 * kernels::warp_size + holder.lane];
    return value(static_cast<std::uint16_t>(from.a[holder.value / 2] >> 16 * (holder.value % 2)));
  };
  const unsigned warp = thread / kernels::warp_size, lane = thread % kernels::warp_size;
  for (unsigned i = 0; i < static_cast<unsigned>(shape.n) / 2; ++i) {
    // mma.sync's C fragment of the warp's 16 rows, once for every 8 columns.
    const std::uint32_t row = 16 * warp + lane / 4 + 8 * (i / 2 % 2);
    const std::uint32_t column = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
    double sum = accumulate ? d[i] : 0.0;
    for (std::uint32_t k = 0; k < kernels::wgmma_k; ++k)
      sum += a_value(row, k) *
             value(read(wgmma_element_address(own.b_descriptor, shape.major_b, column, k)));
    d[i] = static_cast<float>(sum);
  }
}

}  // namespace kvc::simt::detail
