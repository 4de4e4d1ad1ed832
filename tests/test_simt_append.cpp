// The append kernel (kernels/append.hpp) in the SIMT emulator against kv_cache::write: two
// caches with the same history, the same step written by the host into one and by the
// kernel into the other's page memory, then both committed: every page byte of the layer
// must be the same. Every storage dtype, both page layouts, a GQA and a latent (MLA) layer;
// the step crosses a page boundary, writes a sequence's first tokens, and writes the
// copy-on-write pages of a sequence and its fork. Run under ThreadSanitizer by .ci/run.

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kvc/backend/simt/append.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/kernels/append.hpp"
#include "kvc/numeric/half.hpp"

using namespace kvc;

namespace {

// k_dim 40 (more values than a warp has lanes; the host's vectorized path) and v_dim 6 (its
// portable path); a latent vector of 34 + 6.
template <class Storage>
struct gqa_model : model<1, layer<gqa<4, 2>, head_dim<40, 6>, Storage>> {};
// Vectors of whole 16-byte pieces in every dtype (K of 64 values, V of 32): several vectors a
// warp, one 16-byte store a piece.
template <class Storage>
struct pieces_model : model<1, layer<gqa<4, 2>, head_dim<64, 32>, Storage>> {};
template <class Storage>
struct mla_model : model<1, layer<mqa<4>, latent<34, 6>, Storage, inv_sqrt_scale<40>>> {};

template <class T>
std::vector<T> random_input(std::size_t n, std::mt19937& rng);

template <>
std::vector<float> random_input<float>(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  if (n > 9) v[9] = 0.0f;  // a few exact zeros and a tiny value
  if (n > 17) v[17] = -1e-30f;
  return v;
}

template <class Input>
kv_input input_of(const std::vector<typename numeric::codec<Input>::stored>& data,
                  std::int64_t tokens, int heads, int dim) {
  return {data.data(), Input::id, tokens, heads, dim};
}

template <class Input>
std::vector<typename numeric::codec<Input>::stored> encoded(const std::vector<float>& values) {
  std::vector<typename numeric::codec<Input>::stored> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = numeric::codec<Input>::encode(values[i]);
  return out;
}

// One step's inputs: K [tokens][heads][k_dim], V [tokens][heads][v_dim] of the input dtype.
template <class Input>
struct step_input {
  std::vector<typename numeric::codec<Input>::stored> k, v;
  kv_input k_in, v_in;
  step_input(std::int64_t tokens, const page_geometry& geo, std::mt19937& rng)
      : k(encoded<Input>(
            random_input<float>(static_cast<std::size_t>(tokens * geo.kv_heads * geo.k_dim), rng))),
        v(encoded<Input>(
            random_input<float>(static_cast<std::size_t>(tokens * geo.kv_heads * geo.v_dim), rng))),
        k_in(input_of<Input>(k, tokens, geo.kv_heads, geo.k_dim)),
        v_in(geo.latent ? kv_input{} : input_of<Input>(v, tokens, geo.kv_heads, geo.v_dim)) {}
};

// The step is written into `device` by the emulated kernel alone (mark_written then lets it
// commit) or, with overwrite, over a host write() of other values, so that every byte the
// kernel misses shows.
template <class Model, class Paging, class KType, class VType, class Input = fp32,
          bool overwrite = true>
void check_append() {
  using cache_type = kv_cache<Model, Paging>;
  cache_type host(capacity_pages{24}), device(capacity_pages{24});
  for (cache_type* c : {&host, &device}) c->set_fp8_scales(0, 0.37f, 2.5f);
  std::mt19937 rng(11);
  const page_geometry geo =
      page_geometry::make(Model::layer_summaries[0], cache_type::page_tokens, Paging::layout);

  // The history, the same in both: a of 5 tokens, b of 14, then c forked from a (sharing its
  // partly filled last page), d empty.
  sequence_id ids[2][4];
  for (int i = 0; i < 2; ++i) {
    cache_type& c = i == 0 ? host : device;
    ids[i][0] = c.add_sequence();
    ids[i][1] = c.add_sequence();
  }
  {
    const step_input<Input> in(19, geo, rng);
    for (int i = 0; i < 2; ++i) {
      cache_type& c = i == 0 ? host : device;
      const append_request batch[] = {{ids[i][0], 5}, {ids[i][1], 14}};
      const layer_input layers[] = {{0, in.k_in, in.v_in}};
      c.append(batch, layers);
      ids[i][2] = c.fork(ids[i][0]);
      ids[i][3] = c.add_sequence();
    }
  }

  // The step: a +3 and c +2 (each writes a copy of their shared page), b +5 (crosses the
  // page boundary at 16), d +20 (its first pages, a boundary crossed inside the step).
  const std::int64_t counts[] = {3, 5, 2, 20};  // token_indptr: their prefix sums
  const std::vector<std::int64_t> token_indptr{0, 3, 8, 10, 30};
  const step_input<Input> in(30, geo, rng);
  append_plan plans[2];
  for (int i = 0; i < 2; ++i) {
    const append_request batch[] = {{ids[i][0], counts[0]},
                                    {ids[i][1], counts[1]},
                                    {ids[i][2], counts[2]},
                                    {ids[i][3], counts[3]}};
    plans[i] = (i == 0 ? host : device).plan_append(batch);
  }
  host.write(plans[0], 0, in.k_in, in.v_in);
  // commit() takes a plan only once write() has stored every layer: the device cache is
  // written by the host with other values first, which the kernel must overwrite, every byte.
  const step_input<Input> other(30, geo, rng);
  if (overwrite) device.write(plans[1], 0, other.k_in, other.v_in);

  const page_table_csr table = device.step_table(plans[1], 0);
  const paged_layer_view view = device.view(0, table);
  using kernel = kernels::append<KType, VType, Input>;
  REQUIRE(kernel::fits(view.geometry));
  const kernels::append_work work =
      kernels::make_append_work(view, token_indptr.data(), in.k_in, in.v_in, overwrite ? 20 : 0);
  simt::append<KType, VType, Input>(work);
  if (!overwrite) {
    // Nothing told the cache the layer was written: commit refuses, the plan stays open.
    CHECK_THROWS_AS(device.commit(plans[1]), cache_error);
    CHECK(plans[1].is_open());
    device.mark_written(plans[1], 0);
  }

  host.commit(plans[0]);
  device.commit(plans[1]);
  host.check_invariants();
  device.check_invariants();
  REQUIRE(host.memory_bytes() == device.memory_bytes());
  const page_table_csr host_table = host.page_table(0, std::span<const sequence_id>(ids[0], 4));
  const page_table_csr device_table = device.page_table(0, std::span<const sequence_id>(ids[1], 4));
  REQUIRE(host_table.indices == device_table.indices);
  const std::byte* host_pages = host.view(0, host_table).memory;
  const std::byte* device_pages = device.view(0, device_table).memory;
  const std::uint64_t page_bytes = geo.page_bytes;
  for (std::int64_t p = 0; p < host.capacity_pages_of(0); ++p) {
    INFO("page " << p);
    CHECK(std::memcmp(host_pages + static_cast<std::uint64_t>(p) * page_bytes,
                      device_pages + static_cast<std::uint64_t>(p) * page_bytes, page_bytes) == 0);
  }
}

template <class Storage, class KType, class VType = KType>
void check_layouts() {
  check_append<gqa_model<Storage>, paged<16>, KType, VType>();
  check_append<pieces_model<Storage>, paged<16>, KType, VType>();
  check_append<pieces_model<Storage>, paged<8, page_layout::hnd>, KType, VType>();
  check_append<gqa_model<Storage>, paged<8, page_layout::hnd>, KType, VType>();
  if constexpr (std::is_same_v<KType, VType>) {
    check_append<mla_model<Storage>, paged<16>, KType, VType>();
    check_append<mla_model<Storage>, paged<8, page_layout::hnd>, KType, VType>();
  }
}

}  // namespace

TEST_CASE("append kernel: fp32, fp16, bf16 pages match the host write") {
  check_layouts<storage<fp32>, fp32>();
  check_layouts<storage<fp16>, fp16>();
  check_layouts<storage<bf16>, bf16>();
}

TEST_CASE("append kernel: fp8 pages with per-layer scales match the host write") {
  check_layouts<storage<fp8_e4m3>, fp8_e4m3>();
  check_layouts<storage<fp8_e5m2>, fp8_e5m2>();
}

TEST_CASE("append kernel: int8 and int4 pages with per-token-head scales match the host write") {
  check_layouts<storage<int8>, int8>();
  check_layouts<storage<int4>, int4>();
  check_layouts<storage<int8, fp16>, int8, fp16>();  // K and V of different dtypes
}

TEST_CASE("append kernel: fp16 and bf16 inputs") {
  check_append<gqa_model<storage<int8>>, paged<16>, int8, int8, fp16>();
  check_append<gqa_model<storage<fp16>>, paged<8, page_layout::hnd>, fp16, fp16, fp16>();
  check_append<gqa_model<storage<fp8_e4m3>>, paged<16>, fp8_e4m3, fp8_e4m3, bf16>();
  check_append<mla_model<storage<bf16>>, paged<16>, bf16, bf16, bf16>();
}

TEST_CASE("append kernel: a step the kernel alone writes commits after mark_written") {
  check_append<gqa_model<storage<int8>>, paged<16>, int8, int8, fp32, false>();
  check_append<mla_model<storage<bf16>>, paged<8, page_layout::hnd>, bf16, bf16, fp32, false>();
}

TEST_CASE("mark_written refuses a closed plan and a layer without a cache of its own") {
  struct shared_model : stack<repeat<1, layer<gqa<4, 2>, head_dim<8>>>,
                              repeat<1, kv_shared<0, layer<gqa<4, 2>, head_dim<8>>>>> {};
  kv_cache<shared_model, paged<16>> cache(capacity_pages{4});
  const sequence_id id = cache.add_sequence();
  const append_request batch[] = {{id, 2}};
  append_plan plan = cache.plan_append(batch);
  try {
    cache.mark_written(plan, 1);
    FAIL("a shared layer was marked written");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::invalid_layer);
  }
  CHECK_THROWS_AS(cache.commit(plan), cache_error);  // layer 0 is still unwritten
  cache.mark_written(plan, 0);
  cache.commit(plan);
  CHECK(cache.length(id) == 2);
  try {
    cache.mark_written(plan, 0);
    FAIL("a committed plan was marked written");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::plan_conflict);
  }
}

TEST_CASE("make_append_work refuses page memory that is not 16-byte aligned") {
  kv_cache<gqa_model<storage<fp16>>, paged<16>> cache(capacity_pages{4});
  const sequence_id id = cache.add_sequence();
  const append_request batch[] = {{id, 1}};
  append_plan plan = cache.plan_append(batch);
  const page_table_csr table = cache.step_table(plan, 0);
  paged_layer_view view = cache.view(0, table);
  view.memory += 8;  // as an engine's own pool with a header could be
  const std::vector<std::int64_t> token_indptr{0, 1};
  const std::vector<float> k(2 * 40), v(2 * 6);
  try {
    static_cast<void>(kernels::make_append_work(
        view, token_indptr.data(), fp32_input(k.data(), 1, 2, 40), fp32_input(v.data(), 1, 2, 6)));
    FAIL("misaligned page memory was taken");
  } catch (const cache_error& e) {
    CHECK(e.code() == cache_errc::invalid_argument);
  }
}
