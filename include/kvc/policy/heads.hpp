#pragma once
// Head sharing: how many query heads read each cached KV head.

#include "kvc/policy/family.hpp"

namespace kvc {

namespace detail {
template <int QueryHeads, int KVHeads>
struct heads_checks {
  static_assert(QueryHeads > 0, "kvc::heads<Q, KV>: the number of query heads must be positive");
  static_assert(KVHeads > 0, "kvc::heads<Q, KV>: the number of KV heads must be positive");
  static_assert(KVHeads <= QueryHeads,
                "kvc::heads<Q, KV>: there cannot be more KV heads than query heads");
  static_assert(KVHeads <= 0 || KVHeads > QueryHeads || QueryHeads % KVHeads == 0,
                "kvc::heads<Q, KV>: the query heads must be a multiple of the KV heads, so that "
                "every KV head serves a whole group of query heads");
};
}  // namespace detail

template <int QueryHeads, int KVHeads>
struct heads {
  static_assert(sizeof(detail::heads_checks<QueryHeads, KVHeads>) > 0);  // the checks, kept apart

  static constexpr policy_family family = policy_family::head_sharing;
  static constexpr int q_heads = QueryHeads;
  static constexpr int kv_heads = KVHeads;
  static constexpr int group_size = KVHeads > 0 ? QueryHeads / KVHeads : 1;
};

/// Multi-head attention: every query head has its own KV head.
template <int Heads>
using mha = heads<Heads, Heads>;
/// Grouped-query attention: QueryHeads / KVHeads query heads share each KV head.
template <int QueryHeads, int KVHeads>
using gqa = heads<QueryHeads, KVHeads>;
/// Multi-query attention: all query heads share one KV head.
template <int QueryHeads>
using mqa = heads<QueryHeads, 1>;

}  // namespace kvc
