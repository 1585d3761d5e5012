#pragma once
/// A transparent hash for string-keyed unordered containers: with `std::equal_to<>`, they can
/// be searched with a `std::string_view` (or a literal) without building a `std::string`.

#include <cstddef>
#include <functional>
#include <string_view>

namespace prov {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace prov
