#include <catch2/catch.hpp>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "prov/core/error.hpp"

using namespace prov;

namespace {

result<std::vector<std::string>> names() { return std::vector<std::string>{"first", "second"}; }

}  // namespace

TEST_CASE("result: dereferencing a temporary yields the value, so a range-for over it keeps it alive",
          "[core][result]") {
  // A reference into the temporary would dangle once the range-for's initializer ends.
  static_assert(std::is_same_v<decltype(*names()), std::vector<std::string>>);
  static_assert(std::is_same_v<decltype(*std::declval<result<int>&>()), int&>);
  static_assert(std::is_same_v<decltype(*std::declval<const result<int>&>()), const int&>);
  std::vector<std::string> seen;
  for (const auto& name : *names()) {
    seen.push_back(name);
  }
  CHECK(seen == std::vector<std::string>{"first", "second"});
}
