// expect: a latent<Rank, RopeDim> layer must state its softmax scale
#include <kvc/model/layer.hpp>

using bad = kvc::layer<kvc::mqa<128>, kvc::latent<512, 64>, kvc::storage<kvc::bf16>>;
static_assert(bad::k_dim == 576);
