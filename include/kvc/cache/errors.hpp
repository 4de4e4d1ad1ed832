#pragma once
// Every runtime error of the cache and of attention is a cache_error with a code
// (docs/errors.md lists them all); the cache is then exactly as it was before the call
// that threw, and an attention call has written nothing.

#include <stdexcept>
#include <string>

namespace kvc {

enum class cache_errc {
  out_of_pages,        ///< a group's pool cannot hold the request
  unknown_sequence,    ///< never added, or released
  duplicate_sequence,  ///< a batch names a sequence twice
  shape_mismatch,      ///< K/V tensor of the wrong token count, heads or dim
  dtype_mismatch,      ///< K/V tensor of a dtype the cache does not take as input
  invalid_layer,       ///< no such layer, or a layer that owns no cache
  plan_conflict,       ///< a plan is already open, or the plan is not the open one
  stale_table,         ///< a page table made before the sequences it names changed
  plan_mismatch,       ///< an attention plan used with a view or shape it was not made for
  rollback_exceeded,   ///< a truncation or fork needs tokens the windows no longer keep
  invalid_argument,    ///< anything else: negative token counts, bad capacities, ...
};

class cache_error : public std::runtime_error {
 public:
  cache_error(cache_errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cache_errc code() const noexcept { return code_; }

 private:
  cache_errc code_;
};

}  // namespace kvc
