// expect: kvc::kv_shared<Source, L>: the source must be an earlier layer that owns a cache
#include "kvc/kvc.hpp"

using L = kvc::layer<kvc::gqa<8, 2>, kvc::head_dim<256>>;
using W = kvc::layer<kvc::gqa<8, 2>, kvc::head_dim<256>, kvc::sliding_window<512>>;
struct m : kvc::stack<kvc::repeat<2, L>, kvc::repeat<1, kvc::kv_shared<0, W>>> {};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
