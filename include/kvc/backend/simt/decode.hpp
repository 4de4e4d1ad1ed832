#pragma once
// Decode with the device kernels (kernels/decode.hpp) in the host emulator, as
// kvc::cuda::decode runs them on a GPU: the decode launch, then the merge launch when the
// plan splits a sequence.
//
//   auto plan = kvc::attention::plan_decode(view, q_heads, workers);     // once per batch
//   kvc::attention::decode_workspace workspace;                          // reused
//   kvc::simt::decode<shape>(plan, view, q, out, lse, params, workspace);  // every layer
//
// The same refusals as the GPU launcher (kernels::make_decode_work), before any launch; q is an
// attention::query_rows, read in place with its token_stride, as on the GPU.

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/simt/architecture.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt {

template <class Shape, class Block = kernels::decode_block<Shape>,
          class MergeBlock = kernels::block_shape<128>>
void decode(const attention::decode_plan& plan, const paged_layer_view& view,
            attention::query_rows q, float* out, float* lse,
            const attention::attention_params& params, attention::decode_workspace& workspace,
            const launch_options& options = {}) {
  const kernels::decode_work work =
      kernels::make_decode_work<Shape>(plan, kernels::plan_arrays_of(plan), view, q, out, lse,
                                       params, workspace.fit(plan), "kvc::simt::decode");
  if (work.items == 0) return;
  launch(kernels::decode_grid<Shape, Block>(work), Block{},
         kernels::decode<Shape, Block>::shared_bytes, kernels::decode<Shape, Block>{work}, options);
  if (work.split_sequences > 0)
    launch(kernels::merge_grid(work), MergeBlock{}, 0, kernels::merge<Shape::v_dim>{work}, options);
}

}  // namespace kvc::simt
