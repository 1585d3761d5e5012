#pragma once
/// Durations as operators write them: "250ms", "5s", "30m", "1h", or a bare number of seconds.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace prov {

/// Parses a non-negative duration; nullopt if malformed or out of range.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Renders the shortest exact form ("90s", "5m", "250ms").
std::string format_duration(std::chrono::milliseconds d);

}  // namespace prov
