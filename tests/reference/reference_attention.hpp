#pragma once
// The reference backend, for tests only: naive attention in double precision with the
// scores materialized. Every other backend is checked against it.

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kvc/cache/kv_cache.hpp"

namespace kvc::testing {

struct reference_result {
  std::vector<double> out;
  double lse = -std::numeric_limits<double>::infinity();
};

/// One query row over the given keys and values (all of them visible).
inline reference_result reference_attend(const float* q, int k_dim, int v_dim,
                                         const std::vector<std::vector<float>>& keys,
                                         const std::vector<std::vector<float>>& values,
                                         double scale, double softcap, const double* sink) {
  std::vector<double> scores;
  for (const auto& k : keys) {
    double dot = 0;
    for (int d = 0; d < k_dim; ++d)
      dot += static_cast<double>(q[d]) * k[static_cast<std::size_t>(d)];
    double s = dot * scale;
    if (softcap > 0) s = softcap * std::tanh(s / softcap);
    scores.push_back(s);
  }
  reference_result r;
  r.out.assign(static_cast<std::size_t>(v_dim), 0.0);
  double most = sink != nullptr ? *sink : -std::numeric_limits<double>::infinity();
  bool nan = false;
  for (double s : scores) {
    nan |= std::isnan(s);
    most = s > most ? s : most;
  }
  if (nan) {
    for (double& o : r.out) o = std::numeric_limits<double>::quiet_NaN();
    r.lse = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  if (scores.empty() && sink == nullptr) return r;
  double total = sink != nullptr ? std::exp(*sink - most) : 0.0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const double w = std::exp(scores[i] - most);
    total += w;
    for (int d = 0; d < v_dim; ++d)
      r.out[static_cast<std::size_t>(d)] += w * values[i][static_cast<std::size_t>(d)];
  }
  for (double& o : r.out) o /= total;
  r.lse = most + std::log(total);
  return r;
}

/// The keys and values a query at `position` sees in one layer of a cache, dequantized by
/// the cache itself, for one KV head.
template <class Cache>
void visible_kv(const Cache& cache, sequence_id sequence, int layer, int kv_head,
                std::int64_t position, const window_shape& window, int kv_heads, int k_dim,
                int v_dim, std::vector<std::vector<float>>& keys,
                std::vector<std::vector<float>>& values) {
  keys.clear();
  values.clear();
  std::vector<float> k(static_cast<std::size_t>(kv_heads * k_dim)),
      v(static_cast<std::size_t>(kv_heads * v_dim));
  for (std::int64_t p = 0; p <= position; ++p) {
    if (!window.visible(position, p)) continue;
    if (!cache.read(sequence, layer, p, k.data(), v.data())) continue;
    keys.emplace_back(k.begin() + kv_head * k_dim, k.begin() + (kv_head + 1) * k_dim);
    values.emplace_back(v.begin() + kv_head * v_dim, v.begin() + (kv_head + 1) * v_dim);
  }
}

}  // namespace kvc::testing
