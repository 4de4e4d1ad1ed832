#pragma once
// A model-based check of kv_cache: random operations (add, append, fork, release, aborted
// plans, bad input, running out of pages) on a small cache with one layer of every kind,
// against a reference that keeps every written value in float. After each step every
// sequence must read back what was written, within its dtype's bound (docs/cache.md), at
// exactly the positions its windows keep; reference counts and free lists must be
// consistent; and a failed call must leave everything as it was. Shared by the Catch2 test
// (a seeded generator) and the libFuzzer target (the fuzzer's bytes).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "kvc/numeric/half.hpp"
#include "storage_bounds.hpp"

namespace kvc::testing {

using full_layer = layer<gqa<4, 2>, head_dim<4>, storage<fp16>>;
using sliding_layer = layer<gqa<4, 2>, head_dim<4, 2>, sliding_window<6>, storage<int8, bf16>>;
using chunked_layer = layer<mqa<2>, head_dim<4>, chunked<5>, storage<fp8_e4m3, fp8_e5m2>>;
using streaming_layer = layer<gqa<2, 2>, head_dim<4>, streaming<3, 4>, storage<int4>>;
using latent_layer = layer<mqa<4>, latent<6, 2>, storage<bf16>, inv_sqrt_scale<6>>;
struct harness_model : stack<repeat<1, full_layer>, repeat<1, sliding_layer>,
                             repeat<1, chunked_layer>, repeat<1, streaming_layer>,
                             repeat<1, latent_layer>, repeat<1, kv_shared<0, full_layer>>,
                             repeat<1, recurrent_state<16>>, repeat<1, full_layer>> {};
using harness_cache = kv_cache<harness_model, paged<4>>;
inline constexpr std::int64_t harness_pages = 24;
inline constexpr std::int64_t harness_reserve = 3;  ///< rollback reserve of the windows

class failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void expect(bool condition, const std::string& what) {
  if (!condition) throw failure(what);
}
/// The message is only built when the check fails.
template <class Where>
void expect(bool condition, const Where& where, const char* what) {
  if (!condition) throw failure(what + where());
}

/// Where the random choices come from: a generator, or a fuzzer's bytes.
struct choices {
  std::function<std::uint32_t(std::uint32_t)> below;  ///< a number in [0, n)
  std::function<bool()> exhausted = [] { return false; };
  /// Optional fault injection: make the n-th allocation from now fail, and stop doing so.
  std::function<void(long)> arm_fault = {};
  std::function<void()> disarm_fault = {};
};

class cache_harness {
 public:
  explicit cache_harness(choices source)
      : source_(std::move(source)), cache_(capacity_pages{harness_pages, harness_reserve}) {
    cache_.set_fp8_scales(2, 0.5f, 2.0f);
  }

  /// One random operation, then the full check.
  void step() {
    switch (pick(18)) {
      case 0:
      case 1:
        add();
        break;
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
        append();
        break;
      case 8:
      case 9:
        fork();
        break;
      case 10:
      case 11:
        release();
        break;
      case 12:
        aborted_plan();
        break;
      case 13:
        bad_append();
        break;
      case 14:
        stale_handle();
        break;
      case 15:
        truncate();
        break;
      case 16:
        fork_at();
        break;
      default:
        big_append();
        break;
    }
    check();
  }

  /// Releases every sequence: no page may stay taken.
  void release_all() {
    while (!sequences_.empty()) {
      cache_.release(sequences_.back().id);
      sequences_.pop_back();
    }
    cache_.check_invariants();
    for (int g = 0; g < harness_cache::num_groups; ++g)
      expect(cache_.used_pages(g) == 0, "a page leaked in group " + std::to_string(g));
  }

  std::size_t live() const { return sequences_.size(); }
  std::uint64_t counts(int what) const { return counts_[static_cast<std::size_t>(what)]; }

 private:
  // The reference: every written value of every owning layer, by position.
  struct token_values {
    std::vector<std::vector<float>> k, v;  // [layer][heads * dim]
  };
  struct sequence_model {
    sequence_id id;
    std::vector<token_values> tokens;
    std::int64_t longest = 0;  ///< the most tokens it has held (rollback is from there)
  };

  std::uint32_t pick(std::uint32_t n) { return n <= 1 ? 0 : source_.below(n); }

  // Runs one cache call; with a fault injector, one call in eight has one of its first
  // allocations fail. A call that fails so must have changed nothing, and counts as not made.
  template <class Call>
  bool survived(Call&& call) {
    if (!source_.arm_fault || pick(8) != 0) {
      call();
      return true;
    }
    const auto before = snapshot();
    struct disarm {  // on every way out, a cache_error included
      const choices& source;
      ~disarm() { source.disarm_fault(); }
    };
    try {
      const disarm guard{source_};
      source_.arm_fault(static_cast<long>(pick(12)) + 1);
      call();
    } catch (const std::bad_alloc&) {
      expect(snapshot() == before, "a failed allocation changed the cache");
      ++counts_[8];
      return false;
    }
    return true;
  }

  float value() {
    const std::uint32_t r = pick(1000);
    const float x = (static_cast<float>(r) - 500.0f) / 250.0f;  // [-2, 2)
    return pick(8) == 0 ? x * 64.0f : x;  // the odd large value: quantization must scale
  }

  void add() {
    if (sequences_.size() >= 6) return;
    sequence_id id;
    if (!survived([&] { id = cache_.add_sequence(); })) return;
    sequences_.push_back({id, {}, 0});
    ++counts_[0];
  }

  // Drops up to 7 tokens: within the reserve (from the longest the sequence has been) it
  // must succeed; past it, it may be refused (rollback_exceeded), changing nothing.
  void truncate() {
    if (sequences_.empty()) return;
    auto& seq = sequences_[pick(static_cast<std::uint32_t>(sequences_.size()))];
    const auto n = static_cast<std::int64_t>(seq.tokens.size());
    const std::int64_t m = std::max<std::int64_t>(0, n - pick(8));
    const auto before = snapshot();
    try {
      if (!survived([&] { cache_.truncate(seq.id, m); })) return;
    } catch (const cache_error& e) {
      expect(e.code() == cache_errc::rollback_exceeded,
             std::string("unexpected error: ") + e.what());
      expect(m < seq.longest - harness_reserve, "a truncation within the reserve was refused");
      expect(snapshot() == before, "a refused truncation changed the cache");
      ++counts_[7];
      return;
    }
    seq.tokens.resize(static_cast<std::size_t>(m));
    ++counts_[7];
  }

  // A fork of the parent's first tokens, as truncate's rule allows.
  void fork_at() {
    if (sequences_.empty() || sequences_.size() >= 6) return;
    const auto& parent = sequences_[pick(static_cast<std::uint32_t>(sequences_.size()))];
    const auto n = static_cast<std::int64_t>(parent.tokens.size());
    const std::int64_t m = std::max<std::int64_t>(0, n - pick(8));
    const auto before = snapshot();
    sequence_id child;
    try {
      if (!survived([&] { child = cache_.fork(parent.id, m); })) return;
    } catch (const cache_error& e) {
      expect(e.code() == cache_errc::rollback_exceeded,
             std::string("unexpected error: ") + e.what());
      expect(m < parent.longest - harness_reserve, "a fork within the reserve was refused");
      expect(snapshot() == before, "a refused fork changed the cache");
      return;
    }
    sequence_model model{
        child,
        std::vector<token_values>(parent.tokens.begin(),
                                  parent.tokens.begin() + static_cast<std::ptrdiff_t>(m)),
        parent.longest};
    sequences_.push_back(std::move(model));
    ++counts_[1];
  }

  void fork() {
    if (sequences_.empty() || sequences_.size() >= 6) return;
    const auto& parent = sequences_[pick(static_cast<std::uint32_t>(sequences_.size()))];
    sequence_id id;
    if (!survived([&] { id = cache_.fork(parent.id); })) return;
    sequence_model child{id, parent.tokens, parent.longest};
    sequences_.push_back(std::move(child));
    ++counts_[1];
  }

  void release() {
    if (sequences_.empty()) return;
    const std::size_t i = pick(static_cast<std::uint32_t>(sequences_.size()));
    if (!survived([&] { cache_.release(sequences_[i].id); })) return;
    sequences_.erase(sequences_.begin() + static_cast<std::ptrdiff_t>(i));
    ++counts_[2];
  }

  static int dim_of(const layer_summary& s, bool key) { return key ? s.k_dim : s.v_dim; }

  // New K/V for a batch, in the input dtype picked per layer; returns the values the cache
  // receives (decoded from that dtype) per token and layer.
  struct batch_input {
    std::vector<append_request> requests;
    std::vector<std::vector<float>> k32, v32;          // per layer, fp32 inputs
    std::vector<std::vector<std::uint16_t>> k16, v16;  // per layer, 16-bit inputs
    std::vector<dtype_id> type;                        // per layer
    std::vector<layer_input> layers;
  };

  batch_input make_batch(std::vector<std::size_t> members, std::int64_t max_tokens) {
    batch_input b;
    std::int64_t total = 0;
    for (std::size_t i : members) {
      const auto tokens =
          static_cast<std::int64_t>(pick(static_cast<std::uint32_t>(max_tokens + 1)));
      b.requests.push_back({sequences_[i].id, tokens});
      total += tokens;
    }
    const int layers = harness_model::num_layers;
    b.k32.resize(layers);
    b.v32.resize(layers);
    b.k16.resize(layers);
    b.v16.resize(layers);
    b.type.resize(layers);
    for (int l = 0; l < layers; ++l) {
      const layer_summary& s = harness_model::layer_summaries[static_cast<std::size_t>(l)];
      if (!s.owns_cache()) continue;
      const dtype_id types[3] = {dtype_id::fp32, dtype_id::fp16, dtype_id::bf16};
      b.type[static_cast<std::size_t>(l)] = types[pick(3)];
      const auto fill = [&](std::vector<float>& f32, std::vector<std::uint16_t>& f16, int dim) {
        const auto n = static_cast<std::size_t>(total * s.kv_heads * dim);
        f32.resize(n);
        f16.resize(n);
        for (std::size_t j = 0; j < n; ++j) {
          const float x = value();
          const dtype_id t = b.type[static_cast<std::size_t>(l)];
          f16[j] = t == dtype_id::bf16 ? numeric::bf16_from_float(x) : numeric::fp16_from_float(x);
          f32[j] = t == dtype_id::fp32   ? x
                   : t == dtype_id::fp16 ? numeric::fp16_to_float(f16[j])
                                         : numeric::bf16_to_float(f16[j]);
        }
      };
      fill(b.k32[static_cast<std::size_t>(l)], b.k16[static_cast<std::size_t>(l)], s.k_dim);
      if (!s.latent)
        fill(b.v32[static_cast<std::size_t>(l)], b.v16[static_cast<std::size_t>(l)], s.v_dim);
      const auto input = [&](const std::vector<float>& f32, const std::vector<std::uint16_t>& f16,
                             int dim) {
        const dtype_id t = b.type[static_cast<std::size_t>(l)];
        if (t == dtype_id::fp32) return fp32_input(f32.data(), total, s.kv_heads, dim);
        return kv_input{f16.data(), t, total, s.kv_heads, dim};
      };
      layer_input in{
          l,
          input(b.k32[static_cast<std::size_t>(l)], b.k16[static_cast<std::size_t>(l)], s.k_dim),
          {}};
      if (!s.latent)
        in.v =
            input(b.v32[static_cast<std::size_t>(l)], b.v16[static_cast<std::size_t>(l)], s.v_dim);
      b.layers.push_back(in);
    }
    return b;
  }

  std::vector<std::size_t> pick_members() {
    std::vector<std::size_t> members;
    for (std::size_t i = 0; i < sequences_.size(); ++i)
      if (pick(2) == 0) members.push_back(i);
    return members;
  }

  // Pages of group g that are kept after the step and lie past the last page held before
  // it, from the window's definition, position by position.
  static std::int64_t fresh_pages_by_definition(int g, std::int64_t n, std::int64_t m) {
    const layer_summary& s = harness_model::layer_summaries[static_cast<std::size_t>(
        harness_cache::groups::value.info[g].first_layer)];
    const std::int64_t last_held = n == 0 ? -1 : (n - 1) / 4;
    std::vector<bool> page(static_cast<std::size_t>(m / 4 + 1), false);
    for (std::int64_t p = 0; p < m; ++p)
      if (s.window.visible(m - 1, p) && p / 4 > last_held)
        page[static_cast<std::size_t>(p / 4)] = true;
    return std::count(page.begin(), page.end(), true);
  }

  void append_batch(batch_input& b, std::int64_t) {
    // What the cache must do, from the definitions: at least these fresh pages per group.
    std::vector<std::int64_t> fresh(harness_cache::num_groups, 0);
    std::vector<std::int64_t> partial(harness_cache::num_groups, 0);
    for (const append_request& r : b.requests) {
      const std::int64_t n = cache_.length(r.sequence);
      for (int g = 0; g < harness_cache::num_groups; ++g) {
        fresh[static_cast<std::size_t>(g)] += fresh_pages_by_definition(g, n, n + r.tokens);
        partial[static_cast<std::size_t>(g)] += (r.tokens > 0 && n % 4 != 0) ? 1 : 0;
      }
    }
    const auto before = snapshot();
    try {
      if (!survived([&] { cache_.append(b.requests, b.layers); })) return;
    } catch (const cache_error& e) {
      expect(e.code() == cache_errc::out_of_pages, std::string("unexpected error: ") + e.what());
      bool short_somewhere = false;
      for (int g = 0; g < harness_cache::num_groups; ++g)
        short_somewhere |=
            fresh[static_cast<std::size_t>(g)] + partial[static_cast<std::size_t>(g)] >
            cache_.free_pages(g);
      expect(short_somewhere, "out_of_pages although every group had the pages");
      expect(snapshot() == before, "a failed append changed the cache");
      ++counts_[3];
      return;
    }
    for (int g = 0; g < harness_cache::num_groups; ++g)
      expect(fresh[static_cast<std::size_t>(g)] <= before.free[static_cast<std::size_t>(g)],
             "append took pages that were not free");
    // The reference grows.
    std::int64_t row = 0;
    for (const append_request& r : b.requests) {
      auto& seq = find(r.sequence);
      for (std::int64_t t = 0; t < r.tokens; ++t, ++row) {
        token_values tv;
        tv.k.resize(harness_model::num_layers);
        tv.v.resize(harness_model::num_layers);
        for (int l = 0; l < harness_model::num_layers; ++l) {
          const layer_summary& s = harness_model::layer_summaries[static_cast<std::size_t>(l)];
          if (!s.owns_cache()) continue;
          const auto slice = [&](const std::vector<float>& all, int dim) {
            const auto width = static_cast<std::size_t>(s.kv_heads * dim);
            return std::vector<float>(
                all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(row) * width),
                all.begin() +
                    static_cast<std::ptrdiff_t>((static_cast<std::size_t>(row) + 1) * width));
          };
          tv.k[static_cast<std::size_t>(l)] = slice(b.k32[static_cast<std::size_t>(l)], s.k_dim);
          if (!s.latent)
            tv.v[static_cast<std::size_t>(l)] = slice(b.v32[static_cast<std::size_t>(l)], s.v_dim);
        }
        seq.tokens.push_back(std::move(tv));
      }
      seq.longest = std::max(seq.longest, static_cast<std::int64_t>(seq.tokens.size()));
    }
    ++counts_[4];
  }

  void append() {
    auto members = pick_members();
    batch_input b = make_batch(members, 9);
    append_batch(b, 9);
  }

  void big_append() {
    if (sequences_.empty()) return;
    batch_input b = make_batch({pick(static_cast<std::uint32_t>(sequences_.size()))}, 40);
    append_batch(b, 40);
  }

  void aborted_plan() {
    auto members = pick_members();
    batch_input b = make_batch(members, 9);
    const auto before = snapshot();
    try {
      append_plan plan = cache_.plan_append(b.requests);
      for (const layer_input& in : b.layers)
        if (pick(2) == 0) cache_.write(plan, in.layer, in.k, in.v);
      cache_.abort(plan);
    } catch (const cache_error& e) {
      expect(e.code() == cache_errc::out_of_pages, std::string("unexpected error: ") + e.what());
    }
    expect(snapshot() == before, "an aborted plan changed the cache");
    ++counts_[5];
  }

  // A batch the cache must refuse, leaving everything as it was.
  void bad_append() {
    if (sequences_.empty()) return;
    auto members = pick_members();
    if (members.empty()) members.push_back(0);
    batch_input b = make_batch(members, 5);
    cache_errc expected;
    switch (pick(4)) {
      case 0:  // a sequence twice (with no tokens the second time: the shapes still fit)
        b.requests.push_back({b.requests.front().sequence, 0});
        expected = cache_errc::duplicate_sequence;
        break;
      case 1:  // a wrong head count
        b.layers.front().k.heads += 1;
        expected = cache_errc::shape_mismatch;
        break;
      case 2:  // an input dtype the cache does not take
        b.layers.back().v.type = dtype_id::int8;
        expected = cache_errc::dtype_mismatch;
        break;
      default:  // a layer that owns no cache
        b.layers.push_back({5, b.layers.front().k, b.layers.front().v});
        expected = cache_errc::invalid_layer;
        break;
    }
    const auto before = snapshot();
    bool refused = false;
    try {
      cache_.append(b.requests, b.layers);
    } catch (const cache_error& e) {
      refused = e.code() == expected || (expected != cache_errc::duplicate_sequence &&
                                         e.code() == cache_errc::out_of_pages);
      expect(refused, std::string("wrong error: ") + e.what());
    }
    expect(refused, "a bad append was accepted");
    expect(snapshot() == before, "a refused append changed the cache");
    ++counts_[6];
  }

  void stale_handle() {
    sequence_id stale = cache_.add_sequence();
    cache_.release(stale);
    const auto before = snapshot();
    bool refused = false;
    try {
      append_request r{stale, 1};
      cache_.plan_append({&r, 1});
    } catch (const cache_error& e) {
      refused = e.code() == cache_errc::unknown_sequence;
    }
    expect(refused, "a released sequence was accepted");
    expect(snapshot() == before, "a refused handle changed the cache");
  }

  sequence_model& find(sequence_id id) {
    for (auto& s : sequences_)
      if (s.id == id) return s;
    throw failure("no such sequence in the reference");
  }

  // Everything but the values, which check() compares with the reference after every step
  // (a failed call leaves the reference as it was, so changed values are caught there).
  struct state {
    std::vector<std::int64_t> free, lengths;
    std::vector<std::int32_t> tables;
    bool operator==(const state&) const = default;
  };

  state snapshot() const {
    state st;
    for (int g = 0; g < harness_cache::num_groups; ++g) st.free.push_back(cache_.free_pages(g));
    std::vector<sequence_id> ids;
    for (const auto& s : sequences_) {
      st.lengths.push_back(cache_.length(s.id));
      ids.push_back(s.id);
    }
    for (int l : {0, 1, 2, 3, 4}) {
      const page_table_csr table = cache_.page_table(l, ids);
      st.tables.insert(st.tables.end(), table.indptr.begin(), table.indptr.end());
      st.tables.insert(st.tables.end(), table.indices.begin(), table.indices.end());
    }
    return st;
  }

  void check() {
    cache_.check_invariants();
    std::vector<float> k(64), v(64);
    for (const auto& s : sequences_) {
      const auto n = static_cast<std::int64_t>(s.tokens.size());
      expect(cache_.length(s.id) == n, "length differs from the reference");
      for (int l = 0; l < harness_model::num_layers; ++l) {
        const layer_summary& layer = harness_model::layer_summaries[static_cast<std::size_t>(l)];
        if (layer.kind == layer_kind::recurrent) continue;
        const int source = layer.kind == layer_kind::shared_kv ? layer.source_layer : l;
        const float fp8_k = source == 2 ? 0.5f : 1.0f, fp8_v = source == 2 ? 2.0f : 1.0f;
        for (std::int64_t p = 0; p < n; ++p) {
          const bool kept = cache_.read(s.id, l, p, k.data(), v.data());
          const auto where = [&] {
            return "layer " + std::to_string(l) + " position " + std::to_string(p) + " of " +
                   std::to_string(n);
          };
          // What the window shows is held; what only the reserve keeps may be; nothing else.
          window_shape reserved = layer.window;
          if (reserved.bounded()) reserved.reserve = harness_reserve;
          if (layer.window.visible(n - 1, p))
            expect(kept, where, "a position the window shows is not held: ");
          else if (!reserved.keeps(n, p))
            expect(!kept, where, "a position neither shown nor reserved is held: ");
          if (!kept) continue;
          const token_values& ref = s.tokens[static_cast<std::size_t>(p)];
          compare(ref.k[static_cast<std::size_t>(source)], k, layer.kv_heads, layer.k_dim,
                  layer.k_type, fp8_k, where, "K ");
          const std::vector<float>& ref_v = layer.latent ? ref.k[static_cast<std::size_t>(source)]
                                                         : ref.v[static_cast<std::size_t>(source)];
          compare_v(ref_v, v, layer, fp8_v, where, "V ");
        }
      }
    }
  }

  template <class Where>
  static void compare(const std::vector<float>& ref, const std::vector<float>& got, int heads,
                      int dim, dtype_id type, float fp8_scale, const Where& where,
                      const char* what) {
    for (int h = 0; h < heads; ++h) {
      double amax = 0;
      for (int i = 0; i < dim; ++i)
        amax = std::max(amax,
                        std::fabs(static_cast<double>(ref[static_cast<std::size_t>(h * dim + i)])));
      for (int i = 0; i < dim; ++i) {
        const double x = ref[static_cast<std::size_t>(h * dim + i)],
                     y = got[static_cast<std::size_t>(h * dim + i)];
        if (std::fabs(x - y) > storage_bound(type, x, amax, fp8_scale))
          throw failure(what + where() + ": stored " + std::to_string(x) + ", read " +
                        std::to_string(y));
      }
    }
  }

  template <class Where>
  static void compare_v(const std::vector<float>& ref, const std::vector<float>& got,
                        const layer_summary& layer, float fp8_scale, const Where& where,
                        const char* what) {
    if (!layer.latent) {
      compare(ref, got, layer.kv_heads, layer.v_dim, layer.v_type, fp8_scale, where, what);
      return;
    }
    // A latent layer's values are the first v_dim of its K vector, quantized with it.
    double amax = 0;
    for (int i = 0; i < layer.k_dim; ++i)
      amax = std::max(amax, std::fabs(static_cast<double>(ref[static_cast<std::size_t>(i)])));
    for (int i = 0; i < layer.v_dim; ++i) {
      const double x = ref[static_cast<std::size_t>(i)], y = got[static_cast<std::size_t>(i)];
      if (std::fabs(x - y) > storage_bound(layer.k_type, x, amax, fp8_scale))
        throw failure(what + where());
    }
  }

  choices source_;
  harness_cache cache_;
  std::vector<sequence_model> sequences_;
  std::uint64_t counts_[9] = {};  // ..., 7 truncations, 8 injected allocation failures
};

}  // namespace kvc::testing
