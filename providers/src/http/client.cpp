#include "prov/providers/http/client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <mutex>
#include <optional>

namespace prov::providers::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lower(c);
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

/// An absolute URL split into what a connection and a request line need.
struct url_parts {
  bool tls = false;
  std::string host;         ///< without IPv6 brackets
  std::string port;         ///< always set (default 80/443)
  std::string target;       ///< path and query, at least "/"
  std::string host_header;  ///< host[:port] as sent in `Host`
  std::string origin;       ///< scheme://host:port, the pool key
  bool host_is_ip = false;
};

result<url_parts> parse_url(std::string_view url) {
  url_parts out;
  std::string_view rest;
  if (url.size() >= 8 && iequals(url.substr(0, 8), "https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.size() >= 7 && iequals(url.substr(0, 7), "http://")) {
    rest = url.substr(7);
  } else {
    return make_error(errc::invalid_argument, "url must start with http:// or https://: '" + std::string{url} + "'");
  }
  const auto authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  if (authority.find('@') != std::string_view::npos) {
    return make_error(errc::invalid_argument, "credentials in urls are not supported");
  }
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return make_error(errc::invalid_argument, "bad IPv6 host in url '" + std::string{url} + "'");
    }
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return make_error(errc::invalid_argument, "bad authority in url '" + std::string{url} + "'");
      }
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return make_error(errc::invalid_argument, "no host in url '" + std::string{url} + "'");
  }
  if (!port.empty()) {
    if (port.size() > 5) {
      return make_error(errc::invalid_argument, "bad port in url '" + std::string{url} + "'");
    }
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') {
        return make_error(errc::invalid_argument, "bad port in url '" + std::string{url} + "'");
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      return make_error(errc::invalid_argument, "bad port in url '" + std::string{url} + "'");
    }
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return make_error(errc::invalid_argument, "unencoded space or control character in url path");
    }
  }
  out.host = lowercase(host);
  const std::string default_port = out.tls ? "443" : "80";
  out.port = port.empty() ? default_port : std::string{port};
  out.target = target.empty() ? "/" : (target.front() == '?' ? "/" + std::string{target} : std::string{target});
  beast::error_code ec;
  net::ip::make_address(out.host, ec);
  out.host_is_ip = !ec;
  const std::string bracketed = out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host;
  out.host_header = out.port == default_port ? bracketed : bracketed + ":" + out.port;
  out.origin = std::string{out.tls ? "https://" : "http://"} + bracketed + ":" + out.port;
  return out;
}

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS";
}

/// Text of the last OpenSSL errors (the queue is cleared).
std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ::ERR_get_error()) {
    char buf[256];
    ::ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out;
}

/// One kept-alive connection to one origin; it owns its io_context, so the thread that holds
/// it drives its I/O alone.
struct connection {
  explicit connection(std::string origin_) : origin(std::move(origin_)) {}

  net::io_context ioc;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  std::string origin;

  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  /// Runs the io_context until the started operations completed (each has a deadline).
  void run() {
    ioc.restart();
    ioc.run();
  }

  /// True if the server closed the idle connection (or sent something unasked).
  bool peer_gone() {
    auto& socket = tcp().socket();
    if (!socket.is_open()) {
      return true;
    }
    pollfd p{socket.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
      return false;
    }
    return true;  // readable while idle: EOF, a reset, a TLS alert or stray bytes
  }

  void close() {
    beast::error_code ignored;
    auto& socket = tcp().socket();
    if (socket.is_open()) {
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    }
  }
};

bool is_ssl_error(const beast::error_code& ec) {
  return ec.category() == net::error::get_ssl_category() || ec == net::ssl::error::stream_truncated;
}

}  // namespace

std::string response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) {
      return value;
    }
  }
  return {};
}

result<nlohmann::json> response::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::provider_error, std::string{"response is not JSON: "} + e.what());
  }
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0x0f]);
    }
  }
  return out;
}

struct client::impl {
  explicit impl(client_options o) : options(std::move(o)), tls(ssl::context::tls_client) {}

  ~impl() {
    std::lock_guard<std::mutex> guard{mutex};
    for (auto& [origin, list] : idle) {
      for (auto& c : list) {
        c->close();
      }
    }
  }

  /// Configures `tls` before its first use: loading a CA store takes tens of milliseconds,
  /// which a client that never speaks https (webhooks to http URLs, the simulation) skips.
  void setup_tls() {
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!options.verify_tls) {
      tls.set_verify_mode(ssl::verify_none);
      return;
    }
    tls.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    if (!options.ca_pem.empty()) {
      tls.add_certificate_authority(net::buffer(options.ca_pem), ec);
      if (ec) {
        tls_error = "tls: cannot load the CA certificates given as PEM text: " + ec.message();
        return;
      }
    }
    if (!options.ca_bundle.empty()) {
      tls.load_verify_file(options.ca_bundle, ec);
      if (ec) {
        tls_error = "tls: cannot load CA bundle '" + options.ca_bundle + "': " + ec.message();
        return;
      }
    }
    if (options.ca_pem.empty() && options.ca_bundle.empty()) {
      tls.set_default_verify_paths(ec);
      if (ec) {
        tls_error = "tls: cannot load the system CA store: " + ec.message();
      }
    }
  }

  /// An idle connection to `origin` that still looks alive, or null.
  std::unique_ptr<connection> take_idle(const std::string& origin) {
    std::unique_ptr<connection> found;
    std::vector<std::unique_ptr<connection>> dead;
    {
      std::lock_guard<std::mutex> guard{mutex};
      auto it = idle.find(origin);
      while (it != idle.end() && !it->second.empty() && !found) {
        auto c = std::move(it->second.back());
        it->second.pop_back();
        if (c->peer_gone()) {
          dead.push_back(std::move(c));
        } else {
          found = std::move(c);
        }
      }
    }
    for (auto& c : dead) {
      c->close();
    }
    return found;
  }

  void put_idle(std::unique_ptr<connection> c) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      auto& list = idle[c->origin];
      if (list.size() < options.max_idle_per_origin) {
        list.push_back(std::move(c));
        return;
      }
    }
    c->close();
  }

  /// A fresh connection: resolve, connect and (https) handshake, all before `deadline`.
  result<std::unique_ptr<connection>> open(const url_parts& url, steady::time_point deadline) {
    auto c = std::make_unique<connection>(url.origin);
    const auto connect_deadline = std::min(deadline, steady::now() + options.connect_timeout);
    const std::string where = url.host + ":" + url.port;
    std::vector<tcp::endpoint> endpoints;
    beast::error_code ec;
    const auto literal = net::ip::make_address(url.host, ec);
    if (!ec) {
      endpoints.emplace_back(literal, static_cast<unsigned short>(std::stoi(url.port)));
    } else {
      tcp::resolver resolver{c->ioc};
      bool done = false;
      resolver.async_resolve(url.host, url.port,
                             [&](const beast::error_code& e, const tcp::resolver::results_type& results) {
                               done = true;
                               ec = e;
                               for (const auto& r : results) {
                                 endpoints.push_back(r.endpoint());
                               }
                             });
      c->ioc.restart();
      c->ioc.run_until(connect_deadline);
      if (!done) {
        resolver.cancel();
        c->run();
        return make_error(errc::timeout, "resolving " + url.host + " timed out");
      }
      if (ec) {
        return make_error(errc::unavailable, "cannot resolve " + url.host + ": " + ec.message());
      }
    }

    if (url.tls) {
      std::call_once(tls_configured, [this] { setup_tls(); });
      if (!tls_error.empty()) {
        return make_error(errc::provider_error, tls_error);
      }
      c->secure.emplace(c->ioc, tls);
    } else {
      c->plain.emplace(c->ioc);
    }
    auto& stream = c->tcp();
    stream.expires_at(connect_deadline);
    ec = {};
    stream.async_connect(endpoints, [&](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
    c->run();
    if (ec == beast::error::timeout) {
      return make_error(errc::timeout, "connect to " + where + " timed out");
    }
    if (ec) {
      return make_error(errc::unavailable, "cannot connect to " + where + ": " + ec.message());
    }
    stream.socket().set_option(tcp::no_delay(true), ec);
    ++opened;

    if (url.tls) {
      SSL* ssl_handle = c->secure->native_handle();
      if (!url.host_is_ip) {
        // SNI: the name of the virtual host we want (never sent for an IP literal, RFC 6066 §3).
        if (::SSL_set_tlsext_host_name(ssl_handle, url.host.c_str()) != 1) {
          return make_error(errc::provider_error, "tls: cannot set SNI host name: " + openssl_errors());
        }
      }
      if (options.verify_tls) {
        // Host name / IP verification by OpenSSL itself during the handshake.
        X509_VERIFY_PARAM* param = ::SSL_get0_param(ssl_handle);
        const int set = url.host_is_ip ? ::X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                                       : ::X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
        if (set != 1) {
          return make_error(errc::provider_error, "tls: cannot set the expected host: " + openssl_errors());
        }
        ::X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
      stream.expires_at(connect_deadline);
      ec = {};
      c->secure->async_handshake(ssl::stream_base::client, [&](const beast::error_code& e) { ec = e; });
      c->run();
      if (ec == beast::error::timeout) {
        return make_error(errc::timeout, "tls handshake with " + where + " timed out");
      }
      if (ec) {
        const long verify = ::SSL_get_verify_result(ssl_handle);
        ::ERR_clear_error();
        if (options.verify_tls && verify != X509_V_OK) {
          return make_error(errc::provider_error, "tls: certificate verification failed for " + where + ": " +
                                                      ::X509_verify_cert_error_string(verify));
        }
        return make_error(errc::provider_error, "tls: handshake with " + where + " failed: " + ec.message());
      }
    }
    return c;
  }

  /// What went wrong on an established connection, as the client's error.
  error io_failure(const url_parts& url, std::string_view what, const beast::error_code& ec,
                   std::chrono::milliseconds timeout) {
    if (ec == beast::error::timeout) {
      return make_error(errc::timeout,
                        "request to " + url.origin + " timed out after " + std::to_string(timeout.count()) + " ms");
    }
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      return make_error(errc::payload_too_large, "response from " + url.origin + " exceeds " +
                                                     std::to_string(options.max_response_bytes) + " bytes");
    }
    if (is_ssl_error(ec)) {
      return make_error(errc::provider_error, "tls: " + std::string{what} + " " + url.origin + ": " + ec.message());
    }
    return make_error(errc::unavailable, std::string{what} + " " + url.origin + ": " + ec.message());
  }

  /// One exchange on `c`; `retry_safe` tells the caller whether nothing reached the server.
  template <class Stream>
  result<response> exchange(connection& c, Stream& stream, const url_parts& url,
                            bhttp::request<bhttp::string_body>& msg, bool head, steady::time_point deadline,
                            std::chrono::milliseconds timeout, bool& retry_safe, bool& keep) {
    retry_safe = false;
    keep = false;
    beast::error_code ec;
    c.tcp().expires_at(deadline);
    bhttp::async_write(stream, msg, [&](const beast::error_code& e, std::size_t) { ec = e; });
    c.run();
    if (ec) {
      retry_safe = ec != beast::error::timeout;
      return io_failure(url, "write to", ec, timeout);
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options.max_response_bytes, 1 << 20)));
    if (head) {
      parser.skip(true);
    }
    c.tcp().expires_at(deadline);
    // The header first: Beast 1.74 checks `body_limit` against Content-Length only when the
    // header is parsed on its own (an eager full read of a small response skips the check).
    bhttp::async_read_header(stream, c.buffer, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
    c.run();
    if (!ec && !parser.is_done()) {
      bhttp::async_read(stream, c.buffer, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
      c.run();
    }
    if (ec) {
      const bool closed = ec == bhttp::error::end_of_stream || ec == net::error::eof ||
                          ec == net::error::connection_reset || ec == net::ssl::error::stream_truncated ||
                          ec == net::error::broken_pipe;
      const auto method = msg.method_string();
      retry_safe = closed && !parser.got_some() && idempotent(std::string_view{method.data(), method.size()});
      return io_failure(url, "read from", ec, timeout);
    }
    keep = parser.keep_alive();
    auto res = parser.release();
    response out;
    out.status = res.result_int();
    out.body = std::move(res.body());
    for (const auto& field : res) {
      const auto name = field.name_string();
      const auto value = field.value();
      out.headers.emplace_back(lowercase(std::string_view{name.data(), name.size()}),
                               std::string{value.data(), value.size()});
    }
    c.tcp().expires_never();
    return out;
  }

  client_options options;
  ssl::context tls;
  std::once_flag tls_configured;
  std::string tls_error;  ///< why the TLS context is unusable ("" = fine); set once, by `setup_tls`
  std::mutex mutex;
  std::map<std::string, std::vector<std::unique_ptr<connection>>> idle;
  std::atomic<std::size_t> opened{0};
};

client::client(client_options options) : _impl(std::make_unique<impl>(std::move(options))) {}

client::~client() = default;

const client_options& client::options() const noexcept {
  return _impl->options;
}

std::size_t client::connections_opened() const noexcept {
  return _impl->opened.load();
}

void client::close_idle() {
  std::map<std::string, std::vector<std::unique_ptr<connection>>> idle;
  {
    std::lock_guard<std::mutex> guard{_impl->mutex};
    idle.swap(_impl->idle);
  }
  for (auto& [origin, list] : idle) {
    for (auto& c : list) {
      c->close();
    }
  }
}

result<response> client::send(const request& req) {
  auto& d = *_impl;
  auto url = parse_url(req.url);
  if (!url) {
    return std::move(url).err();
  }
  if (req.method.empty()) {
    return make_error(errc::invalid_argument, "empty HTTP method");
  }
  const auto timeout = req.timeout.value_or(d.options.request_timeout);
  const auto deadline = steady::now() + timeout;

  bhttp::request<bhttp::string_body> msg;
  const auto verb = bhttp::string_to_verb(req.method);
  if (verb == bhttp::verb::unknown) {
    msg.method_string(req.method);
  } else {
    msg.method(verb);
  }
  msg.target(url->target);
  msg.version(11);
  msg.set(bhttp::field::host, url->host_header);
  msg.set(bhttp::field::user_agent, d.options.user_agent);
  for (const auto& [name, value] : req.headers) {
    if (iequals(name, "host") || iequals(name, "user-agent")) {
      msg.set(name, value);
    } else {
      msg.insert(name, value);
    }
  }
  msg.body() = req.body;
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    msg.content_length(req.body.size());
  }
  msg.keep_alive(true);
  const bool head = req.method == "HEAD";

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<connection> c = attempt == 0 ? d.take_idle(url->origin) : nullptr;
    const bool reused = c != nullptr;
    if (!c) {
      auto opened = d.open(*url, deadline);
      if (!opened) {
        if (opened.err().code == errc::timeout && steady::now() >= deadline) {
          return make_error(errc::timeout, "request to " + url->origin + " timed out after " +
                                               std::to_string(timeout.count()) + " ms (while connecting)");
        }
        return std::move(opened).err();
      }
      c = std::move(*opened);
    }
    bool retry_safe = false;
    bool keep = false;
    auto out = c->secure ? d.exchange(*c, *c->secure, *url, msg, head, deadline, timeout, retry_safe, keep)
                         : d.exchange(*c, *c->plain, *url, msg, head, deadline, timeout, retry_safe, keep);
    if (!out) {
      c->close();
      if (reused && retry_safe && attempt == 0 && steady::now() < deadline) {
        continue;  // the server closed the idle connection: once more on a fresh one
      }
      return out;
    }
    if (keep) {
      d.put_idle(std::move(c));
    } else {
      c->close();
    }
    return out;
  }
}

result<response> client::send_json(std::string method, std::string url, const nlohmann::json* body,
                                   std::vector<std::pair<std::string, std::string>> headers) {
  request req;
  req.method = std::move(method);
  req.url = std::move(url);
  bool has_type = false;
  bool has_accept = false;
  for (const auto& [name, value] : headers) {
    has_type = has_type || iequals(name, "content-type");
    has_accept = has_accept || iequals(name, "accept");
  }
  req.headers = std::move(headers);
  if (!has_accept) {
    req.headers.emplace_back("Accept", "application/json");
  }
  if (body != nullptr) {
    if (!has_type) {
      req.headers.emplace_back("Content-Type", "application/json");
    }
    req.body = body->dump();
  }
  return send(req);
}

}  // namespace prov::providers::http
