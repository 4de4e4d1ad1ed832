// expect: kvc::paged<P>: a page must hold at least one token
#include "kvc/kvc.hpp"

struct m : kvc::model<2, kvc::layer<kvc::gqa<32, 8>, kvc::head_dim<128>>> {};
static_assert(kvc::footprint<m, kvc::paged<0>>::bytes_for_tokens(1) > 0);
