#pragma once
/// Input checks shared by every journal implementation, so they reject the same things with
/// the same messages.

#include <string>
#include <string_view>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/events/journal.hpp"

namespace prov::events::detail {

/// A stream id is non-empty and has no 0x00 byte (the stream index uses 0x00 as separator).
inline status validate_stream_id(std::string_view stream) {
  if (stream.empty()) {
    return make_error(errc::invalid_argument, "journal: empty stream id");
  }
  if (stream.find('\0') != std::string_view::npos) {
    return make_error(errc::invalid_argument, "journal: stream id contains a 0x00 byte");
  }
  return {};
}

/// A batch names at least one stream, and every stream is valid and gets at least one event.
inline status validate_batch(const std::vector<stream_append>& batch) {
  if (batch.empty()) {
    return make_error(errc::invalid_argument, "journal: empty append batch");
  }
  for (const auto& append : batch) {
    if (auto valid = validate_stream_id(append.stream); !valid) {
      return valid;
    }
    if (append.events.empty()) {
      return make_error(errc::invalid_argument, "journal: append to stream " + append.stream + " has no events");
    }
  }
  return {};
}

/// The message of a failed expected-version check.
inline error version_conflict(std::string_view stream, std::uint64_t expected, std::uint64_t actual) {
  return make_error(errc::version_conflict, "stream " + std::string(stream) + ": expected version " +
                                                std::to_string(expected) + ", actual " + std::to_string(actual));
}

}  // namespace prov::events::detail
