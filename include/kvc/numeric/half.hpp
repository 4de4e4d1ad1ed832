#pragma once
// IEEE fp16 (binary16) and bfloat16 as raw 16-bit patterns.
// Rounding is to nearest even; overflow gives infinity; every NaN becomes the canonical
// quiet NaN 0x7FFF, as CUDA's own conversions produce.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/numeric/bits.hpp"
#include "kvc/numeric/minifloat.hpp"

namespace kvc::numeric {

inline constexpr std::uint16_t canonical_nan16 = 0x7FFF;

KVC_HOST_DEVICE constexpr std::uint16_t fp16_from_float(float value) {
  const std::uint32_t bits = float_bits(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return canonical_nan16;
  std::uint32_t code = minifloat<5, 10>::round_magnitude(abs_bits);
  if (code > 0x7C00u) code = 0x7C00u;  // overflow rounds to infinity
  return static_cast<std::uint16_t>(sign | code);
}

KVC_HOST_DEVICE constexpr float fp16_to_float(std::uint16_t half) {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  const std::uint32_t magnitude = half & 0x7FFFu;
  if (magnitude >= 0x7C00u)  // infinity or NaN, payload kept
    return float_from_bits(sign | 0x7F800000u | ((magnitude & 0x3FFu) << 13));
  return float_from_bits(sign | float_bits(minifloat<5, 10>::decode_magnitude(magnitude)));
}

KVC_HOST_DEVICE constexpr std::uint16_t bf16_from_float(float value) {
  const std::uint32_t bits = float_bits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return canonical_nan16;
  // bf16 is the top half of a float: add just under half an ulp, plus one on a tie to odd.
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

KVC_HOST_DEVICE constexpr float bf16_to_float(std::uint16_t bf16) {
  return float_from_bits(static_cast<std::uint32_t>(bf16) << 16);
}

}  // namespace kvc::numeric
