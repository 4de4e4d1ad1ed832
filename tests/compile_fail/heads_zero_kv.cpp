// expect: kvc::heads<Q, KV>: the number of KV heads must be positive
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 0>, kvc::head_dim<128>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
