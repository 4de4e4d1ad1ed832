#pragma once
// Zhipu AI (Z.ai) GLM-4.5.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/zai-org/GLM-4.5/blob/main/config.json
// num_hidden_layers 92, num_attention_heads 96, num_key_value_heads 8, head_dim 128, bfloat16
// (the num_nextn_predict_layers 1 MTP layer is not counted)
struct glm4_5 : model<92, layer<gqa<96, 8>, head_dim<128>, storage<bf16>>> {};

}  // namespace kvc::models
