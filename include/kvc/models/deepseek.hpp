#pragma once
// Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434): each layer caches one
// vector of kv_lora_rank 512 + qk_rope_head_dim 64 per token, shared by all heads, as vLLM,
// SGLang and FlashMLA do. Logits are scaled by 1 / sqrt(qk_nope_head_dim 128 + qk_rope_head_dim
// 64); the YaRN mscale correction of long-context checkpoints is the engine's to apply.
// The multi-token-prediction layers are not counted.

#include "kvc/model/model.hpp"

namespace kvc::models {

template <int Heads>
using mla_layer = layer<mqa<Heads>, latent<512, 64>, storage<bf16>, inv_sqrt_scale<192>>;

// https://huggingface.co/deepseek-ai/DeepSeek-V2/blob/main/config.json
// num_hidden_layers 60, num_attention_heads 128, kv_lora_rank 512, qk_rope_head_dim 64, bfloat16
struct deepseek_v2 : model<60, mla_layer<128>> {};

// https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
// num_hidden_layers 27, num_attention_heads 16, kv_lora_rank 512, qk_rope_head_dim 64, bfloat16
struct deepseek_v2_lite : model<27, mla_layer<16>> {};

// https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json
// num_hidden_layers 61, num_attention_heads 128, kv_lora_rank 512, qk_rope_head_dim 64, bfloat16
struct deepseek_v3 : model<61, mla_layer<128>> {};

// https://huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/config.json
// num_hidden_layers 61, num_attention_heads 64, kv_lora_rank 512, qk_rope_head_dim 64, bfloat16
struct kimi_k2 : model<61, mla_layer<64>> {};

}  // namespace kvc::models
