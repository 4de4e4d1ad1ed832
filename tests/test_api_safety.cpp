// Mistakes an engine can make at the attention and append entry points, on the CPU and on the
// device path (the emulator runs the device launchers' checks): each one is a cache_error with
// a code, nothing is written, and the cache works afterwards (a full step, a decode over it and
// the invariants check). Views kept across a call that changes the cache's sequences are
// refused (stale_table) by every call that takes a view: they would read pages that may now
// be another sequence's.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "failing_new.hpp"
#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/layer_params.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/simt/append.hpp"
#include "kvc/backend/simt/decode.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/numeric/half.hpp"

using namespace kvc;

namespace {

// 32 query heads over 32 KV heads (MHA): 64 query heads are a multiple of the KV heads, and
// were once taken, writing twice the rows given.
using mha_layer = layer<mha<32>, head_dim<16>, storage<fp16>>;
struct mha_model : model<2, mha_layer> {};
using mha_cache = kv_cache<mha_model, paged<16>>;
constexpr int mha_heads = 32, dim = 16;

// A bf16 layer of dim 96, and a latent one.
using wide_layer = layer<gqa<8, 2>, head_dim<96>, storage<bf16>>;
struct wide_model : model<1, wide_layer> {};
using latent_layer = layer<mqa<4>, latent<32, 16>, storage<fp16>, inv_sqrt_scale<48>>;
struct latent_model : model<1, latent_layer> {};

std::vector<float> random_values(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Appends `tokens` random tokens to every layer of each sequence, in one step.
template <class Cache>
void append_random(Cache& cache, std::span<const sequence_id> ids, std::int64_t tokens,
                   std::mt19937& rng) {
  std::vector<append_request> batch;
  for (const sequence_id id : ids) batch.push_back({id, tokens});
  const std::int64_t rows = tokens * static_cast<std::int64_t>(ids.size());
  const page_geometry& geo = cache.geometry(0);
  const std::vector<float> k =
      random_values(static_cast<std::size_t>(rows * geo.kv_heads * geo.k_dim), rng);
  const std::vector<float> v =
      random_values(static_cast<std::size_t>(rows * geo.kv_heads * geo.v_dim), rng);
  std::vector<layer_input> layers;
  for (int l = 0; l < Cache::num_layers; ++l)
    layers.push_back(
        {l, fp32_input(k.data(), rows, geo.kv_heads, geo.k_dim),
         geo.latent ? kv_input{} : fp32_input(v.data(), rows, geo.kv_heads, geo.v_dim)});
  cache.append(batch, layers);
}

// The cache still works: a step of one token for every sequence, a decode of every layer over
// the committed table that gives finite outputs, and the invariants.
template <class Cache>
void still_works(Cache& cache, std::span<const sequence_id> ids, int q_heads, std::mt19937& rng) {
  append_random(cache, ids, 1, rng);
  const page_table_csr table = cache.page_table(0, ids);
  for (int l = 0; l < Cache::num_layers; ++l) {
    const paged_layer_view view = cache.view(l, table);
    const std::vector<float> q =
        random_values(ids.size() * static_cast<std::size_t>(q_heads * view.geometry.k_dim), rng);
    std::vector<float> out(ids.size() * static_cast<std::size_t>(q_heads * view.geometry.v_dim));
    std::vector<float> lse(ids.size() * static_cast<std::size_t>(q_heads));
    const cpu::decode_plan plan = cpu::plan_decode(view, q_heads, 1);
    cpu::decode_workspace workspace;
    cpu::decode(plan, view, std::span<const float>(q), std::span<float>(out), std::span<float>(lse),
                attention::attention_params{0.25f}, workspace, cpu::serial());
    for (const float x : out) REQUIRE(std::isfinite(x));
  }
  cache.check_invariants();
}

// Runs f, which must throw a cache_error of `code`; returns its message.
std::string refused(cache_errc code, const std::function<void()>& f) {
  try {
    f();
  } catch (const cache_error& e) {
    CHECK(e.code() == code);
    return e.what();
  }
  FAIL("accepted");
  return {};
}

}  // namespace

TEST_CASE("decode and its plans refuse query heads that are not the layer's") {
  mha_cache cache(capacity_pages{16});
  std::mt19937 rng(1);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 20, rng);
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  std::vector<float> q(2 * 64 * dim), out(2 * 64 * dim, 7.0f), lse(2 * 64, 7.0f);
  for (const int wrong : {64, 16, 0, -32}) {
    INFO(wrong << " query heads");
    refused(cache_errc::shape_mismatch, [&] { cpu::plan_decode(view, wrong, 1); });
    refused(cache_errc::shape_mismatch, [&] {
      cpu::decode(view, wrong, q.data(), out.data(), lse.data(), attention::attention_params{});
    });
    attention::decode_plan device_plan;
    refused(cache_errc::shape_mismatch,
            [&] { attention::plan_decode_for_slots(view, wrong, 2, 132, device_plan); });
  }
  const std::string message =
      refused(cache_errc::shape_mismatch, [&] { cpu::plan_decode(view, 64, 1); });
  CHECK(message.find("64 query heads") != std::string::npos);
  CHECK(message.find("has 32") != std::string::npos);
  // A plan of another layer's view with the right heads is checked against the view too.
  cpu::decode_plan plan = cpu::plan_decode(view, mha_heads, 1);
  plan.q_heads = 64;
  plan.group = 2;
  cpu::decode_workspace workspace;
  refused(cache_errc::shape_mismatch, [&] {
    cpu::decode(plan, view, q.data(), out.data(), lse.data(), attention::attention_params{},
                workspace);
  });
  for (const float x : out) CHECK(x == 7.0f);  // nothing written
  for (const float x : lse) CHECK(x == 7.0f);
  still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
}

TEST_CASE("decode refuses null buffers, and buffers too small through its sized form") {
  mha_cache cache(capacity_pages{16});
  std::mt19937 rng(2);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 40, rng);
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const cpu::decode_plan plan = cpu::plan_decode(view, mha_heads, 2);
  cpu::decode_workspace workspace;
  std::vector<float> q = random_values(2 * mha_heads * dim, rng), out(2 * mha_heads * dim, 7.0f),
                     lse(2 * mha_heads, 7.0f);
  const attention::attention_params params{0.25f};
  refused(cache_errc::invalid_argument,
          [&] { cpu::decode(plan, view, q.data(), nullptr, lse.data(), params, workspace); });
  refused(cache_errc::invalid_argument,
          [&] { cpu::decode(plan, view, nullptr, out.data(), lse.data(), params, workspace); });
  refused(cache_errc::invalid_argument,
          [&] { cpu::decode(plan, view, q.data(), out.data(), nullptr, params, workspace); });
  const std::span<const float> q_all(q);
  const std::span<float> out_all(out), lse_all(lse);
  refused(cache_errc::shape_mismatch, [&] {
    cpu::decode(plan, view, q_all.first(q.size() - 1), out_all, lse_all, params, workspace);
  });
  const std::string message = refused(cache_errc::shape_mismatch, [&] {
    cpu::decode(plan, view, q_all, out_all.first(mha_heads * dim), lse_all, params, workspace);
  });
  CHECK(message.find("out holds 512 floats") != std::string::npos);
  refused(cache_errc::shape_mismatch, [&] {
    cpu::decode(plan, view, q_all, out_all, lse_all.first(mha_heads), params, workspace);
  });
  for (const float x : out) CHECK(x == 7.0f);
  for (const float x : lse) CHECK(x == 7.0f);
  // The sized form runs when the sizes are right, bigger buffers included.
  std::vector<float> bigger(out.size() + 5, 7.0f);
  cpu::decode(plan, view, q_all, std::span<float>(bigger), lse_all, params, workspace);
  CHECK(bigger.back() == 7.0f);
  CHECK(bigger.front() != 7.0f);
  still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
}

TEST_CASE("extend refuses wrong query heads, null and small buffers, a step's view as prefix") {
  mha_cache cache(capacity_pages{16});
  std::mt19937 rng(3);
  const sequence_id ids[] = {cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 20, rng);
  const std::int64_t rows = 5;
  const std::vector<std::int32_t> qo_indptr{0, 5};
  const std::vector<float> q = random_values(rows * mha_heads * dim, rng);
  const std::vector<float> k = random_values(rows * mha_heads * dim, rng), v = k;
  std::vector<float> out(rows * mha_heads * dim, 7.0f), lse(rows * mha_heads, 7.0f);
  const kv_input new_k = fp32_input(k.data(), rows, mha_heads, dim);
  const kv_input new_v = fp32_input(v.data(), rows, mha_heads, dim);
  const attention::attention_params params{0.25f};
  cpu::extend_workspace workspace;
  const page_table_csr prefix_table = cache.page_table(0, ids);
  const paged_layer_view prefix = cache.view(0, prefix_table);
  refused(cache_errc::shape_mismatch, [&] {
    cpu::extend(prefix, qo_indptr, 64, q.data(), new_k, new_v, out.data(), lse.data(), params,
                workspace);
  });
  refused(cache_errc::invalid_argument, [&] {
    cpu::extend(prefix, qo_indptr, mha_heads, q.data(), new_k, new_v, nullptr, lse.data(), params,
                workspace);
  });
  refused(cache_errc::shape_mismatch, [&] {
    cpu::extend(prefix, qo_indptr, mha_heads, std::span<const float>(q).first(q.size() - 1), new_k,
                new_v, std::span<float>(out), std::span<float>(lse), params, workspace);
  });
  refused(cache_errc::shape_mismatch, [&] {
    cpu::extend(prefix, qo_indptr, mha_heads, std::span<const float>(q), new_k, new_v,
                std::span<float>(out), std::span<float>(lse).first(mha_heads), params, workspace);
  });
  // K of the wrong dim: the message is write()'s, under extend's name.
  const kv_input narrow = fp32_input(k.data(), rows, mha_heads, 8);
  const std::string message = refused(cache_errc::shape_mismatch, [&] {
    cpu::extend(prefix, qo_indptr, mha_heads, q.data(), narrow, new_v, out.data(), lse.data(),
                params, workspace);
  });
  CHECK(message == "kvc::cpu::extend: new K is [5][32][8], the layer needs [5][32][16]");
  {
    const append_request step[] = {{ids[0], rows}};
    append_plan plan = cache.plan_append(step);
    const page_table_csr step_table = cache.step_table(plan, 0);
    const paged_layer_view step_view = cache.view(0, step_table);
    refused(cache_errc::invalid_argument, [&] {
      cpu::extend(step_view, qo_indptr, mha_heads, q.data(), new_k, new_v, out.data(), lse.data(),
                  params, workspace);
    });
    cache.write(plan, 0, new_k, new_v);
    refused(cache_errc::shape_mismatch, [&] {
      cpu::extend(step_view, qo_indptr, mha_heads, std::span<const float>(q),
                  std::span<float>(out).first(10), std::span<float>(lse), params, workspace);
    });
    refused(cache_errc::shape_mismatch, [&] {
      cpu::extend(step_view, qo_indptr, 16, q.data(), out.data(), lse.data(), params, workspace);
    });
    for (const float x : out) CHECK(x == 7.0f);
    // The sized forms run.
    cpu::extend(step_view, qo_indptr, mha_heads, std::span<const float>(q), std::span<float>(out),
                std::span<float>(lse), params, workspace, cpu::serial());
    cpu::extend(prefix, qo_indptr, mha_heads, std::span<const float>(q), new_k, new_v,
                std::span<float>(out), std::span<float>(lse), params, workspace, cpu::serial());
    CHECK(out.back() != 7.0f);
  }  // the plan aborts
  still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
}

TEST_CASE("kv_cache::read refuses a null k and buffers too small") {
  mha_cache cache(capacity_pages{8});
  std::mt19937 rng(4);
  const sequence_id ids[] = {cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 3, rng);
  std::vector<float> k(mha_heads * dim, 7.0f), v(mha_heads * dim, 7.0f);
  refused(cache_errc::invalid_argument, [&] { cache.read(ids[0], 0, 1, nullptr, v.data()); });
  refused(cache_errc::shape_mismatch, [&] {
    cache.read(ids[0], 0, 1, std::span<float>(k).first(mha_heads * dim - 1), std::span<float>(v));
  });
  refused(cache_errc::shape_mismatch,
          [&] { cache.read(ids[0], 0, 1, std::span<float>(k), std::span<float>(v).first(dim)); });
  for (const float x : k) CHECK(x == 7.0f);
  CHECK(cache.read(ids[0], 0, 1, std::span<float>(k), std::span<float>{}));
  CHECK(cache.read(ids[0], 1, 2, std::span<float>(k), std::span<float>(v)));
  CHECK(k[0] != 7.0f);
  CHECK(v[0] != 7.0f);
  still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
}

TEST_CASE("a view kept across a change of the cache's sequences is refused everywhere") {
  using shape = kernels::decode_shape_of<mha_layer, paged<16>>;
  // Each change, made to a cache with sequences a (40 tokens) and b (20), after a view of
  // both was taken; release + reuse gives a's pages to a new sequence's append.
  const std::vector<
      std::pair<const char*, std::function<void(mha_cache&, sequence_id*, std::mt19937&)>>>
      changes = {
          {"append", [](mha_cache& c, sequence_id* ids,
                        std::mt19937& rng) { append_random(c, std::span(ids, 1), 1, rng); }},
          {"abort",
           [](mha_cache& c, sequence_id* ids, std::mt19937&) {
             const append_request step[] = {{ids[0], 3}};
             append_plan plan = c.plan_append(step);
             c.abort(plan);
           }},
          {"truncate",
           [](mha_cache& c, sequence_id* ids, std::mt19937&) { c.truncate(ids[0], 30); }},
          {"fork", [](mha_cache& c, sequence_id* ids, std::mt19937&) { c.fork(ids[1], 10); }},
          {"release and reuse",
           [](mha_cache& c, sequence_id* ids, std::mt19937& rng) {
             c.release(ids[0]);
             ids[0] = c.add_sequence();
             append_random(c, std::span(ids, 1), 40, rng);
           }},
      };
  for (const auto& [name, change] : changes) {
    INFO("kept across " << name);
    mha_cache cache(capacity_pages{16});
    std::mt19937 rng(5);
    sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
    append_random(cache, std::span<const sequence_id>(ids, 1), 40, rng);
    append_random(cache, std::span<const sequence_id>(ids + 1, 1), 20, rng);
    const page_table_csr table = cache.page_table(0, ids);
    const paged_layer_view view = cache.view(0, table);
    const cpu::decode_plan plan = cpu::plan_decode(view, mha_heads, 1);
    attention::decode_plan device_plan;
    kernels::plan_device_decode<shape, kernels::block_shape<128>>(view, mha_heads, 132,
                                                                  device_plan);
    const std::uint64_t epoch = cache.epoch();
    change(cache, ids, rng);
    CHECK(cache.epoch() != epoch);
    CHECK(!view.current());

    std::vector<float> q = random_values(2 * mha_heads * dim, rng), out(2 * mha_heads * dim, 7.0f),
                       lse(2 * mha_heads, 7.0f);
    const attention::attention_params params{0.25f};
    cpu::decode_workspace workspace;
    const std::string message = refused(cache_errc::stale_table, [&] {
      cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, workspace);
    });
    CHECK(message.find("kvc::cpu::decode") != std::string::npos);
    refused(cache_errc::stale_table, [&] { cpu::plan_decode(view, mha_heads, 1); });
    refused(cache_errc::stale_table, [&] {
      simt::decode<shape>(device_plan, view, q.data(), out.data(), lse.data(), params, workspace);
    });
    const std::vector<std::int32_t> qo_indptr{0, 1, 2};
    const std::vector<float> k = random_values(2 * mha_heads * dim, rng);
    cpu::extend_workspace extend_workspace;
    refused(cache_errc::stale_table, [&] {
      cpu::extend(view, qo_indptr, mha_heads, q.data(), fp32_input(k.data(), 2, mha_heads, dim),
                  fp32_input(k.data(), 2, mha_heads, dim), out.data(), lse.data(), params,
                  extend_workspace);
    });
    refused(cache_errc::stale_table, [&] {
      cpu::extend(view, qo_indptr, mha_heads, q.data(), out.data(), lse.data(), params,
                  extend_workspace);
    });
    for (const float x : out) CHECK(x == 7.0f);
    // The table itself is refused too, and a fresh one serves.
    refused(cache_errc::stale_table, [&] { static_cast<void>(cache.view(0, table)); });
    still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
  }
}

TEST_CASE("a step's views are refused once the step is committed or aborted") {
  for (const bool commit : {true, false}) {
    INFO((commit ? "commit" : "abort"));
    mha_cache cache(capacity_pages{16});
    std::mt19937 rng(6);
    const sequence_id ids[] = {cache.add_sequence()};
    append_random(cache, std::span<const sequence_id>(ids), 10, rng);
    const append_request step[] = {{ids[0], 2}};
    append_plan plan = cache.plan_append(step);
    const page_table_csr table = cache.step_table(plan, 0);
    const paged_layer_view view = cache.view(0, table);
    const std::vector<float> k = random_values(2 * mha_heads * dim, rng);
    const kv_input input = fp32_input(k.data(), 2, mha_heads, dim);
    const std::vector<std::int64_t> token_indptr{0, 2};
    static_cast<void>(kernels::make_append_work(view, token_indptr.data(), input, input));
    if (commit) {
      for (int l = 0; l < mha_cache::num_layers; ++l) cache.write(plan, l, input, input);
      cache.commit(plan);
    } else {
      cache.abort(plan);
    }
    refused(cache_errc::stale_table, [&] {
      static_cast<void>(kernels::make_append_work(view, token_indptr.data(), input, input));
    });
    std::vector<float> q(mha_heads * dim), out(mha_heads * dim), lse(mha_heads);
    const std::vector<std::int32_t> qo_indptr{0, 2};
    cpu::extend_workspace workspace;
    refused(cache_errc::stale_table, [&] {
      cpu::extend(view, qo_indptr, mha_heads, q.data(), out.data(), lse.data(),
                  attention::attention_params{}, workspace);
    });
    still_works(cache, std::span<const sequence_id>(ids), mha_heads, rng);
  }
}

TEST_CASE("set_fp8_scales makes the views of its cache stale") {
  struct fp8_model : model<1, layer<gqa<4, 2>, head_dim<16>, storage<fp8_e4m3>>> {};
  kv_cache<fp8_model, paged<16>> cache(capacity_pages{4});
  const sequence_id ids[] = {cache.add_sequence()};
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  cache.set_fp8_scales(0, 0.5f, 2.0f);
  refused(cache_errc::stale_table, [&] { cpu::plan_decode(view, 4, 1); });
  CHECK(cache.view(0, cache.page_table(0, ids)).k_scale == 0.5f);
}

TEST_CASE("the device append refuses what write refuses, with write's messages") {
  kv_cache<wide_model, paged<16>> cache(capacity_pages{8});
  std::mt19937 rng(7);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 9, rng);
  const append_request step[] = {{ids[0], 1}, {ids[1], 3}};
  append_plan plan = cache.plan_append(step);
  const page_table_csr table = cache.step_table(plan, 0);
  const paged_layer_view view = cache.view(0, table);
  const std::vector<std::int64_t> token_indptr{0, 1, 4};
  const std::vector<float> k = random_values(4 * 2 * 96, rng), v = random_values(4 * 2 * 96, rng);
  const kv_input good_k = fp32_input(k.data(), 4, 2, 96), good_v = fp32_input(v.data(), 4, 2, 96);
  const auto device_refusal = [&](cache_errc code, const kv_input& dk, const kv_input& dv) {
    return refused(code, [&] {
      static_cast<void>(kernels::make_append_work(view, token_indptr.data(), dk, dv, 3));
    });
  };
  const auto host_refusal = [&](cache_errc code, const kv_input& hk, const kv_input& hv) {
    return refused(code, [&] { cache.write(plan, 0, hk, hv); });
  };
  // The part after the caller's name is the same.
  const auto same_reason = [](const std::string& device, const std::string& host) {
    CHECK(device.substr(device.find(": ")) == host.substr(host.find(": ")));
  };
  // K given as [4][32][64] for the layer's [4][2][96].
  const kv_input wrong_shape = fp32_input(k.data(), 4, 32, 64);
  same_reason(device_refusal(cache_errc::shape_mismatch, wrong_shape, good_v),
              host_refusal(cache_errc::shape_mismatch, wrong_shape, good_v));
  const kv_input wrong_tokens = fp32_input(k.data(), 3, 2, 96);
  same_reason(device_refusal(cache_errc::shape_mismatch, good_k, wrong_tokens),
              host_refusal(cache_errc::shape_mismatch, good_k, wrong_tokens));
  kv_input wrong_type = good_k;
  wrong_type.type = dtype_id::int8;
  same_reason(device_refusal(cache_errc::dtype_mismatch, wrong_type, good_v),
              host_refusal(cache_errc::dtype_mismatch, wrong_type, good_v));
  kv_input missing = good_v;
  missing.data = nullptr;
  same_reason(device_refusal(cache_errc::shape_mismatch, good_k, missing),
              host_refusal(cache_errc::shape_mismatch, good_k, missing));
  kv_input bad_stride = good_k;
  bad_stride.token_stride = -1;
  same_reason(device_refusal(cache_errc::shape_mismatch, bad_stride, good_v),
              host_refusal(cache_errc::shape_mismatch, bad_stride, good_v));
  // What only the device path can get wrong.
  const std::vector<std::uint16_t> k16(k.size());
  device_refusal(cache_errc::dtype_mismatch, bf16_input(k16.data(), 4, 2, 96), good_v);
  refused(cache_errc::invalid_argument,
          [&] { static_cast<void>(kernels::make_append_work(view, nullptr, good_k, good_v)); });
  refused(cache_errc::invalid_argument, [&] {
    static_cast<void>(kernels::make_append_work(view, token_indptr.data(), good_k, good_v, 5));
  });
  const page_table_csr committed = cache.page_table(0, ids);
  refused(cache_errc::invalid_argument, [&] {
    static_cast<void>(
        kernels::make_append_work(cache.view(0, committed), token_indptr.data(), good_k, good_v));
  });
  // A kernel of other dtypes than the layer's (fp16 for a bf16 layer), or of another input.
  const kernels::append_work work =
      kernels::make_append_work(view, token_indptr.data(), good_k, good_v, 3);
  const std::string message =
      refused(cache_errc::dtype_mismatch, [&] { simt::append<fp16, fp16, fp32>(work); });
  CHECK(message == "kvc::simt::append: the kernel stores fp16/fp16, layer 0 stores bf16/bf16");
  refused(cache_errc::dtype_mismatch, [&] { simt::append<bf16, bf16, bf16>(work); });
  // Nothing was written: commit refuses the unwritten layer, the step still completes.
  refused(cache_errc::invalid_argument, [&] { cache.commit(plan); });
  simt::append<bf16, bf16, fp32>(work);
  cache.mark_written(plan, 0);
  cache.commit(plan);
  // What the kernel stored is what write() stores.
  std::vector<float> stored(2 * 96), expected(2 * 96);
  CHECK(cache.read(ids[1], 0, 11, stored.data(), nullptr));
  for (std::size_t i = 0; i < stored.size(); ++i)
    expected[i] = numeric::bf16_to_float(numeric::bf16_from_float(k[3 * 2 * 96 + i]));
  CHECK(stored == expected);
  still_works(cache, std::span<const sequence_id>(ids), 8, rng);
}

TEST_CASE("the device append refuses V for a latent layer") {
  kv_cache<latent_model, paged<16>> cache(capacity_pages{4});
  const sequence_id ids[] = {cache.add_sequence()};
  const append_request step[] = {{ids[0], 2}};
  append_plan plan = cache.plan_append(step);
  const page_table_csr table = cache.step_table(plan, 0);
  const paged_layer_view view = cache.view(0, table);
  const std::vector<std::int64_t> token_indptr{0, 2};
  const std::vector<float> k(2 * 48, 0.5f);
  const kv_input input = fp32_input(k.data(), 2, 1, 48);
  refused(cache_errc::shape_mismatch, [&] {
    static_cast<void>(kernels::make_append_work(view, token_indptr.data(), input, input));
  });
  simt::append<fp16>(kernels::make_append_work(view, token_indptr.data(), input, kv_input{}));
  cache.mark_written(plan, 0);
  cache.commit(plan);
  std::vector<float> stored(48);
  CHECK(cache.read(ids[0], 0, 1, stored.data(), nullptr));
  CHECK(stored == std::vector<float>(48, 0.5f));
  cache.check_invariants();
}

TEST_CASE("write and append refuse V for a latent layer, and append before anything changes") {
  kv_cache<latent_model, paged<16>> cache(capacity_pages{4});
  const sequence_id ids[] = {cache.add_sequence()};
  const append_request step[] = {{ids[0], 2}};
  const std::vector<float> k(2 * 48, 0.5f);
  const kv_input input = fp32_input(k.data(), 2, 1, 48);
  const std::uint64_t epoch = cache.epoch();
  const layer_input with_v{0, input, input};
  const std::string message = refused(cache_errc::shape_mismatch, [&] {
    cache.append(step, {&with_v, 1});
  });
  CHECK(message ==
        "kvc::kv_cache::append: layer 0 is a latent layer: its values are part of K; pass no V");
  CHECK(cache.epoch() == epoch);  // no plan was opened
  CHECK(cache.used_pages(0) == 0);
  CHECK(cache.length(ids[0]) == 0);
  append_plan plan = cache.plan_append(step);
  refused(cache_errc::shape_mismatch, [&] { cache.write(plan, 0, input, input); });
  cache.write(plan, 0, input, kv_input{});
  cache.commit(plan);
  CHECK(cache.length(ids[0]) == 2);
  cache.check_invariants();
}

TEST_CASE("admission: admit, can_append and sequences_that_fit say what plan_append would do") {
  using full = layer<gqa<4, 2>, head_dim<16>, storage<fp16>>;
  using sliding = layer<gqa<4, 2>, head_dim<16>, sliding_window<40>, storage<fp16>>;
  struct two_groups : stack<repeat<1, full>, repeat<1, sliding>> {};
  using cache_type = kv_cache<two_groups, paged<16>>;
  static_assert(cache_type::num_groups == 2);
  std::mt19937 rng(8);
  {
    // A fresh cache holds exactly sequences_that_fit(n) sequences of n tokens.
    for (const std::int64_t n : {1, 16, 17, 100, 300}) {
      INFO(n << " tokens");
      cache_type cache(capacity_pages{40});
      const std::int64_t fit = cache.sequences_that_fit(n);
      std::vector<append_request> batch;
      for (std::int64_t i = 0; i < fit; ++i) batch.push_back({cache.add_sequence(), n});
      CHECK(cache.can_append(batch));
      batch.push_back({cache.add_sequence(), n});
      CHECK(!cache.can_append(batch));
      CHECK(cache.admit(batch).valid);
      refused(cache_errc::out_of_pages, [&] { static_cast<void>(cache.plan_append(batch)); });
      batch.pop_back();
      append_plan plan = cache.plan_append(batch);
    }
    cache_type cache(capacity_pages{40});
    CHECK(cache.sequences_that_fit(0) == unlimited_tokens);
    CHECK(cache.sequences_that_fit(-1) == 0);
  }
  // Random batches over sequences with forks (shared pages a step copies) and windows: admit
  // agrees with plan_append, page for page.
  cache_type cache(capacity_pages{30});
  std::vector<sequence_id> live;
  std::uniform_int_distribution<int> pick(0, 99);
  int planned = 0, out_of_pages = 0, invalid = 0;
  for (int round = 0; round < 400; ++round) {
    if (live.size() < 6 || pick(rng) < 10) {
      if (!live.empty() && pick(rng) < 50) {
        const sequence_id parent = live[static_cast<std::size_t>(pick(rng)) % live.size()];
        live.push_back(cache.fork(parent));
      } else {
        live.push_back(cache.add_sequence());
      }
    }
    if (live.size() > 10 || pick(rng) < 5) {
      const std::size_t i = static_cast<std::size_t>(pick(rng)) % live.size();
      cache.release(live[i]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    std::vector<append_request> batch;
    for (const sequence_id id : live)
      if (pick(rng) < 50) batch.push_back({id, pick(rng) < 70 ? 1 : pick(rng)});
    if (pick(rng) < 5 && !batch.empty()) batch.push_back(batch.front());  // repeated
    if (pick(rng) < 5 && !batch.empty()) batch.back().tokens = -1;        // bad count
    if (pick(rng) < 5) batch.push_back({sequence_id{12345, 0}, 1});       // unknown
    const cache_type::admission a = cache.admit(batch);
    CHECK(cache.can_append(batch) == (a.valid && a.fits));
    const std::int64_t free0 = cache.free_pages(0), free1 = cache.free_pages(1);
    try {
      append_plan plan = cache.plan_append(batch);
      CHECK(a.valid);
      CHECK(a.fits);
      CHECK(free0 - cache.free_pages(0) == a.pages[0]);
      CHECK(free1 - cache.free_pages(1) == a.pages[1]);
      ++planned;
      if (pick(rng) < 70) {
        const page_geometry& geo = cache.geometry(0);
        std::int64_t rows = 0;
        for (const append_request& r : batch) rows += r.tokens;
        const std::vector<float> k(static_cast<std::size_t>(rows * geo.kv_heads * geo.k_dim), 0.5f);
        const kv_input in = fp32_input(k.data(), rows, geo.kv_heads, geo.k_dim);
        for (int l = 0; l < cache_type::num_layers; ++l) cache.write(plan, l, in, in);
        cache.commit(plan);
      }
    } catch (const cache_error& e) {
      if (e.code() == cache_errc::out_of_pages) {
        CHECK(a.valid);
        CHECK(!a.fits);
        ++out_of_pages;
      } else {
        CHECK(!a.valid);
        CHECK(a.pages[0] == 0);  // a refused batch counts no pages
        CHECK(a.pages[1] == 0);
        ++invalid;
      }
    }
  }
  cache.check_invariants();
  CHECK(planned > 50);
  CHECK(out_of_pages > 5);
  CHECK(invalid > 5);
  // With a plan open, nothing can be planned.
  const append_request one[] = {{live.front(), 1}};
  append_plan open = cache.plan_append(one);
  CHECK(!cache.admit(one).valid);
}

TEST_CASE("the checks allocate nothing when they pass") {
  namespace counting = kvc::testing::failing_new;
  mha_cache cache(capacity_pages{16});
  std::mt19937 rng(9);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
  append_random(cache, std::span<const sequence_id>(ids), 30, rng);
  const append_request step[] = {{ids[0], 1}, {ids[1], 1}};
  append_plan plan = cache.plan_append(step);
  const page_table_csr table = cache.step_table(plan, 0);
  const std::vector<float> k = random_values(2 * mha_heads * dim, rng);
  const kv_input input = fp32_input(k.data(), 2, mha_heads, dim);
  const std::vector<std::int64_t> token_indptr{0, 1, 2};
  cache.write(plan, 0, input, input);
  const paged_layer_view view = cache.view(0, table);
  const cpu::decode_plan decode_plan = cpu::plan_decode(view, mha_heads, 1);
  cpu::decode_workspace workspace;
  const std::vector<float> q = random_values(2 * mha_heads * dim, rng);
  std::vector<float> out(2 * mha_heads * dim), lse(2 * mha_heads);
  const auto decode = [&] {
    cpu::decode(decode_plan, view, std::span<const float>(q), std::span<float>(out),
                std::span<float>(lse), attention::attention_params{0.25f}, workspace,
                cpu::serial());
  };
  decode();  // warm: the workspace and the thread's buffers are sized
  counting::seen = 0;
  counting::countdown = 1L << 60;  // counts every allocation, fails none
  static_cast<void>(kernels::make_append_work(view, token_indptr.data(), input, input, 1));
  cache.write(plan, 1, input, input);
  decode();
  counting::countdown = 0;
  CHECK(counting::seen == 0);
}
