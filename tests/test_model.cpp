// Layer specs, model composition and the compile-time footprint.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "error_code.hpp"
#include "kvc/model/footprint.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/with_layer.hpp"

using namespace kvc;

namespace {
using plain = layer<gqa<32, 8>, head_dim<128>>;
using local = layer<gqa<32, 8>, head_dim<128>, sliding_window<100>>;
using chunk = layer<gqa<32, 8>, head_dim<128>, chunked<64>>;
using sink = layer<gqa<32, 8>, head_dim<128>, streaming<4, 60>>;
using mla = layer<mqa<16>, latent<512, 64>, storage<fp16>, inv_sqrt_scale<192>>;
constexpr std::uint64_t plain_bpt = 2ull * 8 * 128 * 2;  // K and V, 8 heads, 128 dims, 2 bytes
}  // namespace

TEST_CASE("layer defaults: bf16, full attention, 1/sqrt(dk), no cap, no sinks") {
  STATIC_REQUIRE(std::is_same_v<plain::k_type, bf16>);
  STATIC_REQUIRE(std::is_same_v<plain::v_type, bf16>);
  STATIC_REQUIRE(plain::window_value.kind == window_kind::full);
  CHECK(plain::softmax_scale_value == Approx(1.0 / std::sqrt(128.0)).epsilon(1e-15));
  STATIC_REQUIRE_FALSE(plain::softcap::enabled);
  STATIC_REQUIRE_FALSE(plain::sinks::enabled);
  STATIC_REQUIRE(plain::bytes_per_token == plain_bpt);
}

TEST_CASE("policies may come in any order") {
  using a = layer<storage<fp16>, sliding_window<8>, head_dim<64>, gqa<8, 2>, learned_sinks>;
  using b = layer<learned_sinks, gqa<8, 2>, head_dim<64>, storage<fp16>, sliding_window<8>>;
  STATIC_REQUIRE(a::bytes_per_token == b::bytes_per_token);
  STATIC_REQUIRE(a::window_value.tokens == 8);
  STATIC_REQUIRE(b::sinks::enabled);
}

TEST_CASE("bytes per token for every storage dtype, K and V independent") {
  STATIC_REQUIRE(layer<mha<4>, head_dim<64>, storage<fp32>>::bytes_per_token == 2 * 4 * 64 * 4);
  STATIC_REQUIRE(layer<mha<4>, head_dim<64>, storage<fp8_e4m3>>::bytes_per_token == 2 * 4 * 64);
  STATIC_REQUIRE(layer<mha<4>, head_dim<64>, storage<fp8_e5m2>>::bytes_per_token == 2 * 4 * 64);
  STATIC_REQUIRE(layer<mha<4>, head_dim<64>, storage<int8>>::bytes_per_token == 2 * 4 * (64 + 4));
  STATIC_REQUIRE(layer<mha<4>, head_dim<64>, storage<int4>>::bytes_per_token == 2 * 4 * (32 + 4));
  // K in fp8, V in int4; K dim 192, V dim 128
  using mixed = layer<mha<4>, head_dim<192, 128>, storage<fp8_e4m3, int4>>;
  STATIC_REQUIRE(mixed::k_bytes_per_token == 4 * 192);
  STATIC_REQUIRE(mixed::v_bytes_per_token == 4 * (64 + 4));
}

TEST_CASE("a latent layer caches one vector for all heads") {
  STATIC_REQUIRE(mla::is_latent);
  STATIC_REQUIRE(mla::q_heads == 16);
  STATIC_REQUIRE(mla::kv_heads == 1);
  STATIC_REQUIRE(mla::k_dim == 576);
  STATIC_REQUIRE(mla::v_dim == 512);
  STATIC_REQUIRE(mla::bytes_per_token == 576 * 2);
  STATIC_REQUIRE(
      layer<mqa<16>, latent<512, 64>, storage<int8>, inv_sqrt_scale<192>>::bytes_per_token ==
      576 + 4);
  STATIC_REQUIRE(
      layer<mqa<16>, latent<512, 64>, storage<int4>, inv_sqrt_scale<192>>::bytes_per_token ==
      288 + 4);
}

TEST_CASE("a pattern cycles from the first layer and may be cut short") {
  struct m : model<8, pattern<local, local, local, plain>> {};
  STATIC_REQUIRE(m::num_layers == 8);
  STATIC_REQUIRE(m::layer_summaries[0].window.kind == window_kind::sliding);
  STATIC_REQUIRE(m::layer_summaries[3].window.kind == window_kind::full);
  STATIC_REQUIRE(m::layer_summaries[7].window.kind == window_kind::full);
  struct cut : model<6, pattern<local, local, local, plain>> {};
  STATIC_REQUIRE(cut::layer_summaries[4].window.kind == window_kind::sliding);
  STATIC_REQUIRE(cut::layer_summaries[5].window.kind == window_kind::sliding);
  STATIC_REQUIRE(footprint<cut>::local_layers == 5);
  STATIC_REQUIRE(footprint<cut>::full_layers == 1);
}

TEST_CASE("with_layer gives a run-time layer index its type, and refuses one out of range") {
  struct m : stack<repeat<3, pattern<local, plain>>,
                   repeat<2, pattern<kv_shared<2, local>, kv_shared<1, plain>>>,
                   repeat<2, recurrent_state<1000, fp32>>> {};
  // Which of the four layer types each index reaches, and how many calls f gets.
  const auto kind_of = [](int l) {
    int kind = -1, calls = 0;
    with_layer<m>(l, [&]<class Layer>(std::type_identity<Layer>) {
      ++calls;
      kind = std::is_same_v<Layer, local>                         ? 0
             : std::is_same_v<Layer, plain>                       ? 1
             : std::is_same_v<Layer, kv_shared<2, local>>         ? 2
             : std::is_same_v<Layer, kv_shared<1, plain>>         ? 3
             : std::is_same_v<Layer, recurrent_state<1000, fp32>> ? 4
                                                                  : 5;
    });
    return calls == 1 ? kind : -calls;
  };
  const int expected[] = {0, 1, 0, 2, 3, 4, 4};
  for (int l = 0; l < m::num_layers; ++l) CHECK(kind_of(l) == expected[l]);
  // Out of range: invalid_layer, and f is not called.
  bool called = false;
  const auto call = [&](int l) {
    return testing::code_of([&] { with_layer<m>(l, [&](auto) { called = true; }); });
  };
  CHECK(call(-1) == cache_errc::invalid_layer);
  CHECK(call(m::num_layers) == cache_errc::invalid_layer);
  CHECK_FALSE(called);
  // A callable that returns a value is taken too; the value is dropped.
  with_layer<m>(1, [](auto) { return 7; });
}

TEST_CASE("stacked segments, shared KV and recurrent layers") {
  struct m : stack<repeat<3, pattern<local, plain>>,
                   repeat<2, pattern<kv_shared<2, local>, kv_shared<1, plain>>>,
                   repeat<2, recurrent_state<1000, fp32>>> {};
  STATIC_REQUIRE(m::num_layers == 7);
  STATIC_REQUIRE(m::layer_summaries[3].kind == layer_kind::shared_kv);
  STATIC_REQUIRE(m::layer_summaries[3].source_layer == 2);
  STATIC_REQUIRE(m::layer_summaries[4].source_layer == 1);
  STATIC_REQUIRE(m::layer_summaries[5].kind == layer_kind::recurrent);
  using fp = footprint<m>;
  STATIC_REQUIRE(fp::full_layers == 1);
  STATIC_REQUIRE(fp::local_layers == 2);
  STATIC_REQUIRE(fp::shared_layers == 2);
  STATIC_REQUIRE(fp::recurrent_layers == 2);
  STATIC_REQUIRE(fp::bytes_per_token == 3 * plain_bpt);  // shared and recurrent layers own no KV
  STATIC_REQUIRE(fp::recurrent_state_bytes == 2 * 4000);
  STATIC_REQUIRE(fp::bytes_for_tokens(1000) == (1000 + 100 + 100) * plain_bpt);
  STATIC_REQUIRE(fp::total_bytes_for_tokens(1000) == (1000 + 100 + 100) * plain_bpt + 8000);
  STATIC_REQUIRE(fp::bytes_for_tokens(0) == 0);
}

TEST_CASE("footprint of windowed layers, tokens and pages, against a direct count") {
  struct m : model<4, pattern<plain, local, chunk, sink>> {};
  using fp = footprint<m>;
  using fp16p = footprint<m, paged<16>>;
  for (std::int64_t n : {0, 1, 2, 15, 16, 17, 60, 63, 64, 65, 99, 100, 101, 128, 129, 1000, 1001}) {
    INFO("n = " << n);
    // Tokens kept, counted from the definitions.
    const std::int64_t kept_local = n < 100 ? n : 100;
    const std::int64_t kept_chunk = n == 0 ? 0 : (n - 1) % 64 + 1;
    const std::int64_t kept_sink = n < 64 ? n : 64;
    CHECK(fp::bytes_for_tokens(n) ==
          static_cast<std::uint64_t>(n + kept_local + kept_chunk + kept_sink) * plain_bpt);
    // Pages: positions p in [first, n) occupy pages floor(p / 16).
    const auto pages = [](std::int64_t first, std::int64_t end) -> std::int64_t {
      return end > first ? (end - 1) / 16 - first / 16 + 1 : 0;
    };
    std::int64_t sink_pages = 0;
    if (n > 0) {
      const std::int64_t sinks_end = n < 4 ? n : 4;
      const std::int64_t recent_begin = n - 60 > sinks_end ? n - 60 : sinks_end;
      sink_pages = pages(0, sinks_end) + pages(recent_begin, n) -
                   (recent_begin < n && recent_begin / 16 == 0 ? 1 : 0);
    }
    const std::int64_t expected_pages =
        pages(0, n) + pages(n - kept_local, n) + pages(n - kept_chunk, n) + sink_pages;
    CHECK(fp16p::bytes_for_tokens(n) ==
          static_cast<std::uint64_t>(expected_pages) * 16 * plain_bpt);
    CHECK(fp16p::bytes_for_tokens(n) >= fp::bytes_for_tokens(n));
  }
}

TEST_CASE("footprint is usable in static_assert against a budget") {
  struct m : model<62, pattern<local, local, local, local, local, plain>> {};
  static_assert(footprint<m>::bytes_for_tokens(131'072) < (12ull << 30));
  STATIC_REQUIRE(footprint<m>::layer_bytes_per_token(0) == plain_bpt);
  STATIC_REQUIRE(footprint<m>::layer_bytes_for_tokens(5, 1000) == 1000 * plain_bpt);
  STATIC_REQUIRE(footprint<m>::layer_bytes_for_tokens(4, 1000) == 100 * plain_bpt);
}

namespace readme {
// The example of README.md, as it is written there.
using local = layer<gqa<32, 16>, head_dim<128>, sliding_window<1024>, storage<bf16>>;
using global = layer<gqa<32, 16>, head_dim<128>, storage<bf16>>;
struct gemma3_27b : model<62, pattern<local, local, local, local, local, global>> {};

static_assert(footprint<gemma3_27b>::bytes_per_token == 507'904);
static_assert(footprint<gemma3_27b>::bytes_for_tokens(131'072) < (12ull << 30));
static_assert(footprint<gemma3_27b, paged<16>>::bytes_for_tokens(100'000) < (12ull << 30));
}  // namespace readme

TEST_CASE("the README example") {
  // 10 global layers hold every token, 52 local ones 1024: 10.4 GiB at 128k, not 62 GiB.
  CHECK(footprint<readme::gemma3_27b>::bytes_for_tokens(131'072) ==
        (131'072ull * 10 + 1024ull * 52) * 8192);
  CHECK(footprint<readme::gemma3_27b>::bytes_per_token * 131'072ull == 62ull << 30);
}
