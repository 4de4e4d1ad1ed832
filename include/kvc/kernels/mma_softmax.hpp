#pragma once
// The online softmax of 16 query rows (an mma row tile of a warp) over tiles of scores held as
// mma C fragments (kernels/mma.hpp), shared by the tensor-core kernels (kernels/extend_mma.hpp,
// kernels/decode_mma.hpp). Lane (quad, pair) holds rows quad and quad + 8; a row's 4 lanes
// agree on its maximum through two shuffles. Scores are in log2 units (the softmax scale and
// log2 e folded into the query), so weights are exp2 (ex2.approx on a GPU).
//
//   mma_softmax<KeyBlocks> softmax;
//   per tile: masks on the scores, then
//     softmax.cap<SoftCapped>(scores, softcap_log2, inverse);
//     const mma_softmax_step step = softmax.next(ctx, scores);    // new maxima
//     step.rescale(ctx, acc);  // O *= e^(m_old - m_new), skipped when no maximum moved
//     softmax.weights<input>(scores, step, pair, value_scale, p);  // P, as A fragments
//   softmax.finish(ctx);                                          // l summed over the quad

#include <cmath>
#include <cstddef>

#include "kvc/attention/online_softmax.hpp"
#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"

namespace kvc::kernels {

namespace detail {
// tanh x as 1 - 2 / (e^(2 x) + 1), on a GPU ex2.approx and a fast division: 5 instructions and
// two registers a score where tanhf takes about 20 and more (a soft-capped tile of 32 rows a
// warp would spill). Absolute error a few units in the last place of 1; +-1 past |x| ~ 9,
// NaN stays NaN (tests/attention_check.hpp allows 2^-20).
KVC_HOST_DEVICE inline float tanh_fast(float x) {
  const float e = exp2_approx(2.8853900817779268f * x);  // 2 log2(e) x
#if defined(__CUDA_ARCH__)
  return 1.0f - __fdividef(2.0f, e + 1.0f);
#else
  return 1.0f - 2.0f / (e + 1.0f);
#endif
}
}  // namespace detail

/// What a tile changes in its rows: each row's factor for its accumulators and what its scores
/// are taken from (its new maximum, or 0 for a row that has seen no key yet, so that its masked
/// scores weigh 0).
struct mma_softmax_step {
  float factor[2], offset[2];

  /// Rescales a warp's accumulators of the rows, unless no row of the warp moved its maximum
  /// (a factor of 1 changes nothing; past the first tiles of a long context, most tiles). Every
  /// lane of the warp calls it (a vote).
  template <class Context, std::size_t Blocks>
  KVC_HOST_DEVICE void rescale(const Context& ctx, mma_c (&acc)[Blocks]) const {
    if (!ctx.warp_any(factor[0] != 1.0f || factor[1] != 1.0f)) return;
    for (std::size_t d = 0; d < Blocks; ++d)
      for (int i = 0; i < 4; ++i) acc[d].reg[i] *= factor[i / 2];
  }
};

template <std::size_t KeyBlocks>
struct mma_softmax {
  static_assert(KeyBlocks % 2 == 0, "kvc::kernels::mma_softmax: whole mma k steps of keys");
  float m[2] = {attention::negative_infinity, attention::negative_infinity};  ///< log2 units
  float l[2] = {0.0f, 0.0f};  ///< this lane's share of the row sums (finish() adds the quad's)

  /// The soft-cap c' tanh(s / c') (c' = c log2 e, inverse = ln 2 / c), masked scores left -inf.
  template <bool SoftCapped>
  KVC_HOST_DEVICE static void cap(mma_c (&scores)[KeyBlocks], float softcap, float inverse) {
    if constexpr (SoftCapped)
      for (std::size_t n = 0; n < KeyBlocks; ++n)
        for (float& s : scores[n].reg)
          if (s != attention::negative_infinity) s = softcap * detail::tanh_fast(s * inverse);
  }

  /// Takes a tile's maxima into the rows' running ones; l is rescaled.
  template <class Context>
  KVC_HOST_DEVICE mma_softmax_step next(const Context& ctx, const mma_c (&scores)[KeyBlocks]) {
    float most[2] = {attention::negative_infinity, attention::negative_infinity};
    for (std::size_t n = 0; n < KeyBlocks; ++n)
      for (int i = 0; i < 4; ++i)
        most[i / 2] = scores[n].reg[i] > most[i / 2] ? scores[n].reg[i] : most[i / 2];
    mma_softmax_step step;
    for (int h = 0; h < 2; ++h) {
      most[h] = fmaxf(most[h], ctx.shfl_xor(most[h], 1));
      most[h] = fmaxf(most[h], ctx.shfl_xor(most[h], 2));
      const float new_most = most[h] > m[h] ? most[h] : m[h];
      step.offset[h] = new_most == attention::negative_infinity ? 0.0f : new_most;
      step.factor[h] = detail::exp2_approx(m[h] - step.offset[h]);  // 0 while m is -inf
      m[h] = new_most;
      l[h] *= step.factor[h];
    }
    return step;
  }

  /// The weights (a masked score weighs 0; a NaN stays NaN) into the sums, then times
  /// value_scale(slot) (the int8 / int4 values' scales; 1 otherwise), rounded to Input as the A
  /// fragments of P V.
  template <mma_input Input, class ValueScale>
  KVC_HOST_DEVICE void weights(const mma_c (&scores)[KeyBlocks], const mma_softmax_step& step,
                               int pair, const ValueScale& value_scale, mma_a (&p)[KeyBlocks / 2]) {
    mma_c w[KeyBlocks];
    for (std::size_t n = 0; n < KeyBlocks; ++n) w[n] = scores[n];
    exponentiate(w, step, pair, value_scale);
    pack<Input>(w, p);
  }
  /// weights() in two steps: the weights in place of the scores (into the sums, times
  /// value_scale), then rounded into the A fragments; for a kernel whose fragments are still
  /// read by a matrix product in flight while it exponentiates.
  template <class ValueScale>
  KVC_HOST_DEVICE void exponentiate(mma_c (&scores)[KeyBlocks], const mma_softmax_step& step,
                                    int pair, const ValueScale& value_scale) {
    for (std::size_t n = 0; n < KeyBlocks; ++n)
      for (int i = 0; i < 4; ++i) {
        float w = detail::exp2_approx(scores[n].reg[i] - step.offset[i / 2]);
        l[i / 2] += w;
        scores[n].reg[i] = w * value_scale(static_cast<int>(n) * 8 + 2 * pair + i % 2);
      }
  }
  template <mma_input Input>
  KVC_HOST_DEVICE static void pack(const mma_c (&weights)[KeyBlocks], mma_a (&p)[KeyBlocks / 2]) {
    for (std::size_t n = 0; n < KeyBlocks; ++n) {
      p[n / 2].reg[2 * (n % 2)] = mma_pack<Input>(weights[n].reg[0], weights[n].reg[1]);
      p[n / 2].reg[2 * (n % 2) + 1] = mma_pack<Input>(weights[n].reg[2], weights[n].reg[3]);
    }
  }

  /// Adds each row's sum over its 4 lanes.
  template <class Context>
  KVC_HOST_DEVICE void finish(const Context& ctx) {
    for (int h = 0; h < 2; ++h) {
      l[h] += ctx.shfl_xor(l[h], 1);
      l[h] += ctx.shfl_xor(l[h], 2);
    }
  }
};

/// The value scale of a tile with none: every weight as it is.
struct unit_value_scale {
  KVC_HOST_DEVICE constexpr float operator()(int) const { return 1.0f; }
};

}  // namespace kvc::kernels
