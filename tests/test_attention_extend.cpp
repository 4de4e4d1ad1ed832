// CPU prefill/extend against the reference: new tokens attend causally to themselves and to
// the cached prefix, for every gallery family's shape and every storage dtype of the prefix,
// with windows that start inside the prefix or inside the new tokens, empty prefixes, sinks,
// soft-caps and MLA; and a decode step equals an extend by one token.

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "attention_check.hpp"
#include "error_code.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/numeric/half.hpp"

using namespace kvc;
using namespace kvc::testing;

namespace {

// prefix[b] cached tokens, then fresh[b] new ones, for every layer of an every-dtype cache.
template <template <class> class Shape, class Paging = paged<16>>
void check_extend(const std::vector<std::int64_t>& prefix, const std::vector<std::int32_t>& fresh,
                  std::uint32_t seed, const std::vector<float>& sink_logits = {},
                  dtype_id input_type = dtype_id::fp32) {
  using model = every_dtype_model<Shape>;
  using spec = Shape<storage<fp32>>;
  constexpr int q_heads = spec::q_heads, kv_heads = spec::kv_heads, group = spec::group_size;
  constexpr int k_dim = spec::k_dim, v_dim = spec::v_dim;
  constexpr bool latent = spec::is_latent;
  std::int64_t pages = 0;
  for (std::int64_t n : prefix) pages += n / Paging::page_tokens + 2;
  kv_cache<model, Paging> cache(capacity_pages{pages});
  std::mt19937 rng(seed);
  std::vector<sequence_id> ids;
  for (std::int64_t n : prefix) {
    ids.push_back(cache.add_sequence());
    if (n > 0) append_random(cache, ids.back(), n, rng);
  }
  std::vector<std::int32_t> qo_indptr{0};
  for (std::int32_t n : fresh) qo_indptr.push_back(qo_indptr.back() + n);
  const std::int32_t rows = qo_indptr.back();
  std::normal_distribution<float> normal;
  std::vector<float> q(static_cast<std::size_t>(rows) * q_heads * k_dim);
  std::vector<float> new_k(static_cast<std::size_t>(rows) * kv_heads * k_dim);
  std::vector<float> new_v(static_cast<std::size_t>(rows) * kv_heads * v_dim);
  for (auto* v : {&q, &new_k, &new_v})
    for (float& x : *v) x = normal(rng);
  // 16-bit inputs: the reference sees the values rounded as the kernel reads them.
  std::vector<std::uint16_t> k_bits(new_k.size()), v_bits(new_v.size());
  const auto round_to_input = [&](std::vector<float>& values, std::vector<std::uint16_t>& bits) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      bits[i] = input_type == dtype_id::fp16 ? numeric::fp16_from_float(values[i])
                                             : numeric::bf16_from_float(values[i]);
      values[i] = input_type == dtype_id::fp16 ? numeric::fp16_to_float(bits[i])
                                               : numeric::bf16_to_float(bits[i]);
    }
  };
  if (input_type != dtype_id::fp32) {
    round_to_input(new_k, k_bits);
    round_to_input(new_v, v_bits);
  }
  const auto input = [&](const std::vector<float>& values, const std::vector<std::uint16_t>& bits,
                         int dim) {
    switch (input_type) {
      case dtype_id::fp16:
        return fp16_input(bits.data(), rows, kv_heads, dim);
      case dtype_id::bf16:
        return bf16_input(bits.data(), rows, kv_heads, dim);
      default:
        return fp32_input(values.data(), rows, kv_heads, dim);
    }
  };
  const kv_input k_in = input(new_k, k_bits, k_dim);
  const kv_input v_in = latent ? kv_input{} : input(new_v, v_bits, v_dim);
  const auto params =
      attention::attention_params_of<spec>(sink_logits.empty() ? nullptr : sink_logits.data());
  for (int l = 0; l < dtype_layers; ++l) {
    const page_table_csr table = cache.page_table(l, ids);
    const paged_layer_view view = cache.view(l, table);
    std::vector<float> out(static_cast<std::size_t>(rows) * q_heads * v_dim),
        lse(static_cast<std::size_t>(rows) * q_heads);
    // Even layers reuse one workspace across every call of every test (shapes, sizes and
    // dtypes change under it); odd layers take the overload that makes its own.
    static cpu::extend_workspace shared_workspace;
    if (l % 2 == 0)
      cpu::extend(view, qo_indptr, q_heads, q.data(), k_in, v_in, out.data(), lse.data(), params,
                  shared_workspace, pool().ref());
    else
      cpu::extend(view, qo_indptr, q_heads, q.data(), k_in, v_in, out.data(), lse.data(), params,
                  pool().ref());
    for (std::size_t b = 0; b < prefix.size(); ++b)
      for (std::int32_t i = 0; i < fresh[b]; ++i) {
        const std::int64_t position = prefix[b] + i;
        const std::size_t row = static_cast<std::size_t>(qo_indptr[b] + i);
        for (int h = 0; h < q_heads; ++h) {
          const int kv_head = h / group;
          // Visible cached keys (as the cache reads them back), then visible new keys (as given).
          std::vector<std::vector<float>> seen_k, seen_v;
          std::int64_t p = 0;
          std::vector<float> kk(static_cast<std::size_t>(kv_heads * k_dim)),
              vv(static_cast<std::size_t>(kv_heads * (latent ? k_dim : v_dim)));
          for (p = 0; p < prefix[b]; ++p) {
            if (!spec::window_value.visible(position, p)) continue;
            REQUIRE(cache.read(ids[b], l, p, kk.data(), vv.data()));
            seen_k.emplace_back(kk.begin() + kv_head * k_dim, kk.begin() + (kv_head + 1) * k_dim);
            const int vd = latent ? k_dim : v_dim;
            seen_v.emplace_back(vv.begin() + kv_head * vd, vv.begin() + kv_head * vd + v_dim);
          }
          for (std::int32_t j = 0; j <= i; ++j) {
            if (!spec::window_value.visible(position, prefix[b] + j)) continue;
            const std::size_t input_row = static_cast<std::size_t>(qo_indptr[b] + j) * kv_heads +
                                          static_cast<std::size_t>(kv_head);
            seen_k.emplace_back(
                new_k.begin() + static_cast<std::ptrdiff_t>(input_row * k_dim),
                new_k.begin() + static_cast<std::ptrdiff_t>((input_row + 1) * k_dim));
            if (latent)
              seen_v.emplace_back(seen_k.back().begin(), seen_k.back().begin() + v_dim);
            else
              seen_v.emplace_back(
                  new_v.begin() + static_cast<std::ptrdiff_t>(input_row * v_dim),
                  new_v.begin() + static_cast<std::ptrdiff_t>((input_row + 1) * v_dim));
          }
          const double sink = sink_logits.empty() ? 0.0 : sink_logits[static_cast<std::size_t>(h)];
          const reference_result ref =
              reference_attend(q.data() + (row * q_heads + static_cast<std::size_t>(h)) * k_dim,
                               k_dim, v_dim, seen_k, seen_v, spec::softmax_scale_value,
                               spec::softcap::cap, sink_logits.empty() ? nullptr : &sink);
          INFO("layer " << l << " sequence " << b << " new token " << i << " head " << h);
          compare_with_reference(ref, seen_v,
                                 out.data() + (row * q_heads + static_cast<std::size_t>(h)) * v_dim,
                                 lse[row * q_heads + static_cast<std::size_t>(h)], v_dim);
        }
      }
  }
}

template <class S>
using llama_shape = layer<gqa<8, 2>, head_dim<64>, S>;
template <class S>
using mistral_shape = layer<gqa<4, 2>, head_dim<32>, sliding_window<20>, S>;
template <class S>
using gemma2_shape =
    layer<gqa<4, 2>, head_dim<32>, sliding_window<24>, S, logit_softcap<30>, inv_sqrt_scale<144>>;
template <class S>
using llama4_shape = layer<gqa<5, 1>, head_dim<32>, chunked<24>, S>;
template <class S>
using streaming_shape = layer<gqa<4, 2>, head_dim<32>, streaming<3, 10>, S>;
template <class S>
using gpt_oss_shape = layer<gqa<8, 2>, head_dim<32>, sliding_window<16>, S, learned_sinks>;
template <class S>
using deepseek_shape = layer<mqa<16>, latent<64, 16>, S, inv_sqrt_scale<24>>;
template <class S>
using odd_dims_shape = layer<gqa<6, 3>, head_dim<20, 12>, S>;

}  // namespace

TEST_CASE("extend: grouped-query attention, empty and long prefixes") {
  check_extend<llama_shape>({0, 40, 7}, {33, 5, 1}, 1);
}
TEST_CASE("extend: sliding window starting in the prefix or in the new tokens") {
  check_extend<mistral_shape>({0, 30, 19, 5}, {50, 12, 3, 30}, 2);
}
TEST_CASE("extend: soft-capped sliding window") {
  check_extend<gemma2_shape>({35, 0}, {20, 40}, 3);
}
TEST_CASE("extend: chunks that end in the prefix and in the new tokens") {
  check_extend<llama4_shape>({23, 24, 50}, {30, 1, 40}, 4);
}
TEST_CASE("extend: streaming sinks") { check_extend<streaming_shape>({2, 30, 0}, {5, 20, 16}, 5); }
TEST_CASE("extend: learned sinks") {
  check_extend<gpt_oss_shape>({10, 40}, {20, 7}, 6,
                              {0.5f, -1.0f, 3.0f, 0.0f, 8.0f, -5.0f, 1.0f, 2.0f});
}
TEST_CASE("extend: sequences without new tokens among those with some") {
  check_extend<llama_shape>({5, 3, 0, 40}, {4, 0, 0, 2}, 12);
}
TEST_CASE("extend: new keys and values given in fp16 and bf16") {
  check_extend<llama_shape>({0, 21}, {40, 9}, 9, {}, dtype_id::fp16);
  check_extend<llama_shape>({17, 0}, {6, 35}, 10, {}, dtype_id::bf16);
  check_extend<deepseek_shape>({0, 5}, {20, 3}, 11, {}, dtype_id::bf16);
}
TEST_CASE("extend: large pages and a contiguous cache (one page a sequence)") {
  check_extend<llama_shape, paged<128>>({0, 40, 100}, {33, 5, 28}, 13);
  check_extend<mistral_shape, paged<64, page_layout::hnd>>({0, 30, 70}, {50, 12, 30}, 14);
  check_extend<streaming_shape, paged<32>>({2, 30, 40}, {5, 20, 16}, 15);
  check_extend<deepseek_shape, paged<64>>({30, 0}, {9, 17}, 16);
}
TEST_CASE("extend: multi-head latent attention") {
  check_extend<deepseek_shape>({30, 0}, {9, 17}, 7);
}
TEST_CASE("extend: dims that are not multiples of 8") {
  check_extend<odd_dims_shape>({13, 0}, {10, 21}, 8);
}

TEST_CASE("a decode step equals an extend by one token") {
  using L = layer<gqa<8, 2>, head_dim<64>, sliding_window<50>, storage<fp32>>;
  struct m : model<1, L> {};
  kv_cache<m, paged<16>> cache(capacity_pages{32});
  std::mt19937 rng(9);
  const sequence_id s = cache.add_sequence();
  append_random(cache, s, 120, rng);
  const page_table_csr before = cache.page_table(0, std::vector<sequence_id>{s});
  std::normal_distribution<float> normal;
  std::vector<float> q(8 * 64), k(2 * 64), v(2 * 64);
  for (auto* x : {&q, &k, &v})
    for (float& e : *x) e = normal(rng);
  std::vector<float> extended(8 * 64), extended_lse(8), decoded(8 * 64), decoded_lse(8);
  const std::int32_t qo[] = {0, 1};
  const auto params = attention::attention_params_of<L>();
  cpu::extend(cache.view(0, before), qo, 8, q.data(), fp32_input(k.data(), 1, 2, 64),
              fp32_input(v.data(), 1, 2, 64), extended.data(), extended_lse.data(), params,
              pool().ref());
  const layer_input in{0, fp32_input(k.data(), 1, 2, 64), fp32_input(v.data(), 1, 2, 64)};
  const append_request r{s, 1};
  cache.append({&r, 1}, {&in, 1});
  const page_table_csr after = cache.page_table(0, std::vector<sequence_id>{s});
  cpu::decode(cache.view(0, after), 8, q.data(), decoded.data(), decoded_lse.data(), params,
              pool().ref());
  for (std::size_t i = 0; i < decoded.size(); ++i)
    CHECK(decoded[i] == Approx(extended[i]).margin(1e-5));
  for (std::size_t i = 0; i < decoded_lse.size(); ++i)
    CHECK(decoded_lse[i] == Approx(extended_lse[i]).epsilon(1e-5));
}

TEST_CASE("merging results over two disjoint key sets gives the result over their union") {
  std::mt19937 rng(10);
  std::normal_distribution<float> normal;
  std::vector<float> q(32);
  for (float& x : q) x = normal(rng);
  std::vector<std::vector<float>> keys(40, std::vector<float>(32)),
      values(40, std::vector<float>(16));
  for (auto& k : keys)
    for (float& x : k) x = normal(rng);
  for (auto& v : values)
    for (float& x : v) x = normal(rng);
  const auto half = [&](std::size_t begin, std::size_t end) {
    return std::pair{
        std::vector<std::vector<float>>(keys.begin() + static_cast<std::ptrdiff_t>(begin),
                                        keys.begin() + static_cast<std::ptrdiff_t>(end)),
        std::vector<std::vector<float>>(values.begin() + static_cast<std::ptrdiff_t>(begin),
                                        values.begin() + static_cast<std::ptrdiff_t>(end))};
  };
  const auto [ka, va] = half(0, 13);
  const auto [kb, vb] = half(13, 40);
  const reference_result a = reference_attend(q.data(), 32, 16, ka, va, 0.2, 0, nullptr);
  const reference_result b = reference_attend(q.data(), 32, 16, kb, vb, 0.2, 0, nullptr);
  const reference_result whole = reference_attend(q.data(), 32, 16, keys, values, 0.2, 0, nullptr);
  std::vector<float> out_a(a.out.begin(), a.out.end()), out_b(b.out.begin(), b.out.end()),
      merged(16);
  float lse = 0;
  attention::merge_results(out_a.data(), static_cast<float>(a.lse), out_b.data(),
                           static_cast<float>(b.lse), 16, merged.data(), &lse);
  CHECK(lse == Approx(whole.lse).epsilon(1e-6));
  for (int d = 0; d < 16; ++d)
    CHECK(merged[static_cast<std::size_t>(d)] ==
          Approx(whole.out[static_cast<std::size_t>(d)]).margin(1e-6));
  // An empty side changes nothing.
  std::vector<float> garbage(16, 1e30f), alone(16);
  attention::merge_results(out_a.data(), static_cast<float>(a.lse), garbage.data(),
                           attention::negative_infinity, 16, alone.data(), &lse);
  CHECK(lse == Approx(a.lse).epsilon(1e-6));
  for (int d = 0; d < 16; ++d)
    CHECK(alone[static_cast<std::size_t>(d)] ==
          Approx(a.out[static_cast<std::size_t>(d)]).margin(1e-6));
}

TEST_CASE("attention refuses query heads that do not share the KV heads evenly, and bad inputs") {
  using L = layer<gqa<8, 2>, head_dim<16>, storage<fp16>>;
  struct m : model<1, L> {};
  kv_cache<m, paged<4>> cache(capacity_pages{4});
  std::mt19937 rng(11);
  const sequence_id s = cache.add_sequence();
  append_random(cache, s, 3, rng);
  const page_table_csr table = cache.page_table(0, std::vector<sequence_id>{s});
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(8 * 16), k(2 * 16), v(2 * 16), out(8 * 16), lse(8);
  const auto params = attention::attention_params_of<L>();
  CHECK(code_of([&] { (void)cpu::plan_decode(view, 7, 2); }) == cache_errc::shape_mismatch);
  const std::int32_t qo[] = {0, 1};
  CHECK(code_of([&] {
          cpu::extend(view, qo, 5, q.data(), fp32_input(k.data(), 1, 2, 16),
                      fp32_input(v.data(), 1, 2, 16), out.data(), lse.data(), params,
                      cpu::serial());
        }) == cache_errc::shape_mismatch);
  // New K of the wrong shape, or a qo_indptr that does not match the batch.
  try {
    cpu::extend(view, qo, 8, q.data(), fp32_input(k.data(), 1, 2, 8),
                fp32_input(v.data(), 1, 2, 16), out.data(), lse.data(), params, cpu::serial());
    FAIL("a wrong K shape was accepted");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::shape_mismatch);
  }
  const std::int32_t too_long[] = {0, 1, 1};
  CHECK_THROWS_AS(
      cpu::extend(view, too_long, 8, q.data(), fp32_input(k.data(), 1, 2, 16),
                  fp32_input(v.data(), 1, 2, 16), out.data(), lse.data(), params, cpu::serial()),
      cache_error);
  // Row offsets that do not start at 0, or go backwards.
  const std::int32_t shifted[] = {1, 1};
  CHECK_THROWS_AS(
      cpu::extend(view, shifted, 8, q.data(), fp32_input(k.data(), 1, 2, 16),
                  fp32_input(v.data(), 1, 2, 16), out.data(), lse.data(), params, cpu::serial()),
      cache_error);
  std::array<float, 8 * 16> untouched{};
  untouched.fill(7.0f);
  const sequence_id both[] = {s, s};
  const page_table_csr pair = cache.page_table(0, std::vector<sequence_id>(both, both + 2));
  const std::int32_t backwards[] = {0, 1, 0};
  CHECK_THROWS_AS(cpu::extend(cache.view(0, pair), backwards, 8, q.data(),
                              fp32_input(k.data(), 0, 2, 16), fp32_input(v.data(), 0, 2, 16),
                              untouched.data(), lse.data(), params, cpu::serial()),
                  cache_error);
  CHECK(std::all_of(untouched.begin(), untouched.end(), [](float x) { return x == 7.0f; }));
}
