// The overlaps docs/cache.md ("Concurrency") allows, each run from several threads and
// compared bit for bit with the same calls made one after another. Run under
// ThreadSanitizer by .ci/run (stage tsan), which reports any data race they have.

#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "kvc/attention/params.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/kv_cache.hpp"

using namespace kvc;

namespace {

using spec = layer<gqa<4, 2>, head_dim<32>, storage<int8, fp16>>;
struct four_layers : model<4, spec> {};
using cache_type = kv_cache<four_layers, paged<16>>;
constexpr int q_heads = 4, kv_heads = 2, dim = 32, layers = 4;

std::vector<float> random_values(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void append_random(cache_type& cache, std::span<const sequence_id> ids,
                   std::span<const std::int64_t> tokens, std::mt19937& rng) {
  std::vector<append_request> batch;
  std::int64_t rows = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    batch.push_back({ids[i], tokens[i]});
    rows += tokens[i];
  }
  const std::vector<float> k = random_values(static_cast<std::size_t>(rows * kv_heads * dim), rng);
  std::vector<layer_input> in;
  for (int l = 0; l < layers; ++l)
    in.push_back(
        {l, fp32_input(k.data(), rows, kv_heads, dim), fp32_input(k.data(), rows, kv_heads, dim)});
  cache.append(batch, in);
}

// One layer's decode over a view, into its own outputs.
std::vector<float> decode_layer(const paged_layer_view& view, const cpu::decode_plan& plan,
                                const std::vector<float>& q, cpu::parallel_for_ref parallel) {
  cpu::decode_workspace workspace;  // one per call: a workspace is written
  std::vector<float> out(static_cast<std::size_t>(view.batch * q_heads * dim)),
      lse(static_cast<std::size_t>(view.batch * q_heads));
  cpu::decode(plan, view, std::span<const float>(q), std::span<float>(out), std::span<float>(lse),
              attention::attention_params{0.2f}, workspace, parallel);
  out.insert(out.end(), lse.begin(), lse.end());
  return out;
}

}  // namespace

TEST_CASE("attention over one table from several threads, beside the cache's const calls") {
  cache_type cache(capacity_pages{64});
  std::mt19937 rng(1);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence(), cache.add_sequence()};
  const std::int64_t lengths[] = {300, 17, 90};
  append_random(cache, ids, lengths, rng);
  const page_table_csr table = cache.page_table(0, ids);
  const cpu::decode_plan plan = cpu::plan_decode(cache.view(0, table), q_heads, 2);  // shared
  const std::vector<float> q = random_values(3 * q_heads * dim, rng);
  const std::vector<std::int32_t> qo_indptr{0, 2, 3, 5};
  const std::vector<float> q_extend = random_values(5 * q_heads * dim, rng);
  const std::vector<float> new_k = random_values(5 * kv_heads * dim, rng);

  // One after another first.
  std::vector<std::vector<float>> expected(layers);
  for (int l = 0; l < layers; ++l)
    expected[static_cast<std::size_t>(l)] =
        decode_layer(cache.view(l, table), plan, q, cpu::serial());
  const auto run_extend = [&](cpu::parallel_for_ref parallel) {
    cpu::extend_workspace workspace;
    std::vector<float> out(5 * q_heads * dim), lse(5 * q_heads);
    cpu::extend(cache.view(1, table), qo_indptr, q_heads, std::span<const float>(q_extend),
                fp32_input(new_k.data(), 5, kv_heads, dim),
                fp32_input(new_k.data(), 5, kv_heads, dim), std::span<float>(out),
                std::span<float>(lse), attention::attention_params{0.2f}, workspace, parallel);
    return out;
  };
  const std::vector<float> expected_extend = run_extend(cpu::serial());
  std::vector<float> expected_k(kv_heads * dim);
  REQUIRE(cache.read(ids[0], 2, 299, expected_k.data(), nullptr));

  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  // Two threads decode the layers, one on the calling thread, one through the shared pool.
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (int l = t; l < layers; l += 2)
          if (decode_layer(cache.view(l, table), plan, q,
                           t == 0 ? cpu::serial() : cpu::default_parallel_for()) !=
              expected[static_cast<std::size_t>(l)])
            ++mismatches;
    });
  // One extends through the shared pool; one plans and makes tables; one reads and asks.
  threads.emplace_back([&] {
    for (int round = 0; round < 3; ++round)
      if (run_extend(cpu::default_parallel_for()) != expected_extend) ++mismatches;
  });
  threads.emplace_back([&] {
    page_table_csr own;
    cpu::decode_plan own_plan;
    for (int round = 0; round < 20; ++round) {
      cache.page_table(3, ids, own);
      cpu::plan_decode(cache.view(3, own), q_heads, 4, own_plan);
      if (own.indices != table.indices) ++mismatches;
    }
  });
  threads.emplace_back([&] {
    std::vector<float> k(kv_heads * dim);
    const append_request more[] = {{ids[1], 40}};
    for (int round = 0; round < 20; ++round) {
      if (!cache.read(ids[0], 2, 299, k.data(), nullptr) || k != expected_k) ++mismatches;
      if (cache.length(ids[2]) != 90 || !cache.can_append(more) ||
          cache.sequences_that_fit(16) <= 0 || cache.free_pages(0) <= 0)
        ++mismatches;
    }
  });
  for (std::thread& t : threads) t.join();
  CHECK(mismatches == 0);
  cache.check_invariants();
}

TEST_CASE("a step's next layer is written while the last one written is attended") {
  cache_type cache(capacity_pages{64});
  std::mt19937 rng(2);
  const sequence_id ids[] = {cache.add_sequence(), cache.add_sequence()};
  const std::int64_t lengths[] = {40, 70};
  append_random(cache, ids, lengths, rng);
  const append_request step[] = {{ids[0], 1}, {ids[1], 1}};
  const std::vector<float> k = random_values(2 * kv_heads * dim, rng);
  const kv_input in = fp32_input(k.data(), 2, kv_heads, dim);
  const std::vector<float> q = random_values(2 * q_heads * dim, rng);

  // One after another: write a layer, attend it.
  std::vector<std::vector<float>> expected(layers);
  {
    append_plan plan = cache.plan_append(step);
    const page_table_csr table = cache.step_table(plan, 0);
    const cpu::decode_plan decode_plan = cpu::plan_decode(cache.view(0, table), q_heads, 1);
    for (int l = 0; l < layers; ++l) {
      cache.write(plan, l, in, in);
      expected[static_cast<std::size_t>(l)] =
          decode_layer(cache.view(l, table), decode_plan, q, cpu::serial());
    }
  }  // aborted: the cache is as before

  // Pipelined: this thread writes layer l + 1 while another attends layer l.
  append_plan plan = cache.plan_append(step);
  const page_table_csr table = cache.step_table(plan, 0);
  const cpu::decode_plan decode_plan = cpu::plan_decode(cache.view(0, table), q_heads, 1);
  std::atomic<int> written{0};
  std::vector<std::vector<float>> got(layers);
  std::thread attend([&] {
    for (int l = 0; l < layers; ++l) {
      while (written.load(std::memory_order_acquire) <= l) std::this_thread::yield();
      got[static_cast<std::size_t>(l)] =
          decode_layer(cache.view(l, table), decode_plan, q, cpu::default_parallel_for());
    }
  });
  for (int l = 0; l < layers; ++l) {
    cache.write(plan, l, in, in);
    written.store(l + 1, std::memory_order_release);
  }
  attend.join();
  cache.commit(plan);
  CHECK(got == expected);
  cache.check_invariants();
}
