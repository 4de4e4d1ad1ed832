#pragma once
// Which CPU kernels run for a layer, decided in one place and printable, as CUB's tuning
// policies are: a function of the layer's page geometry, its query group, the caller's
// options and the CPU's features. decode and extend both take the options and run what this
// returns; tests narrow the features to run what an older CPU would; benchmarks print it.
//
//   kvc::cpu::cpu_options options;                  // the CPU's features, the default numerics
//   options.features = kvc::cpu_features::avx2_only();   // as on a CPU without AVX-512
//   options.int8_query = true;                      // opt in to a looser bound (docs/attention.md)
//   const auto choice = kvc::cpu::choose_kernels(view.geometry, group, options);
//   choice.describe();   // "blocks avx2, load avx2/avx2, group scores int8 avx2, values float
//   avx2" kvc::cpu::decode(plan, view, q, out, lse, params, workspace, parallel, options);

#include <string>

#include "kvc/model/page_geometry.hpp"
#include "kvc/numeric/cpu_features.hpp"
#include "kvc/policy/storage.hpp"

namespace kvc::cpu {

/// What the caller lets the CPU kernels do: the features they may use (the CPU's by default;
/// narrowed, the kernels of an older CPU) and the numerics options of docs/attention.md.
struct cpu_options {
  cpu_features features = cpu_features::detected();
  /// int8 keys and values in integers (bounds in docs/attention.md); false keeps them in float.
  bool integer_scores = true;
  /// int8 keys scored against the query rounded to 8 bits (AVX-512 VNNI; off by default: its
  /// bound is 258x the 16-bit rounding's).
  bool int8_query = false;
  /// bf16 keys and values multiplied as stored by the query and the weights rounded to bf16
  /// (AVX-512 BF16, dims a multiple of 32; off by default: a looser bound).
  bool bf16_products = false;
};

/// An instruction set a kernel family runs on.
enum class cpu_isa : unsigned char { portable, avx2, avx512 };

/// The kernels that score keys (or weigh values) of a small query group straight from
/// their stored dtype (group_kernels.hpp); none: the block kernels over float copies.
enum class group_path : unsigned char {
  none,
  float_avx2,     ///< stored values converted in registers, float products, 8 lanes
  float_avx512,   ///< the same on 16 lanes (every dtype but int4)
  int8_avx2,      ///< int8 in integers against the query rounded to int16 (vpmaddwd)
  int8_vnni,      ///< the same with vpdpwssd on 8 lanes (values: weights rounded to int16)
  int8_avx512,    ///< the same with vpdpwssd on 16 lanes
  int8_query,     ///< scores: the query rounded to 8 bits (vpdpbusd), the option
  bf16_products,  ///< bf16 as stored times the query or weights rounded to bf16 (vdpbf16ps)
};

/// The largest query group the group kernels take (GQA, MHA and most MQA layers).
inline constexpr int max_kernel_group = 8;

/// Which kernels run: one value, compared in tests and printed by benchmarks.
struct kernel_choice {
  cpu_isa blocks = cpu_isa::portable;       ///< float tiles: MLA, groups above 8, extend
  cpu_isa load_keys = cpu_isa::portable;    ///< stored keys to float blocks
  cpu_isa load_values = cpu_isa::portable;  ///< stored values to float blocks
  group_path scores = group_path::none;     ///< decode's keys, for groups up to 8
  group_path values = group_path::none;     ///< decode's values, for groups up to 8

  bool grouped() const { return scores != group_path::none; }
  friend constexpr bool operator==(const kernel_choice&, const kernel_choice&) = default;

  std::string describe() const {
    std::string text = std::string("blocks ") + name(blocks) + ", load " + name(load_keys) + "/" +
                       name(load_values);
    if (grouped())
      text += std::string(", group scores ") + name(scores) + ", values " + name(values);
    return text;
  }
  static const char* name(cpu_isa isa) {
    switch (isa) {
      case cpu_isa::avx2:
        return "avx2";
      case cpu_isa::avx512:
        return "avx512";
      default:
        return "portable";
    }
  }
  static const char* name(group_path path) {
    switch (path) {
      case group_path::float_avx2:
        return "float avx2";
      case group_path::float_avx512:
        return "float avx512";
      case group_path::int8_avx2:
        return "int8 avx2";
      case group_path::int8_vnni:
        return "int8 vnni";
      case group_path::int8_avx512:
        return "int8 avx512";
      case group_path::int8_query:
        return "int8 query";
      case group_path::bf16_products:
        return "bf16 products";
      default:
        return "none";
    }
  }
};

/// Returns the kernels for a layer of geometry `geo` whose KV heads each serve `group` query heads.
inline kernel_choice choose_kernels(const page_geometry& geo, int group,
                                    const cpu_options& options) {
  const cpu_features& cpu = options.features;
  kernel_choice c;
  const auto load = [&](int dim) {
    return dim % 8 == 0 && cpu.avx2_f16c ? cpu_isa::avx2 : cpu_isa::portable;
  };
  c.load_keys = load(geo.k_dim);
  c.load_values = load(geo.v_dim);
  if (!cpu.avx2_fma() || geo.k_dim % 8 != 0 || geo.v_dim % 8 != 0) return c;
  c.blocks = cpu.avx512 ? cpu_isa::avx512 : cpu_isa::avx2;
  if (geo.latent || group < 1 || group > max_kernel_group) return c;

  const bool vnni = cpu.avx512_vnni;
  const auto in_float = [&](dtype_id type) {
    return cpu.avx512 && type != dtype_id::int4 ? group_path::float_avx512 : group_path::float_avx2;
  };
  c.scores = in_float(geo.k_type);
  if (geo.k_type == dtype_id::int8 && geo.k_dim % 16 == 0 && options.integer_scores) {
    c.scores = cpu.avx512 && vnni ? group_path::int8_avx512
               : vnni             ? group_path::int8_vnni
                                  : group_path::int8_avx2;
    if (options.int8_query && cpu.avx512 && vnni) c.scores = group_path::int8_query;
  }
  c.values = in_float(geo.v_type);
  if (geo.v_type == dtype_id::int8 && options.integer_scores && vnni)
    c.values = cpu.avx512 ? group_path::int8_avx512 : group_path::int8_vnni;
  if (options.bf16_products && cpu.avx512 && cpu.avx512_bf16) {
    if (geo.k_type == dtype_id::bf16 && geo.k_dim % 32 == 0) c.scores = group_path::bf16_products;
    if (geo.v_type == dtype_id::bf16 && geo.v_dim % 32 == 0) c.values = group_path::bf16_products;
  }
  return c;
}

}  // namespace kvc::cpu
