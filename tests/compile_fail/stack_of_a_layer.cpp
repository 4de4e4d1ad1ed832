// expect: kvc::stack<...>: every segment must be repeat<N, layer or pattern>
#include "kvc/kvc.hpp"

using L = kvc::layer<kvc::gqa<8, 2>, kvc::head_dim<64>>;
struct m : kvc::stack<L> {};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
