// expect: kvc::logit_softcap<Num, Den>: the cap must be positive
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::logit_softcap<0>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
