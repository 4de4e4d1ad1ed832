#pragma once
// OpenAI's gpt-oss: sliding (128 tokens) and full layers alternate, starting with sliding;
// every head has a learned sink logit (a weight, no cache).

#include "kvc/model/model.hpp"

namespace kvc::models {

template <class Window>
using gpt_oss_layer = layer<gqa<64, 8>, head_dim<64>, Window, storage<bf16>, learned_sinks>;
using gpt_oss_pattern = pattern<gpt_oss_layer<sliding_window<128>>, gpt_oss_layer<full_attention>>;

// https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json
// num_hidden_layers 24, num_attention_heads 64, num_key_value_heads 8, head_dim 64,
// sliding_window 128, layer_types alternating from "sliding_attention", bfloat16
struct gpt_oss_20b : model<24, gpt_oss_pattern> {};

// https://huggingface.co/openai/gpt-oss-120b/blob/main/config.json
// num_hidden_layers 36, otherwise as gpt-oss-20b
struct gpt_oss_120b : model<36, gpt_oss_pattern> {};

}  // namespace kvc::models
