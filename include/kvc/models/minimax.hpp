#pragma once
// MiniMax M2.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/MiniMaxAI/MiniMax-M2/blob/main/config.json
// num_hidden_layers 62, num_attention_heads 48, num_key_value_heads 8, head_dim 128,
// attn_type_list all 1 (softmax attention on every layer), bfloat16
struct minimax_m2 : model<62, layer<gqa<48, 8>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
