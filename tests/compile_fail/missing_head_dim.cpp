// expect: give the size of the cached vectors
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::storage<kvc::bf16>>;
static_assert(bad::bytes_per_token > 0);
