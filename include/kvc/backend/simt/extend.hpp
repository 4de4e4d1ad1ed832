#pragma once
// The tensor-core extend kernels (kernels/extend.hpp) in the host emulator, as kvc::cuda::extend
// runs it on a GPU: the same refusals (kernels::make_extend_work) before the launch.
//
//   kernels::extend_plan plan;
//   kvc::simt::plan_extend<shape>(view, token_indptr, q_heads, plan);        // once per step
//   kvc::simt::extend<shape>(plan, view, token_indptr, q, out, lse, params);  // every layer
//
// `view` is the step's view of the layer (cache.view(layer, cache.step_table(plan, layer)))
// once the step's K/V are written (kv_cache::write, or the append kernel); token_indptr its
// new-token offsets, batch + 1 of them; q a row of [q_heads][k_dim] per new token, out
// [new tokens][q_heads][v_dim] and lse [new tokens][q_heads].

#include <cstdint>
#include <span>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/simt/architecture.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/kernels/extend.hpp"
#include "kvc/kernels/simt_shape.hpp"

namespace kvc::simt {

/// Plans a step for the extend kernel of Shape (kernels::plan_extend with its tile).
template <class Shape, class Block = kernels::extend_block<Shape>>
void plan_extend(const paged_layer_view& view, std::span<const std::int64_t> token_indptr,
                 int q_heads, kernels::extend_plan& plan) {
  kernels::plan_extend(view, token_indptr, q_heads, kernels::extend<Shape, Block>::rows, plan,
                       "kvc::simt::plan_extend");
}

template <class Shape, class Block = kernels::extend_block<Shape>>
void extend(const kernels::extend_plan& plan, const paged_layer_view& view,
            std::span<const std::int64_t> token_indptr, attention::query_rows q, float* out,
            float* lse, const attention::attention_params& params,
            const launch_options& options = {}) {
  using kernel = kernels::extend<Shape, Block>;
  const kernels::extend_work work = kernels::make_extend_work<Shape>(
      plan, plan.tiles.data(), view, token_indptr, token_indptr.data(), q, out, lse, params,
      kernel::rows, "kvc::simt::extend");
  if (work.tile_count == 0) return;
  launch(kernels::extend_grid<Shape, Block>(work), Block{}, kernel::shared_bytes, kernel{work},
         options);
}

}  // namespace kvc::simt
