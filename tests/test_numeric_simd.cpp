// The vectorized host conversions give the very bits of the portable ones, for every input
// dtype and storage dtype, on random vectors, on every edge value of the formats (ties,
// subnormals, overflow, infinities, NaN) and on vectors that a NaN or an infinity poisons.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kvc/numeric/host_vector.hpp"

using namespace kvc;
using namespace kvc::numeric;

namespace {

std::vector<float> edge_values() {
  std::vector<float> v;
  for (std::uint32_t code = 0; code < 65536; code += 7)
    v.push_back(fp16_to_float(static_cast<std::uint16_t>(code)));
  for (std::uint32_t code = 0; code < 256; ++code) {
    for (float f : {fp8_e4m3_to_float(static_cast<std::uint8_t>(code)),
                    fp8_e5m2_to_float(static_cast<std::uint8_t>(code))}) {
      v.push_back(f);
      v.push_back(std::nextafter(f, 0.0f));
      v.push_back(std::nextafter(f, std::numeric_limits<float>::infinity()));
    }
    // Midpoints between neighbouring e4m3 and e5m2 values: the ties.
    if (code + 1 < 256) {
      v.push_back((fp8_e4m3_to_float(static_cast<std::uint8_t>(code)) +
                   fp8_e4m3_to_float(static_cast<std::uint8_t>(code + 1))) /
                  2);
      v.push_back((fp8_e5m2_to_float(static_cast<std::uint8_t>(code)) +
                   fp8_e5m2_to_float(static_cast<std::uint8_t>(code + 1))) /
                  2);
    }
  }
  for (float f : {0.0f, -0.0f, 1e-45f, 1e-40f, 65504.0f, 65520.0f, 3.4e38f, 1e30f, 464.0f, 61440.0f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()})
    v.push_back(f);
  return v;
}

std::vector<std::byte> encode_input(dtype_id type, const std::vector<float>& values) {
  std::vector<std::byte> bytes(values.size() * static_cast<std::size_t>(dtype_bits(type) / 8));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (type == dtype_id::fp32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else {
      const std::uint16_t h =
          type == dtype_id::fp16 ? fp16_from_float(values[i]) : bf16_from_float(values[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

void compare_paths(dtype_id in_type, dtype_id out_type, const std::vector<float>& values, int dim) {
  const std::vector<std::byte> in = encode_input(in_type, values);
  const std::size_t out_bytes = static_cast<std::size_t>(dim * dtype_bits(out_type) / 8);
  for (std::size_t start = 0; start + static_cast<std::size_t>(dim) <= values.size();
       start += static_cast<std::size_t>(dim)) {
    std::vector<std::byte> fast(out_bytes), portable(out_bytes);
    float fast_scale = -1, portable_scale = -1;
    const std::byte* source = in.data() + start * static_cast<std::size_t>(dtype_bits(in_type) / 8);
    x86::store_converted(in_type, source, out_type, dim, 0.75f, fast.data(), &fast_scale);
    store_converted_portable(in_type, source, out_type, dim, 0.75f, portable.data(),
                             &portable_scale);
    INFO(dtype_name(in_type) << " -> " << dtype_name(out_type) << ", vector at " << start);
    REQUIRE(std::memcmp(fast.data(), portable.data(), out_bytes) == 0);
    // A poisoned vector's scale is NaN either way; NaN payloads may differ.
    if (!(std::isnan(fast_scale) && std::isnan(portable_scale)))
      REQUIRE(std::memcmp(&fast_scale, &portable_scale, sizeof(float)) == 0);
  }
}

}  // namespace

#if defined(KVC_X86_SIMD)
TEST_CASE("AVX2 conversions give the portable bits") {
  if (!x86::cpu_has_avx2_f16c()) {
    WARN("SKIPPED: this CPU has no AVX2 + F16C");
    return;
  }
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  std::vector<float> random(128 * 200);
  for (float& x : random) x = normal(rng);
  std::vector<float> edges = edge_values();
  edges.resize(edges.size() / 64 * 64);
  std::vector<float> poisoned(64 * 3, 1.5f);
  poisoned[5] = std::numeric_limits<float>::quiet_NaN();
  poisoned[64 + 9] = std::numeric_limits<float>::infinity();
  poisoned[128 + 63] = -std::numeric_limits<float>::infinity();
  std::vector<float> tiny(64 * 3);  // largest magnitudes 1e-30, 3e-37, 1.5e-38 (fp32 in only)
  for (std::size_t i = 0; i < tiny.size(); ++i)
    tiny[i] = (i < 64 ? 1e-30f : i < 128 ? 3e-37f : 1.5e-38f) * normal(rng) / 40.0f;
  for (dtype_id out : {dtype_id::int8, dtype_id::int4})
    compare_paths(dtype_id::fp32, out, tiny, 64);
  for (dtype_id in : {dtype_id::fp32, dtype_id::fp16, dtype_id::bf16})
    for (dtype_id out : {dtype_id::fp32, dtype_id::fp16, dtype_id::bf16, dtype_id::fp8_e4m3,
                         dtype_id::fp8_e5m2, dtype_id::int8, dtype_id::int4}) {
      compare_paths(in, out, random, 128);
      compare_paths(in, out, edges, 8);   // per-element formats: every edge value
      compare_paths(in, out, edges, 64);  // quantized: vectors mixing magnitudes
      compare_paths(in, out, poisoned, 64);
    }
}

TEST_CASE("AVX2 loads give the portable floats for every stored bit pattern") {
  if (!x86::cpu_has_avx2_f16c()) {
    WARN("SKIPPED: this CPU has no AVX2 + F16C");
    return;
  }
  // Every byte pattern (and for 16-bit types every pattern of the low and high byte pairs).
  std::vector<std::byte> stored(65536 * 4);
  for (std::size_t i = 0; i < stored.size(); ++i)
    stored[i] = static_cast<std::byte>((i * 2654435761u) >> 11);
  for (std::size_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    std::memcpy(stored.data() + 2 * i, &h, 2);  // every 16-bit pattern in the first 128 KiB
  }
  for (std::size_t i = 0; i < 256; ++i) stored[131072 + i] = static_cast<std::byte>(i);
  const float vector_scale = 0.37f;
  for (dtype_id type : {dtype_id::fp32, dtype_id::fp16, dtype_id::bf16, dtype_id::fp8_e4m3,
                        dtype_id::fp8_e5m2, dtype_id::int8, dtype_id::int4}) {
    const int bits = dtype_bits(type);
    const int dim = 64;
    const std::size_t vector_bytes = static_cast<std::size_t>(dim * bits / 8);
    for (std::size_t start = 0; start + vector_bytes <= stored.size(); start += vector_bytes) {
      float fast[64], portable[64];
      x86::load_converted(type, stored.data() + start, &vector_scale, dim, 2.5f, fast);
      load_vector(type, stored.data() + start, &vector_scale, dim, 2.5f, portable);
      for (int i = 0; i < dim; ++i) {
        INFO(dtype_name(type) << " at byte " << start << " value " << i);
        if (std::isnan(portable[i]))
          REQUIRE(std::isnan(fast[i]));
        else
          REQUIRE(std::memcmp(&fast[i], &portable[i], 4) == 0);
      }
    }
  }
}

#else
TEST_CASE("AVX2 conversions give the portable bits") {
  WARN("SKIPPED: no x86-64 SIMD path for this compiler");
}
#endif
