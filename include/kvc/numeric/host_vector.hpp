#pragma once
// Host-side conversion of one token-head vector from an input dtype (fp32, fp16, bf16) into
// a storage dtype, and back to floats: the AVX2 + F16C path when the CPU has it and dim is a
// multiple of 8, the portable KVC_HOST_DEVICE functions of vector.hpp otherwise. Both give
// the same bits.

#include <cstddef>
#include <cstring>
#include <vector>

#include "kvc/numeric/simd_x86.hpp"
#include "kvc/numeric/vector.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::numeric {

/// Stores by the portable path, always available (and what the vectorized one is tested against).
inline void store_converted_portable(dtype_id in_type, const void* in, dtype_id out_type, int dim,
                                     float fp8_inverse_scale, void* values, float* scale) {
  constexpr int on_stack = 1024;
  float stack_buffer[on_stack] = {};
  std::vector<float> heap_buffer;
  float* buffer = stack_buffer;
  if (dim > on_stack) {
    heap_buffer.resize(static_cast<std::size_t>(dim));
    buffer = heap_buffer.data();
  }
  load_vector(in_type, in, nullptr, dim, 1.0f, buffer);
  store_vector(out_type, buffer, dim, fp8_inverse_scale, values, scale);
}

/// Stores dim values of in_type as out_type (with fp8's inverse layer scale, and the vector's
/// own scale for int8 / int4).
inline void store_converted(dtype_id in_type, const void* in, dtype_id out_type, int dim,
                            float fp8_inverse_scale, void* values, float* scale) {
  if (in_type == out_type) {  // fp32, fp16 or bf16 in and out: the bits go as they are
    std::memcpy(values, in,
                static_cast<std::size_t>(dim) * static_cast<std::size_t>(dtype_bits(in_type) / 8));
    return;
  }
#if defined(KVC_X86_SIMD)
  if (dim % 8 == 0 && x86::cpu_has_avx2_f16c()) {
    x86::store_converted(in_type, in, out_type, dim, fp8_inverse_scale, values, scale);
    return;
  }
#endif
  store_converted_portable(in_type, in, out_type, dim, fp8_inverse_scale, values, scale);
}

/// Loads dim stored values of `type` as floats (the inverse of store_converted).
inline void load_converted(dtype_id type, const void* values, const float* vector_scale, int dim,
                           float fp8_scale, float* out) {
#if defined(KVC_X86_SIMD)
  if (dim % 8 == 0 && x86::cpu_has_avx2_f16c()) {
    x86::load_converted(type, values, vector_scale, dim, fp8_scale, out);
    return;
  }
#endif
  load_vector(type, values, vector_scale, dim, fp8_scale, out);
}

}  // namespace kvc::numeric
