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

}  // namespace kvc::numeric
