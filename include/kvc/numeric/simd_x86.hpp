#pragma once
// AVX2 + F16C versions of the host conversions, 8 values at a time, bit for bit the same as
// the scalar functions of vector.hpp (tests compare them on every dtype pair). They carry
// their own target attribute, so the library needs no -mavx2: host_vector.hpp calls them
// only when the CPU reports AVX2 and F16C. Only for x86-64 with GCC or Clang.

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define KVC_X86_SIMD 1

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kvc/numeric/cpu_features.hpp"
#include "kvc/numeric/fp8.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/numeric/vector.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::numeric::x86 {

/// Returns whether the CPU has AVX2 and F16C, for these conversions (cpu_features.hpp asks the CPU
/// once).
inline bool cpu_has_avx2_f16c() { return cpu_features::detected().avx2_f16c; }

/// Loads 8 floats from fp32, fp16 or bf16 storage.
[[gnu::target("avx2,f16c")]] inline __m256 load8(dtype_id type, const void* source) {
  switch (type) {
    case dtype_id::fp16:
      return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(source)));
    case dtype_id::bf16:
      return _mm256_castsi256_ps(_mm256_slli_epi32(
          _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(source))), 16));
    default:
      return _mm256_loadu_ps(static_cast<const float*>(source));
  }
}

[[gnu::target("avx2,f16c")]] inline __m256i nan_lanes(__m256 x) {
  return _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// 8 lanes of 32-bit values below 2^16, to 8 x u16.
[[gnu::target("avx2,f16c")]] inline __m128i narrow16(__m256i v) {
  return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}
// 8 lanes of 32-bit values below 2^8, to 8 bytes in the low half.
[[gnu::target("avx2,f16c")]] inline __m128i narrow8(__m256i v) {
  const __m128i words = narrow16(v);
  return _mm_packus_epi16(words, words);
}

// code holds the kept bits; the lowest `dropped` bits of `source` were cut off (per lane).
[[gnu::target("avx2,f16c")]] inline __m256i round_half_even(__m256i code, __m256i source,
                                                            __m256i dropped) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i rest =
      _mm256_and_si256(source, _mm256_sub_epi32(_mm256_sllv_epi32(one, dropped), one));
  const __m256i half = _mm256_sllv_epi32(one, _mm256_sub_epi32(dropped, one));
  // rest and half are below 2^31, so signed comparisons are exact.
  const __m256i above = _mm256_cmpgt_epi32(rest, half);
  const __m256i tie_odd = _mm256_and_si256(_mm256_cmpeq_epi32(rest, half),
                                           _mm256_cmpeq_epi32(_mm256_and_si256(code, one), one));
  return _mm256_sub_epi32(code, _mm256_or_si256(above, tie_odd));  // -(-1) adds one
}

/// minifloat<ExpBits, ManBits>::round_magnitude on 8 lanes of float bits (sign cleared).
template <int ExpBits, int ManBits>
[[gnu::target("avx2,f16c")]] inline __m256i round_magnitude8(__m256i abs_bits) {
  constexpr int bias = (1 << (ExpBits - 1)) - 1;
  constexpr int dropped_normal = 23 - ManBits;
  const __m256i mantissa = _mm256_and_si256(abs_bits, _mm256_set1_epi32(0x7FFFFF));
  const __m256i exponent_field = _mm256_srli_epi32(abs_bits, 23);
  // Normal numbers of the target.
  const __m256i normal_code = _mm256_or_si256(
      _mm256_slli_epi32(_mm256_sub_epi32(exponent_field, _mm256_set1_epi32(127 - bias)), ManBits),
      _mm256_srli_epi32(mantissa, dropped_normal));
  const __m256i normal = round_half_even(normal_code, mantissa, _mm256_set1_epi32(dropped_normal));
  // Subnormals of the target: units of 2^(1 - bias - ManBits).
  const __m256i has_exponent = _mm256_cmpgt_epi32(exponent_field, _mm256_setzero_si256());
  const __m256i significand =
      _mm256_or_si256(mantissa, _mm256_and_si256(has_exponent, _mm256_set1_epi32(0x800000)));
  const __m256i true_exponent =
      _mm256_blendv_epi8(_mm256_set1_epi32(-126),
                         _mm256_sub_epi32(exponent_field, _mm256_set1_epi32(127)), has_exponent);
  const __m256i dropped =
      _mm256_sub_epi32(_mm256_set1_epi32(23 + 1 - bias - ManBits), true_exponent);
  const __m256i too_small = _mm256_cmpgt_epi32(dropped, _mm256_set1_epi32(31));
  const __m256i subnormal = _mm256_andnot_si256(
      too_small, round_half_even(_mm256_srlv_epi32(significand, dropped), significand, dropped));
  const __m256i is_normal = _mm256_cmpgt_epi32(exponent_field, _mm256_set1_epi32(127 - bias));
  return _mm256_blendv_epi8(subnormal, normal, is_normal);
}

// The 8-bit codes of 8 floats in an fp8 format that saturates at LargestCode.
template <int ExpBits, int ManBits, std::uint32_t LargestCode>
[[gnu::target("avx2,f16c")]] inline __m128i fp8_from8(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i abs_bits = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
  __m256i code = _mm256_min_epu32(round_magnitude8<ExpBits, ManBits>(abs_bits),
                                  _mm256_set1_epi32(static_cast<int>(LargestCode)));
  code =
      _mm256_or_si256(code, _mm256_and_si256(_mm256_srli_epi32(bits, 24), _mm256_set1_epi32(0x80)));
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(canonical_nan8), nan_lanes(x));
  return narrow8(code);
}

// Symmetric quantization of a whole vector (dim a multiple of 8) to int8 (Levels 127) or
// packed int4 (Levels 7); returns the scale.
template <int Levels>
[[gnu::target("avx2,f16c")]] inline float quantize_vector(dtype_id in_type, const std::byte* in,
                                                          int in_bytes, int dim, std::byte* out) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 most = _mm256_setzero_ps();
  __m256i any_nan = _mm256_setzero_si256();
  for (int i = 0; i < dim; i += 8) {
    const __m256 x = load8(in_type, in + i * in_bytes);
    any_nan = _mm256_or_si256(any_nan, nan_lanes(x));
    most = _mm256_max_ps(most, _mm256_andnot_ps(sign_bit, x));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, most);
  float amax = 0.0f;
  for (float lane : lanes) amax = lane > amax ? lane : amax;
  if (!_mm256_testz_si256(any_nan, any_nan)) amax = __builtin_nanf("");
  const __m256 inverse = _mm256_set1_ps(symmetric_quantizer<Levels>::inverse_scale_for(amax));
  const __m256 pre = _mm256_set1_ps(symmetric_quantizer<Levels>::pre_scale_for(amax));
  const __m256 high = _mm256_set1_ps(static_cast<float>(Levels));
  const __m256 low = _mm256_set1_ps(-static_cast<float>(Levels));
  for (int i = 0; i < dim; i += 8) {
    __m256 t = _mm256_mul_ps(_mm256_mul_ps(load8(in_type, in + i * in_bytes), pre), inverse);
    t = _mm256_andnot_ps(_mm256_cmp_ps(t, t, _CMP_UNORD_Q), t);  // NaN -> 0
    t = _mm256_min_ps(_mm256_max_ps(t, low), high);
    const __m256i levels =
        _mm256_cvttps_epi32(_mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m128i words =
        _mm_packs_epi32(_mm256_castsi256_si128(levels), _mm256_extracti128_si256(levels, 1));
    const __m128i bytes = _mm_packs_epi16(words, words);
    if constexpr (Levels == 127) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), bytes);
    } else {  // bytes b0..b7 -> (b0 & 15) | b1 << 4, ...: keep low nibbles, fold odd bytes in
      const auto packed = static_cast<std::uint64_t>(_mm_cvtsi128_si64(bytes));
      const std::uint64_t nibbles = packed & 0x0F0F0F0F0F0F0F0Full;
      const std::uint64_t folded = nibbles | (nibbles >> 4);
      for (int j = 0; j < 4; ++j) out[i / 2 + j] = static_cast<std::byte>(folded >> (16 * j));
    }
  }
  return symmetric_quantizer<Levels>::scale_for(amax);
}

/// Converts dim values (a multiple of 8) of in_type (fp32, fp16, bf16) and stores them as
/// out_type, like load_vector followed by store_vector.
[[gnu::target("avx2,f16c")]] inline void store_converted(dtype_id in_type, const void* input,
                                                         dtype_id out_type, int dim,
                                                         float fp8_inverse_scale, void* values,
                                                         float* scale) {
  const auto* in = static_cast<const std::byte*>(input);
  const int in_bytes = dtype_bits(in_type) / 8;
  auto* out = static_cast<std::byte*>(values);
  const __m256 fp8_inverse = _mm256_set1_ps(fp8_inverse_scale);
  switch (out_type) {
    case dtype_id::fp32:
      for (int i = 0; i < dim; i += 8)
        _mm256_storeu_ps(reinterpret_cast<float*>(out) + i, load8(in_type, in + i * in_bytes));
      return;
    case dtype_id::fp16:
      for (int i = 0; i < dim; i += 8) {
        const __m256 x = load8(in_type, in + i * in_bytes);
        const __m128i half = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m128i nan = _mm_packs_epi32(_mm256_castsi256_si128(nan_lanes(x)),
                                            _mm256_extracti128_si256(nan_lanes(x), 1));
        _mm_storeu_si128(
            reinterpret_cast<__m128i*>(out + i * 2),
            _mm_blendv_epi8(half, _mm_set1_epi16(static_cast<short>(canonical_nan16)), nan));
      }
      return;
    case dtype_id::bf16:
      for (int i = 0; i < dim; i += 8) {
        const __m256 x = load8(in_type, in + i * in_bytes);
        const __m256i bits = _mm256_castps_si256(x);
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
        __m256i rounded = _mm256_srli_epi32(
            _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), odd)), 16);
        rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(canonical_nan16), nan_lanes(x));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * 2), narrow16(rounded));
      }
      return;
    case dtype_id::fp8_e4m3:
      for (int i = 0; i < dim; i += 8)
        _mm_storel_epi64(
            reinterpret_cast<__m128i*>(out + i),
            fp8_from8<4, 3, 0x7Eu>(_mm256_mul_ps(load8(in_type, in + i * in_bytes), fp8_inverse)));
      return;
    case dtype_id::fp8_e5m2:
      for (int i = 0; i < dim; i += 8)
        _mm_storel_epi64(
            reinterpret_cast<__m128i*>(out + i),
            fp8_from8<5, 2, 0x7Bu>(_mm256_mul_ps(load8(in_type, in + i * in_bytes), fp8_inverse)));
      return;
    case dtype_id::int8:
      *scale = quantize_vector<127>(in_type, in, in_bytes, dim, out);
      return;
    case dtype_id::int4:
      *scale = quantize_vector<7>(in_type, in, in_bytes, dim, out);
      return;
  }
}

// 8 stored values of any dtype as floats before any scale (int4: 8 values = 4 bytes): int8 and
// int4 as their levels, fp8 at 1 / raw_unit of its value. fp8 decodes exactly through fp16:
// e5m2 is an fp16's top byte; e4m3 moved into fp16's fields is 2^-8 of itself.
[[gnu::target("avx2,f16c")]] [[gnu::always_inline]] inline __m256 decode8_raw(
    dtype_id type, const std::byte* source) {
  switch (type) {
    case dtype_id::fp32:
    case dtype_id::fp16:
    case dtype_id::bf16:
      return load8(type, source);
    case dtype_id::fp8_e5m2: {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(source));
      return _mm256_cvtph_ps(_mm_unpacklo_epi8(_mm_setzero_si128(), bytes));
    }
    case dtype_id::fp8_e4m3: {
      const __m128i bytes =
          _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(source)));
      const __m128i sign = _mm_slli_epi16(_mm_and_si128(bytes, _mm_set1_epi16(0x80)), 8);
      const __m128i magnitude = _mm_and_si128(bytes, _mm_set1_epi16(0x7F));
      const __m256 value = _mm256_cvtph_ps(_mm_or_si128(sign, _mm_slli_epi16(magnitude, 7)));
      const __m256 nan = _mm256_castsi256_ps(
          _mm256_cvtepi16_epi32(_mm_cmpeq_epi16(magnitude, _mm_set1_epi16(0x7F))));
      return _mm256_blendv_ps(value, _mm256_set1_ps(__builtin_nanf("")), nan);
    }
    case dtype_id::int8: {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(source));
      return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
    }
    case dtype_id::int4: {
      std::uint32_t packed;
      std::memcpy(&packed, source, 4);
      // Nibble i to lane i: shift each lane's byte by 4 * (i % 2), then sign-extend 4 bits.
      const __m256i bytes = _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(packed)));
      const __m256i spread =
          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
      const __m256i nibbles =
          _mm256_and_si256(_mm256_srlv_epi32(spread, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                           _mm256_set1_epi32(0xF));
      const __m256i levels =
          _mm256_sub_epi32(_mm256_xor_si256(nibbles, _mm256_set1_epi32(8)), _mm256_set1_epi32(8));
      return _mm256_cvtepi32_ps(levels);
    }
  }
  return _mm256_setzero_ps();
}

/// Returns whether the CPU has AVX-512 F/BW/VL/DQ, for the 16-lane kernels (cpu/group_kernels.hpp);
/// libgcc and compiler-rt report these only where the OS saves the 512-bit state.
inline bool cpu_has_avx512() { return cpu_features::detected().avx512; }

#define KVC_AVX512_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"
#define KVC_AVX512_VNNI_TARGET KVC_AVX512_TARGET ",avx512vnni"

// GCC 12 warns of an uninitialized variable wherever a 512-bit intrinsic that starts from
// _mm512_undefined_*() (`__m512 __Y = __Y;`) is inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// 16 bytes, or with Masked the first 8 and zeros.
template <bool Masked>
[[gnu::target(KVC_AVX512_TARGET)]] [[gnu::always_inline]] inline __m128i bytes16(
    const std::byte* source) {
  if constexpr (Masked) return _mm_maskz_loadu_epi8(0x00FF, source);
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(source));
}

// decode8_raw on 16 lanes (any dtype but int4), the same values bit for bit. Masked: only
// lanes 0-7 are read, the rest are zero (a dim that is a multiple of 8 but not of 16).
template <dtype_id Type, bool Masked = false>
[[gnu::target(KVC_AVX512_TARGET)]] [[gnu::always_inline]] inline __m512 decode16_raw(
    const std::byte* source) {
  static_assert(Type != dtype_id::int4, "int4 stays on the 8-lane kernels");
  constexpr __mmask16 lanes = Masked ? 0x00FF : 0xFFFF;
  if constexpr (Type == dtype_id::fp32) {
    return Masked ? _mm512_maskz_loadu_ps(lanes, source)
                  : _mm512_loadu_ps(reinterpret_cast<const float*>(source));
  } else if constexpr (Type == dtype_id::fp16 || Type == dtype_id::bf16) {
    const __m256i halves = Masked ? _mm256_maskz_loadu_epi16(lanes, source)
                                  : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(source));
    if constexpr (Type == dtype_id::fp16) return _mm512_cvtph_ps(halves);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
  } else if constexpr (Type == dtype_id::fp8_e5m2) {
    return _mm512_cvtph_ps(_mm256_slli_epi16(_mm256_cvtepu8_epi16(bytes16<Masked>(source)), 8));
  } else if constexpr (Type == dtype_id::fp8_e4m3) {
    const __m256i codes = _mm256_cvtepu8_epi16(bytes16<Masked>(source));
    const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(codes, _mm256_set1_epi16(0x80)), 8);
    const __m256i magnitude = _mm256_and_si256(codes, _mm256_set1_epi16(0x7F));
    const __m512 value = _mm512_cvtph_ps(_mm256_or_si256(sign, _mm256_slli_epi16(magnitude, 7)));
    const __mmask16 nan = _mm256_cmpeq_epi16_mask(magnitude, _mm256_set1_epi16(0x7F));
    return _mm512_mask_blend_ps(nan, value, _mm512_set1_ps(__builtin_nanf("")));
  } else {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes16<Masked>(source)));
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// 8 stored values as floats: fp8, int8 and int4 multiplied by `scale` (the layer's or the
// vector's); the float formats ignore it. raw_unit is a power of two, so folding it into the
// scale rounds exactly as multiplying twice.
[[gnu::target("avx2,f16c")]] [[gnu::always_inline]] inline __m256 decode8(dtype_id type,
                                                                          const std::byte* source,
                                                                          __m256 scale) {
  const __m256 raw = decode8_raw(type, source);
  if (dtype_bits(type) >= 16) return raw;
  return _mm256_mul_ps(raw, type == dtype_id::fp8_e4m3
                                ? _mm256_mul_ps(scale, _mm256_set1_ps(raw_unit(type)))
                                : scale);
}

/// Loads dim stored values (a multiple of 8) as floats, like load_vector: fp8 multiplied by
/// the layer's scale, int8 / int4 by the vector's own.
[[gnu::target("avx2,f16c")]] inline void load_converted(dtype_id type, const void* values,
                                                        const float* vector_scale, int dim,
                                                        float fp8_scale, float* out) {
  const auto* in = static_cast<const std::byte*>(values);
  const int bits = dtype_bits(type);
  const float s = dtype_scaling(type) == scaling::per_token_head ? *vector_scale
                  : dtype_scaling(type) == scaling::per_layer    ? fp8_scale
                                                                 : 1.0f;
  const __m256 scale = _mm256_set1_ps(s);
  for (int i = 0; i < dim; i += 8)
    _mm256_storeu_ps(out + i, decode8(type, in + i * bits / 8, scale));
}

}  // namespace kvc::numeric::x86

#endif
