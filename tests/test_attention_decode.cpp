// CPU decode against the reference backend: the layer shape of every gallery family (head
// counts scaled down), every storage dtype, windows, soft-caps, learned sinks, MLA, split-K
// and threads, through the vector kernels and the portable code, and the edge cases: a
// context of one token, windows larger than the context, chunk and page boundaries, a query
// that sees only sink tokens, very large scores, NaN in K.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "attention_check.hpp"
#include "attention_shapes.hpp"
#include "kvc/backend/cpu/decode.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::shapes;

namespace {

// The kernel paths decode can take on this CPU, forced by narrowing its features: with
// integer arithmetic for int8 and without, on 16 lanes (AVX-512), on 8 with VNNI and on 8
// with AVX2 alone, then the portable code.
struct kernel_path {
  cpu::cpu_options options;
  const char* name;
  bool integer() const { return options.integer_scores; }
};
inline std::vector<kernel_path> kernel_paths() {
  const cpu_features cpu = cpu_features::detected();
  const auto with = [](cpu_features features, bool integer, bool int8_query = false,
                       bool bf16_products = false) {
    cpu::cpu_options o;
    o.features = features;
    o.integer_scores = integer;
    o.int8_query = int8_query;
    o.bf16_products = bf16_products;
    return o;
  };
  std::vector<kernel_path> paths;
  if (cpu.avx512) {
    if (cpu.avx512_vnni)
      paths.push_back({with(cpu, true, true), "AVX-512 kernels, int8 keys against an 8-bit query"});
    if (cpu.avx512_bf16)
      paths.push_back({with(cpu, true, false, true), "AVX-512 kernels, bf16 products"});
    paths.push_back({with(cpu, true), "AVX-512 kernels, integer int8"});
    paths.push_back({with(cpu, false), "AVX-512 kernels"});
  }
  if (cpu.avx512_vnni) {  // int8 in vpdpwssd on 8 lanes
    cpu_features ymm = cpu;
    ymm.avx512 = false;
    paths.push_back({with(ymm, true), "8-lane kernels, integer int8 with VNNI"});
  }
  const cpu_features avx2 = cpu & cpu_features::avx2_only();
  paths.push_back({with(avx2, true), "AVX2 kernels, integer int8"});
  paths.push_back({with(avx2, false), "AVX2 kernels"});
  paths.push_back({with(cpu_features::none(), false), "portable code"});
  return paths;
}

// Decodes every layer of a cache holding `lengths` and checks each against the reference.
template <template <class> class Shape, class Paging = paged<16>>
void check_decode(const std::vector<std::int64_t>& lengths, std::uint32_t seed,
                  const std::vector<float>& sink_logits = {}, float q_spread = 1.0f,
                  int min_split_tokens = 256) {
  using model = every_dtype_model<Shape>;
  using cache_type = kv_cache<model, Paging>;
  using spec = Shape<storage<fp32>>;
  constexpr int q_heads = spec::q_heads, kv_heads = spec::kv_heads, group = spec::group_size;
  constexpr int k_dim = spec::k_dim, v_dim = spec::v_dim;
  std::int64_t pages = 0;
  for (std::int64_t n : lengths) pages += n / Paging::page_tokens + 2;
  cache_type cache(capacity_pages{pages});
  std::mt19937 rng(seed);
  std::vector<sequence_id> ids;
  for (std::int64_t n : lengths) {
    ids.push_back(cache.add_sequence());
    if (n > 0) append_random(cache, ids.back(), n, rng);
  }
  std::normal_distribution<float> normal(0.0f, q_spread);
  std::vector<float> q(lengths.size() * q_heads * k_dim);
  for (float& x : q) x = normal(rng);
  const attention::attention_params params =
      attention::attention_params_of<spec>(sink_logits.empty() ? nullptr : sink_logits.data());
  std::vector<std::vector<float>> keys, values;
  for (int l = 0; l < dtype_layers; ++l) {
    const page_table_csr table = cache.page_table(l, ids);
    const paged_layer_view view = cache.view(l, table);
    std::vector<float> out(lengths.size() * q_heads * v_dim), lse(lengths.size() * q_heads);
    const dtype_id k_type = model::layer_summaries[static_cast<std::size_t>(l)].k_type;
    const dtype_id v_type = model::layer_summaries[static_cast<std::size_t>(l)].v_type;
    for (const kernel_path& path : kernel_paths()) {
      const bool integer = path.integer();
      const cpu::decode_plan plan = cpu::plan_decode(view, q_heads, 2, min_split_tokens);
      cpu::decode_workspace workspace;
      cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, workspace, pool().ref(),
                  path.options);
      for (std::size_t b = 0; b < lengths.size(); ++b) {
        for (int h = 0; h < q_heads; ++h) {
          const std::int64_t position = lengths[b] - 1;
          visible_kv(cache, ids[b], l, h / group, position, spec::window_value, kv_heads, k_dim,
                     spec::is_latent ? k_dim : v_dim, keys, values);
          if (spec::is_latent)
            for (auto& v : values) v.resize(v_dim);  // V: the first `rank` dims of the latent
          const double sink = sink_logits.empty() ? 0.0 : sink_logits[static_cast<std::size_t>(h)];
          const float* q_row = q.data() + (b * q_heads + static_cast<std::size_t>(h)) * k_dim;
          const reference_result ref =
              reference_attend(q_row, k_dim, v_dim, keys, values, spec::softmax_scale_value,
                               spec::softcap::cap, sink_logits.empty() ? nullptr : &sink);
          // The integer kernels (int8) round q per row to steps of max|q| / 32767 (/ 127 with
          // the 8-bit query) and the weights per block and row to steps of their largest /
          // 32767.
          // With bf16 products (group kernels only, dims a multiple of 32), q and the weights
          // are rounded to bf16: each off by at most 2^-8 of itself, so a score by 2^-8
          // sum|q k| and an output by 2^-8 max|v| (key_block x weight below).
          const bool grouped_bf16 = path.options.bf16_products && group <= 8 && !spec::is_latent;
          const bool bf16_keys = grouped_bf16 && k_type == dtype_id::bf16 && k_dim % 32 == 0;
          rounding_allowance allowance;
          if ((integer && k_type == dtype_id::int8) || bf16_keys) {
            double q_largest = 0, k_sum_largest = 0;
            for (int d = 0; d < k_dim; ++d)
              q_largest = std::max(q_largest, std::fabs(static_cast<double>(q_row[d])));
            for (const auto& k : keys) {
              double sum = 0;
              for (float x : k) sum += std::fabs(static_cast<double>(x));
              k_sum_largest = std::max(k_sum_largest, sum);
            }
            allowance.score = std::fabs(spec::softmax_scale_value) * q_largest /
                              (bf16_keys                 ? 256.0
                               : path.options.int8_query ? 254.0
                                                         : 65534.0) *
                              k_sum_largest;  // a soft-cap does not widen it
          }
          if (integer && v_type == dtype_id::int8) allowance.weight = 1.0 / 65534.0;
          if (grouped_bf16 && v_type == dtype_id::bf16 && v_dim % 32 == 0)
            allowance.weight = 1.0 / (256.0 * cpu::key_block);
          INFO("layer " << l << " ("
                        << dtype_name(model::layer_summaries[static_cast<std::size_t>(l)].k_type)
                        << ") sequence " << b << " of length " << lengths[b] << " head " << h
                        << ", " << path.name);
          compare_with_reference(ref, values,
                                 out.data() + (b * q_heads + static_cast<std::size_t>(h)) * v_dim,
                                 lse[b * q_heads + static_cast<std::size_t>(h)], v_dim, allowance);
        }
      }
    }
  }
}

// Query groups of 3 (with 6 and 8 of attention_shapes.hpp: the group kernels' other tile
// shapes) and 9 (past them: the float-block path).
template <class S>
using group3_shape = layer<gqa<6, 2>, head_dim<64, 40>, S>;
template <class S>
using group9_shape = layer<gqa<9, 1>, head_dim<32>, S>;
// Decode takes the softmax of up to 8 rows at a time: 4 KV heads of this group of 2, then
// the fifth alone.
template <class S>
using five_kv_heads_shape = layer<gqa<10, 5>, head_dim<32>, S>;
// Dims 8 past a multiple of 16: the AVX-512 kernels end them in a masked half step.
template <class S>
using half_step_shape = layer<gqa<8, 4>, head_dim<40, 24>, S>;

}  // namespace

TEST_CASE("decode: multi-head attention (GPT-2)") { check_decode<gpt2_shape>({1, 17, 150}, 1); }
TEST_CASE("decode: grouped-query attention (Llama)") { check_decode<llama_shape>({33, 1, 200}, 2); }
TEST_CASE("decode: groups of 7 (Qwen 2.5)") { check_decode<qwen_shape>({64, 5}, 3); }
TEST_CASE("decode: sliding window (Mistral), longer and shorter than the window") {
  check_decode<mistral_shape>({39, 40, 41, 130}, 4);
}
TEST_CASE("decode: sliding window with soft-cap and scale (Gemma 2)") {
  check_decode<gemma2_shape>({10, 47, 100}, 5);
}
TEST_CASE("decode: multi-query sliding window (Gemma 3 1B)") {
  check_decode<gemma3_shape>({21, 96}, 6);
}
TEST_CASE("decode: chunked attention at chunk boundaries (Llama 4)") {
  check_decode<llama4_shape>({23, 24, 25, 48, 49, 100}, 7);
}
TEST_CASE("decode: streaming, a query that sees only sink tokens") {
  check_decode<streaming_shape>({1, 2, 4, 5, 24, 25, 90}, 8);
}
TEST_CASE("decode: learned sink logits (gpt-oss)") {
  check_decode<gpt_oss_shape>({1, 31, 32, 33, 120}, 9,
                              {0.5f, -1.0f, 3.0f, 0.0f, 10.0f, -5.0f, 1.0f, 2.0f});
}
TEST_CASE("decode: multi-head latent attention (DeepSeek)") {
  check_decode<deepseek_shape>({1, 40, 170}, 10);
}
TEST_CASE("decode: query groups of every tile shape, in HND pages and pages of many blocks") {
  check_decode<group3_shape>({1, 50, 97}, 21);
  check_decode<group6_shape, paged<48, page_layout::hnd>>({47, 48, 130}, 22);
  check_decode<group8_shape, paged<8>>({9, 100}, 23);
  check_decode<group9_shape, paged<32, page_layout::hnd>>({70}, 24);
  check_decode<five_kv_heads_shape>({1, 40, 99}, 28);
  check_decode<llama_shape, paged<64, page_layout::hnd>>({65, 300}, 25);
  check_decode<half_step_shape>({1, 37, 120}, 34);
}
TEST_CASE("decode: large pages and a contiguous cache (one page a sequence), split inside pages") {
  check_decode<llama_shape, paged<512>>({1, 300, 512}, 29, {}, 1.0f, 16);
  check_decode<group3_shape, paged<256, page_layout::hnd>>({200, 256}, 30, {}, 1.0f, 32);
  check_decode<mistral_shape, paged<64>>({39, 130, 200}, 31, {}, 1.0f, 16);
  check_decode<streaming_shape, paged<32>>({5, 25, 90}, 32, {}, 1.0f, 16);
  check_decode<deepseek_shape, paged<128>>({170}, 33, {}, 1.0f, 16);
}
TEST_CASE("decode: keys and values stored in different dtypes") {
  check_decode<mixed_dtype_shape>({1, 40, 129}, 26);
  check_decode<mixed_dtype_shape, paged<16, page_layout::hnd>>({77}, 27);
}
TEST_CASE("decode: dims that are not multiples of 8") {
  check_decode<odd_dims_shape>({1, 19, 70}, 11);
}
TEST_CASE("decode: scores of very large magnitude") {
  check_decode<llama_shape>({50, 100}, 12, {}, 300.0f);
}
TEST_CASE("decode: split-K over many splits equals the reference") {
  check_decode<llama_shape>({700, 3}, 13, {}, 1.0f, 16);
  check_decode<deepseek_shape>({300}, 14, {}, 1.0f, 32);
}

TEST_CASE("decode: a NaN in K makes the output NaN only where it is seen") {
  using L = layer<gqa<4, 2>, head_dim<16>, sliding_window<8>, storage<fp32>>;
  struct m : model<1, L> {};
  kv_cache<m, paged<4>> cache(capacity_pages{16});
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  std::vector<float> k(20 * 2 * 16, 0.5f), v(k.size(), 1.0f);
  k[3 * 32 + 5] = std::numeric_limits<float>::quiet_NaN();  // token 3, head 0
  const append_request requests[] = {{a, 10}, {b, 10}};     // a: tokens 0-9; b: tokens 10-19
  const layer_input in{0, fp32_input(k.data(), 20, 2, 16), fp32_input(v.data(), 20, 2, 16)};
  cache.append(requests, {&in, 1});
  const sequence_id ids[] = {a, b};
  const page_table_csr table = cache.page_table(0, ids);
  std::vector<float> q(2 * 4 * 16, 0.1f), out(2 * 4 * 16), lse(8);
  cpu::decode(cache.view(0, table), 4, q.data(), out.data(), lse.data(),
              attention::attention_params_of<L>(), pool().ref());
  // Sequence a's window (positions 2-9) holds the NaN in head 0: its query heads 0 and 1.
  CHECK(std::isnan(out[0]));
  CHECK(std::isnan(out[16]));
  CHECK(out[32] == Approx(1.0f));  // head 2 reads KV head 1
  for (int i = 64; i < 128; ++i) CHECK(out[static_cast<std::size_t>(i)] == Approx(1.0f));

  // Once the NaN slides out of the window, the output is finite again.
  std::mt19937 rng(1);
  append_random(cache, a, 8, rng);
  const page_table_csr later = cache.page_table(0, ids);
  cpu::decode(cache.view(0, later), 4, q.data(), out.data(), lse.data(),
              attention::attention_params_of<L>(), pool().ref());
  for (int i = 0; i < 64; ++i) CHECK(std::isfinite(out[static_cast<std::size_t>(i)]));
}

template <class S>
using nan_shape = layer<gqa<4, 2>, head_dim<16>, S>;

TEST_CASE("decode: a NaN in q, K or V reaches the output in every dtype and on every path") {
  using model = every_dtype_model<nan_shape>;
  constexpr int tokens = 10, kv_heads = 2, q_heads = 4, dim = 16;
  for (const char* where : {"q", "K", "V"}) {
    kv_cache<model, paged<4>> cache(capacity_pages{8 * dtype_layers});
    const sequence_id s = cache.add_sequence();
    std::vector<float> k(tokens * kv_heads * dim), v(k.size());
    std::mt19937 rng(31);
    std::normal_distribution<float> normal;
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (where[0] == 'K') k[(3 * kv_heads + 0) * dim + 5] = nan;  // token 3, KV head 0
    if (where[0] == 'V') v[(3 * kv_heads + 0) * dim + 5] = nan;
    std::vector<layer_input> inputs;
    for (int l = 0; l < dtype_layers; ++l)
      inputs.push_back({l, fp32_input(k.data(), tokens, kv_heads, dim),
                        fp32_input(v.data(), tokens, kv_heads, dim)});
    const append_request request{s, tokens};
    cache.append({&request, 1}, inputs);
    std::vector<float> q(q_heads * dim, 0.25f), out(q_heads * dim), lse(q_heads);
    if (where[0] == 'q') q[3] = nan;  // query head 0
    const sequence_id ids[] = {s};
    for (int l = 0; l < dtype_layers; ++l) {
      const page_table_csr table = cache.page_table(l, ids);
      const paged_layer_view view = cache.view(l, table);
      for (const kernel_path& path : kernel_paths()) {
        const cpu::decode_plan plan = cpu::plan_decode(view, q_heads, 2);
        cpu::decode_workspace workspace;
        cpu::decode(plan, view, q.data(), out.data(), lse.data(),
                    attention::attention_params_of<nan_shape<storage<fp32>>>(), workspace,
                    pool().ref(), path.options);
        INFO("NaN in " << where << ", layer " << l << ", " << path.name);
        // A NaN in q poisons its own head; in K or V, the heads of KV head 0 (query heads 0
        // and 1). V's NaN sits in one dim, but a quantized vector shares one scale.
        const int poisoned = where[0] == 'q' ? 1 : 2;
        for (int h = 0; h < q_heads; ++h) {
          bool any_nan = false;
          for (int d = 0; d < dim; ++d)
            any_nan |= std::isnan(out[static_cast<std::size_t>(h * dim + d)]);
          CHECK(any_nan == (h < poisoned));
        }
      }
    }
  }
}

TEST_CASE("decode: threads and splits change nothing but speed") {
  using spec = llama_shape<storage<fp16>>;
  struct m : model<1, spec> {};
  kv_cache<m, paged<16>> cache(capacity_pages{64});
  std::mt19937 rng(21);
  const sequence_id s = cache.add_sequence();
  append_random(cache, s, 900, rng);
  const page_table_csr table = cache.page_table(0, std::vector<sequence_id>{s});
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(8 * 128);
  std::normal_distribution<float> normal;
  for (float& x : q) x = normal(rng);
  std::vector<float> serial_out(8 * 128), serial_lse(8), pooled_out(8 * 128), pooled_lse(8);
  const auto params = attention::attention_params_of<spec>();
  const cpu::decode_plan plan = cpu::plan_decode(view, 8, 2, 64);
  REQUIRE(plan.items.size() > 2);  // split-K even for a batch of one
  cpu::decode_workspace workspace;
  cpu::decode(plan, view, q.data(), serial_out.data(), serial_lse.data(), params, workspace,
              cpu::serial());
  cpu::decode(plan, view, q.data(), pooled_out.data(), pooled_lse.data(), params, workspace,
              pool().ref());
  CHECK(serial_out == pooled_out);  // the same items, merged in the same order
  CHECK(serial_lse == pooled_lse);
}

TEST_CASE("decode: a sequence in one page is split over threads like one in many pages") {
  using spec = llama_shape<storage<fp16>>;
  struct m : model<1, spec> {};
  kv_cache<m, paged<16>> small_pages(capacity_pages{64});
  kv_cache<m, paged<1024>> one_page(capacity_pages{2});
  std::mt19937 small_rng(22), one_rng(22);
  const sequence_id a = small_pages.add_sequence(), b = one_page.add_sequence();
  append_random(small_pages, a, 900, small_rng);
  append_random(one_page, b, 900, one_rng);
  const page_table_csr small_table = small_pages.page_table(0, std::vector<sequence_id>{a});
  const page_table_csr one_table = one_page.page_table(0, std::vector<sequence_id>{b});
  const paged_layer_view small_view = small_pages.view(0, small_table);
  const paged_layer_view one_view = one_page.view(0, one_table);
  REQUIRE(one_table.indices.size() == 1);
  std::vector<float> q(8 * 128);
  std::normal_distribution<float> normal;
  for (float& x : q) x = normal(small_rng);
  const auto params = attention::attention_params_of<spec>();
  const cpu::decode_plan small_plan = cpu::plan_decode(small_view, 8, 2, 64);
  const cpu::decode_plan one_plan = cpu::plan_decode(one_view, 8, 2, 64);
  REQUIRE(one_plan.items.size() == small_plan.items.size());
  REQUIRE(one_plan.items.size() > 2);
  std::vector<float> small_out(8 * 128), small_lse(8), one_out(8 * 128), one_lse(8);
  cpu::decode_workspace workspace;
  cpu::decode(small_plan, small_view, q.data(), small_out.data(), small_lse.data(), params,
              workspace, pool().ref());
  cpu::decode(one_plan, one_view, q.data(), one_out.data(), one_lse.data(), params, workspace,
              pool().ref());
  // The same keys in the same blocks and splits: the same sums, bit for bit.
  CHECK(one_out == small_out);
  CHECK(one_lse == small_lse);
}
