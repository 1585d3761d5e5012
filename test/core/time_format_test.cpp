#include <catch2/catch.hpp>

#include "prov/core/time_format.hpp"

using namespace prov;

TEST_CASE("rfc3339 renders UTC with milliseconds", "[core][time]") {
  const timestamp t{std::chrono::microseconds{1'764'136'419'123'456}};
  CHECK(format_rfc3339(t) == "2025-11-26T05:53:39.123Z");
  CHECK(format_rfc3339(timestamp{}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("rfc3339 parses what it renders and common variants", "[core][time]") {
  const timestamp t{std::chrono::microseconds{1'764'136'419'123'000}};
  REQUIRE(parse_rfc3339(format_rfc3339(t)) == t);
  CHECK(parse_rfc3339("2025-11-26T06:53:39.123+01:00") == t);
  CHECK(parse_rfc3339("2025-11-26T05:53:39Z")->time_since_epoch().count() == 1'764'136'419'000'000);
  CHECK(parse_rfc3339("2024-02-29T00:00:00.5Z")->time_since_epoch().count() == 1'709'164'800'500'000);
}

TEST_CASE("rfc3339 refuses malformed text", "[core][time]") {
  for (const char* bad : {"", "2025-11-26", "2025-13-01T00:00:00Z", "2025-11-26T05:53:39",
                          "2025-11-26T05:53:39.Z", "2025-11-26T05:53:39Zjunk", "yyyy-11-26T05:53:39Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339(bad).has_value());
  }
}

#include "prov/core/duration.hpp"

TEST_CASE("durations parse as operators write them", "[core][duration]") {
  using std::chrono::milliseconds;
  CHECK(parse_duration("250ms") == milliseconds{250});
  CHECK(parse_duration("5s") == milliseconds{5000});
  CHECK(parse_duration("5") == milliseconds{5000});
  CHECK(parse_duration("30m") == milliseconds{1'800'000});
  CHECK(parse_duration("1h") == milliseconds{3'600'000});
  CHECK(parse_duration("0") == milliseconds{0});
  for (const char* bad : {"", "-5s", "5x", "s", "1.5s", "99999999999999s"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
  CHECK(format_duration(milliseconds{300'000}) == "5m");
  CHECK(format_duration(milliseconds{1500}) == "1500ms");
}
