// expect: storage<K, V> must use a single dtype
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::mqa<128>, kvc::latent<512, 64>, kvc::storage<kvc::int8, kvc::fp16>,
                       kvc::inv_sqrt_scale<192>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
