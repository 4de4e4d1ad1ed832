#pragma once
// The layer shapes the decode tests of every backend share: each gallery family's (head
// counts scaled down) and a few that reach particular paths of the kernels. S is the
// storage policy; every_dtype_model (attention_check.hpp) makes one layer per dtype.

#include "kvc/model/layer.hpp"

namespace kvc::testing::shapes {

template <class S>
using gpt2_shape = layer<mha<4>, head_dim<64>, S>;
template <class S>
using llama_shape = layer<gqa<8, 2>, head_dim<128>, S>;
template <class S>
using qwen_shape = layer<gqa<7, 1>, head_dim<128>, S>;
template <class S>
using mistral_shape = layer<gqa<8, 2>, head_dim<128>, sliding_window<40>, S>;
template <class S>
using gemma2_shape =
    layer<gqa<4, 2>, head_dim<64>, sliding_window<24>, S, logit_softcap<50>, inv_sqrt_scale<144>>;
template <class S>
using gemma3_shape = layer<mqa<4>, head_dim<64>, sliding_window<20>, S, inv_sqrt_scale<256>>;
template <class S>
using llama4_shape = layer<gqa<5, 1>, head_dim<64>, chunked<24>, S>;
template <class S>
using streaming_shape = layer<gqa<4, 2>, head_dim<32>, streaming<4, 20>, S>;
template <class S>
using gpt_oss_shape = layer<gqa<8, 2>, head_dim<64>, sliding_window<32>, S, learned_sinks>;
template <class S>
using deepseek_shape = layer<mqa<16>, latent<64, 16>, S, inv_sqrt_scale<24>>;
// DeepSeek's latent: rank 512, RoPE 64 (models/deepseek.hpp), at any head count.
template <int Heads>
struct deepseek_latent {
  template <class S>
  using shape = layer<mqa<Heads>, latent<512, 64>, S, inv_sqrt_scale<192>>;
};
// Vectors of 20 and 12 values: the CPU's portable path; no 16-byte copies on the device.
template <class S>
using odd_dims_shape = layer<gqa<6, 3>, head_dim<20, 12>, S>;
template <class S>
using group6_shape = layer<gqa<12, 2>, head_dim<32>, S>;
template <class S>
using group8_shape = layer<gqa<16, 2>, head_dim<48>, S>;
// K and V of different dtypes, whatever the storage policy given.
template <class S>
using mixed_dtype_shape = layer<gqa<8, 2>, head_dim<64>, storage<int4, fp8_e4m3>>;

}  // namespace kvc::testing::shapes
