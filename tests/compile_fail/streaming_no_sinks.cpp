// expect: kvc::streaming<S, W>: keep at least one sink token
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::streaming<0, 1024>>;
static_assert(bad::bytes_per_token > 0);
