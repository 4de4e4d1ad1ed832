// expect: kvc::layer<...>: every parameter must be a kvc policy
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, float>;
static_assert(bad::bytes_per_token > 0);
