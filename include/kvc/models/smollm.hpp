#pragma once
// Hugging Face SmolLM3.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/HuggingFaceTB/SmolLM3-3B/blob/main/config.json
// num_hidden_layers 36, num_attention_heads 16, num_key_value_heads 4, hidden_size 2048,
// every layer full attention (every 4th has no RoPE, which does not change the cache), bfloat16
struct smollm3_3b : model<36, layer<gqa<16, 4>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
