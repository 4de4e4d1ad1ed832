#pragma once
// Attention variants that change the math but not the cache: a logit soft-cap, learned
// per-head sink logits, and the softmax scale. Values are rationals because
// floating-point template arguments are not portable to every compiler we support.

#include "kvc/policy/family.hpp"

namespace kvc {

namespace detail {
// Newton's iteration, good to the last bit of a double for the positive inputs used here.
constexpr double constexpr_sqrt(double x) {
  if (x <= 0) return 0;
  double r = x > 1 ? x : 1;
  for (int i = 0; i < 200; ++i) {
    const double next = 0.5 * (r + x / r);
    if (next == r) break;
    r = next;
  }
  return r;
}
}  // namespace detail

namespace detail {
template <int Num, int Den>
struct logit_softcap_checks {
  static_assert(Num > 0 && Den > 0, "kvc::logit_softcap<Num, Den>: the cap must be positive");
};
}  // namespace detail

/// Gemma 2 / Grok: logits become cap * tanh(logit / cap), with cap = Num / Den.
template <int Num, int Den = 1>
struct logit_softcap {
  static_assert(sizeof(detail::logit_softcap_checks<Num, Den>) > 0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::logit_softcap;
  static constexpr bool enabled = true;
  static constexpr double cap = static_cast<double>(Num) / Den;
};
/// The default: logits are not capped.
struct no_softcap {
  static constexpr policy_family family = policy_family::logit_softcap;
  static constexpr bool enabled = false;
  static constexpr double cap = 0;
};

/// gpt-oss: every query head has a learned sink logit that joins the softmax
/// denominator without contributing a value. The logits are weights, given at run time.
struct learned_sinks {
  static constexpr policy_family family = policy_family::sink_logits;
  static constexpr bool enabled = true;
};
struct no_sinks {
  static constexpr policy_family family = policy_family::sink_logits;
  static constexpr bool enabled = false;
};

namespace detail {
template <int Num, int Den>
struct softmax_scale_checks {
  static_assert(Num > 0 && Den > 0, "kvc::softmax_scale<Num, Den>: the scale must be positive");
};
}  // namespace detail

/// Softmax scale Num / Den.
template <int Num, int Den = 1>
struct softmax_scale {
  static_assert(sizeof(detail::softmax_scale_checks<Num, Den>) > 0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::softmax_scale;
  static constexpr bool is_default = false;
  static constexpr double value(int /*k_dim*/) { return static_cast<double>(Num) / Den; }
};
namespace detail {
template <int N>
struct inv_sqrt_scale_checks {
  static_assert(N > 0, "kvc::inv_sqrt_scale<N>: N must be positive");
};
}  // namespace detail

/// Softmax scale 1 / sqrt(N): Gemma's query_pre_attn_scalar, or MLA's qk head dim.
template <int N>
struct inv_sqrt_scale {
  static_assert(sizeof(detail::inv_sqrt_scale_checks<N>) > 0);  // the checks, kept apart
  static constexpr policy_family family = policy_family::softmax_scale;
  static constexpr bool is_default = false;
  static constexpr double value(int /*k_dim*/) { return 1.0 / detail::constexpr_sqrt(N); }
};
/// The default: 1 / sqrt(key dim of the cache).
struct default_scale {
  static constexpr policy_family family = policy_family::softmax_scale;
  static constexpr bool is_default = true;
  static constexpr double value(int k_dim) { return 1.0 / detail::constexpr_sqrt(k_dim); }
};

}  // namespace kvc
