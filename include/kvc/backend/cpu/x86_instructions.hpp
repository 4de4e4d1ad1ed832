#pragma once
// The instructions the group kernels write as inline assembly, each in one place: the
// assembler takes them without the target that the intrinsic would need (AVX-512 BF16), and
// an accumulator written in place stays in its register (GCC 12 moves the accumulator of
// _mm256_dpwssd_epi32 out of its register and back around every use in a loop: two copies
// per instruction, which Ice Lake does not eliminate). The register class is the caller's
// choice where it matters: "v" allows the 16 upper AVX-512 registers (kernels compiled for
// AVX-512), "x" keeps the 16 VEX ones (GCC otherwise shuffles sums through the upper ones).

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#include <immintrin.h>

namespace kvc::cpu::x86 {

/// acc += the pairwise int16 products of a and b (vpdpwssd, AVX-512 VNNI), any register.
[[gnu::target("avx2"), gnu::always_inline]] inline void dpwssd_any(__m256i& acc, __m256i a,
                                                                   __m256i b) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}
/// The same in the 16 VEX registers.
[[gnu::target("avx2"), gnu::always_inline]] inline void dpwssd_vex(__m256i& acc, __m256i a,
                                                                   __m256i b) {
  asm("vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
}
/// vpdpwssd on 16 lanes.
[[gnu::target("avx512f"), gnu::always_inline]] inline void dpwssd_any(__m512i& acc, __m512i a,
                                                                      __m512i b) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}
/// acc += the four products of a's unsigned bytes and b's signed bytes in each lane
/// (vpdpbusd, AVX-512 VNNI).
[[gnu::target("avx512f"), gnu::always_inline]] inline void dpbusd(__m512i& acc, __m512i a,
                                                                  __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}
/// 16 floats rounded to bf16, to nearest even (vcvtneps2bf16, AVX-512 BF16).
[[gnu::target("avx512f"), gnu::always_inline]] inline __m256i cvtneps2bf16(__m512 x) {
  __m256i rounded;
  asm("vcvtneps2bf16 %1, %0" : "=v"(rounded) : "v"(x));
  return rounded;
}
/// acc += a.bf16[2i] b.bf16[2i] + a.bf16[2i + 1] b.bf16[2i + 1] in each lane i (vdpbf16ps,
/// AVX-512 BF16).
[[gnu::target("avx512f"), gnu::always_inline]] inline void dpbf16ps(__m512& acc, __m512i a,
                                                                    __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

}  // namespace kvc::cpu::x86
#endif
