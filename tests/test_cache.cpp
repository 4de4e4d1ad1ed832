// kv_cache: append and read back in every dtype and layout, page tables and views, fork and
// copy-on-write, release, windows, capacities, and errors that leave the cache unchanged.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kvc/cache/kv_cache.hpp"
#include "kvc/numeric/half.hpp"
#include "kvc/numeric/vector.hpp"
#include "storage_bounds.hpp"

using namespace kvc;

namespace {

template <class Storage>
using test_layer = layer<gqa<4, 2>, head_dim<8, 6>, Storage>;
// One layer per storage dtype, mixed K/V types included.
struct dtype_model
    : stack<repeat<1, test_layer<storage<fp32>>>, repeat<1, test_layer<storage<fp16>>>,
            repeat<1, test_layer<storage<bf16>>>, repeat<1, test_layer<storage<fp8_e4m3>>>,
            repeat<1, test_layer<storage<fp8_e5m2>>>, repeat<1, test_layer<storage<int8>>>,
            repeat<1, test_layer<storage<int4>>>, repeat<1, test_layer<storage<int8, fp16>>>> {};

std::vector<float> random_values(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

template <class Cache>
std::vector<layer_input> inputs_for(const std::vector<float>& k, const std::vector<float>& v,
                                    std::int64_t tokens, int layers) {
  std::vector<layer_input> in;
  for (int l = 0; l < layers; ++l)
    in.push_back({l, fp32_input(k.data(), tokens, 2, 8), fp32_input(v.data(), tokens, 2, 6)});
  return in;
}

template <page_layout Layout>
void check_every_dtype() {
  using cache_type = kv_cache<dtype_model, paged<4, Layout>>;
  cache_type cache(capacity_pages{32});
  std::mt19937 rng(7);
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  // Two steps, sequences of uneven lengths, so pages are partly filled and then filled.
  std::vector<std::vector<float>> k_of(2), v_of(2);  // per sequence, all tokens
  for (const auto& counts : {std::pair{5, 2}, std::pair{6, 11}}) {
    const std::int64_t total = counts.first + counts.second;
    const auto k = random_values(static_cast<std::size_t>(total * 16), rng);
    const auto v = random_values(static_cast<std::size_t>(total * 12), rng);
    const append_request batch[] = {{a, counts.first}, {b, counts.second}};
    cache.append(batch, inputs_for<cache_type>(k, v, total, 8));
    k_of[0].insert(k_of[0].end(), k.begin(), k.begin() + counts.first * 16);
    k_of[1].insert(k_of[1].end(), k.begin() + counts.first * 16, k.end());
    v_of[0].insert(v_of[0].end(), v.begin(), v.begin() + counts.first * 12);
    v_of[1].insert(v_of[1].end(), v.begin() + counts.first * 12, v.end());
  }
  cache.check_invariants();
  const sequence_id ids[] = {a, b};
  for (int s = 0; s < 2; ++s) {
    REQUIRE(cache.length(ids[s]) ==
            static_cast<std::int64_t>(k_of[static_cast<std::size_t>(s)].size() / 16));
    for (int l = 0; l < 8; ++l) {
      const layer_summary& info = dtype_model::layer_summaries[static_cast<std::size_t>(l)];
      for (std::int64_t p = 0; p < cache.length(ids[s]); ++p) {
        float k[16], v[12];
        REQUIRE(cache.read(ids[s], l, p, k, v));
        for (int h = 0; h < 2; ++h) {
          const auto check = [&](const std::vector<float>& ref, const float* got, int dim,
                                 dtype_id type) {
            const float* x = ref.data() + (p * 2 + h) * dim;
            double amax = 0;
            for (int i = 0; i < dim; ++i)
              amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
            for (int i = 0; i < dim; ++i) {
              INFO("layer " << l << " (" << dtype_name(type) << ") seq " << s << " pos " << p
                            << " head " << h);
              REQUIRE(std::fabs(x[i] - got[h * dim + i]) <=
                      testing::storage_bound(type, x[i], amax));
            }
          };
          check(k_of[static_cast<std::size_t>(s)], k, 8, info.k_type);
          check(v_of[static_cast<std::size_t>(s)], v, 6, info.v_type);
        }
      }
    }
  }

  // The CSR page table and the view address exactly what read() returns.
  const page_table_csr table = cache.page_table(6, ids);
  REQUIRE(table.indptr == std::vector<std::int32_t>{0, 3, 7});  // 11 and 13 tokens, pages of 4
  REQUIRE(table.last_page_len == std::vector<std::int32_t>{3, 1});
  REQUIRE(table.seq_lens == std::vector<std::int64_t>{11, 13});
  for (int l : {1, 5, 6}) {
    const page_table_csr layer_table = cache.page_table(l, ids);  // each layer's own group
    REQUIRE(layer_table.indices.size() == table.indices.size());
    const paged_layer_view view = cache.view(l, layer_table);
    for (std::int32_t s = 0; s < 2; ++s)
      for (std::int64_t p = 0; p < table.seq_lens[static_cast<std::size_t>(s)]; ++p) {
        const std::byte* page = view.page_of(s, p);
        REQUIRE(page != nullptr);
        const page_geometry& geo = view.geometry;
        const int token = static_cast<int>(p % 4);
        float expected[16], got[8];
        cache.read(ids[s], l, p, expected, nullptr);
        for (int h = 0; h < 2; ++h) {
          numeric::load_vector(geo.k_type, page + geo.k_offset(token, h),
                               reinterpret_cast<const float*>(page + geo.k_scale_offset(token, h)),
                               8, view.k_scale, got);
          for (int i = 0; i < 8; ++i) REQUIRE(got[i] == expected[h * 8 + i]);
        }
      }
  }
}

}  // namespace

TEST_CASE("every storage dtype reads back within its bound, NHD layout") {
  check_every_dtype<page_layout::nhd>();
}
TEST_CASE("every storage dtype reads back within its bound, HND layout") {
  check_every_dtype<page_layout::hnd>();
}

TEST_CASE("NHD and HND place vectors differently in the page") {
  using L = test_layer<storage<fp16>>;
  struct m : model<1, L> {};
  const page_geometry nhd = page_geometry::make(m::layer_summaries[0], 4, page_layout::nhd);
  const page_geometry hnd = page_geometry::make(m::layer_summaries[0], 4, page_layout::hnd);
  CHECK(nhd.k_offset(1, 0) == 32);  // token 1 follows token 0's two heads (2 x 8 fp16)
  CHECK(hnd.k_offset(0, 1) == 64);  // head 1 follows head 0's four tokens (4 x 8 fp16)
  CHECK(nhd.page_bytes == hnd.page_bytes);
  CHECK(nhd.page_bytes == 4 * L::bytes_per_token);
}

namespace {
using plain = layer<gqa<2, 1>, head_dim<4>, storage<fp32>>;
struct plain_model : model<2, plain> {};
using plain_cache = kv_cache<plain_model, paged<4>>;

std::vector<float> ramp(std::int64_t tokens, float start) {
  std::vector<float> v(static_cast<std::size_t>(tokens * 4));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return v;
}

void append_ramp(plain_cache& cache, sequence_id s, std::int64_t tokens, float start) {
  const auto k = ramp(tokens, start);
  const layer_input in[] = {
      {0, fp32_input(k.data(), tokens, 1, 4), fp32_input(k.data(), tokens, 1, 4)},
      {1, fp32_input(k.data(), tokens, 1, 4), fp32_input(k.data(), tokens, 1, 4)}};
  const append_request r{s, tokens};
  cache.append({&r, 1}, in);
}

float key_at(const plain_cache& cache, sequence_id s, std::int64_t position) {
  float k[4], v[4];
  REQUIRE(cache.read(s, 0, position, k, v));
  return k[0];
}
}  // namespace

TEST_CASE("fork shares every page; a write copies the shared partial page first") {
  plain_cache cache(capacity_pages{16});
  const sequence_id parent = cache.add_sequence();
  append_ramp(cache, parent, 10, 0.0f);  // pages: 4 + 4 + 2 tokens
  REQUIRE(cache.used_pages(0) == 3);
  const sequence_id child = cache.fork(parent);
  CHECK(cache.used_pages(0) == 3);  // nothing copied yet
  CHECK(cache.length(child) == 10);
  CHECK(key_at(cache, child, 9) == 36.0f);

  append_ramp(cache, child, 1, 1000.0f);  // writes into the shared third page: copy it
  CHECK(cache.used_pages(0) == 4);
  CHECK(key_at(cache, child, 10) == 1000.0f);
  CHECK(key_at(cache, child, 9) == 36.0f);  // the copy kept the earlier tokens
  CHECK(cache.length(parent) == 10);

  append_ramp(cache, parent, 1, 2000.0f);  // the parent's page is its own again: no copy
  CHECK(cache.used_pages(0) == 4);
  CHECK(key_at(cache, parent, 10) == 2000.0f);
  CHECK(key_at(cache, child, 10) == 1000.0f);

  const sequence_id both[] = {parent, child};
  const page_table_csr table = cache.page_table(0, both);
  CHECK(table.indices[0] == table.indices[3]);  // full pages stay shared
  CHECK(table.indices[1] == table.indices[4]);
  CHECK(table.indices[2] != table.indices[5]);
  cache.check_invariants();

  cache.release(parent);
  CHECK(cache.used_pages(0) == 3);
  CHECK(key_at(cache, child, 0) == 0.0f);
  cache.release(child);
  CHECK(cache.used_pages(0) == 0);
}

TEST_CASE("released and unknown sequences are refused") {
  plain_cache cache(capacity_pages{8});
  const sequence_id s = cache.add_sequence();
  append_ramp(cache, s, 3, 0.0f);
  cache.release(s);
  CHECK_FALSE(cache.contains(s));
  const sequence_id reused = cache.add_sequence();  // same slot, new generation
  CHECK(reused.slot == s.slot);
  CHECK_FALSE(reused == s);
  try {
    (void)cache.length(s);
    FAIL("a released handle was accepted");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::unknown_sequence);
  }
  CHECK_THROWS_AS(cache.release(s), cache_error);
  CHECK_THROWS_AS(cache.fork(sequence_id{99, 0}), cache_error);
  CHECK(cache.length(reused) == 0);
}

namespace {
template <class Fn>
cache_errc error_of(Fn&& fn) {
  try {
    fn();
  } catch (const cache_error& e) {
    return e.code();
  }
  FAIL("no error");
  return cache_errc::invalid_argument;
}
}  // namespace

TEST_CASE("a failed call leaves the cache exactly as it was") {
  plain_cache cache(capacity_pages{4});
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  append_ramp(cache, a, 6, 0.0f);  // 2 pages
  const auto k = ramp(20, 500.0f);
  const auto input = [&](std::int64_t tokens, int heads, int dim) {
    return fp32_input(k.data(), tokens, heads, dim);
  };
  const auto unchanged = [&] {
    CHECK(cache.length(a) == 6);
    CHECK(cache.length(b) == 0);
    CHECK(cache.used_pages(0) == 2);
    CHECK(key_at(cache, a, 5) == 20.0f);
    cache.check_invariants();
  };

  // b fits (2 pages) but a's 3 more would not: neither is appended.
  const append_request too_many[] = {{b, 8}, {a, 3}};
  CHECK(error_of([&] {
          cache.append(too_many, std::vector<layer_input>{{0, input(11, 1, 4), input(11, 1, 4)},
                                                          {1, input(11, 1, 4), input(11, 1, 4)}});
        }) == cache_errc::out_of_pages);
  unchanged();

  const append_request twice[] = {{a, 1}, {a, 1}};
  CHECK(error_of([&] { (void)cache.plan_append(twice); }) == cache_errc::duplicate_sequence);
  unchanged();

  const append_request one[] = {{a, 1}};
  const auto with = [&](kv_input k0, kv_input v0) {
    return std::vector<layer_input>{{0, k0, v0}, {1, input(1, 1, 4), input(1, 1, 4)}};
  };
  CHECK(error_of([&] { cache.append(one, with(input(1, 2, 4), input(1, 1, 4))); }) ==
        cache_errc::shape_mismatch);
  CHECK(error_of([&] { cache.append(one, with(input(1, 1, 4), input(1, 1, 5))); }) ==
        cache_errc::shape_mismatch);
  CHECK(error_of([&] { cache.append(one, with(input(2, 1, 4), input(2, 1, 4))); }) ==
        cache_errc::shape_mismatch);
  kv_input int8_input = input(1, 1, 4);
  int8_input.type = dtype_id::int8;
  CHECK(error_of([&] { cache.append(one, with(int8_input, input(1, 1, 4))); }) ==
        cache_errc::dtype_mismatch);
  CHECK(error_of([&] {
          cache.append(one, std::vector<layer_input>{{0, input(1, 1, 4), input(1, 1, 4)}});
        }) == cache_errc::invalid_argument);  // layer 1 missing
  CHECK(error_of([&] {
          cache.append(one, std::vector<layer_input>{{0, input(1, 1, 4), input(1, 1, 4)},
                                                     {2, input(1, 1, 4), input(1, 1, 4)}});
        }) == cache_errc::invalid_layer);
  const append_request negative[] = {{a, -1}};
  CHECK(error_of([&] { (void)cache.plan_append(negative); }) == cache_errc::invalid_argument);
  unchanged();

  // One plan at a time; a closed plan is refused; a bad write leaves the plan usable.
  append_plan plan = cache.plan_append(one);
  CHECK(error_of([&] { (void)cache.plan_append(one); }) == cache_errc::plan_conflict);
  CHECK(error_of([&] { (void)cache.fork(a); }) == cache_errc::plan_conflict);
  CHECK(error_of([&] { cache.release(b); }) == cache_errc::plan_conflict);
  CHECK(error_of([&] { cache.write(plan, 0, input(1, 3, 4), input(1, 1, 4)); }) ==
        cache_errc::shape_mismatch);
  cache.abort(plan);
  CHECK(error_of([&] { cache.commit(plan); }) == cache_errc::plan_conflict);
  unchanged();
}

TEST_CASE("tokens_available is what one more append can take") {
  plain_cache cache(capacity_pages{5});
  const sequence_id s = cache.add_sequence();
  append_ramp(cache, s, 6, 0.0f);  // 2 pages, 2 free slots in the second
  CHECK(cache.tokens_available(s) == 3 * 4 + 2);
  const sequence_id child = cache.fork(s);
  // The shared partial page must be copied before either writes: one page fewer for tokens.
  CHECK(cache.tokens_available(child) == 2 * 4 + 2);
  append_ramp(cache, child, 10, 0.0f);
  CHECK(cache.tokens_available(child) == 0);
  CHECK(error_of([&] { append_ramp(cache, child, 1, 0.0f); }) == cache_errc::out_of_pages);

  using sliding = layer<mqa<1>, head_dim<2>, sliding_window<8>, storage<fp32>>;
  struct sliding_model : model<1, sliding> {};
  kv_cache<sliding_model, paged<4>> windowed(capacity_pages{4});  // ceil(8/4) + 2 pages
  const sequence_id w = windowed.add_sequence();
  CHECK(windowed.tokens_available(w) == unlimited_tokens);
  kv_cache<sliding_model, paged<4>> tight(capacity_pages{2});
  const sequence_id t = tight.add_sequence();
  CHECK(tight.tokens_available(t) == 8);  // two pages; a third would be needed after that
}

TEST_CASE("a byte capacity is shared by what a sequence needs in each group") {
  using local = layer<gqa<8, 4>, head_dim<16>, sliding_window<64>, storage<bf16>>;
  using global = layer<gqa<8, 4>, head_dim<16>, storage<bf16>>;
  struct m : model<6, pattern<local, local, local, local, local, global>> {};
  using cache_type = kv_cache<m, paged<16>>;
  STATIC_REQUIRE(cache_type::num_groups == 2);
  const std::uint64_t budget = 64ull << 20;
  cache_type cache(capacity_bytes{budget, 4096});
  const std::int64_t local_pages = cache.capacity_pages_of(0),
                     global_pages = cache.capacity_pages_of(1);
  // Per sequence of 4096 tokens: 256 global pages; at most 64 / 16 + 1 local ones, plus
  // the one a step takes.
  CHECK(global_pages / local_pages == 256 / 6);
  CHECK(cache.memory_bytes() <= budget);
  CHECK(cache.memory_bytes() > budget - 2 * 6 * cache.geometry(0).page_bytes * 5);
  CHECK_THROWS_AS(cache_type(capacity_bytes{1000, 4096}), cache_error);
  CHECK_THROWS_AS(cache_type(capacity_pages{0}), cache_error);
}

TEST_CASE("chunked layers let a finished chunk go; streaming layers keep their sinks") {
  using chunk = layer<mqa<1>, head_dim<2>, chunked<8>, storage<fp32>>;
  using stream = layer<mqa<1>, head_dim<2>, streaming<2, 5>, storage<fp32>>;
  struct m : model<2, pattern<chunk, stream>> {};
  kv_cache<m, paged<4>> cache(capacity_pages{8});
  const sequence_id s = cache.add_sequence();
  std::vector<float> k(2 * 20);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(i / 2);  // K = position
  const auto step = [&](std::int64_t first, std::int64_t tokens) {
    const layer_input in[] = {{0, fp32_input(k.data() + first * 2, tokens, 1, 2),
                               fp32_input(k.data() + first * 2, tokens, 1, 2)},
                              {1, fp32_input(k.data() + first * 2, tokens, 1, 2),
                               fp32_input(k.data() + first * 2, tokens, 1, 2)}};
    const append_request r{s, tokens};
    cache.append({&r, 1}, in);
  };
  step(0, 8);
  CHECK(cache.pages_of(s, 0) == 2);
  step(8, 1);  // a new chunk: the first one's pages go
  CHECK(cache.pages_of(s, 0) == 1);
  step(9, 10);  // 19 tokens: chunk [16, 19)
  CHECK(cache.pages_of(s, 0) == 1);
  float kk[2], vv[2];
  CHECK_FALSE(cache.read(s, 0, 15, kk, vv));
  REQUIRE(cache.read(s, 0, 16, kk, vv));
  CHECK(kk[0] == 16.0f);
  // Streaming: sinks 0-1 (page 0) and positions 14-18 (pages 3 and 4).
  CHECK(cache.pages_of(s, 1) == 3);
  REQUIRE(cache.read(s, 1, 1, kk, vv));
  CHECK(kk[0] == 1.0f);
  CHECK_FALSE(cache.read(s, 1, 2, kk, vv));
  CHECK_FALSE(cache.read(s, 1, 13, kk, vv));
  REQUIRE(cache.read(s, 1, 14, kk, vv));
  CHECK(kk[0] == 14.0f);
  cache.check_invariants();
}

TEST_CASE("a latent layer stores one vector; its values are the first rank dims") {
  using mla = layer<mqa<16>, latent<6, 2>, storage<bf16>, inv_sqrt_scale<6>>;
  struct m : model<1, mla> {};
  kv_cache<m, paged<4>> cache(capacity_pages{4});
  const sequence_id s = cache.add_sequence();
  const std::vector<float> latent_values{1, 2, 3, 4, 5, 6, 7, 8};
  const layer_input in{0, fp32_input(latent_values.data(), 1, 1, 8), {}};
  const append_request r{s, 1};
  cache.append({&r, 1}, {&in, 1});
  float k[8], v[6];
  REQUIRE(cache.read(s, 0, 0, k, v));
  for (int i = 0; i < 8; ++i) CHECK(k[i] == latent_values[static_cast<std::size_t>(i)]);
  for (int i = 0; i < 6; ++i) CHECK(v[i] == latent_values[static_cast<std::size_t>(i)]);
  CHECK(cache.geometry(0).page_bytes == 4 * 8 * 2);
  const layer_input with_v{0, fp32_input(latent_values.data(), 1, 1, 8),
                           fp32_input(latent_values.data(), 1, 1, 6)};
  CHECK(error_of([&] { cache.append({&r, 1}, {&with_v, 1}); }) == cache_errc::shape_mismatch);
}

TEST_CASE("fp8 layers store values divided by the layer's scale") {
  using l8 = layer<mqa<1>, head_dim<2>, storage<fp8_e4m3>>;
  struct m : model<1, l8> {};
  kv_cache<m, paged<4>> cache(capacity_pages{4});
  CHECK(error_of([&] { cache.set_fp8_scales(0, 0.0f, 1.0f); }) == cache_errc::invalid_argument);
  cache.set_fp8_scales(0, 4.0f, 0.25f);
  const sequence_id s = cache.add_sequence();
  const std::vector<float> k{1000.0f, -3.0f}, v{104.0f, 0.5f};  // 1000 / 4 = 250 fits e4m3
  const layer_input in{0, fp32_input(k.data(), 1, 1, 2), fp32_input(v.data(), 1, 1, 2)};
  const append_request r{s, 1};
  cache.append({&r, 1}, {&in, 1});
  float kk[2], vv[2];
  REQUIRE(cache.read(s, 0, 0, kk, vv));
  CHECK(kk[0] == 1024.0f);  // 250 rounds to 256 in e4m3 (steps of 16 there)
  CHECK(kk[1] == -3.0f);
  CHECK(vv[0] == 104.0f);  // 416 is exact in e4m3 (steps of 32)
  CHECK(vv[1] == 0.5f);
  CHECK(error_of([&] { cache.set_fp8_scales(0, 1.0f, 1.0f); }) == cache_errc::invalid_argument);
  const paged_layer_view view = cache.view(0, cache.page_table(0, std::vector<sequence_id>{s}));
  CHECK(view.k_scale == 4.0f);
  CHECK(view.v_scale == 0.25f);
}

TEST_CASE("a KV-shared layer reads its source's cache and cannot be written") {
  using L = layer<mqa<2>, head_dim<2>, storage<fp32>>;
  struct m : stack<repeat<1, L>, repeat<1, kv_shared<0, L>>> {};
  kv_cache<m, paged<4>> cache(capacity_pages{4});
  STATIC_REQUIRE(kv_cache<m, paged<4>>::num_groups == 1);
  const sequence_id s = cache.add_sequence();
  const std::vector<float> k{3, 4}, v{5, 6};
  const layer_input in{0, fp32_input(k.data(), 1, 1, 2), fp32_input(v.data(), 1, 1, 2)};
  const append_request r{s, 1};
  cache.append({&r, 1}, {&in, 1});
  float kk[2], vv[2];
  REQUIRE(cache.read(s, 1, 0, kk, vv));
  CHECK(kk[1] == 4.0f);
  CHECK(vv[0] == 5.0f);
  append_plan plan = cache.plan_append({&r, 1});
  CHECK(error_of([&] { cache.write(plan, 1, in.k, in.v); }) == cache_errc::invalid_layer);
  cache.abort(plan);
}

namespace {
// Host memory the cache must treat as if it were a device's: every access goes through
// upload, download and copy, which count and check bounds.
struct mock_device_allocator {
  static constexpr bool host_accessible = false;
  struct log {
    int uploads = 0, downloads = 0, copies = 0;
    std::vector<std::pair<std::byte*, std::size_t>> blocks;
  };
  std::shared_ptr<log> calls = std::make_shared<log>();

  void inside(const std::byte* p, std::size_t n) const {
    for (const auto& [base, size] : calls->blocks)
      if (p >= base && p + n <= base + size) return;
    throw std::logic_error("access outside device memory");
  }
  std::byte* allocate(std::size_t bytes) {
    auto* p = new std::byte[bytes]();
    calls->blocks.emplace_back(p, bytes);
    return p;
  }
  void deallocate(std::byte* p, std::size_t) { delete[] p; }
  void copy(std::byte* d, const std::byte* s, std::size_t n) {
    inside(d, n);
    inside(s, n);
    ++calls->copies;
    std::memcpy(d, s, n);
  }
  void upload(std::byte* d, const void* s, std::size_t n) {
    inside(d, n);
    ++calls->uploads;
    std::memcpy(d, s, n);
  }
  void download(void* d, const std::byte* s, std::size_t n) {
    inside(s, n);
    ++calls->downloads;
    std::memcpy(d, s, n);
  }
};
}  // namespace

TEST_CASE("device memory is only touched through the allocator, with the same results") {
  using cache_on_device = kv_cache<dtype_model, paged<4>, mock_device_allocator>;
  using cache_on_host = kv_cache<dtype_model, paged<4>>;
  mock_device_allocator allocator;
  cache_on_device device(capacity_pages{8}, allocator);
  cache_on_host host(capacity_pages{8});
  std::mt19937 rng(3);
  const auto k = random_values(9 * 16, rng);
  const auto v = random_values(9 * 12, rng);
  const sequence_id d = device.add_sequence(), h = host.add_sequence();
  const append_request rd{d, 9}, rh{h, 9};
  device.append({&rd, 1}, inputs_for<cache_on_device>(k, v, 9, 8));
  host.append({&rh, 1}, inputs_for<cache_on_host>(k, v, 9, 8));
  const sequence_id child = device.fork(d);
  const append_request rc{child, 1};
  device.append({&rc, 1}, inputs_for<cache_on_device>(k, v, 1, 8));  // copy-on-write on the device
  CHECK(allocator.calls->copies == 8);                               // one page per layer
  CHECK(allocator.calls->uploads > 0);
  for (int l = 0; l < 8; ++l)
    for (std::int64_t p = 0; p < 9; ++p) {
      float kd[16], vd[12], kh[16], vh[12];
      REQUIRE(device.read(d, l, p, kd, vd));
      REQUIRE(host.read(h, l, p, kh, vh));
      for (int i = 0; i < 16; ++i) REQUIRE(kd[i] == kh[i]);
      for (int i = 0; i < 12; ++i) REQUIRE(vd[i] == vh[i]);
    }
}

namespace {
// Linux only: whether the kernel would back the mapping that holds `p` with transparent huge
// pages ("THPeligible" in /proc/self/smaps), or -1 where that cannot be read.
int huge_page_eligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-' && line.find(':') > 20) {
      inside = begin <= address && address < end;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::stoi(line.substr(12));
    }
  }
  return -1;
}

// The system's transparent huge page mode: "always", "madvise", "never" or "" if unknown.
std::string huge_page_mode() {
  std::ifstream enabled("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string text;
  std::getline(enabled, text);
  const auto open = text.find('['), close = text.find(']');
  return open == std::string::npos || close == std::string::npos
             ? ""
             : text.substr(open + 1, close - open - 1);
}
}  // namespace

TEST_CASE("host memory is zeroed; a pool-sized block is 2 MiB aligned and in huge pages") {
  host_allocator allocator;
  std::byte* small = allocator.allocate(100);
  CHECK(reinterpret_cast<std::uintptr_t>(small) % 64 == 0);
  for (int i = 0; i < 100; ++i) REQUIRE(small[i] == std::byte{0});
  allocator.deallocate(small, 100);

  constexpr std::size_t bytes = std::size_t{6} << 20;
  std::byte* pool = allocator.allocate(bytes);
  CHECK(reinterpret_cast<std::uintptr_t>(pool) % (std::size_t{2} << 20) == 0);
  CHECK(pool[0] == std::byte{0});
  CHECK(pool[bytes - 1] == std::byte{0});
  const std::string mode = huge_page_mode();
  INFO("transparent huge pages: " << mode);
  if (mode == "madvise" || mode == "always") {
    CHECK(huge_page_eligible(pool) == 1);
    CHECK(huge_page_eligible(pool + bytes - 1) == 1);
    if (mode == "madvise") {  // not advised, not eligible: the check can tell, and the
                              // allocator can be told not to ask
      auto* plain = static_cast<std::byte*>(::operator new(bytes));
      std::memset(plain, 1, bytes);
      CHECK(huge_page_eligible(plain + bytes / 2) == 0);
      ::operator delete(plain);
      host_allocator without{.huge_pages = false};
      std::byte* small_pages = without.allocate(bytes);
      CHECK(reinterpret_cast<std::uintptr_t>(small_pages) % (std::size_t{2} << 20) == 0);
      CHECK(huge_page_eligible(small_pages) == 0);
      without.deallocate(small_pages, bytes);
    }
  }
  allocator.deallocate(pool, bytes);
}
