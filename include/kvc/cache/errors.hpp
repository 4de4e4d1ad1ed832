#pragma once
// Every runtime error of the cache and of attention is a cache_error with a code
// (docs/errors.md lists them all); the cache is then exactly as it was before the call
// that threw, and an attention call has written nothing.

#include <concepts>
#include <stdexcept>
#include <string>
#include <string_view>

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
  stale_hit,           ///< a prefix hit used after a page it names was taken back
  invalid_argument,    ///< anything else: negative token counts, bad capacities, ...
};

class cache_error : public std::runtime_error {
 public:
  cache_error(cache_errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cache_errc code() const noexcept { return code_; }

 private:
  cache_errc code_;
};

namespace detail {

// A message part: text as it is, a count in decimal (char and bool are not counts).
inline void append_part(std::string& what, std::string_view part) { what += part; }
template <std::integral I>
requires(!std::same_as<I, char> && !std::same_as<I, bool>) void append_part(std::string& what,
                                                                            I part) {
  what += std::to_string(part);
}

/// Returns cache_error(code, the parts joined): `make_error(cache_errc::invalid_layer, who,
/// ": layer ", layer, " does not exist")`.
template <class... Parts>
cache_error make_error(cache_errc code, const Parts&... parts) {
  std::string what;
  (append_part(what, parts), ...);
  return cache_error(code, what);
}

/// Throws make_error(code, parts...).
template <class... Parts>
[[noreturn]] void fail(cache_errc code, const Parts&... parts) {
  throw make_error(code, parts...);
}

/// Calls fail(code, parts...) unless the condition holds; the message is built only then.
template <class... Parts>
void require(bool condition, cache_errc code, const Parts&... parts) {
  if (!condition) [[unlikely]]
    fail(code, parts...);
}

}  // namespace detail
}  // namespace kvc
