#pragma once
// Microsoft Phi-4.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/microsoft/phi-4/blob/main/config.json
// num_hidden_layers 40, num_attention_heads 40, num_key_value_heads 10, hidden_size 5120,
// sliding_window null, bfloat16
struct phi4 : model<40, layer<gqa<40, 10>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
