#pragma once
// Filling the page tables a kv_cache hands out (page_table.hpp has the types): a row per
// sequence, its entries either as committed or as an open step will leave them (step_pages
// says which held entries stay, which one is a copy, which pages are fresh), and the view of
// one layer over a table. A table is filled whole or left empty, never half.
//
//   detail::fill_table(csr, rows, [&] { for (...) detail::push_row(csr, length, page_tokens); });

#include <cstdint>
#include <span>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/cache/step_pages.hpp"

namespace kvc::detail {

/// Runs fill (which pushes `rows` rows) on an emptied table; on error (out of memory) the
/// table is left empty.
template <class Fill>
void fill_table(page_table_csr& csr, std::size_t rows, Fill&& fill) {
  csr.clear();
  try {
    csr.indptr.reserve(rows + 1);
    csr.last_page_len.reserve(rows);
    csr.seq_lens.reserve(rows);
    fill();
  } catch (...) {
    csr.clear();
    throw;
  }
}

/// Ends the row of a sequence of `length` tokens whose entries were just pushed.
inline void push_row(page_table_csr& csr, std::int64_t length, std::int64_t page_tokens) {
  csr.indptr.push_back(static_cast<std::int32_t>(csr.indices.size()));
  csr.last_page_len.push_back(
      length == 0 ? 0 : static_cast<std::int32_t>((length - 1) % page_tokens + 1));
  csr.seq_lens.push_back(length);
}

/// Pushes the entries a sequence will list after an open step: of the `held` pages, those
/// the step keeps (`copy` in place of the written one when it is shared, else -1), then
/// the step's `fresh` pages.
inline void push_step_entries(page_table_csr& csr, const step_pages& step, bool bounded,
                              std::span<const page_id> held, page_id copy,
                              std::span<const page_id> fresh) {
  const std::int64_t copy_entry = copy >= 0 ? step.write_entry : -1;
  for (std::size_t j = 0; j < held.size(); ++j) {
    const auto entry = static_cast<std::int64_t>(j);
    if (bounded && !step.keeps_entry(entry)) continue;
    csr.indices.push_back(entry == copy_entry ? copy : held[j]);
  }
  csr.indices.insert(csr.indices.end(), fresh.begin(), fresh.end());
}

/// Refuses a table for a view of a layer of group g at the cache's `epoch`: stale_table for
/// an older epoch, plan_mismatch for another group's table.
inline void check_view_table(const page_table_csr& table, std::uint64_t epoch, int g, int layer) {
  require(table.epoch == epoch, cache_errc::stale_table,
          "kvc::kv_cache::view: the page table is from epoch ", table.epoch, ", the cache is at ",
          epoch, " (a commit, abort, truncate, fork or release came in between); refill it");
  require(table.group == g, cache_errc::plan_mismatch,
          "kvc::kv_cache::view: the page table lists group ", table.group, "'s pages, layer ",
          layer, " is in group ", g);
}

}  // namespace kvc::detail
