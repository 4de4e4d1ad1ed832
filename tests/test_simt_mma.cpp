// The warp matrix multiply-accumulate of the SIMT context (mma.sync m16n8k16) in the host
// emulator: the fragment layouts of kernels/mma.hpp cover each matrix once, and a kernel that
// loads fragments by them gets every element of D = A B + C of a plain matrix product, for
// fp16 and bf16, in blocks of several warps; a kernel with a wrong layout does not.

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "kvc/backend/simt/launch.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/numeric/half.hpp"
#include "mma_probe.hpp"

using namespace kvc;
using kvc::testing::mma_a_size;
using kvc::testing::mma_b_size;
using kvc::testing::mma_c_size;

namespace {

// Problems of random values: small integers (every sum exact in fp32) or normal ones.
struct problems {
  bool bf16;
  std::vector<std::uint16_t> a, b;
  std::vector<float> c, d;

  problems(std::size_t count, bool is_bf16, bool integers, std::uint32_t seed)
      : bf16(is_bf16),
        a(count * mma_a_size),
        b(count * mma_b_size),
        c(count * mma_c_size),
        d(count * mma_c_size, -1.0f) {
    std::mt19937 random(seed);
    std::normal_distribution<float> normal;
    const auto value = [&] {
      return integers ? static_cast<float>(static_cast<int>(random() % 7) - 3) : normal(random);
    };
    for (auto* m : {&a, &b})
      for (std::uint16_t& x : *m)
        x = bf16 ? numeric::bf16_from_float(value()) : numeric::fp16_from_float(value());
    for (float& x : c)
      x = integers ? static_cast<float>(static_cast<int>(random() % 21) - 10) : value();
  }
  double input(std::uint16_t bits) const {
    return bf16 ? numeric::bf16_to_float(bits) : numeric::fp16_to_float(bits);
  }
  // D[p][m][n] and the sum of its terms' magnitudes.
  double expected(std::size_t p, int m, int n, double* magnitude) const {
    double sum = c[p * mma_c_size + static_cast<std::size_t>(m * 8 + n)];
    *magnitude = std::abs(sum);
    for (int k = 0; k < 16; ++k) {
      const double term = input(a[p * mma_a_size + static_cast<std::size_t>(m * 16 + k)]) *
                          input(b[p * mma_b_size + static_cast<std::size_t>(k * 8 + n)]);
      sum += term;
      *magnitude += std::abs(term);
    }
    return sum;
  }
  testing::mma_probe kernel(bool wrong_layout = false, bool through_ldmatrix = false) {
    return {a.data(), b.data(), c.data(), d.data(), bf16, wrong_layout, through_ldmatrix};
  }
  // Elements of D off by more than `relative` of their terms' magnitudes.
  int wrong(double relative) const {
    int count = 0;
    for (std::size_t p = 0; p < c.size() / mma_c_size; ++p)
      for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
          double magnitude = 0;
          const double want = expected(p, m, n, &magnitude);
          const double got = d[p * mma_c_size + static_cast<std::size_t>(m * 8 + n)];
          count += std::abs(got - want) > relative * magnitude ? 1 : 0;
        }
    return count;
  }
};

template <class Place>
void check_covers(Place place, int values, int rows, int columns) {
  std::vector<int> seen(static_cast<std::size_t>(rows * columns), 0);
  for (unsigned lane = 0; lane < 32; ++lane)
    for (int i = 0; i < values; ++i) {
      const kernels::mma_place p = place(lane, i);
      REQUIRE(p.row >= 0);
      REQUIRE(p.row < rows);
      REQUIRE(p.column >= 0);
      REQUIRE(p.column < columns);
      ++seen[static_cast<std::size_t>(p.row * columns + p.column)];
    }
  for (int s : seen) CHECK(s == 1);
}

}  // namespace

TEST_CASE("mma fragments cover A, B and C once each, two values to a register") {
  check_covers(kernels::mma_a_place, 8, 16, 16);
  check_covers(kernels::mma_b_place, 4, 16, 8);
  check_covers(kernels::mma_c_place, 4, 16, 8);
  // Lane 5 (group 1, pair 1), from the PTX ISA's tables.
  CHECK(kernels::mma_a_place(5, 0).row == 1);
  CHECK(kernels::mma_a_place(5, 0).column == 2);
  CHECK(kernels::mma_a_place(5, 3).row == 9);
  CHECK(kernels::mma_a_place(5, 3).column == 3);
  CHECK(kernels::mma_a_place(5, 6).row == 9);
  CHECK(kernels::mma_a_place(5, 6).column == 10);
  CHECK(kernels::mma_b_place(5, 3).row == 11);
  CHECK(kernels::mma_b_place(5, 3).column == 1);
  CHECK(kernels::mma_c_place(5, 2).row == 9);
  CHECK(kernels::mma_c_place(5, 2).column == 2);
  kernels::mma_a f{};
  f.set(0, 0x1234);
  f.set(1, 0xabcd);
  f.set(7, 0x00ff);
  CHECK(f.reg[0] == 0xabcd1234u);
  CHECK(f.reg[3] == 0x00ff0000u);
  CHECK(f.get(1) == 0xabcd);
}

TEST_CASE("mma of small integers equals the plain product in every element") {
  for (const bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16" : "fp16"));
    problems p(6, bf16, true, bf16 ? 11u : 12u);
    simt::launch({3, 1, 1}, kernels::block_shape<64>{}, 0, p.kernel());  // 2 warps a block
    CHECK(p.wrong(0.0) == 0);
  }
}

TEST_CASE("mma of normal values is within an fp32 rounding of the exact sum") {
  for (const bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16" : "fp16"));
    problems p(4, bf16, false, bf16 ? 13u : 14u);
    simt::launch({1, 1, 1}, kernels::block_shape<128>{}, 0, p.kernel());
    CHECK(p.wrong(std::ldexp(1.0, -23)) == 0);
  }
}

TEST_CASE("a kernel that loads A by a wrong layout gets a wrong product") {
  problems p(2, false, true, 15u);
  simt::launch({1, 1, 1}, kernels::block_shape<64>{}, 0, p.kernel(true));
  CHECK(p.wrong(0.0) > 100);
}

TEST_CASE("fragments loaded by ldmatrix (A as stored, B transposed) give the plain product") {
  constexpr unsigned warps = 2;
  for (const bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16" : "fp16"));
    problems p(4, bf16, true, bf16 ? 17u : 18u);
    simt::launch({2, 1, 1}, kernels::block_shape<32 * warps>{},
                 warps * testing::mma_probe::ldmatrix_shared_bytes, p.kernel(false, true));
    CHECK(p.wrong(0.0) == 0);
  }
  // A loaded transposed: the layouts of ldmatrix and mma no longer meet.
  problems p(2, false, true, 19u);
  simt::launch({1, 1, 1}, kernels::block_shape<32 * warps>{},
               warps * testing::mma_probe::ldmatrix_shared_bytes, p.kernel(true, true));
  CHECK(p.wrong(0.0) > 100);
}

namespace {
struct bad_row {
  std::size_t offset;
  template <class Context>
  void operator()(const Context& ctx) const {
    (void)ctx.template load_matrices<false>(ctx.dynamic_shared() + offset);
  }
};
}  // namespace

TEST_CASE("ldmatrix refuses a row outside shared memory or not 16-byte aligned") {
  for (const std::size_t offset : {std::size_t{8}, std::size_t{64}}) {
    try {
      simt::launch({1, 1, 1}, kernels::block_shape<32>{}, 64, bad_row{offset});
      FAIL("the launch reported no error");
    } catch (const simt::launch_error& error) {
      CHECK(error.code() == (offset == 8 ? simt::launch_errc::misaligned_address
                                         : simt::launch_errc::not_shared_memory));
    }
  }
}

namespace {
// Lane 5 copies a 16-byte row into shared memory; the warp loads matrices from it before
// (race) or after the copy's wait.
struct row_copied_by_lane_5 {
  const std::byte* source;
  bool wait_first;
  template <class Context>
  void operator()(const Context& ctx) const {
    std::byte* shared = ctx.dynamic_shared();
    if (ctx.lane() == 5) ctx.copy_async(shared + 256, source);
    if (wait_first) ctx.wait_async_copies();
    ctx.sync_warp();
    (void)ctx.template load_matrices<false>(shared + 16 * ctx.lane());
    ctx.wait_async_copies();
  }
};
}  // namespace

TEST_CASE("ldmatrix of a row an asynchronous copy in flight writes is a copy_race") {
  alignas(16) const std::array<std::byte, 16> source{};
  CHECK_NOTHROW(simt::launch({1, 1, 1}, kernels::block_shape<32>{}, 512,
                             row_copied_by_lane_5{source.data(), true}));
  try {
    simt::launch({1, 1, 1}, kernels::block_shape<32>{}, 512,
                 row_copied_by_lane_5{source.data(), false});
    FAIL("the launch reported no error");
  } catch (const simt::launch_error& error) {
    CHECK(error.code() == simt::launch_errc::copy_race);
  }
}

TEST_CASE("mma in a warp of fewer than 32 lanes is refused") {
  problems p(2, false, true, 16u);
  try {
    simt::launch({1, 1, 1}, kernels::block_shape<48>{}, 0, p.kernel());
    FAIL("the launch reported no error");
  } catch (const simt::launch_error& error) {
    CHECK(error.code() == simt::launch_errc::shuffle_divergence);
    CHECK(std::string(error.what()).find("fewer than 32 lanes") != std::string::npos);
  }
}
