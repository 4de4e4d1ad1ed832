#pragma once
// Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434): the cache holds one
// compressed vector per token, shared by every head: Rank latent dims followed by
// RopeDim decoupled RoPE key dims. In absorbed form the keys are the whole vector
// and the values are its first Rank dims.

#include "kvc/policy/family.hpp"

namespace kvc {

namespace detail {
template <int Rank, int RopeDim>
struct latent_checks {
  static_assert(Rank > 0, "kvc::latent<Rank, RopeDim>: the latent rank must be positive");
  static_assert(RopeDim >= 0, "kvc::latent<Rank, RopeDim>: the RoPE dim cannot be negative");
};
}  // namespace detail

template <int Rank, int RopeDim>
struct latent {
  static_assert(sizeof(detail::latent_checks<Rank, RopeDim>) > 0);  // the checks, kept apart

  static constexpr policy_family family = policy_family::latent_compression;
  static constexpr int rank = Rank;
  static constexpr int rope_dim = RopeDim;
  static constexpr int cached_dim = Rank + RopeDim;
};

}  // namespace kvc
