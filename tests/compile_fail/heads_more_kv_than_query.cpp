// expect: kvc::heads<Q, KV>: there cannot be more KV heads than query heads
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::heads<4, 8>, kvc::head_dim<128>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
