// expect: query heads must be a multiple of the KV heads
#include "kvc/kvc.hpp"

struct bad : kvc::model<32, kvc::layer<kvc::gqa<32, 5>, kvc::head_dim<128>>> {};
static_assert(kvc::footprint<bad>::bytes_per_token > 0);
