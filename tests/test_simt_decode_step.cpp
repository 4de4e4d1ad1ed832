// The decode and merge kernels (kernels/decode.hpp) in the SIMT emulator against the
// reference backend (tests/simt_decode_check.hpp). Run under ThreadSanitizer by .ci/run.
// An open step's view (against the CPU decode of the same view), a NaN in K, and the
// refusals before launch.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kvc/backend/cpu/decode.hpp"
#include "simt_decode_check.hpp"

using namespace kvc;
using namespace kvc::testing;
using namespace kvc::testing::simt_decode;

namespace {

using step_layer = layer<gqa<4, 2>, head_dim<64>, storage<int8>>;
struct step_model : model<1, step_layer> {};
using step_shape = kernels::decode_shape_of<step_layer, paged<16>>;

}  // namespace

TEST_CASE("simt decode: inside an open step, as the CPU decodes it", "[simt]") {
  kv_cache<step_model, paged<16>> cache(capacity_pages{32});
  std::mt19937 rng(26);
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  append_random(cache, a, 30, rng);
  append_random(cache, b, 16, rng);
  // A step of 3 new tokens for a (crossing no page) and 1 for b (starting its second page).
  const append_request requests[] = {{a, 3}, {b, 1}};
  std::normal_distribution<float> normal;
  std::vector<float> k(4 * 2 * 64), v(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  append_plan plan = cache.plan_append(requests);
  const page_table_csr table = cache.step_table(plan, 0);
  cache.write(plan, 0, fp32_input(k.data(), 4, 2, 64), fp32_input(v.data(), 4, 2, 64));
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(2 * 4 * 64);
  for (float& x : q) x = normal(rng);
  const auto params = attention::attention_params_of<step_layer>();
  const attention::decode_plan decode_plan = attention::plan_decode(view, 4, 2, 16);
  attention::decode_workspace workspace;
  std::vector<float> out(2 * 4 * 64), lse(8), cpu_out(out.size()), cpu_lse(8);
  simt::decode<step_shape, kernels::block_shape<64>>(decode_plan, view, q.data(), out.data(),
                                                     lse.data(), params, workspace);
  cpu::decode_plan host_plan = cpu::plan_decode(view, 4, 2, 16);
  host_plan.vectorized = false;  // float arithmetic on the stored values, as the kernel's
  cpu::decode_workspace host_workspace;
  cpu::decode(host_plan, view, q.data(), cpu_out.data(), cpu_lse.data(), params, host_workspace,
              pool().ref());
  for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == Approx(cpu_out[i]).margin(1e-5));
  for (std::size_t i = 0; i < lse.size(); ++i) REQUIRE(lse[i] == Approx(cpu_lse[i]).epsilon(1e-5));
  cache.commit(plan);
}

TEST_CASE("simt decode: a NaN in K makes the output NaN only where it is seen", "[simt]") {
  using L = layer<gqa<4, 2>, head_dim<16>, sliding_window<8>, storage<fp32>>;
  struct m : model<1, L> {};
  using shape = kernels::decode_shape_of<L, paged<4>>;
  kv_cache<m, paged<4>> cache(capacity_pages{16});
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  std::vector<float> k(20 * 2 * 16, 0.5f), v(k.size(), 1.0f);
  k[3 * 32 + 5] = std::numeric_limits<float>::quiet_NaN();  // token 3, head 0
  const append_request requests[] = {{a, 10}, {b, 10}};     // a: tokens 0-9; b: tokens 10-19
  const layer_input in{0, fp32_input(k.data(), 20, 2, 16), fp32_input(v.data(), 20, 2, 16)};
  cache.append(requests, {&in, 1});
  const sequence_id ids[] = {a, b};
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(2 * 4 * 16, 0.1f), out(2 * 4 * 16), lse(8);
  attention::decode_workspace workspace;
  simt::decode<shape, kernels::block_shape<32>>(attention::plan_decode(view, 4, 1), view, q.data(),
                                                out.data(), lse.data(),
                                                attention::attention_params_of<L>(), workspace);
  CHECK(std::isnan(out[0]));   // a's window (positions 2-9) holds the NaN in KV head 0
  CHECK(std::isnan(out[16]));  // and so its query heads 0 and 1
  CHECK(out[32] == Approx(1.0f));
  for (int i = 64; i < 128; ++i) CHECK(out[static_cast<std::size_t>(i)] == Approx(1.0f));
}

TEST_CASE("simt decode: a kernel, plan or buffer that does not fit is refused before launch",
          "[simt]") {
  struct m : model<1, llama_shape<storage<fp16>>> {};
  kv_cache<m, paged<16>> cache(capacity_pages{8});
  std::mt19937 rng(27);
  const sequence_id s = cache.add_sequence();
  append_random(cache, s, 20, rng);
  const page_table_csr table = cache.page_table(0, std::vector<sequence_id>{s});
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(8 * 128, 0.1f), out(8 * 128, -7.0f), lse(8, -7.0f);
  const auto params = attention::attention_params_of<llama_shape<storage<fp16>>>();
  attention::decode_workspace workspace;
  const attention::decode_plan plan = attention::plan_decode(view, 8, 1);
  const auto code_of = [&](auto run) {
    try {
      run();
    } catch (const cache_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("kvc::simt::decode") != std::string::npos);
      return e.code();
    }
    FAIL("no error");
    return cache_errc::invalid_argument;
  };
  // A kernel made for bf16, or for a group of 2.
  using bf16_shape = kernels::decode_shape_of<llama_shape<storage<bf16>>, paged<16>>;
  CHECK(code_of([&] {
          simt::decode<bf16_shape>(plan, view, q.data(), out.data(), lse.data(), params, workspace);
        }) == cache_errc::shape_mismatch);
  using pair_shape = kernels::decode_shape<fp16, fp16, 2, 128, 128, false>;
  CHECK(code_of([&] {
          simt::decode<pair_shape>(plan, view, q.data(), out.data(), lse.data(), params, workspace);
        }) == cache_errc::shape_mismatch);
  // A kernel that does not mask, for a layer with a window.
  {
    struct windowed : model<1, mistral_shape<storage<fp16>>> {};
    kv_cache<windowed, paged<16>> window_cache(capacity_pages{8});
    const sequence_id w = window_cache.add_sequence();
    append_random(window_cache, w, 20, rng);
    const page_table_csr window_table = window_cache.page_table(0, std::vector<sequence_id>{w});
    const paged_layer_view window_view = window_cache.view(0, window_table);
    using unmasked = kernels::decode_shape<fp16, fp16, 4, 128, 128, false>;
    CHECK(code_of([&] {
            simt::decode<unmasked>(attention::plan_decode(window_view, 8, 1), window_view, q.data(),
                                   out.data(), lse.data(), params, workspace);
          }) == cache_errc::shape_mismatch);
  }
  // A plan of another table.
  append_random(cache, s, 1, rng);
  const page_table_csr newer = cache.page_table(0, std::vector<sequence_id>{s});
  using fp16_shape = kernels::decode_shape_of<llama_shape<storage<fp16>>, paged<16>>;
  CHECK(code_of([&] {
          simt::decode<fp16_shape>(plan, cache.view(0, newer), q.data(), out.data(), lse.data(),
                                   params, workspace);
        }) == cache_errc::plan_mismatch);
  // No output.
  CHECK(code_of([&] {
          simt::decode<fp16_shape>(plan, view, q.data(), nullptr, lse.data(), params, workspace);
        }) == cache_errc::invalid_argument);
  for (float x : out) REQUIRE(x == -7.0f);  // nothing was written
  for (float x : lse) REQUIRE(x == -7.0f);
}
