// Fault injection: every mutating call of the cache, with the N-th allocation made to fail
// (a global operator new, and the cache's allocator), for every N until the call goes
// through. Each failure must leave the cache exactly as it was: the same free and used page
// counts, the same page tables, lengths and stored values, the invariants holding, nothing
// leaked; and the same call must then succeed.

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvc/cache/kv_cache.hpp"

#include "failing_new.hpp"

using namespace kvc;

namespace {

using full_layer = layer<gqa<4, 2>, head_dim<8>, storage<fp16>>;
using window_layer = layer<gqa<4, 2>, head_dim<8>, sliding_window<10>, storage<int8>>;
using sink_layer = layer<gqa<2, 2>, head_dim<8>, streaming<2, 6>, storage<fp8_e4m3>>;
struct fault_model : stack<repeat<1, full_layer>, repeat<1, window_layer>, repeat<1, sink_layer>,
                           repeat<1, kv_shared<0, full_layer>>> {};
using fault_cache = kv_cache<fault_model, paged<4>>;
constexpr int owning_layers = 3;

std::vector<float> values_for(std::int64_t tokens, float base) {
  std::vector<float> v(static_cast<std::size_t>(tokens * 2 * 8));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = base + 0.01f * static_cast<float>(i % 97);
  return v;
}

// The inputs of one step for every owning layer (kept alive by the caller).
struct step_data {
  std::vector<float> k, v;
  std::vector<layer_input> layers;
};
step_data step_of(std::int64_t tokens, float base) {
  step_data d{values_for(tokens, base), values_for(tokens, -base), {}};
  for (int l = 0; l < owning_layers; ++l)
    d.layers.push_back(
        {l, fp32_input(d.k.data(), tokens, 2, 8), fp32_input(d.v.data(), tokens, 2, 8)});
  return d;
}

// Window checkpoints of the scenes' caches (0: none).
std::int64_t scene_checkpoints = 0;

// A cache with some history: three sequences, one a fork sharing a half-full page, one
// truncated; the windows have slid.
struct scene {
  fault_cache cache{capacity_pages{40, 3, 0, scene_checkpoints}};
  std::vector<sequence_id> ids;
  scene() {
    ids.push_back(cache.add_sequence());
    ids.push_back(cache.add_sequence());
    const append_request first[] = {{ids[0], 23}, {ids[1], 6}};
    const step_data d = step_of(29, 0.5f);
    cache.append(first, d.layers);
    ids.push_back(cache.fork(ids[0]));
    const append_request more{ids[1], 3};
    const step_data e = step_of(3, 1.5f);
    cache.append({&more, 1}, e.layers);
    cache.truncate(ids[1], 8);
    cache.store_prefix(ids[0], prompt(23));        // 5 full pages in the prefix index
    cache.store_prefix(ids[1], prompt(8), {}, 1);  // 2, which every window holds whole
  }
  // A prompt's tokens: its first 8 are ids[1]'s, the rest ids[0]'s.
  static std::vector<std::int32_t> prompt(std::size_t tokens) {
    std::vector<std::int32_t> t(tokens);
    for (std::size_t i = 0; i < t.size(); ++i)
      t[i] = static_cast<std::int32_t>(tokens == 8 ? i + 1000 : i * 7 + 1);
    return t;
  }
};

// Everything observable of a cache: counts, tables, lengths and the stored values.
std::vector<double> observe(const fault_cache& cache, const std::vector<sequence_id>& ids) {
  std::vector<double> seen;
  for (int g = 0; g < fault_cache::num_groups; ++g) {
    seen.push_back(static_cast<double>(cache.free_pages(g)));
    seen.push_back(static_cast<double>(cache.used_pages(g)));
    seen.push_back(static_cast<double>(cache.cached_pages(g)));
  }
  seen.push_back(static_cast<double>(cache.prefix_nodes()));
  auto short_prompt = scene::prompt(8);
  short_prompt.push_back(5);
  for (const auto& prompt : {scene::prompt(23), short_prompt}) {
    const auto hit = const_cast<fault_cache&>(cache).find_prefix(prompt);
    seen.push_back(static_cast<double>(hit.tokens));
    seen.insert(seen.end(), hit.group_tokens.begin(), hit.group_tokens.end());
  }
  std::vector<sequence_id> live;
  for (sequence_id id : ids) {
    seen.push_back(cache.contains(id) ? 1 : 0);
    if (cache.contains(id)) live.push_back(id);
  }
  std::vector<float> k(16), v(16);
  for (sequence_id id : live) {
    const std::int64_t n = cache.length(id);
    seen.push_back(static_cast<double>(n));
    for (int l = 0; l < fault_model::num_layers; ++l)
      for (std::int64_t p = 0; p < n; ++p) {
        const bool held = cache.read(id, l, p, k.data(), v.data());
        seen.push_back(held ? 1 : 0);
        if (held) {
          seen.insert(seen.end(), k.begin(), k.end());
          seen.insert(seen.end(), v.begin(), v.end());
        }
      }
  }
  for (int l : {0, 1, 2}) {
    const page_table_csr table = cache.page_table(l, live);
    seen.insert(seen.end(), table.indices.begin(), table.indices.end());
    seen.insert(seen.end(), table.indptr.begin(), table.indptr.end());
  }
  return seen;
}

// Runs `call` on a fresh scene with the N-th allocation failing, for N = 1, 2, ... until
// it succeeds; `prepare` runs before arming (an open plan, say).
void sweep(const std::string& name, const std::function<void(scene&)>& prepare,
           const std::function<void(scene&)>& call) {
  long failures = 0;
  for (long n = 1;; ++n) {
    scene s;
    prepare(s);
    const std::vector<double> before = observe(s.cache, s.ids);
    kvc::testing::failing_new::countdown = n;
    bool failed = false;
    try {
      call(s);
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    kvc::testing::failing_new::countdown = 0;
    INFO(name << ": allocation " << n << " failed");
    if (!failed) {
      s.cache.check_invariants();
      break;
    }
    ++failures;
    REQUIRE(observe(s.cache, s.ids) == before);
    s.cache.check_invariants();
    call(s);  // the same call now goes through
    s.cache.check_invariants();
    REQUIRE(n < 1000);
  }
  INFO(name);
  CHECK(failures >= 0);
}

}  // namespace

TEST_CASE("every mutating call leaves the cache as it was when an allocation fails") {
  const auto none = [](scene&) {};
  // One call each; the scene's id list has room, so that only the cache allocates. After
  // 0..6 earlier additions, one of them grows the cache's table of sequences.
  for (int earlier = 0; earlier <= 6; ++earlier) {
    const auto room = [earlier](scene& s) {
      for (int i = 0; i < earlier; ++i) s.ids.push_back(s.cache.add_sequence());
      s.ids.reserve(s.ids.size() + 1);
    };
    sweep("add_sequence", room, [](scene& s) { s.ids.push_back(s.cache.add_sequence()); });
    sweep("fork", room, [](scene& s) { s.ids.push_back(s.cache.fork(s.ids[0])); });
    for (const std::int64_t at : {0, 20, 21, 22})  // what the reserve of 3 allows of 23
      sweep("fork at " + std::to_string(at), room,
            [at](scene& s) { s.ids.push_back(s.cache.fork(s.ids[0], at)); });
    sweep("add_sequence from a prefix hit", room, [](scene& s) {
      auto prompt = scene::prompt(8);
      prompt.push_back(5);
      const auto hit = s.cache.find_prefix(prompt);
      REQUIRE(hit.tokens == 8);
      s.ids.push_back(s.cache.add_sequence(hit));
    });
  }
  sweep("store_prefix", none, [](scene& s) {
    const std::vector<std::int32_t> other = {5, 6, 7, 8, 9, 10, 11, 12};
    s.cache.store_prefix(s.ids[1], other);
    s.cache.store_prefix(s.ids[2], scene::prompt(23));  // the fork: its pages are stored already
  });
  sweep("clear_prefixes", none, [](scene& s) { s.cache.clear_prefixes(); });
  // A step that takes cached pages of the index, because the free ones run short.
  const auto short_of_pages = [](scene& s) {
    s.cache.release(s.ids[0]);
    s.cache.release(s.ids[2]);
    s.ids.push_back(s.cache.add_sequence());
    const std::int64_t filler = (s.cache.free_pages(0) - 1) * 4;
    const append_request fill{s.ids.back(), filler};
    const step_data d = step_of(filler, 4.5f);
    s.cache.append({&fill, 1}, d.layers);
    REQUIRE(s.cache.free_pages(0) == 1);
  };
  sweep("append taking cached pages", short_of_pages, [](scene& s) {
    const append_request batch{s.ids[1], 9};  // 3 pages in group 0: 1 free, 2 cached
    const step_data d = step_of(9, 5.5f);
    s.cache.append({&batch, 1}, d.layers);
    REQUIRE(s.cache.prefix_stats().evicted_pages == 2);
  });
  sweep("truncate", none, [](scene& s) { s.cache.truncate(s.ids[0], 21); });
  sweep("release", none, [](scene& s) { s.cache.release(s.ids[2]); });
  sweep("append", none, [](scene& s) {
    const append_request batch[] = {{s.ids[0], 5}, {s.ids[2], 2}, {s.ids[1], 9}};
    const step_data d = step_of(16, 2.5f);
    s.cache.append(batch, d.layers);
  });
  // plan_append, and the calls made on an open plan.
  struct open_step {
    std::optional<append_plan> plan;
    step_data data = step_of(16, 3.5f);
  };
  auto step = std::make_shared<open_step>();
  const auto open = [step](scene& s) {
    const append_request batch[] = {{s.ids[0], 5}, {s.ids[2], 2}, {s.ids[1], 9}};
    step->plan.reset();
    step->plan = s.cache.plan_append(batch);
  };
  sweep("plan_append", none, [step](scene& s) {
    const append_request batch[] = {{s.ids[0], 5}, {s.ids[2], 2}, {s.ids[1], 9}};
    step->plan.reset();
    step->plan = s.cache.plan_append(batch);
    step->plan.reset();  // dropped: aborts
  });
  sweep("write", open, [step](scene& s) {
    for (const layer_input& in : step->data.layers)
      s.cache.write(*step->plan, in.layer, in.k, in.v);
  });
  const auto written = [step, open](scene& s) {
    open(s);
    for (const layer_input& in : step->data.layers)
      s.cache.write(*step->plan, in.layer, in.k, in.v);
  };
  sweep("commit", written, [step](scene& s) { s.cache.commit(*step->plan); });
  sweep("abort", written, [step](scene& s) { s.cache.abort(*step->plan); });
  sweep("step_table", written, [step](scene& s) {
    page_table_csr table;
    s.cache.step_table(*step->plan, 1, table);
    REQUIRE(table.batch() == 3);
  });
  sweep("page_table", none, [](scene& s) {
    page_table_csr table;
    try {
      s.cache.page_table(1, s.ids, table);
    } catch (const std::bad_alloc&) {
      REQUIRE(table.batch() == 0);  // never half filled
      throw;
    }
  });
  step->plan.reset();
}

TEST_CASE("with window checkpoints, the calls that move their pages leave the cache as it was") {
  // Checkpoints every 16 tokens: the window groups keep pages their windows let go (in a
  // step, at commit) and give them back at truncate and release; forks share them.
  scene_checkpoints = 16;
  const auto none = [](scene&) {};
  const auto room = [](scene& s) { s.ids.reserve(s.ids.size() + 1); };
  {
    scene s;
    REQUIRE(s.cache.checkpoint_pages_of(s.ids[0], 1) > 0);
    REQUIRE(s.cache.checkpoint_pages_of(s.ids[2], 2) > 0);  // the fork shares them
  }
  sweep("fork", room, [](scene& s) { s.ids.push_back(s.cache.fork(s.ids[0])); });
  sweep("fork at 20", room, [](scene& s) { s.ids.push_back(s.cache.fork(s.ids[0], 20)); });
  sweep("truncate to nothing", none, [](scene& s) { s.cache.truncate(s.ids[0], 0); });
  sweep("release", none, [](scene& s) { s.cache.release(s.ids[0]); });
  sweep("store_prefix", none,
        [](scene& s) { s.cache.store_prefix(s.ids[0], scene::prompt(23), {}, 2); });
  sweep("append", none, [](scene& s) {
    const append_request batch[] = {{s.ids[0], 17}, {s.ids[2], 2}, {s.ids[1], 30}};
    const step_data d = step_of(49, 2.5f);
    s.cache.append(batch, d.layers);
  });
  sweep("a decode step whose window lets a checkpoint page go", none, [](scene& s) {
    const append_request two{s.ids[0], 2};  // at 25 the windows let pages 2 and 3 go
    const step_data d = step_of(2, 0.25f);
    s.cache.append({&two, 1}, d.layers);
    REQUIRE(s.cache.checkpoint_pages_of(s.ids[0], 1) == 2);
  });
  scene_checkpoints = 0;
}

namespace {

// An allocator whose N-th allocate() fails: the cache's pools come from it.
struct failing_allocator : host_allocator {
  std::byte* allocate(std::size_t bytes) {
    if (kvc::testing::failing_new::fail_now()) throw std::bad_alloc();
    return host_allocator::allocate(bytes);
  }
};

}  // namespace

TEST_CASE("a cache whose allocator fails is not built, and gives back what it took") {
  using cache = kv_cache<fault_model, paged<4>, failing_allocator>;
  for (long n = 1; n <= 3; ++n) {
    kvc::testing::failing_new::countdown = n;
    bool failed = false;
    try {
      cache c(capacity_pages{8});
      (void)c;
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    kvc::testing::failing_new::countdown = 0;
    CHECK(failed);  // any of the three group pools (or a page pool) may fail
  }
}

TEST_CASE("sizes and counts near the integer limits are refused, changing nothing") {
  scene s;
  const std::vector<double> before = observe(s.cache, s.ids);
  const auto code_of = [](auto&& call) {
    try {
      call();
    } catch (const cache_error& e) {
      return static_cast<int>(e.code());
    }
    return -1;
  };
  const int invalid = static_cast<int>(cache_errc::invalid_argument);
  for (const std::int64_t tokens :
       {std::int64_t{1} << 31, std::int64_t{1} << 41, std::int64_t{1} << 62,
        std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()}) {
    INFO("tokens " << tokens);
    const append_request one{s.ids[0], tokens};
    const int expected =
        tokens == (std::int64_t{1} << 31) ? static_cast<int>(cache_errc::out_of_pages) : invalid;
    CHECK(code_of([&] { (void)s.cache.plan_append({&one, 1}); }) == expected);
    // Eight requests whose sum overflows, with inputs of no tokens.
    std::vector<sequence_id> many;
    for (int i = 0; i < 8; ++i) many.push_back(s.cache.add_sequence());
    std::vector<append_request> batch;
    for (sequence_id id : many) batch.push_back({id, tokens});
    const step_data empty = step_of(0, 0.0f);
    CHECK(code_of([&] { s.cache.append(batch, empty.layers); }) ==
          (tokens == (std::int64_t{1} << 31) ? static_cast<int>(cache_errc::shape_mismatch)
                                             : invalid));
    for (sequence_id id : many) s.cache.release(id);
    CHECK(code_of([&] { s.cache.truncate(s.ids[0], tokens); }) == invalid);
    CHECK(code_of([&] { (void)s.cache.fork(s.ids[0], tokens); }) == invalid);
  }
  CHECK(observe(s.cache, s.ids) == before);
  s.cache.check_invariants();
  // Capacities: both constructors refuse what would need more than 2^31 - 1 pages a group.
  for (const std::int64_t pages :
       {std::int64_t{1} << 31, std::int64_t{1} << 32, std::numeric_limits<std::int64_t>::max()})
    CHECK(code_of([&] { fault_cache c(capacity_pages{pages}); }) == invalid);
  for (const std::uint64_t bytes :
       {std::uint64_t{1} << 50, std::uint64_t{1} << 63, std::numeric_limits<std::uint64_t>::max()})
    CHECK(code_of([&] { fault_cache c(capacity_bytes{bytes, 4096}); }) == invalid);
  CHECK(code_of([&] { fault_cache c(capacity_pages{8, -1}); }) == invalid);
  CHECK(code_of([&] { fault_cache c(capacity_pages{8, max_rollback_reserve + 1}); }) == invalid);
  CHECK(code_of([&] { fault_cache c(capacity_pages{8, std::int64_t{1} << 62}); }) == invalid);
  CHECK(code_of([&] { fault_cache c(capacity_bytes{1 << 20, std::int64_t{1} << 62}); }) == invalid);
}
