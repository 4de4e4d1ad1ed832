// expect: give exactly one head-sharing policy
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::head_dim<128>, kvc::storage<kvc::bf16>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
