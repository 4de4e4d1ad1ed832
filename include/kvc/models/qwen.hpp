#pragma once
// Alibaba's Qwen 2.5, Qwen 3 and Qwen3-Next. Head dim 128 unless said otherwise; always
// the config's explicit head_dim (hidden_size / heads is wrong for Qwen3-32B and -235B).

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json
// num_hidden_layers 28, num_attention_heads 28, num_key_value_heads 4, hidden_size 3584,
// use_sliding_window false (the sliding_window value in the file is inert), bfloat16
struct qwen2_5_7b : model<28, layer<gqa<28, 4>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/config.json
// num_hidden_layers 80, num_attention_heads 64, num_key_value_heads 8, hidden_size 8192, bfloat16
struct qwen2_5_72b : model<80, layer<gqa<64, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
// num_hidden_layers 36, num_attention_heads 32, num_key_value_heads 8, head_dim 128, bfloat16
struct qwen3_8b : model<36, layer<gqa<32, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/Qwen/Qwen3-32B/blob/main/config.json
// num_hidden_layers 64, num_attention_heads 64, num_key_value_heads 8, head_dim 128, bfloat16
struct qwen3_32b : model<64, layer<gqa<64, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json
// num_hidden_layers 94, num_attention_heads 64, num_key_value_heads 4, head_dim 128, bfloat16
struct qwen3_235b_a22b : model<94, layer<gqa<64, 4>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json
// num_hidden_layers 48, full_attention_interval 4: three Gated DeltaNet layers, then one
// full-attention layer (num_attention_heads 16, num_key_value_heads 2, head_dim 256), bfloat16.
// Gated DeltaNet state per sequence, as vLLM caches it (mamba_utils.py, gated_delta_net state
// shapes, model dtype by default): a recurrent state of linear_num_value_heads 32 x
// linear_value_head_dim 128 x linear_key_head_dim 128, and a convolution state of
// (linear_conv_kernel_dim 4 - 1) x conv_dim 8192 (= 2 * 16 key heads * 128 + 32 value heads * 128).
using qwen3_next_linear = recurrent_state<32 * 128 * 128 + 3 * 8192, bf16>;
using qwen3_next_full = layer<gqa<16, 2>, head_dim<256>, storage<bf16>>;
struct qwen3_next_80b_a3b
    : model<48, pattern<qwen3_next_linear, qwen3_next_linear, qwen3_next_linear, qwen3_next_full>> {
};

}  // namespace kvc::models
