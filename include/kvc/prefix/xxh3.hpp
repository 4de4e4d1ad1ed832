#pragma once
// XXH3-128, the default hash of prefix reuse's page keys: xxHash 0.8.2 (BSD 2-Clause),
// vendored unchanged in kvc/third_party/xxhash.h and included only here, with
// XXH_INLINE_ALL (its functions static and renamed: an engine's own xxHash does not clash)
// and its warnings silenced (it is C, and kvc headers compile clean under strict flags).
//
//   kvc::prefix::xxh3_128 hash;                 // a streaming state, no allocation
//   hash.update(bytes);  hash.update(more);
//   const kvc::prefix::hash128 h = hash.digest();   // XXH3_128bits of all the bytes
//   hash.reset();                               // for the next input

#include <cstddef>
#include <cstdint>
#include <span>

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Weverything"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wcast-qual"
#endif
#if !defined(XXH_INLINE_ALL)
#define XXH_INLINE_ALL
#define KVC_XXH_INLINE_ALL_DEFINED
#endif
// At most AVX2: GCC 12 reports a false "may be used uninitialized" in the AVX-512 path under
// -march=native (GCC bug 105593), and keys hash records of a few hundred bytes.
#if !defined(XXH_VECTOR) && defined(__AVX512F__)
#define XXH_VECTOR 2
#define KVC_XXH_VECTOR_DEFINED
#endif
#include "kvc/third_party/xxhash.h"
#if defined(KVC_XXH_INLINE_ALL_DEFINED)
#undef XXH_INLINE_ALL
#undef KVC_XXH_INLINE_ALL_DEFINED
#endif
#if defined(KVC_XXH_VECTOR_DEFINED)
#undef XXH_VECTOR
#undef KVC_XXH_VECTOR_DEFINED
#endif
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace kvc::prefix {

/// A 128-bit hash: XXH3's low and high 64 bits.
struct hash128 {
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  friend constexpr bool operator==(const hash128&, const hash128&) = default;
};

/// XXH3-128 over bytes given in any number of pieces: the same hash as XXH3_128bits of the
/// pieces joined (seed 0, the default secret).
class xxh3_128 {
 public:
  xxh3_128() { reset(); }

  /// Starts a new input.
  void reset() {
    state_.seed = 0;  // XXH3_INITSTATE: a state not made by XXH3_createState
    XXH3_128bits_reset(&state_);
  }
  /// Adds bytes to the input.
  void update(std::span<const std::byte> bytes) {
    XXH3_128bits_update(&state_, bytes.data(), bytes.size());
  }
  /// Returns the hash of the input so far (the state is unchanged).
  hash128 digest() const {
    const XXH128_hash_t h = XXH3_128bits_digest(&state_);
    return {h.low64, h.high64};
  }

 private:
  XXH3_state_t state_;
};

}  // namespace kvc::prefix
