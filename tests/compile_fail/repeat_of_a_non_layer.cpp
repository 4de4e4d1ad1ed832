// expect: kvc::repeat<N, X>: X must be a layer spec
#include "kvc/kvc.hpp"

struct m : kvc::model<4, int> {};
[[maybe_unused]] constexpr auto probe = kvc::footprint<m>::bytes_per_token;
