#pragma once
// How the tensor-core kernels take K and V stored in a dtype the tensor cores do not read
// (kernels/extend_mma.hpp: fp8 e4m3, fp8 e5m2, int8, int4; kernels/decode_mma.hpp: int4, the
// others it reads raw into fragments, kernels/raw_fragments.hpp): a tile of
// raw vectors lands in shared memory as stored, and the block converts it into a tile of fp16
// rows, exactly (numeric::unpack_fp16), which the fragment loads read as they read a 16-bit
// tile. Scales stay apart: the kernels apply them to the scores and the weights.
//
//   const auto tile = kernels::convert_staged<Shape, tiling, threads>(ctx, base, shared);
//   if constexpr (kernels::converts_tiles<tiling>) ctx.sync();  // before a warp reads it

#include <cstddef>
#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/simt_shape.hpp"
#include "kvc/numeric/unpack.hpp"

namespace kvc::kernels {

/// Converts `Keys` raw vectors of VectorBytes bytes (rows back to back at `raw`) into fp16
/// rows of `stride` values at `tile`. Each step of a thread takes the raw bytes of 8 values (8
/// bytes of fp8 or int8, 4 of int4) and stores their 16 fp16 bytes at once, consecutive
/// threads taking consecutive pieces: a warp's loads and stores are contiguous runs of shared
/// memory, free of bank conflicts. The caller meets the block at a barrier before any thread
/// reads the tile.
template <class Type, std::uint32_t VectorBytes, int Keys, int Threads, class Context>
KVC_HOST_DEVICE inline void convert_tile(const Context& ctx, const std::byte* raw, std::byte* tile,
                                         int stride) {
  constexpr int raw_bytes = Type::bits;  // of 8 values
  static_assert(raw_bytes == 4 || raw_bytes == 8,
                "kvc::kernels::convert_tile: an 8-bit or 4-bit storage dtype");
  static_assert(VectorBytes % 16 == 0, "kvc::kernels::convert_tile: whole 16-byte pieces");
  constexpr int pieces = static_cast<int>(VectorBytes) / raw_bytes;  // of a row
  for (int i = static_cast<int>(ctx.thread_rank()); i < Keys * pieces; i += Threads) {
    const int key = i / pieces, piece = i % pieces;
    const std::byte* from = raw + std::size_t{static_cast<unsigned>(i)} * raw_bytes;
    std::uint32_t pairs[4];
    if constexpr (raw_bytes == 8) {
      const vec8 loaded = *reinterpret_cast<const vec8*>(from);
      numeric::unpack_fp16<Type>(loaded.x, pairs);
      numeric::unpack_fp16<Type>(loaded.y, pairs + 2);
    } else {
      numeric::unpack_fp16<Type>(*reinterpret_cast<const std::uint32_t*>(from), pairs);
    }
    const std::size_t value =
        std::size_t{static_cast<unsigned>(key)} * static_cast<unsigned>(stride) +
        std::size_t{static_cast<unsigned>(piece)} * 8;
    *reinterpret_cast<vec16*>(tile + value * 2) = vec16{pairs[0], pairs[1], pairs[2], pairs[3]};
  }
}

/// A staged tile buffer as the fragment loads read it: per slot whether it holds a token and
/// its int8 / int4 scales, and the K and V rows of 16-bit values (the buffer's own for fp16
/// and bf16, the converted tiles for the others; a latent's V is its K).
struct staged_tile {
  const std::int32_t* held;
  const float* k_scales;
  const float* v_scales;
  const std::uint16_t* k;
  const std::uint16_t* v;
};

/// Whether a tensor-core kernel's Tiling converts K or V (then the block meets at a barrier
/// between convert_staged and the first read of the tiles).
template <class Tiling>
inline constexpr bool converts_tiles = !Tiling::k_stored || !Tiling::v_stored;

/// Converts the raw K and V of the buffer at `base` that Tiling does not stage as the tensor
/// cores read them into its converted tiles (at `shared` + Tiling::k_converted and
/// v_converted), and returns the buffer's tiles. Tiling names the buffer's parts (held,
/// k_scales, v_scales, k_values, v_values), whether K and V are read as stored (k_stored,
/// v_stored), the converted tiles and their rows' strides (k_stride, v_stride) and the keys.
template <class Shape, class Tiling, int Threads, class Context>
KVC_HOST_DEVICE inline staged_tile convert_staged(const Context& ctx, const std::byte* base,
                                                  std::byte* shared) {
  if constexpr (!Tiling::k_stored)
    convert_tile<typename Shape::k_type, Shape::k_vector_bytes, Tiling::keys, Threads>(
        ctx, base + Tiling::k_values, shared + Tiling::k_converted, Tiling::k_stride);
  if constexpr (!Tiling::v_stored && !Shape::latent)
    convert_tile<typename Shape::v_type, Shape::v_vector_bytes, Tiling::keys, Threads>(
        ctx, base + Tiling::v_values, shared + Tiling::v_converted, Tiling::v_stride);
  const std::byte* k = Tiling::k_stored ? base + Tiling::k_values : shared + Tiling::k_converted;
  const std::byte* v = Shape::latent      ? k
                       : Tiling::v_stored ? base + Tiling::v_values
                                          : shared + Tiling::v_converted;
  return {
      reinterpret_cast<const std::int32_t*>(base + Tiling::held),
      reinterpret_cast<const float*>(base + Tiling::k_scales),
      reinterpret_cast<const float*>(base + (Shape::latent ? Tiling::k_scales : Tiling::v_scales)),
      reinterpret_cast<const std::uint16_t*>(k), reinterpret_cast<const std::uint16_t*>(v)};
}

}  // namespace kvc::kernels
