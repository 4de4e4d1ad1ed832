#pragma once
// The host emulator's warp matrix multiply-accumulate (mma.sync m16n8k16, kernels/mma.hpp):
// from the 32 lanes' A and B fragments, lane `lane` gets its 4 values of D = A B + C. Where an
// element of A or B lives is read here the other way round from the layout in kernels/mma.hpp
// (which lane, which value holds row r, column c), written separately from the PTX ISA's
// table, so that a kernel's layout and the emulator's agree only where both agree with it.
//
// Products of fp16 or bf16 values are exact in fp32. The 16 products and C are added in
// double and rounded to fp32 once, within an fp32 rounding of the exact sum. A GPU's tensor
// cores add in fp32 in their own order and rounding, so the two may differ in the last bits of
// a sum that is not exact in fp32; docs/simt.md gives the bound.
//
//   const kernels::mma_c d = detail::mma_lane_result<kernels::mma_input::fp16>(fragments, lane, c);

#include <cstdint>

#include "kvc/backend/simt/thread_team.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/numeric/half.hpp"

namespace kvc::simt::detail {

/// Which lane holds a value of A or B, and which of its values it is.
struct mma_holder {
  unsigned lane;
  int value;
};

/// A[row][k]: lanes 4 r' .. 4 r' + 3 hold row r' and r' + 8 (r' = row mod 8), two adjacent
/// columns each, in the first 8 columns (values 0-3) and the last 8 (values 4-7).
constexpr mma_holder mma_a_holder(int row, int k) {
  return {static_cast<unsigned>((row % 8) * 4 + (k % 8) / 2),
          (k % 2) + 2 * (row / 8) + 4 * (k / 8)};
}
/// B[k][column]: lanes 4 c .. 4 c + 3 hold column c, two adjacent rows each, rows 0-7 in
/// values 0-1 and rows 8-15 in values 2-3.
constexpr mma_holder mma_b_holder(int k, int column) {
  return {static_cast<unsigned>(column * 4 + (k % 8) / 2), (k % 2) + 2 * (k / 8)};
}

template <kernels::mma_input Input>
constexpr double mma_value(const std::uint32_t* registers, int value) {
  const auto bits = static_cast<std::uint16_t>(registers[value / 2] >> (16 * (value % 2)));
  if constexpr (Input == kernels::mma_input::fp16)
    return numeric::fp16_to_float(bits);
  else
    return numeric::bf16_to_float(bits);
}

/// Returns lane `lane`'s D from the warp's fragments (fragments[l]: lane l's) and its C.
template <kernels::mma_input Input>
kernels::mma_c mma_lane_result(const mma_fragment* fragments, unsigned lane,
                               const kernels::mma_c& c) {
  kernels::mma_c d{};
  const int group = static_cast<int>(lane / 4), pair = static_cast<int>(lane % 4);
  for (int i = 0; i < 4; ++i) {
    const int row = group + 8 * (i / 2), column = 2 * pair + i % 2;
    double sum = c.reg[i];
    for (int k = 0; k < kernels::mma_k; ++k) {
      const mma_holder a = mma_a_holder(row, k), b = mma_b_holder(k, column);
      sum += mma_value<Input>(fragments[a.lane].a, a.value) *
             mma_value<Input>(fragments[b.lane].b, b.value);
    }
    d.reg[i] = static_cast<float>(sum);
  }
  return d;
}

}  // namespace kvc::simt::detail
