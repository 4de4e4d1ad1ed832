// Window checkpoints (capacity_*::checkpoint_every): the pages a bounded window lets go that a
// prefix hit at a multiple of N needs stay with the sequence, so that a prompt stored after one
// long step still hits there. Hits and page counts are predicted by hand; every read is checked
// against the model function of prefix_driver.hpp.

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "kvc/model/footprint.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "prefix_driver.hpp"

using namespace kvc;
using namespace prefix_test;

namespace {

// Gemma 3's pattern at a small scale: five sliding-window layers (32 tokens), one global.
struct gemma_like : model<6, pattern<one_head<sliding_window<32>>, one_head<sliding_window<32>>,
                                     one_head<sliding_window<32>>, one_head<sliding_window<32>>,
                                     one_head<sliding_window<32>>, full_l>> {};
struct windows_only : stack<repeat<2, one_head<sliding_window<32>>>> {};
struct chunked_like : model<2, pattern<one_head<chunked<24>>, full_l>> {};
struct streaming_like : stack<repeat<1, one_head<streaming<4, 16>>>, repeat<1, full_l>> {};
struct full_model : stack<repeat<2, full_l>> {};

// Appends tokens[from, end) of a sequence in steps of `step` tokens.
template <class Model>
void grow(kv_cache<Model, paged<P>>& cache, sequence_id s, std::span<const std::int32_t> tokens,
          std::int64_t from, std::int64_t end, std::int64_t step) {
  driver<Model> run{cache};
  for (std::int64_t at = from; at < end; at += step) {
    const std::int64_t to = std::min(end, at + step);
    run.append(s, tokens.first(static_cast<std::size_t>(to)), at);
  }
}

// Appends `tokens` zeros to a sequence as a step whose layer `marked` a device kernel wrote
// (mark_written), the other layers by the host.
template <class Model>
void step_marked_written(kv_cache<Model, paged<P>>& cache, sequence_id s, std::int64_t tokens,
                         int marked) {
  const append_request request{s, tokens};
  append_plan plan = cache.plan_append({&request, 1});
  const std::vector<float> zeros(static_cast<std::size_t>(tokens * dim), 0.0f);
  for (int l = 0; l < Model::num_layers; ++l)
    cache.write(plan, l, fp32_input(zeros.data(), tokens, 1, dim),
                fp32_input(zeros.data(), tokens, 1, dim));
  cache.mark_written(plan, marked);
  cache.commit(plan);
}

std::vector<std::int32_t> diverging_at(const std::vector<std::int32_t>& a, std::size_t n,
                                       std::uint32_t seed) {
  return joined(std::vector<std::int32_t>(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n)),
                tokens_from(seed, 20));
}

}  // namespace

TEST_CASE("checkpoint pages: the rule against every checkpoint's need, page by page") {
  // Page j is wanted when some multiple c of N past its start needs it: c > jP and the window
  // shows part of it at c (recent_begin(c) < (j + 1) P).
  int checked = 0;
  for (const window_kind kind :
       {window_kind::sliding, window_kind::chunked, window_kind::streaming})
    for (const std::int64_t W : {1, 5, 16, 17, 40, 100})
      for (const std::int64_t page : {1, 4, 16})
        for (const std::int64_t periods : {1, 2, 3, 8}) {
          const window_shape w{kind, kind == window_kind::streaming ? 3 : 0, W};
          const window_checkpoints rule{w, periods * page, page};
          std::vector<bool> wanted(400, false);
          for (std::int64_t c = rule.every; c < 400 * page + 2 * W + rule.every; c += rule.every) {
            const std::int64_t first = w.recent_begin(c) / page;
            for (std::int64_t j = first; j < c / page && j < 400; ++j)
              wanted[static_cast<std::size_t>(j)] = true;
          }
          for (std::int64_t j = 0; j < 400; ++j) {
            // Sink pages are kept by the window itself; the rule may call them either way.
            if (j * page < w.sink_tokens) continue;
            REQUIRE(rule.wants(j) == wanted[static_cast<std::size_t>(j)]);
          }
          for (std::int64_t first = 0; first < 60; first += 7)
            for (std::int64_t last = first - 1; last < 400; last += 13) {
              std::int64_t count = 0;
              for (std::int64_t j = first; j <= last; ++j) count += rule.wants(j) ? 1 : 0;
              REQUIRE(rule.wanted_in(first, last) == count);
              ++checked;
            }
        }
  CHECK(checked > 10000);
  CHECK(window_checkpoints{window_shape{window_kind::sliding, 0, 32}, 0, 8}.wanted_in(0, 99) == 0);
  CHECK(window_checkpoints{window_shape{}, 64, 8}.wanted_in(0, 99) == 0);  // full attention
}

TEST_CASE("one long step keeps the window's pages at every checkpoint, and a later prompt hits") {
  // Window 32, pages of 8, checkpoints every 64: pages 4-7 (positions 32-63, what the window
  // shows at 64), 12-15 (at 128), ... are checkpoint pages.
  const auto a = tokens_from(21, 104);  // 13 pages
  const auto leaving_at_100 = diverging_at(a, 100, 22);
  for (const std::int64_t step : {104, 1, 13}) {  // one step, decode token by token, chunks
    INFO("steps of " << step << " tokens");
    kv_cache<gemma_like, paged<P>> cache{capacity_pages{128, 0, 0, 64}};
    CHECK(cache.checkpoint_every() == 64);
    const sequence_id s = cache.add_sequence();
    grow(cache, s, a, 0, 104, step);
    driver<gemma_like>{cache}.check(s, a);
    cache.check_invariants();
    // At 104 the window lists pages 9-12 (72-103); pages 4-7 stay for the checkpoint at 64.
    CHECK(cache.pages_of(s, 0) == 4);
    CHECK(cache.checkpoint_pages_of(s, 0) == 4);
    CHECK(cache.checkpoint_pages_of(s, 1) == 0);  // full attention holds every page anyway
    CHECK(cache.used_bytes() == footprint<gemma_like, paged<P>>::bytes_for_tokens(104, 0, 64));
    cache.store_prefix(s, a);
    // Leaving a at 100: at 96 the window needs 64-95 (page 8 is gone); at 64, 32-63: held.
    const auto hit = cache.find_prefix(leaving_at_100);
    CHECK(hit.tokens == 64);
    CHECK(hit.group_tokens[0] == 64);
    CHECK(hit.group_tokens[1] == 96);
    std::int64_t reused = 0;
    const sequence_id b = driver<gemma_like>{cache}.serve(leaving_at_100, {}, &reused);
    CHECK(reused == 64);
    cache.release(b);
    cache.release(s);
    cache.check_invariants();
  }
  // Without checkpoints the same prompt reuses nothing: the step wrote only 72-103.
  kv_cache<gemma_like, paged<P>> plain{capacity_pages{128}};
  const sequence_id s = plain.add_sequence();
  grow(plain, s, a, 0, 104, 104);
  plain.store_prefix(s, a);
  CHECK(plain.find_prefix(leaving_at_100).tokens == 0);
}

TEST_CASE("checkpoints every page serve a hit anywhere; chunked and streaming windows too") {
  const auto a = tokens_from(23, 120);
  {  // N = 8 (every page): the window group holds every page, as full attention would.
    kv_cache<gemma_like, paged<P>> cache{capacity_pages{128, 0, 0, 8}};
    const sequence_id s = cache.add_sequence();
    grow(cache, s, a, 0, 120, 120);
    CHECK(cache.pages_of(s, 0) + cache.checkpoint_pages_of(s, 0) == 15);
    cache.store_prefix(s, a);
    for (const std::size_t leave : {20u, 45u, 77u, 100u, 119u}) {
      const auto b = diverging_at(a, leave, 24);
      CHECK(cache.find_prefix(b).tokens == static_cast<std::int64_t>(leave) / P * P);
      cache.release(driver<gemma_like>{cache}.serve(b));
    }
  }
  {  // Chunks of 24, N = 48: at 48 the chunk needs 24-47 (pages 3-5), at 96, 72-95 (9-11).
    kv_cache<chunked_like, paged<P>> cache{capacity_pages{128, 0, 0, 48}};
    const sequence_id s = cache.add_sequence();
    grow(cache, s, a, 0, 120, 120);
    CHECK(cache.checkpoint_pages_of(s, 0) == 6);
    cache.store_prefix(s, a);
    // At 104 the chunk so far is 96-103, which the layer still lists at 120.
    CHECK(cache.find_prefix(diverging_at(a, 110, 25)).tokens == 104);
    // At 88 it is 72-87, in the checkpoint pages of 96.
    CHECK(cache.find_prefix(diverging_at(a, 90, 26)).tokens == 88);
    // At 64 it is 48-63 (pages 6-7, no checkpoint's), at 56 48-55; at 48 the pages of 48.
    CHECK(cache.find_prefix(diverging_at(a, 70, 27)).tokens == 48);
    cache.release(driver<chunked_like>{cache}.serve(diverging_at(a, 90, 26)));
  }
  {  // Sinks 4, window 16, N = 32: at 32 the layer needs 0-3 and 16-31 (pages 0, 2, 3).
    kv_cache<streaming_like, paged<P>> cache{capacity_pages{128, 0, 0, 32}};
    const sequence_id s = cache.add_sequence();
    grow(cache, s, a, 0, 120, 120);
    cache.store_prefix(s, a);
    CHECK(cache.find_prefix(diverging_at(a, 60, 28)).tokens == 32);
    CHECK(cache.find_prefix(diverging_at(a, 100, 29)).tokens == 96);
    cache.release(driver<streaming_like>{cache}.serve(diverging_at(a, 100, 29)));
    cache.check_invariants();
  }
}

TEST_CASE("checkpoint pages count in every page question: admit, tokens_available, footprint") {
  // Two window layers only (one group), 16 pages. A step of k tokens from nothing holds the
  // window's pages and the checkpoint pages below them (4-7, 12-15, 20-23, ...).
  kv_cache<windows_only, paged<P>> cache{capacity_pages{16, 0, 0, 64}};
  const sequence_id s = cache.add_sequence();
  const auto pages_for = [&](std::int64_t k) {
    const append_request r{s, k};
    return cache.admit({&r, 1}).pages[0];
  };
  CHECK(pages_for(128) == 8);   // 12-15, and 4-7
  CHECK(pages_for(192) == 12);  // 20-23, 4-7 and 12-15
  CHECK(pages_for(256) == 16);
  CHECK(pages_for(257) == 17);  // 28-32: the window straddles five pages
  CHECK(pages_for(224) == 16);  // 24-27, and 12 checkpoint pages
  CHECK(pages_for(225) == 17);  // 24-28: token by token, no step goes past 224
  CHECK(cache.tokens_available(s) == 224);
  CHECK(cache.sequences_that_fit(256) == 1);
  CHECK(cache.sequences_that_fit(128) == 2);
  const auto a = tokens_from(30, 256);
  driver<windows_only> run{cache};
  run.append(s, a, 0);
  run.check(s, a);
  CHECK(cache.free_pages(0) == 0);
  CHECK(cache.used_bytes() == footprint<windows_only, paged<P>>::bytes_for_tokens(256, 0, 64));
  CHECK(cache.tokens_available(s) == 0);  // a page for 256-263 would be needed first
  cache.check_invariants();
  // Nothing to add, but a step of 1 token needs one more page: refused, and nothing changed.
  const append_request one{s, 1};
  CHECK_THROWS_AS(cache.plan_append({&one, 1}), cache_error);
  CHECK(cache.free_pages(0) == 0);
  // Truncating to nothing lets every page go, the checkpoint pages included.
  cache.truncate(s, 0);
  CHECK(cache.free_pages(0) == 16);
  CHECK(cache.checkpoint_pages_of(s, 0) == 0);
  cache.check_invariants();
  // A byte budget gives a window group with checkpoints more pages.
  using budgeted = kv_cache<gemma_like, paged<P>>;
  const budgeted plain{capacity_bytes{1 << 20, 4096}};
  const budgeted with{capacity_bytes{1 << 20, 4096, 0, 0, 256}};
  CHECK(with.capacity_pages_of(0) > 2 * plain.capacity_pages_of(0));
  CHECK(with.capacity_pages_of(1) < plain.capacity_pages_of(1));
}

TEST_CASE("forks share the checkpoint pages, releases let them go") {
  kv_cache<gemma_like, paged<P>> cache{capacity_pages{64, 96, 0, 64}};
  const auto a = tokens_from(31, 200);
  const sequence_id s = cache.add_sequence();
  grow(cache, s, a, 0, 200, 200);
  // A reserve of 96 keeps from recent_begin(104) = 72: pages 9-24; below them pages 4-7.
  CHECK(cache.checkpoint_pages_of(s, 0) == 4);
  const sequence_id child = cache.fork(s, 104);
  CHECK(cache.checkpoint_pages_of(child, 0) == 4);  // 4-7 end by 104
  const std::int64_t used = cache.used_pages(0);
  cache.release(s);
  CHECK(cache.used_pages(0) < used);
  cache.store_prefix(child, std::span(a).first(104));
  CHECK(cache.find_prefix(diverging_at(a, 70, 32)).tokens == 64);
  cache.check_invariants();
  cache.release(child);
  cache.clear_prefixes();
  CHECK(cache.used_pages(0) == 0);
  CHECK(cache.used_pages(1) == 0);
  cache.check_invariants();
}

TEST_CASE("a step a kernel wrote keeps no checkpoint page it may have left unwritten") {
  // A device append kernel stores only what the window keeps; the cache cannot tell which
  // bytes it wrote, so a group with a layer marked written keeps none of the step's
  // checkpoint pages, nor the pages that step left partly written when they slide out.
  kv_cache<gemma_like, paged<P>> cache{capacity_pages{128, 0, 0, 64}};
  const auto a = tokens_from(33, 104);
  const sequence_id s = cache.add_sequence();
  grow(cache, s, a, 0, 20, 20);
  step_marked_written(cache, s, 84, 2);  // as if layer 2's K/V came from the kernel
  CHECK(cache.checkpoint_pages_of(s, 0) == 0);
  cache.check_invariants();
  // The steps after it are the host's again: pages 9-15 are complete, 12-15 stay at 128.
  grow(cache, s, joined(a, tokens_from(34, 60)), 104, 164, 1);
  CHECK(cache.checkpoint_pages_of(s, 0) == 4);
  cache.check_invariants();
}

TEST_CASE("bad checkpoint settings are refused") {
  using gemma_cache = kv_cache<gemma_like, paged<P>>;
  for (const std::int64_t every :
       {std::int64_t{-8}, std::int64_t{4}, std::int64_t{12}, std::int64_t{1} << 41}) {
    INFO(every);
    CHECK_THROWS_MATCHES(gemma_cache(capacity_pages{16, 0, 0, every}), cache_error,
                         Catch::Matchers::Predicate<cache_error>([](const cache_error& e) {
                           return e.code() == cache_errc::invalid_argument;
                         }));
  }
  CHECK_THROWS_AS(gemma_cache(capacity_bytes{1 << 20, 4096, 0, 0, 12}), cache_error);
  CHECK_THROWS_AS((kv_cache<full_model, paged<P>>(capacity_pages{16, 0, 0, 64})), cache_error);
  CHECK_NOTHROW(gemma_cache(capacity_pages{16, 0, 0, 0}));
}

TEST_CASE("random multi-turn traffic with checkpoints: every output as if computed from scratch") {
  // Long turns in one step each, forks, rollbacks, truncation and a cache small enough to evict.
  kv_cache<gemma_like, paged<P>> cache{capacity_pages{72, 8, 0, 32}};
  driver<gemma_like> run{cache};
  std::mt19937 random(11);
  const std::vector<std::int32_t> system = tokens_from(50, 70);
  std::vector<std::vector<std::int32_t>> chats;
  std::int64_t reused_total = 0;
  for (int turn = 0; turn < 80; ++turn) {
    std::vector<std::int32_t> prompt =
        chats.empty() || random() % 3 == 0 ? system : chats[random() % chats.size()];
    if (random() % 2 == 0 && prompt.size() > 40) prompt.resize(prompt.size() - random() % 30);
    prompt =
        joined(prompt, tokens_from(static_cast<std::uint32_t>(2000 + turn), 1 + random() % 60));
    if (prompt.size() > 200) prompt.resize(50);
    const auto hit = cache.find_prefix(prompt);
    const sequence_id s = cache.add_sequence(hit);
    const append_request request{s, static_cast<std::int64_t>(prompt.size()) - hit.tokens};
    if (!cache.can_append({&request, 1})) {
      cache.release(s);
      cache.clear_prefixes();
      continue;
    }
    run.append(s, prompt, hit.tokens);
    run.check(s, prompt);
    reused_total += hit.tokens;
    if (random() % 4 == 0 && cache.can_truncate(s, static_cast<std::int64_t>(prompt.size()) - 3)) {
      cache.truncate(s, static_cast<std::int64_t>(prompt.size()) - 3);
      prompt.resize(prompt.size() - 3);
    }
    cache.store_prefix(s, prompt);
    if (random() % 5 == 0) {
      const auto cut = static_cast<std::int64_t>(prompt.size()) / 2;
      if (cache.can_truncate(s, cut)) {
        const sequence_id f = cache.fork(s, cut);
        run.check(f, prompt);
        cache.release(f);
      }
    }
    cache.release(s);
    chats.push_back(prompt);
    cache.check_invariants();
  }
  CHECK(reused_total > 1500);
  CHECK(cache.prefix_stats().evicted_pages > 0);
}

TEST_CASE("the hit grid of docs/prefix-reuse.md") {
  // The small Gemma-like model of the docs: pages of 16, window 64, checkpoints every 128.
  using local = layer<gqa<4, 2>, head_dim<16>, sliding_window<64>, storage<bf16>>;
  using global = layer<gqa<4, 2>, head_dim<16>, storage<bf16>>;
  using small_gemma = model<6, pattern<local, local, local, local, local, global>>;
  using cache_type = kv_cache<small_gemma, paged<16>>;
  const auto prompt = tokens_from(40, 300);
  const std::vector<float> zeros(300 * 2 * 16, 0.0f);
  for (const std::int64_t every : {0, 128}) {
    cache_type cache{capacity_pages{64, 0, 0, every}};
    const sequence_id s = cache.add_sequence();
    std::vector<layer_input> layers;
    for (int l = 0; l < 6; ++l)
      layers.push_back(
          {l, fp32_input(zeros.data(), 300, 2, 16), fp32_input(zeros.data(), 300, 2, 16)});
    const append_request request{s, 300};
    cache.append({&request, 1}, layers);
    cache.store_prefix(s, prompt);
    INFO("checkpoint_every " << every);
    CHECK(cache.find_prefix(diverging_at(prompt, 290, 41)).tokens == (every > 0 ? 288 : 0));
    CHECK(cache.find_prefix(diverging_at(prompt, 200, 42)).tokens == (every > 0 ? 128 : 0));
    CHECK(cache.find_prefix(diverging_at(prompt, 100, 43)).tokens == 0);
  }
}

TEST_CASE("a page the index holds for its sinks only is never stored whole again") {
  // Streaming (4 sinks, 8 recent), checkpoints every page. A step a kernel wrote stores
  // positions 4-7 of page 0 never (the window had let them go): the index keeps page 0 for
  // its sinks only. A sequence started from a hit shares that page; storing it again must not
  // call it whole, or a prompt of one page would be served positions 4-7 unwritten.
  struct sinks_model : stack<repeat<1, one_head<streaming<4, 8>>>, repeat<1, full_l>> {};
  kv_cache<sinks_model, paged<P>> cache{capacity_pages{64, 0, 0, 8}};
  const auto a = tokens_from(50, 32);
  const sequence_id s = cache.add_sequence();
  step_marked_written(cache, s, 32, 0);
  cache.store_prefix(s, a);
  const auto one_page =
      joined(std::vector<std::int32_t>(a.begin(), a.begin() + 8), tokens_from(51, 4));
  CHECK(cache.find_prefix(one_page).tokens == 0);  // page 0 is the sinks only
  const auto longer = joined(a, tokens_from(52, 5));
  const auto hit = cache.find_prefix(longer);
  REQUIRE(hit.tokens == 32);
  const sequence_id b = cache.add_sequence(hit);
  cache.release(s);
  cache.clear_prefixes();
  cache.store_prefix(b, a);
  CHECK(cache.find_prefix(one_page).tokens == 0);
  cache.check_invariants();
}

TEST_CASE("tokens_available with checkpoints far apart is what the pool holds, not less") {
  // Checkpoints every 2^40 tokens: none falls before the longest sequence ends.
  kv_cache<windows_only, paged<P>> cache{capacity_pages{16, 0, 0, std::int64_t{1} << 40}};
  const sequence_id s = cache.add_sequence();
  CHECK(cache.tokens_available(s) == max_sequence_tokens);
  const append_request many{s, 1000};
  CHECK(cache.can_append({&many, 1}));
  // The bisection's bound for a pool of 2^23 pages: (free + 3) * N would pass 2^63.
  const window_shape sliding{window_kind::sliding, 0, 16};
  const auto every_step_fits = [](std::int64_t) { return true; };
  CHECK(detail::tokens_that_fit(sliding, window_checkpoints{sliding, std::int64_t{1} << 40, 16}, 16,
                                0, 0, (std::int64_t{1} << 23) - 2,
                                every_step_fits) == max_sequence_tokens);
}
