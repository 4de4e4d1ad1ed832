#pragma once
// Stored values to floats, a 32-bit word at a time, as the device kernels read them:
//
//   float v[numeric::values_per_word<fp16>];
//   numeric::unpack_word<fp16>(word, v);   // v[i] = value i of the word, little-endian
//
// Exact, and the same values as the host codecs (kvc/numeric/convert.hpp, quantize.hpp):
// on a GPU by the conversion instructions (fp16: cvt.f32.f16; bf16: a shift; fp8 e4m3:
// cvt.rn.f16x2.e4m3x2 on sm_89 and later; e5m2: a byte move into an fp16; int8 and int4:
// a byte permute into a float's mantissa and one subtraction), on the host through the
// codecs. A NaN stays a NaN (its payload may differ on a GPU). Integer values are before
// their per-vector scale; fp8 values before the layer's scale.

#include <cstdint>
#include <type_traits>

#include "kvc/config.hpp"
#include "kvc/numeric/bits.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::numeric {

template <class Type>
inline constexpr int values_per_word = 32 / Type::bits;

namespace detail {

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ void fp16x2_to_float2(std::uint32_t word, float& lo, float& hi) {
  asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.f32.f16 %0, l;\n cvt.f32.f16 %1, h;}\n"
      : "=f"(lo), "=f"(hi)
      : "r"(word));
}
// Two bytes of int8 (selector picks them) as 2^23 + 128 + value, minus that offset: exact.
__device__ __forceinline__ float int8_lane(std::uint32_t flipped, std::uint32_t selector) {
  return float_from_bits(__byte_perm(flipped, 0x4B000000u, selector)) - 8388736.0f;
}
#endif

}  // namespace detail

/// Unpacks the values of one stored 32-bit word (values_per_word<Type> of them), little-endian.
template <class Type>
KVC_HOST_DEVICE inline void unpack_word(std::uint32_t word, float* out) {
  if constexpr (Type::bits == 32) {
    out[0] = float_from_bits(word);
  } else if constexpr (std::is_same_v<Type, bf16>) {
    out[0] = float_from_bits(word << 16);
    out[1] = float_from_bits(word & 0xFFFF0000u);
  } else if constexpr (std::is_same_v<Type, fp16>) {
#if defined(__CUDA_ARCH__)
    detail::fp16x2_to_float2(word, out[0], out[1]);
#else
    out[0] = fp16_to_float(static_cast<std::uint16_t>(word & 0xFFFFu));
    out[1] = fp16_to_float(static_cast<std::uint16_t>(word >> 16));
#endif
  } else if constexpr (std::is_same_v<Type, fp8_e5m2>) {
    // e5m2 is the top byte of an fp16.
    unpack_word<fp16>((word & 0x00FF00FFu) << 8, out);
    unpack_word<fp16>(word & 0xFF00FF00u, out + 2);
    const float b = out[1];  // the words held bytes 0, 2 and 1, 3
    out[1] = out[2];
    out[2] = b;
  } else if constexpr (std::is_same_v<Type, fp8_e4m3>) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    std::uint32_t low, high;
    asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.rn.f16x2.e4m3x2 %0, l;\n"
        " cvt.rn.f16x2.e4m3x2 %1, h;}\n"
        : "=r"(low), "=r"(high)
        : "r"(word));
    unpack_word<fp16>(low, out);
    unpack_word<fp16>(high, out + 2);
#else
    for (int i = 0; i < 4; ++i)
      out[i] = fp8_e4m3_to_float(static_cast<std::uint8_t>((word >> (8 * i)) & 0xFFu));
#endif
  } else if constexpr (std::is_same_v<Type, int8>) {
#if defined(__CUDA_ARCH__)
    const std::uint32_t flipped = word ^ 0x80808080u;
    out[0] = detail::int8_lane(flipped, 0x7650u);
    out[1] = detail::int8_lane(flipped, 0x7651u);
    out[2] = detail::int8_lane(flipped, 0x7652u);
    out[3] = detail::int8_lane(flipped, 0x7653u);
#else
    for (int i = 0; i < 4; ++i)
      out[i] = static_cast<float>(static_cast<std::int8_t>((word >> (8 * i)) & 0xFFu));
#endif
  } else {
    static_assert(std::is_same_v<Type, int4>, "unpack_word: a storage dtype");
    // Nibble n as 2^23 + 8 + value (the nibble with its top bit flipped), minus the offset.
    const std::uint32_t flipped = word ^ 0x88888888u;
    for (int i = 0; i < 8; ++i)
      out[i] = float_from_bits(0x4B000000u | ((flipped >> (4 * i)) & 0xFu)) - 8388616.0f;
  }
}

namespace detail {
// a - b in each fp16 half, for operands whose differences are fp16 values (exact).
KVC_HOST_DEVICE inline std::uint32_t fp16x2_sub_exact(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  std::uint32_t d;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  const auto half = [](std::uint32_t x, int h) {
    return fp16_to_float(static_cast<std::uint16_t>(x >> (16 * h)));
  };
  return std::uint32_t{fp16_from_float(half(a, 0) - half(b, 0))} |
         std::uint32_t{fp16_from_float(half(a, 1) - half(b, 1))} << 16;
#endif
}
}  // namespace detail

/// Whether unpack_fp16 takes a storage dtype: the dtypes whose every value an fp16 holds.
template <class Type>
inline constexpr bool unpacks_to_fp16 = Type::bits <= 16 && !std::is_same_v<Type, bf16>;

/// Unpacks one stored 32-bit word into fp16 values, two to a word (value 2 i in the low half
/// of pairs[i]): values_per_word<Type> / 2 words, exactly (fp16 holds every fp8 e4m3, fp8
/// e5m2, int8 and int4 value; scales apply apart). What the tensor-core kernels stage their
/// 8-bit tiles with: fp8 e5m2 and integers by byte moves into fp16 bit patterns (an integer
/// as 1024 + 128 + value, less the offset in one fp16 subtraction), e4m3 by
/// cvt.rn.f16x2.e4m3x2 on sm_89 and later.
template <class Type>
KVC_HOST_DEVICE inline void unpack_fp16(std::uint32_t word, std::uint32_t* pairs) {
  static_assert(unpacks_to_fp16<Type>, "unpack_fp16: a storage dtype that fp16 holds exactly");
  if constexpr (std::is_same_v<Type, fp16>) {
    pairs[0] = word;
  } else if constexpr (std::is_same_v<Type, fp8_e5m2>) {
    // e5m2 is the top byte of an fp16.
    pairs[0] = (word & 0xFFu) << 8 | (word & 0xFF00u) << 16;
    pairs[1] = (word >> 8 & 0xFF00u) | (word & 0xFF000000u);
  } else if constexpr (std::is_same_v<Type, fp8_e4m3>) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.rn.f16x2.e4m3x2 %0, l;\n"
        " cvt.rn.f16x2.e4m3x2 %1, h;}\n"
        : "=r"(pairs[0]), "=r"(pairs[1])
        : "r"(word));
#else
    float values[4];
    unpack_word<fp8_e4m3>(word, values);
    for (int i = 0; i < 2; ++i)
      pairs[i] = std::uint32_t{fp16_from_float(values[2 * i])} |
                 std::uint32_t{fp16_from_float(values[2 * i + 1])} << 16;
#endif
  } else if constexpr (std::is_same_v<Type, int8>) {
    const std::uint32_t flipped = word ^ 0x80808080u;  // 128 + value
    pairs[0] = detail::fp16x2_sub_exact(0x64006400u | (flipped & 0xFFu) | (flipped & 0xFF00u) << 8,
                                        0x64806480u);
    pairs[1] = detail::fp16x2_sub_exact(
        0x64006400u | (flipped >> 16 & 0xFFu) | (flipped >> 8 & 0xFF0000u), 0x64806480u);
  } else {
    static_assert(std::is_same_v<Type, int4>, "unpack_fp16: a storage dtype");
    const std::uint32_t flipped = word ^ 0x88888888u;  // 8 + value
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t t = flipped >> (8 * i);
      pairs[i] =
          detail::fp16x2_sub_exact(0x64006400u | (t & 0xFu) | (t << 12 & 0xF0000u), 0x64086408u);
    }
  }
}

}  // namespace kvc::numeric
