#pragma once
// What an engine names and asks a kv_cache for: sequence handles, the tokens a step appends
// to each sequence, the cache's capacity, and the limits on token counts.

#include <cstdint>
#include <limits>

namespace kvc {

struct sequence_id {
  std::uint32_t slot = 0xFFFFFFFFu;
  std::uint64_t generation = 0;  ///< 64 bits: a released handle never becomes valid again
  friend constexpr bool operator==(sequence_id, sequence_id) = default;
};

/// The longest sequence the cache takes: token counts and positions stay far from overflow.
inline constexpr std::int64_t max_sequence_tokens = std::int64_t{1} << 40;
/// The largest rollback reserve a cache takes (speculative decoding needs a few tokens).
inline constexpr std::int64_t max_rollback_reserve = 65536;
/// The most recurrent-state snapshots a cache keeps.
inline constexpr std::int64_t max_state_snapshots = 65536;

struct append_request {
  sequence_id sequence;
  std::int64_t tokens = 0;  ///< new tokens of this sequence in this step
};

/// Capacity: the same number of pages in every group. rollback_reserve: tokens every
/// bounded window keeps beyond what it shows, so that truncate() by up to that many tokens
/// succeeds (0: no rollback past the window; full-attention layers roll back freely).
/// state_snapshots: recurrent-state snapshots the prefix index may keep, for a model with
/// recurrent layers (docs/prefix-reuse.md); each takes the model's recurrent state bytes, and
/// one more is kept as the spare a snapshot is copied into first.
/// checkpoint_every: window checkpoints every N tokens (0: none; a multiple of the page size,
/// for a model with a bounded window): each sliding, chunked or streaming group keeps, after
/// its window slid on, the pages a prefix hit at every multiple of N needs, so that a prompt
/// stored after one long step still hits there (docs/prefix-reuse.md). They cost memory: about
/// window / N of what full attention would hold.
struct capacity_pages {
  std::int64_t pages_per_group = 0;
  std::int64_t rollback_reserve = 0;
  std::int64_t state_snapshots = 0;
  std::int64_t checkpoint_every = 0;
};
/// Capacity: a byte budget, shared among the groups in the proportion a sequence of
/// expected_tokens tokens needs them (a sliding group needs far fewer pages than a full one;
/// a bounded window is given one page more, which a step takes before the window lets the
/// oldest go). rollback_reserve, state_snapshots and checkpoint_every as for capacity_pages;
/// the snapshots' bytes come out of the budget first, and a window group's share counts the
/// checkpoint pages of a sequence of expected_tokens tokens.
struct capacity_bytes {
  std::uint64_t bytes = 0;
  std::int64_t expected_tokens = 32768;
  std::int64_t rollback_reserve = 0;
  std::int64_t state_snapshots = 0;
  std::int64_t checkpoint_every = 0;
};

/// What a sequence can still take when its windows never run out of pages.
inline constexpr std::int64_t unlimited_tokens = std::numeric_limits<std::int64_t>::max();

}  // namespace kvc
