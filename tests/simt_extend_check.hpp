#pragma once
// The tensor-core extend kernels (kernels/extend.hpp) in the SIMT emulator against the
// reference backend, for test_simt_extend.cpp: check_extend builds a cache of one layer,
// appends each sequence's prefix, opens a step of new tokens, writes them, runs the kernel
// over the step's view, commits, and compares every new row with the reference over the K/V
// the cache holds (read back after the commit), within the tensor cores' bounds
// (docs/attention.md): the query rows and the weights rounded to fp16 or bf16.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "attention_check.hpp"
#include "kvc/backend/simt/extend.hpp"
#include "kvc/kernels/decode_work.hpp"
#include "kvc/kernels/extend.hpp"

namespace kvc::testing::simt_extend {

struct extend_case {
  std::vector<std::int64_t> prefix;  ///< cached tokens of each sequence before the step
  std::vector<std::int64_t> fresh;   ///< its new tokens in the step
  std::uint32_t seed = 1;
  std::vector<float> sink_logits = {};
  float spread = 1.0f;                   ///< of the queries, keys and values (normal)
  float k_scale = 1.0f, v_scale = 1.0f;  ///< an fp8 layer's scales
};

/// Runs the case for a one-layer model of Spec (fp16 or bf16 storage) in pages of Paging;
/// returns the tiles the plan had.
template <class Spec, class Paging = paged<16>,
          class Block = kernels::extend_block<kernels::decode_shape_of<Spec, Paging>>>
std::size_t check_extend(const extend_case& c) {
  using cache_type = kv_cache<model<1, Spec>, Paging>;
  using shape = kernels::decode_shape_of<Spec, Paging>;
  constexpr int q_heads = Spec::q_heads, kv_heads = Spec::kv_heads, group = Spec::group_size;
  constexpr int k_dim = Spec::k_dim, v_dim = Spec::v_dim;
  constexpr bool latent = Spec::is_latent;
  const std::size_t batch = c.prefix.size();
  std::int64_t pages = 0, most_fresh = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    pages += (c.prefix[b] + c.fresh[b]) / Paging::page_tokens + 3;
    most_fresh = std::max(most_fresh, c.fresh[b]);
  }
  // A window layer keeps every key a step's first row sees with a reserve of the step's rows.
  cache_type cache(capacity_pages{pages, std::max<std::int64_t>(most_fresh, 1)});
  if constexpr (Spec::k_type::scale == scaling::per_layer ||
                Spec::v_type::scale == scaling::per_layer)
    cache.set_fp8_scales(0, c.k_scale, c.v_scale);
  std::mt19937 rng(c.seed);
  std::vector<sequence_id> ids;
  for (std::int64_t n : c.prefix) {
    ids.push_back(cache.add_sequence());
    if (n > 0) append_random(cache, ids.back(), n, rng, c.spread);
  }
  std::vector<std::int64_t> token_indptr{0};
  std::vector<append_request> requests;
  for (std::size_t b = 0; b < batch; ++b) {
    token_indptr.push_back(token_indptr.back() + c.fresh[b]);
    requests.push_back({ids[b], c.fresh[b]});
  }
  const std::int64_t rows = token_indptr.back();
  std::normal_distribution<float> normal(0.0f, c.spread);
  std::vector<float> q(static_cast<std::size_t>(rows) * q_heads * k_dim);
  std::vector<float> new_k(static_cast<std::size_t>(rows) * kv_heads * k_dim);
  std::vector<float> new_v(static_cast<std::size_t>(rows) * kv_heads * v_dim);
  for (auto* values : {&q, &new_k, &new_v})
    for (float& x : *values) x = normal(rng);

  append_plan plan = cache.plan_append(requests);
  const page_table_csr table = cache.step_table(plan, 0);
  cache.write(plan, 0, fp32_input(new_k.data(), rows, kv_heads, k_dim),
              latent ? kv_input{} : fp32_input(new_v.data(), rows, kv_heads, v_dim));
  const paged_layer_view view = cache.view(0, table);
  const auto params =
      attention::attention_params_of<Spec>(c.sink_logits.empty() ? nullptr : c.sink_logits.data());
  kernels::extend_plan extend_plan;
  simt::plan_extend<shape, Block>(view, token_indptr, q_heads, extend_plan);
  const float poison = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(static_cast<std::size_t>(rows) * q_heads * v_dim, poison),
      lse(static_cast<std::size_t>(rows) * q_heads, poison);
  simt::launch_options launch;
  if constexpr (kernels::detail::opts_into_warpgroup_extend<Block>)
    launch.target = simt::sm_90;  // wgmma is Hopper's, and so are the shared bytes it may take
  simt::extend<shape, Block>(extend_plan, view, token_indptr, q.data(), out.data(), lse.data(),
                             params, launch);
  cache.commit(plan);

  const window_shape window = Spec::window_value;
  std::vector<float> k_all(static_cast<std::size_t>(kv_heads) * k_dim),
      v_all(static_cast<std::size_t>(kv_heads) * (latent ? k_dim : v_dim));
  for (std::size_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < c.fresh[b]; ++t) {
      const std::int64_t position = c.prefix[b] + t;
      const auto row = static_cast<std::size_t>(token_indptr[b] + t);
      for (int h = 0; h < q_heads; ++h) {
        const int kv_head = h / group;
        std::vector<std::vector<float>> keys, values;
        for (std::int64_t p = 0; p <= position; ++p) {
          if (!window.visible(position, p)) continue;
          INFO("sequence " << b << " position " << p << " is not held");
          REQUIRE(cache.read(ids[b], 0, p, k_all.data(), v_all.data()));
          keys.emplace_back(k_all.begin() + kv_head * k_dim, k_all.begin() + (kv_head + 1) * k_dim);
          const int vd = latent ? k_dim : v_dim;
          values.emplace_back(v_all.begin() + kv_head * vd, v_all.begin() + kv_head * vd + v_dim);
        }
        const float* q_row = q.data() + (row * q_heads + static_cast<std::size_t>(h)) * k_dim;
        const double sink =
            c.sink_logits.empty() ? 0.0 : c.sink_logits[static_cast<std::size_t>(h)];
        const reference_result ref =
            reference_attend(q_row, k_dim, v_dim, keys, values, Spec::softmax_scale_value,
                             Spec::softcap::cap, c.sink_logits.empty() ? nullptr : &sink);
        const rounding_allowance allowance =
            tensor_core_allowance(q_row, k_dim, keys, Spec::softmax_scale_value, Spec::k_type::id,
                                  Spec::v_type::id, Spec::softcap::cap);
        INFO("sequence " << b << " (prefix " << c.prefix[b] << ", new " << c.fresh[b]
                         << ") new token " << t << " head " << h << ", " << extend_plan.tiles.size()
                         << " tiles");
        compare_with_reference(ref, values,
                               out.data() + (row * q_heads + static_cast<std::size_t>(h)) * v_dim,
                               lse[row * q_heads + static_cast<std::size_t>(h)], v_dim, allowance);
      }
    }
  return extend_plan.tiles.size();
}

/// Runs the case for Shape's fp16 and bf16 layers.
template <template <class> class Shape, class Paging>
void check_both_paged(const extend_case& c) {
  {
    INFO("fp16");
    check_extend<Shape<storage<fp16>>, Paging>(c);
  }
  {
    INFO("bf16");
    check_extend<Shape<storage<bf16>>, Paging>(c);
  }
}

template <template <class> class Shape>
void check_both(const extend_case& c) {
  check_both_paged<Shape, paged<16>>(c);
}

}  // namespace kvc::testing::simt_extend
