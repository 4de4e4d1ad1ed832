#pragma once
// 8-bit keys and values (fp8 e4m3, fp8 e5m2, int8) into the tensor cores' fp16 B fragments
// straight from raw tiles in shared memory: ldmatrix reads the stored bytes as if they were
// 16-bit values, and each lane converts what it received (numeric::unpack_fp16, exact), so no
// fp16 copy of the tile is written or read. The kernels/decode_mma.hpp decode uses it; the
// idea is FlashInfer's (frag_layout_swizzle_16b_to_8b in flashinfer-ai/flashinfer,
// include/flashinfer/frag_layout_swizzle.cuh), here without shuffles:
//
// - Scores, S = Q K^T, keys stored [key][dim]: an 8 x 8 matrix of ldmatrix is 8 keys x 16
//   bytes, 16 dims; a lane receives, of key lane / 4, the 4 dims 4 p .. 4 p + 3 (p = lane % 4).
//   B wants, of key lane / 4, dims at k = 2 p, 2 p + 1 and 2 p + 8, 2 p + 9. The dims of a
//   mma step may be taken in any order if the query's A fragment takes them in the same, so
//   the kernel stages the query with k = 2 p + e at dim 4 p + e and k = 2 p + 8 + e at dim
//   4 p + 2 + e (raw_query_dim): the four bytes are then B's two registers as they come.
// - Weighted values, O = P V, values stored [key][dim]: ldmatrix.trans of 8 keys x 16 bytes
//   gives a lane, of keys 2 p and 2 p + 1, the dims 2 q and 2 q + 1 (q = lane / 4), bytes
//   (key, dim) = (2p, 2q) (2p, 2q+1) (2p+1, 2q) (2p+1, 2q+1). One byte permute pairs the keys
//   per dim: B's register for dim 2 q and the one for dim 2 q + 1 of the same keys. So a
//   16-dim chunk of V gives two B fragments, one for its even dims (column n: dim 2 n) and
//   one for its odd dims (dim 2 n + 1); the accumulators hold the dims in that order and
//   a lane's four values of a row are the dims 4 p .. 4 p + 3 of the chunk (raw_value_dim).

#include <cstdint>
#include <type_traits>

#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"
#include "kvc/numeric/unpack.hpp"

namespace kvc::kernels {

/// Whether a storage dtype is read raw into fragments: one byte a value, which fp16 holds
/// exactly (fp8 e4m3, fp8 e5m2, int8; int4 is converted into an fp16 tile instead).
template <class Type>
inline constexpr bool raw_fragments_take = Type::bits == 8 && numeric::unpacks_to_fp16<Type>;

/// The dim (within its mma step of 16) of the first of the two values of 32-bit word `word`
/// (0-7) of a query row staged for raw keys: k = 2 w, 2 w + 1 of the A fragment.
KVC_HOST_DEVICE constexpr int raw_query_dim(int word) {
  return word < 4 ? 4 * word : 4 * (word - 4) + 2;
}

/// The fp16 pairs of bytes (A0, A1) and (B0, B1) of a stored word (the first of each pair in
/// the low half), exactly, in the fewest instructions on a GPU: a byte permute into an fp16's
/// top byte for e5m2, a byte permute and one subtraction per pair for int8 (1024 + 128 + value
/// less 1152), a byte permute and cvt.rn.f16x2.e4m3x2 for e4m3. The host takes the bytes in
/// that order and numeric::unpack_fp16 (the same bits; test_device_numerics compares them).
template <class Type, unsigned A0, unsigned A1, unsigned B0, unsigned B1>
KVC_HOST_DEVICE inline mma_b raw_pairs(std::uint32_t word) {
  static_assert(raw_fragments_take<Type>, "kvc::kernels::raw_pairs: fp8 e4m3, fp8 e5m2 or int8");
  mma_b b;
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<Type, fp8_e5m2>) {
    // Selector 4: byte 0 of the second operand, a zero.
    b.reg[0] = __byte_perm(word, 0u, 4u | A0 << 4 | 4u << 8 | A1 << 12);
    b.reg[1] = __byte_perm(word, 0u, 4u | B0 << 4 | 4u << 8 | B1 << 12);
  } else if constexpr (std::is_same_v<Type, int8>) {
    // Selector 4: 0x64, the top byte of 1024 in fp16.
    const std::uint32_t flipped = word ^ 0x80808080u;  // 128 + value
    b.reg[0] = numeric::detail::fp16x2_sub_exact(
        __byte_perm(flipped, 0x64646464u, A0 | 4u << 4 | A1 << 8 | 4u << 12), 0x64806480u);
    b.reg[1] = numeric::detail::fp16x2_sub_exact(
        __byte_perm(flipped, 0x64646464u, B0 | 4u << 4 | B1 << 8 | 4u << 12), 0x64806480u);
  } else {
    constexpr bool in_order = A0 == 0 && A1 == 1 && B0 == 2 && B1 == 3;
    numeric::unpack_fp16<Type>(
        in_order ? word : __byte_perm(word, 0u, A0 | A1 << 4 | B0 << 8 | B1 << 12), b.reg);
  }
#else
  const auto byte = [word](unsigned i) { return word >> (8 * i) & 0xFFu; };
  numeric::unpack_fp16<Type>(byte(A0) | byte(A1) << 8 | byte(B0) << 16 | byte(B1) << 24, b.reg);
#endif
  return b;
}

/// Key n's B fragment for one mma step from the word ldmatrix gave a lane of a raw key tile.
template <class Type>
KVC_HOST_DEVICE inline mma_b raw_key_fragment(std::uint32_t word) {
  return raw_pairs<Type, 0, 1, 2, 3>(word);
}

/// The two B fragments (even dims, odd dims of a 16-dim chunk) of 16 keys from the words
/// ldmatrix.trans gave a lane for keys 0-7 (`low`) and 8-15 (`high`) of a raw value tile.
struct raw_value_fragments {
  mma_b even, odd;
};

/// The bytes (key, dim) of a word are (2p, 2q) (2p, 2q+1) (2p+1, 2q) (2p+1, 2q+1): bytes 0
/// and 2 are dim 2 q's two keys, bytes 1 and 3 dim 2 q + 1's.
template <class Type>
KVC_HOST_DEVICE inline raw_value_fragments raw_value_fragments_of(std::uint32_t low,
                                                                  std::uint32_t high) {
  const mma_b l = raw_pairs<Type, 0, 2, 1, 3>(low), h = raw_pairs<Type, 0, 2, 1, 3>(high);
  return {{{l.reg[0], h.reg[0]}}, {{l.reg[1], h.reg[1]}}};
}

/// The dim (within its 16-dim chunk) of a lane's accumulator value i (0-3; column
/// 2 p + i % 2 of the C fragment, p = lane % 4) in the chunk's even or odd n-block.
KVC_HOST_DEVICE constexpr int raw_value_dim(int pair, int i, bool odd) {
  return 2 * (2 * pair + i % 2) + (odd ? 1 : 0);
}

}  // namespace kvc::kernels
