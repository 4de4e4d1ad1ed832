#pragma once
// The engine of examples/serve.cpp (CPU) and examples/serve_device.cpp (CUDA, or the emulated
// runtime): the model shapes, the decoder with its random weights and its cache-free
// recomputation, the requests, the serving loop and its checks, the options. What runs a
// step's rows through the layers is the backend's (a Forward, below).

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kvc/attention/layer_params.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/model/footprint.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/model.hpp"

namespace serve {

// ---- the two model shapes ----

constexpr int q_heads = 8, kv_heads = 2, head_dim = 32;
using llama_layer =
    kvc::layer<kvc::gqa<q_heads, kv_heads>, kvc::head_dim<head_dim>, kvc::storage<kvc::bf16>>;
struct llama_like : kvc::model<4, llama_layer> {};

using gemma_local = kvc::layer<kvc::gqa<q_heads, kv_heads>, kvc::head_dim<head_dim>,
                               kvc::sliding_window<32>, kvc::storage<kvc::bf16>>;
using gemma_global =
    kvc::layer<kvc::gqa<q_heads, kv_heads>, kvc::head_dim<head_dim>, kvc::storage<kvc::bf16>>;
struct gemma_like : kvc::model<6, kvc::pattern<gemma_local, gemma_local, gemma_local, gemma_local,
                                               gemma_local, gemma_global>> {};

using paging = kvc::paged<16>;
constexpr int d_model = 128, vocab = 256;
constexpr int qkv_width = (q_heads + 2 * kv_heads) * head_dim;  // one row of the fused projection
// Relative to the largest logit; docs/attention.md states it for 16-bit storage.
constexpr double logit_bound = 0.1;

struct options {
  std::string model = "llama";
  int requests = 12, prompt_max = 80, new_tokens = 24, chunk = 32, draft = 3, check_every = 4;
  int threads = 2, system = 0;
  std::uint32_t seed = 1;
  bool quiet = false;
};

// ---- the decoder: random weights, fused qkv, o-projection and a tanh MLP ----

template <class Model>
struct decoder {
  static constexpr int layers = Model::num_layers;
  std::vector<float> embed, unembed;                  // [vocab][d], [d][vocab]
  std::vector<std::vector<float>> w_qkv, w_o, w_mlp;  // per layer
  std::vector<int> draft_next;                        // the bigram draft model

  explicit decoder(std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    const auto random = [&](std::size_t n, float sd) {
      std::vector<float> v(n);
      for (float& x : v) x = normal(rng) * sd;
      return v;
    };
    const float in = 1.0f / std::sqrt(static_cast<float>(d_model));
    embed = random(std::size_t{vocab} * d_model, 1.0f);
    unembed = random(std::size_t{d_model} * vocab, in);
    for (int l = 0; l < layers; ++l) {
      w_qkv.push_back(random(std::size_t{d_model} * qkv_width, in));
      w_o.push_back(random(std::size_t{q_heads} * head_dim * d_model,
                           0.5f / std::sqrt(static_cast<float>(q_heads * head_dim))));
      w_mlp.push_back(random(std::size_t{d_model} * d_model, in));
    }
    for (int t = 0; t < vocab; ++t)
      draft_next.push_back(argmax(logits_of(&embed[static_cast<std::size_t>(t * d_model)])));
  }

  static void matmul(const float* x, const std::vector<float>& w, int out, float* y) {
    for (int j = 0; j < out; ++j) y[j] = 0;
    for (int i = 0; i < d_model; ++i)
      for (int j = 0; j < out; ++j) y[j] += x[i] * w[static_cast<std::size_t>(i * out + j)];
  }
  // The fused q/k/v projection of RMS-normalized x (as Llama and Gemma normalize).
  void qkv(int l, const float* x, float* row) const {
    double squares = 0;
    for (int i = 0; i < d_model; ++i) squares += static_cast<double>(x[i]) * x[i];
    const auto inverse_rms = static_cast<float>(1.0 / std::sqrt(squares / d_model + 1e-6));
    float normed[d_model];
    for (int i = 0; i < d_model; ++i) normed[i] = x[i] * inverse_rms;
    matmul(normed, w_qkv[static_cast<std::size_t>(l)], qkv_width, row);
  }
  // x += o W_o; x += tanh(x W_mlp).
  void finish_layer(int l, const float* o, float* x) const {
    const auto& wo = w_o[static_cast<std::size_t>(l)];
    for (int i = 0; i < q_heads * head_dim; ++i)
      for (int j = 0; j < d_model; ++j)
        x[j] += o[i] * wo[static_cast<std::size_t>(i * d_model + j)];
    float h[d_model];
    matmul(x, w_mlp[static_cast<std::size_t>(l)], d_model, h);
    for (int j = 0; j < d_model; ++j) x[j] += std::tanh(h[j]);
  }
  std::vector<float> logits_of(const float* x) const {
    std::vector<float> logits(vocab, 0.0f);
    for (int i = 0; i < d_model; ++i)
      for (int v = 0; v < vocab; ++v)
        logits[static_cast<std::size_t>(v)] +=
            x[i] * unembed[static_cast<std::size_t>(i * vocab + v)];
    return logits;
  }
  static int argmax(const std::vector<float>& logits) {
    return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }

  // The logits of the last of `tokens`, without a cache: every layer over the whole history,
  // attention in double precision with the layer's window.
  std::vector<float> logits_without_cache(const std::vector<int>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    std::vector<float> x(static_cast<std::size_t>(n) * d_model);
    for (int t = 0; t < n; ++t)
      std::copy_n(&embed[static_cast<std::size_t>(tokens[static_cast<std::size_t>(t)]) * d_model],
                  d_model, &x[static_cast<std::size_t>(t) * d_model]);
    std::vector<float> rows(static_cast<std::size_t>(n) * qkv_width), o(q_heads * head_dim);
    for (int l = 0; l < layers; ++l) {
      const kvc::layer_summary& s = Model::layer_summaries[static_cast<std::size_t>(l)];
      const kvc::attention::attention_params p = kvc::attention::layer_params<Model>(l);
      for (int t = 0; t < n; ++t)
        qkv(l, &x[static_cast<std::size_t>(t) * d_model],
            &rows[static_cast<std::size_t>(t) * qkv_width]);
      std::vector<float> next = x;
      for (int t = 0; t < n; ++t) {
        for (int h = 0; h < q_heads; ++h) {
          const int kv = h / (q_heads / kv_heads);
          const float* q = &rows[static_cast<std::size_t>(t * qkv_width + h * head_dim)];
          std::vector<double> scores, acc(head_dim, 0.0);
          std::vector<int> seen;
          double most = -1e300;
          for (int j = 0; j <= t; ++j) {
            if (!s.window.visible(t, j)) continue;
            const float* k =
                &rows[static_cast<std::size_t>(j * qkv_width + (q_heads + kv) * head_dim)];
            double dot = 0;
            for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
            scores.push_back(dot * p.scale);
            seen.push_back(j);
            most = std::max(most, scores.back());
          }
          double total = 0;
          for (std::size_t i = 0; i < scores.size(); ++i) {
            const double w = std::exp(scores[i] - most);
            total += w;
            const float* v = &rows[static_cast<std::size_t>(seen[i] * qkv_width +
                                                            (q_heads + kv_heads + kv) * head_dim)];
            for (int d = 0; d < head_dim; ++d) acc[static_cast<std::size_t>(d)] += w * v[d];
          }
          for (int d = 0; d < head_dim; ++d)
            o[static_cast<std::size_t>(h * head_dim + d)] =
                static_cast<float>(acc[static_cast<std::size_t>(d)] / total);
        }
        finish_layer(l, o.data(), &next[static_cast<std::size_t>(t) * d_model]);
      }
      x = next;
    }
    return logits_of(&x[static_cast<std::size_t>(n - 1) * d_model]);
  }
};

// ---- the engine ----

enum class phase { prefill, decode };

struct stream {
  int request = 0;
  kvc::sequence_id sequence;
  std::vector<int> tokens;  // prompt and generated; the cache holds the first length() of them
  int prompt = 0, generated = 0, samples = 1;
  bool speculative = false, sampling = false, done = false;  // sampling: else greedy
  phase state = phase::prefill;
  std::mt19937 rng;
  std::vector<int> drafts;  // this step's draft tokens, verified after it
};

// What a step feeds the model: a row per new token, the decoding sequences' rows first.
struct step_rows {
  std::span<const kvc::append_request> requests;  // the batch, in the step table's order
  std::span<const int> tokens;                    // a token per row
  int decode_rows = 0;                            // the first sequences, one row each
  std::span<const kvc::sequence_id> extend_ids;   // the sequences after them
  std::span<const std::int32_t> extend_offsets;   // their first rows, from 0, and the end
};

// The engine's loop over a Forward that runs a step's rows through every layer (the CPU
// backend's in serve.cpp, the device's in serve_device.cpp):
//   Forward forward(decoder, options);
//   forward.reserve()                        the cache's rollback reserve, in tokens
//   forward.run(cache, plan, rows, x)        appends every layer's K/V (writes, or marks them
//                                            written) and leaves each row's last hidden state in x
template <class Model, class Forward>
class engine {
 public:
  using cache_type = kvc::kv_cache<Model, paging, typename Forward::allocator>;
  static constexpr int layers = Model::num_layers;
  static constexpr auto groups = static_cast<std::size_t>(cache_type::num_groups);

  explicit engine(const options& o)
      : options_(o),
        decoder_(o.seed),
        forward_(decoder_, o),
        cache_(kvc::capacity_bytes{std::uint64_t{64} << 20, 4096, forward_.reserve()}),
        arrivals_(o.seed + 7) {
    std::uniform_int_distribution<int> token(0, vocab - 1);
    for (int t = 0; t < o.system; ++t) system_prompt_.push_back(token(arrivals_));
  }

  int run() {
    while (finished_ < options_.requests) {
      admit();
      step();
      if (step_ > 100000) {
        std::printf("the engine made no progress\n");
        return 1;
      }
    }
    for (int g = 0; g < cache_type::num_groups; ++g)
      if (cache_.used_pages(g) != cache_.cached_pages(g))
        fail("pages are still held after every request finished");
    if (options_.system > 0)
      std::printf("prefix reuse: %lld of %lld prompt tokens reused, %llu pages evicted\n", reused_,
                  prompt_tokens_,
                  static_cast<unsigned long long>(cache_.prefix_stats().evicted_pages));
    std::printf(
        "%s: %d requests (%d samples, %d speculative), %lld tokens in %d steps; "
        "%d of %d draft tokens accepted; %d logit checks, worst %.2e (bound %.2e)\n",
        options_.model.c_str(), options_.requests, samples_, speculative_,
        static_cast<long long>(tokens_), step_, accepted_, drafted_, checks_, worst_, logit_bound);
    if constexpr (requires { forward_.graph_updates(); })
      std::printf("CUDA graphs: %lld steps instantiated one, %lld updated the last in place\n",
                  static_cast<long long>(forward_.graph_instantiations()),
                  static_cast<long long>(forward_.graph_updates()));
    if (failures_ == 0) std::printf("all checks passed\n");
    return failures_ == 0 ? 0 : 1;
  }

 private:
  void fail(const std::string& what) {
    std::printf("CHECK FAILED at step %d: %s\n", step_, what.c_str());
    ++failures_;
  }

  // A new request every other step, up to `requests`; every third asks for 2 samples, every
  // fourth decodes speculatively.
  void admit() {
    if (arrived_ >= options_.requests || step_ % 2 != 0 || streams_.size() >= 10) return;
    stream s;
    s.request = arrived_++;
    std::uniform_int_distribution<int> length(4, options_.prompt_max), token(0, vocab - 1);
    s.tokens = system_prompt_;
    for (int t = length(arrivals_); t > 0; --t) s.tokens.push_back(token(arrivals_));
    s.prompt = static_cast<int>(s.tokens.size());
    if (options_.system > 0) {  // start from what the index holds of the prompt
      const auto tokens = std::span<const int>(s.tokens);
      const auto hit = cache_.find_prefix(tokens);
      s.sequence = cache_.add_sequence(hit);
      reused_ += hit.tokens;
      if (!options_.quiet)
        std::printf("request %d: %d prompt tokens, %lld reused%s%s\n", s.request, s.prompt,
                    static_cast<long long>(hit.tokens), hit.reason.empty() ? "" : ": ",
                    hit.reason.c_str());
    } else {
      s.sequence = cache_.add_sequence();
    }
    prompt_tokens_ += s.prompt;
    s.samples = s.request % 3 == 1 ? 2 : 1;
    s.speculative = options_.draft > 0 && s.request % 4 == 3;
    samples_ += s.samples;
    speculative_ += s.speculative ? 1 : 0;
    s.rng.seed(options_.seed * 1000 + static_cast<std::uint32_t>(s.request));
    streams_.push_back(std::move(s));
  }

  void step() {
    const auto start = std::chrono::steady_clock::now();
    // The batch: decoding streams first (one token each), then prefill chunks and
    // speculative verifications (several tokens each), so that the decode rows are the
    // first sequences of the step's table.
    std::vector<stream*> decodes, extends;
    for (stream& s : streams_) {
      s.drafts.clear();
      if (s.state == phase::prefill) {
        extends.push_back(&s);
      } else if (s.speculative) {
        int last = s.tokens.back();
        for (int k = 0; k < options_.draft; ++k)
          s.drafts.push_back(last = decoder_.draft_next[static_cast<std::size_t>(last)]);
        extends.push_back(&s);
      } else {
        decodes.push_back(&s);
      }
    }
    std::vector<stream*> batch = decodes;
    batch.insert(batch.end(), extends.begin(), extends.end());
    if (batch.empty()) {
      ++step_;
      return;
    }
    std::vector<kvc::append_request> requests;
    std::vector<int> fed;  // the tokens this step feeds, row by row
    std::vector<std::int32_t> qo{0};
    for (stream* s : batch) {
      const auto held = static_cast<int>(cache_.length(s->sequence));
      int n = 1;
      if (s->state == phase::prefill) n = std::min(options_.chunk, s->prompt - held);
      for (int t = 0; t < n; ++t) fed.push_back(s->tokens[static_cast<std::size_t>(held + t)]);
      for (int d : s->drafts) fed.push_back(d);
      n += static_cast<int>(s->drafts.size());
      requests.push_back({s->sequence, n});
      if (s->state == phase::prefill || s->speculative) qo.push_back(qo.back() + n);
    }
    const auto rows = static_cast<int>(fed.size());
    std::vector<kvc::sequence_id> extend_ids;
    for (stream* s : extends) extend_ids.push_back(s->sequence);
    kvc::append_plan plan = cache_.plan_append(requests);
    std::vector<float> x;  // each row's hidden state after the last layer
    forward_.run(cache_, plan,
                 step_rows{requests, fed, static_cast<int>(decodes.size()), extend_ids, qo}, x);
    cache_.commit(plan);
    if (options_.system > 0)  // each prefill chunk's pages, for the prompts that follow
      for (stream* s : extends)
        if (s->state == phase::prefill)
          cache_.store_prefix(s->sequence,
                              std::span<const int>(s->tokens).first(
                                  static_cast<std::size_t>(cache_.length(s->sequence))));

    // Sample, verify drafts, roll back, fork, finish.
    bool checked = false;
    const bool check_now = options_.check_every > 0 && step_ % options_.check_every == 0;
    int row = 0;
    std::vector<stream> children;
    for (std::size_t b = 0; b < batch.size(); ++b) {
      stream* s = batch[b];
      const int n = static_cast<int>(requests[b].tokens);
      const int last_row = row + n - 1;
      const auto logits_at = [&](int r) {
        return decoder_.logits_of(&x[static_cast<std::size_t>(r) * d_model]);
      };
      if (s->state == phase::prefill) {
        if (cache_.length(s->sequence) == s->prompt) {
          const std::vector<float> logits = logits_at(last_row);
          if (check_now && !checked) checked = check_logits(*s, s->tokens, logits);
          s->state = phase::decode;
          // More samples: children share the prompt's pages and sample their own first token.
          for (int c = 1; c < s->samples; ++c) {
            stream child;
            child.request = s->request;
            child.sequence = cache_.fork(s->sequence);
            child.tokens = s->tokens;
            child.prompt = s->prompt;
            child.state = phase::decode;
            child.rng.seed(options_.seed * 7777 + static_cast<std::uint32_t>(s->request * 10 + c));
            child.sampling = true;
            child.tokens.push_back(sample(logits, child.rng));
            child.generated = 1;
            children.push_back(std::move(child));
          }
          s->tokens.push_back(decoder_.argmax(logits));
          s->generated = 1;
        }
      } else if (s->speculative) {
        // Rows: the last accepted token, then the drafts. Accept drafts while they are what
        // the model would have chosen; the token after the last accepted one is the model's.
        const std::size_t base = s->tokens.size();
        int accepted = 0;
        std::vector<float> logits = logits_at(row);
        while (accepted < static_cast<int>(s->drafts.size()) &&
               decoder_.argmax(logits) == s->drafts[static_cast<std::size_t>(accepted)]) {
          s->tokens.push_back(s->drafts[static_cast<std::size_t>(accepted)]);
          ++accepted;
          logits = logits_at(row + accepted);
        }
        accepted_ += accepted;
        drafted_ += static_cast<int>(s->drafts.size());
        // The cache holds the drafts; the rejected ones go.
        cache_.truncate(s->sequence, static_cast<std::int64_t>(base) + accepted);
        if (check_now && !checked) checked = check_logits(*s, s->tokens, logits);
        s->tokens.push_back(decoder_.argmax(logits));
        s->generated += accepted + 1;
      } else {
        const std::vector<float> logits = logits_at(last_row);
        if (check_now && !checked) checked = check_logits(*s, s->tokens, logits);
        s->tokens.push_back(s->sampling ? sample(logits, s->rng) : decoder_.argmax(logits));
        ++s->generated;
      }
      row += n;
      if (s->state == phase::decode && s->generated >= options_.new_tokens) s->done = true;
    }
    for (stream& c : children) streams_.push_back(std::move(c));
    for (stream& s : streams_)
      if (s.done) {
        cache_.release(s.sequence);
        ++finished_streams_;
        if (--remaining_samples(s.request) == 0) ++finished_;
      }
    std::erase_if(streams_, [](const stream& s) { return s.done; });

    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    tokens_ += rows;
    // What the cache holds against the footprint of the live sequences (shared prompt pages
    // are held once, but counted by each fork).
    std::uint64_t predicted = 0;
    for (const stream& s : streams_)
      predicted += kvc::footprint<Model, paging>::bytes_for_tokens(cache_.length(s.sequence),
                                                                   forward_.reserve());
    const std::uint64_t held = cache_.used_bytes() - cache_.cached_bytes();
    if (held > predicted) fail("the cache holds more than the footprint predicts");
    if (!options_.quiet)
      std::printf(
          "step %3d: batch %2zu (%zu decode, %zu extend), %4d tokens, %8.0f tokens/s, "
          "KV %7.1f KiB held, footprint %7.1f KiB\n",
          step_, batch.size(), decodes.size(), extends.size(), rows, rows / seconds,
          static_cast<double>(held) / 1024, static_cast<double>(predicted) / 1024);
    ++step_;
  }

  int& remaining_samples(int request) {
    if (remaining_.size() <= static_cast<std::size_t>(request))
      remaining_.resize(static_cast<std::size_t>(request) + 1, -1);
    int& r = remaining_[static_cast<std::size_t>(request)];
    if (r < 0) r = request % 3 == 1 ? 2 : 1;
    return r;
  }

  static int sample(const std::vector<float>& logits, std::mt19937& rng) {
    std::vector<double> weights;
    const float most = *std::max_element(logits.begin(), logits.end());
    for (float l : logits) weights.push_back(std::exp(static_cast<double>(l - most)));
    return std::discrete_distribution<int>(weights.begin(), weights.end())(rng);
  }

  // The engine's logits for the last of `history` against a recomputation without a cache.
  bool check_logits(const stream& s, const std::vector<int>& history,
                    const std::vector<float>& got) {
    const std::vector<float> want = decoder_.logits_without_cache(history);
    double worst = 0, scale = 0;
    for (std::size_t v = 0; v < got.size(); ++v) {
      worst = std::max(worst, std::fabs(static_cast<double>(got[v]) - want[v]));
      scale = std::max(scale, std::fabs(static_cast<double>(want[v])));
    }
    const double relative = worst / scale;
    worst_ = std::max(worst_, relative);
    ++checks_;
    if (relative > logit_bound)
      fail("request " + std::to_string(s.request) + ": logits differ by " +
           std::to_string(relative) + " of the largest");
    return true;
  }

  options options_;
  decoder<Model> decoder_;
  Forward forward_;
  cache_type cache_;
  std::mt19937 arrivals_;
  std::vector<stream> streams_;
  std::vector<int> remaining_;
  int step_ = 0, arrived_ = 0, finished_ = 0, finished_streams_ = 0, failures_ = 0;
  int samples_ = 0, speculative_ = 0, accepted_ = 0, drafted_ = 0, checks_ = 0;
  long long tokens_ = 0, reused_ = 0, prompt_tokens_ = 0;
  double worst_ = 0;
  std::vector<int> system_prompt_;
};

inline void print_usage(std::FILE* to) {
  const options d;
  std::fprintf(
      to,
      "usage: serve [options]\n"
      "A miniature inference engine on kvc: continuous batching, chunked prefill, forks,\n"
      "speculative decoding with rollback; logits checked against a recomputation.\n"
      "  --model llama|gemma  GQA decoder, or five sliding-window layers per global one (%s)\n"
      "  --requests N         requests served (%d)\n"
      "  --prompt-max T       longest prompt, at least 4 (%d)\n"
      "  --new-tokens T       tokens generated per request (%d)\n"
      "  --chunk T            prefill chunk (%d)\n"
      "  --draft K            draft tokens per speculative step, 0 for none (%d)\n"
      "  --check-every S      check the logits every S steps (%d)\n"
      "  --threads N          CPU threads (%d)\n"
      "  --system T           a system prompt of T tokens begins every prompt, served from\n"
      "                       the prefix index after the first request (%d: none)\n"
      "  --seed S             random seed (%u)\n"
      "  --quiet              print the summary only\n"
      "  --help               this text\n"
      "Exit status 0 when every check passed.\n",
      d.model.c_str(), d.requests, d.prompt_max, d.new_tokens, d.chunk, d.draft, d.check_every,
      d.threads, d.system, d.seed);
}

inline options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      std::exit(0);
    }
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "serve: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--model")
      o.model = next();
    else if (arg == "--requests")
      o.requests = std::stoi(next());
    else if (arg == "--prompt-max")
      o.prompt_max = std::stoi(next());
    else if (arg == "--new-tokens")
      o.new_tokens = std::stoi(next());
    else if (arg == "--chunk")
      o.chunk = std::stoi(next());
    else if (arg == "--draft")
      o.draft = std::stoi(next());
    else if (arg == "--check-every")
      o.check_every = std::stoi(next());
    else if (arg == "--threads")
      o.threads = std::stoi(next());
    else if (arg == "--system")
      o.system = std::stoi(next());
    else if (arg == "--seed")
      o.seed = static_cast<std::uint32_t>(std::stoul(next()));
    else if (arg == "--quiet")
      o.quiet = true;
    else {
      std::fprintf(stderr, "serve: unknown option %s\n", arg.c_str());
      print_usage(stderr);
      std::exit(2);
    }
  }
  if (o.requests < 1 || o.prompt_max < 4 || o.new_tokens < 1 || o.chunk < 1 || o.draft < 0 ||
      o.threads < 1 || o.system < 0) {
    std::fprintf(stderr, "serve: sizes must be positive (prompt-max at least 4)\n");
    std::exit(2);
  }
  return o;
}

// Parses the options and serves with Forward<Model> for the model they name.
template <template <class> class Forward>
int serve_main(int argc, char** argv) {
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception&) {  // std::stoi of a value that is not a number
    std::fprintf(stderr, "serve: an option's value is not a number\n");
    print_usage(stderr);
    return 2;
  }
  if (o.model == "llama") return engine<llama_like, Forward<llama_like>>(o).run();
  if (o.model == "gemma") return engine<gemma_like, Forward<gemma_like>>(o).run();
  std::fprintf(stderr, "serve: --model is llama or gemma\n");
  return 2;
}

}  // namespace serve
