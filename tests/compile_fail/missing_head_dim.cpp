// expect: give the size of the cached vectors
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::storage<kvc::bf16>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
