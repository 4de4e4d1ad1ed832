#pragma once
// Paging: the cache is cut into pages of a fixed number of tokens.
//
// NHD keeps a page as [token][kv_head][dim] (a token's heads are contiguous, as
// appended); HND as [kv_head][token][dim] (a head's tokens are contiguous, as read).

#include <concepts>
#include <cstdint>

namespace kvc {

enum class page_layout : std::uint8_t { nhd, hnd };

namespace detail {
template <int PageTokens, page_layout Layout>
struct paged_checks {
  static_assert(PageTokens > 0, "kvc::paged<P>: a page must hold at least one token");
};
}  // namespace detail

template <int PageTokens, page_layout Layout = page_layout::nhd>
struct paged {
  static_assert(sizeof(detail::paged_checks<PageTokens, Layout>) > 0);  // the checks, kept apart
  static constexpr bool is_paged = true;
  static constexpr int page_tokens = PageTokens > 0 ? PageTokens : 1;  // 1 after a failed check
  static constexpr page_layout layout = Layout;
};

/// No paging: memory is counted token by token.
struct unpaged {
  static constexpr bool is_paged = false;
  static constexpr int page_tokens = 1;
  static constexpr page_layout layout = page_layout::nhd;
};

template <class T>
concept paging_policy = requires {
  { T::is_paged } -> std::convertible_to<bool>;
  { T::page_tokens } -> std::convertible_to<int>;
};

}  // namespace kvc
