#pragma once
// The miniature decoders of the end-to-end tests (test_end_to_end.cpp on the CPU backend,
// test_device_end_to_end.cpp on the emulated CUDA device): random weights, d_model 32, a
// vocabulary of 48; per layer q, k, v projections, attention, an output projection and a tanh
// MLP on the residual. logits_without_cache is the reference: one pass over the whole history
// without a cache, attention in double precision.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/model.hpp"
#include "reference/reference_attention.hpp"

namespace kvc::testing::miniature {

inline constexpr int d_model = 32, vocab = 48;

// The stated bounds (docs/attention.md), relative to the largest logit. Measured on the CPU
// backend when written (test_end_to_end.cpp, 259 positions): fp32 2e-6 to 8e-6; bf16 0.002
// (2-3 layers) to 0.054 (6 layers); fp8 e4m3 0.026; int8 0.038.
inline constexpr double bound_fp32 = 1e-4, bound_8_or_16_bit = 0.1;

template <class Model>
std::vector<attention::attention_params> layer_params(
    const std::vector<std::vector<float>>& sinks) {
  std::vector<attention::attention_params> params;
  [&]<class... Layers>(type_list<Layers...>) {
    (params.push_back(
         attention::attention_params_of<typename Layers::attention>(sinks[params.size()].data())),
     ...);
  }(typename Model::layer_list{});
  return params;
}

template <class Model>
struct decoder {
  static constexpr int layers = Model::num_layers;
  struct weights {
    std::vector<float> wq, wk, wv, wo, w1;
  };
  std::vector<float> embed, unembed;
  std::vector<weights> w;
  std::vector<std::vector<float>> sinks;
  std::vector<attention::attention_params> params;

  explicit decoder(std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    const auto random = [&](std::size_t n, float sd) {
      std::vector<float> v(n);
      for (float& x : v) x = normal(rng) * sd;
      return v;
    };
    embed = random(static_cast<std::size_t>(vocab * d_model), 1.0f);
    unembed = random(static_cast<std::size_t>(d_model * vocab), 0.3f);
    for (int l = 0; l < layers; ++l) {
      const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
      const float in = 1.0f / std::sqrt(static_cast<float>(d_model));
      w.push_back({random(static_cast<std::size_t>(d_model * s.q_heads * s.k_dim), in * 2),
                   random(static_cast<std::size_t>(d_model * s.kv_heads * s.k_dim), in * 2),
                   random(static_cast<std::size_t>(d_model * s.kv_heads * s.v_dim), in),
                   random(static_cast<std::size_t>(s.q_heads * s.v_dim * d_model),
                          0.5f / std::sqrt(static_cast<float>(s.q_heads * s.v_dim))),
                   random(static_cast<std::size_t>(d_model * d_model), in)});
      sinks.push_back(random(static_cast<std::size_t>(s.q_heads), 1.0f));
    }
    params = layer_params<Model>(sinks);
  }

  static void project(const float* x, const std::vector<float>& m, int out, float* y) {
    for (int j = 0; j < out; ++j) {
      float sum = 0;
      for (int i = 0; i < d_model; ++i) sum += x[i] * m[static_cast<std::size_t>(i * out + j)];
      y[j] = sum;
    }
  }

  // q, k and v of n rows of x for layer l (no v for a latent layer).
  void project_qkv(int l, const float* x, int n, float* q, float* k, float* v) const {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
    const weights& lw = w[static_cast<std::size_t>(l)];
    for (int t = 0; t < n; ++t) {
      project(x + t * d_model, lw.wq, s.q_heads * s.k_dim, q + t * s.q_heads * s.k_dim);
      project(x + t * d_model, lw.wk, s.kv_heads * s.k_dim, k + t * s.kv_heads * s.k_dim);
      if (!s.latent)
        project(x + t * d_model, lw.wv, s.kv_heads * s.v_dim, v + t * s.kv_heads * s.v_dim);
    }
  }

  // The residual update after attention: x += o Wo, then x += tanh(x W1).
  void finish_layer(int l, const float* o, float* x) const {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
    const int width = s.q_heads * s.v_dim;
    for (int j = 0; j < d_model; ++j) {
      double sum = 0;
      for (int i = 0; i < width; ++i)
        sum += static_cast<double>(o[i]) *
               w[static_cast<std::size_t>(l)].wo[static_cast<std::size_t>(i * d_model + j)];
      x[j] += static_cast<float>(sum);
    }
    std::vector<float> h(d_model);
    project(x, w[static_cast<std::size_t>(l)].w1, d_model, h.data());
    for (int j = 0; j < d_model; ++j) x[j] += std::tanh(h[static_cast<std::size_t>(j)]);
  }

  std::vector<float> logits_of(const float* x) const {
    std::vector<float> logits(vocab);
    for (int v = 0; v < vocab; ++v) {
      float sum = 0;
      for (int i = 0; i < d_model; ++i)
        sum += x[i] * unembed[static_cast<std::size_t>(i * vocab + v)];
      logits[static_cast<std::size_t>(v)] = sum;
    }
    return logits;
  }
};

// One pass over the whole history, no cache, attention in double precision.
template <class Model>
std::vector<std::vector<float>> logits_without_cache(const decoder<Model>& dec,
                                                     const std::vector<int>& tokens) {
  const int n = static_cast<int>(tokens.size());
  std::vector<float> x(static_cast<std::size_t>(n * d_model));
  for (int t = 0; t < n; ++t)
    std::copy_n(dec.embed.begin() + tokens[static_cast<std::size_t>(t)] * d_model, d_model,
                x.begin() + t * d_model);
  for (int l = 0; l < Model::num_layers; ++l) {
    const layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
    const int group = s.q_heads / s.kv_heads;
    std::vector<float> q(static_cast<std::size_t>(n * s.q_heads * s.k_dim)),
        k(static_cast<std::size_t>(n * s.kv_heads * s.k_dim)),
        v(static_cast<std::size_t>(n * s.kv_heads * s.v_dim)),
        o(static_cast<std::size_t>(s.q_heads * s.v_dim));
    dec.project_qkv(l, x.data(), n, q.data(), k.data(), v.data());
    std::vector<float> next = x;
    const attention::attention_params& p = dec.params[static_cast<std::size_t>(l)];
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < s.q_heads; ++h) {
        std::vector<std::vector<float>> keys, values;
        const int kv = h / group;
        for (int j = 0; j <= t; ++j) {
          if (!s.window.visible(t, j)) continue;
          const float* kj = k.data() + (j * s.kv_heads + kv) * s.k_dim;
          keys.emplace_back(kj, kj + s.k_dim);
          const float* vj = s.latent ? kj : v.data() + (j * s.kv_heads + kv) * s.v_dim;
          values.emplace_back(vj, vj + s.v_dim);
        }
        const double sink = p.sink_logits != nullptr ? p.sink_logits[h] : 0.0;
        const auto r = reference_attend(q.data() + (t * s.q_heads + h) * s.k_dim, s.k_dim, s.v_dim,
                                        keys, values, p.scale, p.softcap,
                                        p.sink_logits != nullptr ? &sink : nullptr);
        for (int d = 0; d < s.v_dim; ++d)
          o[static_cast<std::size_t>(h * s.v_dim + d)] =
              static_cast<float>(r.out[static_cast<std::size_t>(d)]);
      }
      dec.finish_layer(l, o.data(), next.data() + t * d_model);
    }
    x = next;
  }
  std::vector<std::vector<float>> logits;
  for (int t = 0; t < n; ++t) logits.push_back(dec.logits_of(x.data() + t * d_model));
  return logits;
}

// Greedy generation: the prompt (`tokens`) read in one step, then a token a step until there
// are `total`; run_step(x, n) runs every layer over the step's n rows of x ([n][d_model], in
// place). Returns the tokens and the logits of every position read (the last generated token is
// not read back).
template <class Model, class RunStep>
std::pair<std::vector<int>, std::vector<std::vector<float>>> generate(const decoder<Model>& dec,
                                                                      std::vector<int> tokens,
                                                                      int total,
                                                                      RunStep&& run_step) {
  const auto prompt = static_cast<int>(tokens.size());
  std::vector<std::vector<float>> logits;
  for (std::size_t first = 0; first < static_cast<std::size_t>(total - 1);) {
    const int n = first == 0 ? prompt : 1;
    std::vector<float> x(static_cast<std::size_t>(n * d_model));
    for (int t = 0; t < n; ++t)
      std::copy_n(dec.embed.begin() + tokens[first + static_cast<std::size_t>(t)] * d_model,
                  d_model, x.begin() + t * d_model);
    run_step(x, n);
    first += static_cast<std::size_t>(n);
    for (int t = 0; t < n; ++t) logits.push_back(dec.logits_of(x.data() + t * d_model));
    const auto& last_logits = logits.back();
    if (tokens.size() < static_cast<std::size_t>(total))
      tokens.push_back(static_cast<int>(std::max_element(last_logits.begin(), last_logits.end()) -
                                        last_logits.begin()));
  }
  return {tokens, logits};
}

// The largest logit difference over every position, relative to the largest logit magnitude.
inline double relative_difference(const std::vector<std::vector<float>>& got,
                                  const std::vector<std::vector<float>>& reference) {
  double worst = 0, scale = 0;
  for (std::size_t t = 0; t < got.size(); ++t)
    for (std::size_t v = 0; v < got[t].size(); ++v) {
      worst = std::max(worst, std::fabs(static_cast<double>(got[t][v]) - reference[t][v]));
      scale = std::max(scale, std::fabs(static_cast<double>(reference[t][v])));
    }
  return worst / scale;
}

// The families' miniatures (test_end_to_end.cpp adds a DeepSeek-like one of a small latent,
// test_device_end_to_end.cpp one of DeepSeek's real 512 + 64).
template <class S>
using llama_layer = layer<gqa<4, 2>, head_dim<16>, S>;
template <class S>
struct llama_like : model<3, llama_layer<S>> {};
template <class S>
using gemma_local = layer<gqa<4, 2>, head_dim<16>, sliding_window<16>, S, logit_softcap<50>>;
template <class S>
using gemma_global = layer<gqa<4, 2>, head_dim<16>, S, logit_softcap<50>>;
template <class S>
struct gemma_like : model<6, pattern<gemma_local<S>, gemma_local<S>, gemma_local<S>, gemma_local<S>,
                                     gemma_local<S>, gemma_global<S>>> {};
template <class S>
using oss_local = layer<gqa<4, 2>, head_dim<16>, sliding_window<12>, S, learned_sinks>;
template <class S>
using oss_global = layer<gqa<4, 2>, head_dim<16>, S, learned_sinks>;
template <class S>
struct gpt_oss_like : model<4, pattern<oss_local<S>, oss_global<S>>> {};

}  // namespace kvc::testing::miniature
