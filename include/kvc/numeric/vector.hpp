#pragma once
// Storing and loading one token-head vector in any storage dtype chosen at run time: the
// one place where the cache (on append and read) and the kernels (on read) turn floats into
// stored bytes and back.
//
// fp8 values are stored divided by their layer's scale (multiplied by `inverse_scale`);
// int8 / int4 vectors carry their own scale, written to `scale`.

#include <cstdint>
#include <cstring>

#include "kvc/config.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::numeric {

/// Stores dim floats as `type` at `values` (and `scale` for int8 / int4).
/// fp8_inverse_scale multiplies fp8 values before rounding (1 / the layer's scale).
KVC_HOST_DEVICE inline void store_vector(dtype_id type, const float* in, int dim,
                                         float fp8_inverse_scale, void* values, float* scale) {
  switch (type) {
    case dtype_id::fp32:
      for (int i = 0; i < dim; ++i) static_cast<float*>(values)[i] = in[i];
      break;
    case dtype_id::fp16:
      for (int i = 0; i < dim; ++i) static_cast<std::uint16_t*>(values)[i] = fp16_from_float(in[i]);
      break;
    case dtype_id::bf16:
      for (int i = 0; i < dim; ++i) static_cast<std::uint16_t*>(values)[i] = bf16_from_float(in[i]);
      break;
    case dtype_id::fp8_e4m3:
      for (int i = 0; i < dim; ++i)
        static_cast<std::uint8_t*>(values)[i] =
            fp8_e4m3_from_float(mul_rn(in[i], fp8_inverse_scale));
      break;
    case dtype_id::fp8_e5m2:
      for (int i = 0; i < dim; ++i)
        static_cast<std::uint8_t*>(values)[i] =
            fp8_e5m2_from_float(mul_rn(in[i], fp8_inverse_scale));
      break;
    case dtype_id::int8:
      *scale = quantize_int8(in, dim, static_cast<std::int8_t*>(values));
      break;
    case dtype_id::int4:
      *scale = quantize_int4(in, dim, static_cast<std::uint8_t*>(values));
      break;
  }
}

/// Loads dim values of `type` as floats; the inverse of store_vector (fp8_scale is the
/// layer's scale, `scale` the vector's own for int8 / int4).
KVC_HOST_DEVICE inline void load_vector(dtype_id type, const void* values, const float* scale,
                                        int dim, float fp8_scale, float* out) {
  switch (type) {
    case dtype_id::fp32:
      for (int i = 0; i < dim; ++i) out[i] = static_cast<const float*>(values)[i];
      break;
    case dtype_id::fp16:
      for (int i = 0; i < dim; ++i)
        out[i] = fp16_to_float(static_cast<const std::uint16_t*>(values)[i]);
      break;
    case dtype_id::bf16:
      for (int i = 0; i < dim; ++i)
        out[i] = bf16_to_float(static_cast<const std::uint16_t*>(values)[i]);
      break;
    case dtype_id::fp8_e4m3:
      for (int i = 0; i < dim; ++i)
        out[i] = fp8_e4m3_to_float(static_cast<const std::uint8_t*>(values)[i]) * fp8_scale;
      break;
    case dtype_id::fp8_e5m2:
      for (int i = 0; i < dim; ++i)
        out[i] = fp8_e5m2_to_float(static_cast<const std::uint8_t*>(values)[i]) * fp8_scale;
      break;
    case dtype_id::int8:
      dequantize_int8(static_cast<const std::int8_t*>(values), dim, *scale, out);
      break;
    case dtype_id::int4:
      dequantize_int4(static_cast<const std::uint8_t*>(values), dim, *scale, out);
      break;
  }
}

/// Kernels that decode fp8 through fp16 hardware conversions get e4m3 at 2^-8 of its value
/// (its exponent bias is 8 below fp16's); the factor they multiply back by, 1 for the others.
KVC_HOST_DEVICE constexpr float raw_unit(dtype_id type) {
  return type == dtype_id::fp8_e4m3 ? 256.0f : 1.0f;
}

}  // namespace kvc::numeric
