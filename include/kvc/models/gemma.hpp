#pragma once
// Google's Gemma 2, Gemma 3 and Gemma 3n: local sliding-window layers interleaved with
// global ones. Layer 0 is local in all of them. Gemma 2 and 3 scale logits by
// 1 / sqrt(query_pre_attn_scalar); Gemma 2 soft-caps them at 50.

#include "kvc/model/model.hpp"

namespace kvc::models {

// https://huggingface.co/google/gemma-2-9b/blob/main/config.json
// num_hidden_layers 42, num_attention_heads 16, num_key_value_heads 8, head_dim 256,
// sliding_window 4096 on even layers, attn_logit_softcapping 50.0, query_pre_attn_scalar 256.
// Published in float32; Gemma is trained and served in bfloat16.
template <class Window>
using gemma2_9b_layer =
    layer<gqa<16, 8>, head_dim<256>, Window, storage<bf16>, logit_softcap<50>, inv_sqrt_scale<256>>;
struct gemma2_9b
    : model<42, pattern<gemma2_9b_layer<sliding_window<4096>>, gemma2_9b_layer<full_attention>>> {};

// https://huggingface.co/google/gemma-2-27b/blob/main/config.json
// num_hidden_layers 46, num_attention_heads 32, num_key_value_heads 16, head_dim 128,
// sliding_window 4096 on even layers, attn_logit_softcapping 50.0, query_pre_attn_scalar 144.
template <class Window>
using gemma2_27b_layer = layer<gqa<32, 16>, head_dim<128>, Window, storage<bf16>, logit_softcap<50>,
                               inv_sqrt_scale<144>>;
struct gemma2_27b
    : model<46, pattern<gemma2_27b_layer<sliding_window<4096>>, gemma2_27b_layer<full_attention>>> {
};

// Gemma 3: five local layers, then one global (layer_types: full when (i + 1) % 6 == 0).
template <class Local, class Global>
using gemma3_pattern = pattern<Local, Local, Local, Local, Local, Global>;
template <class Heads, int HeadDim, int Window, int QueryPreAttnScalar>
using gemma3 = gemma3_pattern<
    layer<Heads, head_dim<HeadDim>, sliding_window<Window>, storage<bf16>,
          inv_sqrt_scale<QueryPreAttnScalar>>,
    layer<Heads, head_dim<HeadDim>, storage<bf16>, inv_sqrt_scale<QueryPreAttnScalar>>>;

// https://huggingface.co/google/gemma-3-1b-pt/blob/main/config.json
// num_hidden_layers 26, num_attention_heads 4, num_key_value_heads 1, head_dim 256,
// sliding_window 512, sliding_window_pattern 6, query_pre_attn_scalar 256, bfloat16
struct gemma3_1b : model<26, gemma3<mqa<4>, 256, 512, 256>> {};

// https://huggingface.co/google/gemma-3-4b-pt/blob/main/config.json (text_config)
// num_hidden_layers 34, num_attention_heads 8, num_key_value_heads 4, head_dim 256,
// sliding_window 1024, query_pre_attn_scalar 256, bfloat16
struct gemma3_4b : model<34, gemma3<gqa<8, 4>, 256, 1024, 256>> {};

// https://huggingface.co/google/gemma-3-12b-pt/blob/main/config.json (text_config)
// num_hidden_layers 48, num_attention_heads 16, num_key_value_heads 8, head_dim 256,
// sliding_window 1024, query_pre_attn_scalar 256, bfloat16
struct gemma3_12b : model<48, gemma3<gqa<16, 8>, 256, 1024, 256>> {};

// https://huggingface.co/google/gemma-3-27b-pt/blob/main/config.json (text_config)
// num_hidden_layers 62, num_attention_heads 32, num_key_value_heads 16, head_dim 128,
// sliding_window 1024, query_pre_attn_scalar 168, bfloat16. 62 = 10 * 6 + 2: the last two
// layers are local.
struct gemma3_27b : model<62, gemma3<gqa<32, 16>, 128, 1024, 168>> {};

// https://huggingface.co/google/gemma-3n-E2B/blob/main/config.json (text_config)
// num_hidden_layers 30, num_attention_heads 8, num_key_value_heads 2, head_dim 256,
// sliding_window 512, layer_types: full when i % 5 == 4, num_kv_shared_layers 10, bfloat16.
// QK-norm, so the logits are not scaled (scale 1). Layers 20-29 compute no K/V: each reads
// the last earlier layer of its type (transformers modeling_gemma3n.py,
// Gemma3nTextAttention: kv_shared_layer_index), i.e. layer 18 (local) or 19 (global).
using gemma3n_local =
    layer<gqa<8, 2>, head_dim<256>, sliding_window<512>, storage<bf16>, softmax_scale<1>>;
using gemma3n_global = layer<gqa<8, 2>, head_dim<256>, storage<bf16>, softmax_scale<1>>;
struct gemma3n_e2b
    : stack<repeat<20, pattern<gemma3n_local, gemma3n_local, gemma3n_local, gemma3n_local,
                               gemma3n_global>>,
            repeat<10, pattern<kv_shared<18, gemma3n_local>, kv_shared<18, gemma3n_local>,
                               kv_shared<18, gemma3n_local>, kv_shared<18, gemma3n_local>,
                               kv_shared<19, gemma3n_global>>>> {};

}  // namespace kvc::models
