// expect: kvc::latent<Rank, RopeDim>: the RoPE dim cannot be negative
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::mqa<16>, kvc::latent<512, -1>>;
static_assert(bad::bytes_per_token > 0);
