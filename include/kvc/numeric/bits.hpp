#pragma once
// Bit-level access to float, usable in constant expressions and in device code.

#include <cstdint>

#include "kvc/config.hpp"

namespace kvc::numeric {

KVC_HOST_DEVICE constexpr std::uint32_t float_bits(float value) {
  return __builtin_bit_cast(std::uint32_t, value);
}

KVC_HOST_DEVICE constexpr float float_from_bits(std::uint32_t bits) {
  return __builtin_bit_cast(float, bits);
}

/// Returns a product rounded once, even where the compiler would fuse it into a following add
/// (nvcc does so by default); the host and device results then agree bit for bit.
KVC_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

}  // namespace kvc::numeric
