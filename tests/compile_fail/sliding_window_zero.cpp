// expect: kvc::sliding_window<W>: the window must hold at least one token
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::sliding_window<0>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
