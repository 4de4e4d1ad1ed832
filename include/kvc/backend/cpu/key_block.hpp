#pragma once
// The CPU kernels' unit of work along the sequence: a block of 16 key tokens. A decode work
// item is a range of blocks; a page holds one or more (the last one maybe shorter).

namespace kvc::cpu {

inline constexpr int key_block = 16;

}  // namespace kvc::cpu
