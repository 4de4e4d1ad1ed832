// expect: no tensor-core extend takes this layer
#include "kvc/backend/simt/extend.hpp"
#include "kvc/kvc.hpp"

// DeepSeek V3's latent of 576 dims in fp32: too wide for the row-tile extend, and the per-token
// one takes every storage dtype but fp32 (the tensor cores read no fp32).
using layer_spec = kvc::layer<kvc::mqa<128>, kvc::latent<512, 64>, kvc::storage<kvc::fp32>,
                              kvc::inv_sqrt_scale<192>>;
using shape = kvc::kernels::decode_shape_of<layer_spec, kvc::paged<64>>;
[[maybe_unused]] constexpr auto probe = sizeof(kvc::kernels::extend<shape>);
