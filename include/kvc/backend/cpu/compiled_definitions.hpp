#pragma once
// The definitions of kvc/backend/cpu/compiled.hpp: include this in exactly one translation
// unit of a program (a second one is a duplicate-symbol link error). That unit compiles
// every decode and extend kernel once; the program's other units include compiled.hpp.

#include <cstdint>
#include <span>

#include "kvc/backend/cpu/compiled.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"

namespace kvc::cpu::compiled {

void decode(const decode_plan& plan, const paged_layer_view& view, attention::query_rows q,
            float* out, float* lse, const attention::attention_params& params,
            decode_workspace& workspace, parallel_for_ref parallel, const cpu_options& options) {
  cpu::decode(plan, view, q, out, lse, params, workspace, parallel, options);
}

void extend(const paged_layer_view& prefix, std::span<const std::int32_t> qo_indptr, int q_heads,
            attention::query_rows q, const kv_input& new_k, const kv_input& new_v, float* out,
            float* lse, const attention::attention_params& params, extend_workspace& workspace,
            parallel_for_ref parallel, const cpu_options& options) {
  cpu::extend(prefix, qo_indptr, q_heads, q, new_k, new_v, out, lse, params, workspace, parallel,
              options);
}

void extend(const paged_layer_view& step, std::span<const std::int32_t> qo_indptr, int q_heads,
            attention::query_rows q, float* out, float* lse,
            const attention::attention_params& params, extend_workspace& workspace,
            parallel_for_ref parallel, const cpu_options& options) {
  cpu::extend(step, qo_indptr, q_heads, q, out, lse, params, workspace, parallel, options);
}

}  // namespace kvc::cpu::compiled
