// kv_cache on device memory: the same appends, forks and reads as a host cache, compared
// value for value. Runs where a GPU is present; reports itself skipped elsewhere.

#include <cuda_runtime.h>

#include "device_present.hpp"

#include <cstdio>
#include <vector>

#include "kvc/backend/cuda/device_allocator.hpp"
#include "kvc/cache/kv_cache.hpp"

namespace {
using namespace kvc;
using local = layer<gqa<4, 2>, head_dim<16>, sliding_window<12>, storage<int8>>;
using global = layer<gqa<4, 2>, head_dim<16>, storage<fp8_e4m3, bf16>>;
struct small_model : model<4, pattern<local, global>> {};

template <class Cache>
void fill(Cache& cache, sequence_id s, int tokens, float start) {
  std::vector<float> k(static_cast<std::size_t>(tokens) * 32), v(k.size());
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = start + 0.01f * static_cast<float>(i);
    v[i] = -start - 0.02f * static_cast<float>(i);
  }
  std::vector<layer_input> in;
  for (int l = 0; l < 4; ++l)
    in.push_back({l, fp32_input(k.data(), tokens, 2, 16), fp32_input(v.data(), tokens, 2, 16)});
  const append_request r{s, tokens};
  cache.append({&r, 1}, in);
}
}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  kv_cache<small_model, paged<4>, cuda::device_allocator> device(capacity_pages{32});
  kv_cache<small_model, paged<4>> host(capacity_pages{32});
  const sequence_id d = device.add_sequence(), h = host.add_sequence();
  fill(device, d, 13, 1.0f);
  fill(host, h, 13, 1.0f);
  const sequence_id dc = device.fork(d), hc = host.fork(h);
  fill(device, dc, 6, 5.0f);  // copy-on-write on the device
  fill(host, hc, 6, 5.0f);
  int differences = 0;
  const std::pair<sequence_id, sequence_id> pairs[] = {{d, h}, {dc, hc}};
  for (const auto& [ds, hs] : pairs)
    for (int l = 0; l < 4; ++l)
      for (std::int64_t p = 0; p < host.length(hs); ++p) {
        float kd[32], vd[32], kh[32], vh[32];
        const bool kept_d = device.read(ds, l, p, kd, vd), kept_h = host.read(hs, l, p, kh, vh);
        if (kept_d != kept_h) ++differences;
        if (!kept_h) continue;
        for (int i = 0; i < 32; ++i) differences += (kd[i] != kh[i]) + (vd[i] != vh[i]);
      }
  std::printf("%d differences between the device and the host cache\n", differences);
  return differences == 0 ? 0 : 1;
}
