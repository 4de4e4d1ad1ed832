// Q read in place from a fused QKV projection ([tokens][q + 2 kv heads][dim], Q first): decode
// on the CPU and in the device kernels (the emulator: the streamed and the tiled kernel) and
// both extends give, bit for bit, what they give for the same Q packed densely, while K and V
// go into the cache from the same rows. A stride shorter than a row, or a range too small for
// the strided rows, is a cache_error before anything runs.

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "attention_check.hpp"
#include "error_code.hpp"
#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/simt/decode.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/kernels/decode.hpp"

using namespace kvc;
using attention::query_rows;
using kvc::testing::code_of;
using kvc::testing::pool;

namespace {

// Rows of a fused projection, and Q copied out of them densely.
struct fused_rows {
  int q_heads, kv_heads, dim;
  std::int64_t tokens;
  std::vector<float> data;

  fused_rows(std::int64_t n, int q, int kv, int d, std::mt19937& rng)
      : q_heads(q), kv_heads(kv), dim(d), tokens(n), data(static_cast<std::size_t>(n * stride())) {
    std::normal_distribution<float> normal;
    for (float& x : data) x = normal(rng);
  }
  std::int64_t stride() const { return std::int64_t{q_heads + 2 * kv_heads} * dim; }
  query_rows q() const { return {data, stride()}; }
  kv_input k() const {
    return {data.data() + q_heads * dim, dtype_id::fp32, tokens, kv_heads, dim, stride()};
  }
  kv_input v() const {
    return {
        data.data() + (q_heads + kv_heads) * dim, dtype_id::fp32, tokens, kv_heads, dim, stride()};
  }
  std::vector<float> dense_q() const {
    std::vector<float> q;
    for (std::int64_t t = 0; t < tokens; ++t) {
      const float* row = data.data() + t * stride();
      q.insert(q.end(), row, row + q_heads * dim);
    }
    return q;
  }
};

template <class Layer>
struct fused_model : model<1, Layer> {};

// Three sequences take a prompt through extend (over the committed table, new K/V from the
// fused rows), then a step through extend over the step's view, then decode: each time Q from
// the fused rows and Q packed give the same bits. Then the device decode does the same.
template <class Layer, int QHeads, int KVHeads, int Dim>
void check_fused(std::uint32_t seed) {
  using cache_type = kv_cache<fused_model<Layer>, paged<16>>;
  cache_type cache(capacity_pages{64});
  std::mt19937 rng(seed);
  const std::vector<sequence_id> ids{cache.add_sequence(), cache.add_sequence(),
                                     cache.add_sequence()};
  const auto params = attention::attention_params_of<Layer>();
  cpu::extend_workspace workspace;

  // The prompt: 37, 5 and 20 tokens.
  {
    const std::vector<std::int32_t> qo{0, 37, 42, 62};
    const fused_rows rows(62, QHeads, KVHeads, Dim, rng);
    const std::vector<float> dense = rows.dense_q();
    const page_table_csr before = cache.page_table(0, ids);
    std::vector<float> out(62 * QHeads * Dim), lse(62 * QHeads), out2(out.size()), lse2(lse.size());
    cpu::extend(cache.view(0, before), qo, QHeads, rows.q(), rows.k(), rows.v(), out.data(),
                lse.data(), params, workspace, pool().ref());
    cpu::extend(cache.view(0, before), qo, QHeads, dense.data(), rows.k(), rows.v(), out2.data(),
                lse2.data(), params, workspace, pool().ref());
    REQUIRE(out == out2);
    REQUIRE(lse == lse2);
    const std::vector<append_request> batch{{ids[0], 37}, {ids[1], 5}, {ids[2], 20}};
    const layer_input in{0, rows.k(), rows.v()};
    cache.append(batch, {&in, 1});
  }

  // A step of 3, 1 and 2 tokens, read back from the step's view.
  {
    const std::vector<std::int32_t> qo{0, 3, 4, 6};
    const fused_rows rows(6, QHeads, KVHeads, Dim, rng);
    const std::vector<float> dense = rows.dense_q();
    const std::vector<append_request> batch{{ids[0], 3}, {ids[1], 1}, {ids[2], 2}};
    append_plan plan = cache.plan_append(batch);
    const page_table_csr step = cache.step_table(plan, 0);
    cache.write(plan, 0, rows.k(), rows.v());
    std::vector<float> out(6 * QHeads * Dim), lse(6 * QHeads), out2(out.size()), lse2(lse.size());
    cpu::extend(cache.view(0, step), qo, QHeads, rows.q(), std::span<float>(out),
                std::span<float>(lse), params, workspace, pool().ref());
    cpu::extend(cache.view(0, step), qo, QHeads, dense.data(), out2.data(), lse2.data(), params,
                workspace, pool().ref());
    REQUIRE(out == out2);
    REQUIRE(lse == lse2);
    cache.commit(plan);
  }

  // Decode of one token each, on the CPU and in the device kernels.
  const fused_rows rows(3, QHeads, KVHeads, Dim, rng);
  const std::vector<float> dense = rows.dense_q();
  const std::vector<append_request> batch{{ids[0], 1}, {ids[1], 1}, {ids[2], 1}};
  const layer_input in{0, rows.k(), rows.v()};
  cache.append(batch, {&in, 1});
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> out(3 * QHeads * Dim), lse(3 * QHeads), out2(out.size()), lse2(lse.size());
  const cpu::decode_plan cpu_plan = cpu::plan_decode(view, QHeads, 2, 16);
  cpu::decode_workspace cpu_workspace;
  cpu::decode(cpu_plan, view, rows.q(), std::span<float>(out), std::span<float>(lse), params,
              cpu_workspace, pool().ref());
  cpu::decode(cpu_plan, view, dense.data(), out2.data(), lse2.data(), params, cpu_workspace,
              pool().ref());
  REQUIRE(out == out2);
  REQUIRE(lse == lse2);

  using shape = kernels::decode_shape_of<Layer, paged<16>>;
  const attention::decode_plan plan = attention::plan_decode(view, QHeads, 2, 16);
  REQUIRE(plan.items.size() > 3);  // split: the merge kernel runs too
  attention::decode_workspace device_workspace;
  simt::decode<shape>(plan, view, rows.q(), out.data(), lse.data(), params, device_workspace);
  simt::decode<shape>(plan, view, dense.data(), out2.data(), lse2.data(), params, device_workspace);
  REQUIRE(out == out2);
  REQUIRE(lse == lse2);
}

}  // namespace

TEST_CASE("strided Q: the streamed device kernel's layer, read from fused QKV rows") {
  using L = layer<gqa<8, 2>, head_dim<64>, storage<fp16>>;
  STATIC_REQUIRE(kernels::streamed_decode<kernels::decode_shape_of<L, paged<16>>>);
  check_fused<L, 8, 2, 64>(41);
}

TEST_CASE("strided Q: the tiled device kernel's layer, read from fused QKV rows") {
  using L = layer<gqa<4, 2>, head_dim<40>, storage<bf16>>;
  STATIC_REQUIRE_FALSE(kernels::streamed_decode<kernels::decode_shape_of<L, paged<16>>>);
  check_fused<L, 4, 2, 40>(42);
}

TEST_CASE("strided Q: a stride shorter than a row or a range too small is refused") {
  using L = layer<gqa<8, 2>, head_dim<64>, storage<fp16>>;
  kv_cache<fused_model<L>, paged<16>> cache(capacity_pages{16});
  std::mt19937 rng(43);
  const std::vector<sequence_id> ids{cache.add_sequence(), cache.add_sequence()};
  const fused_rows rows(2, 8, 2, 64, rng);
  const std::vector<append_request> batch{{ids[0], 1}, {ids[1], 1}};
  const layer_input in{0, rows.k(), rows.v()};
  cache.append(batch, {&in, 1});
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const auto params = attention::attention_params_of<L>();
  std::vector<float> out(2 * 8 * 64), lse(2 * 8);
  const std::vector<float> untouched = out;
  // Rows that overlap; a range that holds the first row but not the second, 384 floats on.
  const query_rows overlapping{rows.data.data(), 8 * 64 - 1};
  const std::span<const float> all(rows.data);
  const query_rows short_range{all.first(static_cast<std::size_t>(rows.stride() + 8 * 64 - 1)),
                               rows.stride()};
  const query_rows negative{rows.data.data(), -1};
  const cpu::decode_plan cpu_plan = cpu::plan_decode(view, 8, 1);
  cpu::decode_workspace cpu_workspace;
  using shape = kernels::decode_shape_of<L, paged<16>>;
  attention::decode_workspace device_workspace;
  cpu::extend_workspace workspace;
  const std::int32_t qo[] = {0, 1, 2};
  for (const query_rows& q : {overlapping, short_range, negative}) {
    CHECK(code_of([&] {
            cpu::decode(cpu_plan, view, q, out.data(), lse.data(), params, cpu_workspace,
                        pool().ref());
          }) == cache_errc::shape_mismatch);
    CHECK(code_of([&] {
            simt::decode<shape>(cpu_plan, view, q, out.data(), lse.data(), params,
                                device_workspace);
          }) == cache_errc::shape_mismatch);
    CHECK(code_of([&] {
            cpu::extend(view, qo, 8, q, rows.k(), rows.v(), out.data(), lse.data(), params,
                        workspace, pool().ref());
          }) == cache_errc::shape_mismatch);
  }
  CHECK(out == untouched);
  // The exact size is enough.
  const query_rows exact{all.first(static_cast<std::size_t>(rows.stride() + 8 * 64)),
                         rows.stride()};
  cpu::decode(cpu_plan, view, exact, out.data(), lse.data(), params, cpu_workspace, pool().ref());
  simt::decode<shape>(cpu_plan, view, exact, out.data(), lse.data(), params, device_workspace);
}
