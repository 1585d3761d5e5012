#pragma once
/// Collects log lines while alive, at every level from debug up (the suite runs with
/// PROV_LOG_LEVEL=warn), and keeps them off stderr; afterwards the sink and the level are put
/// back.

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prov/core/log.hpp"

namespace prov::test {

class log_capture {
 public:
  log_capture() : _level(log::current_level()) {
    log::set_sink([this](std::string_view line) {
      std::lock_guard lock(_mutex);
      _lines.emplace_back(line);
    });
    log::set_level(log::level::debug);
  }
  ~log_capture() {
    log::set_level(_level);
    log::set_sink(nullptr);
  }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  /// The captured lines whose `msg` is `msg`, parsed.
  std::vector<nlohmann::json> with_message(std::string_view msg) {
    std::lock_guard lock(_mutex);
    std::vector<nlohmann::json> out;
    for (const auto& line : _lines) {
      auto j = nlohmann::json::parse(line);
      if (j.value("msg", "") == msg) {
        out.push_back(std::move(j));
      }
    }
    return out;
  }

  /// How many captured lines contain `text`.
  std::size_t count(std::string_view text) {
    std::lock_guard lock(_mutex);
    return static_cast<std::size_t>(std::count_if(_lines.begin(), _lines.end(), [&](const std::string& l) {
      return l.find(text) != std::string::npos;
    }));
  }

  std::vector<std::string> lines() {
    std::lock_guard lock(_mutex);
    return _lines;
  }

 private:
  const log::level _level;
  std::mutex _mutex;
  std::vector<std::string> _lines;
};

}  // namespace prov::test
