// Every gallery typedef against the bytes computed by hand from the config it cites:
// 2 (K and V) x layers x KV heads x head dim x 2 bytes (16-bit), or for MLA
// layers x (kv_lora_rank + qk_rope_head_dim) x 2 bytes.

#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <string_view>

#include "kvc/model/footprint.hpp"
#include "kvc/models/gallery.hpp"

using namespace kvc;
using namespace kvc::models;

namespace {
// Bytes per token of `layers` layers of plain 16-bit GQA/MHA, from config values.
constexpr std::uint64_t kv16(std::uint64_t layers, std::uint64_t kv_heads, std::uint64_t head_dim) {
  return 2 * layers * kv_heads * head_dim * 2;
}
// Same for MLA: one latent + RoPE vector per layer.
constexpr std::uint64_t mla16(std::uint64_t layers, std::uint64_t rank, std::uint64_t rope) {
  return layers * (rank + rope) * 2;
}
}  // namespace

TEST_CASE("GPT-2, multi-head attention") {
  STATIC_REQUIRE(footprint<gpt2_small>::bytes_per_token == kv16(12, 12, 768 / 12));
  STATIC_REQUIRE(footprint<gpt2_medium>::bytes_per_token == kv16(24, 16, 1024 / 16));
  STATIC_REQUIRE(footprint<gpt2_large>::bytes_per_token == kv16(36, 20, 1280 / 20));
  STATIC_REQUIRE(footprint<gpt2_xl>::bytes_per_token == kv16(48, 25, 1600 / 25));
  STATIC_REQUIRE(footprint<gpt2_xl>::bytes_per_token == 307'200);  // 300 KiB
  STATIC_REQUIRE(footprint<gpt2_xl>::bytes_for_tokens(1024) == 1024ull * 307'200);
}

TEST_CASE("Llama 2, 3 and 4") {
  STATIC_REQUIRE(footprint<llama2_7b>::bytes_per_token == kv16(32, 32, 4096 / 32));
  STATIC_REQUIRE(footprint<llama2_70b>::bytes_per_token == kv16(80, 8, 8192 / 64));
  STATIC_REQUIRE(footprint<llama3_8b>::bytes_per_token == kv16(32, 8, 4096 / 32));
  STATIC_REQUIRE(footprint<llama3_8b>::bytes_per_token == 131'072);  // 128 KiB
  STATIC_REQUIRE(footprint<llama3_70b>::bytes_per_token == kv16(80, 8, 8192 / 64));
  STATIC_REQUIRE(footprint<llama3_405b>::bytes_per_token == kv16(126, 8, 16384 / 128));
  // Llama 4 Scout: 36 chunked layers (chunk 8192) and 12 global ones.
  using scout = footprint<llama4_scout>;
  STATIC_REQUIRE(scout::bytes_per_token == kv16(48, 8, 128));
  STATIC_REQUIRE(scout::full_layers == 12);
  STATIC_REQUIRE(scout::local_layers == 36);
  STATIC_REQUIRE(scout::bytes_for_tokens(8192) == 8192 * kv16(48, 8, 128));
  STATIC_REQUIRE(scout::bytes_for_tokens(8193) == 8193 * kv16(12, 8, 128) + 1 * kv16(36, 8, 128));
  STATIC_REQUIRE(scout::bytes_for_tokens(131'072) ==
                 131'072 * kv16(12, 8, 128) + 8192 * kv16(36, 8, 128));
  STATIC_REQUIRE(llama4_scout::layer_summaries[3].window.kind == window_kind::full);
  STATIC_REQUIRE(llama4_scout::layer_summaries[0].window.kind == window_kind::chunked);
}

TEST_CASE("Mistral and Mixtral") {
  using m = footprint<mistral_7b>;
  STATIC_REQUIRE(m::bytes_per_token == kv16(32, 8, 128));
  STATIC_REQUIRE(m::bytes_for_tokens(4096) == 4096 * kv16(32, 8, 128));
  STATIC_REQUIRE(m::bytes_for_tokens(32768) == 4096 * kv16(32, 8, 128));
  STATIC_REQUIRE(footprint<mixtral_8x7b>::bytes_per_token == kv16(32, 8, 128));
  STATIC_REQUIRE(footprint<mixtral_8x7b>::bytes_for_tokens(32768) == 32768 * kv16(32, 8, 128));
}

TEST_CASE("Gemma 2: alternating sliding and global, soft-capped") {
  using g9 = footprint<gemma2_9b>;
  STATIC_REQUIRE(g9::bytes_per_token == kv16(42, 8, 256));
  STATIC_REQUIRE(g9::local_layers == 21);
  STATIC_REQUIRE(g9::bytes_for_tokens(8192) == 8192 * kv16(21, 8, 256) + 4096 * kv16(21, 8, 256));
  STATIC_REQUIRE(gemma2_9b::layer_summaries[0].window.kind == window_kind::sliding);
  using g27 = footprint<gemma2_27b>;
  STATIC_REQUIRE(g27::bytes_per_token == kv16(46, 16, 128));
  STATIC_REQUIRE(g27::bytes_for_tokens(8192) ==
                 8192 * kv16(23, 16, 128) + 4096 * kv16(23, 16, 128));
  using layer0 = std::tuple_element_t<0, std::tuple<gemma2_27b_layer<full_attention>>>;
  STATIC_REQUIRE(layer0::softcap::cap == 50.0);
  STATIC_REQUIRE(layer0::softmax_scale_value == 1.0 / 12.0);  // 1 / sqrt(144)
}

TEST_CASE("Gemma 3: five local layers per global one") {
  STATIC_REQUIRE(footprint<gemma3_1b>::bytes_per_token == kv16(26, 1, 256));
  STATIC_REQUIRE(footprint<gemma3_1b>::local_layers == 22);
  STATIC_REQUIRE(footprint<gemma3_1b>::bytes_for_tokens(32768) ==
                 32768 * kv16(4, 1, 256) + 512 * kv16(22, 1, 256));
  STATIC_REQUIRE(footprint<gemma3_4b>::bytes_per_token == kv16(34, 4, 256));
  STATIC_REQUIRE(footprint<gemma3_4b>::bytes_for_tokens(4096) ==
                 4096 * kv16(5, 4, 256) + 1024 * kv16(29, 4, 256));
  STATIC_REQUIRE(footprint<gemma3_12b>::bytes_per_token == kv16(48, 8, 256));
  STATIC_REQUIRE(footprint<gemma3_12b>::bytes_for_tokens(4096) ==
                 4096 * kv16(8, 8, 256) + 1024 * kv16(40, 8, 256));
  using g27 = footprint<gemma3_27b>;
  STATIC_REQUIRE(g27::bytes_per_token == kv16(62, 16, 128));
  STATIC_REQUIRE(g27::bytes_per_token == 507'904);
  STATIC_REQUIRE(g27::full_layers == 10);
  STATIC_REQUIRE(g27::local_layers == 52);
  STATIC_REQUIRE(g27::bytes_for_tokens(131'072) ==
                 131'072 * kv16(10, 16, 128) + 1024 * kv16(52, 16, 128));
  STATIC_REQUIRE(g27::bytes_for_tokens(131'072) < (12ull << 30));
  STATIC_REQUIRE(gemma3_27b::layer_summaries[5].window.kind == window_kind::full);
  STATIC_REQUIRE(gemma3_27b::layer_summaries[61].window.kind == window_kind::sliding);
}

TEST_CASE("Gemma 3n: the last ten layers read earlier layers' KV") {
  using g = footprint<gemma3n_e2b>;
  // Layers 0-19 own a cache: 16 local (window 512) and 4 global.
  STATIC_REQUIRE(g::bytes_per_token == kv16(20, 2, 256));
  STATIC_REQUIRE(g::shared_layers == 10);
  STATIC_REQUIRE(g::local_layers == 16);
  STATIC_REQUIRE(g::full_layers == 4);
  STATIC_REQUIRE(g::bytes_for_tokens(4096) == 4096 * kv16(4, 2, 256) + 512 * kv16(16, 2, 256));
  for (int i = 20; i < 30; ++i) {
    const layer_summary& s = gemma3n_e2b::layer_summaries[static_cast<std::size_t>(i)];
    CHECK(s.kind == layer_kind::shared_kv);
    CHECK(s.source_layer == (i % 5 == 4 ? 19 : 18));
  }
}

TEST_CASE("Qwen 2.5, Qwen 3 and Qwen3-Next") {
  STATIC_REQUIRE(footprint<qwen2_5_7b>::bytes_per_token == kv16(28, 4, 3584 / 28));
  STATIC_REQUIRE(footprint<qwen2_5_72b>::bytes_per_token == kv16(80, 8, 8192 / 64));
  STATIC_REQUIRE(footprint<qwen3_8b>::bytes_per_token == kv16(36, 8, 128));
  STATIC_REQUIRE(footprint<qwen3_32b>::bytes_per_token == kv16(64, 8, 128));
  STATIC_REQUIRE(footprint<qwen3_235b_a22b>::bytes_per_token == kv16(94, 4, 128));
  using next = footprint<qwen3_next_80b_a3b>;
  STATIC_REQUIRE(next::bytes_per_token == kv16(12, 2, 256));
  STATIC_REQUIRE(next::recurrent_layers == 36);
  // Per linear layer: 32 x 128 x 128 recurrent + 3 x 8192 conv, bf16.
  STATIC_REQUIRE(next::recurrent_state_bytes == 36ull * (32 * 128 * 128 + 3 * 8192) * 2);
  STATIC_REQUIRE(next::recurrent_state_bytes == 39'518'208);
  STATIC_REQUIRE(next::bytes_for_tokens(4096) == 4096 * kv16(12, 2, 256));
  STATIC_REQUIRE(next::total_bytes_for_tokens(4096) == 4096 * kv16(12, 2, 256) + 39'518'208);
}

TEST_CASE("DeepSeek and Kimi: multi-head latent attention") {
  STATIC_REQUIRE(footprint<deepseek_v2>::bytes_per_token == mla16(60, 512, 64));
  STATIC_REQUIRE(footprint<deepseek_v2_lite>::bytes_per_token == mla16(27, 512, 64));
  STATIC_REQUIRE(footprint<deepseek_v3>::bytes_per_token == mla16(61, 512, 64));
  STATIC_REQUIRE(footprint<deepseek_v3>::bytes_per_token == 70'272);  // 68.6 KiB
  STATIC_REQUIRE(footprint<kimi_k2>::bytes_per_token == mla16(61, 512, 64));
  STATIC_REQUIRE(deepseek_v3::layer_summaries[0].q_heads == 128);
  STATIC_REQUIRE(kimi_k2::layer_summaries[0].q_heads == 64);
  STATIC_REQUIRE(deepseek_v2_lite::layer_summaries[0].q_heads == 16);
  CHECK(mla_layer<128>::softmax_scale_value * mla_layer<128>::softmax_scale_value ==
        Approx(1.0 / 192));
}

TEST_CASE("gpt-oss: alternating 128-token window and full, learned sinks") {
  using g20 = footprint<gpt_oss_20b>;
  STATIC_REQUIRE(g20::bytes_per_token == kv16(24, 8, 64));
  STATIC_REQUIRE(g20::bytes_for_tokens(4096) == 4096 * kv16(12, 8, 64) + 128 * kv16(12, 8, 64));
  using g120 = footprint<gpt_oss_120b>;
  STATIC_REQUIRE(g120::bytes_per_token == kv16(36, 8, 64));
  STATIC_REQUIRE(g120::bytes_for_tokens(100) == 100 * kv16(36, 8, 64));
  STATIC_REQUIRE(gpt_oss_layer<full_attention>::sinks::enabled);
}

TEST_CASE("Phi-4, OLMo 2, SmolLM3, GLM-4.5, MiniMax M2") {
  STATIC_REQUIRE(footprint<phi4>::bytes_per_token == kv16(40, 10, 5120 / 40));
  STATIC_REQUIRE(footprint<olmo2_7b>::bytes_per_token == kv16(32, 32, 4096 / 32));
  STATIC_REQUIRE(footprint<smollm3_3b>::bytes_per_token == kv16(36, 4, 2048 / 16));
  STATIC_REQUIRE(footprint<glm4_5>::bytes_per_token == kv16(92, 8, 128));
  STATIC_REQUIRE(footprint<minimax_m2>::bytes_per_token == kv16(62, 8, 128));
}

TEST_CASE("the gallery lists every model once, with bytes at every context") {
  std::set<std::string_view> names;
  int count = 0;
  for_each_gallery_model([&]<class M>(std::string_view name) {
    ++count;
    names.insert(name);
    using fp = footprint<M>;
    CHECK(fp::bytes_per_token > 0);
    // Windows only ever lower the bytes; page rounding only ever raises them.
    for (std::int64_t n : {1, 4096, 32768, 131072}) {
      CHECK(fp::bytes_for_tokens(n) <= static_cast<std::uint64_t>(n) * fp::bytes_per_token);
      CHECK(footprint<M, paged<16>>::bytes_for_tokens(n) >= fp::bytes_for_tokens(n));
      CHECK(footprint<M, paged<16>>::bytes_for_tokens(n) <=
            fp::bytes_for_tokens(n) + 2 * 16 * fp::bytes_per_token);
    }
  });
  CHECK(count == gallery_size);
  CHECK(names.size() == static_cast<std::size_t>(gallery_size));
}
