#pragma once
// kvc's version, as the CMake package states it (project(kvc VERSION ...) in CMakeLists.txt,
// which refuses to configure when the two differ). 0.x: a minor version may change the API
// (docs/packaging.md, version policy).

#include <string_view>

namespace kvc {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
inline constexpr std::string_view version_string = "0.1.0";

}  // namespace kvc
