#pragma once
// The append kernel: writes (and quantizes) one layer's new K/V of an append step into the
// step's pages, byte for byte as kv_cache::write does on the host.
//
//   kernels::append_work work = kernels::make_append_work(view, token_indptr, k, v);
//   simt::append<int8>(work);                   // the emulator; cuda::append(work, stream)
//
// Grid {batch, kv_heads, runs}: a block takes one KV head of one sequence's new tokens, the
// runs of a long step in parallel (append_work::max_new_tokens sizes them). A vector made of
// whole 16-byte pieces is written by a group of lanes, a piece each (stored with one 16-byte
// store: coalesced, every sector whole), several vectors a warp for narrow ones; other vectors
// a warp each, value by value. The block has a multiple of 32 threads. No shared memory, no
// barrier: an int8 / int4 vector's largest magnitude is a butterfly of shuffles over its lanes.
//
// Specialized at compile time on the storage dtypes of K and V and the input dtype (fp32,
// fp16 or bf16, the types kv_input takes): the body has no switch on a dtype.
// Bit-identical to the host for finite inputs; a NaN or an infinity still poisons its
// int8 / int4 vector (a non-finite scale), but the NaN's payload may differ from the host's.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kvc/cache/errors.hpp"
#include "kvc/cache/kv_input.hpp"
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
  /// The most new tokens of one sequence in the step (its longest run): the grid spreads
  /// them over blocks. 0 (unknown): one block per (sequence, KV head) writes them all.
  std::int64_t max_new_tokens = 0;
  std::int32_t layer = -1;               ///< the layer, for messages (-1: not known)
  dtype_id input_type = dtype_id::fp32;  ///< the dtype of k and v (the launchers check it)
};

/// Returns the work of one layer from its view over the step table (cache.view(layer,
/// cache.step_table(plan, layer))), the step's new-token offsets (token_indptr: int64 in the
/// kernel's memory, batch + 1 entries, as append_work::token_indptr) and its K/V inputs
/// (v ignored, and to be given without data, for a latent layer). Allocates nothing. It
/// refuses, with a cache_error and before anything is launched, what kv_cache::write refuses
/// and what only a device append can get wrong:
/// - stale_table: the view is not current (check_current);
/// - invalid_argument: a view of a committed table (a step writes through its step table's
///   view), page memory not 16-byte aligned (the kernel stores 16 bytes at once), a null
///   token_indptr, max_new_tokens outside 0 .. the step's new tokens;
/// - shape_mismatch / dtype_mismatch: K or V not [step tokens][kv_heads][dim] of fp32, fp16 or
///   bf16 (check_kv_input, the messages of write), V given for a latent layer, K and V of two
///   dtypes (the kernel reads one).
/// The launchers (cuda::append, simt::append) then check the kernel's dtypes against the work
/// (check_append_kernel). max_new_tokens: see append_work.
inline append_work make_append_work(const paged_layer_view& view, const std::int64_t* token_indptr,
                                    const kv_input& k, const kv_input& v,
                                    std::int64_t max_new_tokens = 0) {
  constexpr const char* who = "kvc::kernels::make_append_work";  // no string unless it throws
  check_current(view, who);
  const page_geometry& geo = view.geometry;
  kvc::detail::require(view.live_epoch == nullptr || view.new_tokens >= 0,
                       cache_errc::invalid_argument, who,
                       ": the view is of a committed table; a step writes through the view of "
                       "its step table (cache.view(layer, cache.step_table(plan, layer)))");
  kvc::detail::require(
      reinterpret_cast<std::uintptr_t>(view.memory) % 16 == 0, cache_errc::invalid_argument, who,
      ": page memory must be 16-byte aligned (the kernel stores 16 bytes at once)");
  kvc::detail::require(view.batch <= 0 || token_indptr != nullptr, cache_errc::invalid_argument,
                       who, ": null token_indptr");
  // A view made by hand does not know the step's tokens: the inputs' own count is taken.
  const std::int64_t tokens = view.new_tokens >= 0 ? view.new_tokens : k.tokens;
  check_layer_input(k, v, tokens, geo, who, view.layer);
  kvc::detail::require(geo.latent || v.type == k.type, cache_errc::dtype_mismatch, who, ": K is ",
                       dtype_name(k.type), " and V ", dtype_name(v.type),
                       "; the kernel reads both in one input dtype");
  kvc::detail::require(max_new_tokens >= 0 && max_new_tokens <= tokens,
                       cache_errc::invalid_argument, who, ": max_new_tokens ", max_new_tokens,
                       " is outside 0 .. the step's ", tokens, " new tokens");
  append_work w;
  w.memory = const_cast<std::byte*>(view.memory);
  w.geometry = geo;
  w.window = view.window;
  w.k_inverse_scale = 1.0f / view.k_scale;
  w.v_inverse_scale = 1.0f / view.v_scale;
  w.batch = view.batch;
  w.indptr = view.indptr;
  w.indices = view.indices;
  w.seq_lens = view.seq_lens;
  w.token_indptr = token_indptr;
  w.max_new_tokens = max_new_tokens;
  w.layer = view.layer;
  w.input_type = k.type;
  w.k = k.data;
  w.k_token_stride = k.token_step();
  w.k_head_stride = k.head_step();
  if (!geo.latent) {
    w.v = v.data;
    w.v_token_stride = v.token_step();
    w.v_head_stride = v.head_step();
  }
  return w;
}

/// Returns the tokens of one sequence a block of `warps` warps takes at once: a warp writes 32 /
/// lanes vectors together, lanes = the 16-byte pieces of the wider vector (rounded up to a power of
/// two, at most 32); one vector a warp when a vector is not whole 16-byte pieces.
KVC_HOST_DEVICE inline int append_tokens_per_block(const page_geometry& g, unsigned warps) {
  const std::uint32_t k = g.k_vector_bytes, v = g.latent ? 0 : g.v_vector_bytes;
  if (k % 16 != 0 || v % 16 != 0) return static_cast<int>(warps);
  std::uint32_t lanes = 1;
  while (lanes < 32 && lanes * 16 < (k > v ? k : v)) lanes *= 2;
  return static_cast<int>(warps * (32 / lanes));
}

/// Returns the grid of a launch: x a sequence, y a KV head, z a run of the sequence's new tokens
/// (work.max_new_tokens over the tokens a block takes; one run when it is 0, unknown).
template <class Block = block_shape<128>>
dims3 append_grid(const append_work& work) {
  const std::int64_t per_block = append_tokens_per_block(work.geometry, Block::warps);
  const std::int64_t runs = (work.max_new_tokens + per_block - 1) / per_block;
  return {static_cast<unsigned>(work.batch), static_cast<unsigned>(work.geometry.kv_heads),
          static_cast<unsigned>(runs < 1 ? 1 : (runs > 65535 ? 65535 : runs))};
}

template <class KType, class VType = KType, class Input = fp32>
struct append {
  static_assert(storage_dtype<KType> && storage_dtype<VType>, "append: storage dtypes");
  static_assert(std::is_same_v<Input, fp32> || std::is_same_v<Input, fp16> ||
                    std::is_same_v<Input, bf16>,
                "append: the input is fp32, fp16 or bf16");

  append_work work;

  /// Returns whether a layer's geometry stores the dtypes this specialization writes.
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
    // Lanes per vector (a power of two) and vectors per warp: see append_tokens_per_block.
    const auto per_warp = append_tokens_per_block(geo, 1);
    const int lanes = static_cast<int>(warp_size) / per_warp;
    const int lane = static_cast<int>(ctx.lane()) % lanes;
    const int slot = static_cast<int>(ctx.lane()) / lanes;
    const std::int64_t stride = std::int64_t{ctx.grid_dim().z} * warps * per_warp;
    // The loop runs the same number of times in every lane of a warp (the shuffles of a
    // vector's largest magnitude need them all); a lane past the tokens writes nothing.
    for (std::int64_t base = (std::int64_t{ctx.block_idx().z} * warps + ctx.warp()) * per_warp;
         base < tokens; base += stride) {
      const std::int64_t t = base + slot;
      const std::int64_t position = old_length + t;
      // Not a token of the step, or one that slid out within the step: nothing to write.
      bool writes = t < tokens && work.window.keeps(length, position);
      const std::int64_t entry = writes ? kept.entry_of(position / geo.page_tokens) : -1;
      writes = writes && entry >= 0;
      std::byte* page =
          writes ? work.memory + static_cast<std::uint64_t>(work.indices[entries_begin + entry]) *
                                     geo.page_bytes
                 : nullptr;
      const auto token = static_cast<int>(position % geo.page_tokens);
      const std::int64_t row = first_row + (t < tokens ? t : 0);
      store<KType>(ctx, input_vector(work.k, row, head, work.k_token_stride, work.k_head_stride),
                   geo.k_dim, work.k_inverse_scale, page, geo.k_offset(token, head),
                   geo.k_scale_offset(token, head), lane, lanes, writes);
      if (!geo.latent)
        store<VType>(ctx, input_vector(work.v, row, head, work.v_token_stride, work.v_head_stride),
                     geo.v_dim, work.v_inverse_scale, page, geo.v_offset(token, head),
                     geo.v_scale_offset(token, head), lane, lanes, writes);
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

  // The largest magnitude of the vector, in every lane of its `lanes`: magnitudes as their
  // bits (an unsigned order for floats of sign +), as numeric::abs_max for finite values.
  // Every lane of the warp calls it; a lane that writes nothing gives 0.
  template <class Context>
  KVC_HOST_DEVICE static float abs_max(const Context& ctx, const input_bits* in, int dim, int lane,
                                       int lanes, bool writes) {
    std::uint32_t partial = 0;
    for (int i = lane; writes && i < dim; i += lanes) {
      const std::uint32_t bits = numeric::float_bits(load(in, i)) & 0x7FFFFFFFu;
      partial = bits > partial ? bits : partial;
    }
    for (int mask = lanes / 2; mask >= 1; mask /= 2) {
      const std::uint32_t other = ctx.shfl_xor(partial, mask, ctx.warp_members());
      partial = other > partial ? other : partial;
    }
    return numeric::float_from_bits(partial);
  }

  // The stored value of input value i (before packing), for the float formats. An input of
  // the storage's own type is stored as it is: the same bits as the host's decode-then-encode
  // for every value but a NaN, whose payload the host makes canonical.
  template <class Stored>
  KVC_HOST_DEVICE static auto encode(const input_bits* in, int i, float fp8_inverse_scale) {
    using codec = numeric::codec<Stored>;
    if constexpr (std::is_same_v<Stored, Input>)
      return in[i];
    else if constexpr (Stored::scale == scaling::per_layer)
      return codec::encode(numeric::mul_rn(load(in, i), fp8_inverse_scale));
    else
      return codec::encode(load(in, i));
  }

  // One vector of dim values by `lanes` lanes, and its scale for int8 / int4: whole 16-byte
  // pieces (lane l the pieces l, l + lanes, ...) where the vector is made of them, else value
  // by value.
  template <class Stored, class Context>
  KVC_HOST_DEVICE static void store(const Context& ctx, const input_bits* in, int dim,
                                    float fp8_inverse_scale, std::byte* page,
                                    std::uint64_t values_offset, std::uint64_t scale_offset,
                                    int lane, int lanes, bool writes) {
    constexpr bool quantized = Stored::scale == scaling::per_token_head;
    using quantizer = numeric::symmetric_quantizer<std::is_same_v<Stored, int8> ? 127 : 7>;
    float inverse = 1.0f, pre = 1.0f;
    if constexpr (quantized) {
      const float amax = abs_max(ctx, in, dim, lane, lanes, writes);
      inverse = quantizer::inverse_scale_for(amax);
      pre = quantizer::pre_scale_for(amax);
      if (writes && lane == 0)
        *reinterpret_cast<float*>(page + scale_offset) = quantizer::scale_for(amax);
    }
    if (!writes) return;
    std::byte* values = page + values_offset;
    const auto bytes = static_cast<int>(dim * Stored::bits / 8);
    if (bytes % 16 == 0) {
      constexpr int per_piece = 128 / Stored::bits, per_word = 32 / Stored::bits;
      for (int piece = lane; piece < bytes / 16; piece += lanes) {
        std::uint32_t words[4];
        for (int w = 0; w < 4; ++w) {
          std::uint32_t word = 0;
          for (int j = 0; j < per_word; ++j) {
            const int i = piece * per_piece + w * per_word + j;
            std::uint32_t code;
            if constexpr (std::is_same_v<Stored, int8>)
              code = static_cast<std::uint8_t>(quantizer::quantize(load(in, i), inverse, pre));
            else if constexpr (std::is_same_v<Stored, int4>)
              code =
                  static_cast<std::uint32_t>(quantizer::quantize(load(in, i), inverse, pre)) & 0xFu;
            else if constexpr (std::is_same_v<Stored, fp32>)
              code = numeric::float_bits(encode<Stored>(in, i, fp8_inverse_scale));
            else
              code = static_cast<std::uint32_t>(encode<Stored>(in, i, fp8_inverse_scale));
            word |= code << (Stored::bits * j);
          }
          words[w] = word;
        }
        ctx.store_16(values + 16 * piece, vec16{words[0], words[1], words[2], words[3]});
      }
      return;
    }
    if constexpr (std::is_same_v<Stored, int8>) {
      auto* out = reinterpret_cast<std::int8_t*>(values);
      for (int i = lane; i < dim; i += lanes)
        out[i] = static_cast<std::int8_t>(quantizer::quantize(load(in, i), inverse, pre));
    } else if constexpr (std::is_same_v<Stored, int4>) {
      auto* out = reinterpret_cast<std::uint8_t*>(values);
      for (int j = lane; j < dim / 2; j += lanes)
        out[j] = numeric::pack_int4(quantizer::quantize(load(in, 2 * j), inverse, pre),
                                    quantizer::quantize(load(in, 2 * j + 1), inverse, pre));
    } else {
      auto* out = reinterpret_cast<typename numeric::codec<Stored>::stored*>(values);
      for (int i = lane; i < dim; i += lanes) out[i] = encode<Stored>(in, i, fp8_inverse_scale);
    }
  }
};

/// Throws dtype_mismatch unless the append kernel of these dtypes is the one the work needs:
/// it stores the layer's K and V dtypes and reads the work's input dtype. The launchers call
/// it before they launch (a kernel of other dtypes would store garbage).
template <class KType, class VType, class Input>
void check_append_kernel(const append_work& work, const char* who) {
  const page_geometry& g = work.geometry;
  kvc::detail::require(append<KType, VType, Input>::fits(g), cache_errc::dtype_mismatch, who,
                       ": the kernel stores ", dtype_name(KType::id), "/", dtype_name(VType::id),
                       ", layer ", work.layer, " stores ", dtype_name(g.k_type), "/",
                       dtype_name(g.latent ? g.k_type : g.v_type));
  kvc::detail::require(work.input_type == Input::id, cache_errc::dtype_mismatch, who,
                       ": the kernel reads ", dtype_name(Input::id), " input, the work's K/V are ",
                       dtype_name(work.input_type));
}

}  // namespace kvc::kernels
