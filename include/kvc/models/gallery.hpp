#pragma once
// Every published model of the gallery, with its name, for tools that list them all.

#include <string_view>

#include "kvc/model/footprint.hpp"
#include "kvc/models/deepseek.hpp"
#include "kvc/models/gemma.hpp"
#include "kvc/models/glm.hpp"
#include "kvc/models/gpt2.hpp"
#include "kvc/models/gpt_oss.hpp"
#include "kvc/models/llama.hpp"
#include "kvc/models/minimax.hpp"
#include "kvc/models/mistral.hpp"
#include "kvc/models/olmo.hpp"
#include "kvc/models/phi.hpp"
#include "kvc/models/qwen.hpp"
#include "kvc/models/smollm.hpp"

namespace kvc::models {

template <class Model>
struct gallery_entry {
  using type = Model;
  std::string_view name;
};

/// Calls visit.template operator()<Model>(name) for every gallery model, in table order.
template <class Visitor>
constexpr void for_each_gallery_model(Visitor&& visit) {
  const auto call = [&]<class M>(gallery_entry<M> entry) {
    visit.template operator()<M>(entry.name);
  };
  call(gallery_entry<gpt2_small>{"gpt2_small"});
  call(gallery_entry<gpt2_medium>{"gpt2_medium"});
  call(gallery_entry<gpt2_large>{"gpt2_large"});
  call(gallery_entry<gpt2_xl>{"gpt2_xl"});
  call(gallery_entry<llama2_7b>{"llama2_7b"});
  call(gallery_entry<llama2_70b>{"llama2_70b"});
  call(gallery_entry<llama3_8b>{"llama3_8b"});
  call(gallery_entry<llama3_70b>{"llama3_70b"});
  call(gallery_entry<llama3_405b>{"llama3_405b"});
  call(gallery_entry<mistral_7b>{"mistral_7b"});
  call(gallery_entry<mixtral_8x7b>{"mixtral_8x7b"});
  call(gallery_entry<gemma2_9b>{"gemma2_9b"});
  call(gallery_entry<gemma2_27b>{"gemma2_27b"});
  call(gallery_entry<gemma3_1b>{"gemma3_1b"});
  call(gallery_entry<gemma3_4b>{"gemma3_4b"});
  call(gallery_entry<gemma3_12b>{"gemma3_12b"});
  call(gallery_entry<gemma3_27b>{"gemma3_27b"});
  call(gallery_entry<gemma3n_e2b>{"gemma3n_e2b"});
  call(gallery_entry<qwen2_5_7b>{"qwen2_5_7b"});
  call(gallery_entry<qwen2_5_72b>{"qwen2_5_72b"});
  call(gallery_entry<qwen3_8b>{"qwen3_8b"});
  call(gallery_entry<qwen3_32b>{"qwen3_32b"});
  call(gallery_entry<qwen3_235b_a22b>{"qwen3_235b_a22b"});
  call(gallery_entry<qwen3_next_80b_a3b>{"qwen3_next_80b_a3b"});
  call(gallery_entry<deepseek_v2>{"deepseek_v2"});
  call(gallery_entry<deepseek_v2_lite>{"deepseek_v2_lite"});
  call(gallery_entry<deepseek_v3>{"deepseek_v3"});
  call(gallery_entry<kimi_k2>{"kimi_k2"});
  call(gallery_entry<gpt_oss_20b>{"gpt_oss_20b"});
  call(gallery_entry<gpt_oss_120b>{"gpt_oss_120b"});
  call(gallery_entry<llama4_scout>{"llama4_scout"});
  call(gallery_entry<phi4>{"phi4"});
  call(gallery_entry<olmo2_7b>{"olmo2_7b"});
  call(gallery_entry<smollm3_3b>{"smollm3_3b"});
  call(gallery_entry<glm4_5>{"glm4_5"});
  call(gallery_entry<minimax_m2>{"minimax_m2"});
}

inline constexpr int gallery_size = 36;

// The seed figures of the design (bytes per token, 16-bit cache).
static_assert(footprint<gpt2_xl>::bytes_per_token == 307'200);
static_assert(footprint<llama3_8b>::bytes_per_token == 131'072);
static_assert(footprint<deepseek_v3>::bytes_per_token == 70'272);

}  // namespace kvc::models
