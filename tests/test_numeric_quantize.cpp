// int8 and int4 symmetric quantization with one scale per token-head vector.
// Documented bound (docs/numerics.md): |x - dequantize(quantize(x))| <= scale / 2 + 2^-21 |x|,
// with scale = max|x| / 127 (int8) or max|x| / 7 (int4).

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kvc/numeric/quantize.hpp"

using namespace kvc::numeric;

namespace {

template <int Levels, class Quantize, class Dequantize>
void check_round_trip(Quantize quantize, Dequantize dequantize, int dim, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> magnitude(-20.0f, 20.0f);
  std::vector<float> x(static_cast<std::size_t>(dim)), back(static_cast<std::size_t>(dim));
  for (int trial = 0; trial < 2000; ++trial) {
    const float spread = std::exp2(magnitude(rng));
    for (float& v : x) v = normal(rng) * spread;
    const float scale = quantize(x, back);  // back holds the dequantized values
    const float amax = abs_max(x.data(), dim);
    REQUIRE(scale == amax / Levels);
    for (int i = 0; i < dim; ++i) {
      const float err =
          std::fabs(x[static_cast<std::size_t>(i)] - back[static_cast<std::size_t>(i)]);
      INFO("trial " << trial << " i " << i << " x " << x[static_cast<std::size_t>(i)]);
      const float xi = std::fabs(x[static_cast<std::size_t>(i)]);
      REQUIRE(err <= scale / 2 + xi / (1 << 21));
    }
    (void)dequantize;
  }
}

}  // namespace

TEST_CASE("int8 round trip stays within half a step") {
  std::mt19937 rng(1);
  for (int dim : {1, 64, 128, 576}) {
    check_round_trip<127>(
        [&](const std::vector<float>& x, std::vector<float>& back) {
          std::vector<std::int8_t> q(x.size());
          const float scale = quantize_int8(x.data(), static_cast<int>(x.size()), q.data());
          for (std::int8_t v : q) REQUIRE((v >= -127 && v <= 127));
          dequantize_int8(q.data(), static_cast<int>(x.size()), scale, back.data());
          return scale;
        },
        0, dim, rng);
  }
}

TEST_CASE("int4 round trip stays within half a step") {
  std::mt19937 rng(2);
  for (int dim : {2, 64, 128, 576}) {
    check_round_trip<7>(
        [&](const std::vector<float>& x, std::vector<float>& back) {
          std::vector<std::uint8_t> q(x.size() / 2);
          const float scale = quantize_int4(x.data(), static_cast<int>(x.size()), q.data());
          for (std::uint8_t b : q) {
            REQUIRE((unpack_int4_low(b) >= -7 && unpack_int4_low(b) <= 7));
            REQUIRE((unpack_int4_high(b) >= -7 && unpack_int4_high(b) <= 7));
          }
          dequantize_int4(q.data(), static_cast<int>(x.size()), scale, back.data());
          return scale;
        },
        0, dim, rng);
  }
}

TEST_CASE("the largest magnitude maps onto the largest level exactly") {
  const float x[4] = {-3.0f, 1.0f, 0.5f, 2.0f};
  std::int8_t q[4];
  const float scale = quantize_int8(x, 4, q);
  CHECK(q[0] == -127);
  CHECK(scale * q[0] == Approx(-3.0f).epsilon(1e-7));
  std::uint8_t q4[2];
  quantize_int4(x, 4, q4);
  CHECK(unpack_int4_low(q4[0]) == -7);
}

TEST_CASE("quantization rounds ties to even") {
  // max|x| = 127 gives scale 1 and multiplier 1: the values themselves are rounded.
  const float x[8] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -0.5f};
  std::int8_t q[8];
  CHECK(quantize_int8(x, 8, q) == 1.0f);
  const int expected[8] = {127, 2, 4, -2, -4, 0, 2, 0};
  for (int i = 0; i < 8; ++i) CHECK(q[i] == expected[i]);
}

TEST_CASE("int4 packing: low nibble first, every pair of levels") {
  for (int low = -8; low <= 7; ++low)
    for (int high = -8; high <= 7; ++high) {
      const std::uint8_t b = pack_int4(low, high);
      REQUIRE(unpack_int4_low(b) == low);
      REQUIRE(unpack_int4_high(b) == high);
    }
  STATIC_REQUIRE(pack_int4(1, -1) == 0xF1);
}

TEST_CASE("a vector of zeros reads back as zeros") {
  const float x[4] = {0.0f, -0.0f, 0.0f, 0.0f};
  std::int8_t q[4];
  float back[4];
  const float scale = quantize_int8(x, 4, q);
  CHECK(scale == 0.0f);
  dequantize_int8(q, 4, scale, back);
  for (float v : back) CHECK(v == 0.0f);
}

TEST_CASE("a NaN or an infinity poisons the whole vector: it reads back NaN") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float bad : {nan, inf, -inf}) {
    for (int at : {0, 3}) {
      float x[4] = {1.0f, -2.0f, 0.5f, 0.25f};
      x[at] = bad;
      std::int8_t q[4];
      float back[4];
      const float scale = quantize_int8(x, 4, q);
      dequantize_int8(q, 4, scale, back);
      for (float v : back) CHECK(std::isnan(v));
      std::uint8_t q4[2];
      const float scale4 = quantize_int4(x, 4, q4);
      dequantize_int4(q4, 4, scale4, back);
      for (float v : back) CHECK(std::isnan(v));
    }
  }
}

TEST_CASE("vectors of tiny magnitude quantize like any other") {
  // Below about 3.7e-37, 127 / max|x| overflows: every nonzero value used to land on +-127.
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (const float amax_target : {1e-19f, 5.4e-20f, 1e-30f, 3e-37f, 1.5e-38f}) {
    std::vector<float> x(64), back(64);
    for (float& v : x) v = normal(rng);
    const float largest = abs_max(x.data(), 64);
    for (float& v : x) v = v / largest * amax_target;
    const float amax = abs_max(x.data(), 64);
    INFO("max |x| " << amax);
    std::vector<std::int8_t> q8(64);
    const float scale8 = quantize_int8(x.data(), 64, q8.data());
    dequantize_int8(q8.data(), 64, scale8, back.data());
    int extremes = 0;
    for (std::size_t i = 0; i < 64; ++i) {
      extremes += (q8[i] == 127 || q8[i] == -127) ? 1 : 0;
      REQUIRE(std::fabs(x[i] - back[i]) <= scale8 / 2 + std::fabs(x[i]) / (1 << 21));
    }
    CHECK(extremes <= 2);  // the largest value, and maybe a tie
    std::vector<std::uint8_t> q4(32);
    const float scale4 = quantize_int4(x.data(), 64, q4.data());
    dequantize_int4(q4.data(), 64, scale4, back.data());
    for (std::size_t i = 0; i < 64; ++i)
      REQUIRE(std::fabs(x[i] - back[i]) <= scale4 / 2 + std::fabs(x[i]) / (1 << 21));
  }
}
