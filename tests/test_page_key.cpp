// Content keys of full pages (kvc/prefix/page_key.hpp) and their hash (kvc/prefix/xxh3.hpp):
// the hash against xxHash's own library, built apart from kvc (libxxhash.so.0, loaded at
// run time), and a known answer; a key against every field of its record, its chaining, and
// records that would alias if they were joined without tags and lengths.

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kvc/models/gallery.hpp"
#include "kvc/prefix/page_key.hpp"
#include "kvc/prefix/xxh3.hpp"

using kvc::prefix::hash128;
using kvc::prefix::key_context;
using kvc::prefix::key_layout;
using kvc::prefix::multimodal_item;
using kvc::prefix::page_key;

namespace {

constexpr int page = 16;
const key_layout llama = key_layout::of<kvc::models::llama3_8b, kvc::paged<page>>();

std::vector<std::int32_t> prompt(std::size_t tokens, std::uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> ids(tokens);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng() % 128'000);
  return ids;
}

std::vector<page_key> keys_of(const key_context& context, const std::vector<std::int32_t>& ids,
                              const key_layout& layout = llama) {
  std::vector<page_key> keys(ids.size() / static_cast<std::size_t>(layout.page_tokens));
  kvc::prefix::page_keys(layout, context, ids, keys);
  return keys;
}

hash128 xxh3_of(std::span<const std::byte> bytes, std::size_t pieces = 1) {
  kvc::prefix::xxh3_128 hash;
  const std::size_t step = bytes.size() / pieces + 1;
  for (std::size_t at = 0; at < bytes.size(); at += step)
    hash.update(bytes.subspan(at, std::min(step, bytes.size() - at)));
  return hash.digest();
}

}  // namespace

TEST_CASE("xxh3_128 is XXH3_128bits: a known answer and xxHash's own library") {
  // xxhsum -H2 of an empty input: 99aa06d3014798d86001c324468d497f.
  const hash128 empty = xxh3_of({});
  CHECK(empty.high == 0x99aa06d3014798d8u);
  CHECK(empty.low == 0x6001c324468d497fu);

  struct library_hash {
    std::uint64_t low64, high64;
  };
  using xxh3_fn = library_hash (*)(const void*, std::size_t);
  void* library = dlopen("libxxhash.so.0", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    WARN("SKIPPED: libxxhash.so.0 is not installed; only the known answer was checked");
    return;
  }
  const auto xxh3 = reinterpret_cast<xxh3_fn>(dlsym(library, "XXH3_128bits"));
  REQUIRE(xxh3 != nullptr);
  std::mt19937 rng(5);
  // Lengths at XXH3's internal boundaries (0-16, 17-128, 129-240, longer, past a stripe).
  for (std::size_t length :
       {0u, 1u, 3u, 4u, 8u, 9u, 16u, 17u, 128u, 129u, 240u, 241u, 1024u, 1025u, 5000u}) {
    std::vector<std::byte> bytes(length);
    for (auto& b : bytes) b = static_cast<std::byte>(rng());
    const library_hash expected = xxh3(bytes.data(), bytes.size());
    for (std::size_t pieces : {1u, 3u, 7u}) {
      INFO("length " << length << ", in " << pieces << " pieces");
      const hash128 h = xxh3_of(bytes, pieces);
      CHECK(h.low == expected.low64);
      CHECK(h.high == expected.high64);
    }
  }
  dlclose(library);
}

TEST_CASE("a page's key chains its parent and changes with every field of its record") {
  const std::vector<std::int32_t> ids = prompt(4 * page + 5);  // 4 full pages, 5 tokens more
  const key_context plain;
  const std::vector<page_key> keys = keys_of(plain, ids);
  REQUIRE(keys.size() == 4);
  CHECK(std::set<std::pair<std::uint64_t, std::uint64_t>>{{keys[0].low, keys[0].high},
                                                          {keys[1].low, keys[1].high},
                                                          {keys[2].low, keys[2].high},
                                                          {keys[3].low, keys[3].high}}
            .size() == 4);
  CHECK(keys_of(plain, ids) == keys);  // a value: the same inputs, the same keys

  SECTION("a token changes its page's key and every later one, no earlier one") {
    std::vector<std::int32_t> other = ids;
    other[2 * page + 3] += 1;
    const std::vector<page_key> changed = keys_of(plain, other);
    CHECK(changed[0] == keys[0]);
    CHECK(changed[1] == keys[1]);
    CHECK(changed[2] != keys[2]);
    CHECK(changed[3] != keys[3]);
    // The tokens past the last full page are in no key.
    other = ids;
    other.back() += 1;
    CHECK(keys_of(plain, other) == keys);
  }
  SECTION("the same page after another parent is another key") {
    std::vector<std::int32_t> other = ids;
    other[0] += 1;
    const std::vector<page_key> changed = keys_of(plain, other);
    for (std::size_t p = 0; p < keys.size(); ++p) CHECK(changed[p] != keys[p]);
  }
  SECTION("the namespace, the adapter and the embeddings digest each change every key") {
    const std::vector<std::byte> digest{std::byte{1}, std::byte{2}};
    key_context salted, adapted, embedded, empty_adapter;
    salted.tenant_salt = kvc::prefix::bytes_of("tenant-a");
    adapted.adapter = "sql-lora";
    embedded.embeddings_digest = digest;
    empty_adapter.adapter = "";
    for (const key_context* context : {&salted, &adapted, &embedded}) {
      const std::vector<page_key> changed = keys_of(*context, ids);
      for (std::size_t p = 0; p < keys.size(); ++p) CHECK(changed[p] != keys[p]);
    }
    CHECK(keys_of(empty_adapter, ids) == keys);  // an empty adapter is no adapter
  }
  SECTION("another layout is another key: page size, dtype, model") {
    using fp16_llama =
        kvc::model<32, kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>, kvc::storage<kvc::fp16>>>;
    const key_layout pages_of_32 = key_layout::of<kvc::models::llama3_8b, kvc::paged<32>>();
    const key_layout fp16 = key_layout::of<fp16_llama, kvc::paged<page>>();
    const key_layout hnd =
        key_layout::of<kvc::models::llama3_8b, kvc::paged<page, kvc::page_layout::hnd>>();
    const key_layout gemma = key_layout::of<kvc::models::gemma3_27b, kvc::paged<page>>();
    CHECK(key_layout::of<kvc::models::llama3_8b, kvc::paged<page>>().fingerprint ==
          llama.fingerprint);
    for (const key_layout* other : {&pages_of_32, &fp16, &hnd, &gemma})
      CHECK(other->fingerprint != llama.fingerprint);
    CHECK(keys_of(plain, ids, fp16)[0] != keys[0]);
    CHECK(pages_of_32.page_tokens == 32);
  }
}

TEST_CASE("records do not alias: every field is tagged and length-prefixed") {
  const std::vector<std::int32_t> ids = prompt(2 * page);
  // "ab" + "c" against "a" + "bc": joined, the same bytes.
  key_context ab_c, a_bc;
  ab_c.tenant_salt = kvc::prefix::bytes_of("ab");
  ab_c.adapter = "c";
  a_bc.tenant_salt = kvc::prefix::bytes_of("a");
  a_bc.adapter = "bc";
  CHECK(keys_of(ab_c, ids)[0] != keys_of(a_bc, ids)[0]);
  // Without lengths the tags would not do: the adapter's tag byte (3) inside the salt.
  const char salt_with_tag[] = {'a', '\x03'};
  const char adapter_with_tag[] = {'\x03', 'b'};
  key_context tag_in_salt, tag_in_adapter;
  tag_in_salt.tenant_salt = kvc::prefix::bytes_of({salt_with_tag, 2});
  tag_in_salt.adapter = "b";
  tag_in_adapter.tenant_salt = kvc::prefix::bytes_of("a");
  tag_in_adapter.adapter = {adapter_with_tag, 2};
  CHECK(keys_of(tag_in_salt, ids)[0] != keys_of(tag_in_adapter, ids)[0]);
  // A salt against the same bytes as an adapter id.
  key_context as_salt, as_adapter;
  as_salt.tenant_salt = kvc::prefix::bytes_of("x");
  as_adapter.adapter = "x";
  CHECK(keys_of(as_salt, ids)[0] != keys_of(as_adapter, ids)[0]);
  // An item's id that would run into the next field.
  const std::vector<std::byte> id_ab{std::byte{'a'}, std::byte{'b'}}, id_a{std::byte{'a'}};
  const multimodal_item item_ab{id_ab, 0, 4}, item_a{id_a, 0, 4};
  key_context with_ab, with_a;
  with_ab.items = {&item_ab, 1};
  with_a.items = {&item_a, 1};
  with_a.embeddings_digest = kvc::prefix::bytes_of("b");
  CHECK(keys_of(with_ab, ids)[0] != keys_of(with_a, ids)[0]);
}

TEST_CASE("a multimodal item is in the keys of the pages it shows, with its offset") {
  const std::vector<std::int32_t> ids = prompt(4 * page);
  const std::vector<std::byte> image{std::byte{7}, std::byte{7}, std::byte{7}};
  const std::vector<page_key> plain = keys_of({}, ids);
  // An item on positions [20, 40): pages 1 and 2.
  const multimodal_item item{image, 20, 20};
  key_context context;
  context.items = {&item, 1};
  const std::vector<page_key> with_item = keys_of(context, ids);
  CHECK(with_item[0] == plain[0]);
  CHECK(with_item[1] != plain[1]);
  CHECK(with_item[2] != plain[2]);
  CHECK(with_item[3] != plain[3]);  // chained: a later page follows another parent
  // Moved by one position within the same pages: other keys.
  const multimodal_item moved{image, 21, 20};
  context.items = {&moved, 1};
  CHECK(keys_of(context, ids)[1] != with_item[1]);
  // Another image on the same positions: other keys.
  const std::vector<std::byte> other_image{std::byte{8}, std::byte{7}, std::byte{7}};
  const multimodal_item other{other_image, 20, 20};
  context.items = {&other, 1};
  CHECK(keys_of(context, ids)[1] != with_item[1]);
}

TEST_CASE("keys go on from a known page: the same keys as in one call") {
  const std::vector<std::int32_t> ids = prompt(6 * page);
  const std::vector<std::byte> image{std::byte{3}};
  const multimodal_item whole{image, 3 * page + 2, 5};
  key_context context;
  context.items = {&whole, 1};
  const std::vector<page_key> all = keys_of(context, ids);
  // Pages 0-1, then pages 2-5 from page 1's key, with positions counted from page 2.
  std::vector<page_key> first(2), rest(4);
  kvc::prefix::page_keys(llama, context, std::span(ids).first(2 * page), first);
  const multimodal_item shifted{image, page + 2, 5};
  key_context rest_context;
  rest_context.items = {&shifted, 1};
  kvc::prefix::page_keys(llama, rest_context, std::span(ids).subspan(2 * page), rest, first[1]);
  for (std::size_t p = 0; p < 2; ++p) CHECK(first[p] == all[p]);
  for (std::size_t p = 0; p < 4; ++p) CHECK(rest[p] == all[p + 2]);
}

TEST_CASE("page_keys refuses what it cannot key, and writes nothing then") {
  const std::vector<std::int32_t> ids = prompt(2 * page + 3);
  std::vector<page_key> keys(3, page_key{1, 1});
  // Three keys need 48 tokens.
  CHECK_THROWS_MATCHES(kvc::prefix::page_keys(llama, {}, ids, keys), kvc::cache_error,
                       Catch::Predicate<kvc::cache_error>([](const kvc::cache_error& e) {
                         return e.code() == kvc::cache_errc::invalid_argument;
                       }));
  CHECK(keys == std::vector<page_key>(3, page_key{1, 1}));
  // Items out of prompt order.
  const std::vector<std::byte> image{std::byte{1}};
  const multimodal_item items[] = {{image, 10, 2}, {image, 4, 2}};
  key_context context;
  context.items = items;
  keys.resize(2);
  CHECK_THROWS_AS(kvc::prefix::page_keys(llama, context, ids, keys), kvc::cache_error);
  CHECK(keys == std::vector<page_key>(2, page_key{1, 1}));
  // A context over 4 KiB: every page's record would repeat it.
  const std::vector<std::byte> long_salt(kvc::prefix::max_key_context_bytes + 1);
  key_context salted;
  salted.tenant_salt = long_salt;
  CHECK_THROWS_AS(kvc::prefix::page_keys(llama, salted, ids, keys), kvc::cache_error);
  CHECK(keys == std::vector<page_key>(2, page_key{1, 1}));
  salted.tenant_salt = std::span(long_salt).first(kvc::prefix::max_key_context_bytes);
  kvc::prefix::page_keys(llama, salted, ids, keys);  // at the limit: keyed
  CHECK(keys != std::vector<page_key>(2, page_key{1, 1}));
  keys.assign(2, page_key{1, 1});
  // An item of a negative count of positions.
  const multimodal_item bad{image, 3, -2};
  context.items = {&bad, 1};
  CHECK_THROWS_AS(kvc::prefix::page_keys(llama, context, ids, keys), kvc::cache_error);
  CHECK(keys == std::vector<page_key>(2, page_key{1, 1}));
  // An item of no positions is keyed in no page: as if it were not given.
  const multimodal_item empty{image, 3, 0};
  context.items = {&empty, 1};
  kvc::prefix::page_keys(llama, context, ids, keys);
  std::vector<page_key> plain(2);
  kvc::prefix::page_keys(llama, {}, ids, plain);
  CHECK(keys == plain);
  // No key asked for: nothing to do.
  kvc::prefix::page_keys(llama, {}, ids, std::span<page_key>{});
}

TEST_CASE("a hash of the caller's: the keys are its digests, and a key alone proves no content") {
  // A hash that collides on purpose: every input has the same digest.
  struct constant_hash {
    void reset() {}
    void update(std::span<const std::byte>) {}
    page_key digest() const { return {42, 42}; }
  };
  constant_hash hash;
  const std::vector<std::int32_t> a = prompt(page, 1), b = prompt(page, 2);
  std::vector<page_key> key_a(1), key_b(1);
  kvc::prefix::page_keys_with(hash, llama, {}, a, key_a);
  kvc::prefix::page_keys_with(hash, llama, {}, b, key_b);
  CHECK(key_a == key_b);  // what an index must not trust without comparing the tokens
  CHECK(a != b);
}
