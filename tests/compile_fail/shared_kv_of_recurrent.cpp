// expect: kvc::kv_shared<Source, L>: the source must be an earlier layer that owns a cache
#include "kvc/kvc.hpp"

using L = kvc::layer<kvc::gqa<8, 2>, kvc::head_dim<256>>;
struct m
    : kvc::stack<kvc::repeat<1, kvc::recurrent_state<4096>>, kvc::repeat<1, kvc::kv_shared<0, L>>> {
};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
