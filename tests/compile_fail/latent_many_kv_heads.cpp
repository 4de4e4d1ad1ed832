// expect: latent<Rank, RopeDim> caches one vector shared by all query heads, so it takes
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<128, 8>, kvc::latent<512, 64>, kvc::inv_sqrt_scale<192>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
