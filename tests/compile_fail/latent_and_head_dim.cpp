// expect: either head_dim<DK, DV> .per-head keys and values. or latent<Rank, RopeDim> .MLA.
#include "kvc/kvc.hpp"

using bad =
    kvc::layer<kvc::mqa<128>, kvc::latent<512, 64>, kvc::head_dim<128>, kvc::inv_sqrt_scale<192>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
