#pragma once
// What the host CPU can run, detected once for the process: the one place kvc asks the CPU
// (the storage conversions and the CPU backend's kernel choice both read it). A value, so
// that tests and benchmarks can narrow it to run the kernels an older CPU would:
//
//   const kvc::cpu_features& cpu = kvc::cpu_features::detected();
//   cpu.avx512;                            // AVX-512 F/BW/VL/DQ, with the OS saving its state
//   kvc::cpu_features::avx2_only();        // what a CPU without AVX-512 reports
//   cpu.describe();                        // "avx2 f16c fma avx512 vnni bf16"

#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#include <cpuid.h>
#endif

namespace kvc {

struct cpu_features {
  bool avx2_f16c = false;    ///< AVX2 and F16C: the 8-lane conversions and loads
  bool fma = false;          ///< FMA3: with avx2_f16c, the 8-lane attention kernels
  bool avx512 = false;       ///< AVX-512 F/BW/VL/DQ (and the above): the 16-lane kernels
  bool avx512_vnni = false;  ///< AVX-512 VNNI (and avx512): int8 dot products in integers
  bool avx512_bf16 = false;  ///< AVX-512 BF16 (and avx512): the bf16 products option

  /// Returns whether the 8-lane attention kernels may run.
  constexpr bool avx2_fma() const { return avx2_f16c && fma; }

  /// Returns the features of this CPU, asked once (libgcc and compiler-rt report the AVX-512 ones
  /// only where the OS saves the 512-bit state). None off x86-64 or under nvcc.
  static const cpu_features& detected() {
    static const cpu_features features = detect();
    return features;
  }
  /// Returns no feature: the portable code only.
  static constexpr cpu_features none() { return {}; }
  /// Returns a CPU with AVX2, F16C and FMA but no AVX-512 (Zen 2, Haswell to Comet Lake).
  static constexpr cpu_features avx2_only() { return {true, true, false, false, false}; }

  /// Returns these features and the other's, no more: a CPU narrowed to what both allow.
  constexpr cpu_features operator&(const cpu_features& other) const {
    return {avx2_f16c && other.avx2_f16c, fma && other.fma, avx512 && other.avx512,
            avx512_vnni && other.avx512_vnni, avx512_bf16 && other.avx512_bf16};
  }
  friend constexpr bool operator==(const cpu_features&, const cpu_features&) = default;

  /// Returns the features present, by their instruction-set names ("none" for none).
  std::string describe() const {
    std::string text;
    const auto add = [&](bool present, const char* name) {
      if (!present) return;
      if (!text.empty()) text += ' ';
      text += name;
    };
    add(avx2_f16c, "avx2 f16c");
    add(fma, "fma");
    add(avx512, "avx512");
    add(avx512_vnni, "vnni");
    add(avx512_bf16, "bf16");
    return text.empty() ? "none" : text;
  }

 private:
  static cpu_features detect() {
    cpu_features f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    f.avx2_f16c = f16c && __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512 = f.avx2_f16c && f.fma && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
    f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
    f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    return f;
  }
};

}  // namespace kvc
