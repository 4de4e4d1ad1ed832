#pragma once
// The round-trip bounds docs/cache.md states for a value x stored in the cache, in a
// token-head vector whose largest magnitude is amax, by storage dtype (fp8 with its layer's
// scale, for |x| / scale within the format's range).

#include <cmath>

#include "kvc/policy/storage.hpp"

namespace kvc::testing {

inline double storage_bound(dtype_id type, double x, double amax, double fp8_scale = 1.0) {
  const double ax = std::fabs(x);
  switch (type) {
    case dtype_id::fp32:
      return 0;
    case dtype_id::fp16:
      return ax * 0x1p-11 + 0x1p-25;
    case dtype_id::bf16:
      return ax * 0x1p-8 + 0x1p-134;
    case dtype_id::fp8_e4m3:
      return ax * (0x1p-4 + 0x1p-22) + fp8_scale * 0x1p-10;
    case dtype_id::fp8_e5m2:
      return ax * (0x1p-3 + 0x1p-22) + fp8_scale * 0x1p-17;
    case dtype_id::int8:
      return amax / 254 + ax * 0x1p-21;
    case dtype_id::int4:
      return amax / 14 + ax * 0x1p-21;
  }
  return 0;
}

}  // namespace kvc::testing
