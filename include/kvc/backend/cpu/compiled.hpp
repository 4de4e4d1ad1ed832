#pragma once
// Decode and extend, compiled once for a program. The kernels behind kvc::cpu::decode and
// kvc::cpu::extend are many (every storage dtype, query group size and instruction set, all
// chosen at run time), and every translation unit that calls them compiles them all
// (docs/benchmarks.md, "Compile cost"). An engine with several translation
// units includes this header, which declares the same calls in kvc::cpu::compiled and
// includes no kernel, and includes kvc/backend/cpu/compiled_definitions.hpp in exactly one
// translation unit of the program, which defines them. The results are those of
// kvc::cpu::decode and kvc::cpu::extend, bit for bit.
//
//   // engine_attention.cpp, the one TU:   #include "kvc/backend/cpu/compiled_definitions.hpp"
//   // every other TU:                     #include "kvc/backend/cpu/compiled.hpp"
//   kvc::cpu::compiled::decode(plan, view, q, out, lse, params, workspace, pool.ref());

#include <cstdint>
#include <span>

#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cpu/decode_plan.hpp"
#include "kvc/backend/cpu/extend_workspace.hpp"
#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/kv_input.hpp"
#include "kvc/cache/page_table.hpp"

namespace kvc::cpu::compiled {

/// Decodes as kvc::cpu::decode(plan, view, ...): one new token per sequence
/// (kvc/backend/cpu/decode.hpp).
void decode(const decode_plan& plan, const paged_layer_view& view, attention::query_rows q,
            float* out, float* lse, const attention::attention_params& params,
            decode_workspace& workspace, parallel_for_ref parallel = default_parallel_for(),
            const cpu_options& options = {});

/// Extends as kvc::cpu::extend over the committed prefix with the step's new K/V
/// (kvc/backend/cpu/extend.hpp).
void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr, int q_heads,
            attention::query_rows q, const kv_input& new_k, const kv_input& new_v, float* out,
            float* lse, const attention::attention_params& params, extend_workspace& workspace,
            parallel_for_ref parallel = default_parallel_for(), const cpu_options& options = {});

/// Extends as kvc::cpu::extend over an open step's view, the new tokens read from the cache.
void extend(const paged_layer_view& step, std::span<const std::int32_t> qo_indptr, int q_heads,
            attention::query_rows q, float* out, float* lse,
            const attention::attention_params& params, extend_workspace& workspace,
            parallel_for_ref parallel = default_parallel_for(), const cpu_options& options = {});

/// Decodes with sized buffers: a buffer smaller than the plan's rows need is a cache_error
/// (shape_mismatch), as kvc::cpu::decode's span form.
inline void decode(const decode_plan& plan, const paged_layer_view& view, attention::query_rows q,
                   std::span<float> out, std::span<float> lse,
                   const attention::attention_params& params, decode_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  check_decode_sizes(plan, q, out.size(), lse.size(), "kvc::cpu::decode");
  decode(plan, view, q, out.data(), lse.data(), params, workspace, parallel, options);
}

/// Extends with sized buffers, as kvc::cpu::extend's span form.
inline void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr,
                   int q_heads, attention::query_rows q, const kv_input& new_k,
                   const kv_input& new_v, std::span<float> out, std::span<float> lse,
                   const attention::attention_params& params, extend_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  check_extend_sizes(prefix, qo_indptr, q_heads, q, out.size(), lse.size());
  extend(prefix, qo_indptr, q_heads, q, new_k, new_v, out.data(), lse.data(), params, workspace,
         parallel, options);
}

/// Extends over an open step's view (the step's extend()) with sized buffers.
inline void extend(const paged_layer_view& step, std::span<const std::int32_t> qo_indptr,
                   int q_heads, attention::query_rows q, std::span<float> out, std::span<float> lse,
                   const attention::attention_params& params, extend_workspace& workspace,
                   parallel_for_ref parallel = default_parallel_for(),
                   const cpu_options& options = {}) {
  check_extend_sizes(step, qo_indptr, q_heads, q, out.size(), lse.size());
  extend(step, qo_indptr, q_heads, q, out.data(), lse.data(), params, workspace, parallel, options);
}

}  // namespace kvc::cpu::compiled
