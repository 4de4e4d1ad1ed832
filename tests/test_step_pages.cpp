// step_pages on its own, with no cache: for every kind of window (full, sliding, chunked,
// streaming with sinks), rollback reserves, page sizes, lengths and step sizes, and page lists
// that hold all the kept pages or one fewer (after a truncation, never fewer than the sequence
// sees), what step_pages says against
// a count made position by position from window_shape::keeps: the entries it keeps, the pages
// it takes fresh, whether it writes into the last listed page, and the page of every position
// the step stores.

#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kvc/cache/step_pages.hpp"
#include "kvc/policy/window.hpp"

using namespace kvc;

namespace {

std::vector<window_shape> windows() {
  std::vector<window_shape> all;
  for (const std::int64_t reserve : {0, 3, 17}) {
    all.push_back({window_kind::full, 0, 0, 0});
    for (const std::int64_t w : {1, 5, 16, 37})
      all.push_back({window_kind::sliding, 0, w, reserve});
    for (const std::int64_t c : {8, 16, 20}) all.push_back({window_kind::chunked, 0, c, reserve});
    for (const std::int64_t sinks : {1, 4, 20})
      for (const std::int64_t w : {3, 16})
        all.push_back({window_kind::streaming, sinks, w, reserve});
  }
  return all;
}

// The logical pages holding a position a sequence of `length` tokens keeps.
std::set<std::int64_t> kept_set(const window_shape& window, std::int64_t length,
                                std::int64_t page_tokens) {
  std::set<std::int64_t> pages;
  for (std::int64_t p = 0; p < length; ++p)
    if (window.keeps(length, p)) pages.insert(p / page_tokens);
  return pages;
}

}  // namespace

TEST_CASE(
    "step_pages: kept entries, fresh pages, the written page and every page, by brute force") {
  std::int64_t cases = 0, writes = 0, with_fresh = 0, fewer = 0;
  for (const window_shape& window : windows())
    for (const std::int64_t page_tokens : {1, 4, 16})
      for (std::int64_t length = 0; length <= 64; ++length)
        for (std::int64_t tokens = 0; tokens <= 33; ++tokens) {
          const std::int64_t kept_now = window.pages_kept(length, page_tokens).count();
          for (std::int64_t listed = kept_now; listed >= kept_now - 1 && listed >= 1; --listed) {
            const window_shape::kept_pages old_list =
                window.pages_listed(length, page_tokens, listed);
            if (old_list.count() != listed) continue;  // not a list a table can have
            // A table lists at least the pages of what the sequence sees (truncate and fork
            // refuse to cut deeper).
            bool sees_all = true;
            for (std::int64_t p = 0; p < length; ++p) {
              const std::int64_t entry = old_list.entry_of(p / page_tokens);
              if ((p < window.sink_end(length) || p >= window.recent_begin(length)) &&
                  (entry < 0 || entry >= listed))
                sees_all = false;
            }
            if (!sees_all) continue;
            const step_pages step = step_pages::of(window, page_tokens, listed, length, tokens);
            const std::int64_t end = length + tokens;
            const std::set<std::int64_t> after = kept_set(window, end, page_tokens);
            const std::int64_t old_last = old_list.last;
            ++cases;
            // REQUIRE costs too much a million times over: a failure names its case.
            const auto expect = [&](bool ok, const char* what) {
              if (!ok)
                FAIL(std::string(what) + ": window kind " +
                     std::to_string(static_cast<int>(window.kind)) + " sinks " +
                     std::to_string(window.sink_tokens) + " tokens " +
                     std::to_string(window.tokens) + " reserve " + std::to_string(window.reserve) +
                     ", pages of " + std::to_string(page_tokens) + ", length " +
                     std::to_string(length) + " + " + std::to_string(tokens) + ", " +
                     std::to_string(listed) + " listed");
            };
            fewer += listed < kept_now ? 1 : 0;

            // Entries kept: those whose page the longer sequence still keeps.
            for (std::int64_t entry = 0; entry < listed; ++entry)
              expect(step.keeps_entry(entry) == (after.count(old_list.logical_page(entry)) > 0),
                     "kept entry");
            // Fresh: the kept pages past the last listed one.
            std::vector<std::int64_t> fresh_pages;
            for (const std::int64_t p : after)
              if (p > old_last) fresh_pages.push_back(p);
            expect(step.fresh == (tokens == 0 ? 0 : static_cast<std::int64_t>(fresh_pages.size())),
                   "fresh pages");
            with_fresh += step.fresh > 0 ? 1 : 0;
            expect(step.first_fresh_entry() == step.new_kept.count() - step.fresh, "first fresh");
            // The last listed page is written when it has room and a new token there is kept.
            bool written = false;
            if (tokens > 0 && length % page_tokens != 0)
              for (std::int64_t p = length; p < end && p / page_tokens == length / page_tokens; ++p)
                written = written || window.keeps(end, p);
            expect(step.writes_held_page == written, "writes the last listed page");
            if (written)
              expect(old_list.logical_page(step.write_entry) == length / page_tokens,
                     "the written entry");
            writes += written ? 1 : 0;

            // The page of every position the step stores: held pages 1000 + entry, fresh pages
            // 2000 + their index, the copy 3000 (or none).
            std::vector<std::int32_t> held(static_cast<std::size_t>(listed)),
                fresh(fresh_pages.size());
            for (std::size_t i = 0; i < held.size(); ++i)
              held[i] = 1000 + static_cast<std::int32_t>(i);
            for (std::size_t i = 0; i < fresh.size(); ++i)
              fresh[i] = 2000 + static_cast<std::int32_t>(i);
            for (const std::int32_t copy : {std::int32_t{-1}, std::int32_t{3000}})
              for (std::int64_t p = length; p < end; ++p) {
                if (!window.keeps(end, p)) continue;
                const std::int64_t page = p / page_tokens;
                std::int32_t expected = -1;
                if (page > old_last) {
                  std::int32_t rank = 0;
                  for (const std::int64_t q : fresh_pages) {
                    if (q == page) break;
                    ++rank;
                  }
                  expected = 2000 + rank;
                } else {
                  expect(page == length / page_tokens, "a position before the last page");
                  expected =
                      copy >= 0 ? copy : 1000 + static_cast<std::int32_t>(old_list.entry_of(page));
                }
                expect(step.page_of(p, held.data(), fresh.data(), copy) == expected, "page_of");
              }
          }
        }
  CHECK(cases > 100000);
  CHECK(writes > 1000);
  CHECK(with_fresh > 1000);
  CHECK(fewer > 1000);
}

TEST_CASE("step_pages: a step of no tokens takes and writes nothing") {
  const window_shape sliding{window_kind::sliding, 0, 8, 2};
  const step_pages step = step_pages::of(sliding, 4, 3, 10, 0);
  CHECK(step.fresh == 0);
  CHECK_FALSE(step.writes_held_page);
  CHECK(step.write_entry == -1);
  for (std::int64_t entry = 0; entry < 3; ++entry) CHECK(step.keeps_entry(entry));
  STATIC_REQUIRE(step_pages::of(window_shape{}, 16, 1, 5, 20).fresh == 1);  // constexpr
}
