// expect: kvc::layer<...>: every parameter must be a kvc policy
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, float>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
