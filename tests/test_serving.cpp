// The cache and CPU attention as an engine drives them, step by step: attention inside an
// open step (bit for bit the result after commit), plans that abort when dropped, rollback
// (truncate) with a reserve for window layers, fork at a position, strided inputs, per-layer
// parameters by index, stale tables and mismatched plans, refilled tables.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_check.hpp"
#include "kvc/attention/layer_params.hpp"
#include "kvc/backend/cpu/compiled.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/model/footprint.hpp"
#include "kvc/models/deepseek.hpp"
#include "kvc/models/gemma.hpp"
#include "kvc/models/gpt_oss.hpp"
#include "kvc/models/llama.hpp"

using namespace kvc;
using namespace kvc::testing;

namespace {

// One layer of every kind an engine meets: GQA, a sliding window (int8), streaming sinks with
// learned sink logits (fp8), MLA, chunked (int4) and a layer that reads layer 0's cache.
using full_layer = layer<gqa<8, 2>, head_dim<32>, storage<fp16>>;
using window_layer = layer<gqa<8, 2>, head_dim<32>, sliding_window<40>, storage<int8>>;
using sink_layer =
    layer<gqa<4, 2>, head_dim<32>, streaming<4, 24>, storage<fp8_e4m3>, learned_sinks>;
using mla_layer = layer<mqa<8>, latent<32, 16>, storage<bf16>, inv_sqrt_scale<48>>;
using chunk_layer = layer<mqa<4>, head_dim<32>, chunked<32>, storage<int4>>;
struct serving_model
    : stack<repeat<1, full_layer>, repeat<1, window_layer>, repeat<1, sink_layer>,
            repeat<1, mla_layer>, repeat<1, chunk_layer>, repeat<1, kv_shared<0, full_layer>>> {};
using serving_cache = kv_cache<serving_model, paged<16>>;
constexpr int layers = serving_model::num_layers;

const layer_summary& summary(int l) {
  return serving_model::layer_summaries[static_cast<std::size_t>(l)];
}

template <class Cache>
cache_errc error_of(Cache&, auto&& call) {
  try {
    call();
  } catch (const cache_error& e) {
    return e.code();
  }
  FAIL("no cache_error was thrown");
  return cache_errc::invalid_argument;
}

// Random K/V for every owning layer of one step of `rows` tokens, from a seeded generator.
struct step_inputs {
  std::vector<std::vector<float>> k, v;
  std::vector<layer_input> layers;
};
step_inputs random_step(std::int64_t rows, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  step_inputs s;
  s.k.resize(layers);
  s.v.resize(layers);
  for (int l = 0; l < layers; ++l) {
    const layer_summary& info = summary(l);
    if (!info.owns_cache()) continue;
    auto& k = s.k[static_cast<std::size_t>(l)];
    k.resize(static_cast<std::size_t>(rows * info.kv_heads * info.k_dim));
    for (float& x : k) x = normal(rng);
    layer_input in{l, fp32_input(k.data(), rows, info.kv_heads, info.k_dim), {}};
    if (!info.latent) {
      auto& v = s.v[static_cast<std::size_t>(l)];
      v.resize(static_cast<std::size_t>(rows * info.kv_heads * info.v_dim));
      for (float& x : v) x = normal(rng);
      in.v = fp32_input(v.data(), rows, info.kv_heads, info.v_dim);
    }
    s.layers.push_back(in);
  }
  return s;
}

// The same history in any cache: sequences of 100 and 37 tokens, a fork of the second
// (its last page shared, half full), and a new, empty sequence.
std::vector<sequence_id> build_history(serving_cache& cache) {
  std::vector<sequence_id> ids{cache.add_sequence(), cache.add_sequence()};
  const append_request first[] = {{ids[0], 100}, {ids[1], 37}};
  const step_inputs s = random_step(137, 11);
  cache.append(first, s.layers);
  ids.push_back(cache.fork(ids[1]));
  ids.push_back(cache.add_sequence());
  return ids;
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

const std::vector<float>& sink_logits() {
  static const std::vector<float> sinks = random_floats(8, 99);
  return sinks;
}

struct layer_result {
  std::vector<float> out, lse;
};

// Decode of layer l over a view; q is [batch][q_heads][k_dim].
layer_result decode_layer(const paged_layer_view& view, int l, const std::vector<float>& q) {
  const layer_summary& info = summary(l);
  const auto batch = static_cast<std::size_t>(view.batch);
  const auto q_heads = static_cast<std::size_t>(info.q_heads);
  layer_result r{std::vector<float>(batch * q_heads * static_cast<std::size_t>(info.v_dim)),
                 std::vector<float>(batch * q_heads)};
  const cpu::decode_plan plan = cpu::plan_decode(view, info.q_heads, 2, 32);
  cpu::decode_workspace workspace;
  cpu::decode(plan, view, q.data(), r.out.data(), r.lse.data(),
              attention::layer_params<serving_model>(l, sink_logits().data()), workspace,
              pool().ref());
  return r;
}

// Two caches with the same history and the same step of `tokens` per sequence written: in
// `open` the step's plan is still open, in `committed` it is committed.
struct twin_step {
  serving_cache open, committed;
  std::vector<sequence_id> ids;
  append_plan plan;
  twin_step(std::int64_t reserve, std::int64_t tokens, std::uint32_t seed)
      : open(capacity_pages{64, reserve}), committed(capacity_pages{64, reserve}) {
    ids = build_history(open);
    REQUIRE(build_history(committed) == ids);
    std::vector<append_request> batch;
    for (sequence_id id : ids) batch.push_back({id, tokens});
    const step_inputs s = random_step(tokens * static_cast<std::int64_t>(ids.size()), seed);
    plan = open.plan_append(batch);
    append_plan other = committed.plan_append(batch);
    for (const layer_input& in : s.layers) {
      open.write(plan, in.layer, in.k, in.v);
      committed.write(other, in.layer, in.k, in.v);
    }
    committed.commit(other);
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("decode inside an open step equals decode after commit, bit for bit") {
  // Every layer kind; a fork whose shared half page the step copies; a sequence whose first
  // token is the step's; a sliding window and a chunk that cross pages within the step.
  for (const std::int64_t reserve : {0, 5}) {
    twin_step twins(reserve, 1, 12);
    serving_cache &open = twins.open, &committed = twins.committed;
    const std::vector<sequence_id>& ids = twins.ids;
    append_plan& plan = twins.plan;
    for (int l = 0; l < layers; ++l) {
      INFO("layer " << l << ", reserve " << reserve);
      const layer_summary& info = summary(l);
      const std::vector<float> q = random_floats(
          4 * static_cast<std::size_t>(info.q_heads * info.k_dim), static_cast<unsigned>(20 + l));
      const page_table_csr step = open.step_table(plan, l);
      const page_table_csr after = committed.page_table(l, ids);
      CHECK(step.indices.size() == after.indices.size());
      CHECK(step.seq_lens == after.seq_lens);
      const layer_result a = decode_layer(open.view(l, step), l, q);
      const layer_result b = decode_layer(committed.view(l, after), l, q);
      CHECK(same_bits(a.out, b.out));
      CHECK(same_bits(a.lse, b.lse));
    }
    open.commit(plan);
    open.check_invariants();
  }
}

TEST_CASE("extend inside an open step reads the step's tokens from the cache") {
  // A step of 3 tokens per sequence. Over the step's view (new K/V already written), extend
  // must equal the same call after commit bit for bit, and the reference within the bound.
  // Window layers need a rollback reserve of rows - 1 = 2 to keep what the first row sees.
  twin_step twins(2, 3, 13);
  serving_cache &open = twins.open, &committed = twins.committed;
  const std::vector<sequence_id>& ids = twins.ids;
  append_plan& plan = twins.plan;
  const std::int32_t qo[] = {0, 3, 6, 9, 12};
  cpu::extend_workspace workspace;
  for (int l = 0; l < layers; ++l) {
    INFO("layer " << l);
    const layer_summary& info = summary(l);
    const std::size_t rows = 12;
    const std::vector<float> q = random_floats(
        rows * static_cast<std::size_t>(info.q_heads * info.k_dim), static_cast<unsigned>(40 + l));
    const auto params = attention::layer_params<serving_model>(l, sink_logits().data());
    const auto q_heads = static_cast<std::size_t>(info.q_heads);
    const auto k_dim = static_cast<std::size_t>(info.k_dim);
    const auto v_dim = static_cast<std::size_t>(info.v_dim);
    std::vector<float> out(rows * q_heads * v_dim), lse(rows * q_heads);
    std::vector<float> out2 = out, lse2 = lse;
    const page_table_csr step = open.step_table(plan, l);
    cpu::extend(open.view(l, step), qo, info.q_heads, q.data(), out.data(), lse.data(), params,
                workspace, pool().ref());
    const page_table_csr after = committed.page_table(l, ids);
    cpu::extend(committed.view(l, after), qo, info.q_heads, q.data(), out2.data(), lse2.data(),
                params, workspace, pool().ref());
    CHECK(same_bits(out, out2));
    CHECK(same_bits(lse, lse2));
    // Against the reference, over what the committed cache holds.
    const int group = info.q_heads / info.kv_heads;
    std::vector<std::vector<float>> keys, values;
    for (std::size_t b = 0; b < ids.size(); ++b)
      for (int t = 0; t < 3; ++t) {
        const std::int64_t position = committed.length(ids[b]) - 3 + t;
        const std::size_t row = b * 3 + static_cast<std::size_t>(t);
        for (int h = 0; h < info.q_heads; ++h) {
          visible_kv(committed, ids[b], l, h / group, position, info.window, info.kv_heads,
                     info.k_dim, info.v_dim, keys, values);
          const double sink = sink_logits()[static_cast<std::size_t>(h)];
          const reference_result ref =
              reference_attend(q.data() + (row * q_heads + static_cast<std::size_t>(h)) * k_dim,
                               info.k_dim, info.v_dim, keys, values, params.scale, params.softcap,
                               params.sink_logits != nullptr ? &sink : nullptr);
          compare_with_reference(ref, values,
                                 out.data() + (row * q_heads + static_cast<std::size_t>(h)) * v_dim,
                                 lse[row * q_heads + static_cast<std::size_t>(h)], info.v_dim);
        }
      }
  }
  open.commit(plan);

  // Without the reserve, a window layer's step view has let go of what the first row sees.
  serving_cache tight(capacity_pages{64});
  const std::vector<sequence_id> tight_ids = build_history(tight);
  const append_request three{tight_ids[0], 3};
  append_plan tight_plan = tight.plan_append({&three, 1});
  for (const layer_input& in : random_step(3, 14).layers)
    tight.write(tight_plan, in.layer, in.k, in.v);
  const page_table_csr step = tight.step_table(tight_plan, 1);
  const std::int32_t one_sequence[] = {0, 3};
  std::vector<float> q(3 * 8 * 32), out(3 * 8 * 32), lse(3 * 8);
  CHECK(error_of(tight, [&] {
          cpu::extend(tight.view(1, step), one_sequence, 8, q.data(), out.data(), lse.data(),
                      attention::layer_params<serving_model>(1), workspace, pool().ref());
        }) == cache_errc::invalid_argument);
}

TEST_CASE("compiled.hpp's decode and extend are kvc::cpu's, bit for bit") {
  // The declarations of kvc/backend/cpu/compiled.hpp, defined in another translation unit
  // (compiled_once.cpp), against the header-only calls, for every layer kind: decode and
  // extend over an open step, extend over the committed prefix with the new K/V.
  twin_step twins(2, 3, 13);
  serving_cache& open = twins.open;
  const std::vector<sequence_id>& ids = twins.ids;
  const step_inputs inputs = random_step(12, 13);  // the K/V twin_step wrote
  const std::int32_t qo[] = {0, 3, 6, 9, 12};
  cpu::extend_workspace ews;
  cpu::decode_workspace dws;
  for (int l = 0; l < layers; ++l) {
    INFO("layer " << l);
    const layer_summary& info = summary(l);
    const auto q_heads = static_cast<std::size_t>(info.q_heads);
    const auto v_dim = static_cast<std::size_t>(info.v_dim);
    const std::vector<float> q = random_floats(12 * q_heads * static_cast<std::size_t>(info.k_dim),
                                               static_cast<unsigned>(60 + l));
    const auto params = attention::layer_params<serving_model>(l, sink_logits().data());
    std::vector<float> out(12 * q_heads * v_dim), lse(12 * q_heads);
    std::vector<float> out2 = out, lse2 = lse;
    const page_table_csr step = open.step_table(twins.plan, l);
    const paged_layer_view view = open.view(l, step);

    const cpu::decode_plan plan = cpu::plan_decode(view, info.q_heads, 2, 32);
    cpu::decode(plan, view, q.data(), out.data(), lse.data(), params, dws, pool().ref());
    cpu::compiled::decode(plan, view, q.data(), out2.data(), lse2.data(), params, dws,
                          pool().ref());
    CHECK(same_bits(out, out2));
    CHECK(same_bits(lse, lse2));

    cpu::extend(view, qo, info.q_heads, q.data(), out.data(), lse.data(), params, ews,
                pool().ref());
    cpu::compiled::extend(view, qo, info.q_heads, q.data(), out2.data(), lse2.data(), params, ews,
                          pool().ref());
    CHECK(same_bits(out, out2));
    CHECK(same_bits(lse, lse2));

    for (const layer_input& in : inputs.layers) {
      if (in.layer != l) continue;
      const page_table_csr prefix = open.page_table(l, ids);
      const paged_layer_view before = open.view(l, prefix);
      cpu::extend(before, qo, info.q_heads, q.data(), in.k, in.v, out.data(), lse.data(), params,
                  ews, pool().ref());
      cpu::compiled::extend(before, qo, info.q_heads, q.data(), in.k, in.v, out2.data(),
                            lse2.data(), params, ews, pool().ref());
      CHECK(same_bits(out, out2));
      CHECK(same_bits(lse, lse2));
    }
  }
  open.abort(twins.plan);
}

TEST_CASE("a plan dropped in the middle of an engine's layer loop gives everything back") {
  serving_cache cache(capacity_pages{64});
  const std::vector<sequence_id> ids = build_history(cache);
  const std::vector<std::int64_t> free_before{cache.free_pages(0), cache.free_pages(1),
                                              cache.free_pages(2), cache.free_pages(3),
                                              cache.free_pages(4)};
  const std::vector<append_request> batch{{ids[0], 20}, {ids[2], 5}, {ids[3], 17}};
  const step_inputs s = random_step(42, 15);
  try {
    append_plan plan = cache.plan_append(batch);
    for (const layer_input& in : s.layers) {
      cache.write(plan, in.layer, in.k, in.v);
      if (in.layer == 2) throw std::runtime_error("the engine's layer 2 failed");
    }
    cache.commit(plan);
    FAIL("the engine did not fail");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "the engine's layer 2 failed");
  }
  cache.check_invariants();
  for (int g = 0; g < serving_cache::num_groups; ++g)
    CHECK(cache.free_pages(g) == free_before[static_cast<std::size_t>(g)]);
  CHECK(cache.length(ids[0]) == 100);
  // The next step goes through as if nothing had happened.
  cache.append(batch, s.layers);
  CHECK(cache.length(ids[0]) == 120);
  CHECK(cache.length(ids[3]) == 17);
  cache.check_invariants();

  // A moved-from plan is not open; moving hands the plan on; assigning over an open plan
  // aborts it.
  const append_request one{ids[1], 16};  // a fresh page in every group
  append_plan first = cache.plan_append({&one, 1});
  append_plan moved = std::move(first);
  CHECK_FALSE(first.is_open());
  CHECK(moved.is_open());
  CHECK(error_of(cache, [&] { cache.abort(first); }) == cache_errc::plan_conflict);
  CHECK(error_of(cache, [&] { (void)cache.plan_append({&one, 1}); }) == cache_errc::plan_conflict);
  const std::int64_t free_now = cache.free_pages(0);
  moved = append_plan{};  // aborts
  CHECK(cache.free_pages(0) == free_now + 1);
  append_plan again = cache.plan_append({&one, 1});
  const step_inputs t = random_step(16, 16);
  // A commit before every layer is written is refused, and the plan stays open.
  for (const layer_input& in : t.layers)
    if (in.layer < 3) cache.write(again, in.layer, in.k, in.v);
  CHECK(error_of(cache, [&] { cache.commit(again); }) == cache_errc::invalid_argument);
  CHECK(again.is_open());
  for (const layer_input& in : t.layers) cache.write(again, in.layer, in.k, in.v);
  cache.commit(again);
  CHECK(cache.length(ids[1]) == 53);
  cache.check_invariants();
}

TEST_CASE("truncate rolls back rejected draft tokens, within the rollback reserve") {
  constexpr std::int64_t reserve = 6;
  serving_cache cache(capacity_pages{64, reserve});
  const sequence_id seq = cache.add_sequence();
  const step_inputs prompt = random_step(90, 17);
  const append_request p{seq, 90};
  cache.append({&p, 1}, prompt.layers);
  // Keep the values of the first 90 tokens to compare after the rollback.
  const auto read_all = [&](std::int64_t n) {
    std::vector<float> all;
    std::vector<float> k(64), v(64);
    for (int l = 0; l < layers; ++l)
      for (std::int64_t position = 0; position < n; ++position)
        if (summary(l).window.visible(n - 1, position)) {
          REQUIRE(cache.read(seq, l, position, k.data(), v.data()));
          all.insert(all.end(), k.begin(), k.end());
          all.insert(all.end(), v.begin(), v.end());
        }
    return all;
  };
  const std::vector<float> before = read_all(90);
  // A speculative step: 6 draft tokens, 2 accepted; the rest go.
  const step_inputs drafts = random_step(6, 18);
  const append_request d{seq, 6};
  cache.append({&d, 1}, drafts.layers);
  const std::int64_t used_at_96 = cache.used_pages(0);
  CHECK(cache.can_truncate(seq, 92));
  cache.truncate(seq, 92);
  CHECK(cache.length(seq) == 92);
  cache.check_invariants();
  CHECK(cache.used_pages(0) <= used_at_96);
  // Back to 90 (by 2 more): the window layers still hold everything a 90-token sequence sees.
  cache.truncate(seq, 90);
  CHECK(same_bits(read_all(90), before));
  cache.check_invariants();
  // Past the reserve, the sliding window has let go: refused, and nothing changes.
  CHECK_FALSE(cache.can_truncate(seq, 90 - reserve - 41));
  const std::int64_t free_pages = cache.free_pages(1);
  CHECK(error_of(cache, [&] { cache.truncate(seq, 30); }) == cache_errc::rollback_exceeded);
  CHECK(cache.length(seq) == 90);
  CHECK(cache.free_pages(1) == free_pages);
  CHECK(error_of(cache, [&] { cache.truncate(seq, 91); }) == cache_errc::invalid_argument);
  // A shared page is let go, not written: a fork keeps its tokens while the parent rolls
  // back and goes on with others.
  const step_inputs more = random_step(4, 26);
  const append_request four{seq, 4};
  cache.append({&four, 1}, more.layers);
  const sequence_id child = cache.fork(seq);
  std::vector<float> k(64), v(64), k2(64), v2(64);
  REQUIRE(cache.read(child, 0, 91, k.data(), v.data()));
  const std::vector<float> child_91 = k;
  cache.truncate(seq, 90);
  cache.append({&four, 1}, random_step(4, 27).layers);
  REQUIRE(cache.read(child, 0, 91, k.data(), v.data()));
  CHECK(k == child_91);
  REQUIRE(cache.read(seq, 0, 91, k2.data(), v2.data()));
  CHECK(k2 != child_91);
  for (std::int64_t position = 70; position < 90; ++position) {
    REQUIRE(cache.read(child, 0, position, k.data(), v.data()));
    REQUIRE(cache.read(seq, 0, position, k2.data(), v2.data()));
    CHECK(k == k2);
  }
  cache.check_invariants();
  // Without a reserve, the sliding window refuses any rollback that reaches back past it...
  serving_cache tight(capacity_pages{64});
  const sequence_id t = tight.add_sequence();
  tight.append({&p, 1}, prompt.layers);  // the same 90 tokens
  CHECK(error_of(tight, [&] { tight.truncate(t, 89); }) == cache_errc::rollback_exceeded);
  // ...and a full-attention model rolls back anywhere.
  kv_cache<models::llama3_8b, paged<16>> llama(capacity_pages{16});
  const sequence_id l = llama.add_sequence();
  std::vector<float> lk(50 * 8 * 128, 0.5f), lv(50 * 8 * 128, 0.25f);
  std::vector<layer_input> inputs;
  for (int layer = 0; layer < 32; ++layer)
    inputs.push_back({layer, fp32_input(lk.data(), 50, 8, 128), fp32_input(lv.data(), 50, 8, 128)});
  const append_request fifty{l, 50};
  llama.append({&fifty, 1}, inputs);
  llama.truncate(l, 3);
  CHECK(llama.pages_of(l, 0) == 1);
  llama.check_invariants();
}

TEST_CASE("the footprint and capacity count the rollback reserve") {
  using g3 = models::gemma3_27b;
  STATIC_REQUIRE(footprint<g3>::bytes_for_tokens(4096, 0) == footprint<g3>::bytes_for_tokens(4096));
  // Local layers keep 1024 + R tokens: 52 local layers x 16 KV heads x 128 dims x 2 x 2 bytes.
  STATIC_REQUIRE(footprint<g3>::bytes_for_tokens(4096, 8) - footprint<g3>::bytes_for_tokens(4096) ==
                 8ull * 52 * 16 * 128 * 2 * 2);
  STATIC_REQUIRE(footprint<g3>::bytes_for_tokens(500, 8) == footprint<g3>::bytes_for_tokens(500));
  // A cache built with a reserve gives its local group more pages for the same budget share.
  kv_cache<g3, paged<16>> plain(capacity_bytes{1ull << 30, 32768});
  kv_cache<g3, paged<16>> spec(capacity_bytes{1ull << 30, 32768, 64});
  CHECK(spec.rollback_reserve() == 64);
  const int local = decltype(plain)::group_of_layer(0);
  CHECK(spec.capacity_pages_of(local) > plain.capacity_pages_of(local));
}

TEST_CASE("fork at a position shares only the parent's first tokens") {
  serving_cache cache(capacity_pages{64, 8});
  const sequence_id parent = cache.add_sequence();
  const step_inputs prompt = random_step(70, 19);
  const append_request p{parent, 70};
  cache.append({&p, 1}, prompt.layers);
  const sequence_id child = cache.fork(parent, 66);
  CHECK(cache.length(child) == 66);
  CHECK(cache.pages_of(child, 0) == 5);  // positions 0..65, pages of 16
  std::vector<float> a(64), b(64), va(64), vb(64);
  for (std::int64_t position = 0; position < 66; ++position) {
    REQUIRE(cache.read(parent, 0, position, a.data(), va.data()) ==
            cache.read(child, 0, position, b.data(), vb.data()));
    CHECK(a == b);
  }
  // Both go on with different tokens; the shared half page is copied, not overwritten.
  const step_inputs x = random_step(10, 20), y = random_step(10, 21);
  const append_request cx{child, 10}, px{parent, 10};
  cache.append({&cx, 1}, x.layers);
  cache.append({&px, 1}, y.layers);
  cache.read(child, 0, 66, a.data(), va.data());
  cache.read(parent, 0, 66, b.data(), vb.data());
  CHECK(a != b);
  cache.read(child, 0, 65, a.data(), va.data());
  cache.read(parent, 0, 65, b.data(), vb.data());
  CHECK(a == b);
  cache.check_invariants();
  // A sliding window that no longer holds the fork's tokens refuses it.
  CHECK(error_of(cache, [&] { (void)cache.fork(parent, 10); }) == cache_errc::rollback_exceeded);
  CHECK(error_of(cache, [&] { (void)cache.fork(parent, 81); }) == cache_errc::invalid_argument);
  const sequence_id empty = cache.fork(parent, 0);
  CHECK(cache.length(empty) == 0);
  cache.check_invariants();
}

TEST_CASE("K and V slices of a fused QKV projection go in without a copy") {
  // [tokens][q heads + 2 kv heads][dim], fp16: the K and V slices are strided views.
  constexpr int q_heads = 8, kv_heads = 2, dim = 32, tokens = 21;
  constexpr int row = (q_heads + 2 * kv_heads) * dim;
  std::vector<std::uint16_t> qkv(static_cast<std::size_t>(tokens * row));
  std::mt19937 rng(22);
  std::normal_distribution<float> normal;
  for (auto& x : qkv) x = numeric::fp16_from_float(normal(rng));
  std::vector<std::uint16_t> dense_k(static_cast<std::size_t>(tokens * kv_heads * dim)),
      dense_v(dense_k.size());
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < kv_heads; ++h)
      for (int d = 0; d < dim; ++d) {
        const auto i = static_cast<std::size_t>((t * kv_heads + h) * dim + d);
        dense_k[i] = qkv[static_cast<std::size_t>(t * row + (q_heads + h) * dim + d)];
        dense_v[i] = qkv[static_cast<std::size_t>(t * row + (q_heads + kv_heads + h) * dim + d)];
      }
  using one = stack<repeat<1, full_layer>>;
  kv_cache<one, paged<16>> strided(capacity_pages{8}), dense(capacity_pages{8});
  const sequence_id a = strided.add_sequence(), b = dense.add_sequence();
  const kv_input k_slice{qkv.data() + q_heads * dim, dtype_id::fp16, tokens, kv_heads, dim, row};
  const kv_input v_slice{
      qkv.data() + (q_heads + kv_heads) * dim, dtype_id::fp16, tokens, kv_heads, dim, row};
  const append_request ra{a, tokens}, rb{b, tokens};
  const layer_input sa{0, k_slice, v_slice};
  const layer_input sb{0, fp16_input(dense_k.data(), tokens, kv_heads, dim),
                       fp16_input(dense_v.data(), tokens, kv_heads, dim)};
  strided.append({&ra, 1}, {&sa, 1});
  dense.append({&rb, 1}, {&sb, 1});
  std::vector<float> k1(64), v1(64), k2(64), v2(64);
  for (std::int64_t p = 0; p < tokens; ++p) {
    strided.read(a, 0, p, k1.data(), v1.data());
    dense.read(b, 0, p, k2.data(), v2.data());
    REQUIRE(k1 == k2);
    REQUIRE(v1 == v2);
  }
  // extend takes the same strided slices: the result is that of the dense copies.
  std::vector<float> q(static_cast<std::size_t>(tokens * q_heads * dim));
  for (float& x : q) x = normal(rng);
  std::vector<float> out1(q.size()), out2(q.size()), lse1(tokens * q_heads), lse2(lse1.size());
  const page_table_csr table = strided.page_table(0, std::vector<sequence_id>{a});
  const std::int32_t qo[] = {0, tokens};
  const auto params = attention::layer_params<one>(0);
  cpu::extend(strided.view(0, table), qo, q_heads, q.data(), k_slice, v_slice, out1.data(),
              lse1.data(), params, cpu::serial());
  cpu::extend(strided.view(0, table), qo, q_heads, q.data(), sb.k, sb.v, out2.data(), lse2.data(),
              params, cpu::serial());
  CHECK(same_bits(out1, out2));
  // A null V says that V is missing.
  const append_request next{a, 1};
  const layer_input no_v{0, fp16_input(dense_k.data(), 1, kv_heads, dim), {}};
  try {
    strided.append({&next, 1}, {&no_v, 1});
    FAIL("a missing V was accepted");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::shape_mismatch);
    CHECK(std::string(e.what()).find("V of layer 0 is missing") != std::string::npos);
  }
  CHECK(strided.length(a) == tokens);
}

TEST_CASE("per-layer attention parameters by index, for any model typedef") {
  using g3 = models::gemma3_27b;
  const auto p0 = attention::layer_params<g3>(0);
  CHECK(p0.scale == Approx(1.0 / std::sqrt(168.0)));
  [&]<class... L>(type_list<L...>) {
    int l = 0;
    const float sinks[64] = {};
    (
        [&] {
          const auto a = attention::layer_params<models::gpt_oss_120b>(l, sinks);
          const auto b = attention::attention_params_of<typename L::attention>(sinks);
          CHECK(a.scale == b.scale);
          CHECK(a.softcap == b.softcap);
          CHECK(a.sink_logits == b.sink_logits);
          ++l;
        }(),
        ...);
  }(typename models::gpt_oss_120b::layer_list{});
  const float sinks[8] = {};
  CHECK(attention::layer_params<serving_model>(2, sinks).sink_logits == sinks);
  CHECK(attention::layer_params<serving_model>(0, sinks).sink_logits == nullptr);
  CHECK(attention::layer_params<serving_model>(3).scale == Approx(1.0 / std::sqrt(48.0)));
  CHECK(attention::layer_params<models::deepseek_v3>(0).scale == Approx(1.0 / std::sqrt(192.0)));
  serving_cache cache(capacity_pages{4});
  CHECK(error_of(cache, [] { (void)attention::layer_params<serving_model>(6); }) ==
        cache_errc::invalid_layer);
  CHECK(error_of(cache, [] { (void)attention::layer_params<serving_model>(-1); }) ==
        cache_errc::invalid_layer);
}

TEST_CASE("stale page tables and mismatched plans are refused before memory is read") {
  serving_cache cache(capacity_pages{64, 4});
  const std::vector<sequence_id> ids = build_history(cache);
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const std::vector<float> q = random_floats(4 * 8 * 32, 23);
  // A plan serves every layer of its table's group...
  const cpu::decode_plan plan = cpu::plan_decode(view, 8, 2);
  const page_table_csr shared_table = table;
  std::vector<float> out(4 * 8 * 32), lse(4 * 8);
  cpu::decode_workspace workspace;
  cpu::decode(plan, cache.view(5, table), q.data(), out.data(), lse.data(),
              attention::layer_params<serving_model>(5), workspace, pool().ref());
  // ...but not a view of another group's table, or of another table of the same group.
  const page_table_csr window_table = cache.page_table(1, ids);
  CHECK(error_of(cache, [&] {
          cpu::decode(plan, cache.view(1, window_table), q.data(), out.data(), lse.data(),
                      attention::layer_params<serving_model>(1), workspace, pool().ref());
        }) == cache_errc::plan_mismatch);
  const page_table_csr fewer =
      cache.page_table(0, std::vector<sequence_id>(ids.begin(), ids.end()));
  CHECK(error_of(cache, [&] {
          cpu::decode(plan, cache.view(0, fewer), q.data(), out.data(), lse.data(),
                      attention::layer_params<serving_model>(0), workspace, pool().ref());
        }) == cache_errc::plan_mismatch);
  CHECK(error_of(cache, [&] { (void)cache.view(1, table); }) == cache_errc::plan_mismatch);
  // Every call that changes a sequence makes older tables stale.
  const auto stale_after = [&](auto&& change) {
    const page_table_csr before = cache.page_table(0, std::vector<sequence_id>{ids[0]});
    change();
    CHECK(error_of(cache, [&] { (void)cache.view(0, before); }) == cache_errc::stale_table);
  };
  const step_inputs s = random_step(1, 24);
  const append_request one{ids[0], 1};
  stale_after([&] { cache.append({&one, 1}, s.layers); });
  stale_after([&] { cache.truncate(ids[0], 100); });
  stale_after([&] { (void)cache.fork(ids[0]); });
  stale_after([&] { cache.release(ids[3]); });
  stale_after([&] {
    append_plan dropped = cache.plan_append({&one, 1});
    cache.abort(dropped);
  });
  // A table taken while a plan is open (the step's prefix) stays valid until commit.
  append_plan open = cache.plan_append({&one, 1});
  const page_table_csr prefix = cache.page_table(0, std::vector<sequence_id>{ids[0]});
  for (const layer_input& in : s.layers) cache.write(open, in.layer, in.k, in.v);
  (void)cache.view(0, prefix);
  cache.commit(open);
  CHECK(error_of(cache, [&] { (void)cache.view(0, prefix); }) == cache_errc::stale_table);
}

TEST_CASE("page tables refill into the engine's storage without allocating") {
  serving_cache cache(capacity_pages{64});
  const std::vector<sequence_id> ids = build_history(cache);
  page_table_csr table;
  cache.page_table(0, ids, table);
  const std::int32_t* indices = table.indices.data();
  const std::int64_t* lengths = table.seq_lens.data();
  for (int round = 0; round < 3; ++round) {
    cache.page_table(0, ids, table);
    CHECK(table.indices.data() == indices);
    CHECK(table.seq_lens.data() == lengths);
  }
  CHECK(table.batch() == 4);
  // A failed refill leaves the table empty, never half filled.
  const std::vector<sequence_id> bad{ids[0], sequence_id{}};
  CHECK(error_of(cache, [&] { cache.page_table(0, bad, table); }) == cache_errc::unknown_sequence);
  CHECK(table.batch() == 0);
  // The decode workspace is sized by the plan once; a step then allocates nothing in it.
  cache.page_table(0, ids, table);
  const cpu::decode_plan plan = cpu::plan_decode(cache.view(0, table), 8, 2);
  cpu::decode_workspace workspace;
  workspace.reserve(plan);
  const float* partial = workspace.partial.data();
  std::vector<float> q = random_floats(4 * 8 * 32, 25), out(4 * 8 * 32), lse(4 * 8);
  cpu::decode(plan, cache.view(0, table), q.data(), out.data(), lse.data(),
              attention::layer_params<serving_model>(0), workspace, pool().ref());
  CHECK(workspace.partial.data() == partial);
}
