// expect: kvc::kernels::tensor_core_block: the tensor-core decode takes K and V stored in fp16
#include "kvc/kernels/decode.hpp"
#include "kvc/kvc.hpp"

// A group of 4 in fp32 asked onto the tensor cores, which read no fp32.
using layer_spec = kvc::layer<kvc::gqa<8, 2>, kvc::head_dim<128>, kvc::storage<kvc::fp32>>;
using shape = kvc::kernels::decode_shape_of<layer_spec, kvc::paged<16>>;
[[maybe_unused]] constexpr auto probe = sizeof(kvc::kernels::tensor_core_block<shape>);
