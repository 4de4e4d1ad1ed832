// The model-based test of kv_cache: KVC_MODEL_STEPS random operations (100,000 by default)
// from seed KVC_MODEL_SEED (fixed by default), each followed by the full check of
// cache_harness.hpp. One cache call in eight has one of its first allocations fail (this
// binary's operator new), which must change nothing.

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include "cache_harness.hpp"

#include "failing_new.hpp"

namespace {
std::uint64_t from_environment(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr ? std::stoull(text) : fallback;
}
}  // namespace

TEST_CASE("random operations against the reference model") {
  const std::uint64_t seed = from_environment("KVC_MODEL_SEED", 20261123);
  const std::uint64_t steps = from_environment("KVC_MODEL_STEPS", 100'000);
  std::mt19937_64 rng(seed);
  kvc::testing::choices source{
      [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); }};
  source.arm_fault = [](long n) { kvc::testing::failing_new::countdown = n; };
  source.disarm_fault = [] { kvc::testing::failing_new::countdown = 0; };
  kvc::testing::cache_harness harness(source);
  INFO("seed " << seed << " (KVC_MODEL_SEED), " << steps << " steps (KVC_MODEL_STEPS)");
  std::uint64_t step = 0;
  try {
    for (; step < steps; ++step) {
      harness.step();
      if (step % 5000 == 4999) harness.release_all();
    }
    harness.release_all();
  } catch (const kvc::testing::failure& f) {
    FAIL("step " << step << ": " << f.what());
  }
  // The run must have exercised every operation, running out of pages included.
  for (int what = 0; what < 9; ++what) {
    INFO("operation " << what);
    CHECK(harness.counts(what) > 0);
  }
}
