#pragma once
// provisiond as a new user runs it: the real binary in a temp data dir on a free loopback
// port, talked to over HTTP. Every wait is bounded.

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.hpp"
#include "support/process.hpp"

namespace prov::test {

/// The directories `fresh_dir` made, removed when the test process exits (every test case
/// runs in a process of its own). PROV_KEEP_TEST_DIRS=1 keeps them, e.g. to read a failed
/// test's provisiond.log.
class scratch_dirs {
 public:
  ~scratch_dirs() {
    if (const char* keep = std::getenv("PROV_KEEP_TEST_DIRS"); keep != nullptr && std::string{keep} == "1") {
      return;
    }
    std::lock_guard lock(_mutex);
    for (const auto& dir : _dirs) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
  void add(std::filesystem::path dir) {
    std::lock_guard lock(_mutex);
    _dirs.push_back(std::move(dir));
  }

 private:
  std::mutex _mutex;
  std::vector<std::filesystem::path> _dirs;
};

inline scratch_dirs& scratch() {
  static scratch_dirs dirs;
  return dirs;
}

inline std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("provisiond-" + name + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  scratch().add(dir);
  return dir;
}

/// Polls `done` every 20 ms until it holds or `timeout` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& done, std::chrono::seconds timeout = std::chrono::seconds{60}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return done();
}

class server {
 public:
  explicit server(std::filesystem::path dir) : _dir(std::move(dir)) {}
  ~server() {
    if (_proc && _proc->running()) {
      _proc->signal(SIGKILL);
      _proc->wait(std::chrono::seconds{30});
    }
  }

  const std::filesystem::path& dir() const { return _dir; }
  unsigned short port() const { return _port; }
  bool tls() const { return _tls; }  ///< it said it serves HTTPS
  const std::string& admin() const { return _admin; }

  /// Starts provisiond with `extra` flags and `env` (NAME=VALUE) added to the environment.
  void start(std::vector<std::string> extra = {}, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv{PROVISIOND_BINARY, "--data-dir", (_dir / "data").string(), "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    _proc = std::make_unique<child_process>(argv, (_dir / "provisiond.log").string(), env);
    const auto line = _proc->read_line(std::chrono::seconds{60});
    REQUIRE(line.has_value());
    const auto colon = line->rfind(':');
    _tls = line->rfind("provisiond listening on https://127.0.0.1:", 0) == 0;
    REQUIRE((_tls || line->rfind("provisiond listening on http://127.0.0.1:", 0) == 0));
    _port = static_cast<unsigned short>(std::stoi(line->substr(colon + 1)));
    std::ifstream in{_dir / "data" / "admin.token"};
    std::getline(in, _admin);
    REQUIRE_FALSE(_admin.empty());
  }

  /// kill -9: no shutdown code runs.
  void kill9() {
    _proc->signal(SIGKILL);
    REQUIRE(_proc->wait(std::chrono::seconds{30}).has_value());
  }

  /// Waits for the process to exit by itself; its exit code, or nullopt after `limit`.
  std::optional<int> exited_within(std::chrono::seconds limit) { return _proc->wait(limit); }

  /// Sends `sig` and returns at once.
  void signal(int sig) { _proc->signal(sig); }

  /// SIGTERM; returns the exit code.
  int stop() { return stop_within(std::chrono::seconds{60}); }

  /// SIGTERM; the process must have exited within `limit` (the test fails otherwise).
  int stop_within(std::chrono::seconds limit) {
    _proc->signal(SIGTERM);
    auto code = _proc->wait(limit);
    REQUIRE(code.has_value());
    return *code;
  }

  http_client client() const { return http_client{"127.0.0.1", _port}; }

  std::string log() const {
    std::ifstream in{_dir / "provisiond.log"};
    return std::string{std::istreambuf_iterator<char>{in}, {}};
  }

 private:
  std::filesystem::path _dir;
  std::unique_ptr<child_process> _proc;
  unsigned short _port = 0;
  bool _tls = false;
  std::string _admin;
};

/// Creates a tenant and returns its token.
inline std::string make_tenant(http_client& c, const std::string& admin, const std::string& id) {
  auto r = c.post("/v1/tenants", nlohmann::json{{"id", id}}, admin);
  REQUIRE(r.status == 201);
  return r.json()["token"].get<std::string>();
}

inline bool terminal(const std::string& state) {
  return state == "completed" || state == "rolled_back" || state == "suspended";
}

/// Every request view, through the paged list (admin).
inline std::vector<nlohmann::json> all_requests(http_client& c, const std::string& admin) {
  std::vector<nlohmann::json> out;
  std::string cursor;
  for (int page = 0; page < 10000; ++page) {
    auto r = c.get("/v1/requests?limit=200" + (cursor.empty() ? std::string{} : "&cursor=" + cursor), admin);
    REQUIRE(r.status == 200);
    auto body = r.json();
    for (auto& item : body["items"]) {
      out.push_back(item);
    }
    if (body["nextCursor"].is_null()) {
      break;
    }
    cursor = body["nextCursor"].get<std::string>();
  }
  return out;
}

}  // namespace prov::test
