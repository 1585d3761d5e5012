#pragma once
/// The one HTTP(S) client every real provider uses (Boost.Beast + OpenSSL): TLS with
/// certificate verification on by default, an optional CA bundle, connect/request timeouts,
/// keep-alive per host, JSON helpers. Synchronous: provider calls run on the cluster actor's
/// worker threads, never on an actor thread. Thread-safe (a small connection pool per origin).
///
/// Transport failures are results, not exceptions: `errc::timeout`, `errc::unavailable`
/// (connect refused, reset), `errc::provider_error` with "tls: ..." for TLS failures
/// (certificate verification included), `errc::invalid_argument` for a bad URL,
/// `errc::payload_too_large` for a response over `max_response_bytes`. Any HTTP status (404,
/// 500, ...) is a response, not an error. Redirects are not followed.
///
/// Timeouts: `connect_timeout` bounds name resolution, TCP connect and the TLS handshake of a
/// new connection; `request_timeout` (or `request::timeout`) bounds the whole exchange, connect
/// included. Both are deadlines on the steady clock.
///
/// TLS: with `verify_tls` the peer's chain must lead to a trusted CA (`ca_pem` and/or
/// `ca_bundle` when given, else the system default store) and the certificate must match the
/// URL's host (DNS name or IP address, as OpenSSL's X509_check_host/X509_check_ip do). SNI is
/// sent for host names (never for IP literals).

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/error.hpp"

namespace prov::providers::http {

struct client_options {
  bool verify_tls = true;  ///< verify the server certificate and host name
  std::string ca_bundle;   ///< PEM file of trusted CAs ("" = system default store)
  std::string ca_pem;      ///< PEM text of trusted CAs (e.g. a cluster's CA), with ca_bundle
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};  ///< whole exchange, per request
  std::size_t max_idle_per_origin = 4;
  std::size_t max_response_bytes = 64 << 20;
  std::string user_agent = "provisiond";
};

struct request {
  std::string method = "GET";
  std::string url;  ///< absolute: http(s)://host[:port]/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::chrono::milliseconds> timeout;  ///< overrides request_timeout
};

struct response {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lowercased
  std::string body;

  /// First value of a header (name in any case), "" if absent.
  std::string header(std::string_view name) const;
  /// The body as JSON (`errc::provider_error` if it is not JSON).
  result<nlohmann::json> json() const;
  bool ok() const noexcept { return status >= 200 && status < 300; }
};

class client {
 public:
  explicit client(client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Sends one request (reusing an idle keep-alive connection to the same origin if any; a
  /// reused connection the server closed is retried once on a fresh one, only for requests
  /// that sent nothing yet: the write failed, or, for idempotent methods (GET, HEAD, PUT,
  /// DELETE, OPTIONS), the server closed the connection before any byte of a response).
  result<response> send(const request& req);

  /// Convenience: JSON body with `Content-Type: application/json` (unless `headers` name
  /// another content type, e.g. `application/merge-patch+json`), `Accept: application/json`.
  /// `body == nullptr` sends no body.
  result<response> send_json(std::string method, std::string url, const nlohmann::json* body,
                             std::vector<std::pair<std::string, std::string>> headers = {});

  const client_options& options() const noexcept;

  /// Connections opened since construction (for tests and metrics: keep-alive reuse).
  std::size_t connections_opened() const noexcept;
  /// Drops every idle connection.
  void close_idle();

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

/// Percent-encodes a path segment or query value.
std::string url_encode(std::string_view s);

}  // namespace prov::providers::http
