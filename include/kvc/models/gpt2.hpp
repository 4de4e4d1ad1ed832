#pragma once
// GPT-2 (Radford et al., 2019): multi-head attention, head dim 64 (n_embd / n_head).
// The weights are published in fp32; the cache is kept in fp16, the 16-bit type GPT-2 is
// served in.

#include "kvc/model/model.hpp"

namespace kvc::models {

template <int Heads>
using gpt2_layer = layer<mha<Heads>, head_dim<64>, storage<fp16>>;

// https://huggingface.co/openai-community/gpt2/blob/main/config.json
// n_layer 12, n_head 12, n_embd 768
struct gpt2_small : model<12, gpt2_layer<12>> {};

// https://huggingface.co/openai-community/gpt2-medium/blob/main/config.json
// n_layer 24, n_head 16, n_embd 1024
struct gpt2_medium : model<24, gpt2_layer<16>> {};

// https://huggingface.co/openai-community/gpt2-large/blob/main/config.json
// n_layer 36, n_head 20, n_embd 1280
struct gpt2_large : model<36, gpt2_layer<20>> {};

// https://huggingface.co/openai-community/gpt2-xl/blob/main/config.json
// n_layer 48, n_head 25, n_embd 1600
struct gpt2_xl : model<48, gpt2_layer<25>> {};

}  // namespace kvc::models
