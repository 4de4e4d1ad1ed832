// expect: kvc::pattern<...>: every element must be a layer spec
#include "kvc/kvc.hpp"

struct m : kvc::model<4, kvc::pattern<kvc::gqa<8, 2>, kvc::head_dim<64>>> {};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
