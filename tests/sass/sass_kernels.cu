// The kernels the static SASS check (scripts/sass_check.py) reads: the decode of a Llama 3 8B
// layer (32 query heads, 8 KV heads, dim 128, pages of 16) in fp16, bf16, fp8 e4m3 and int8,
// the append kernel (fp16 and int8 storage from fp16 inputs) and the tensor-core extend of the
// same layer in fp16 and bf16, and the tensor-core latent decode of a DeepSeek V3 layer (128
// heads over a 512 + 64 latent, pages of 64), its extend, and the decode of Llama 3 405B's
// and Llama 3 70B's layers (groups of 16 and 8, dim 128), those four in bf16 and fp8 e4m3,
// each instantiated through its launcher as an engine would.
// Compiled to a cubin, never run.

#include <type_traits>

#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/model/layer.hpp"
#include "kvc/models/deepseek.hpp"

namespace kvc::sass_check {

template <class Storage>
using llama3_8b_layer = layer<gqa<32, 8>, head_dim<128>, Storage>;

template <class Storage>
void decode(const attention::decode_plan& plan, const cuda::device_decode_plan& device_plan,
            const paged_layer_view& view, float* buffer, cudaStream_t stream) {
  using shape = kernels::decode_shape_of<llama3_8b_layer<Storage>, paged<16>>;
  cuda::decode<shape>(plan, device_plan, view, buffer, buffer, buffer, {}, stream);
}

template void decode<storage<fp16>>(const attention::decode_plan&, const cuda::device_decode_plan&,
                                    const paged_layer_view&, float*, cudaStream_t);
template void decode<storage<bf16>>(const attention::decode_plan&, const cuda::device_decode_plan&,
                                    const paged_layer_view&, float*, cudaStream_t);
template void decode<storage<fp8_e4m3>>(const attention::decode_plan&,
                                        const cuda::device_decode_plan&, const paged_layer_view&,
                                        float*, cudaStream_t);
template void decode<storage<int8>>(const attention::decode_plan&, const cuda::device_decode_plan&,
                                    const paged_layer_view&, float*, cudaStream_t);

void append(const kernels::append_work& work, cudaStream_t stream) {
  cuda::append<fp16, fp16, fp16>(work, stream);
  cuda::append<int8, int8, fp16>(work, stream);
}

template <class Storage>
void extend(const kernels::extend_plan& plan, const cuda::device_extend_plan& device_plan,
            const paged_layer_view& view, float* buffer, cudaStream_t stream) {
  using shape = kernels::decode_shape_of<llama3_8b_layer<Storage>, paged<16>>;
  cuda::extend<shape>(plan, device_plan, view, {}, nullptr, buffer, buffer, buffer, {}, stream);
}

template void extend<storage<fp16>>(const kernels::extend_plan&, const cuda::device_extend_plan&,
                                    const paged_layer_view&, float*, cudaStream_t);
template void extend<storage<bf16>>(const kernels::extend_plan&, const cuda::device_extend_plan&,
                                    const paged_layer_view&, float*, cudaStream_t);

template <class Storage>
using deepseek_v3_layer = layer<mqa<128>, latent<512, 64>, Storage, inv_sqrt_scale<192>>;

template <class Storage>
void latent_decode(const attention::decode_plan& plan, const cuda::device_decode_plan& device_plan,
                   const paged_layer_view& view, float* buffer, cudaStream_t stream) {
  using shape = kernels::decode_shape_of<deepseek_v3_layer<Storage>, paged<64>>;
  cuda::decode<shape>(plan, device_plan, view, buffer, buffer, buffer, {}, stream);
}

template <class Storage>
void latent_extend(const kernels::extend_plan& plan, const cuda::device_extend_plan& device_plan,
                   const paged_layer_view& view, float* buffer, cudaStream_t stream) {
  using shape = kernels::decode_shape_of<deepseek_v3_layer<Storage>, paged<64>>;
  cuda::extend<shape>(plan, device_plan, view, {}, nullptr, buffer, buffer, buffer, {}, stream);
}

// Llama 3 405B's groups of 16 (128 query heads over 8 KV heads) and Llama 3 70B's of 8 (64).
template <int QueryHeads, class Storage>
void group_decode(const attention::decode_plan& plan, const cuda::device_decode_plan& device_plan,
                  const paged_layer_view& view, float* buffer, cudaStream_t stream) {
  using shape =
      kernels::decode_shape_of<layer<gqa<QueryHeads, 8>, head_dim<128>, Storage>, paged<16>>;
  cuda::decode<shape>(plan, device_plan, view, buffer, buffer, buffer, {}, stream);
}

// models::mla_layer<128> is deepseek_v3_layer<storage<bf16>>.
static_assert(std::is_same_v<models::mla_layer<128>, deepseek_v3_layer<storage<bf16>>>);

template void latent_decode<storage<bf16>>(const attention::decode_plan&,
                                           const cuda::device_decode_plan&, const paged_layer_view&,
                                           float*, cudaStream_t);
template void latent_decode<storage<fp8_e4m3>>(const attention::decode_plan&,
                                               const cuda::device_decode_plan&,
                                               const paged_layer_view&, float*, cudaStream_t);
template void latent_extend<storage<bf16>>(const kernels::extend_plan&,
                                           const cuda::device_extend_plan&, const paged_layer_view&,
                                           float*, cudaStream_t);
template void latent_extend<storage<fp8_e4m3>>(const kernels::extend_plan&,
                                               const cuda::device_extend_plan&,
                                               const paged_layer_view&, float*, cudaStream_t);
template void group_decode<128, storage<bf16>>(const attention::decode_plan&,
                                               const cuda::device_decode_plan&,
                                               const paged_layer_view&, float*, cudaStream_t);
template void group_decode<128, storage<fp8_e4m3>>(const attention::decode_plan&,
                                                   const cuda::device_decode_plan&,
                                                   const paged_layer_view&, float*, cudaStream_t);
template void group_decode<64, storage<bf16>>(const attention::decode_plan&,
                                              const cuda::device_decode_plan&,
                                              const paged_layer_view&, float*, cudaStream_t);
template void group_decode<64, storage<fp8_e4m3>>(const attention::decode_plan&,
                                                  const cuda::device_decode_plan&,
                                                  const paged_layer_view&, float*, cudaStream_t);

}  // namespace kvc::sass_check
