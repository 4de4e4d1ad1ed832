// An engine's translation unit with globals of the names an engine uses, compiled with
// -Wshadow -Werror like every test: a kvc template whose parameter or lambda parameter has one
// of these names warns here when it is instantiated, so this file fails to build. It drives the
// cache and the CPU attention through a serving step with prefix reuse on a hybrid model, so
// that those templates are instantiated.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/kvc.hpp"

// NOLINTBEGIN: the point is the names.
int capacity, allocator, sized, hit, tokens, states, targets, prompt, context, priority, plan,
    sequence, request, requests, table, batch, pages, page, group, window, layers, cache, slot,
    count, parent, node, chain, records, record, key, keys, events, stats, storage, memory, bytes,
    sources, snapshot, room, victim, tick, reuse, first, last, rows, view, params, out, lse, q,
    workspace, pool, threads, step, length, position, head, heads, dim, scale, values, input,
    inputs, output, id, ids, seq, seqs, layer_count, kind, shape, need, lists, valid_from, written,
    fresh, taken, entry, entries;
// NOLINTEND

namespace {

using local =
    kvc::layer<kvc::gqa<4, 2>, kvc::head_dim<16>, kvc::sliding_window<64>, kvc::storage<kvc::bf16>>;
using full = kvc::layer<kvc::gqa<4, 2>, kvc::head_dim<16>, kvc::storage<kvc::fp16>>;
using linear = kvc::recurrent_state<64>;
using hybrid = kvc::model<4, kvc::pattern<local, linear, full, full>>;
using cache_type = kvc::kv_cache<hybrid, kvc::paged<16>>;

}  // namespace

TEST_CASE("a serving step with prefix reuse compiles beside an engine's globals") {
  cache_type c{kvc::capacity_pages{64, 16, 2}};
  std::vector<std::int32_t> prompt_tokens(48);
  for (std::size_t i = 0; i < prompt_tokens.size(); ++i)
    prompt_tokens[i] = static_cast<std::int32_t>(i * 3 + 1);
  std::vector<float> kv(48 * 2 * 16, 0.25f), state(64, 1.5f), restored(64, 0.0f);
  const kvc::sequence_id s = c.add_sequence();
  std::vector<kvc::layer_input> in;
  for (int l : {0, 2, 3})
    in.push_back({l, kvc::fp32_input(kv.data(), 32, 2, 16), kvc::fp32_input(kv.data(), 32, 2, 16)});
  const kvc::append_request first_step{s, 32};
  c.append({&first_step, 1}, in);
  const kvc::state_source source[] = {{1, state.data()}};
  c.store_prefix(s, std::span(prompt_tokens).first(32), {}, 0, source);
  const auto found = c.find_prefix(prompt_tokens);
  REQUIRE(found.tokens == 32);
  const kvc::state_target target[] = {{1, restored.data()}};
  const kvc::sequence_id t = c.add_sequence(found, target);
  CHECK(restored == state);

  // The rest of the prompt: extend over the reused pages, then one decode step.
  const kvc::append_request rest{t, 16};
  kvc::append_plan open = c.plan_append({&rest, 1});
  const kvc::sequence_id one[] = {t};
  std::vector<float> query(16 * 4 * 16, 0.5f), result(query.size()), sums(16 * 4);
  kvc::cpu::extend_workspace extend_space;
  const std::vector<std::int32_t> qo{0, 16};
  for (int l : {0, 2, 3}) {
    const kvc::kv_input k = kvc::fp32_input(kv.data(), 16, 2, 16);
    const kvc::page_table_csr prefix = c.page_table(l, one);
    kvc::cpu::extend(c.view(l, prefix), qo, 4, query.data(), k, k, result.data(), sums.data(),
                     kvc::attention::layer_params<hybrid>(l), extend_space);
    c.write(open, l, k, k);
  }
  c.commit(open);
  for (float x : result) CHECK(std::abs(x - 0.25f) < 1e-2f);  // every value is 0.25

  const kvc::page_table_csr committed = c.page_table(2, one);
  const auto decoding = kvc::cpu::plan_decode(c.view(2, committed), 4, 1);
  kvc::cpu::decode_workspace decode_space;
  kvc::cpu::decode(decoding, c.view(2, committed), query.data(), result.data(), sums.data(),
                   kvc::attention::layer_params<hybrid>(2), decode_space);
  CHECK(std::abs(result[0] - 0.25f) < 1e-2f);

  const kvc::sequence_id f = c.fork(t, 40);
  c.truncate(t, 40);
  c.release(f);
  c.release(t);
  c.release(s);
  std::vector<kvc::prefix_event> log;
  c.record_prefix_events(true);
  c.clear_prefixes();
  c.take_prefix_events(log);
  CHECK(log.size() > 0);
  c.check_invariants();
  CHECK(c.used_bytes() == 0);
}
