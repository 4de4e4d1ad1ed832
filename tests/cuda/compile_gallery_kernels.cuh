#pragma once
// Instantiates, as device code, every kernel a gallery model's typedef uses: for each layer
// that attends (its own cache or a shared one), the decode and merge kernels of its
// decode_shape and the append kernel of its storage dtypes, and the tensor-core extend where one
// takes the shape (kernels::extend_supports), through the kvc::cuda launchers.
// Included by the TUs CMake writes, one per gallery family (tests/cuda/CMakeLists.txt), so
// that no translation unit grows large. Compiled for every architecture of
// CMAKE_CUDA_ARCHITECTURES, not run.

#include <cuda_runtime.h>

#include <type_traits>

#include "kvc/backend/cuda/append.cuh"
#include "kvc/backend/cuda/decode.cuh"
#include "kvc/backend/cuda/extend.cuh"
#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/extend.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/model.hpp"

namespace kvc::testing {

struct gallery_launch_arguments {
  const attention::decode_plan* plan;
  const cuda::device_decode_plan* device_plan;
  const paged_layer_view* view;
  const kernels::append_work* append;
  const kernels::extend_plan* extend_plan;
  const cuda::device_extend_plan* device_extend_plan;
  cudaStream_t stream;
};

template <class Layer, class Paging>
void launch_layer_kernels(const gallery_launch_arguments& a) {
  if constexpr (Layer::kind != layer_kind::recurrent) {
    using spec = typename Layer::attention;
    using shape = kernels::decode_shape_of<spec, Paging>;
    cuda::decode<shape>(*a.plan, *a.device_plan, *a.view, nullptr, nullptr, nullptr, {}, a.stream);
    cuda::append<typename spec::k_type, typename spec::v_type>(*a.append, a.stream);
    if constexpr (kernels::extend_supports<shape>)
      cuda::extend<shape>(*a.extend_plan, *a.device_extend_plan, *a.view, {}, nullptr, nullptr,
                          nullptr, nullptr, {}, a.stream);
  }
}

template <class Model, class Paging = paged<16>>
void launch_model_kernels(const gallery_launch_arguments& a) {
  [&]<class... Layers>(type_list<Layers...>) {
    (launch_layer_kernels<Layers, Paging>(a), ...);
  }(typename Model::layer_list{});
}

}  // namespace kvc::testing
