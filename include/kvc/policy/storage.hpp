#pragma once
// Storage dtypes of the cache, and the storage<K, V> policy that picks them.
//
// fp8 values are stored with one scale per layer for K and one for V (kept outside
// the pages); int8 and int4 with one fp32 scale per token and per KV head, stored
// beside the page data and counted in the footprint. int4 packs two values per byte.

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "kvc/policy/family.hpp"

namespace kvc {

enum class dtype_id : std::uint8_t { fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, int4 };

enum class scaling : std::uint8_t {
  none,            ///< values are stored as they are
  per_layer,       ///< one scale for all of a layer's K (and one for its V)
  per_token_head,  ///< one scale per token and KV head, stored beside the values
};

/// Bytes of one stored scale (fp32).
inline constexpr int scale_bytes = 4;

namespace detail {
template <dtype_id Id, int Bits, scaling Scaling>
struct dtype_tag {
  static constexpr dtype_id id = Id;
  static constexpr int bits = Bits;
  static constexpr scaling scale = Scaling;
};
}  // namespace detail

struct fp32 : detail::dtype_tag<dtype_id::fp32, 32, scaling::none> {
  static constexpr std::string_view name = "fp32";
};
struct fp16 : detail::dtype_tag<dtype_id::fp16, 16, scaling::none> {
  static constexpr std::string_view name = "fp16";
};
struct bf16 : detail::dtype_tag<dtype_id::bf16, 16, scaling::none> {
  static constexpr std::string_view name = "bf16";
};
struct fp8_e4m3 : detail::dtype_tag<dtype_id::fp8_e4m3, 8, scaling::per_layer> {
  static constexpr std::string_view name = "fp8_e4m3";
};
struct fp8_e5m2 : detail::dtype_tag<dtype_id::fp8_e5m2, 8, scaling::per_layer> {
  static constexpr std::string_view name = "fp8_e5m2";
};
struct int8 : detail::dtype_tag<dtype_id::int8, 8, scaling::per_token_head> {
  static constexpr std::string_view name = "int8";
};
struct int4 : detail::dtype_tag<dtype_id::int4, 4, scaling::per_token_head> {
  static constexpr std::string_view name = "int4";
};

template <class T>
concept storage_dtype = std::is_same_v<T, fp32> || std::is_same_v<T, fp16> ||
    std::is_same_v<T, bf16> || std::is_same_v<T, fp8_e4m3> || std::is_same_v<T, fp8_e5m2> ||
    std::is_same_v<T, int8> || std::is_same_v<T, int4>;

/// Calls f(tag) with the tag of a dtype known only at run time (a view's, a tensor's): the one
/// table from dtype_id to tag.
template <class F>
constexpr decltype(auto) visit_dtype(dtype_id id, F&& f) {
  switch (id) {
    case dtype_id::fp32:
      return f(fp32{});
    case dtype_id::fp16:
      return f(fp16{});
    case dtype_id::bf16:
      return f(bf16{});
    case dtype_id::fp8_e4m3:
      return f(fp8_e4m3{});
    case dtype_id::fp8_e5m2:
      return f(fp8_e5m2{});
    case dtype_id::int8:
      return f(int8{});
    case dtype_id::int4:
      break;
  }
  return f(int4{});
}

constexpr int dtype_bits(dtype_id id) {
  return visit_dtype(id, [](auto tag) { return decltype(tag)::bits; });
}
constexpr scaling dtype_scaling(dtype_id id) {
  return visit_dtype(id, [](auto tag) { return decltype(tag)::scale; });
}
constexpr std::string_view dtype_name(dtype_id id) {
  return visit_dtype(id, [](auto tag) { return decltype(tag)::name; });
}

/// Returns the bytes that one token-head vector of `dim` values takes, its scale included.
template <storage_dtype DType>
constexpr std::uint64_t vector_bytes(int dim) {
  return static_cast<std::uint64_t>(dim) * DType::bits / 8 +
         (DType::scale == scaling::per_token_head ? scale_bytes : 0);
}

namespace detail {
template <class KType, class VType>
struct storage_checks {
  static_assert(storage_dtype<KType>,
                "kvc::storage<K, V>: K must be one of fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, "
                "int8, int4");
  static_assert(std::is_same_v<KType, VType> || storage_dtype<VType>,
                "kvc::storage<K, V>: V must be one of fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, "
                "int8, int4");
};
}  // namespace detail

template <class KType, class VType = KType>
struct storage {
  static_assert(sizeof(detail::storage_checks<KType, VType>) > 0);  // the checks, kept apart

  static constexpr policy_family family = policy_family::storage;
  // After a failed check, fp32 stands in so that no second error follows.
  using k_type = std::conditional_t<storage_dtype<KType>, KType, fp32>;
  using v_type = std::conditional_t<storage_dtype<VType>, VType, fp32>;
};

}  // namespace kvc
