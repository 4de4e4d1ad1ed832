// The SIMT context on a GPU: the kernels that test_simt runs in the host emulator, launched
// through kvc::cuda::launch, against the same host expectations. Runs where a GPU is
// present; reports itself skipped elsewhere. Compiling it for sm_80 and sm_90 is itself a
// check that the shared kernels build as device code.

#include <cuda_runtime.h>

#include "device_present.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kvc/backend/cuda/launch.cuh"
#include "kvc/kernels/row_sums.hpp"
#include "kvc/numeric/half.hpp"
#include "mma_probe.hpp"
#include "named_barrier_runs.hpp"
#include "simt_probe.hpp"

namespace {

int failures = 0;

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  std::printf("FAILED: %s: %s\n", call, cudaGetErrorString(status));
  ++failures;
}

template <class T>
T* device_copy(const std::vector<T>& host) {
  T* device = nullptr;
  check(cudaMalloc(&device, host.size() * sizeof(T)), "cudaMalloc");
  check(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
        "cudaMemcpy");
  return device;
}

template <class T>
std::vector<T> host_copy(const T* device, std::size_t count) {
  std::vector<T> host(count);
  check(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return host;
}

template <unsigned Threads>
void probe(unsigned blocks) {
  std::vector<kvc::testing::probe_record> records(blocks * Threads);
  kvc::testing::probe_record* device = device_copy(records);
  kvc::cuda::launch({blocks, 1, 1}, kvc::kernels::block_shape<Threads>{}, 0, nullptr,
                    kvc::testing::shuffle_probe{device});
  check(cudaDeviceSynchronize(), "probe kernel");
  records = host_copy(device, records.size());
  cudaFree(device);
  int wrong = 0;
  for (unsigned i = 0; i < blocks * Threads; ++i)
    wrong += !(records[i] == kvc::testing::expected_probe(i % Threads, Threads));
  std::printf("probe, %u threads per block: %d wrong records\n", Threads, wrong);
  failures += wrong;
}

void row_sums(std::uint32_t rows, std::uint32_t columns, std::uint32_t tile) {
  std::vector<float> input(std::size_t{rows} * columns), sums(rows, -1.0f);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 9) - 3.0f;
  float* device_input = device_copy(input);
  float* device_sums = device_copy(sums);
  kvc::cuda::launch({rows, 1, 1}, kvc::kernels::block_shape<128>{}, tile * sizeof(float), nullptr,
                    kvc::kernels::row_sums{device_input, device_sums, columns, tile});
  check(cudaDeviceSynchronize(), "row_sums kernel");
  sums = host_copy(device_sums, rows);
  cudaFree(device_input);
  cudaFree(device_sums);
  int wrong = 0;
  for (std::uint32_t r = 0; r < rows; ++r) {
    float expected = 0.0f;
    for (std::uint32_t c = 0; c < columns; ++c) expected += input[std::size_t{r} * columns + c];
    wrong += sums[r] != expected;  // small integers: exact in any order
  }
  std::printf("row_sums, %u x %u, tiles of %u: %d wrong rows\n", rows, columns, tile, wrong);
  failures += wrong;
}

// The warp matrix multiply-accumulate on small integers (every sum exact): each element of D
// against the plain product, so that a fragment layout the hardware does not share fails here.
// With through_ldmatrix, the fragments come from shared memory by ldmatrix (A as stored, B
// transposed), as the extend kernel loads them.
void mma(bool bf16, unsigned problems, bool through_ldmatrix = false) {
  using kvc::testing::mma_a_size;
  using kvc::testing::mma_b_size;
  using kvc::testing::mma_c_size;
  const auto bits = [&](float x) {
    return bf16 ? kvc::numeric::bf16_from_float(x) : kvc::numeric::fp16_from_float(x);
  };
  std::vector<std::uint16_t> a(problems * mma_a_size), b(problems * mma_b_size);
  std::vector<float> af(a.size()), bf(b.size()), c(problems * mma_c_size), d(c.size(), -1.0f);
  for (std::size_t i = 0; i < a.size(); ++i)
    a[i] = bits(af[i] = static_cast<float>((i * 3 + 1) % 7) - 3);
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = bits(bf[i] = static_cast<float>((i * 5 + 2) % 7) - 3);
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>(i % 21) - 10;
  std::uint16_t *da = device_copy(a), *db = device_copy(b);
  float *dc = device_copy(c), *dd = device_copy(d);
  kvc::cuda::launch({problems / 2, 1, 1}, kvc::kernels::block_shape<64>{},
                    2 * kvc::testing::mma_probe::ldmatrix_shared_bytes, nullptr,
                    kvc::testing::mma_probe{da, db, dc, dd, bf16, false, through_ldmatrix});
  check(cudaDeviceSynchronize(), "mma kernel");
  d = host_copy(dd, d.size());
  for (void* p : {static_cast<void*>(da), static_cast<void*>(db), static_cast<void*>(dc),
                  static_cast<void*>(dd)})
    cudaFree(p);
  int wrong = 0;
  for (unsigned p = 0; p < problems; ++p)
    for (unsigned m = 0; m < 16; ++m)
      for (unsigned n = 0; n < 8; ++n) {
        float want = c[p * mma_c_size + m * 8 + n];
        for (unsigned k = 0; k < 16; ++k)
          want += af[p * mma_a_size + m * 16 + k] * bf[p * mma_b_size + k * 8 + n];
        wrong += d[p * mma_c_size + m * 8 + n] != want;
      }
  std::printf("mma m16n8k16 %s%s, %u problems: %d wrong elements\n", bf16 ? "bf16" : "fp16",
              through_ldmatrix ? " (ldmatrix)" : "", problems, wrong);
  failures += wrong;
}

}  // namespace

int main() {
  if (!kvc::testing::device_present()) return 0;
  probe<32>(2);
  probe<48>(2);
  probe<96>(1);
  probe<100>(1);
  probe<128>(2);
  probe<1024>(1);
  row_sums(5, 100, 32);
  row_sums(64, 4096, 16 * 1024);  // 64 KiB of shared memory: above the default 48 KiB
  mma(false, 4);
  mma(true, 4);
  mma(false, 4, true);
  mma(true, 4, true);
  // More blocks than the SMs hold at once; a failed kernel counts as one failure.
  failures += std::abs(kvc::testing::run_named_barrier_ring<false>(2000, 9));
  failures += std::abs(kvc::testing::run_named_barrier_ping_pong(64));
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
