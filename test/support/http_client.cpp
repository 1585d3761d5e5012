#include "http_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace prov::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

namespace {

std::string lowercase(beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string bearer(std::string_view token) {
  return "Bearer " + std::string(token);
}

}  // namespace

struct http_client::impl {
  impl(std::string h, unsigned short p, std::chrono::seconds t) : host(std::move(h)), port(p), timeout(t) {}

  /// Runs the io_context until the started operations complete (each has a timeout).
  void run() {
    ioc.restart();
    ioc.run();
  }

  /// Opens a connection in `s`; "" on success, else the reason.
  std::string connect(beast::tcp_stream& s) {
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
      return "resolve " + host + ": " + ec.message();
    }
    s.expires_after(timeout);
    s.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) {
      return "connect " + host + ":" + std::to_string(port) + ": " + ec.message();
    }
    s.socket().set_option(tcp::no_delay(true), ec);
    return {};
  }

  /// True if the kept-alive connection was closed by the server (or has stray bytes).
  bool peer_gone() {
    const int fd = stream->socket().native_handle();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
      return false;
    }
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n != -1 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }

  void disconnect() {
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
      stream.reset();
    }
    buffer.consume(buffer.size());
  }

  reply failure(std::string why) {
    disconnect();
    reply r;
    r.body = std::move(why);
    return r;
  }

  std::string host;
  unsigned short port;
  std::chrono::seconds timeout;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::size_t opened = 0;
};

nlohmann::json http_client::reply::json() const {
  return nlohmann::json::parse(body);
}

std::string http_client::reply::header(const std::string& lowercase_name) const {
  const auto it = headers.find(lowercase_name);
  return it == headers.end() ? std::string{} : it->second;
}

http_client::http_client(std::string host, unsigned short port, std::chrono::seconds timeout)
    : _impl(std::make_unique<impl>(std::move(host), port, timeout)) {}

http_client::http_client(http_client&&) noexcept = default;
http_client& http_client::operator=(http_client&&) noexcept = default;

http_client::~http_client() {
  if (_impl) {
    _impl->disconnect();
  }
}

void http_client::close() {
  _impl->disconnect();
}

std::size_t http_client::connections_opened() const noexcept {
  return _impl->opened;
}

http_client::reply http_client::request(std::string_view method, std::string_view target, std::string_view body,
                                        const std::vector<std::pair<std::string, std::string>>& headers) {
  auto& d = *_impl;
  if (d.stream && d.peer_gone()) {
    d.disconnect();
  }
  if (!d.stream) {
    d.stream.emplace(d.ioc);
    if (auto why = d.connect(*d.stream); !why.empty()) {
      return d.failure(std::move(why));
    }
    ++d.opened;
  }

  bhttp::request<bhttp::string_body> req;
  const auto verb = bhttp::string_to_verb(beast::string_view(method.data(), method.size()));
  if (verb == bhttp::verb::unknown) {
    req.method_string(beast::string_view(method.data(), method.size()));
  } else {
    req.method(verb);
  }
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(bhttp::field::host, d.host + ":" + std::to_string(d.port));
  for (const auto& [name, value] : headers) {
    req.insert(name, value);
  }
  req.body().assign(body.data(), body.size());
  if (!body.empty()) {
    req.content_length(body.size());
  }

  beast::error_code ec;
  d.stream->expires_after(d.timeout);
  bhttp::async_write(*d.stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    return d.failure("write: " + ec.message());
  }

  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  parser.header_limit(1 << 20);
  d.stream->expires_after(d.timeout);
  bhttp::async_read(*d.stream, d.buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
  d.run();
  if (ec) {
    return d.failure("read: " + ec.message());
  }
  auto res = parser.release();
  reply r;
  r.status = res.result_int();
  r.body = std::move(res.body());
  for (const auto& field : res) {
    r.headers.emplace(lowercase(field.name_string()), std::string(field.value().data(), field.value().size()));
  }
  if (!res.keep_alive()) {
    d.disconnect();
  }
  return r;
}

http_client::reply http_client::get(std::string_view target, std::string_view token) {
  if (token.empty()) {
    return request("GET", target);
  }
  return request("GET", target, {}, {{"Authorization", bearer(token)}});
}

namespace {

std::vector<std::pair<std::string, std::string>> json_headers(std::string_view token) {
  std::vector<std::pair<std::string, std::string>> h{{"Content-Type", "application/json"}};
  if (!token.empty()) {
    h.emplace_back("Authorization", bearer(token));
  }
  return h;
}

}  // namespace

http_client::reply http_client::post(std::string_view target, const nlohmann::json& body, std::string_view token) {
  return request("POST", target, body.dump(), json_headers(token));
}

http_client::reply http_client::put(std::string_view target, const nlohmann::json& body, std::string_view token) {
  return request("PUT", target, body.dump(), json_headers(token));
}

http_client::reply http_client::patch(std::string_view target, const nlohmann::json& body, std::string_view token) {
  return request("PATCH", target, body.dump(), json_headers(token));
}

http_client::reply http_client::del(std::string_view target, std::string_view token) {
  if (token.empty()) {
    return request("DELETE", target);
  }
  return request("DELETE", target, {}, {{"Authorization", bearer(token)}});
}

std::string http_client::send_raw(std::string_view bytes) {
  auto& d = *_impl;
  beast::tcp_stream s(d.ioc);
  if (auto why = d.connect(s); !why.empty()) {
    return {};
  }
  const auto deadline = std::chrono::steady_clock::now() + d.timeout;
  beast::error_code ec;
  s.expires_at(deadline);
  net::async_write(s, net::buffer(bytes.data(), bytes.size()), [&](beast::error_code e, std::size_t) { ec = e; });
  d.run();
  // Even if the write failed (the server may close early), read what did arrive.
  std::string received;
  std::array<char, 16 * 1024> chunk{};
  for (;;) {
    std::size_t n = 0;
    s.expires_at(deadline);
    s.async_read_some(net::buffer(chunk), [&](beast::error_code e, std::size_t got) {
      ec = e;
      n = got;
    });
    d.run();
    received.append(chunk.data(), n);
    if (ec) {
      break;
    }
  }
  beast::error_code ignored;
  s.socket().shutdown(tcp::socket::shutdown_both, ignored);
  s.close();
  return received;
}

}  // namespace prov::test
