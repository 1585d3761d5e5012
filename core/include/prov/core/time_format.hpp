#pragma once
/// RFC 3339 rendering and parsing, UTC, millisecond precision ("2026-11-26T06:03:39.123Z").

#include <optional>
#include <string>
#include <string_view>

#include "prov/core/clock.hpp"

namespace prov {

/// Formats as RFC 3339 UTC with `fraction_digits` (3 = milliseconds, 6 = microseconds).
std::string format_rfc3339(timestamp t, int fraction_digits = 3);

/// Parses RFC 3339 (`Z` or `+hh:mm` offsets, 0-9 fractional digits). nullopt if malformed.
std::optional<timestamp> parse_rfc3339(std::string_view text);

}  // namespace prov
