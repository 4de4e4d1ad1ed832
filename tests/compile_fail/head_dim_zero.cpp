// expect: kvc::head_dim<DK, DV>: the value head dim must be positive
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::mha<8>, kvc::head_dim<64, 0>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
