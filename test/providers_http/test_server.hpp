#pragma once
/// A small HTTP/1.1 server for tests (Boost.Beast, blocking, one thread per connection) on
/// 127.0.0.1 and a port the kernel picks; plain or TLS. A handler answers each request; a
/// response can ask the server to close the connection or to never answer at all (for
/// timeout tests: the connection is held until the client gives up or the server stops).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_pki.hpp"

namespace prov::test {

struct served_request {
  std::string method;
  std::string target;                          ///< path and query as sent
  std::map<std::string, std::string> headers;  ///< names lowercased
  std::string body;
  std::size_t connection = 0;  ///< which accepted connection carried it (1-based)

  std::string header(const std::string& lowercase_name) const {
    const auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::string{} : it->second;
  }
};

struct served_response {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;         ///< close the connection after this response
  bool hang = false;          ///< never answer (holds the connection until the server stops)
  bool silent_close = false;  ///< close after this response without saying so (a keep-alive race)
};

class test_server {
 public:
  using handler = std::function<served_response(const served_request&)>;

  /// Starts listening at once; `tls` makes it an https server with that identity.
  explicit test_server(handler h, std::optional<test_identity> tls = std::nullopt);
  ~test_server();
  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  unsigned short port() const noexcept { return _port; }
  /// "http(s)://127.0.0.1:<port>" + path.
  std::string url(const std::string& path = "") const;
  /// Same with "localhost" as the host (for host name verification).
  std::string url_by_name(const std::string& path = "") const;
  std::size_t connections_accepted() const noexcept { return _accepted.load(); }
  /// Whether `n` connections were accepted within `timeout`: a client's connect returns once
  /// the kernel completed the handshake, possibly before the server's thread accepted it.
  bool accepted_within(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (_accepted.load() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    return _accepted.load() >= n;
  }
  std::size_t requests_served() const noexcept { return _requests.load(); }

  /// Stops accepting, releases hung requests, closes connections and joins every thread.
  void stop();

 private:
  struct state;
  void accept_loop();
  void serve(int fd, std::size_t number);

  handler _handler;
  std::shared_ptr<state> _state;
  unsigned short _port = 0;
  bool _tls = false;
  std::atomic<std::size_t> _accepted{0};
  std::atomic<std::size_t> _requests{0};
  std::thread _acceptor;
};

}  // namespace prov::test
