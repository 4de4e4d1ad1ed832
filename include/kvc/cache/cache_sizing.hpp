#pragma once
// How big a kv_cache is, decided before anything is allocated: the pages of each layer
// group and the window each group keeps pages for (the layers' window widened by the
// rollback reserve), from a capacity in pages or in bytes. Every bad capacity is refused
// here, with invalid_argument, so that the constructor allocates only what is valid.
//
//   const auto sizing = detail::cache_sizing<Model, Paging>::of(capacity_bytes{8 << 30});
//   sizing.pages[g];          // pages of group g
//   sizing.kept_windows[g];   // what group g keeps pages for
//   sizing.checkpoints[g];    // the window checkpoints it keeps (policy/checkpoints.hpp)

#include <cstdint>
#include <limits>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/layer_groups.hpp"
#include "kvc/cache/page_pool.hpp"
#include "kvc/cache/requests.hpp"
#include "kvc/detail/index.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/policy/checkpoints.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::detail {

/// What the typedefs fix about each layer group: the summary of its layers, its page
/// geometry and how many layers hold a page.
template <model_type Model, class Paging>
struct group_shapes {
  using groups = layer_groups<Model>;
  static constexpr int num_groups = groups::num_groups;

  static constexpr const layer_summary& summary(int g) {
    return Model::layer_summaries[static_cast<std::size_t>(groups::value.info[g].first_layer)];
  }
  static constexpr page_geometry geometry(int g) {
    return page_geometry::make(summary(g), Paging::page_tokens, Paging::layout);
  }
  static constexpr int layers(int g) { return groups::value.info[g].layers; }
};

template <model_type Model, class Paging>
struct cache_sizing {
  using shapes = group_shapes<Model, Paging>;
  static constexpr int num_groups = shapes::num_groups;

  std::int64_t rollback_reserve = 0;
  std::int64_t state_snapshots = 0;
  std::int64_t checkpoint_every = 0;
  signed_array<window_shape, num_groups> kept_windows{};
  signed_array<window_checkpoints, num_groups> checkpoints{};
  signed_array<std::int64_t, num_groups> pages{};

  /// Sizes every group to the same number of pages.
  static cache_sizing of(capacity_pages capacity) {
    require(capacity.pages_per_group > 0 &&
                capacity.pages_per_group <= std::numeric_limits<page_id>::max(),
            cache_errc::invalid_argument,
            "kvc::kv_cache: pages_per_group must be in 1..2^31-1, not ", capacity.pages_per_group);
    cache_sizing sizing =
        with_extras(capacity.rollback_reserve, capacity.state_snapshots, capacity.checkpoint_every);
    sizing.pages.fill(capacity.pages_per_group);
    return sizing;
  }

  /// Shares the byte budget among the groups in the proportion one sequence of
  /// expected_tokens tokens needs them (a bounded window one page more: a step takes it
  /// before the window lets the oldest go).
  static cache_sizing of(capacity_bytes capacity) {
    require(capacity.expected_tokens > 0 && capacity.expected_tokens <= max_sequence_tokens,
            cache_errc::invalid_argument, "kvc::kv_cache: expected_tokens must be in 1..2^40");
    cache_sizing sizing =
        with_extras(capacity.rollback_reserve, capacity.state_snapshots, capacity.checkpoint_every);
    const std::uint64_t snapshots = sizing.snapshot_memory_bytes();
    require(snapshots == 0 || snapshots < capacity.bytes, cache_errc::invalid_argument,
            "kvc::kv_cache: ", capacity.bytes, " bytes cannot hold ", capacity.state_snapshots,
            " state snapshots (and the spare) of ", state_bytes(), " bytes each");
    signed_array<std::int64_t, num_groups> need{};
    double bytes_per_sequence = 0;
    for (int g = 0; g < num_groups; ++g) {
      const window_shape& window = sizing.kept_windows[g];
      need[g] = window.max_pages_held(capacity.expected_tokens, Paging::page_tokens) +
                (window.bounded() ? 1 : 0) +
                sizing.checkpoints[g].pages_held(window, capacity.expected_tokens);
      bytes_per_sequence += static_cast<double>(need[g]) *
                            static_cast<double>(shapes::geometry(g).page_bytes) *
                            static_cast<double>(shapes::layers(g));
    }
    const double sequences = static_cast<double>(capacity.bytes - snapshots) / bytes_per_sequence;
    for (int g = 0; g < num_groups; ++g) {
      const double wanted = sequences * static_cast<double>(need[g]);
      require(wanted >= 1, cache_errc::invalid_argument, "kvc::kv_cache: ", capacity.bytes,
              " bytes cannot hold one page of every group");
      require(wanted <= static_cast<double>(std::numeric_limits<page_id>::max()),
              cache_errc::invalid_argument, "kvc::kv_cache: ", capacity.bytes,
              " bytes would need more than 2^31-1 pages in group ", g, "; use larger pages");
      sizing.pages[g] = static_cast<std::int64_t>(wanted);
    }
    return sizing;
  }

  /// Returns the recurrent state bytes of one sequence: a snapshot's size.
  static constexpr std::uint64_t state_bytes() {
    std::uint64_t bytes = 0;
    for (const layer_summary& s : Model::layer_summaries) bytes += s.state_bytes;
    return bytes;
  }
  /// Returns the memory of the snapshot slots, the spare included.
  std::uint64_t snapshot_memory_bytes() const {
    return state_snapshots > 0 ? static_cast<std::uint64_t>(state_snapshots + 1) * state_bytes()
                               : 0;
  }

 private:
  static cache_sizing with_extras(std::int64_t reserve, std::int64_t snapshots,
                                  std::int64_t checkpoint_every) {
    // Bounded, so that the page-pattern scans over a window's horizon stay short.
    require(reserve >= 0 && reserve <= max_rollback_reserve, cache_errc::invalid_argument,
            "kvc::kv_cache: rollback_reserve must be in 0..65536, not ", reserve);
    require(snapshots >= 0 && snapshots <= max_state_snapshots, cache_errc::invalid_argument,
            "kvc::kv_cache: state_snapshots must be in 0..65536, not ", snapshots);
    require(snapshots == 0 || state_bytes() > 0, cache_errc::invalid_argument,
            "kvc::kv_cache: state_snapshots needs a model with a recurrent layer; this one has "
            "none");
    constexpr std::int64_t P = Paging::page_tokens;
    require(checkpoint_every >= 0 && checkpoint_every <= max_sequence_tokens &&
                checkpoint_every % P == 0,
            cache_errc::invalid_argument,
            "kvc::kv_cache: checkpoint_every must be 0 or a multiple of the page size (", P,
            ") up to 2^40, not ", checkpoint_every);
    bool windowed = false;
    for (int g = 0; g < num_groups; ++g) windowed = windowed || shapes::summary(g).window.bounded();
    require(checkpoint_every == 0 || windowed, cache_errc::invalid_argument,
            "kvc::kv_cache: checkpoint_every needs a model with a sliding, chunked or streaming "
            "window; this one has none");
    cache_sizing sizing;
    sizing.rollback_reserve = reserve;
    sizing.state_snapshots = snapshots;
    sizing.checkpoint_every = checkpoint_every;
    for (int g = 0; g < num_groups; ++g) {
      const window_shape& seen = shapes::summary(g).window;
      sizing.kept_windows[g] = seen;
      if (seen.bounded()) sizing.kept_windows[g].reserve = reserve;
      sizing.checkpoints[g] = window_checkpoints{seen, seen.bounded() ? checkpoint_every : 0, P};
    }
    return sizing;
  }
};

}  // namespace kvc::detail
