// The warpgroup matrix multiply-accumulate of the SIMT context (wgmma.mma_async m64nNk16,
// kernels/wgmma.hpp) in the host emulator: for every canonical shared memory layout (K- or
// MN-major, no swizzle or a swizzle of 32, 64 or 128 bytes), A by descriptor or from
// registers, fp16 and bf16, N from 8 to 256, one or two warpgroups, D is the plain matrix
// product; a kernel with a wrong layout does not get it, and one that breaks wgmma's rules
// (no fence, D read or B overwritten before the wait, an accumulator still pending, wgmma
// never waited for, warps giving different descriptors, a partial warpgroup) is caught. The
// problems and their images: tests/wgmma_problem.hpp.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <utility>

#include "kvc/backend/simt/launch.hpp"
#include "kvc/kernels/wgmma.hpp"
#include "wgmma_problem.hpp"

using namespace kvc;
using kernels::mma_input;
using kernels::wgmma_major;
using kernels::wgmma_swizzle;
using testing::wgmma_fault;
using testing::wgmma_image;

namespace {

struct outcome {
  std::optional<simt::launch_errc> error;
  int wrong = 0, nan = 0;
};

using problem_options = testing::wgmma_problem_options;
using testing::row_bytes;

template <mma_input Input, wgmma_major MajorA, wgmma_major MajorB, int N, bool AInRegisters,
          unsigned Threads = 128, wgmma_fault Fault = wgmma_fault::none>
outcome run(const problem_options& o, std::uint32_t seed) {
  testing::wgmma_problem<Input, MajorA, MajorB, N, AInRegisters, Fault> problem(o, seed);
  REQUIRE(problem.fits());
  outcome result;
  try {
    simt::launch(kernels::dims3{1, 1, 1}, kernels::block_shape<Threads>{},
                 problem.probe.shared_bytes(o.warpgroups), problem.probe);
  } catch (const simt::launch_error& error) {
    result.error = error.code();
    UNSCOPED_INFO(error.what());
    return result;
  }
  const auto counts = problem.check();
  result.wrong = counts.wrong;
  result.nan = counts.nan;
  return result;
}

constexpr wgmma_swizzle swizzles[] = {wgmma_swizzle::none, wgmma_swizzle::bytes_32,
                                      wgmma_swizzle::bytes_64, wgmma_swizzle::bytes_128};

// The largest K (a multiple of 16, at most 64) that a K-major image of this swizzle holds.
int k_for(wgmma_major a, wgmma_major b, wgmma_swizzle sa, wgmma_swizzle sb) {
  int k = 64;
  for (auto [major, swizzle] : {std::pair{a, sa}, std::pair{b, sb}})
    if (major == wgmma_major::k && swizzle != wgmma_swizzle::none)
      k = std::min(k, static_cast<int>(row_bytes(swizzle)) / 2);
  return k;
}

template <mma_input Input, wgmma_major MajorA, wgmma_major MajorB>
void every_swizzle(std::uint32_t seed) {
  for (wgmma_swizzle sa : swizzles)
    for (wgmma_swizzle sb : swizzles) {
      problem_options o;
      o.swizzle_a = sa;
      o.swizzle_b = sb;
      o.k = k_for(MajorA, MajorB, sa, sb);
      INFO("swizzle A " << row_bytes(sa) << ", B " << row_bytes(sb) << ", k " << o.k);
      const outcome r = run<Input, MajorA, MajorB, 64, false>(o, seed++);
      CHECK(!r.error);
      CHECK(r.wrong == 0);
    }
}

}  // namespace

TEST_CASE("wgmma by descriptor: every canonical layout of A and B, fp16 and bf16", "[wgmma]") {
  every_swizzle<mma_input::fp16, wgmma_major::k, wgmma_major::k>(1);
  every_swizzle<mma_input::bf16, wgmma_major::k, wgmma_major::mn>(101);
  every_swizzle<mma_input::fp16, wgmma_major::mn, wgmma_major::k>(201);
  every_swizzle<mma_input::bf16, wgmma_major::mn, wgmma_major::mn>(301);
}

TEST_CASE("wgmma with A from registers, N from 8 to 256", "[wgmma]") {
  problem_options o;
  o.swizzle_b = wgmma_swizzle::none;
  o.k = 48;
  CHECK(run<mma_input::bf16, wgmma_major::k, wgmma_major::k, 8, true>(o, 7).wrong == 0);
  CHECK(run<mma_input::fp16, wgmma_major::k, wgmma_major::mn, 24, true>(o, 8).wrong == 0);
  o.swizzle_b = wgmma_swizzle::bytes_128;
  o.k = 64;
  CHECK(run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, true>(o, 9).wrong == 0);
  const outcome wide = run<mma_input::bf16, wgmma_major::k, wgmma_major::mn, 256, true>(o, 10);
  CHECK(!wide.error);
  CHECK(wide.wrong == 0);
}

TEST_CASE("wgmma in two warpgroups of a block; sums of small integers are exact", "[wgmma]") {
  problem_options o;
  o.warpgroups = 2;
  o.integers = true;
  const outcome r = run<mma_input::bf16, wgmma_major::k, wgmma_major::mn, 64, false, 256>(o, 11);
  CHECK(!r.error);
  CHECK(r.wrong == 0);
  o.accumulate_c = false;  // scale-d 0: D = A B
  CHECK(run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 128, true, 256>(o, 12).wrong == 0);
}

TEST_CASE("wgmma with a wrong layout does not give the product", "[wgmma]") {
  problem_options o;
  o.descriptor_without_swizzle = true;  // swizzled images, descriptors without the swizzle
  CHECK(run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, false>(o, 13).wrong > 1000);
  o = {};  // C and D by another layout than the hardware's
  CHECK(run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, true, 128, wgmma_fault::d_layout>(
            o, 14)
            .wrong > 1000);
}

TEST_CASE("wgmma is asynchronous: D reads NaN and B is read at the wait", "[wgmma]") {
  const problem_options o;
  const outcome early = run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, false, 128,
                            wgmma_fault::read_before_wait>(o, 16);
  CHECK(!early.error);
  CHECK(early.nan == 64 * 64);
  // B zeroed after the commit: the wait reads zeros, so D is C, not A B + C.
  const outcome late = run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, false, 128,
                           wgmma_fault::overwrite_b>(o, 17);
  CHECK(!late.error);
  CHECK(late.wrong > 4000);
}

template <wgmma_fault Fault>
std::optional<simt::launch_errc> fault_error() {
  const problem_options o;
  return run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, true, 128, Fault>(o, 18).error;
}

TEST_CASE("wgmma against its rules is a launch_error", "[wgmma]") {
  CHECK(fault_error<wgmma_fault::no_fence>() == simt::launch_errc::wgmma_misuse);
  CHECK(fault_error<wgmma_fault::wait_names_pending>() == simt::launch_errc::wgmma_misuse);
  CHECK(fault_error<wgmma_fault::exit_pending>() == simt::launch_errc::wgmma_misuse);
  CHECK(fault_error<wgmma_fault::divergent_descriptor>() == simt::launch_errc::wgmma_misuse);
  // A copy into B while the wgmma is pending: a race on a GPU, whatever order the emulator
  // gives the two.
  CHECK(fault_error<wgmma_fault::copy_into_b>() == simt::launch_errc::copy_race);
  // A block of 96 threads has no whole warpgroup.
  const problem_options o;
  const outcome partial =
      run<mma_input::fp16, wgmma_major::k, wgmma_major::k, 64, false, 96>(o, 19);
  CHECK(partial.error == simt::launch_errc::wgmma_misuse);
}

TEST_CASE("a warpgroup whose warps do not all reach wgmma_wait is a divergence", "[wgmma]") {
  const auto kernel = [](const auto& ctx) {
    if (ctx.warp() != 3) ctx.template wgmma_wait<0>();
  };
  try {
    simt::launch(kernels::dims3{1, 1, 1}, kernels::block_shape<128>{}, 0, kernel);
    FAIL("no error");
  } catch (const simt::launch_error& error) {
    CHECK(error.code() == simt::launch_errc::barrier_divergence);
    CHECK_THAT(error.what(), Catch::Matchers::Contains("warpgroup 0: 96 of its 128 threads"));
  }
}
