#pragma once
// Decode kernels for a small query group (up to 8 query heads per KV head, as GQA, MHA and
// most MQA layers have): the scores and the weighted sum of values are computed straight from
// the stored dtype of one KV head's vectors, 8 values converted in a register at a time.
// Nothing is dequantized into memory first: at a few query rows per key, a float copy of the
// block costs as much as the arithmetic itself.
//
//   group_kernels k = group_kernels::of(choose_kernels(geometry, group, options), geometry,
//                                       group);            // empty when none is chosen
//   k.scores(q, k_dim, keys, tokens, s, ahead);        s[r][t] = q_r . raw(k_t)
//   k.accumulate(p, values, v_dim, tokens, acc, ahead)  acc[r] += sum_t p[r][t] raw(v_t)
//
// raw() is the stored value before its scale (numeric::x86::decode8_raw): a per-layer scale
// and the raw unit go into q (keys) or the weights (values); per-vector scales are the
// caller's to apply, to the scores (keys) or the weights (values).
//
// The kernels themselves are in group_kernels_avx2.hpp (8 lanes) and group_kernels_avx512.hpp
// (16 lanes, the int8 ones with VNNI, the bf16 products); their inline assembly is in
// x86_instructions.hpp.

#include <type_traits>
#include <utility>

#include "kvc/backend/cpu/group_kernels_avx2.hpp"
#include "kvc/backend/cpu/group_kernels_avx512.hpp"
#include "kvc/backend/cpu/head_vectors.hpp"
#include "kvc/backend/cpu/kernel_choice.hpp"
#include "kvc/backend/cpu/kernel_set.hpp"
#include "kvc/backend/cpu/read_ahead.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/simd_x86.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cpu {

/// The kernels for one layer and query group; empty (usable() false) where the CPU lacks
/// AVX2 / FMA / F16C, the dims are not multiples of 8, the group is above 8 or V is part of
/// a latent K (MLA reads one latent for many heads: the float-block path suits it).
struct group_kernels {
  static constexpr int max_group = max_kernel_group;
  using scores_fn = void (*)(const float* q, int dim, head_vectors keys, int tokens, float* s,
                             read_ahead& ahead);
  using accumulate_fn = void (*)(const float* p, head_vectors values, int dim, int tokens,
                                 float* acc, read_ahead& ahead);
  /// Puts query rows ([rows][dim], dim floats apart) into the form `scores` reads, in place;
  /// null where the scores take them as they are.
  using prepare_fn = void (*)(float* q, int rows, int dim);
  scores_fn scores = nullptr;
  accumulate_fn accumulate = nullptr;
  prepare_fn prepare_queries = nullptr;

  bool usable() const { return scores != nullptr; }

  /// Returns the kernels `choice` names (choose_kernels) for a layer of geometry `geo` and query
  /// group `group`; empty when it names none or `Kernels` (kernel_set.hpp) lacks them. Only
  /// the kernels in `Kernels` are compiled.
  template <kernel_set Kernels = all_kernels>
  static group_kernels of(const kernel_choice& choice, const page_geometry& geo, int group) {
    group_kernels k;
#if defined(KVC_X86_SIMD)
    if (!choice.grouped() || !Kernels.covers(geo, group)) return k;
    with_group(group, [&](auto g) {
      constexpr int group_size = decltype(g)::value;
      if constexpr (Kernels.has_group(group_size)) k = of_group<Kernels, group_size>(choice, geo);
    });
#else
    (void)choice, (void)geo, (void)group;
#endif
    return k;
  }

 private:
#if defined(KVC_X86_SIMD)
  // The kernels for groups of G: a switch case whose kernel is not in Kernels is left empty
  // (covers() has refused such a layer before this runs).
  template <kernel_set Kernels, int G>
  static group_kernels of_group(const kernel_choice& choice, const page_geometry& geo) {
    group_kernels k;
    constexpr bool int8_keys = Kernels.scores(G, dtype_id::int8);
    constexpr bool int8_values = Kernels.accumulates(G, dtype_id::int8);
    switch (choice.scores) {
      case group_path::int8_avx2:
        if constexpr (int8_keys)
          k = {&x86::group_scores_int8_avx2<G>, nullptr, &x86::round_query_int16};
        break;
      case group_path::int8_vnni:
        if constexpr (int8_keys)
          k = {&x86::group_scores_int8_vnni<G>, nullptr, &x86::round_query_int16};
        break;
      case group_path::int8_avx512:
        if constexpr (int8_keys)
          k = {&x86::group_scores_int8_512<G>, nullptr, &x86::round_query_int16};
        break;
      case group_path::int8_query:
        if constexpr (int8_keys)
          k = {&x86::group_scores_int8_query<G>, nullptr, &x86::round_query_int8};
        break;
      case group_path::bf16_products:
        if constexpr (Kernels.scores(G, dtype_id::bf16))
          k = {&x86::group_scores_bf16<G>, nullptr, &x86::round_query_bf16};
        break;
      default:
        visit_dtype(geo.k_type, [&](auto type) {
          constexpr dtype_id stored_type = decltype(type)::id;
          if constexpr (Kernels.scores(G, stored_type)) {
            k.scores = &x86::group_scores<stored_type, G>;
            if constexpr (stored_type != dtype_id::int4)
              if (choice.scores == group_path::float_avx512)
                k.scores = &x86::group_scores_512<stored_type, G>;
          }
        });
    }
    switch (choice.values) {
      case group_path::int8_vnni:
        if constexpr (int8_values) k.accumulate = &x86::group_accumulate_int8_vnni<G>;
        break;
      case group_path::int8_avx512:
        if constexpr (int8_values) k.accumulate = &x86::group_accumulate_int8_512<G>;
        break;
      case group_path::bf16_products:
        if constexpr (Kernels.accumulates(G, dtype_id::bf16))
          k.accumulate = &x86::group_accumulate_bf16<G>;
        break;
      default:
        visit_dtype(geo.v_type, [&](auto type) {
          constexpr dtype_id stored_type = decltype(type)::id;
          if constexpr (Kernels.accumulates(G, stored_type)) {
            k.accumulate = &x86::group_accumulate<stored_type, G>;
            if constexpr (stored_type != dtype_id::int4)
              if (choice.values == group_path::float_avx512)
                k.accumulate = &x86::group_accumulate_512<stored_type, G>;
          }
        });
    }
    if (k.scores == nullptr || k.accumulate == nullptr) return {};
    return k;
  }
#endif

  template <class F>
  static void with_group(int group, F&& f) {
    [&]<int... G>(std::integer_sequence<int, G...>) {
      ((group == G + 1 ? f(std::integral_constant<int, G + 1>{}) : void()), ...);
    }
    (std::make_integer_sequence<int, max_group>{});
  }
};

}  // namespace kvc::cpu
