#pragma once
// The CPU kernels' unit of work along the sequence: a block of 16 key tokens, the one of the
// decode plan every backend shares (kvc/attention/decode_plan.hpp).

#include "kvc/attention/decode_plan.hpp"

namespace kvc::cpu {

inline constexpr int key_block = attention::key_block;

}  // namespace kvc::cpu
