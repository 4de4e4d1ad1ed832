// The float block kernels of CPU attention (block_kernels.hpp) against double precision, for
// every row count a tile split can leave (1 to 20, and the prefill and MLA sizes), every
// block length and several dims: the vector paths split rows and keys into tiles, and a
// remainder that no larger test happens to reach must still be right.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kvc/backend/cpu/attend.hpp"

using namespace kvc;
using kvc::cpu::key_block;

namespace {

struct block_data {
  int rows, tokens, k_dim, v_dim;
  std::vector<float> q, keys, values, weights;

  block_data(int rows_, int tokens_, int k_dim_, int v_dim_, std::uint32_t seed)
      : rows(rows_), tokens(tokens_), k_dim(k_dim_), v_dim(v_dim_) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    q.resize(static_cast<std::size_t>(rows * k_dim));
    // Keys and values sit in blocks a stride apart, with NaN past `tokens`: a kernel must not
    // let a row beyond the block reach a score or an output.
    keys.assign(static_cast<std::size_t>(key_block * (k_dim + 8)), std::nanf(""));
    values.assign(static_cast<std::size_t>(key_block * (v_dim + 8)), std::nanf(""));
    weights.assign(static_cast<std::size_t>(rows) * key_block, 0.0f);
    for (float& x : q) x = normal(rng);
    for (int t = 0; t < tokens; ++t) {
      for (int d = 0; d < k_dim; ++d)
        keys[static_cast<std::size_t>(t * (k_dim + 8) + d)] = normal(rng);
      for (int d = 0; d < v_dim; ++d)
        values[static_cast<std::size_t>(t * (v_dim + 8) + d)] = normal(rng);
    }
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (int r = 0; r < rows; ++r)
      for (int t = 0; t < tokens; ++t)
        weights[static_cast<std::size_t>(r * key_block + t)] = unit(rng);
  }
  double score(int r, int t) const {
    double dot = 0;
    for (int d = 0; d < k_dim; ++d)
      dot += static_cast<double>(q[static_cast<std::size_t>(r * k_dim + d)]) *
             keys[static_cast<std::size_t>(t * (k_dim + 8) + d)];
    return dot;
  }
  double weighted(int r, int d) const {
    double sum = 0;
    for (int t = 0; t < tokens; ++t)
      sum += static_cast<double>(weights[static_cast<std::size_t>(r * key_block + t)]) *
             values[static_cast<std::size_t>(t * (v_dim + 8) + d)];
    return sum;
  }
};

// |float sum - exact| of n products of unit normals: well inside n * 2^-24 * sum |terms|; the
// tests use 1e-5 * (n + 8), loose for rounding and far below any wrong term.
double allowance(int n) { return 1e-5 * (n + 8); }

// Every path this CPU can run: AVX-512 (where it has it), AVX2, portable.
std::vector<cpu::block_kernels> kernel_paths() {
  std::vector<cpu::block_kernels> paths;
  page_geometry dims16;
  dims16.k_dim = dims16.v_dim = 16;
  const cpu_features cpu = cpu_features::detected();
  for (const cpu_features features : {cpu, cpu & cpu_features::avx2_only(), cpu_features::none()}) {
    cpu::cpu_options options;
    options.features = features;
    const cpu::block_kernels path = cpu::block_kernels::of(cpu::choose_kernels(dims16, 1, options));
    if (paths.empty() || path.simd != paths.back().simd || path.wide != paths.back().wide)
      paths.push_back(path);
  }
  return paths;
}
const char* path_name(const cpu::block_kernels& k) {
  return k.wide ? "AVX-512" : k.simd ? "AVX2" : "portable";
}

}  // namespace

// Every remainder of the 6-row, 3-row and 4-row tiles, and the row counts prefill and MLA use.
const std::vector<int> row_counts = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 64, 128};

TEST_CASE("block kernels: scores of every row count and block length match double precision") {
  for (const cpu::block_kernels& kernels : kernel_paths()) {
    for (const int k_dim : {8, 64, 136, 576})
      for (const int rows : row_counts)
        for (const int tokens : {1, 5, 8, 9, 15, 16}) {
          const block_data data(rows, tokens, k_dim, 8,
                                static_cast<std::uint32_t>(rows * 100 + tokens));
          std::vector<float> scores(static_cast<std::size_t>(rows) * key_block);
          std::vector<float> keys_t(static_cast<std::size_t>(k_dim) * key_block + 16);
          // The transposed keys must start on 32 bytes.
          const std::size_t skew = reinterpret_cast<std::uintptr_t>(keys_t.data()) % 64 / 4;
          float* aligned = keys_t.data() + (16 - skew) % 16;
          kernels.scores(data.q.data(), rows, k_dim, data.keys.data(), k_dim + 8, tokens,
                         scores.data(), aligned);
          for (int r = 0; r < rows; ++r)
            for (int t = 0; t < tokens; ++t) {
              INFO(path_name(kernels) << " k_dim " << k_dim << " row " << r << " of " << rows
                                      << " token " << t << " of " << tokens);
              REQUIRE(std::fabs(scores[static_cast<std::size_t>(r * key_block + t)] -
                                data.score(r, t)) <= allowance(k_dim));
            }
        }
  }
}

TEST_CASE(
    "block kernels: weighted values of every row count and block length match double precision") {
  for (const cpu::block_kernels& kernels : kernel_paths()) {
    for (const int v_dim : {8, 16, 24, 32, 48, 112, 128, 136, 512})
      for (const int rows : row_counts)
        for (const int tokens : {1, 5, 8, 9, 15, 16}) {
          const block_data data(rows, tokens, 8, v_dim,
                                static_cast<std::uint32_t>(rows * 100 + tokens));
          // acc starts at 1: the kernel adds to it.
          std::vector<float> acc(static_cast<std::size_t>(rows * v_dim), 1.0f);
          kernels.accumulate(data.weights.data(), rows, data.values.data(), v_dim + 8, v_dim,
                             tokens, acc.data());
          for (int r = 0; r < rows; ++r)
            for (int d = 0; d < v_dim; ++d) {
              INFO(path_name(kernels) << " v_dim " << v_dim << " row " << r << " of " << rows
                                      << " dim " << d << " tokens " << tokens);
              REQUIRE(std::fabs(acc[static_cast<std::size_t>(r * v_dim + d)] -
                                (1.0 + data.weighted(r, d))) <= allowance(tokens));
            }
        }
  }
}

TEST_CASE("block kernels: the online softmax of every row count matches double precision") {
  const window_shape full_window{};
  for (const cpu::block_kernels& kernels : kernel_paths())
    for (const float softcap : {0.0f, 30.0f})  // 0: the rows' kernel; 30: the exponentials'
      for (const int rows : row_counts)
        for (const int tokens : {1, 5, 8, 9, 15, 16})
          for (const bool first_block : {true, false}) {
            constexpr int v_dim = 24;
            std::mt19937 rng(static_cast<std::uint32_t>(rows * 1000 + tokens * 10 + first_block));
            std::normal_distribution<float> normal;
            // Scores past `tokens` are NaN: they must come out as weight 0.
            std::vector<float> s(static_cast<std::size_t>(rows) * key_block, std::nanf(""));
            std::vector<float> m(static_cast<std::size_t>(rows)), l(m.size());
            std::vector<float> acc(static_cast<std::size_t>(rows * v_dim));
            std::vector<std::int64_t> positions(static_cast<std::size_t>(rows));
            for (int r = 0; r < rows; ++r) {
              positions[static_cast<std::size_t>(r)] = 1000 + r;
              for (int t = 0; t < tokens; ++t)
                s[static_cast<std::size_t>(r * key_block + t)] = 3.0f * normal(rng);
              // Earlier blocks: a running maximum above or below this block's.
              m[static_cast<std::size_t>(r)] =
                  first_block ? -__builtin_huge_valf() : 2.0f * normal(rng);
              l[static_cast<std::size_t>(r)] = first_block ? 0.0f : 1.0f + std::fabs(normal(rng));
            }
            for (float& x : acc) x = normal(rng);
            const std::vector<float> s0 = s, m0 = m, l0 = l, acc0 = acc;
            const cpu::row_block block{rows,       8,        v_dim,   nullptr, positions.data(),
                                       acc.data(), m.data(), l.data()};
            cpu::softmax_block(kernels, block, tokens, 0, full_window, softcap, s.data());
            for (int r = 0; r < rows; ++r) {
              INFO(path_name(kernels) << " softcap " << softcap << " row " << r << " of " << rows
                                      << " tokens " << tokens << " first block " << first_block);
              const auto at = [&](int t) { return static_cast<std::size_t>(r * key_block + t); };
              const auto capped = [&](int t) {
                const double x = s0[at(t)];
                return softcap > 0 ? softcap * std::tanh(x / softcap) : x;
              };
              double largest = m0[static_cast<std::size_t>(r)];
              for (int t = 0; t < tokens; ++t) largest = std::max(largest, capped(t));
              const double factor =
                  first_block ? 0.0 : std::exp(m0[static_cast<std::size_t>(r)] - largest);
              double sum = 0;
              for (int t = 0; t < tokens; ++t) {
                const double weight = std::exp(capped(t) - largest);
                sum += weight;
                REQUIRE(std::fabs(s[at(t)] - weight) <= 4e-6 * (1 + weight));
              }
              for (int t = tokens; t < key_block; ++t) REQUIRE(s[at(t)] == 0.0f);
              REQUIRE(std::fabs(m[static_cast<std::size_t>(r)] - largest) <=
                      1e-6 * (1 + std::fabs(largest)));
              const double want_l = l0[static_cast<std::size_t>(r)] * factor + sum;
              REQUIRE(std::fabs(l[static_cast<std::size_t>(r)] - want_l) <= 4e-6 * (1 + want_l));
              for (int d = 0; d < v_dim; ++d) {
                const auto i = static_cast<std::size_t>(r * v_dim + d);
                const double want = acc0[i] * factor;
                REQUIRE(std::fabs(acc[i] - want) <= 4e-6 * (1 + std::fabs(want)));
              }
            }
          }
}
