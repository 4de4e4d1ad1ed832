#pragma once
// The warp-level matrix multiply-accumulate that sm_80 and sm_90 share: D = A B + C with A
// 16 x 16 (row-major), B 16 x 8 (column-major), C and D 16 x 8 in fp32, A and B in fp16 or
// bf16 (PTX mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32). Every lane of a
// full warp holds a fragment of each matrix; which elements is fixed by the hardware and
// given here, for kernels that load and store fragments, from the PTX ISA ("Matrix Fragments
// for mma.m16n8k16 with floating point type", PTX ISA 8.x, section 9.7.14.5.8):
//   group = lane / 4, pair = lane % 4
//   A: 8 values in 4 registers, value i at row group + 8 * ((i / 2) % 2), column
//      2 * pair + i % 2 + 8 * (i / 4)
//   B: 4 values in 2 registers, value i at row (k) 2 * pair + i % 2 + 8 * (i / 2), column group
//   C, D: 4 floats, value i at row group + 8 * (i / 2), column 2 * pair + i % 2
// Two 16-bit values share a register, the lower-numbered one in its low half.
//
//   kernels::mma_a a;  a.set(i, bits);                         // from the layout above
//   const kernels::mma_c d = ctx.template mma_m16n8k16<kernels::mma_input::bf16>(a, b, c);

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kvc/config.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// The 16-bit input type of a matrix multiply-accumulate.
enum class mma_input : std::uint8_t { fp16, bf16 };

/// Rows and columns of the shape.
inline constexpr int mma_m = 16, mma_n = 8, mma_k = 16;

/// A lane's fragment of 16-bit values, two to a register.
template <unsigned Registers>
struct mma_halves {
  std::uint32_t reg[Registers];

  KVC_HOST_DEVICE constexpr std::uint16_t get(int i) const {
    return static_cast<std::uint16_t>(reg[i / 2] >> (16 * (i % 2)));
  }
  KVC_HOST_DEVICE constexpr void set(int i, std::uint16_t bits) {
    const int shift = 16 * (i % 2);
    reg[i / 2] = (reg[i / 2] & ~(0xffffu << shift)) | (std::uint32_t{bits} << shift);
  }
};
/// A lane's 8 values of A.
using mma_a = mma_halves<4>;
/// A lane's 4 values of B.
using mma_b = mma_halves<2>;
/// A lane's 4 floats of C or D.
struct mma_c {
  float reg[4];
};

/// Where value i of a lane's fragment lies in its matrix.
struct mma_place {
  int row, column;
};

KVC_HOST_DEVICE constexpr mma_place mma_a_place(unsigned lane, int i) {
  const int group = static_cast<int>(lane / 4), pair = static_cast<int>(lane % 4);
  return {group + 8 * ((i / 2) % 2), 2 * pair + i % 2 + 8 * (i / 4)};
}
KVC_HOST_DEVICE constexpr mma_place mma_b_place(unsigned lane, int i) {
  const int group = static_cast<int>(lane / 4), pair = static_cast<int>(lane % 4);
  return {2 * pair + i % 2 + 8 * (i / 2), group};
}
KVC_HOST_DEVICE constexpr mma_place mma_c_place(unsigned lane, int i) {
  const int group = static_cast<int>(lane / 4), pair = static_cast<int>(lane % 4);
  return {group + 8 * (i / 2), 2 * pair + i % 2};
}

/// A lane's 4 registers of ldmatrix.x4: four 8 x 8 matrices of 16-bit values whose rows lanes
/// 0-7, 8-15, 16-23 and 24-31 name (one 16-byte row each, in shared memory). Register m holds,
/// of matrix m (PTX ISA "Warp-level matrix load instruction: ldmatrix"):
///   as stored:  row lane / 4, columns 2 (lane % 4) and 2 (lane % 4) + 1
///   transposed: rows 2 (lane % 4) and 2 (lane % 4) + 1, column lane / 4
/// the lower-numbered in the low half: what an A or B fragment takes (B from a matrix stored
/// [n][k] as it is, or from one stored [k][n] transposed).
struct mma_matrices {
  std::uint32_t reg[4];
};

/// Returns two floats rounded to nearest (even) in the input type, `low` in the low half of the
/// register: what A and B fragments hold (cvt.rn.f16x2.f32 / cvt.rn.bf16x2.f32 on a GPU).
template <mma_input Input>
KVC_HOST_DEVICE inline std::uint32_t mma_pack(float low, float high) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t packed;
  if constexpr (Input == mma_input::fp16)
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(high), "f"(low));
  else
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(high), "f"(low));
  return packed;
#else
  if constexpr (Input == mma_input::fp16)
    return std::uint32_t{numeric::fp16_from_float(low)} |
           std::uint32_t{numeric::fp16_from_float(high)} << 16;
  else
    return std::uint32_t{numeric::bf16_from_float(low)} |
           std::uint32_t{numeric::bf16_from_float(high)} << 16;
#endif
}

/// Whether the tensor cores read a storage dtype as stored (fp16, bf16); the others are
/// converted into fp16 tiles in shared memory on the way in.
template <class Type>
inline constexpr bool mma_reads_stored = std::is_same_v<Type, fp16> || std::is_same_v<Type, bf16>;

/// The tensor cores' input type for a storage dtype: bf16 for bf16, fp16 for the others
/// (fp16 holds every fp8 e4m3, fp8 e5m2, int8 and int4 value exactly; scales apply apart).
template <class Type>
inline constexpr mma_input mma_input_of =
    std::is_same_v<Type, bf16> ? mma_input::bf16 : mma_input::fp16;

namespace detail {
// 2^x (ex2.approx.ftz on a GPU: relative error below 2^-22, a result below 2^-126 flushed to
// 0; -inf gives 0, NaN stays NaN).
KVC_HOST_DEVICE inline float exp2_approx(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}
}  // namespace detail

}  // namespace kvc::kernels
