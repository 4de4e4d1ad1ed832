// What the device kernels move through global memory, counted by the emulator
// (simt::memory_traffic): decode reads every K/V byte of the tokens it attends exactly once,
// and nothing of a page's unwritten slots, in full 16-byte copies of whole 32-byte sectors;
// append writes each new vector once, in full 16-byte stores of whole sectors; the extend
// kernel reads every K/V byte a block's rows see once per block, and nothing else; the latent
// tensor-core decode reads each latent once per block, for all the block's heads, and so does
// the warpgroup MLA decode.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "kvc/backend/simt/decode.hpp"
#include "kvc/backend/simt/extend.hpp"
#include "kvc/backend/simt/launch.hpp"
#include "kvc/backend/simt/traffic.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/kernels/append.hpp"
#include "kvc/kernels/decode.hpp"
#include "kvc/kernels/extend.hpp"

using namespace kvc;

namespace {

template <class Storage>
using traffic_layer = layer<gqa<8, 2>, head_dim<128>, Storage>;

template <class Storage>
struct traffic_model : model<1, traffic_layer<Storage>> {};

template <class Cache>
void append_random(Cache& cache, sequence_id id, int tokens, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> k(static_cast<std::size_t>(tokens) * 2 * 128), v(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  const layer_input in{0, fp32_input(k.data(), tokens, 2, 128),
                       fp32_input(v.data(), tokens, 2, 128)};
  const append_request r{id, tokens};
  cache.append({&r, 1}, {&in, 1});
}

// Decodes sequences of `lengths` (one split each, or several) and returns the traffic; checks
// that every K/V byte of a token before the sequence's length was read once, every other
// byte of the layer's pages never (besides the int8 scales, which `scales` counts apart).
template <class Storage>
simt::traffic_summary check_decode_reads(const std::vector<int>& lengths, int min_split_tokens,
                                         int workers) {
  using spec = traffic_layer<Storage>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  STATIC_REQUIRE(kernels::streamed_decode<shape>);
  kv_cache<traffic_model<Storage>, paged<16>> cache(capacity_pages{64});
  std::mt19937 rng(5);
  std::vector<sequence_id> ids;
  for (const int n : lengths) {
    ids.push_back(cache.add_sequence());
    append_random(cache, ids.back(), n, rng);
  }
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const attention::decode_plan plan = attention::plan_decode(view, 8, workers, min_split_tokens);
  std::vector<float> q(lengths.size() * 8 * 128, 0.5f), out(q.size()), lse(lengths.size() * 8);
  attention::decode_workspace workspace;
  simt::memory_traffic traffic;
  simt::launch_options options;
  options.traffic = &traffic;
  simt::decode<shape>(plan, view, q.data(), out.data(), lse.data(),
                      attention::attention_params_of<spec>(), workspace, options);

  const page_geometry& geo = view.geometry;
  std::vector<unsigned> expected(static_cast<std::size_t>(geo.page_bytes) * 64, 0);
  for (std::size_t s = 0; s < lengths.size(); ++s)
    for (int t = 0; t < lengths[s]; ++t) {
      const std::int32_t page = table.indices[static_cast<std::size_t>(table.indptr[s] + t / 16)];
      for (int h = 0; h < 2; ++h) {
        const std::uint64_t base = static_cast<std::uint64_t>(page) * geo.page_bytes;
        for (std::uint64_t b = 0; b < geo.k_vector_bytes; ++b)
          ++expected[base + geo.k_offset(t % 16, h) + b];
        for (std::uint64_t b = 0; b < geo.v_vector_bytes; ++b)
          ++expected[base + geo.v_offset(t % 16, h) + b];
        if (Storage::k_type::scale == scaling::per_token_head)
          for (std::uint64_t b = 0; b < scale_bytes; ++b)
            ++expected[base + geo.k_scale_offset(t % 16, h) + b];
        if (Storage::v_type::scale == scaling::per_token_head)
          for (std::uint64_t b = 0; b < scale_bytes; ++b)
            ++expected[base + geo.v_scale_offset(t % 16, h) + b];
      }
    }
  const std::vector<unsigned> read =
      traffic.coverage(simt::access::read, view.memory, expected.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) wrong += read[i] != expected[i];
  CHECK(wrong == 0);
  return traffic.summary(simt::access::read);
}

}  // namespace

TEST_CASE("traffic: decode reads every K/V byte once, in whole sectors of 16-byte copies",
          "[simt]") {
  for (const int min_split : {4096, 16}) {
    INFO("min_split_tokens " << min_split);
    const simt::traffic_summary fp16_reads =
        check_decode_reads<storage<fp16>>({64, 37, 100}, min_split, 4);
    CHECK(fp16_reads.bytes == (64 + 37 + 100) * 2 * 2 * 256);
    CHECK(fp16_reads.narrowest == 16);
    CHECK(fp16_reads.widest == 16);
    // Fully coalesced: every sector a request touches is read whole.
    CHECK(fp16_reads.sectors * 32 == fp16_reads.bytes);
    const simt::traffic_summary bf16_reads =
        check_decode_reads<storage<bf16>>({16, 200}, min_split, 4);
    CHECK(bf16_reads.sectors * 32 == bf16_reads.bytes);
  }
  // int8: the values in whole sectors; the per-token scales are 4-byte copies besides.
  const simt::traffic_summary int8_reads = check_decode_reads<storage<int8>>({50, 128}, 64, 4);
  CHECK(int8_reads.bytes == (50 + 128) * 2 * 2 * (128 + 4));
  CHECK(int8_reads.widest == 16);
  CHECK(int8_reads.narrowest == 4);
}

TEST_CASE("traffic: append writes each new vector once, in whole sectors of 16-byte stores",
          "[simt]") {
  kv_cache<traffic_model<storage<fp16>>, paged<16>> cache(capacity_pages{32});
  std::mt19937 rng(9);
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  append_random(cache, a, 10, rng);
  const int new_tokens[] = {9, 40};
  const append_request step[] = {{a, new_tokens[0]}, {b, new_tokens[1]}};
  append_plan plan = cache.plan_append(step);
  std::vector<float> k(49 * 2 * 128, 0.25f), v(k.size(), -0.5f);
  const page_table_csr table = cache.step_table(plan, 0);
  const paged_layer_view view = cache.view(0, table);
  const std::vector<std::int64_t> token_indptr{0, 9, 49};
  const kernels::append_work work =
      kernels::make_append_work(view, token_indptr.data(), fp32_input(k.data(), 49, 2, 128),
                                fp32_input(v.data(), 49, 2, 128), 40);
  simt::memory_traffic traffic;
  simt::launch_options options;
  options.traffic = &traffic;
  simt::launch(kernels::append_grid(work), kernels::block_shape<128>{}, 0,
               kernels::append<fp16, fp16, fp32>{work}, options);
  cache.mark_written(plan, 0);
  cache.commit(plan);
  const simt::traffic_summary writes = traffic.summary(simt::access::write);
  CHECK(writes.bytes == 49 * 2 * 2 * 256);
  CHECK(writes.narrowest == 16);
  CHECK(writes.sectors * 32 == writes.bytes);
  const std::vector<unsigned> times = traffic.coverage(
      simt::access::write, view.memory, static_cast<std::size_t>(view.geometry.page_bytes) * 32);
  std::size_t twice = 0;
  for (const unsigned n : times) twice += n > 1;
  CHECK(twice == 0);
  float kr[256], vr[256];
  REQUIRE(cache.read(b, 0, 39, kr, vr));
  CHECK(kr[0] == 0.25f);
  CHECK(vr[255] == -0.5f);
}

TEST_CASE("traffic: extend reads each key and value a block sees once per block, nothing else",
          "[simt]") {
  using spec = traffic_layer<storage<fp16>>;
  using shape = kernels::decode_shape_of<spec, paged<16>>;
  kv_cache<traffic_model<storage<fp16>>, paged<16>> cache(capacity_pages{32});
  std::mt19937 rng(13);
  const sequence_id a = cache.add_sequence(), b = cache.add_sequence();
  append_random(cache, b, 50, rng);
  // a: a prompt of 70 tokens (280 rows, 3 tiles of 128); b: 30 over 50 (120 rows, 1 tile).
  constexpr std::int64_t rows = kernels::extend<shape>::rows;
  STATIC_REQUIRE(rows == 128);
  const std::int64_t prefix[] = {0, 50}, fresh[] = {70, 30};
  const append_request step[] = {{a, fresh[0]}, {b, fresh[1]}};
  append_plan plan = cache.plan_append(step);
  std::vector<float> k(100 * 2 * 128), v(k.size());
  std::normal_distribution<float> normal;
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  const page_table_csr table = cache.step_table(plan, 0);
  cache.write(plan, 0, fp32_input(k.data(), 100, 2, 128), fp32_input(v.data(), 100, 2, 128));
  const paged_layer_view view = cache.view(0, table);
  const std::vector<std::int64_t> token_indptr{0, 70, 100};
  kernels::extend_plan extend_plan;
  simt::plan_extend<shape>(view, token_indptr, 8, extend_plan);
  std::vector<float> q(100 * 8 * 128, 0.125f), out(q.size()), lse(100 * 8);
  simt::memory_traffic traffic;
  simt::launch_options options;
  options.traffic = &traffic;
  simt::extend<shape>(extend_plan, view, token_indptr, q.data(), out.data(), lse.data(),
                      attention::attention_params_of<spec>(), options);
  cache.commit(plan);

  // A position is read by every tile of its sequence whose last row's token reaches it (the
  // rows of a tile are 32 tokens x 4 query heads), in both KV heads' blocks.
  const page_geometry& geo = view.geometry;
  std::vector<unsigned> expected(static_cast<std::size_t>(geo.page_bytes) * 32, 0);
  for (std::size_t s = 0; s < 2; ++s)
    for (std::int64_t p = 0; p < prefix[s] + fresh[s]; ++p) {
      unsigned tiles = 0;
      for (std::int64_t first_row = 0; first_row < fresh[s] * 4; first_row += rows) {
        const std::int64_t last_row = std::min(first_row + rows, fresh[s] * 4) - 1;
        tiles += prefix[s] + last_row / 4 >= p ? 1u : 0u;
      }
      const std::int32_t page = table.indices[static_cast<std::size_t>(table.indptr[s] + p / 16)];
      const std::uint64_t base = static_cast<std::uint64_t>(page) * geo.page_bytes;
      const auto token = static_cast<int>(p % 16);
      for (int h = 0; h < 2; ++h) {
        for (std::uint64_t i = 0; i < geo.k_vector_bytes; ++i)
          expected[base + geo.k_offset(token, h) + i] += tiles;
        for (std::uint64_t i = 0; i < geo.v_vector_bytes; ++i)
          expected[base + geo.v_offset(token, h) + i] += tiles;
      }
    }
  const std::vector<unsigned> read =
      traffic.coverage(simt::access::read, view.memory, expected.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) wrong += read[i] != expected[i];
  CHECK(wrong == 0);
  const simt::traffic_summary reads = traffic.summary(simt::access::read);
  CHECK(reads.narrowest == 16);
  CHECK(reads.widest == 16);
  CHECK(reads.sectors * 32 == reads.bytes);
}

namespace {

template <int Heads>
using latent_traffic_layer = layer<mqa<Heads>, latent<512, 64>, storage<bf16>, inv_sqrt_scale<192>>;
using group_traffic_layer = layer<gqa<32, 2>, head_dim<128>, storage<fp16>>;

// The tensor-core decode of `lengths` with blocks of Block: checks how often each byte of the
// layer's pages was read against how often each K and V byte should be (`reads_each` for a
// token before its sequence's length, never for anything else), in whole sectors.
template <class Spec, class Block>
void check_mma_reads(const std::vector<int>& lengths, int min_split_tokens, unsigned reads_each) {
  using shape = kernels::decode_shape_of<Spec, paged<16>>;
  STATIC_REQUIRE((kernels::decode_path_of<shape, Block> == kernels::decode_path::tensor_cores ||
                  kernels::decode_path_of<shape, Block> == kernels::decode_path::warpgroups));
  constexpr int kv = Spec::kv_heads, kd = Spec::k_dim, vd = Spec::is_latent ? 0 : Spec::v_dim;
  struct one : model<1, Spec> {};
  kv_cache<one, paged<16>> cache(capacity_pages{32});
  std::mt19937 rng(6);
  std::normal_distribution<float> normal;
  std::vector<sequence_id> ids;
  for (const int n : lengths) {
    ids.push_back(cache.add_sequence());
    std::vector<float> k(static_cast<std::size_t>(n * kv * kd)),
        v(static_cast<std::size_t>(n * kv * vd));
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    const layer_input in{0, fp32_input(k.data(), n, kv, kd),
                         vd > 0 ? fp32_input(v.data(), n, kv, vd) : kv_input{}};
    const append_request r{ids.back(), n};
    cache.append({&r, 1}, {&in, 1});
  }
  const page_table_csr table = cache.page_table(0, ids);
  const paged_layer_view view = cache.view(0, table);
  const attention::decode_plan plan =
      attention::plan_decode(view, Spec::q_heads, 4, min_split_tokens);
  const auto rows = lengths.size() * Spec::q_heads;
  std::vector<float> q(rows * kd, 0.01f), out(rows * Spec::v_dim), lse(rows);
  attention::decode_workspace workspace;
  simt::memory_traffic traffic;
  simt::launch_options options;
  options.traffic = &traffic;
  if constexpr (kernels::decode_path_of<shape, Block> == kernels::decode_path::warpgroups)
    options.target = simt::sm_90;
  simt::decode<shape, Block>(plan, view, q.data(), out.data(), lse.data(),
                             attention::attention_params_of<Spec>(), workspace, options);
  const page_geometry& geo = view.geometry;
  std::vector<unsigned> expected(static_cast<std::size_t>(geo.page_bytes) * 32, 0);
  for (std::size_t s = 0; s < lengths.size(); ++s)
    for (int t = 0; t < lengths[s]; ++t) {
      const std::int32_t page = table.indices[static_cast<std::size_t>(table.indptr[s] + t / 16)];
      const std::uint64_t base = static_cast<std::uint64_t>(page) * geo.page_bytes;
      for (int h = 0; h < kv; ++h) {
        for (std::uint64_t b = 0; b < geo.k_vector_bytes; ++b)
          expected[base + geo.k_offset(t % 16, h) + b] = reads_each;
        if (vd > 0)
          for (std::uint64_t b = 0; b < geo.v_vector_bytes; ++b)
            expected[base + geo.v_offset(t % 16, h) + b] = reads_each;
      }
    }
  const std::vector<unsigned> read =
      traffic.coverage(simt::access::read, view.memory, expected.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) wrong += read[i] != expected[i];
  CHECK(wrong == 0);
  const simt::traffic_summary summary = traffic.summary(simt::access::read);
  CHECK(summary.narrowest == 16);
  CHECK(summary.sectors * 32 == summary.bytes);
}

}  // namespace

TEST_CASE("traffic: the tensor-core decode reads each K/V byte once per block, for all its heads",
          "[simt]") {
  // 32 heads: one block of 4 warps a sequence (or a split of it) reads each latent once.
  using latent_32 = latent_traffic_layer<32>;
  check_mma_reads<latent_32, kernels::decode_block<kernels::decode_shape_of<latent_32, paged<16>>>>(
      {40, 70}, 4096, 1);
  check_mma_reads<latent_32, kernels::block_shape<128>>({100}, 32, 1);
  // 48 heads in blocks of 32 rows: two row chunks, each reading the latents.
  check_mma_reads<latent_traffic_layer<48>, kernels::block_shape<128>>({33}, 4096, 2);
  // Groups of 16: one block a (sequence, KV head) reads its keys and values once.
  check_mma_reads<group_traffic_layer, kernels::block_shape<64>>({40, 70}, 4096, 1);
  check_mma_reads<group_traffic_layer, kernels::block_shape<64>>({100}, 32, 1);
}

TEST_CASE("traffic: the warpgroup MLA decode reads each latent once per block of 64 heads",
          "[simt]") {
  using latent_64 = latent_traffic_layer<64>;
  using warpgroups =
      kernels::warpgroup_decode_block<kernels::decode_shape_of<latent_64, paged<16>>>;
  check_mma_reads<latent_64, warpgroups>({40, 70}, 4096, 1);
  check_mma_reads<latent_64, warpgroups>({100}, 32, 1);  // split
  // 128 heads: two row chunks of 64, each reading the latents.
  using latent_128 = latent_traffic_layer<128>;
  check_mma_reads<latent_128,
                  kernels::warpgroup_decode_block<kernels::decode_shape_of<latent_128, paged<16>>>>(
      {33}, 4096, 2);
  // fp8: each raw latent once, converted in shared memory.
  using fp8_latent = layer<mqa<64>, latent<512, 64>, storage<fp8_e4m3>, inv_sqrt_scale<192>>;
  check_mma_reads<fp8_latent,
                  kernels::warpgroup_decode_block<kernels::decode_shape_of<fp8_latent, paged<16>>>>(
      {40, 70}, 4096, 1);
}
