#pragma once
// Meta's Llama 2, 3 and 4. Head dim 128 throughout.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
// num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 32, hidden_size 4096, float16
struct llama2_7b : model<32, layer<mha<32>, head_dim<128>, storage<fp16>>> {};

// https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json
// num_hidden_layers 80, num_attention_heads 64, num_key_value_heads 8, hidden_size 8192, float16
struct llama2_70b : model<80, layer<gqa<64, 8>, head_dim<128>, storage<fp16>>> {};

// https://huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
// num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 8, hidden_size 4096, bfloat16
struct llama3_8b : model<32, layer<gqa<32, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/meta-llama/Meta-Llama-3-70B/blob/main/config.json
// num_hidden_layers 80, num_attention_heads 64, num_key_value_heads 8, hidden_size 8192, bfloat16
struct llama3_70b : model<80, layer<gqa<64, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
// num_hidden_layers 126, num_attention_heads 128, num_key_value_heads 8 (the first upload said
// 16, duplicated heads; Meta's later revision and the paper say 8), hidden_size 16384, bfloat16
struct llama3_405b : model<126, layer<gqa<128, 8>, head_dim<128>, storage<bf16>>> {};

// https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E/blob/main/config.json (text_config)
// num_hidden_layers 48, num_attention_heads 40, num_key_value_heads 8, head_dim 128, bfloat16,
// attention_chunk_size 8192. Every 4th layer (3, 7, ..., 47) is a global NoPE layer; the
// others attend within their chunk (transformers Llama4TextConfig: no_rope_layer_interval 4).
using llama4_chunked = layer<gqa<40, 8>, head_dim<128>, chunked<8192>, storage<bf16>>;
using llama4_global = layer<gqa<40, 8>, head_dim<128>, storage<bf16>>;
struct llama4_scout
    : model<48, pattern<llama4_chunked, llama4_chunked, llama4_chunked, llama4_global>> {};

}  // namespace kvc::models
