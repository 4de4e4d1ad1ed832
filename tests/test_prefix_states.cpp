// Prefix reuse for models with recurrent layers: the index keeps snapshots of their states at
// page boundaries (capacity_*::state_snapshots), a hit ends only where one is held, and
// add_sequence(hit, targets) writes it back. The engine's state here is a function of every
// token before it, as a real model's is, so a snapshot from the wrong prompt or position
// reads back wrong; every restored state is compared with that function computed afresh.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "failing_new.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "prefix_driver.hpp"

using namespace kvc;
using namespace prefix_test;

namespace {

// One full-attention layer and a recurrent layer of 16 fp32 (64 bytes).
struct hybrid : stack<repeat<1, full_l>, repeat<1, recurrent_state<16>>> {};
// Qwen3-Next's pattern: three recurrent layers, then one full (snapshots of 3 x 32 bytes).
struct qwen_like
    : model<4, pattern<recurrent_state<8>, recurrent_state<8>, recurrent_state<8>, full_l>> {};
// A sliding window of 16 beside a recurrent layer and a full one.
struct window_hybrid : model<3, pattern<one_head<sliding_window<16>>, recurrent_state<8>, full_l>> {
};

// The engine's recurrent states, one buffer per recurrent layer of the model.
template <class Model>
struct engine_states {
  std::vector<int> layers;
  std::vector<std::vector<float>> state;

  engine_states() {
    for (std::size_t l = 0; l < Model::layer_summaries.size(); ++l)
      if (const std::uint64_t bytes = Model::layer_summaries[l].state_bytes; bytes > 0) {
        layers.push_back(static_cast<int>(l));
        state.emplace_back(bytes / sizeof(float), -1.0f);
      }
  }
  // What each layer's state is after tokens[0, p): a function of all of them.
  static std::vector<float> expected(std::span<const std::int32_t> tokens, std::int64_t p,
                                     int layer, std::size_t size) {
    const std::vector<std::uint64_t> h = prefix_hashes(tokens.first(static_cast<std::size_t>(p)));
    std::vector<float> x(size);
    for (std::size_t d = 0; d < size; ++d) x[d] = value_of(h.back(), layer, 2, static_cast<int>(d));
    return x;
  }
  void compute(std::span<const std::int32_t> tokens, std::int64_t p) {
    for (std::size_t i = 0; i < layers.size(); ++i)
      state[i] = expected(tokens, p, layers[i], state[i].size());
  }
  bool holds(std::span<const std::int32_t> tokens, std::int64_t p) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (state[i] != expected(tokens, p, layers[i], state[i].size())) return false;
    return true;
  }
  std::vector<state_source> sources() const {
    std::vector<state_source> s;
    for (std::size_t i = 0; i < layers.size(); ++i) s.push_back({layers[i], state[i].data()});
    std::reverse(s.begin(), s.end());  // any order
    return s;
  }
  std::vector<state_target> targets() {
    std::vector<state_target> t;
    for (std::size_t i = 0; i < layers.size(); ++i) t.push_back({layers[i], state[i].data()});
    return t;
  }
};

// Prefills tokens[0, ends.back()) in chunks ending at `ends`, storing the pages and the
// states after each chunk.
template <class Model, class Allocator = host_allocator>
sequence_id prefill(kv_cache<Model, paged<P>, Allocator>& cache,
                    std::span<const std::int32_t> tokens, std::initializer_list<std::int64_t> ends,
                    std::int32_t priority = 0) {
  driver<Model, Allocator> run{cache};
  engine_states<Model> states;
  const sequence_id s = cache.add_sequence();
  std::int64_t done = 0;
  for (const std::int64_t end : ends) {
    const auto prompt = tokens.first(static_cast<std::size_t>(end));
    run.append(s, prompt, done);
    states.compute(tokens, end);
    cache.store_prefix(s, prompt, {}, priority, states.sources());
    done = end;
  }
  cache.check_invariants();
  return s;
}

// Serves a prompt from its hit: restores the states, computes the rest, checks the K/V.
template <class Model>
std::int64_t serve(kv_cache<Model, paged<P>>& cache, std::span<const std::int32_t> prompt) {
  const auto hit = cache.find_prefix(prompt);
  engine_states<Model> states;
  const sequence_id s = cache.add_sequence(hit, states.targets());
  if (hit.tokens > 0) REQUIRE(states.holds(prompt, hit.tokens));
  driver<Model> run{cache};
  run.append(s, prompt, hit.tokens);
  run.check(s, prompt);
  cache.release(s);
  cache.check_invariants();
  return hit.tokens;
}

std::vector<std::int32_t> first(const std::vector<std::int32_t>& t, std::size_t n) {
  return {t.begin(), t.begin() + static_cast<std::ptrdiff_t>(n)};
}

}  // namespace

TEST_CASE("a hybrid model hits where a state snapshot is held, and gets the state back") {
  kv_cache<hybrid, paged<P>> cache{capacity_pages{64, 0, 2}};
  const std::uint64_t snapshot = 64;
  const auto a = tokens_from(40, 43);
  const sequence_id s = prefill(cache, a, {16, 32, 40});  // three snapshots, room for two
  CHECK(cache.cached_snapshots() == 2);
  CHECK(cache.prefix_stats().stored_snapshots == 3);
  CHECK(cache.prefix_stats().evicted_snapshots == 1);  // the one at 16, least recently stored
  const std::uint64_t page_bytes = cache.geometry(0).page_bytes;
  CHECK(cache.memory_bytes() == 64 * page_bytes + 3 * snapshot);  // two and the spare
  CHECK(cache.used_bytes() ==
        static_cast<std::uint64_t>(cache.used_pages(0)) * page_bytes + 2 * snapshot);
  cache.release(s);
  CHECK(cache.cached_bytes() ==
        static_cast<std::uint64_t>(cache.cached_pages(0)) * page_bytes + 2 * snapshot);

  // The same 43 tokens: five pages, and a snapshot at 40.
  auto hit = cache.find_prefix(a);
  CHECK(hit.tokens == 40);
  CHECK(hit.reason.empty());
  CHECK(serve(cache, a) == 40);
  // Leaving a at 35: pages to 32, and a snapshot there.
  CHECK(serve(cache, joined(first(a, 35), tokens_from(41, 5))) == 32);
  // Leaving a at 30: pages to 24, and no snapshot at 24, 16 (given way) or 8.
  hit = cache.find_prefix(joined(first(a, 30), tokens_from(42, 5)));
  CHECK(hit.tokens == 0);
  CHECK(hit.matched_tokens == 24);
  CHECK(hit.group_tokens[0] == 24);
  CHECK(hit.reason ==
        "layer 1 keeps a recurrent state: a hit needs a snapshot of it at its end, and the "
        "index holds none at position 24 (the longest hit the pages allow), nor at any shorter "
        "hit the pages allow");
  CHECK(serve(cache, joined(first(a, 30), tokens_from(42, 5))) == 0);
  // Pages stored without states serve no hit of a hybrid model.
  const auto b = tokens_from(43, 33);
  driver<hybrid> run{cache};
  const sequence_id t = cache.add_sequence();
  run.append(t, b, 0);
  cache.store_prefix(t, b);
  hit = cache.find_prefix(b);
  CHECK(hit.tokens == 0);
  CHECK(hit.matched_tokens == 32);
  CHECK(hit.reason.find("holds none at position 32") != std::string::npos);
}

TEST_CASE("snapshots give way by priority, then use; a hit whose snapshot went is stale") {
  kv_cache<hybrid, paged<P>> cache{capacity_pages{64, 0, 2}};
  const auto a = tokens_from(44, 16), b = tokens_from(45, 16), c = tokens_from(46, 16);
  cache.release(prefill(cache, a, {16}, 1));  // a has the higher priority
  cache.release(prefill(cache, b, {16}));
  const auto hit_b = cache.find_prefix(joined(b, {7}));
  CHECK(hit_b.tokens == 16);
  cache.release(prefill(cache, c, {16}));  // b's snapshot gives way, though a's is older
  CHECK(cache.find_prefix(joined(a, {7})).tokens == 16);
  CHECK(cache.find_prefix(joined(c, {7})).tokens == 16);
  CHECK(cache.find_prefix(joined(b, {7})).tokens == 0);
  CHECK(cache.cached_snapshots() == 2);
  // b's pages are still cached, but its snapshot is gone: the hit is stale, nothing changes.
  engine_states<hybrid> states;
  const std::uint64_t used = cache.used_bytes();
  CHECK_THROWS_MATCHES(cache.add_sequence(hit_b, states.targets()), cache_error,
                       Catch::Predicate<cache_error>(
                           [](const cache_error& e) { return e.code() == cache_errc::stale_hit; }));
  CHECK(cache.used_bytes() == used);
  CHECK(states.state[0] == std::vector<float>(16, -1.0f));  // nothing written
  cache.check_invariants();
  // Without priorities, the least recently used goes: c was just looked up, a was before it.
  kv_cache<hybrid, paged<P>> other{capacity_pages{64, 0, 2}};
  other.release(prefill(other, a, {16}));
  other.release(prefill(other, b, {16}));
  CHECK(serve(other, joined(a, {7})) == 16);  // a used after b was stored
  other.release(prefill(other, c, {16}));
  CHECK(other.find_prefix(joined(a, {7})).tokens == 16);
  CHECK(other.find_prefix(joined(b, {7})).tokens == 0);
  // When a snapshot's node goes (its pages were taken back), the snapshot goes with it.
  other.clear_prefixes();
  CHECK(other.cached_snapshots() == 0);
  CHECK(other.prefix_stats().released_snapshots == 2);
  other.check_invariants();
}

TEST_CASE("a snapshot goes with its page's node when a step takes the page back") {
  kv_cache<hybrid, paged<P>> cache{capacity_pages{6, 0, 4}};
  const auto a = tokens_from(47, 16);
  cache.release(prefill(cache, a, {8, 16}));
  CHECK(cache.cached_snapshots() == 2);
  CHECK(cache.cached_pages(0) == 2);
  // A prompt of 6 pages takes both cached pages: both nodes go, and their snapshots.
  const auto x = tokens_from(48, 48);
  CHECK(serve(cache, x) == 0);
  CHECK(cache.cached_snapshots() == 0);
  CHECK(cache.prefix_stats().evicted_snapshots == 2);
  CHECK(cache.prefix_nodes() == 0);
}

TEST_CASE("several recurrent layers, and a window beside one") {
  {  // Qwen3-Next-like, 3:1: snapshots of three layers at once, targets in any order.
    kv_cache<qwen_like, paged<P>> cache{capacity_pages{64, 0, 4}};
    const auto a = tokens_from(49, 40);
    cache.release(prefill(cache, a, {24, 40}));
    CHECK(serve(cache, joined(a, {1, 2})) == 40);
    CHECK(serve(cache, joined(first(a, 30), {3, 4})) == 24);
  }
  {  // A window of 16: a hit needs the window's pages at p and a snapshot at p.
    kv_cache<window_hybrid, paged<P>> cache{capacity_pages{64, 0, 8}};
    const auto a = tokens_from(50, 48);
    cache.release(prefill(cache, a, {16, 32, 48}));
    CHECK(serve(cache, joined(a, {5})) == 48);
    // Leaving a at 45: each chunk's store kept the window's pages, so the pages allow 40;
    // the snapshots are at 16, 32 and 48: the hit is 32.
    const auto left = joined(first(a, 45), tokens_from(51, 4));
    const auto hit = cache.find_prefix(left);
    CHECK(hit.group_tokens[0] == 40);
    CHECK(hit.group_tokens[1] == 40);
    CHECK(hit.reason.find("none at position 40 (the longest hit the pages allow); the longest "
                          "hit with one is 32") != std::string::npos);
    CHECK(hit.tokens == 32);
    CHECK(serve(cache, left) == 32);
  }
}

TEST_CASE("random hybrid traffic: every restored state and read as if computed afresh") {
  kv_cache<window_hybrid, paged<P>> cache{capacity_pages{40, 0, 3}};
  std::mt19937 random(52);
  std::vector<std::vector<std::int32_t>> chats{tokens_from(53, 12)};
  std::int64_t reused = 0;
  for (int turn = 0; turn < 60; ++turn) {
    // A new chat, or a chat's next turn, or a turn from the middle of one.
    auto prompt = chats[random() % chats.size()];
    if (random() % 3 == 0) prompt.resize(prompt.size() / 2 + 1);
    prompt = joined(prompt, tokens_from(static_cast<std::uint32_t>(100 + turn), 3 + random() % 20));
    if (random() % 5 == 0) prompt = tokens_from(static_cast<std::uint32_t>(200 + turn), 20);
    const auto hit = cache.find_prefix(prompt);
    engine_states<window_hybrid> states;
    const sequence_id s = cache.add_sequence(hit, states.targets());
    if (hit.tokens > 0) REQUIRE(states.holds(prompt, hit.tokens));
    reused += hit.tokens;
    driver<window_hybrid> run{cache};
    // Prefill in chunks of two pages, storing at each page-aligned chunk end.
    for (std::int64_t done = hit.tokens; done < static_cast<std::int64_t>(prompt.size());) {
      const std::int64_t end =
          std::min<std::int64_t>(static_cast<std::int64_t>(prompt.size()), (done / P + 2) * P);
      const auto part = std::span<const std::int32_t>(prompt).first(static_cast<std::size_t>(end));
      run.append(s, part, done);
      if (end % P == 0) {
        states.compute(prompt, end);
        cache.store_prefix(s, part, {}, 0, states.sources());
      }
      done = end;
    }
    run.check(s, prompt);
    cache.release(s);
    cache.check_invariants();
    if (prompt.size() < 120) chats.push_back(prompt);
  }
  CHECK(reused > 0);
  CHECK(cache.prefix_stats().evicted_snapshots > 0);
}

namespace {
bool refused(cache_errc code, const auto& call) {
  try {
    call();
  } catch (const cache_error& e) {
    return e.code() == code;
  }
  return false;
}
}  // namespace

TEST_CASE("bad snapshot inputs are refused and change nothing") {
  CHECK(refused(cache_errc::invalid_argument, [] {
    kv_cache<hybrid, paged<P>> c{capacity_pages{8, 0, -1}};
  }));
  CHECK(refused(cache_errc::invalid_argument, [] {  // no recurrent layer
    kv_cache<window_hybrid, paged<P>> ok{capacity_pages{8, 0, 1}};
    struct plain : stack<repeat<1, full_l>> {};
    kv_cache<plain, paged<P>> c{capacity_pages{8, 0, 1}};
  }));
  CHECK(refused(cache_errc::invalid_argument, [] {  // 2 snapshots and the spare: 192 bytes
    kv_cache<hybrid, paged<P>> c{capacity_bytes{192, 64, 0, 2}};
  }));
  try {  // without snapshots, a budget too small says so as before
    kv_cache<hybrid, paged<P>> c{capacity_bytes{0, 64}};
    FAIL("a budget of 0 bytes was taken");
  } catch (const cache_error& e) {
    CHECK(std::string(e.what()).find("cannot hold one page") != std::string::npos);
  }
  {  // A byte budget pays for the snapshots first.
    kv_cache<hybrid, paged<P>> c{capacity_bytes{4096, 64, 0, 2}};
    CHECK(c.memory_bytes() <= 4096);
    CHECK(c.memory_bytes() > 4096 - c.geometry(0).page_bytes);
  }
  {  // A cache that keeps no snapshots: storing states is refused, the hit says why.
    kv_cache<hybrid, paged<P>> cache{capacity_pages{16}};
    const auto a = tokens_from(54, 16);
    CHECK(refused(cache_errc::invalid_argument, [&] { prefill(cache, a, {16}); }));
    CHECK(cache.prefix_nodes() == 0);
    CHECK(cache.find_prefix(joined(a, {1})).reason.find("capacity state_snapshots is 0") !=
          std::string::npos);
  }
  kv_cache<hybrid, paged<P>> cache{capacity_pages{16, 0, 2}};
  driver<hybrid> run{cache};
  const auto a = tokens_from(55, 20);
  const sequence_id s = cache.add_sequence();
  run.append(s, std::span<const std::int32_t>(a).first(16), 0);
  engine_states<hybrid> states;
  states.compute(a, 16);
  const std::vector<state_source> good = states.sources();
  const float* data = states.state[0].data();
  const auto store = [&](std::span<const std::int32_t> tokens, std::vector<state_source> given) {
    return refused(cache_errc::invalid_argument,
                   [&] { cache.store_prefix(s, tokens, {}, 0, given); });
  };
  const auto a16 = std::span<const std::int32_t>(a).first(16);
  CHECK(store(a16.first(8), good));           // not the whole sequence
  CHECK(store(a16, {{0, data}}));             // layer 0 has no state
  CHECK(store(a16, {{1, nullptr}}));          // a null state
  CHECK(store(a16, {{1, data}, {1, data}}));  // twice
  CHECK(store(a16, {{2, data}}));             // no such layer
  run.append(s, std::span<const std::int32_t>(a).first(20), 16);
  CHECK(store(a, good));  // 20 tokens: not on a page boundary
  CHECK(cache.prefix_nodes() == 0);
  CHECK(cache.cached_snapshots() == 0);
  cache.check_invariants();
  cache.truncate(s, 16);
  cache.store_prefix(s, a16, {}, 0, good);
  CHECK(cache.cached_snapshots() == 1);
  // A hit of a hybrid model restores the states: targets are required, each layer once.
  const auto hit = cache.find_prefix(a);
  REQUIRE(hit.tokens == 16);
  const std::uint64_t used = cache.used_bytes();
  CHECK(refused(cache_errc::invalid_argument, [&] { cache.add_sequence(hit); }));
  std::vector<float> buffer(16);
  const std::vector<state_target> wrong{{0, buffer.data()}};
  CHECK(refused(cache_errc::invalid_argument, [&] { cache.add_sequence(hit, wrong); }));
  CHECK(cache.used_bytes() == used);
  cache.check_invariants();
  // A miss needs none (the engine starts from its initial state).
  CHECK(cache.length(cache.add_sequence(cache.find_prefix(tokens_from(56, 20)))) == 0);
}

TEST_CASE("a failing state copy changes nothing") {
  using cache_type = kv_cache<hybrid, paged<P>, failing_copy>;
  cache_type cache{capacity_pages{16, 0, 1}};
  cache.record_prefix_events(true);
  const auto a = tokens_from(57, 17), b = tokens_from(58, 17);
  cache.release(prefill(cache, a, {16}));
  std::vector<prefix_event> events;
  cache.take_prefix_events(events);
  REQUIRE(events.size() == 3);  // a's two pages and its snapshot
  events.clear();
  // b's snapshot needs a's slot: the copy fails, a keeps its snapshot, b stores nothing.
  driver<hybrid, failing_copy> run{cache};
  const sequence_id s = cache.add_sequence();
  run.append(s, std::span<const std::int32_t>(b).first(16), 0);
  engine_states<hybrid> states;
  states.compute(b, 16);
  const auto stats = cache.prefix_stats();
  const auto nodes = cache.prefix_nodes();
  failing_copy::fail = true;
  CHECK_THROWS_AS(
      cache.store_prefix(s, std::span<const std::int32_t>(b).first(16), {}, 0, states.sources()),
      std::runtime_error);
  const auto hit = cache.find_prefix(a);
  CHECK_THROWS_AS(cache.add_sequence(hit, states.targets()), std::runtime_error);
  failing_copy::fail = false;
  cache.check_invariants();
  CHECK(cache.prefix_nodes() == nodes);
  CHECK(cache.prefix_stats().stored_snapshots == stats.stored_snapshots);
  CHECK(cache.prefix_stats().stored_pages == stats.stored_pages);
  cache.take_prefix_events(events);
  CHECK(events.empty());
  CHECK(cache.used_pages(0) == 2 + 2);  // a's cached pages and b's sequence, no more
  // Both go through now.
  const sequence_id t = cache.add_sequence(hit, states.targets());
  CHECK(states.holds(a, 16));
  cache.store_prefix(s, std::span<const std::int32_t>(b).first(16), {}, 0,
                     engine_states<hybrid>{}.sources());
  cache.release(t);
  cache.check_invariants();
}

TEST_CASE("events name the snapshots: stored and removed, with the page's key") {
  kv_cache<hybrid, paged<P>> cache{capacity_pages{16, 0, 1}};
  cache.record_prefix_events(true);
  const auto a = tokens_from(59, 16), b = tokens_from(60, 8);
  cache.release(prefill(cache, a, {16}));
  std::vector<prefix::page_key> keys(2);
  prefix::page_keys(prefix::key_layout::of<hybrid, paged<P>>(), {}, a, keys);
  std::vector<prefix_event> events;
  cache.take_prefix_events(events);
  REQUIRE(events.size() == 3);  // two pages, one snapshot
  CHECK(events[2].what == prefix_event::change::state_stored);
  CHECK(events[2].group == -1);
  CHECK(events[2].page == 1);
  CHECK(events[2].key == keys[1]);
  CHECK(events[2].parent == keys[0]);
  events.clear();
  cache.release(prefill(cache, b, {8}));  // one slot: a's snapshot gives way
  cache.take_prefix_events(events);
  REQUIRE(events.size() == 3);
  CHECK(events[1].what == prefix_event::change::state_removed);
  CHECK(events[1].key == keys[1]);
  CHECK(events[2].what == prefix_event::change::state_stored);
  CHECK(events[2].page == 0);
}

namespace {
// A cache whose one snapshot slot holds a's, and a sequence of b's 16 tokens.
struct snapshot_scene {
  kv_cache<hybrid, paged<P>> cache{capacity_pages{16, 0, 1}};
  std::vector<std::int32_t> a = tokens_from(61, 17), b = tokens_from(62, 16);
  sequence_id s;
  engine_states<hybrid> states;
  snapshot_scene() {
    cache.record_prefix_events(true);
    cache.release(prefill(cache, a, {16}));
    s = cache.add_sequence();
    driver<hybrid>{cache}.append(s, b, 0);
    states.compute(b, 16);
    std::vector<prefix_event> stored;
    cache.take_prefix_events(stored);  // a failing call must record none
  }
  std::vector<double> observe() {
    std::vector<prefix_event> events;
    cache.take_prefix_events(events);
    const prefix_counters& c = cache.prefix_stats();
    return {static_cast<double>(cache.prefix_nodes()),
            static_cast<double>(cache.cached_snapshots()),
            static_cast<double>(cache.used_pages(0)),
            static_cast<double>(cache.cached_pages(0)),
            static_cast<double>(c.stored_snapshots),
            static_cast<double>(c.evicted_snapshots),
            static_cast<double>(c.reused_tokens),
            static_cast<double>(events.size()),
            static_cast<double>(cache.find_prefix(a).tokens),
            static_cast<double>(cache.find_prefix(joined(b, {1})).tokens)};
  }
};
}  // namespace

TEST_CASE("snapshot calls change nothing when an allocation fails") {
  const auto calls = {
      +[](snapshot_scene& x) { x.cache.store_prefix(x.s, x.b, {}, 0, x.states.sources()); },
      +[](snapshot_scene& x) {
        x.cache.add_sequence(x.cache.find_prefix(x.a), x.states.targets());
      }};
  for (const auto call : calls) {
    long failures = 0;
    for (long n = 1;; ++n) {
      snapshot_scene x;
      const std::vector<double> before = x.observe();
      kvc::testing::failing_new::countdown = n;
      bool failed = false;
      try {
        call(x);
      } catch (const std::bad_alloc&) {
        failed = true;
      }
      kvc::testing::failing_new::countdown = 0;
      if (!failed) break;
      ++failures;
      INFO("allocation " << n << " failed");
      REQUIRE(x.observe() == before);
      x.cache.check_invariants();
      REQUIRE(n < 1000);
    }
    CHECK(failures > 0);
  }
}
