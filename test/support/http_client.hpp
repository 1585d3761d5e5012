#pragma once
/// A small synchronous HTTP/1.1 client for tests: one keep-alive connection, reopened when the
/// server closed it, and a timeout on every step so a test can fail but never hang.
/// Not thread-safe: give each test thread its own client.
///
/// Transport failures (connect refused, connection closed before a complete response, timeout)
/// are not thrown: they come back as `reply::status == 0` with the reason in `reply::body`.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace prov::test {

class http_client {
 public:
  http_client(std::string host, unsigned short port, std::chrono::seconds timeout = std::chrono::seconds{10});
  ~http_client();
  http_client(http_client&&) noexcept;
  http_client& operator=(http_client&&) noexcept;
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  struct reply {
    unsigned status = 0;  ///< 0: no complete response arrived (see `body`)
    std::string body;
    std::map<std::string, std::string> headers;  ///< lowercase names

    /// The body parsed as JSON; throws nlohmann::json::parse_error if it is not JSON.
    nlohmann::json json() const;
    /// The value of a header (name in lowercase), or "".
    std::string header(const std::string& lowercase_name) const;
  };

  /// Sends one request on the kept-alive connection (opening one if needed) and reads the reply.
  /// `Host` and `Content-Length` are added; `headers` are sent as given.
  reply request(std::string_view method, std::string_view target, std::string_view body = {},
                const std::vector<std::pair<std::string, std::string>>& headers = {});

  /// GET; a non-empty token adds `Authorization: Bearer <token>`.
  reply get(std::string_view target, std::string_view token = {});
  /// POST with a JSON body (`Content-Type: application/json`).
  reply post(std::string_view target, const nlohmann::json& body, std::string_view token = {});
  /// PUT with a JSON body.
  reply put(std::string_view target, const nlohmann::json& body, std::string_view token = {});
  /// PATCH with a JSON body.
  reply patch(std::string_view target, const nlohmann::json& body, std::string_view token = {});
  /// DELETE.
  reply del(std::string_view target, std::string_view token = {});

  /// Writes `bytes` on a fresh connection and returns everything the server sends until it
  /// closes the connection or the timeout passes. For malformed-input tests; a well-formed
  /// request should carry `Connection: close`, or this waits for the timeout.
  std::string send_raw(std::string_view bytes);

  /// Closes the kept-alive connection (the next request opens a new one).
  void close();

  /// How many connections `request` has opened so far (keep-alive checks).
  std::size_t connections_opened() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::test
