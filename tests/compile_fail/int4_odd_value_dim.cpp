// expect: int4 storage packs two values per byte, so the value head dim
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::mha<8>, kvc::head_dim<128, 97>, kvc::storage<kvc::fp16, kvc::int4>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
