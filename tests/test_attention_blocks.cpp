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
  const cpu::block_kernels best = cpu::block_kernels::for_dims(16, 16);
  if (best.wide) paths.push_back(best);
  if (best.simd) paths.push_back({.simd = true, .wide = false});
  paths.push_back({});
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
