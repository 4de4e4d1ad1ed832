#pragma once
// Mistral AI's Mistral 7B and Mixtral 8x7B.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json
// num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 8, hidden_size 4096,
// sliding_window 4096 on every layer, bfloat16
struct mistral_7b
    : model<32, layer<gqa<32, 8>, head_dim<128>, sliding_window<4096>, storage<bf16>>> {};

// https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
// num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 8, hidden_size 4096,
// sliding_window null (Mistral removed the window in discussion #19 of that repo), bfloat16
struct mixtral_8x7b : model<32, layer<gqa<32, 8>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
