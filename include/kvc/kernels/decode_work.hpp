#pragma once
// What every decode kernel shares (kernels/decode.hpp has the overview): the shape a layer's
// typedef fixes, the work of one launch, its checks (make_decode_work) and the merge kernel
// that combines a split sequence's partial results.

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "kvc/attention/decode_plan.hpp"
#include "kvc/attention/online_softmax.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/attention/partial_result.hpp"
#include "kvc/attention/query_rows.hpp"
#include "kvc/cache/errors.hpp"
#include "kvc/cache/page_table.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::kernels {

/// What a layer's typedef fixes for its decode kernel. Windowed: whether the layer's window
/// can hide a listed token from the query (any window but full attention). PageTokens: the
/// paging policy's page size, 0 for a kernel that takes any (decode_shape_of fixes it, so
/// that the fast kernel finds a token's page without a division).
template <class KType, class VType, int Group, int KDim, int VDim, bool Latent,
          page_layout Layout = page_layout::nhd, bool Windowed = false, int PageTokens = 0>
struct decode_shape {
  static_assert(storage_dtype<KType> && storage_dtype<VType>, "decode_shape: storage dtypes");
  static_assert(Group >= 1 && KDim >= 1 && VDim >= 1, "decode_shape: positive group and dims");
  static_assert(!Latent || VDim <= KDim, "decode_shape: a latent layer's V is part of its K");
  static_assert(PageTokens >= 0, "decode_shape: a page size, or 0 for any");
  using k_type = KType;
  using v_type = std::conditional_t<Latent, KType, VType>;
  static constexpr int group = Group, k_dim = KDim, v_dim = VDim;
  static constexpr bool latent = Latent, windowed = Windowed;
  static constexpr page_layout layout = Layout;
  static constexpr int page_tokens = PageTokens;
  static constexpr std::uint32_t k_vector_bytes =
      static_cast<std::uint32_t>(KDim * KType::bits / 8);
  static constexpr std::uint32_t v_vector_bytes =
      static_cast<std::uint32_t>(VDim * v_type::bits / 8);

  /// Returns whether a layer's geometry is one this shape was made for.
  static constexpr bool fits(const page_geometry& g) {
    return g.k_type == KType::id && g.k_dim == KDim && g.v_dim == VDim && g.latent == Latent &&
           g.layout == Layout && (Latent || g.v_type == VType::id) &&
           (PageTokens == 0 || g.page_tokens == PageTokens);
  }
};

/// The decode shape of a layer spec in a cache of the given paging.
template <class Layer, class Paging>
using decode_shape_of =
    decode_shape<typename Layer::k_type, typename Layer::v_type, Layer::group_size, Layer::k_dim,
                 Layer::v_dim, Layer::is_latent, Paging::layout, Layer::window_value.bounded(),
                 Paging::page_tokens>;

/// The plan's arrays where the kernels read them: the plan's own vectors for the host
/// emulator, copies in device memory for a GPU (kvc::cuda::device_decode_plan).
struct decode_plan_arrays {
  const attention::decode_plan::item* items = nullptr;
  const std::int32_t* first_item = nullptr;  ///< [batch]
  const std::int32_t* splits = nullptr;      ///< [batch]
};

inline decode_plan_arrays plan_arrays_of(const attention::decode_plan& plan) {
  return {plan.items.data(), plan.first_item.data(), plan.splits.data()};
}

/// What one decode launch reads and writes: one layer, one plan. Plain pointers and counts,
/// trivially copyable; every array is the engine's (device memory on a GPU).
struct decode_work {
  const std::byte* memory = nullptr;  ///< page p of the layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};
  float k_scale = 1.0f, v_scale = 1.0f;  ///< fp8 only: the layer's scales
  std::int32_t batch = 0;
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int64_t* seq_lens = nullptr;
  const float* q = nullptr;   ///< batch rows of [q_heads][k_dim], q_stride floats apart
  std::int64_t q_stride = 0;  ///< floats from one sequence's query row to the next
  float scale = 1.0f, softcap = 0.0f;
  const float* sink_logits = nullptr;  ///< [q_heads] or null
  decode_plan_arrays plan{};
  std::int32_t items = 0;
  std::int32_t q_heads = 0;
  std::int32_t blocks_per_page = 1;
  std::int32_t split_sequences = 0;  ///< sequences of more than one split: 0, no merge
  float* partial = nullptr;          ///< plan.workspace_floats() floats, for the splits
  float* out = nullptr;              ///< [batch][q_heads][v_dim]
  float* lse = nullptr;              ///< [batch][q_heads], natural log
};

namespace detail {
KVC_HOST_DEVICE inline float exp_of(float x) { return expf(x); }
}  // namespace detail

/// What a row that is its sequence's only split ends with, from its running maximum m
/// (natural-log units) and sum l: the factor its weighted sums take (v_factor / l, times the
/// share the learned sink leaves) and its lse, as the CPU's finish_row and apply_sink. A row
/// that saw nothing (l = 0) gets 0 and -inf; a NaN stays NaN.
struct finished_row {
  float weight, lse;
};
KVC_HOST_DEVICE inline finished_row finish_row(float m, float l, float v_factor,
                                               const float* sink_logits, int q_head) {
  const attention::row_merge merged = attention::row_merge::of(
      &m, &l, 0, 1, sink_logits != nullptr ? sink_logits + q_head : nullptr);
  const bool seen = l > 0.0f || l != l;
  return {seen ? v_factor / l * merged.share : 0.0f, merged.lse};
}

/// Returns the merge kernel's blocks: one per (sequence, query head).
inline dims3 merge_grid(const decode_work& work) {
  return {static_cast<std::uint32_t>(work.batch), static_cast<std::uint32_t>(work.q_heads), 1};
}

/// Combines a split sequence's partial results (acc, m, l of each split) into out and lse,
/// then adds the sink logit: the CPU's finish_row and apply_sink. A sequence of one split
/// was finished by the decode kernel and is left alone. No shared memory, no barrier.
template <int VDim>
struct merge {
  decode_work work;

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const auto sequence = static_cast<std::int32_t>(ctx.block_idx().x);
    const auto q_head = static_cast<int>(ctx.block_idx().y);
    const std::int32_t parts = work.plan.splits[sequence];
    if (parts <= 1) return;
    const attention::partial_slot partials{work.q_heads, VDim};
    const std::int64_t stride = partials.floats();
    const float* first = work.partial + std::int64_t{work.plan.first_item[sequence]} * stride;
    const float* m = first + partials.m(q_head);
    const float* l = first + partials.l(q_head);
    const attention::row_merge merged = attention::row_merge::of(
        m, l, stride, parts, work.sink_logits != nullptr ? work.sink_logits + q_head : nullptr);
    const std::int64_t row = std::int64_t{sequence} * work.q_heads + q_head;
    for (int d = static_cast<int>(ctx.thread_rank()); d < VDim;
         d += static_cast<int>(ctx.block_threads())) {
      float sum = 0.0f;
      if (merged.total != 0.0f && merged.share != 0.0f)
        for (int p = 0; p < parts; ++p)
          if (l[p * stride] != 0.0f)
            sum += merged.weight(m[p * stride], l[p * stride]) *
                   first[p * stride + partials.acc(q_head) + d];
      work.out[row * VDim + d] = merged.value(sum);
    }
    if (ctx.thread_rank() == 0) work.lse[row] = merged.lse;
  }
};

/// Throws shape_mismatch, naming both, unless the view's layer is one a kernel of Shape was
/// made for: its dtypes, dims, latent, layout and page size, and a window only if Shape masks.
template <class Shape>
void check_kernel_shape(const paged_layer_view& view, const char* who) {
  const page_geometry& geo = view.geometry;
  if (!Shape::fits(geo))
    kvc::detail::fail(
        cache_errc::shape_mismatch, who, ": the kernel was made for another layer (dtypes ",
        dtype_name(Shape::k_type::id), "/", dtype_name(Shape::v_type::id), ", dims ", Shape::k_dim,
        "/", Shape::v_dim, Shape::page_tokens > 0 ? ", pages of " : "",
        Shape::page_tokens > 0 ? std::to_string(Shape::page_tokens) + " tokens" : "",
        "); the view's layer stores ", dtype_name(geo.k_type), "/", dtype_name(geo.v_type),
        " of dims ", geo.k_dim, "/", geo.v_dim, " in pages of ", geo.page_tokens, " tokens");
  kvc::detail::require(Shape::windowed || !view.window.bounded(), cache_errc::shape_mismatch, who,
                       ": the kernel was made for full attention, and the view's layer has a "
                       "window (use the layer's own decode_shape_of)");
}

/// Returns the work of a decode launch, checked: the view's layer must be of Shape (its dtypes,
/// dims, layout, a window only if Shape masks, and q_heads its group times its KV heads), the plan
/// made for the view (as the CPU checks), the page memory 16-byte aligned. Throws cache_error
/// (shape_mismatch, plan_mismatch, invalid_argument) with the reason, before anything is launched.
/// `partial` holds plan.workspace_floats() floats (unused when no sequence is split).
template <class Shape>
decode_work make_decode_work(const attention::decode_plan& plan, decode_plan_arrays arrays,
                             const paged_layer_view& view, attention::query_rows q, float* out,
                             float* lse, const attention::attention_params& params, float* partial,
                             const char* who = "kvc::kernels::decode") {
  const page_geometry& geo = view.geometry;
  check_kernel_shape<Shape>(view, who);
  kvc::detail::require(plan.q_heads == Shape::group * geo.kv_heads, cache_errc::shape_mismatch, who,
                       ": the kernel takes groups of ", Shape::group,
                       " query heads per KV head, the plan ", plan.q_heads, " query heads over ",
                       geo.kv_heads);
  attention::check_plan(plan, view, who);
  kvc::detail::require(reinterpret_cast<std::uintptr_t>(view.memory) % 16 == 0,
                       cache_errc::invalid_argument, who, ": page memory must be 16-byte aligned");
  attention::check_decode_pointers(plan, q.data, out, lse, who);
  attention::check_query_rows(q, plan.batch, plan.q_heads, geo.k_dim, who);
  decode_work w;
  w.memory = view.memory;
  w.geometry = geo;
  w.window = view.window;
  w.k_scale = view.k_scale;
  w.v_scale = view.v_scale;
  w.batch = view.batch;
  w.indptr = view.indptr;
  w.indices = view.indices;
  w.seq_lens = view.seq_lens;
  w.q = q.data;
  w.q_stride = q.row_step(plan.q_heads, geo.k_dim);
  w.scale = params.scale;
  w.softcap = params.softcap;
  w.sink_logits = params.sink_logits;
  w.plan = arrays;
  w.items = static_cast<std::int32_t>(plan.items.size());
  w.q_heads = plan.q_heads;
  w.blocks_per_page = plan.blocks_per_page;
  for (const std::int32_t s : plan.splits) w.split_sequences += s > 1 ? 1 : 0;
  kvc::detail::require(w.split_sequences == 0 || partial != nullptr, cache_errc::invalid_argument,
                       who, ": the plan splits sequences, and no workspace is given");
  w.partial = partial;
  w.out = out;
  w.lse = lse;
  return w;
}

}  // namespace kvc::kernels
