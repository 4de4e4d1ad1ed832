#pragma once
// What the prefix-reuse tests share: a model whose K/V at a position are a function of every
// token up to it (as a real model's are), so that a page served for the wrong content reads
// back wrong values; a driver that appends a prompt's K/V and checks every read against that
// function, computed afresh; random prompts; an allocator whose copies fail on demand.

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

#include "kvc/cache/kv_cache.hpp"

namespace prefix_test {

using namespace kvc;

constexpr int P = 8;  // tokens per page in every cache below

// A model's K/V: exact in fp32, different for every prefix, layer, K/V and dim.
inline std::vector<std::uint64_t> prefix_hashes(std::span<const std::int32_t> tokens) {
  std::vector<std::uint64_t> h(tokens.size());
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    x = (x ^ static_cast<std::uint32_t>(tokens[i])) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    h[i] = x;
  }
  return h;
}
inline float value_of(std::uint64_t prefix, int layer, int which, int d) {
  std::uint64_t x = prefix ^ (static_cast<std::uint64_t>(layer * 4 + which) << 40) ^
                    static_cast<std::uint64_t>(d);
  x = (x ^ (x >> 31)) * 0x94D049BB133111EBull;
  return static_cast<float>(static_cast<int>((x >> 40) % 512) - 256) / 64.0f;
}

constexpr int dim = 4;  // every layer below: one KV head of 4 dims, fp32
template <class L>
using one_head = layer<mqa<2>, head_dim<dim>, L, storage<fp32>>;
using full_l = layer<mqa<2>, head_dim<dim>, storage<fp32>>;

// Appends tokens[from, size) to a sequence in one step, and reads everything back.
template <class Model, class Allocator = host_allocator>
struct driver {
  using Cache = kv_cache<Model, paged<P>, Allocator>;
  Cache& cache;

  void append(sequence_id s, std::span<const std::int32_t> tokens, std::int64_t from) {
    const auto n = static_cast<std::int64_t>(tokens.size()) - from;
    const std::vector<std::uint64_t> h = prefix_hashes(tokens);
    std::vector<std::vector<float>> k, v;
    std::vector<layer_input> inputs;
    for (int l = 0; l < Cache::num_layers; ++l) {
      if (!owns(l)) continue;
      k.emplace_back(static_cast<std::size_t>(n * dim));
      v.emplace_back(static_cast<std::size_t>(n * dim));
      for (std::int64_t i = 0; i < n; ++i)
        for (int d = 0; d < dim; ++d) {
          const auto at = static_cast<std::size_t>(i * dim + d);
          k.back()[at] = value_of(h[static_cast<std::size_t>(from + i)], l, 0, d);
          v.back()[at] = value_of(h[static_cast<std::size_t>(from + i)], l, 1, d);
        }
    }
    std::size_t j = 0;
    for (int l = 0; l < Cache::num_layers; ++l)
      if (owns(l)) {
        inputs.push_back(
            {l, fp32_input(k[j].data(), n, 1, dim), fp32_input(v[j].data(), n, 1, dim)});
        ++j;
      }
    const append_request request{s, n};
    cache.append({&request, 1}, inputs);
  }

  // Every position the sequence's windows show reads back the model's K/V for `tokens`.
  void check(sequence_id s, std::span<const std::int32_t> tokens) {
    const std::int64_t n = cache.length(s);
    REQUIRE(n <= static_cast<std::int64_t>(tokens.size()));
    const std::vector<std::uint64_t> h = prefix_hashes(tokens.first(static_cast<std::size_t>(n)));
    float k[dim], v[dim];
    for (int l = 0; l < Cache::num_layers; ++l) {
      const int g = Cache::group_of_layer(l);
      if (g < 0) continue;
      const int source = Cache::groups::source_of(l);
      for (std::int64_t p = 0; p < n; ++p) {
        const bool shown = cache.kept_window(g).visible(n - 1, p);
        const bool held = cache.read(s, l, p, k, v);
        INFO("layer " << l << " position " << p << " of " << n);
        if (shown) REQUIRE(held);
        if (!held) continue;
        for (int d = 0; d < dim; ++d) {
          REQUIRE(k[d] == value_of(h[static_cast<std::size_t>(p)], source, 0, d));
          REQUIRE(v[d] == value_of(h[static_cast<std::size_t>(p)], source, 1, d));
        }
      }
    }
  }

  // Starts a sequence from the index's hit for `tokens`, computes the rest, checks it.
  sequence_id serve(std::span<const std::int32_t> tokens, const prefix::key_context& context = {},
                    std::int64_t* reused = nullptr) {
    const auto hit = cache.find_prefix(tokens, context);
    const sequence_id s = cache.add_sequence(hit);
    REQUIRE(cache.length(s) == hit.tokens);
    if (reused != nullptr) *reused = hit.tokens;
    append(s, tokens, hit.tokens);
    check(s, tokens);
    cache.check_invariants();
    return s;
  }

  static bool owns(int l) {
    return Model::layer_summaries[static_cast<std::size_t>(l)].owns_cache();
  }
};

inline std::vector<std::int32_t> tokens_from(std::uint32_t seed, std::size_t n) {
  std::mt19937 random(seed);
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = static_cast<std::int32_t>(random() % 50000);
  return t;
}
inline std::vector<std::int32_t> joined(std::vector<std::int32_t> a,
                                        const std::vector<std::int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// An allocator whose page copies fail on demand, as a device's can.
struct failing_copy : host_allocator {
  static inline bool fail = false;
  void copy(std::byte* to, const std::byte* from, std::size_t bytes) {
    if (fail) throw std::runtime_error("copy failed");
    host_allocator::copy(to, from, bytes);
  }
};

}  // namespace prefix_test
