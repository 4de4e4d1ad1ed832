// What an engine's translation unit compiles for one model (KVC_COST_MODEL, a gallery
// typedef): the cache, a step's write, prefill (extend) and decode. scripts/compile-cost.sh
// times it header-only (KVC_COST_COMPILED=0: the kernels of the model's layers compiled here,
// kernel_set.hpp) and against kvc/backend/cpu/compiled.hpp (=1: declarations only; the
// kernels are compiled once, in compiled_once.cpp).
#include <cstdint>
#include <span>
#include <vector>

#include "kvc/attention/layer_params.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/models/gallery.hpp"
#if KVC_COST_COMPILED
#include "kvc/backend/cpu/compiled.hpp"
namespace attention = kvc::cpu::compiled;
#else
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/cpu/kernel_set.hpp"
namespace attention = kvc::cpu;
#endif

using model = KVC_COST_MODEL;
constexpr int q_heads = model::layer_summaries[0].q_heads;
using cache_type = kvc::kv_cache<model, kvc::paged<16>>;

// One layer of a step: write the new K/V, then prefill the extending sequences and decode
// the others.
void step_layer(cache_type& cache, kvc::append_plan& plan, int layer,
                const std::vector<kvc::sequence_id>& decodes,
                const std::vector<kvc::sequence_id>& extends, std::span<const std::int32_t> qo,
                const kvc::kv_input& k, const kvc::kv_input& v, const float* q, float* out,
                float* lse, kvc::cpu::decode_workspace& dws, kvc::cpu::extend_workspace& ews,
                kvc::cpu::parallel_for_ref parallel) {
  cache.write(plan, layer, k, v);
  const auto params = kvc::attention::layer_params<model>(layer);
  const kvc::page_table_csr prefix = cache.page_table(layer, extends);
  attention::extend(cache.view(layer, prefix), qo, q_heads, q, k, v, out, lse, params, ews,
                    parallel);
  const kvc::page_table_csr step = cache.step_table(plan, layer);
  const kvc::paged_layer_view view =
      cache.view(layer, step).first(static_cast<int>(decodes.size()));
  const kvc::cpu::decode_plan decode_plan =
      kvc::cpu::plan_decode(view, q_heads, parallel.threads());
#if KVC_COST_COMPILED
  attention::decode(decode_plan, view, q, out, lse, params, dws, parallel);
#else
  // Header-only, the engine names its model: only its group kernels are compiled here.
  attention::decode<kvc::cpu::kernels_for<model>>(decode_plan, view, q, out, lse, params, dws,
                                                  parallel);
#endif
}
