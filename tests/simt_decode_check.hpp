#pragma once
// The decode kernels in the SIMT emulator against the reference backend, for
// test_simt_decode*.cpp: check_decode runs a batch through every storage dtype of a layer
// shape and compares every row with the reference, within the CPU's bounds
// (tests/attention_check.hpp: fp32 arithmetic on the stored values).

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention_check.hpp"
#include "attention_shapes.hpp"
#include "kvc/backend/simt/decode.hpp"
#include "kvc/kernels/decode.hpp"

namespace kvc::testing::simt_decode {

using namespace kvc::testing::shapes;

using dtypes = std::tuple<fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, int4>;

template <class F, std::size_t... I>
void for_each_dtype(F&& f, std::index_sequence<I...>) {
  (f.template operator()<static_cast<int>(I), std::tuple_element_t<I, dtypes>>(), ...);
}
template <class F>
void for_each_dtype(F&& f) {
  for_each_dtype(f, std::make_index_sequence<dtype_layers>{});
}

// What check_decode varies besides the shape. Dtypes: the storage dtypes whose layers it
// checks, as types, since each is a kernel to compile (none named: all seven).
template <class... Dtypes>
struct decode_options {
  std::vector<float> sink_logits = {};
  float q_spread = 1.0f;
  int min_split_tokens = 256;
  int workers = 2;                       ///< plan_decode's threads: about 4 items a worker
  float k_scale = 1.0f, v_scale = 1.0f;  ///< the fp8 layers' scales
  float kv_spread = 1.0f;                ///< of the keys and values (normal)
};

template <class T, class... Dtypes>
constexpr bool checks_dtype = sizeof...(Dtypes) == 0 || (std::is_same_v<T, Dtypes> || ...);
template <class T, class Tuple>
constexpr bool is_layer_dtype = false;
template <class T, class... Ts>
constexpr bool is_layer_dtype<T, std::tuple<Ts...>> = (std::is_same_v<T, Ts> || ...);

// Decodes the layers of a cache holding `lengths` with the kernels in the emulator and checks
// each row against the reference; returns how many items the plans had.
template <template <class> class Shape, class Paging = paged<16>,
          class Block = kernels::block_shape<64>, class... Dtypes>
std::size_t check_decode(const std::vector<std::int64_t>& lengths, std::uint32_t seed,
                         const decode_options<Dtypes...>& options = {}) {
  static_assert((is_layer_dtype<Dtypes, dtypes> && ...),
                "decode_options names a type that is not one of the seven storage dtypes");
  using model = every_dtype_model<Shape>;
  using cache_type = kv_cache<model, Paging>;
  using spec = Shape<storage<fp32>>;
  constexpr int q_heads = spec::q_heads, kv_heads = spec::kv_heads, group = spec::group_size;
  constexpr int k_dim = spec::k_dim, v_dim = spec::v_dim;
  std::int64_t pages = 0;
  for (std::int64_t n : lengths) pages += n / Paging::page_tokens + 2;
  cache_type cache(capacity_pages{pages});
  for (int l = 3; l <= 4; ++l) cache.set_fp8_scales(l, options.k_scale, options.v_scale);
  std::mt19937 rng(seed);
  std::vector<sequence_id> ids;
  for (std::int64_t n : lengths) {
    ids.push_back(cache.add_sequence());
    if (n > 0) append_random(cache, ids.back(), n, rng, options.kv_spread);
  }
  std::normal_distribution<float> normal(0.0f, options.q_spread);
  std::vector<float> q(lengths.size() * q_heads * k_dim);
  for (float& x : q) x = normal(rng);
  const attention::attention_params params = attention::attention_params_of<spec>(
      options.sink_logits.empty() ? nullptr : options.sink_logits.data());
  std::size_t items = 0;
  for_each_dtype([&]<int L, class T>() {
    if constexpr (checks_dtype<T, Dtypes...>) {
      using layer_spec = Shape<storage<T>>;
      using shape = kernels::decode_shape_of<layer_spec, Paging>;
      const page_table_csr table = cache.page_table(L, ids);
      const paged_layer_view view = cache.view(L, table);
      const attention::decode_plan plan =
          attention::plan_decode(view, q_heads, options.workers, options.min_split_tokens);
      items = std::max(items, plan.items.size());
      attention::decode_workspace workspace;
      const float poison = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> out(lengths.size() * q_heads * v_dim, poison),
          lse(lengths.size() * q_heads, poison);
      simt::launch_options launch;
      if constexpr (kernels::decode_path_of<shape, Block> == kernels::decode_path::warpgroups)
        launch.target = simt::sm_90;  // its three tiles of latents fit Hopper's shared memory
      simt::decode<shape, Block>(plan, view, q.data(), out.data(), lse.data(), params, workspace,
                                 launch);
      std::vector<std::vector<float>> keys, values;
      for (std::size_t b = 0; b < lengths.size(); ++b) {
        for (int h = 0; h < q_heads; ++h) {
          visible_kv(cache, ids[b], L, h / group, lengths[b] - 1, spec::window_value, kv_heads,
                     k_dim, spec::is_latent ? k_dim : v_dim, keys, values);
          if (spec::is_latent)
            for (auto& v : values) v.resize(v_dim);  // V: the first `rank` dims of the latent
          const double sink =
              options.sink_logits.empty() ? 0.0 : options.sink_logits[static_cast<std::size_t>(h)];
          const float* q_row = q.data() + (b * q_heads + static_cast<std::size_t>(h)) * k_dim;
          const reference_result ref =
              reference_attend(q_row, k_dim, v_dim, keys, values, spec::softmax_scale_value,
                               spec::softcap::cap, options.sink_logits.empty() ? nullptr : &sink);
          INFO("layer " << L << " (" << dtype_name(T::id) << ") sequence " << b << " of length "
                        << lengths[b] << " head " << h << ", " << plan.items.size() << " items");
          // The tensor-core kernel rounds the query and the weights to 16 bits.
          const rounding_allowance allowance =
              kernels::decode_path_of<shape, Block> == kernels::decode_path::tensor_cores ||
                      kernels::decode_path_of<shape, Block> == kernels::decode_path::warpgroups
                  ? tensor_core_allowance(q_row, k_dim, keys, spec::softmax_scale_value,
                                          layer_spec::k_type::id, layer_spec::v_type::id,
                                          spec::softcap::cap)
                  : rounding_allowance{};
          compare_with_reference(ref, values,
                                 out.data() + (b * q_heads + static_cast<std::size_t>(h)) * v_dim,
                                 lse[b * q_heads + static_cast<std::size_t>(h)], v_dim, allowance);
        }
      }
    }
  });
  return items;
}

// 24 rows of 192 values: 3 values a thread of a 64-thread block, at most 21 rows a block,
// so two row chunks of 12 rows.
template <class S>
using row_chunks_shape = layer<mqa<24>, head_dim<32, 192>, S>;

}  // namespace kvc::testing::simt_decode
