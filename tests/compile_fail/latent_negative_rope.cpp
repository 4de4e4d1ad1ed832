// expect: kvc::latent<Rank, RopeDim>: the RoPE dim cannot be negative
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::mqa<16>, kvc::latent<512, -1>, kvc::inv_sqrt_scale<192>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
