#pragma once
/// Structured logging: one JSON object per line on stderr (or a sink set by tests).
/// Fields are passed as JSON; never pass a secret (tokens, credentials) to a log call.

#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace prov::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

/// Minimum level that is written (default info). Thread-safe.
void set_level(level l);
level current_level();
bool enabled(level l);

/// Replaces the output (default: stderr). The sink receives one complete line, no newline.
void set_sink(std::function<void(std::string_view line)> sink);

/// Writes `{"ts":..., "level":..., "msg":..., <fields>}`.
void write(level l, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void debug(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (enabled(level::debug)) {
    write(level::debug, m, f);
  }
}
inline void info(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (enabled(level::info)) {
    write(level::info, m, f);
  }
}
inline void warn(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (enabled(level::warn)) {
    write(level::warn, m, f);
  }
}
inline void error(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  write(level::error, m, f);
}

}  // namespace prov::log
