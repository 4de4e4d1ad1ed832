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
  const cpu::decode_plan host_plan = cpu::plan_decode(view, 4, 2, 16);
  cpu::cpu_options portable;  // float arithmetic on the stored values, as the kernel's
  portable.features = cpu_features::none();
  cpu::decode_workspace host_workspace;
  cpu::decode(host_plan, view, q.data(), cpu_out.data(), cpu_lse.data(), params, host_workspace,
              pool().ref(), portable);
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
  // The view of before the append is stale now.
  CHECK(code_of([&] {
          simt::decode<fp16_shape>(plan, view, q.data(), out.data(), lse.data(), params, workspace);
        }) == cache_errc::stale_table);
  // No output.
  const paged_layer_view newer_view = cache.view(0, newer);
  const attention::decode_plan newer_plan = attention::plan_decode(newer_view, 8, 1);
  CHECK(code_of([&] {
          simt::decode<fp16_shape>(newer_plan, newer_view, q.data(), nullptr, lse.data(), params,
                                   workspace);
        }) == cache_errc::invalid_argument);
  for (float x : out) REQUIRE(x == -7.0f);  // nothing was written
  for (float x : lse) REQUIRE(x == -7.0f);
}

TEST_CASE("the device planner splits only when the batch does not fill the device's slots",
          "[simt]") {
  // A table of sequences of the given lengths in pages of 16 (no cache needed: the planner
  // reads the view's arrays), 8 KV heads of 128 dims.
  const auto plan_for = [](const std::vector<std::int64_t>& lengths, int slots) {
    page_table_csr table;
    std::int32_t page = 0;
    for (const std::int64_t n : lengths) {
      for (std::int64_t p = 0; p < (n + 15) / 16; ++p) table.indices.push_back(page++);
      table.indptr.push_back(static_cast<std::int32_t>(table.indices.size()));
      table.last_page_len.push_back(static_cast<std::int32_t>(n - (n - 1) / 16 * 16));
      table.seq_lens.push_back(n);
    }
    paged_layer_view view;
    view.geometry = page_geometry::make(layer_summary{layer_kind::attention, -1, 32, 8, 128, 128,
                                                      false, dtype_id::fp16, dtype_id::fp16},
                                        16, page_layout::nhd);
    view.batch = table.batch();
    view.indptr = table.indptr.data();
    view.indices = table.indices.data();
    view.last_page_len = table.last_page_len.data();
    view.seq_lens = table.seq_lens.data();
    attention::decode_plan plan;
    attention::plan_decode_for_slots(view, 32, 8, slots, plan, 64);
    return plan;
  };
  // Batch 64 at 32k fills 528 slots (132 SMs x 4) with 512 blocks: no split, no merge.
  const attention::decode_plan full = plan_for(std::vector<std::int64_t>(64, 32768), 528);
  CHECK(full.items.size() == 64);
  // Batch 1 at 32k: the smallest chunk whose items fit one wave, 64 splits of 512 tokens.
  const attention::decode_plan one = plan_for({32768}, 528);
  CHECK(one.items.size() == 64);
  CHECK(one.items[0].block_end - one.items[0].block_begin == 32);
  // Batch 1 at 4k: no split below 64 tokens (4 key blocks).
  CHECK(plan_for({4096}, 528).items.size() == 64);
  CHECK(plan_for({4096}, 100000).items.size() == 64);
  // A ragged batch: the long sequence is cut, the short ones are not; every block covered once.
  const attention::decode_plan ragged = plan_for({100000, 50, 3000, 1}, 264);
  CHECK(ragged.splits[1] == 1);
  CHECK(ragged.splits[3] == 1);
  CHECK(ragged.splits[0] > ragged.splits[2]);
  std::int64_t items_blocks = 0;
  for (std::size_t s = 0; s < 4; ++s) {
    const std::int32_t first = ragged.first_item[s];
    CHECK(ragged.items[static_cast<std::size_t>(first)].block_begin == 0);
    for (std::int32_t i = 0; i < ragged.splits[s]; ++i) {
      const auto& item = ragged.items[static_cast<std::size_t>(first + i)];
      items_blocks += item.block_end - item.block_begin;
      if (i > 0)
        CHECK(item.block_begin == ragged.items[static_cast<std::size_t>(first + i - 1)].block_end);
    }
  }
  CHECK(items_blocks == (100000 + 15) / 16 + 4 + 3000 / 16 + (3000 % 16 != 0) + 1);
  std::int64_t blocks = 0;
  for (const std::int32_t s : ragged.splits) blocks += std::int64_t{s} * 8;
  CHECK(blocks <= 264);
}
