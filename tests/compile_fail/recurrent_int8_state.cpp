// expect: kvc::recurrent_state<N, T>: the state is stored as fp32, fp16 or bf16
#include "kvc/kvc.hpp"

struct m : kvc::model<2, kvc::recurrent_state<1024, kvc::int8>> {};
static_assert(kvc::footprint<m>::recurrent_state_bytes > 0);
