// expect: kvc::heads<Q, KV>: there cannot be more KV heads than query heads
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::heads<4, 8>, kvc::head_dim<128>>;
static_assert(bad::bytes_per_token > 0);
