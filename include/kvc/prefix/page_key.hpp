#pragma once
// Content keys of full pages, the first part of prefix reuse: two requests whose prompts
// begin with the same pages, computed the same way, get the same keys, and nothing else
// does. A key chains its parent's key (the page before it, or root_key), the page's token
// ids and a typed record of everything else that changes the K/V: the layout the pages are
// stored in (from the model typedef and the paging: a page is never reused under another
// layout), a namespace (a tenant salt, an adapter id), the multimodal items the page's
// positions show and a digest of prompt embeddings. The recipe is a value with no cache
// behind it, so that a router computes the keys the engine does (docs/prefix.md writes the
// bytes out).
//
//   const auto layout = kvc::prefix::key_layout::of<kvc::models::llama3_8b, kvc::paged<16>>();
//   kvc::prefix::key_context context;
//   context.tenant_salt = kvc::prefix::bytes_of("tenant-42");
//   context.adapter = "sql-lora";
//   std::vector<kvc::prefix::page_key> keys(prompt.size() / layout.page_tokens);
//   kvc::prefix::page_keys(layout, context, prompt, keys);   // one key per full page
//
// A key names content; it does not prove it. Whoever serves a page for a key compares the
// page's tokens and record as well (a colliding hash must never serve wrong K/V).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kvc/cache/errors.hpp"
#include "kvc/model/model.hpp"
#include "kvc/prefix/xxh3.hpp"

namespace kvc::prefix {

/// A page's content key.
using page_key = hash128;

/// The parent of a prompt's first page.
inline constexpr page_key root_key{};

/// Returns the bytes of a string (a salt or an id given as text).
inline std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

/// An item of a multimodal prompt (an image, an audio clip) and the positions its
/// embeddings take.
struct multimodal_item {
  std::span<const std::byte> id;    ///< the item's content digest, any length
  std::int64_t first_position = 0;  ///< its first position in the prompt
  std::int64_t positions = 0;       ///< how many positions it takes
};

/// The most bytes a key context may hold (salt, adapter, embeddings digest, and each item's id
/// with 24 bytes of its own): every page's record repeats them, and the prefix index keeps
/// the records of the pages it stores.
inline constexpr std::size_t max_key_context_bytes = 4096;

/// Everything but the token ids that changes the K/V a request computes. Empty fields are
/// fields too: a salt of no bytes is one namespace, and it is not another one's.
struct key_context {
  std::span<const std::byte> tenant_salt;        ///< who may share pages (a tenant, a model)
  std::string_view adapter;                      ///< the LoRA adapter, empty for none
  std::span<const multimodal_item> items;        ///< by first_position, as in the prompt
  std::span<const std::byte> embeddings_digest;  ///< prompt embeddings given with the tokens
};

/// What a page's bytes depend on besides the request: its token count and a fingerprint of
/// every layer's cache layout (kind, the layer it reads, KV heads, dims, latent, dtypes,
/// window) and the page layout.
struct key_layout {
  int page_tokens = 0;
  hash128 fingerprint;

  template <model_type Model, class Paging>
  static key_layout of() {
    return of(Paging::page_tokens, static_cast<std::uint64_t>(Paging::layout),
              Model::layer_summaries);
  }

  /// The same from run-time values: page tokens, the page layout's value, every layer's
  /// summary. (The template above only forwards, so that its names stay out of -Wshadow.)
  static key_layout of(int tokens_per_page, std::uint64_t layout_value,
                       std::span<const layer_summary> layers) {
    std::vector<std::byte> record;
    const auto put = [&](std::uint64_t value) {
      for (int i = 0; i < 8; ++i)
        record.push_back(static_cast<std::byte>((value >> (8 * i)) & 0xFF));
    };
    put(static_cast<std::uint64_t>(tokens_per_page));
    put(layout_value);
    put(static_cast<std::uint64_t>(layers.size()));
    for (const layer_summary& s : layers) {
      put(static_cast<std::uint64_t>(s.kind));
      put(static_cast<std::uint64_t>(static_cast<std::int64_t>(s.source_layer)));
      put(static_cast<std::uint64_t>(s.kv_heads));
      put(static_cast<std::uint64_t>(s.k_dim));
      put(static_cast<std::uint64_t>(s.v_dim));
      put(s.latent ? 1u : 0u);
      put(static_cast<std::uint64_t>(s.k_type));
      put(static_cast<std::uint64_t>(s.v_type));
      put(static_cast<std::uint64_t>(s.window.kind));
      put(static_cast<std::uint64_t>(s.window.tokens));
      put(static_cast<std::uint64_t>(s.window.sink_tokens));
      put(s.state_bytes);
    }
    xxh3_128 hash;
    hash.update(record);
    return {tokens_per_page, hash.digest()};
  }
};

/// The tags of a page record's fields, in the order they are hashed.
enum class key_field : std::uint8_t {
  layout = 1,             ///< key_layout::fingerprint, 16 bytes (low, then high)
  tenant_salt = 2,        ///< the salt's bytes
  adapter = 3,            ///< the adapter id's bytes
  embeddings_digest = 4,  ///< the digest's bytes
  item = 5,               ///< one per item the page shows: id length, id, offset, positions
  tokens = 6,             ///< the page's token ids, 4 little-endian bytes each
};

namespace detail {

inline void little_endian(std::uint64_t value, std::byte* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFF);
}

}  // namespace detail

namespace detail {

// A streaming hash behind function pointers, so that the recipe below is compiled once and
// names no local in an engine's translation unit (where -Wshadow would see them).
struct hash_sink {
  void* state;
  void (*reset)(void*);
  void (*update)(void*, std::span<const std::byte>);
  page_key (*digest)(void*);
};
template <class Hash>
struct hash_calls {
  static void reset(void* state) { static_cast<Hash*>(state)->reset(); }
  static void update(void* state, std::span<const std::byte> bytes) {
    static_cast<Hash*>(state)->update(bytes);
  }
  static page_key digest(void* state) { return static_cast<Hash*>(state)->digest(); }
};

inline void page_keys_erased(const hash_sink& hash, const key_layout& layout,
                             const key_context& context, std::span<const std::int32_t> tokens,
                             std::span<page_key> keys, page_key parent) {
  const auto update = [&](std::span<const std::byte> bytes) { hash.update(hash.state, bytes); };
  const auto page_tokens = static_cast<std::size_t>(layout.page_tokens);
  kvc::detail::require(layout.page_tokens > 0 && keys.size() <= tokens.size() / page_tokens,
                       cache_errc::invalid_argument, "kvc::prefix::page_keys: ", keys.size(),
                       " keys need ", keys.size() * page_tokens, " tokens, ", tokens.size(),
                       " are given (pages of ", layout.page_tokens, ")");
  std::size_t context_bytes =
      context.tenant_salt.size() + context.adapter.size() + context.embeddings_digest.size();
  for (const multimodal_item& item : context.items) context_bytes += item.id.size() + 24;
  kvc::detail::require(context_bytes <= max_key_context_bytes, cache_errc::invalid_argument,
                       "kvc::prefix::page_keys: the key context has ", context_bytes,
                       " bytes (salt, adapter, digest and item ids); at most ",
                       max_key_context_bytes, " are keyed");
  for (std::size_t i = 0; i < context.items.size(); ++i) {
    const multimodal_item& item = context.items[i];
    kvc::detail::require(item.positions >= 0, cache_errc::invalid_argument,
                         "kvc::prefix::page_keys: item ", i, " takes ", item.positions,
                         " positions; a count may not be negative");
    kvc::detail::require(i == 0 || context.items[i - 1].first_position <= item.first_position,
                         cache_errc::invalid_argument, "kvc::prefix::page_keys: item ", i,
                         " starts before item ", i - 1, "; give the items in prompt order");
  }
  const auto field = [&](key_field tag, std::uint64_t length) {
    std::byte head[9];
    head[0] = static_cast<std::byte>(tag);
    little_endian(length, head + 1);
    update(head);
  };
  const auto feed_bytes = [&](key_field tag, std::span<const std::byte> bytes) {
    field(tag, bytes.size());
    update(bytes);
  };
  for (std::size_t p = 0; p < keys.size(); ++p) {
    const auto start = static_cast<std::int64_t>(p * page_tokens);
    const auto end = start + layout.page_tokens;
    hash.reset(hash.state);
    std::byte parent_bytes[16];
    little_endian(parent.low, parent_bytes);
    little_endian(parent.high, parent_bytes + 8);
    update(parent_bytes);
    std::byte fingerprint[16];
    little_endian(layout.fingerprint.low, fingerprint);
    little_endian(layout.fingerprint.high, fingerprint + 8);
    feed_bytes(key_field::layout, fingerprint);
    feed_bytes(key_field::tenant_salt, context.tenant_salt);
    feed_bytes(key_field::adapter, bytes_of(context.adapter));
    feed_bytes(key_field::embeddings_digest, context.embeddings_digest);
    for (const multimodal_item& item : context.items) {
      if (item.positions == 0 || item.first_position >= end ||
          item.first_position + item.positions <= start)
        continue;  // the page shows none of its positions
      field(key_field::item, 8 + item.id.size() + 16);
      std::byte number[8];
      little_endian(item.id.size(), number);
      update(number);
      update(item.id);
      little_endian(static_cast<std::uint64_t>(item.first_position - start), number);
      update(number);
      little_endian(static_cast<std::uint64_t>(item.positions), number);
      update(number);
    }
    field(key_field::tokens, 4 * page_tokens);
    std::byte chunk[256];  // 64 tokens an update
    std::size_t used = 0;
    for (std::size_t t = 0; t < page_tokens; ++t) {
      const auto id = static_cast<std::uint32_t>(tokens[p * page_tokens + t]);
      for (int i = 0; i < 4; ++i) chunk[used++] = static_cast<std::byte>((id >> (8 * i)) & 0xFF);
      if (used == sizeof chunk || t + 1 == page_tokens) {
        update(std::span<const std::byte>(chunk, used));
        used = 0;
      }
    }
    keys[p] = hash.digest(hash.state);
    parent = keys[p];
  }
}

}  // namespace detail

/// Computes the keys of the first keys.size() pages of `tokens` with a streaming hash of the
/// caller's (reset(), update(bytes), digest() -> page_key): page_keys below, which uses
/// xxh3_128.
template <class Hash>
void page_keys_with(Hash& hash, const key_layout& layout, const key_context& context,
                    std::span<const std::int32_t> tokens, std::span<page_key> keys,
                    page_key parent = root_key) {
  detail::page_keys_erased({&hash, &detail::hash_calls<Hash>::reset,
                            &detail::hash_calls<Hash>::update, &detail::hash_calls<Hash>::digest},
                           layout, context, tokens, keys, parent);
}

/// Computes the keys of the first keys.size() pages of `tokens` (XXH3-128), each chained to
/// the one before it, the first to `parent` (root_key for a prompt's start; the last known
/// key to go on from a page further in, with `tokens` and the items' positions counted from
/// there too). Only full pages have keys: keys.size() * page_tokens tokens must be given,
/// and the items in the order of their first positions, or invalid_argument.
inline void page_keys(const key_layout& layout, const key_context& context,
                      std::span<const std::int32_t> tokens, std::span<page_key> keys,
                      page_key parent = root_key) {
  xxh3_128 hash;
  page_keys_with(hash, layout, context, tokens, keys, parent);
}

}  // namespace kvc::prefix
