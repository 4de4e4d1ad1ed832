#pragma once
// What an emulated launch reports instead of running, or instead of hanging: a
// kvc::simt::launch_error with a code and a message naming the block, warp and lanes.

#include <stdexcept>
#include <string>

namespace kvc::simt {

enum class launch_errc {
  invalid_shape,           ///< a grid or block dimension that is 0 or over CUDA's limit
  too_many_threads,        ///< more threads per block than the architecture runs (1024)
  shared_memory_exceeded,  ///< more dynamic shared memory than one block may have
  barrier_divergence,      ///< a block or named barrier that not every thread it counts reaches
  barrier_misuse,  ///< a named barrier's id or count against the PTX ISA's rules, or a warp in part
  shuffle_divergence,  ///< a warp shuffle or reduction that not every named lane joins
  misaligned_address,  ///< a 16-byte copy or load from an address not 16-byte aligned
  not_shared_memory,   ///< a copy_async whose destination is not the block's shared memory
  wgmma_misuse,        ///< a warpgroup matrix multiply-accumulate against its rules
  copy_race,  ///< wgmma or load_matrices reading shared memory a copy_async in flight writes
};

class launch_error : public std::runtime_error {
 public:
  launch_error(launch_errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  launch_errc code() const noexcept { return code_; }

 private:
  launch_errc code_;
};

}  // namespace kvc::simt
