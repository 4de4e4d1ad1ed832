// expect: model_type
#include "kvc/kvc.hpp"

static_assert(kvc::footprint<kvc::layer<kvc::mha<8>, kvc::head_dim<64>>>::bytes_per_token > 0);
