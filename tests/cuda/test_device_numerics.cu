// Every kvc header compiled by nvcc, and the storage conversions run on the GPU: all 16-bit
// and 8-bit patterns decoded, and a sweep of floats encoded and quantized, compared bit for
// bit with the host functions. Without a GPU the test reports itself skipped.

#include <cuda_runtime.h>

#include "device_present.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kvc_all_headers.hpp"

namespace {

using namespace kvc::numeric;

constexpr int sweep = 1 << 20;

// A float sweep that covers every exponent, both signs and the special values.
__host__ __device__ float sweep_value(std::uint32_t i) {
  const std::uint32_t bits =
      i * 4099u + (i >> 7);  // odd multiplier: a permutation of 2^32 / 2^20 strides
  return float_from_bits(bits);
}

// Words that put every 16-bit pattern in both halves, and every byte in each of the four
// bytes (the first 256 words; a permutation of the byte values in each position).
__host__ __device__ std::uint32_t unpack_word_of(std::uint32_t i) {
  return i < 256
             ? (i | (i ^ 0xFFu) << 8 | ((i * 7u) & 0xFFu) << 16 | ((i * 13u + 1u) & 0xFFu) << 24)
             : (i | i << 16);
}

// Words whose bytes 0 and 2, and 1 and 3, take every pair of values (the value tiles' pairs).
__host__ __device__ std::uint32_t value_word_of(std::uint32_t i) {
  return (i & 0xFFu) | ((i & 0xFFu) ^ 0x5Au) << 8 | (i >> 8 & 0xFFu) << 16 |
         ((i >> 8 & 0xFFu) ^ 0xA5u) << 24;
}

struct results {
  // The tensor-core decode's raw fragments (kernels/raw_fragments.hpp) of e4m3, e5m2, int8.
  std::uint32_t raw_key[3][65536][2];
  std::uint32_t raw_value[3][65536][4];
  float unpacked_fp16[65536][2];
  float unpacked_bf16[65536][2];
  float unpacked_e4m3[256][4];
  float unpacked_e5m2[256][4];
  float unpacked_int8[256][4];
  float unpacked_int4[65536][8];
  float decoded_fp16[65536];
  float decoded_bf16[65536];
  float decoded_e4m3[256];
  float decoded_e5m2[256];
  std::uint16_t fp16[sweep];
  std::uint16_t bf16[sweep];
  std::uint8_t e4m3[sweep];
  std::uint8_t e5m2[sweep];
  std::int8_t int8[sweep];
  float int8_scale[sweep / 128];
};

__global__ void decode_all(results* r) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < 65536) {
    r->decoded_fp16[i] = fp16_to_float(static_cast<std::uint16_t>(i));
    r->decoded_bf16[i] = bf16_to_float(static_cast<std::uint16_t>(i));
  }
  if (i < 256) {
    r->decoded_e4m3[i] = fp8_e4m3_to_float(static_cast<std::uint8_t>(i));
    r->decoded_e5m2[i] = fp8_e5m2_to_float(static_cast<std::uint8_t>(i));
  }
}

// The raw key fragment of `key_word` and the value fragments of `value_word` and its
// complement (keys 0-7 and 8-15) in slot t.
template <class Type, class R>
__host__ __device__ void raw_fragments(R* r, int t, int i, std::uint32_t key_word,
                                       std::uint32_t value_word) {
  const kvc::kernels::mma_b key = kvc::kernels::raw_key_fragment<Type>(key_word);
  const kvc::kernels::raw_value_fragments value =
      kvc::kernels::raw_value_fragments_of<Type>(value_word, ~value_word);
  r->raw_key[t][i][0] = key.reg[0];
  r->raw_key[t][i][1] = key.reg[1];
  r->raw_value[t][i][0] = value.even.reg[0];
  r->raw_value[t][i][1] = value.even.reg[1];
  r->raw_value[t][i][2] = value.odd.reg[0];
  r->raw_value[t][i][3] = value.odd.reg[1];
}

// The kernels' word unpacking (numeric/unpack.hpp): hardware conversions on the device.
template <class R>
__host__ __device__ void unpack_all(R* r, int i) {
  const std::uint32_t byte_word = unpack_word_of(static_cast<std::uint32_t>(i));
  const std::uint32_t half_word = static_cast<std::uint32_t>(i) | static_cast<std::uint32_t>(i)
                                                                      << 16;
  unpack_word<kvc::fp16>(half_word, r->unpacked_fp16[i]);
  unpack_word<kvc::bf16>(half_word, r->unpacked_bf16[i]);
  unpack_word<kvc::int4>(half_word, r->unpacked_int4[i]);
  const std::uint32_t value_word = value_word_of(static_cast<std::uint32_t>(i));
  raw_fragments<kvc::fp8_e4m3>(r, 0, i, half_word ^ 0x00FF00FFu, value_word);
  raw_fragments<kvc::fp8_e5m2>(r, 1, i, half_word ^ 0x00FF00FFu, value_word);
  raw_fragments<kvc::int8>(r, 2, i, half_word ^ 0x00FF00FFu, value_word);
  if (i < 256) {
    unpack_word<kvc::fp8_e4m3>(byte_word, r->unpacked_e4m3[i]);
    unpack_word<kvc::fp8_e5m2>(byte_word, r->unpacked_e5m2[i]);
    unpack_word<kvc::int8>(byte_word, r->unpacked_int8[i]);
  }
}
__global__ void unpack_kernel(results* r) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < 65536) unpack_all(r, i);
}

__global__ void encode_sweep(results* r, const float* finite) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= sweep) return;
  const float x = sweep_value(static_cast<std::uint32_t>(i));
  r->fp16[i] = fp16_from_float(x);
  r->bf16[i] = bf16_from_float(x);
  r->e4m3[i] = fp8_e4m3_from_float(x);
  r->e5m2[i] = fp8_e5m2_from_float(x);
  if (i % 128 == 0) r->int8_scale[i / 128] = quantize_int8(finite + i, 128, r->int8 + i);
}

// Floats equal bit for bit, or both NaN (a GPU's conversion may quiet a NaN's payload).
int count_float_differences(const float* a, const float* b, int n, const char* what) {
  int differ = 0;
  for (int i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0 && !(a[i] != a[i] && b[i] != b[i]) &&
        differ++ < 5)
      std::printf("%s: value %d differs between device (%a) and host (%a)\n", what, i,
                  static_cast<double>(a[i]), static_cast<double>(b[i]));
  return differ;
}

// Words of two fp16 values equal bit for bit, each half, or both NaN (cvt.rn.f16x2.e4m3x2
// makes its own NaN bits).
int count_fp16_pair_differences(const std::uint32_t* a, const std::uint32_t* b, int n,
                                const char* what) {
  const auto is_nan = [](std::uint32_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu); };
  int differ = 0;
  for (int i = 0; i < n; ++i)
    for (int half = 0; half < 2; ++half) {
      const std::uint32_t x = a[i] >> (16 * half) & 0xFFFFu, y = b[i] >> (16 * half) & 0xFFFFu;
      if (x != y && !(is_nan(x) && is_nan(y)) && differ++ < 5)
        std::printf("%s: word %d half %d differs between device (%04x) and host (%04x)\n", what, i,
                    half, x, y);
    }
  return differ;
}

template <class T>
int count_differences(const T* a, const T* b, int n, const char* what) {
  int differ = 0;
  for (int i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0 && differ++ < 5)
      std::printf("%s: element %d differs between device and host\n", what, i);
  return differ;
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  std::vector<float> finite(sweep);
  for (int i = 0; i < sweep; ++i)
    finite[i] = static_cast<float>((static_cast<long long>(i) * 7919) % 2001 - 1000) / 37.0f;

  results* device = nullptr;
  float* device_finite = nullptr;
  if (cudaMalloc(&device, sizeof(results)) != cudaSuccess ||
      cudaMalloc(&device_finite, sweep * sizeof(float)) != cudaSuccess) {
    std::printf("cudaMalloc failed\n");
    return 1;
  }
  cudaMemcpy(device_finite, finite.data(), sweep * sizeof(float), cudaMemcpyHostToDevice);
  decode_all<<<256, 256>>>(device);
  unpack_kernel<<<256, 256>>>(device);
  encode_sweep<<<sweep / 256, 256>>>(device, device_finite);
  auto* gpu = new results;
  if (cudaMemcpy(gpu, device, sizeof(results), cudaMemcpyDeviceToHost) != cudaSuccess) {
    std::printf("kernel or copy failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  auto* cpu = new results;
  for (int i = 0; i < 65536; ++i) {
    cpu->decoded_fp16[i] = fp16_to_float(static_cast<std::uint16_t>(i));
    cpu->decoded_bf16[i] = bf16_to_float(static_cast<std::uint16_t>(i));
  }
  for (int i = 0; i < 256; ++i) {
    cpu->decoded_e4m3[i] = fp8_e4m3_to_float(static_cast<std::uint8_t>(i));
    cpu->decoded_e5m2[i] = fp8_e5m2_to_float(static_cast<std::uint8_t>(i));
  }
  for (int i = 0; i < 65536; ++i) unpack_all(cpu, i);
  for (int i = 0; i < sweep; ++i) {
    const float x = sweep_value(static_cast<std::uint32_t>(i));
    cpu->fp16[i] = fp16_from_float(x);
    cpu->bf16[i] = bf16_from_float(x);
    cpu->e4m3[i] = fp8_e4m3_from_float(x);
    cpu->e5m2[i] = fp8_e5m2_from_float(x);
    if (i % 128 == 0)
      cpu->int8_scale[i / 128] = quantize_int8(finite.data() + i, 128, cpu->int8 + i);
  }
  int differ = 0;
  differ += count_differences(gpu->decoded_fp16, cpu->decoded_fp16, 65536, "fp16 decode");
  differ += count_differences(gpu->decoded_bf16, cpu->decoded_bf16, 65536, "bf16 decode");
  differ += count_differences(gpu->decoded_e4m3, cpu->decoded_e4m3, 256, "e4m3 decode");
  differ += count_differences(gpu->decoded_e5m2, cpu->decoded_e5m2, 256, "e5m2 decode");
  differ += count_float_differences(&gpu->unpacked_fp16[0][0], &cpu->unpacked_fp16[0][0], 65536 * 2,
                                    "fp16 unpack");
  differ += count_float_differences(&gpu->unpacked_bf16[0][0], &cpu->unpacked_bf16[0][0], 65536 * 2,
                                    "bf16 unpack");
  differ += count_float_differences(&gpu->unpacked_int4[0][0], &cpu->unpacked_int4[0][0], 65536 * 8,
                                    "int4 unpack");
  differ += count_float_differences(&gpu->unpacked_e4m3[0][0], &cpu->unpacked_e4m3[0][0], 256 * 4,
                                    "e4m3 unpack");
  differ += count_float_differences(&gpu->unpacked_e5m2[0][0], &cpu->unpacked_e5m2[0][0], 256 * 4,
                                    "e5m2 unpack");
  differ += count_float_differences(&gpu->unpacked_int8[0][0], &cpu->unpacked_int8[0][0], 256 * 4,
                                    "int8 unpack");
  differ += count_fp16_pair_differences(&gpu->raw_key[0][0][0], &cpu->raw_key[0][0][0],
                                        3 * 65536 * 2, "raw key fragments");
  differ += count_fp16_pair_differences(&gpu->raw_value[0][0][0], &cpu->raw_value[0][0][0],
                                        3 * 65536 * 4, "raw value fragments");
  differ += count_differences(gpu->fp16, cpu->fp16, sweep, "fp16 encode");
  differ += count_differences(gpu->bf16, cpu->bf16, sweep, "bf16 encode");
  differ += count_differences(gpu->e4m3, cpu->e4m3, sweep, "e4m3 encode");
  differ += count_differences(gpu->e5m2, cpu->e5m2, sweep, "e5m2 encode");
  differ += count_differences(gpu->int8, cpu->int8, sweep, "int8 quantize");
  differ += count_differences(gpu->int8_scale, cpu->int8_scale, sweep / 128, "int8 scale");
  std::printf("%d differences between device and host\n", differ);
  return differ == 0 ? 0 : 1;
}
