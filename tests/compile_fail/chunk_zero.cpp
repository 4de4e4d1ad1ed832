// expect: kvc::chunked<C>: the chunk must hold at least one token
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::chunked<0>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
