#pragma once
// One entry point per storage dtype for the float formats: codec<DType>::encode / decode
// between float and the stored bits. The cache and the kernels go through this table, so
// adding a format is one specialization. Integer formats need a scale: see quantize.hpp.

#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/numeric/fp8.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::numeric {

template <class DType>
struct codec;

template <>
struct codec<fp32> {
  using stored = float;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return value; }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return value; }
};
template <>
struct codec<fp16> {
  using stored = std::uint16_t;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return fp16_from_float(value); }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return fp16_to_float(value); }
};
template <>
struct codec<bf16> {
  using stored = std::uint16_t;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return bf16_from_float(value); }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return bf16_to_float(value); }
};
template <>
struct codec<fp8_e4m3> {
  using stored = std::uint8_t;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return fp8_e4m3_from_float(value); }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return fp8_e4m3_to_float(value); }
};
template <>
struct codec<fp8_e5m2> {
  using stored = std::uint8_t;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return fp8_e5m2_from_float(value); }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return fp8_e5m2_to_float(value); }
};

}  // namespace kvc::numeric
