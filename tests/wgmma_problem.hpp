#pragma once
// Problems for the warpgroup matrix multiply-accumulate probe (wgmma_probe.hpp): random A, B
// and C, the images of A and B in one of shared memory's canonical layouts, and the check of
// D against a plain matrix product. test_simt_wgmma runs them in the emulator,
// tests/cuda/test_device_wgmma.cu on a GPU.
//
// The images are laid out here from the canonical layouts as CUTLASS states them
// (cute/atom/mma_traits_sm90_gmma.hpp: 8-row core matrices; swizzled rows exchanging their
// 16-byte chunks by the row's place in its pattern); the 128-byte swizzle through
// kernels::swizzled_128_offset, the helper kernels place their tiles with.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "kvc/numeric/half.hpp"
#include "wgmma_probe.hpp"

namespace kvc::testing {

using kernels::mma_input;
using kernels::wgmma_major;
using kernels::wgmma_swizzle;

inline std::uint32_t row_bytes(wgmma_swizzle swizzle) {
  switch (swizzle) {
    case wgmma_swizzle::bytes_128:
      return 128;
    case wgmma_swizzle::bytes_64:
      return 64;
    case wgmma_swizzle::bytes_32:
      return 32;
    case wgmma_swizzle::none:
      break;
  }
  return 16;
}

// The 16-byte chunk that chunk `chunk` of row `row` (of rows of `width` bytes, in a pattern
// aligned to its 8 rows) is stored in: Swizzle<3,4,3>, <2,4,3>, <1,4,3> on the address.
inline std::uint32_t swizzled_chunk(std::uint32_t width, std::uint32_t row, std::uint32_t chunk) {
  switch (width) {
    case 128:
      return chunk ^ (row % 8);
    case 64:
      return chunk ^ (row % 8 / 2);
    default:
      return chunk ^ (row % 8 / 4);
  }
}

// A matrix of `mn` x `k` 16-bit values (A: mn = 64; B: mn = N) in one canonical layout.
struct layout {
  wgmma_major major;
  wgmma_swizzle swizzle;
  std::uint32_t mn, k;

  bool fits() const {
    const std::uint32_t width = row_bytes(swizzle);
    if (swizzle == wgmma_swizzle::none) return true;
    return major == wgmma_major::k ? 2 * k <= width : mn % (width / 2) == 0;
  }
  wgmma_image image() const {
    const std::uint32_t width = row_bytes(swizzle);
    wgmma_image image{swizzle, 0, 0, 0, 0};
    if (major == wgmma_major::k) {
      if (swizzle == wgmma_swizzle::none) {  // 8 x 16-byte core matrices, K's next to each other
        image.leading = 128;
        image.stride = 128 * (k / 8);
        image.step = 2 * image.leading;
      } else {  // 8-row patterns one after another; a K step is 32 bytes into the row
        image.leading = 16;
        image.stride = 8 * width;
        image.step = 32;
      }
      image.bytes = mn / 8 * image.stride;
    } else {
      if (swizzle == wgmma_swizzle::none) {  // MN's core matrices next to each other
        image.stride = 128;
        image.leading = 128 * (mn / 8);
        image.step = 2 * image.leading;
        image.bytes = k / 8 * image.leading;
      } else {  // rows of K, width / 2 values of MN each, 8-row patterns along K
        image.stride = 8 * width;
        image.leading = k * width;
        image.step = 2 * image.stride;
        image.bytes = mn / (width / 2) * image.leading;
      }
    }
    image.bytes = (image.bytes + 1023) / 1024 * 1024;
    return image;
  }
  // Where element (row r of MN, column c of K) lies in the image.
  std::uint32_t offset(const wgmma_image& image, std::uint32_t r, std::uint32_t c) const {
    const std::uint32_t width = row_bytes(swizzle);
    if (major == wgmma_major::k) {
      if (swizzle == wgmma_swizzle::none)
        return r / 8 * image.stride + c / 8 * image.leading + r % 8 * 16 + c % 8 * 2;
      const std::uint32_t chunk = 2 * c / 16, within = 2 * c % 16;
      if (swizzle == wgmma_swizzle::bytes_128)
        return kernels::swizzled_128_offset(r, chunk) + within;
      return r / 8 * image.stride + r % 8 * width + 16 * swizzled_chunk(width, r, chunk) + within;
    }
    if (swizzle == wgmma_swizzle::none)
      return r / 8 * image.stride + c / 8 * image.leading + c % 8 * 16 + r % 8 * 2;
    const std::uint32_t per_row = width / 2;
    const std::uint32_t chunk = 2 * (r % per_row) / 16, within = 2 * r % 16;
    if (swizzle == wgmma_swizzle::bytes_128)
      return r / per_row * image.leading + kernels::swizzled_128_offset(c, chunk) + within;
    return r / per_row * image.leading + c / 8 * image.stride + c % 8 * width +
           16 * swizzled_chunk(width, c, chunk) + within;
  }
};

struct wgmma_problem_options {
  wgmma_swizzle swizzle_a = wgmma_swizzle::bytes_128, swizzle_b = wgmma_swizzle::bytes_128;
  int k = 64;
  unsigned warpgroups = 1;
  bool integers = false;
  bool accumulate_c = true;
  /// The descriptors say no swizzle while the images are swizzled.
  bool descriptor_without_swizzle = false;
};

template <mma_input Input, wgmma_major MajorA, wgmma_major MajorB, int N, bool AInRegisters,
          wgmma_fault Fault = wgmma_fault::none>
struct wgmma_problem {
  wgmma_problem_options options;
  layout la, lb;
  wgmma_probe<Input, MajorA, MajorB, N, AInRegisters, Fault> probe{};
  std::vector<std::uint16_t> a, b;
  std::vector<float> c, d;
  std::vector<std::byte> images;

  static std::uint16_t bits(float x) {
    return Input == mma_input::bf16 ? numeric::bf16_from_float(x) : numeric::fp16_from_float(x);
  }
  static double real(std::uint16_t b) {
    return Input == mma_input::bf16 ? numeric::bf16_to_float(b) : numeric::fp16_to_float(b);
  }

  /// Whether both layouts can hold their matrix (a swizzled K-major row holds all of K, a
  /// swizzled MN-major row a whole number of times in MN).
  bool fits() const { return la.fits() && lb.fits(); }

  wgmma_problem(const wgmma_problem_options& o, std::uint32_t seed)
      : options(o),
        la{MajorA, o.swizzle_a, 64, static_cast<std::uint32_t>(o.k)},
        lb{MajorB, o.swizzle_b, N, static_cast<std::uint32_t>(o.k)} {
    const auto k = static_cast<std::uint32_t>(o.k);
    probe.a_image = la.image();
    probe.b_image = lb.image();
    probe.k = o.k;
    probe.accumulate_c = o.accumulate_c;
    const std::size_t span = probe.a_image.bytes + probe.b_image.bytes;
    std::mt19937 random(seed);
    std::normal_distribution<float> normal;
    const auto value = [&] {
      return o.integers ? static_cast<float>(static_cast<int>(random() % 7) - 3) : normal(random);
    };
    const unsigned groups = o.warpgroups;
    a.resize(groups * 64 * k);
    b.resize(groups * k * N);
    c.resize(groups * 64 * N);
    d.assign(c.size(), -7.0f);
    for (auto& x : a) x = bits(value());
    for (auto& x : b) x = bits(value());
    for (auto& x : c)
      x = o.integers ? static_cast<float>(static_cast<int>(random() % 21) - 10) : value();
    images.assign(groups * span, std::byte{0xee});
    if (!fits()) return;
    for (unsigned g = 0; g < groups; ++g) {
      std::byte* image = images.data() + g * span;
      for (std::uint32_t r = 0; r < 64; ++r)
        for (std::uint32_t j = 0; j < k; ++j)
          std::memcpy(image + la.offset(probe.a_image, r, j), &a[(g * 64 + r) * k + j], 2);
      for (std::uint32_t n = 0; n < static_cast<std::uint32_t>(N); ++n)
        for (std::uint32_t j = 0; j < k; ++j)
          std::memcpy(image + probe.a_image.bytes + lb.offset(probe.b_image, n, j),
                      &b[(g * k + j) * N + n], 2);
    }
    if (o.descriptor_without_swizzle)
      probe.a_image.swizzle = probe.b_image.swizzle = wgmma_swizzle::none;
    probe.images = images.data();
    probe.a = a.data();
    probe.c = c.data();
    probe.d = d.data();
  }

  struct counts {
    int wrong = 0, nan = 0;
  };
  /// Counts the elements of D off by more than 2^-22 of their terms' magnitudes (K / 16 fp32
  /// roundings), and those that are NaN.
  counts check() const {
    const auto k = static_cast<std::uint32_t>(options.k);
    counts result;
    for (unsigned g = 0; g < options.warpgroups; ++g)
      for (std::uint32_t m = 0; m < 64; ++m)
        for (std::uint32_t n = 0; n < static_cast<std::uint32_t>(N); ++n) {
          double sum = options.accumulate_c ? c[(g * 64 + m) * N + n] : 0.0;
          double magnitude = std::abs(sum);
          for (std::uint32_t j = 0; j < k; ++j) {
            const double term = real(a[(g * 64 + m) * k + j]) * real(b[(g * k + j) * N + n]);
            sum += term;
            magnitude += std::abs(term);
          }
          const float got = d[(g * 64 + m) * N + n];
          result.nan += std::isnan(got) ? 1 : 0;
          result.wrong += std::abs(got - sum) > std::ldexp(magnitude, -22) ? 1 : 0;
        }
    return result;
  }
};

}  // namespace kvc::testing
