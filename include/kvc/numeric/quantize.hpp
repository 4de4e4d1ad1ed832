#pragma once
// Symmetric integer quantization of one token-head vector with one fp32 scale:
//   int8: q in [-127, 127], scale = max|x| / 127
//   int4: q in [-7, 7],     scale = max|x| / 7, two values per byte (low nibble first)
// Values are rounded to nearest even, so |x - q * scale| <= scale / 2 + 2^-21 |x| (the second
// term bounds the float rounding of the multiplier, the product and the dequantization).
// A vector of zeros gets scale 0 and reads back as zeros. A NaN or an infinity anywhere in
// the vector makes its scale non-finite, and every value of it reads back NaN: a poisoned
// input is never silently turned into numbers.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/numeric/bits.hpp"

namespace kvc::numeric {

template <int Levels>
struct symmetric_quantizer {
  static constexpr int levels = Levels;

  /// Returns the scale that maps the largest magnitude of a vector onto the largest level.
  KVC_HOST_DEVICE static constexpr float scale_for(float abs_max) { return abs_max / Levels; }

  /// Returns what values are first multiplied by (exactly: a power of two): 2^64 for a vector whose
  /// largest magnitude is below 2^-64, so that levels / abs_max cannot overflow (below about
  /// 3.7e-37 it would, and every nonzero value would land on the largest level); else 1.
  KVC_HOST_DEVICE static constexpr float pre_scale_for(float abs_max) {
    return abs_max < 5.421010862427522e-20f ? 1.8446744073709552e19f : 1.0f;
  }

  /// Returns the multiplier that quantizes values already multiplied by pre_scale_for(abs_max):
  /// levels / (abs_max * pre), 0 for an all-zero or non-finite vector.
  KVC_HOST_DEVICE static constexpr float inverse_scale_for(float abs_max) {
    return abs_max > 0.0f && abs_max <= 3.4028235e38f ? Levels / (abs_max * pre_scale_for(abs_max))
                                                      : 0.0f;
  }

  KVC_HOST_DEVICE static int quantize(float value, float inverse_scale, float pre_scale = 1.0f) {
    float t = mul_rn(mul_rn(value, pre_scale), inverse_scale);
    if (!(t == t)) return 0;  // NaN input: the vector's scale already reads it back as NaN
    t = t < -Levels ? -Levels : (t > Levels ? Levels : t);
    // Adding and subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to an integer,
    // to nearest even, the same way on every IEEE machine.
    constexpr float round_shift = 12582912.0f;
    return static_cast<int>((t + round_shift) - round_shift);
  }

  KVC_HOST_DEVICE static constexpr float dequantize(int q, float scale) {
    return static_cast<float>(q) * scale;
  }
};

using int8_quantizer = symmetric_quantizer<127>;
using int4_quantizer = symmetric_quantizer<7>;

/// Returns the largest magnitude of a vector; NaN if any value is NaN.
KVC_HOST_DEVICE constexpr float abs_max(const float* values, int count) {
  float result = 0.0f;
  for (int i = 0; i < count; ++i) {
    const float a = values[i] < 0 ? -values[i] : values[i];
    if (!(a <= result)) result = a;  // also takes a NaN...
    if (result != result) break;     // ...which then stays
  }
  return result;
}

KVC_HOST_DEVICE constexpr std::uint8_t pack_int4(int low, int high) {
  return static_cast<std::uint8_t>((low & 0xF) | ((high & 0xF) << 4));
}
KVC_HOST_DEVICE constexpr int unpack_int4_low(std::uint8_t byte) { return ((byte & 0xF) ^ 8) - 8; }
KVC_HOST_DEVICE constexpr int unpack_int4_high(std::uint8_t byte) { return ((byte >> 4) ^ 8) - 8; }

/// Quantizes count values to int8; returns the scale to store beside them.
KVC_HOST_DEVICE inline float quantize_int8(const float* values, int count, std::int8_t* out) {
  const float amax = abs_max(values, count);
  const float inverse = int8_quantizer::inverse_scale_for(amax);
  const float pre = int8_quantizer::pre_scale_for(amax);
  for (int i = 0; i < count; ++i)
    out[i] = static_cast<std::int8_t>(int8_quantizer::quantize(values[i], inverse, pre));
  return int8_quantizer::scale_for(amax);
}

KVC_HOST_DEVICE inline void dequantize_int8(const std::int8_t* in, int count, float scale,
                                            float* out) {
  for (int i = 0; i < count; ++i) out[i] = int8_quantizer::dequantize(in[i], scale);
}

/// Quantizes count values (count even) to int4, packed in count / 2 bytes; returns the scale.
KVC_HOST_DEVICE inline float quantize_int4(const float* values, int count, std::uint8_t* out) {
  const float amax = abs_max(values, count);
  const float inverse = int4_quantizer::inverse_scale_for(amax);
  const float pre = int4_quantizer::pre_scale_for(amax);
  for (int i = 0; i + 1 < count; i += 2)
    out[i / 2] = pack_int4(int4_quantizer::quantize(values[i], inverse, pre),
                           int4_quantizer::quantize(values[i + 1], inverse, pre));
  return int4_quantizer::scale_for(amax);
}

KVC_HOST_DEVICE inline void dequantize_int4(const std::uint8_t* in, int count, float scale,
                                            float* out) {
  for (int i = 0; i + 1 < count; i += 2) {
    out[i] = int4_quantizer::dequantize(unpack_int4_low(in[i / 2]), scale);
    out[i + 1] = int4_quantizer::dequantize(unpack_int4_high(in[i / 2]), scale);
  }
}

}  // namespace kvc::numeric
