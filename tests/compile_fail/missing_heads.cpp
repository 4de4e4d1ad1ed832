// expect: give exactly one head-sharing policy
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::head_dim<128>, kvc::storage<kvc::bf16>>;
static_assert(bad::bytes_per_token > 0);
