#pragma once
// The two OCP 8-bit float formats (OCP 8-bit Floating Point Specification, v1.0, 2023):
//   e4m3: bias 7, no infinity, S.1111.111 is NaN, largest finite 448
//   e5m2: bias 15, IEEE-like (infinities and NaNs), largest finite 57344
// Conversion from float rounds to nearest even and saturates: anything beyond the largest
// finite value, infinity included, becomes that value (CUDA's __NV_SATFINITE). Every NaN
// becomes the canonical NaN 0x7F, as CUDA's conversions produce (both formats).

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/numeric/bits.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/numeric/minifloat.hpp"

namespace kvc::numeric {

inline constexpr float fp8_e4m3_max = 448.0f;
inline constexpr float fp8_e5m2_max = 57344.0f;
inline constexpr std::uint8_t canonical_nan8 = 0x7F;

namespace detail {
template <int ExpBits, int ManBits, std::uint32_t LargestCode>
KVC_HOST_DEVICE constexpr std::uint8_t fp8_from_float(float value) {
  const std::uint32_t bits = float_bits(value);
  const auto sign = static_cast<std::uint8_t>((bits >> 24) & 0x80u);
  const std::uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return canonical_nan8;
  std::uint32_t code = minifloat<ExpBits, ManBits>::round_magnitude(abs_bits);
  if (code > LargestCode) code = LargestCode;
  return static_cast<std::uint8_t>(sign | code);
}
}  // namespace detail

KVC_HOST_DEVICE constexpr std::uint8_t fp8_e4m3_from_float(float value) {
  return detail::fp8_from_float<4, 3, 0x7Eu>(value);
}

KVC_HOST_DEVICE constexpr float fp8_e4m3_to_float(std::uint8_t fp8) {
  const std::uint32_t sign = static_cast<std::uint32_t>(fp8 & 0x80u) << 24;
  const std::uint32_t magnitude = fp8 & 0x7Fu;
  if (magnitude == 0x7Fu) return float_from_bits(sign | 0x7FC00000u);
  return float_from_bits(sign | float_bits(minifloat<4, 3>::decode_magnitude(magnitude)));
}

KVC_HOST_DEVICE constexpr std::uint8_t fp8_e5m2_from_float(float value) {
  return detail::fp8_from_float<5, 2, 0x7Bu>(value);
}

/// Decodes e5m2 as the top byte of an fp16, which it is.
KVC_HOST_DEVICE constexpr float fp8_e5m2_to_float(std::uint8_t fp8) {
  return fp16_to_float(static_cast<std::uint16_t>(fp8 << 8));
}

}  // namespace kvc::numeric
