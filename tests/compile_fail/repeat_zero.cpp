// expect: kvc::repeat<N, X>: N must be at least one layer
#include "kvc/kvc.hpp"

using L = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>>;
struct m : kvc::stack<kvc::repeat<4, L>, kvc::repeat<0, L>> {};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
