#pragma once
// The append kernel: writes (and quantizes) one layer's new K/V of an append step into the
// step's pages, byte for byte as kv_cache::write does on the host.
//
//   kernels::append_work work = kernels::make_append_work(view, token_indptr, k, v);
//   simt::launch(kernels::append_grid(work), kernels::block_shape<64>{}, 0,
//                kernels::append<int8>{work});              // or cuda::append(..., stream)
//
// One block per (sequence, KV head): grid {batch, kv_heads, 1}; the block's warps take the
// sequence's new tokens in turn (warp w: tokens w, w + warps, ...), one warp per (token, head)
// vector, a lane per value (per byte for int4). The block has a multiple of 32 threads. No
// shared memory, no barrier: an int8 / int4 vector's largest magnitude is a warp_max.
//
// Specialized at compile time on the storage dtypes of K and V and the input dtype (fp32,
// fp16 or bf16, the types kv_input takes): the body has no switch on a dtype.
// Bit-identical to the host for finite inputs; a NaN or an infinity still poisons its
// int8 / int4 vector (a non-finite scale), but the NaN's payload may differ from the host's.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/cache/page_table.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/bits.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/window.hpp"

namespace kvc::kernels {

/// What one launch of the append kernel writes: one layer of an open step. Plain pointers and
/// counts, trivially copyable; every array is the engine's (device memory on a GPU), built
/// once per step (make_append_work allocates nothing).
struct append_work {
  std::byte* memory = nullptr;  ///< page p of the layer starts at memory + p * page_bytes
  page_geometry geometry{};
  window_shape window{};                  ///< the layer's kept window (positions it drops: skipped)
  float k_inverse_scale = 1.0f;           ///< fp8 only: 1 / the layer's k_scale
  float v_inverse_scale = 1.0f;           ///< fp8 only: 1 / the layer's v_scale
  std::int32_t batch = 0;                 ///< sequences of the step
  const std::int32_t* indptr = nullptr;   ///< the step table's CSR: batch + 1 entries
  const std::int32_t* indices = nullptr;  ///< pages of the step table
  const std::int64_t* seq_lens = nullptr;  ///< lengths after the step
  /// batch + 1 entries: sequence i's new tokens are the input rows token_indptr[i] ..
  /// token_indptr[i + 1], its last token_indptr[i + 1] - token_indptr[i] positions.
  const std::int64_t* token_indptr = nullptr;
  const void* k = nullptr;  ///< [token][kv_head][k_dim] of the input dtype
  std::int64_t k_token_stride = 0, k_head_stride = 0;  ///< in elements
  const void* v = nullptr;  ///< [token][kv_head][v_dim]; unused for a latent layer
  std::int64_t v_token_stride = 0, v_head_stride = 0;
};

/// The work of one layer from its view over the step table (cache.view(layer,
/// cache.step_table(plan, layer))), the step's new-token offsets, and its K/V inputs (a type
/// with data, token_step() and head_step(), as kv_input; v ignored for a latent layer). The
/// view's memory is the cache's page memory, which the kernel writes.
template <class Input>
append_work make_append_work(const paged_layer_view& view, const std::int64_t* token_indptr,
                             const Input& k, const Input& v) {
  append_work w;
  w.memory = const_cast<std::byte*>(view.memory);
  w.geometry = view.geometry;
  w.window = view.window;
  w.k_inverse_scale = 1.0f / view.k_scale;
  w.v_inverse_scale = 1.0f / view.v_scale;
  w.batch = view.batch;
  w.indptr = view.indptr;
  w.indices = view.indices;
  w.seq_lens = view.seq_lens;
  w.token_indptr = token_indptr;
  w.k = k.data;
  w.k_token_stride = k.token_step();
  w.k_head_stride = k.head_step();
  if (!view.geometry.latent) {
    w.v = v.data;
    w.v_token_stride = v.token_step();
    w.v_head_stride = v.head_step();
  }
  return w;
}

/// The grid of a launch: one block per (sequence, KV head).
inline dims3 append_grid(const append_work& work) {
  return {static_cast<unsigned>(work.batch), static_cast<unsigned>(work.geometry.kv_heads), 1};
}

template <class KType, class VType = KType, class Input = fp32>
struct append {
  static_assert(storage_dtype<KType> && storage_dtype<VType>, "append: storage dtypes");
  static_assert(std::is_same_v<Input, fp32> || std::is_same_v<Input, fp16> ||
                    std::is_same_v<Input, bf16>,
                "append: the input is fp32, fp16 or bf16");

  append_work work;

  /// Whether a layer's geometry stores the dtypes this specialization writes.
  static constexpr bool fits(const page_geometry& g) {
    return g.k_type == KType::id && (g.latent || g.v_type == VType::id);
  }

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const auto sequence = static_cast<std::int32_t>(ctx.block_idx().x);
    const auto head = static_cast<int>(ctx.block_idx().y);
    const page_geometry& geo = work.geometry;
    const std::int64_t first_row = work.token_indptr[sequence];
    const std::int64_t tokens = work.token_indptr[sequence + 1] - first_row;
    const std::int64_t length = work.seq_lens[sequence];
    const std::int64_t old_length = length - tokens;
    const std::int32_t entries_begin = work.indptr[sequence];
    const auto kept = work.window.pages_listed(length, geo.page_tokens,
                                               work.indptr[sequence + 1] - entries_begin);
    const std::int64_t warps = ctx.block_threads() / warp_size;
    for (std::int64_t t = ctx.warp(); t < tokens; t += warps) {
      const std::int64_t position = old_length + t;
      if (!work.window.keeps(length, position)) continue;  // slid out within the step
      const std::int64_t entry = kept.entry_of(position / geo.page_tokens);
      if (entry < 0) continue;
      std::byte* page =
          work.memory +
          static_cast<std::uint64_t>(work.indices[entries_begin + entry]) * geo.page_bytes;
      const auto token = static_cast<int>(position % geo.page_tokens);
      const std::int64_t row = first_row + t;
      store<KType>(ctx, input_vector(work.k, row, head, work.k_token_stride, work.k_head_stride),
                   geo.k_dim, work.k_inverse_scale, page + geo.k_offset(token, head),
                   page + geo.k_scale_offset(token, head));
      if (!geo.latent)
        store<VType>(ctx, input_vector(work.v, row, head, work.v_token_stride, work.v_head_stride),
                     geo.v_dim, work.v_inverse_scale, page + geo.v_offset(token, head),
                     page + geo.v_scale_offset(token, head));
    }
  }

 private:
  using input_bits = typename numeric::codec<Input>::stored;

  KVC_HOST_DEVICE static const input_bits* input_vector(const void* data, std::int64_t row,
                                                        int head, std::int64_t token_stride,
                                                        std::int64_t head_stride) {
    return static_cast<const input_bits*>(data) + row * token_stride + head * head_stride;
  }

  KVC_HOST_DEVICE static float load(const input_bits* in, int i) {
    return numeric::codec<Input>::decode(in[i]);
  }

  // The largest magnitude of the vector, in every lane of the warp: magnitudes as their
  // bits (an unsigned order for floats of sign +), as numeric::abs_max for finite values.
  template <class Context>
  KVC_HOST_DEVICE static float abs_max(const Context& ctx, const input_bits* in, int dim) {
    std::uint32_t partial = 0;
    for (int i = static_cast<int>(ctx.lane()); i < dim; i += static_cast<int>(warp_size)) {
      const std::uint32_t bits = numeric::float_bits(load(in, i)) & 0x7FFFFFFFu;
      partial = bits > partial ? bits : partial;
    }
    return numeric::float_from_bits(ctx.warp_max(partial));
  }

  // One vector of dim values, the warp's lanes in turn; the vector's scale for int8 / int4.
  template <class Stored, class Context>
  KVC_HOST_DEVICE static void store(const Context& ctx, const input_bits* in, int dim,
                                    float fp8_inverse_scale, std::byte* values, std::byte* scale) {
    const auto lane = static_cast<int>(ctx.lane());
    constexpr auto step = static_cast<int>(warp_size);
    if constexpr (Stored::scale == scaling::per_token_head) {
      using quantizer = numeric::symmetric_quantizer<std::is_same_v<Stored, int8> ? 127 : 7>;
      const float amax = abs_max(ctx, in, dim);
      const float inverse = quantizer::inverse_scale_for(amax);
      const float pre = quantizer::pre_scale_for(amax);
      if constexpr (std::is_same_v<Stored, int8>) {
        auto* out = reinterpret_cast<std::int8_t*>(values);
        for (int i = lane; i < dim; i += step)
          out[i] = static_cast<std::int8_t>(quantizer::quantize(load(in, i), inverse, pre));
      } else {
        auto* out = reinterpret_cast<std::uint8_t*>(values);
        for (int j = lane; j < dim / 2; j += step)
          out[j] = numeric::pack_int4(quantizer::quantize(load(in, 2 * j), inverse, pre),
                                      quantizer::quantize(load(in, 2 * j + 1), inverse, pre));
      }
      if (lane == 0) *reinterpret_cast<float*>(scale) = quantizer::scale_for(amax);
    } else {
      using codec = numeric::codec<Stored>;
      auto* out = reinterpret_cast<typename codec::stored*>(values);
      for (int i = lane; i < dim; i += step) {
        if constexpr (Stored::scale == scaling::per_layer)
          out[i] = codec::encode(numeric::mul_rn(load(in, i), fp8_inverse_scale));
        else
          out[i] = codec::encode(load(in, i));
      }
    }
  }
};

}  // namespace kvc::kernels
