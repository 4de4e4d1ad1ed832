#pragma once
// The code of the cache_error a call throws, for tests of refusals: empty when it throws
// none, so that a call that wrongly succeeds never compares equal to an expected code.
//
//   CHECK(code_of([&] { cache.truncate(id, -1); }) == kvc::cache_errc::invalid_argument);

#include <optional>

#include "kvc/cache/errors.hpp"

namespace kvc::testing {

template <class Call>
std::optional<cache_errc> code_of(Call&& call) {
  try {
    call();
  } catch (const cache_error& e) {
    return e.code();
  }
  return std::nullopt;
}

}  // namespace kvc::testing
