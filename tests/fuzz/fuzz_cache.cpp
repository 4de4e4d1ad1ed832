// libFuzzer target: the fuzzer's bytes choose the operations of cache_harness.hpp (add,
// append, fork, release, aborted plans, bad input, running out of pages), and every step is
// followed by the harness's full check. A failed check aborts, which libFuzzer reports.
//
// Built by CMake when clang++ is found (target fuzz_cache); run it longer with
//   build/tests/fuzz_cache -max_total_time=600

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../cache_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t used = 0;
  kvc::testing::choices source;
  source.below = [&](std::uint32_t n) -> std::uint32_t {
    std::uint32_t value = 0;
    for (int i = 0; i < 2 && used < size; ++i) value = value << 8 | data[used++];
    return value % n;
  };
  try {
    kvc::testing::cache_harness harness(source);
    while (used < size) harness.step();
    harness.release_all();
  } catch (const kvc::testing::failure& f) {
    std::fprintf(stderr, "kv_cache check failed: %s\n", f.what());
    std::abort();
  }
  return 0;
}
