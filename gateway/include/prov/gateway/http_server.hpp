#pragma once
/// The gateway's HTTP/1.1 server: Boost.Beast on an io_context run by a few threads, keep-alive,
/// one request in flight per connection, asynchronous responses, plain or over TLS. It frames,
/// limits and decodes requests and renders responses; routing, auth and JSON bodies are the
/// handler's job.
///
/// Bad input never reaches the handler and never takes the server down: malformed HTTP or an
/// invalid percent-encoding is answered 400, a body over the limit 413 (then the connection is
/// closed), and an exception thrown by the handler becomes a 500 `internal` error.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prov/core/error.hpp"
#include "prov/gateway/http_types.hpp"

namespace prov::gateway {

/// The oldest TLS version the server accepts.
enum class tls_version { v1_2, v1_3 };

/// "1.2" or "1.3"; nothing for anything else.
std::optional<tls_version> parse_tls_version(std::string_view text) noexcept;

struct http_server_options {
  std::string host = "127.0.0.1";   ///< address or resolvable name to listen on
  unsigned short port = 8080;       ///< 0 picks an ephemeral port (see `start()`'s result)
  unsigned threads = 2;             ///< I/O threads running handlers (at least 1)
  std::size_t max_body_bytes = 1 << 20;  ///< larger bodies are refused with 413
  std::chrono::seconds idle_timeout{60};  ///< closes connections idle (or stalled) this long
  std::size_t max_connections = 10000;    ///< connections beyond this are closed on accept
  /// HTTPS: PEM files of the server's certificate chain (its certificate first) and of its
  /// private key. Both empty: plain HTTP.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  /// The oldest TLS version a client may negotiate (1.3 only, where policy asks for it).
  tls_version tls_min_version = tls_version::v1_2;
};

/// Loads the TLS certificate chain and key the options name, as `start()` will, and checks that
/// they belong together; nothing is opened or bound. Without TLS options: nothing to check.
/// Errors: `invalid_argument` naming the file (or the mismatch) and OpenSSL's reason.
status check_tls(const http_server_options& options);

namespace detail {
struct server_core;
}

/// Owns the listening socket, the I/O threads and every connection. Not copyable or movable.
class http_server {
 public:
  http_server(http_server_options options, http_handler handler);
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds, listens and starts the I/O threads. Returns the port actually bound (useful with
  /// port 0). Errors: `io_error` (e.g. address in use, with the OS message), `invalid_argument`
  /// (unresolvable host), `conflict` if already started, `unavailable` after `stop()`.
  result<unsigned short> start();

  /// Stops accepting, closes every connection (responses not yet written are dropped) and joins
  /// the I/O threads. Idempotent; also run by the destructor. Must not be called from a handler
  /// running on one of this server's threads (it would have to join itself): from there it only
  /// stops the I/O loop, and the joining is left to a later call from another thread.
  void stop();

  /// Loads the TLS certificate chain and key again from the options' files (a renewed
  /// certificate): connections accepted from then on use them, open ones keep theirs. On an
  /// error (as `check_tls`) the server goes on with what it had. `invalid_argument` on a server
  /// without TLS, `unavailable` before `start()`.
  status reload_tls();

  /// The options this server was built with (port as configured, not as bound).
  const http_server_options& options() const noexcept;

 private:
  std::unique_ptr<detail::server_core> _core;
};

}  // namespace prov::gateway
