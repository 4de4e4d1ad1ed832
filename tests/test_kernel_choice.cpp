// The CPU kernel choice (kvc/backend/cpu/kernel_choice.hpp): what choose_kernels returns for
// a layer, a group, the options and a CPU's features, for CPUs this machine is not (features
// are a value: the test names them); and that decode and extend run what it names, on this
// CPU: options that choose the same kernels give the same bits, options that choose others
// give other bits, and every choice agrees with the default within float rounding.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "attention_check.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/backend/cpu/kernel_set.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/models/gallery.hpp"
#include "kvc/numeric/cpu_features.hpp"

using namespace kvc;
using cpu::cpu_isa;
using cpu::group_path;
using kvc::testing::pool;

namespace {

page_geometry geometry(dtype_id k_type, dtype_id v_type, int k_dim, int v_dim,
                       bool latent = false) {
  page_geometry g;
  g.kv_heads = 8;
  g.k_dim = k_dim;
  g.v_dim = v_dim;
  g.k_type = k_type;
  g.v_type = v_type;
  g.latent = latent;
  return g;
}

cpu::cpu_options with(cpu_features features) {
  cpu::cpu_options options;
  options.features = features;
  return options;
}

constexpr cpu_features zen4{true, true, true, true, true};         // AVX-512 with VNNI and BF16
constexpr cpu_features skylake_x{true, true, true, false, false};  // AVX-512 alone

}  // namespace

TEST_CASE("the kernel choice follows the features, the layer and the options", "[choice]") {
  const page_geometry fp16 = geometry(dtype_id::fp16, dtype_id::fp16, 128, 128);
  const page_geometry int8 = geometry(dtype_id::int8, dtype_id::int8, 128, 128);
  const page_geometry bf16 = geometry(dtype_id::bf16, dtype_id::bf16, 128, 128);

  SECTION("no features: the portable code") {
    const cpu::kernel_choice c = cpu::choose_kernels(fp16, 4, with(cpu_features::none()));
    CHECK(c == cpu::kernel_choice{});
    CHECK(c.describe() == "blocks portable, load portable/portable");
  }
  SECTION("AVX2: 8 lanes, int8 scores in vpmaddwd, int8 values in float") {
    const auto options = with(cpu_features::avx2_only());
    CHECK(cpu::choose_kernels(fp16, 4, options).describe() ==
          "blocks avx2, load avx2/avx2, group scores float avx2, values float avx2");
    const cpu::kernel_choice c = cpu::choose_kernels(int8, 4, options);
    CHECK(c.scores == group_path::int8_avx2);
    CHECK(c.values == group_path::float_avx2);
  }
  SECTION("AVX-512 with VNNI: 16 lanes, int8 in vpdpwssd; without AVX-512, VNNI on 8 lanes") {
    CHECK(cpu::choose_kernels(fp16, 4, with(zen4)).describe() ==
          "blocks avx512, load avx2/avx2, group scores float avx512, values float avx512");
    const cpu::kernel_choice c = cpu::choose_kernels(int8, 4, with(zen4));
    CHECK(c.scores == group_path::int8_avx512);
    CHECK(c.values == group_path::int8_avx512);
    cpu_features ymm = zen4;
    ymm.avx512 = false;
    const cpu::kernel_choice narrow = cpu::choose_kernels(int8, 4, with(ymm));
    CHECK(narrow.blocks == cpu_isa::avx2);
    CHECK(narrow.scores == group_path::int8_vnni);
    CHECK(narrow.values == group_path::int8_vnni);
    const cpu::kernel_choice no_vnni = cpu::choose_kernels(int8, 4, with(skylake_x));
    CHECK(no_vnni.scores == group_path::int8_avx2);
    CHECK(no_vnni.values == group_path::float_avx512);
  }
  SECTION("the numerics options, where the CPU and the dims allow them") {
    cpu::cpu_options options = with(zen4);
    options.integer_scores = false;
    CHECK(cpu::choose_kernels(int8, 4, options).scores == group_path::float_avx512);
    CHECK(cpu::choose_kernels(int8, 4, options).values == group_path::float_avx512);
    options.integer_scores = true;
    options.int8_query = true;
    CHECK(cpu::choose_kernels(int8, 4, options).scores == group_path::int8_query);
    options.features = skylake_x;  // no VNNI: the option changes nothing
    CHECK(cpu::choose_kernels(int8, 4, options).scores == group_path::int8_avx2);
    options = with(zen4);
    options.bf16_products = true;
    CHECK(cpu::choose_kernels(bf16, 4, options).scores == group_path::bf16_products);
    CHECK(cpu::choose_kernels(bf16, 4, options).values == group_path::bf16_products);
    CHECK(cpu::choose_kernels(fp16, 4, options).scores == group_path::float_avx512);
    const page_geometry bf16_72 = geometry(dtype_id::bf16, dtype_id::bf16, 72, 72);
    CHECK(cpu::choose_kernels(bf16_72, 4, options).scores == group_path::float_avx512);
    options.features = skylake_x;
    CHECK(cpu::choose_kernels(bf16, 4, options).scores == group_path::float_avx512);
  }
  SECTION("layers the group kernels do not take") {
    const page_geometry int4 = geometry(dtype_id::int4, dtype_id::int4, 128, 128);
    CHECK(cpu::choose_kernels(int4, 4, with(zen4)).scores == group_path::float_avx2);
    CHECK_FALSE(cpu::choose_kernels(fp16, 16, with(zen4)).grouped());  // a group above 8
    const page_geometry mla = geometry(dtype_id::bf16, dtype_id::bf16, 576, 512, true);
    const cpu::kernel_choice latent = cpu::choose_kernels(mla, 128, with(zen4));
    CHECK_FALSE(latent.grouped());
    CHECK(latent.blocks == cpu_isa::avx512);
    const page_geometry odd = geometry(dtype_id::fp16, dtype_id::fp16, 20, 16);
    const cpu::kernel_choice c = cpu::choose_kernels(odd, 4, with(zen4));
    CHECK(c.blocks == cpu_isa::portable);
    CHECK(c.load_keys == cpu_isa::portable);
    CHECK(c.load_values == cpu_isa::avx2);
    CHECK_FALSE(c.grouped());
  }
  SECTION("the default options are this CPU's features and the default numerics") {
    const cpu::cpu_options options;
    CHECK(options.features == cpu_features::detected());
    CHECK(options.integer_scores);
    CHECK_FALSE(options.int8_query);
    CHECK_FALSE(options.bf16_products);
    INFO(cpu_features::detected().describe());
    CHECK(cpu::choose_kernels(fp16, 4, options) ==
          cpu::choose_kernels(fp16, 4, with(cpu_features::detected())));
  }
}

namespace {

using choice_layer = layer<gqa<8, 2>, head_dim<64>, storage<int8>>;
struct choice_model : model<1, choice_layer> {};

// Whether two results are the same bits, and whether they agree within float rounding.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) { return a == b; }
bool close(const std::vector<float>& a, const std::vector<float>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs(a[i] - b[i]) <= 2e-3f * (1.0f + std::fabs(b[i])))) return false;
  return true;
}

}  // namespace

TEST_CASE("decode and extend run the kernels the options choose", "[choice]") {
  kv_cache<choice_model, paged<16>> cache(capacity_pages{64});
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  constexpr int q_heads = 8, kv_heads = 2, dim = 64, prompt = 300, step = 20;
  const sequence_id id = cache.add_sequence();
  std::vector<float> k(prompt * kv_heads * dim), v(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  const append_request request{id, prompt};
  const layer_input input{0, fp32_input(k.data(), prompt, kv_heads, dim),
                          fp32_input(v.data(), prompt, kv_heads, dim)};
  cache.append({&request, 1}, {&input, 1});
  const auto params = attention::attention_params_of<choice_layer>();
  const std::vector<sequence_id> ids{id};
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const cpu_features cpu = cpu_features::detected();
  INFO("this CPU: " << cpu.describe());

  SECTION("decode") {
    std::vector<float> q(q_heads * dim);
    for (float& x : q) x = normal(rng);
    const cpu::decode_plan plan = cpu::plan_decode(view, q_heads, 2);
    cpu::decode_workspace workspace;
    const auto run = [&](const cpu::cpu_options& options) {
      std::vector<float> out(q_heads * dim), lse(q_heads);
      cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, workspace, pool().ref(),
                  options);
      return out;
    };
    const std::vector<float> best = run({});
    // bf16 products on an int8 layer choose the same kernels: the same bits.
    cpu::cpu_options same;
    same.bf16_products = true;
    REQUIRE(cpu::choose_kernels(view.geometry, 4, same) ==
            cpu::choose_kernels(view.geometry, 4, {}));
    CHECK(same_bits(run(same), best));
    // Every narrower CPU and the float int8 path: close, and other bits where other kernels.
    std::vector<cpu::cpu_options> others{with(cpu_features::none()),
                                         with(cpu & cpu_features::avx2_only())};
    cpu::cpu_options in_float;
    in_float.integer_scores = false;
    others.push_back(in_float);
    for (const cpu::cpu_options& options : others) {
      const cpu::kernel_choice choice = cpu::choose_kernels(view.geometry, 4, options);
      INFO(choice.describe());
      const std::vector<float> out = run(options);
      CHECK(close(out, best));
      if (choice != cpu::choose_kernels(view.geometry, 4, {})) CHECK_FALSE(same_bits(out, best));
    }
  }

  SECTION("decode with a model's kernel set: the same bits; another model's set refuses") {
    std::vector<float> q(q_heads * dim);
    for (float& x : q) x = normal(rng);
    const cpu::decode_plan plan = cpu::plan_decode(view, q_heads, 2);
    cpu::decode_workspace workspace;
    std::vector<cpu::cpu_options> options_list{
        {}, with(cpu_features::none()), with(cpu & cpu_features::avx2_only())};
    options_list.emplace_back().int8_query = true;
    options_list.emplace_back().integer_scores = false;
    for (const cpu::cpu_options& options : options_list) {
      INFO(cpu::choose_kernels(view.geometry, 4, options).describe());
      std::vector<float> all(q_heads * dim), lse_all(q_heads), own(all.size()), lse_own(q_heads);
      cpu::decode(plan, view, q.data(), all.data(), lse_all.data(), params, workspace, pool().ref(),
                  options);
      cpu::decode<cpu::kernels_for<choice_model>>(plan, view, q.data(), own.data(), lse_own.data(),
                                                  params, workspace, pool().ref(), options);
      CHECK(same_bits(own, all));
      CHECK(same_bits(lse_own, lse_all));
      // A set that holds int8 keys but fp16 values, or groups of 8: refused, nothing written.
      constexpr cpu::kernel_set fp16_values =
          cpu::kernel_set::none().with(4, dtype_id::int8, dtype_id::fp16, false);
      constexpr cpu::kernel_set groups_of_8 =
          cpu::kernel_set::none().with(8, dtype_id::int8, dtype_id::int8, false);
      std::vector<float> out(all.size(), 7.0f), lse(q_heads, 7.0f);
      const auto refused = [&](auto run) {
        try {
          run();
        } catch (const cache_error& e) {
          return e.code() == cache_errc::plan_mismatch;
        }
        return false;
      };
      CHECK(refused([&] {
        cpu::decode<fp16_values>(plan, view, q.data(), out.data(), lse.data(), params, workspace,
                                 pool().ref(), options);
      }));
      CHECK(refused([&] {
        cpu::decode<groups_of_8>(plan, view, q.data(), out.data(), lse.data(), params, workspace,
                                 pool().ref(), options);
      }));
      CHECK(out == std::vector<float>(all.size(), 7.0f));
      CHECK(lse == std::vector<float>(q_heads, 7.0f));
    }
  }

  SECTION("extend") {
    std::vector<float> q(step * q_heads * dim), new_k(step * kv_heads * dim), new_v(new_k.size());
    for (float& x : q) x = normal(rng);
    for (float& x : new_k) x = normal(rng);
    for (float& x : new_v) x = normal(rng);
    const std::vector<std::int32_t> qo{0, step};
    cpu::extend_workspace workspace;
    const auto run = [&](const cpu::cpu_options& options) {
      std::vector<float> out(step * q_heads * dim), lse(step * q_heads);
      cpu::extend(view, qo, q_heads, q.data(), fp32_input(new_k.data(), step, kv_heads, dim),
                  fp32_input(new_v.data(), step, kv_heads, dim), out.data(), lse.data(), params,
                  workspace, pool().ref(), options);
      return out;
    };
    const std::vector<float> best = run({});
    const std::vector<float> portable = run(with(cpu_features::none()));
    CHECK(close(portable, best));
    if (cpu.avx2_fma()) CHECK_FALSE(same_bits(portable, best));
    if (cpu.avx512) {  // the 8-lane blocks on an AVX-512 CPU
      const std::vector<float> avx2 = run(with(cpu & cpu_features::avx2_only()));
      CHECK(close(avx2, best));
      CHECK_FALSE(same_bits(avx2, best));
    }
  }
}

TEST_CASE("a model's kernel set holds the group kernels of its layers, no others", "[choice]") {
  using cpu::kernel_set;
  // Llama 3 8B: groups of 4 over bf16 keys and values.
  constexpr kernel_set llama = cpu::kernels_for<models::llama3_8b>;
  STATIC_REQUIRE(llama == kernel_set::none().with(4, dtype_id::bf16, dtype_id::bf16, false));
  CHECK(llama.covers(geometry(dtype_id::bf16, dtype_id::bf16, 128, 128), 4));
  CHECK_FALSE(llama.covers(geometry(dtype_id::fp16, dtype_id::bf16, 128, 128), 4));
  CHECK_FALSE(llama.covers(geometry(dtype_id::bf16, dtype_id::int8, 128, 128), 4));
  CHECK_FALSE(llama.covers(geometry(dtype_id::bf16, dtype_id::bf16, 128, 128), 2));
  CHECK(llama.has_group(4));
  CHECK_FALSE(llama.has_group(1));
  // Layers the group kernels never take need nothing: MLA, groups above 8.
  CHECK(llama.covers(geometry(dtype_id::fp16, dtype_id::fp16, 576, 512, true), 16));
  CHECK(llama.covers(geometry(dtype_id::fp16, dtype_id::fp16, 128, 128), 16));
  // DeepSeek V3 is MLA throughout: no group kernel at all.
  STATIC_REQUIRE(cpu::kernels_for<models::deepseek_v3> == kernel_set::none());
  // The default set holds every kernel.
  for (int group = 1; group <= cpu::max_kernel_group; ++group)
    for (int t = 0; t < kernel_set::dtypes; ++t) {
      CHECK(cpu::all_kernels.scores(group, static_cast<dtype_id>(t)));
      CHECK(cpu::all_kernels.accumulates(group, static_cast<dtype_id>(t)));
    }
}
