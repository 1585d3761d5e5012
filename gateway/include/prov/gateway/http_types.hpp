#pragma once
/// What the HTTP layer hands to the gateway's router and what it expects back: a parsed request,
/// a response value, the JSON error shape `{"error":{"code":...,"message":...}}`, and the mapping
/// from `prov::errc` to HTTP status codes (part of the public API: never change a mapping).

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "prov/core/error.hpp"

namespace prov::gateway {

/// One HTTP request, already framed, size-checked and percent-decoded by the server.
struct http_request {
  std::string method;         ///< as sent, e.g. "GET"; unknown methods are passed through
  std::string target;         ///< the raw request target, e.g. "/v1/requests?state=a%20b"
  std::string path;           ///< percent-decoded path without the query ("/v1/requests")
  std::map<std::string, std::string> query;  ///< decoded query; '+' is a space; first key wins
  std::string authorization;  ///< raw `Authorization` header value ("" if absent)
  std::string content_type;   ///< raw `Content-Type` header value ("" if absent)
  std::string body;
  std::string remote;         ///< peer address as "ip:port"
  unsigned version = 11;      ///< 10 for HTTP/1.0, 11 for HTTP/1.1
  /// Every header as received, names lowercased, in order (duplicates kept).
  std::vector<std::pair<std::string, std::string>> headers;

  /// The first value of header `name` (case-insensitive), or "" if absent.
  std::string_view header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() && equals_lower(n, name)) {
        return v;
      }
    }
    return {};
  }

 private:
  static bool equals_lower(std::string_view lower, std::string_view any) noexcept {
    for (size_t i = 0; i < lower.size(); ++i) {
      char c = any[i];
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
      if (lower[i] != c) {
        return false;
      }
    }
    return true;
  }
};

/// What a handler answers. The server adds `Server`, `Date`, `Content-Length` and `Connection`;
/// `headers` may not override those (such entries are ignored), nor contain CR or LF.
struct http_response {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";  ///< "" omits the header
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Delivers the response for one request. Call it exactly once, from any thread, during or after
/// the handler; later calls are ignored. Dropping every copy without calling it closes the
/// connection. Calling it after the server stopped is a harmless no-op.
using responder = std::function<void(http_response)>;

/// The application: receives each request and must eventually call (or drop) its responder.
/// Runs on a server I/O thread, so it must not block; exceptions it throws become a 500.
using http_handler = std::function<void(http_request&&, responder)>;

/// The HTTP status that stands for `code` in the API.
constexpr unsigned http_status_for(errc code) noexcept {
  switch (code) {
    case errc::ok: return 200;
    case errc::invalid_argument: return 400;
    case errc::unauthorized: return 401;
    case errc::forbidden: return 403;
    case errc::not_found: return 404;
    case errc::conflict:
    case errc::version_conflict:
    case errc::invalid_transition: return 409;
    case errc::payload_too_large: return 413;
    case errc::quota_exceeded:
    case errc::no_cluster_available: return 422;
    case errc::unsupported: return 501;
    case errc::overloaded: return 429;
    case errc::provider_error: return 502;
    case errc::unavailable: return 503;
    case errc::timeout: return 504;
    case errc::io_error:
    case errc::corrupt:
    case errc::internal: return 500;
  }
  return 500;
}

/// A response whose body is `body` serialized as JSON.
inline http_response json_response(unsigned status, const nlohmann::json& body) {
  http_response r;
  r.status = status;
  // `replace` keeps invalid UTF-8 from throwing: the error path must never throw itself.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

/// `{"error":{"code":"<to_string(code)>","message":"<message>"}}` with the given status.
inline http_response error_response(unsigned status, errc code, std::string_view message) {
  return json_response(status, nlohmann::json{{"error", {{"code", to_string(code)}, {"message", message}}}});
}

/// An error response with the status `http_status_for(e.code)`.
inline http_response error_response(const error& e) {
  return error_response(http_status_for(e.code), e.code, e.message);
}

}  // namespace prov::gateway
