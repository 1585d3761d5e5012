#include "prov/core/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <mutex>

#include "prov/core/clock.hpp"
#include "prov/core/time_format.hpp"

namespace prov::log {

namespace {

// The starting level comes from PROV_LOG_LEVEL (debug, info, warn, error), default info.
int initial_level() {
  const char* env = std::getenv("PROV_LOG_LEVEL");
  const std::string_view v = env != nullptr ? env : "";
  if (v == "debug") return static_cast<int>(level::debug);
  if (v == "warn") return static_cast<int>(level::warn);
  if (v == "error") return static_cast<int>(level::error);
  return static_cast<int>(level::info);
}

std::atomic<int> g_level{initial_level()};
std::mutex g_mutex;
std::function<void(std::string_view)> g_sink;

const char* name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}

}  // namespace

void set_level(level l) { g_level.store(static_cast<int>(l)); }

level current_level() { return static_cast<level>(g_level.load()); }

bool enabled(level l) { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

void set_sink(std::function<void(std::string_view)> sink) {
  std::lock_guard<std::mutex> guard{g_mutex};
  g_sink = std::move(sink);
}

void write(level l, std::string_view msg, const nlohmann::json& fields) {
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = format_rfc3339(system_clock_source{}.now());
  line["level"] = name(l);
  line["msg"] = msg;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      line[it.key()] = it.value();
    }
  }
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard<std::mutex> guard{g_mutex};
  if (g_sink) {
    g_sink(text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

}  // namespace prov::log
