// serve: a miniature inference engine on kvc's public API, the way a serving loop drives it.
//
// A small decoder (random weights; Llama-like GQA, or Gemma-like five sliding-window layers
// per global one) serves a stream of requests with continuous batching:
// - requests with different prompt lengths arrive over time and are prefilled in chunks
//   (extend over the cached prefix, with the chunk's new K/V);
// - sequences that decode go together, one batched decode per layer per step, over the
//   step's own view (kv_cache::step_table), after the layer's new K/V are written;
// - some requests ask for several samples: after the prompt, the sequence is forked (the
//   children share the prompt's pages), and each child samples its own continuation;
// - some requests decode speculatively: k draft tokens (a bigram draft model) are verified
//   in one step, and the rejected ones are rolled back (kv_cache::truncate, within the
//   cache's rollback reserve);
// - finished sequences are released;
// - with --system T, every prompt begins with the same T tokens (a system prompt): a request
//   starts from what the prefix index serves of its prompt (kv_cache::find_prefix and
//   add_sequence(hit)), and a prefilling sequence stores its pages after each chunk
//   (store_prefix), which keeps the sliding windows' pages at every chunk's end.
// Each step prints its batch, tokens/s and the KV memory the cache holds against what the
// footprint predicts for the live sequences; on a sample of steps the engine's logits are
// checked against a recomputation without a cache (double precision, the whole history).
//
//   serve [--model llama|gemma] [--requests N] [--prompt-max T] [--new-tokens T]
//         [--chunk T] [--draft K] [--check-every S] [--threads N] [--seed S] [--quiet] [--help]
//
// The q/k/v projection is fused ([tokens][q heads + 2 kv heads][dim]); the K and V slices go
// to the cache as strided inputs, without a copy. Exit status 0 when every check passed.
// The engine is examples/serve_engine.hpp; this file runs its steps with kvc's CPU backend,
// examples/serve_device.cpp with its device kernels.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvc/attention/layer_params.hpp"
#include "kvc/backend/cpu/decode.hpp"
#include "kvc/backend/cpu/extend.hpp"
#include "kvc/backend/cpu/parallel.hpp"
#include "kvc/cache/allocator.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "serve_engine.hpp"

namespace serve {

// A step on the CPU: the decoder's matrices, kv_cache::write of every layer's new K/V, the
// decoding rows by cpu::decode over the step's table, the extending ones by cpu::extend over
// their committed prefix and the step's new K/V.
template <class Model>
class cpu_forward {
 public:
  using allocator = kvc::host_allocator;
  using cache_type = kvc::kv_cache<Model, paging, allocator>;
  static constexpr int layers = Model::num_layers;
  static constexpr auto groups = static_cast<std::size_t>(cache_type::num_groups);

  cpu_forward(const decoder<Model>& model, const options& o)
      : decoder_(model), reserve_(o.draft), pool_(o.threads) {}

  std::int64_t reserve() const { return reserve_; }

  void run(cache_type& cache, kvc::append_plan& plan, const step_rows& step,
           std::vector<float>& x) {
    const auto rows = static_cast<int>(step.tokens.size());
    const int decode_rows = step.decode_rows;
    x.resize(static_cast<std::size_t>(rows) * d_model);
    for (int r = 0; r < rows; ++r)
      std::copy_n(
          &decoder_
               .embed[static_cast<std::size_t>(step.tokens[static_cast<std::size_t>(r)]) * d_model],
          d_model, &x[static_cast<std::size_t>(r) * d_model]);
    // Per layer group, once per step: the step's table (decode), the committed prefix of
    // the extending sequences (extend, with the new K/V), and the decode plan.
    for (std::size_t g = 0; g < groups; ++g) {
      const int l = first_layer(g);
      cache.step_table(plan, l, step_tables_[g]);
      cache.page_table(l, step.extend_ids, prefix_tables_[g]);
      if (decode_rows > 0)
        kvc::cpu::plan_decode(cache.view(l, step_tables_[g]).first(decode_rows), q_heads,
                              pool_.threads(), decode_plans_[g]);
    }

    std::vector<float> qkv(static_cast<std::size_t>(rows) * qkv_width),
        q(static_cast<std::size_t>(rows) * q_heads * head_dim),
        out(static_cast<std::size_t>(rows) * q_heads * head_dim),
        lse(static_cast<std::size_t>(rows) * q_heads);
    for (int l = 0; l < layers; ++l) {
      const auto g = static_cast<std::size_t>(cache_type::group_of_layer(l));
      for (int r = 0; r < rows; ++r) {
        float* row = &qkv[static_cast<std::size_t>(r) * qkv_width];
        decoder_.qkv(l, &x[static_cast<std::size_t>(r) * d_model], row);
        std::copy_n(row, q_heads * head_dim, &q[static_cast<std::size_t>(r) * q_heads * head_dim]);
      }
      // The K and V slices of the fused projection, as strided inputs.
      const auto slice = [&](int first_row, int count, int first_head) {
        return kvc::kv_input{
            qkv.data() + static_cast<std::size_t>(first_row) * qkv_width + first_head * head_dim,
            kvc::dtype_id::fp32,
            count,
            kv_heads,
            head_dim,
            qkv_width};
      };
      cache.write(plan, l, slice(0, rows, q_heads), slice(0, rows, q_heads + kv_heads));
      const kvc::attention::attention_params params = kvc::attention::layer_params<Model>(l);
      if (decode_rows > 0)
        kvc::cpu::decode(decode_plans_[g], cache.view(l, step_tables_[g]).first(decode_rows),
                         q.data(), out.data(), lse.data(), params, decode_workspace_, pool_.ref());
      if (!step.extend_ids.empty()) {
        const std::size_t first = static_cast<std::size_t>(decode_rows);
        kvc::cpu::extend(cache.view(l, prefix_tables_[g]), step.extend_offsets, q_heads,
                         q.data() + first * q_heads * head_dim,
                         slice(decode_rows, rows - decode_rows, q_heads),
                         slice(decode_rows, rows - decode_rows, q_heads + kv_heads),
                         out.data() + first * q_heads * head_dim, lse.data() + first * q_heads,
                         params, extend_workspace_, pool_.ref());
      }
      for (int r = 0; r < rows; ++r)
        decoder_.finish_layer(l, &out[static_cast<std::size_t>(r) * q_heads * head_dim],
                              &x[static_cast<std::size_t>(r) * d_model]);
    }
  }

 private:
  static constexpr int first_layer(std::size_t g) {
    return cache_type::groups::value.info[g].first_layer;
  }

  const decoder<Model>& decoder_;
  std::int64_t reserve_;
  kvc::cpu::thread_pool pool_;
  // Kept from step to step: refilled, so that a warm step allocates nothing in them.
  std::array<kvc::page_table_csr, groups> step_tables_, prefix_tables_;
  std::array<kvc::cpu::decode_plan, groups> decode_plans_;
  kvc::cpu::decode_workspace decode_workspace_;
  kvc::cpu::extend_workspace extend_workspace_;
};

}  // namespace serve

int main(int argc, char** argv) { return serve::serve_main<serve::cpu_forward>(argc, argv); }
