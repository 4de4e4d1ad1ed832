#pragma once
// The decode plan and workspace of the CPU: those of every backend (kvc/attention/
// decode_plan.hpp), under kvc::cpu. Light on purpose: an engine's translation units that call
// decode through kvc/backend/cpu/compiled.hpp include this and not the kernels.

#include "kvc/attention/buffer_sizes.hpp"
#include "kvc/attention/decode_plan.hpp"
#include "kvc/backend/cpu/key_block.hpp"

namespace kvc::cpu {

using attention::check_decode_pointers;
using attention::check_decode_sizes;
using attention::check_extend_sizes;
using attention::check_layer_query_heads;
using attention::check_plan;
using attention::check_query_heads;
using attention::check_query_rows;
using attention::decode_plan;
using attention::decode_workspace;
using attention::plan_decode;
using attention::query_rows;

}  // namespace kvc::cpu
