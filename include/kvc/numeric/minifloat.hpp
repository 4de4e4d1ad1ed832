#pragma once
// Rounding to and from narrow binary floating-point formats (1 sign bit, ExpBits exponent
// bits, ManBits mantissa bits, IEEE-style bias and subnormals). fp16 and both fp8 formats
// are built on these two functions; each format adds only its NaN, infinity and
// saturation rules.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/numeric/bits.hpp"

namespace kvc::numeric {

template <int ExpBits, int ManBits>
struct minifloat {
  static constexpr int bias = (1 << (ExpBits - 1)) - 1;

  /// Returns the magnitude code nearest to a finite or infinite float magnitude (float bits with
  /// the sign cleared), ties to even. Codes past the format's largest finite value are
  /// returned as they are: the caller turns them into infinity or saturates.
  KVC_HOST_DEVICE static constexpr std::uint32_t round_magnitude(std::uint32_t abs_bits) {
    const int float_exponent_field = static_cast<int>(abs_bits >> 23);
    const std::uint32_t float_mantissa = abs_bits & 0x7FFFFFu;
    const int exponent = float_exponent_field - 127;
    if (exponent >= 1 - bias) {  // a normal number of the target format
      constexpr int dropped = 23 - ManBits;
      const std::uint32_t code =
          (static_cast<std::uint32_t>(exponent + bias) << ManBits) | (float_mantissa >> dropped);
      return round_half_even(code, float_mantissa, dropped);
    }
    // A subnormal of the target: count units of 2^(1 - bias - ManBits).
    const std::uint32_t significand =
        float_exponent_field != 0 ? (float_mantissa | 0x800000u) : float_mantissa;
    const int true_exponent = float_exponent_field != 0 ? exponent : -126;
    const int dropped = 23 + 1 - bias - ManBits - true_exponent;
    if (dropped > 31) return 0;  // far below half the smallest subnormal
    return round_half_even(significand >> dropped, significand, dropped);
  }

  /// Returns the float value of a finite magnitude code (no sign bit, not infinity or NaN).
  KVC_HOST_DEVICE static constexpr float decode_magnitude(std::uint32_t code) {
    const std::uint32_t exponent_field = code >> ManBits;
    const std::uint32_t mantissa = code & ((1u << ManBits) - 1u);
    if (exponent_field == 0) {  // subnormal: mantissa units of 2^(1 - bias - ManBits), exact
      constexpr float unit =
          float_from_bits(static_cast<std::uint32_t>(127 + 1 - bias - ManBits) << 23);
      return static_cast<float>(mantissa) * unit;
    }
    return float_from_bits(((exponent_field - bias + 127) << 23) | (mantissa << (23 - ManBits)));
  }

 private:
  // code holds the kept bits; the lowest `dropped` bits of `source` were cut off.
  KVC_HOST_DEVICE static constexpr std::uint32_t round_half_even(std::uint32_t code,
                                                                 std::uint32_t source,
                                                                 int dropped) {
    const std::uint32_t rest = source & ((1u << dropped) - 1u);
    const std::uint32_t half = 1u << (dropped - 1);
    return code + ((rest > half || (rest == half && (code & 1u) != 0)) ? 1u : 0u);
  }
};

}  // namespace kvc::numeric
