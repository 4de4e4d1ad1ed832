// expect: give at most one window policy
#include "kvc/kvc.hpp"

using bad =
    kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::sliding_window<4096>, kvc::chunked<8192>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
