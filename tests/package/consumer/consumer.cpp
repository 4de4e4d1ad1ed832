// A consumer of an installed or vendored kvc: one typedef, its footprint, a cache that
// takes one sequence. It prints what it found so that the package tests can check it.
#include <cstdio>

#include "kvc/kvc.hpp"
#include "kvc/models/llama.hpp"

int main() {
  using model = kvc::models::llama3_8b;
  static_assert(kvc::footprint<model>::bytes_per_token == 131072);
  kvc::kv_cache<model, kvc::paged<16>> cache(kvc::capacity_pages{64});
  const kvc::sequence_id sequence = cache.add_sequence();
  std::printf("kvc consumer: llama3_8b %llu bytes per token, %d sequence(s); kvc %s\n",
              static_cast<unsigned long long>(kvc::footprint<model>::bytes_per_token),
              cache.length(sequence) == 0 ? 1 : 0, kvc::version_string.data());
  return 0;
}
