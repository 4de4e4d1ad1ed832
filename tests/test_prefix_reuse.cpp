// Prefix reuse through the cache: find_prefix, add_sequence(hit), store_prefix, eviction of
// cached pages. The K/V of a position here are a function of every token up to it (as a real
// model's are), so a page served for the wrong content reads back wrong values; every read
// is checked against that function, computed afresh. Hit lengths are predicted by hand from
// the windows (docs/prefix-reuse.md derives the rule).

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "prefix_driver.hpp"

using namespace kvc;
using namespace prefix_test;

// ---- models: one per layer kind, P = 8 ----

struct full_model : stack<repeat<2, full_l>> {};
// Gemma 3's pattern: five sliding-window layers (32 tokens), then one global.
struct gemma_like : model<6, pattern<one_head<sliding_window<32>>, one_head<sliding_window<32>>,
                                     one_head<sliding_window<32>>, one_head<sliding_window<32>>,
                                     one_head<sliding_window<32>>, full_l>> {};
// Llama 4's: three chunked layers (chunks of 24), then one global.
struct chunked_like
    : model<4,
            pattern<one_head<chunked<24>>, one_head<chunked<24>>, one_head<chunked<24>>, full_l>> {
};
// gpt-oss's: sliding (16) and global alternating.
struct alternating : model<4, pattern<one_head<sliding_window<16>>, full_l>> {};
struct streaming_model : stack<repeat<1, one_head<streaming<4, 16>>>, repeat<1, full_l>> {};
struct shared_model : stack<repeat<1, full_l>, repeat<1, kv_shared<0, full_l>>> {};
struct hybrid : stack<repeat<1, full_l>, repeat<1, recurrent_state<16>>> {};

TEST_CASE("a stored prompt is served again, by content, and reads back the same K/V") {
  kv_cache<full_model, paged<P>> cache{capacity_pages{64}};
  driver<full_model> run{cache};
  const auto system = tokens_from(1, 40);
  const auto a = joined(system, tokens_from(2, 7));
  const sequence_id first = run.serve(a);  // nothing stored yet: all 47 computed
  CHECK(cache.find_prefix(a).tokens == 0);
  cache.store_prefix(first, a);
  CHECK(cache.prefix_nodes() == 5);  // 47 tokens: 5 full pages
  cache.check_invariants();

  // The same prompt: every full page but the one with its last token (46 / 8 = 5 pages).
  auto hit = cache.find_prefix(a);
  CHECK(hit.tokens == 40);
  CHECK(hit.matched_tokens == 40);
  CHECK(hit.reason.empty());
  // Another chat on the same system prompt reuses the system prompt's 5 pages.
  const auto b = joined(system, tokens_from(3, 30));
  std::int64_t reused = 0;
  const sequence_id second = run.serve(b, {}, &reused);
  CHECK(reused == 40);
  // A prompt that differs in its first token reuses nothing.
  auto c = b;
  c[0] += 1;
  hit = cache.find_prefix(c);
  CHECK(hit.tokens == 0);
  CHECK(hit.reason.find("page 0 (positions 0-7) is not stored") != std::string::npos);
  // A prompt of one page and its last token: a page before the last token is the minimum.
  hit = cache.find_prefix(std::span(a).first(8));
  CHECK(hit.tokens == 0);
  CHECK(hit.reason.find("a hit needs a full page (8 tokens) before its last token") !=
        std::string::npos);
  CHECK(cache.find_prefix(std::span(a).first(9)).tokens == 8);
  CHECK(cache.prefix_stats().reused_tokens == 40);
  cache.release(first);
  cache.release(second);
  CHECK(cache.cached_pages(0) == 5);  // nobody holds them; the index keeps them
  run.serve(a);
  cache.check_invariants();
}

TEST_CASE("pages are shared, and copied before a sequence writes into one") {
  kv_cache<full_model, paged<P>> cache{capacity_pages{64}};
  driver<full_model> run{cache};
  const auto a = tokens_from(4, 20);
  const sequence_id s = run.serve(a);
  cache.store_prefix(s, a);            // pages 0 and 1
  const sequence_id t = run.serve(a);  // starts from 16 tokens, shares both pages
  CHECK(cache.used_pages(0) == 3 + 1);
  // Cutting back into a shared page and writing copies it: the index's page is untouched.
  cache.truncate(s, 12);
  auto other = a;
  for (std::size_t i = 12; i < other.size(); ++i) other[i] += 7;
  run.append(s, other, 12);
  run.check(s, other);
  run.check(t, a);
  const sequence_id u = run.serve(a);
  run.check(u, a);
  cache.check_invariants();
}

TEST_CASE("a salt, an adapter or an item on one side only keeps pages apart") {
  kv_cache<full_model, paged<P>> cache{capacity_pages{64}};
  driver<full_model> run{cache};
  const auto a = tokens_from(5, 33);
  prefix::key_context tenant_a, tenant_b, adapter;
  tenant_a.tenant_salt = prefix::bytes_of("tenant-a");
  tenant_b.tenant_salt = prefix::bytes_of("tenant-b");
  adapter.tenant_salt = prefix::bytes_of("tenant-a");
  adapter.adapter = "sql-lora";
  const sequence_id s = run.serve(a, tenant_a);
  cache.store_prefix(s, a, tenant_a);
  CHECK(cache.find_prefix(a, tenant_a).tokens == 32);
  CHECK(cache.find_prefix(a, tenant_b).tokens == 0);  // identical prompts, another tenant
  CHECK(cache.find_prefix(a).tokens == 0);            // a salt on one side only
  CHECK(cache.find_prefix(a, adapter).tokens == 0);
  const std::byte image[] = {std::byte{1}, std::byte{2}};
  const prefix::multimodal_item items[] = {{image, 20, 4}};
  prefix::key_context with_image = tenant_a;
  with_image.items = items;
  CHECK(cache.find_prefix(a, with_image).tokens == 16);  // the image starts in page 2
  // Two tenants storing the same prompt keep two copies.
  const sequence_id t = run.serve(a, tenant_b);
  cache.store_prefix(t, a, tenant_b);
  CHECK(cache.prefix_nodes() == 8);
  cache.check_invariants();
}

// A hash that gives every page the same key: only the bytes' comparison keeps them apart.
prefix::page_key colliding(std::span<const std::byte>) { return {42, 42}; }

TEST_CASE("a colliding hash never serves another prompt's pages") {
  kv_cache<full_model, paged<P>> cache{capacity_pages{64}};
  driver<full_model> run{cache};
  cache.set_prefix_hash(&colliding);
  const auto a = tokens_from(6, 25), b = tokens_from(7, 25);
  const sequence_id s = run.serve(a);
  cache.store_prefix(s, a);
  CHECK(cache.prefix_nodes() == 1);  // page 1's key collides with page 0's: not stored
  CHECK(cache.find_prefix(a).tokens == 8);
  CHECK(cache.find_prefix(b).tokens == 0);
  run.serve(b);  // computed afresh, and checked against b's own K/V
  const sequence_id t = run.serve(b);
  cache.store_prefix(t, b);  // collides with a's page 0: stores nothing
  CHECK(cache.prefix_nodes() == 1);
  run.serve(a);
  CHECK_THROWS_AS(cache.set_prefix_hash(&colliding), cache_error);  // the index is not empty
  cache.check_invariants();
}

// Appends `tokens` in steps ending at each of `ends`, storing the prefix after each step
// (an engine's chunked prefill: each store keeps what the windows hold at that point).
template <class Model>
sequence_id prefill_storing(kv_cache<Model, paged<P>>& cache, std::span<const std::int32_t> tokens,
                            std::initializer_list<std::int64_t> ends) {
  driver<Model> run{cache};
  const sequence_id s = cache.add_sequence();
  std::int64_t done = 0;
  for (std::int64_t end : ends) {
    run.append(s, tokens.first(static_cast<std::size_t>(end)), done);
    cache.store_prefix(s, tokens.first(static_cast<std::size_t>(end)));
    done = end;
  }
  run.check(s, tokens);
  cache.check_invariants();
  return s;
}

TEST_CASE("window groups: a hit needs the pages the window shows at its length") {
  // Gemma-like: group 0 the five window layers (32 tokens), group 1 the global layer.
  using cache_type = kv_cache<gemma_like, paged<P>>;
  cache_type cache{capacity_pages{128}};
  driver<gemma_like> run{cache};
  const auto a = tokens_from(8, 104);  // 13 pages
  prefill_storing(cache, a, {104});
  // The window keeps positions 72-103 of 104: pages 9-12, all written.
  const auto longer = joined(a, tokens_from(9, 10));
  auto hit = cache.find_prefix(longer);
  CHECK(hit.tokens == 104);  // it needs positions 72-103 at 104
  std::int64_t reused = 0;
  run.serve(longer, {}, &reused);
  CHECK(reused == 104);
  // A prompt that leaves a after 100 tokens: at 96 the window needs 64-95, and the step
  // of 104 tokens never wrote 64-71 (they had slid out within it): no hit at all, and the
  // global group alone would serve 96.
  auto diverging = std::vector<std::int32_t>(a.begin(), a.begin() + 100);
  diverging = joined(diverging, tokens_from(10, 20));
  hit = cache.find_prefix(diverging);
  CHECK(hit.tokens == 0);
  CHECK(hit.matched_tokens == 96);
  CHECK(hit.group_tokens[0] == 0);
  CHECK(hit.group_tokens[1] == 96);
  CHECK(hit.reason ==
        "group 0 (layer 0, a sliding window of 32 tokens) needs positions 64-95 for a hit of 96 "
        "tokens, and the index holds them only from 72");
  run.serve(diverging);
}

TEST_CASE("window groups: a rollback reserve of a page, or a store per chunk, keeps hits") {
  const auto a = tokens_from(11, 104);
  auto diverging = std::vector<std::int32_t>(a.begin(), a.begin() + 100);
  diverging = joined(diverging, tokens_from(12, 20));
  {  // A reserve of 8 keeps 64-103 of 104: the hit at 96 finds 64-95.
    kv_cache<gemma_like, paged<P>> cache{capacity_pages{128, 8}};
    prefill_storing(cache, a, {104});
    CHECK(cache.find_prefix(diverging).tokens == 96);
    driver<gemma_like>{cache}.serve(diverging);
  }
  {  // Stores at 48 and 104 (a prefill in two chunks): a prompt leaving a at 60 hits 48.
    kv_cache<gemma_like, paged<P>> cache{capacity_pages{128}};
    prefill_storing(cache, a, {48, 104});
    auto early = std::vector<std::int32_t>(a.begin(), a.begin() + 60);
    early = joined(early, tokens_from(13, 5));
    const auto hit = cache.find_prefix(early);
    CHECK(hit.tokens == 48);  // the window's 16-47, stored at 48; at 56 it would need 24-55
    CHECK(hit.matched_tokens == 56);
    driver<gemma_like>{cache}.serve(early);
  }
}

TEST_CASE("chunked groups: a hit needs its chunk so far") {
  // Llama-4-like: chunks of 24 in group 0, global in group 1. Chunks start at 0, 24, 48, 72, 96.
  const auto a = tokens_from(14, 100);
  {  // One step of 100 writes only the last chunk (96-99, no full page): no chunk page stored.
    kv_cache<chunked_like, paged<P>> cache{capacity_pages{128}};
    prefill_storing(cache, a, {100});
    const auto hit = cache.find_prefix(joined(a, tokens_from(15, 4)));
    CHECK(hit.tokens == 0);
    CHECK(hit.group_tokens[1] == 96);
    CHECK(hit.reason.find("chunks of 24 tokens) needs positions 72-95 for a hit of 96") !=
          std::string::npos);
  }
  {  // Stored at every chunk's end: each chunk's pages are in the index.
    kv_cache<chunked_like, paged<P>> cache{capacity_pages{128}};
    prefill_storing(cache, a, {24, 48, 72, 96, 100});
    CHECK(cache.find_prefix(joined(a, tokens_from(15, 4))).tokens == 96);  // needs 72-95
    auto at_50 = std::vector<std::int32_t>(a.begin(), a.begin() + 50);
    at_50 = joined(at_50, tokens_from(16, 30));
    CHECK(cache.find_prefix(at_50).tokens == 48);  // at 48 the chunk of 24-47 (a chunk's end)
    auto at_60 = std::vector<std::int32_t>(a.begin(), a.begin() + 60);
    at_60 = joined(at_60, tokens_from(17, 30));
    CHECK(cache.find_prefix(at_60).tokens == 56);  // at 56 the chunk so far, 48-55
    driver<chunked_like>{cache}.serve(at_60);
  }
}

TEST_CASE("alternating, streaming, shared and recurrent layers") {
  {  // gpt-oss-like, window 16: stored at 64, at 64 it needs 48-63 (pages 6 and 7).
    kv_cache<alternating, paged<P>> cache{capacity_pages{128}};
    const auto a = tokens_from(18, 64);
    prefill_storing(cache, a, {64});
    CHECK(cache.find_prefix(joined(a, tokens_from(19, 3))).tokens == 64);
    auto at_60 = std::vector<std::int32_t>(a.begin(), a.begin() + 60);
    const auto hit = cache.find_prefix(joined(at_60, tokens_from(20, 9)));
    CHECK(hit.tokens == 0);  // at 56 it needs 40-55: page 5 was never written
    CHECK(hit.group_tokens[1] == 56);
    driver<alternating>{cache}.serve(joined(a, tokens_from(19, 3)));
  }
  {  // Streaming, 4 sinks and 16 recent: one step of 104 writes 0-3 and 88-103, so page 0
     // serves its sinks only; at 104 a hit needs 0-3 and 88-103.
    kv_cache<streaming_model, paged<P>> cache{capacity_pages{128}};
    const auto a = tokens_from(21, 104);
    prefill_storing(cache, a, {104});
    const auto longer = joined(a, tokens_from(22, 4));
    CHECK(cache.find_prefix(longer).tokens == 104);
    driver<streaming_model>{cache}.serve(longer);
    auto at_90 = std::vector<std::int32_t>(a.begin(), a.begin() + 90);
    const auto hit = cache.find_prefix(joined(at_90, tokens_from(23, 9)));
    CHECK(hit.tokens == 0);  // at 88 it needs 72-87: written only from 88
    CHECK(hit.reason.find("needs positions 0-3 and 72-87 for a hit of 88") != std::string::npos);
  }
  {  // A layer that reads layer 0's KV needs nothing of its own.
    kv_cache<shared_model, paged<P>> cache{capacity_pages{64}};
    const auto a = tokens_from(24, 40);
    prefill_storing(cache, a, {40});
    CHECK(cache.find_prefix(a).tokens == 32);
    driver<shared_model>{cache}.serve(a);
  }
  {  // A recurrent layer's state is not kept per position: nothing is reused.
    kv_cache<hybrid, paged<P>> cache{capacity_pages{64}};
    const auto a = tokens_from(25, 40);
    prefill_storing(cache, a, {40});
    const auto hit = cache.find_prefix(a);
    CHECK(hit.tokens == 0);
    CHECK(hit.matched_tokens == 32);
    CHECK(hit.reason.find("layer 1 keeps a recurrent state") != std::string::npos);
  }
}

TEST_CASE("cached pages give way to steps: lowest priority, then least recently used") {
  // 12 pages: three prompts of 3 full pages each fill 9 of them once released.
  kv_cache<full_model, paged<P>> cache{capacity_pages{12}};
  driver<full_model> run{cache};
  const auto a = tokens_from(26, 25), b = tokens_from(27, 25), c = tokens_from(28, 25);
  for (const auto* t : {&a, &b, &c}) {
    const sequence_id s = run.serve(*t);
    cache.store_prefix(s, *t, {}, t == &c ? 1 : 0);  // c has a higher priority
    cache.release(s);
  }
  CHECK(cache.free_pages(0) == 3);
  CHECK(cache.cached_pages(0) == 9);
  CHECK(cache.find_prefix(a).tokens == 24);  // a lookup is not a use: a stays the oldest
  const auto hit_b = cache.find_prefix(b);
  const sequence_id holder = cache.add_sequence(hit_b);  // b used now, and held
  CHECK(cache.cached_pages(0) == 6);
  CHECK(cache.tokens_available(holder) == 9 * P);  // free and cached pages count
  // A sequence of 5 pages: 3 free, then a's pages 2 and 1 (the deepest first).
  const auto d = tokens_from(29, 40);
  const sequence_id s = run.serve(d);
  CHECK(cache.prefix_stats().evicted_pages == 2);
  CHECK(cache.find_prefix(a).tokens == 8);
  CHECK(cache.find_prefix(a).reason.find("page 1 (positions 8-15) is not stored") !=
        std::string::npos);
  // More than free and cached pages together: refused, nothing taken.
  const append_request too_much{s, 5 * P};
  CHECK_FALSE(cache.can_append({&too_much, 1}));
  CHECK_THROWS_AS(cache.plan_append({&too_much, 1}), cache_error);
  CHECK(cache.cached_pages(0) == 4);
  // Pages a sequence holds are never taken: b's three stay; c (priority 1) outlives a.
  const append_request more{s, P};  // one page: a's last one goes to the step
  append_plan plan = cache.plan_append({&more, 1});
  CHECK(cache.find_prefix(a).tokens == 0);  // while the step holds it
  cache.check_invariants();
  cache.abort(plan);  // nothing was written into it: back in the index
  CHECK(cache.find_prefix(a).tokens == 8);
  cache.check_invariants();
  run.append(s, joined(d, tokens_from(30, P)), 40);  // now for good
  CHECK(cache.find_prefix(a).tokens == 0);
  CHECK(cache.find_prefix(c).tokens == 24);
  CHECK(cache.find_prefix(b).tokens == 24);
  CHECK(cache.prefix_stats().evicted_pages == 3);
  cache.check_invariants();
  run.check(holder, b);
}

TEST_CASE("a hit used after its pages were taken back, or in another cache, is refused") {
  kv_cache<full_model, paged<P>> cache{capacity_pages{6}}, other{capacity_pages{6}};
  driver<full_model> run{cache};
  const auto a = tokens_from(30, 25);
  const sequence_id s = run.serve(a);
  cache.store_prefix(s, a);
  cache.release(s);
  const auto hit = cache.find_prefix(a);
  CHECK(hit.tokens == 24);
  CHECK_THROWS_AS(other.add_sequence(hit), cache_error);
  const sequence_id t = run.serve(tokens_from(31, 40));  // takes a's pages
  const auto used = cache.used_pages(0);
  try {
    cache.add_sequence(hit);
    FAIL("a stale hit was taken");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::stale_hit);
  }
  CHECK(cache.used_pages(0) == used);
  CHECK(cache.contains(t));
  CHECK_THROWS_AS(cache.store_prefix(t, tokens_from(31, 41)), cache_error);  // 41 > 40 tokens
  const std::vector<std::byte> long_salt(prefix::max_key_context_bytes + 1);
  prefix::key_context salted;
  salted.tenant_salt = long_salt;  // a record too long to key
  const auto nodes = cache.prefix_nodes();
  CHECK_THROWS_AS(cache.store_prefix(t, tokens_from(31, 40), salted), cache_error);
  CHECK_THROWS_AS(cache.find_prefix(tokens_from(31, 40), salted), cache_error);
  CHECK(cache.prefix_nodes() == nodes);
  cache.check_invariants();
}

TEST_CASE("a hit kept past its cache's end is refused by a cache made in its place") {
  std::optional<kv_cache<full_model, paged<P>>> cache;
  const auto a = tokens_from(37, 25);
  const auto fill = [&] {
    cache.emplace(capacity_pages{8});
    const sequence_id s = driver<full_model>{*cache}.serve(a);
    cache->store_prefix(s, a);
  };
  fill();
  const auto hit = cache->find_prefix(a);
  REQUIRE(hit.tokens == 24);
  fill();  // the same address, the same prompt stored the same way
  try {
    cache->add_sequence(hit);
    FAIL("an old cache's hit was taken");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::stale_hit);
  }
  CHECK(cache->find_prefix(a).tokens == 24);
  cache->check_invariants();
}

TEST_CASE("random multi-turn traffic: every output as if computed from scratch") {
  // Two tenants, chats that grow turn by turn over shared system prompts, forks, rollbacks and
  // a cache small enough to evict; every sequence read back against the model function.
  kv_cache<gemma_like, paged<P>> cache{capacity_pages{48, 8}};
  driver<gemma_like> run{cache};
  std::mt19937 random(7);
  const std::vector<std::vector<std::int32_t>> systems = {tokens_from(40, 37), tokens_from(41, 64)};
  prefix::key_context tenants[2];
  tenants[0].tenant_salt = prefix::bytes_of("a");
  tenants[1].tenant_salt = prefix::bytes_of("b");
  std::vector<std::vector<std::int32_t>> chats;
  std::int64_t reused_total = 0;
  for (int turn = 0; turn < 120; ++turn) {
    const int tenant = static_cast<int>(random() % 2);
    std::vector<std::int32_t> prompt;
    if (chats.empty() || random() % 3 == 0)
      prompt = systems[random() % 2];
    else
      prompt = chats[random() % chats.size()];
    prompt =
        joined(prompt, tokens_from(static_cast<std::uint32_t>(1000 + turn), 1 + random() % 30));
    if (prompt.size() > 150) prompt.resize(40);
    std::int64_t reused = 0;
    const auto& context = tenants[tenant];
    const auto hit = cache.find_prefix(prompt, context);
    const sequence_id s = cache.add_sequence(hit);
    reused = hit.tokens;
    const append_request request{s, static_cast<std::int64_t>(prompt.size()) - reused};
    if (!cache.can_append({&request, 1})) {
      cache.release(s);
      cache.clear_prefixes();
      cache.check_invariants();
      continue;
    }
    run.append(s, prompt, reused);
    run.check(s, prompt);
    reused_total += reused;
    if (random() % 4 == 0 && cache.can_truncate(s, static_cast<std::int64_t>(prompt.size()) - 3)) {
      cache.truncate(s, static_cast<std::int64_t>(prompt.size()) - 3);  // a rejected draft
      prompt.resize(prompt.size() - 3);
    }
    cache.store_prefix(s, prompt, context);
    if (random() % 5 == 0) {
      const sequence_id f = cache.fork(s);
      run.check(f, prompt);
      cache.release(f);
    }
    cache.release(s);
    chats.push_back(prompt);
    cache.check_invariants();
  }
  CHECK(reused_total > 1000);
  CHECK(cache.prefix_stats().evicted_pages > 0);
}

TEST_CASE("a failed page copy gives the index back the cached pages the step did not write") {
  using cache_type = kv_cache<full_model, paged<P>, failing_copy>;
  const auto a = tokens_from(32, 25), x = tokens_from(33, 17);
  for (const bool copy_into_cached : {false, true}) {
    cache_type cache{capacity_pages{8}};
    driver<full_model, failing_copy> run{cache};
    const sequence_id s = run.serve(a);  // 4 pages, 3 of them stored
    cache.store_prefix(s, a);
    const sequence_id t = run.serve(x);  // 2 more stored, the third freed on release
    cache.store_prefix(t, x);
    cache.release(t);
    cache.truncate(s, 12);  // page 1 is shared with the index; a's page 2 is only cached now
    run.serve(tokens_from(34, copy_into_cached ? 17 : 9));  // leaves 0 or 1 free page
    CHECK(cache.free_pages(0) == (copy_into_cached ? 0 : 1));
    // Writing 12-23 copies page 1 first: into the free page, or into a's page 2 (the least
    // recently used cached page) when none is free; the fresh page is cached too.
    const append_request step{s, 12};
    const auto before = cache.used_pages(0);
    failing_copy::fail = true;
    CHECK_THROWS_AS(cache.plan_append({&step, 1}), std::runtime_error);
    failing_copy::fail = false;
    cache.check_invariants();
    CHECK(cache.used_pages(0) == before - (copy_into_cached ? 1 : 0));
    CHECK(cache.find_prefix(a).tokens == (copy_into_cached ? 16 : 24));  // a's page 2 written
    CHECK(cache.find_prefix(x).tokens == 16);
    auto other = a;
    for (std::size_t i = 12; i < other.size(); ++i) other[i] += 3;
    run.append(s, other, 12);  // goes through now
    run.check(s, other);
    cache.check_invariants();
  }
}

TEST_CASE("events: what a router needs to follow the index, with the keys it computes itself") {
  kv_cache<gemma_like, paged<P>> cache{capacity_pages{40}};
  driver<gemma_like> run{cache};
  cache.record_prefix_events(true);
  const auto a = tokens_from(35, 60);
  const sequence_id s = run.serve(a);
  cache.store_prefix(s, a);
  // The router's keys of the same prompt, from the layout and the tokens alone.
  std::vector<prefix::page_key> keys(7);
  prefix::page_keys(prefix::key_layout::of<gemma_like, paged<P>>(), {}, a, keys);
  std::vector<prefix_event> events;
  cache.take_prefix_events(events);
  // 7 full pages in the global group; the window (32) holds 28-59 of 60, so pages 4-6 whole.
  REQUIRE(events.size() == 7 + 3);
  int stored_global = 0, stored_window = 0;
  for (const prefix_event& e : events) {
    CHECK(e.what == prefix_event::change::stored);
    CHECK(e.key == keys[static_cast<std::size_t>(e.page)]);
    CHECK(e.parent ==
          (e.page == 0 ? prefix::root_key : keys[static_cast<std::size_t>(e.page - 1)]));
    CHECK(e.window.kind == (e.group == 0 ? window_kind::sliding : window_kind::full));
    (e.group == 0 ? stored_window : stored_global) += 1;
    if (e.group == 0) CHECK(e.page >= 4);
  }
  CHECK(stored_global == 7);
  CHECK(stored_window == 3);
  cache.take_prefix_events(events);
  CHECK(events.size() == 10);  // taken once
  // A step that needs the global group's cached pages: removals, deepest first.
  cache.release(s);
  events.clear();
  const auto b = tokens_from(36, 8 * 38);
  run.serve(b);
  cache.take_prefix_events(events);
  REQUIRE_FALSE(events.empty());
  CHECK(events[0].what == prefix_event::change::removed);
  CHECK(events[0].group == 1);
  CHECK(events[0].page == 6);
  CHECK(events[0].key == keys[6]);
  events.clear();
  cache.clear_prefixes();
  cache.take_prefix_events(events);
  for (const prefix_event& e : events) CHECK(e.what == prefix_event::change::removed);
  CHECK(cache.prefix_nodes() == 0);
  cache.record_prefix_events(false);
  cache.check_invariants();
}
