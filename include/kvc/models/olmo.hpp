#pragma once
// AI2 OLMo 2.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/allenai/OLMo-2-1124-7B/blob/main/config.json
// num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 32, hidden_size 4096.
// Published in float32; the cache is kept in bfloat16, the type it was trained in.
struct olmo2_7b : model<32, layer<mha<32>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
