// expect: kvc::streaming<S, W>: keep at least one sink token
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::streaming<0, 1024>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
