// expect: kvc::storage<K, V>: K must be one of fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, int4
#include "kvc/kvc.hpp"

using bad = kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::storage<float>>;
[[maybe_unused]] constexpr auto probe = bad::bytes_per_token;
