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

namespace detail {
template <class Stored, Stored (*Encode)(float), float (*Decode)(Stored)>
struct codec_of {
  using stored = Stored;
  KVC_HOST_DEVICE static constexpr stored encode(float value) { return Encode(value); }
  KVC_HOST_DEVICE static constexpr float decode(stored value) { return Decode(value); }
};
KVC_HOST_DEVICE constexpr float identity(float value) { return value; }
}  // namespace detail

template <>
struct codec<fp32> : detail::codec_of<float, detail::identity, detail::identity> {};
template <>
struct codec<fp16> : detail::codec_of<std::uint16_t, fp16_from_float, fp16_to_float> {};
template <>
struct codec<bf16> : detail::codec_of<std::uint16_t, bf16_from_float, bf16_to_float> {};
template <>
struct codec<fp8_e4m3> : detail::codec_of<std::uint8_t, fp8_e4m3_from_float, fp8_e4m3_to_float> {};
template <>
struct codec<fp8_e5m2> : detail::codec_of<std::uint8_t, fp8_e5m2_from_float, fp8_e5m2_to_float> {};

}  // namespace kvc::numeric
