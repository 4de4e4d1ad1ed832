// expect: kvc::softmax_scale<Num, Den>: the scale must be positive
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::softmax_scale<0>>;
[[maybe_unused]] constexpr auto probe = bad::softmax_scale_value;
