#include "test_server.hpp"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <set>

namespace prov::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = net::ssl;
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

}  // namespace

struct test_server::state {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<ssl::context> tls;
  std::mutex mutex;
  std::condition_variable released;
  bool stopping = false;
  std::set<int> open_fds;
  std::vector<std::thread> threads;
};

test_server::test_server(handler h, std::optional<test_identity> tls)
    : _handler(std::move(h)), _state(std::make_shared<state>()), _tls(tls.has_value()) {
  auto& st = *_state;
  if (tls) {
    st.tls.emplace(ssl::context::tls_server);
    st.tls->use_certificate_chain(net::buffer(tls->cert_pem));
    st.tls->use_private_key(net::buffer(tls->key_pem), ssl::context::pem);
  }
  const tcp::endpoint endpoint{net::ip::make_address("127.0.0.1"), 0};
  st.acceptor.open(endpoint.protocol());
  st.acceptor.set_option(tcp::acceptor::reuse_address(true));
  st.acceptor.bind(endpoint);
  st.acceptor.listen();
  _port = st.acceptor.local_endpoint().port();
  _acceptor = std::thread([this] { accept_loop(); });
}

test_server::~test_server() {
  stop();
}

std::string test_server::url(const std::string& path) const {
  return std::string{_tls ? "https" : "http"} + "://127.0.0.1:" + std::to_string(_port) + path;
}

std::string test_server::url_by_name(const std::string& path) const {
  return std::string{_tls ? "https" : "http"} + "://localhost:" + std::to_string(_port) + path;
}

void test_server::stop() {
  auto& st = *_state;
  {
    std::lock_guard<std::mutex> guard{st.mutex};
    if (st.stopping) {
      return;
    }
    st.stopping = true;
    for (int fd : st.open_fds) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  st.released.notify_all();
  ::shutdown(st.acceptor.native_handle(), SHUT_RDWR);  // wakes the blocking accept
  _acceptor.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> guard{st.mutex};
    threads.swap(st.threads);
  }
  for (auto& t : threads) {
    t.join();
  }
  beast::error_code ignored;
  st.acceptor.close(ignored);
}

void test_server::accept_loop() {
  auto& st = *_state;
  for (;;) {
    beast::error_code ec;
    tcp::socket socket{st.ioc};
    st.acceptor.accept(socket, ec);
    std::lock_guard<std::mutex> guard{st.mutex};
    if (st.stopping) {
      return;
    }
    if (ec) {
      continue;
    }
    const std::size_t number = ++_accepted;
    const int fd = socket.release(ec);
    if (ec) {
      continue;
    }
    st.open_fds.insert(fd);
    st.threads.emplace_back([this, fd, number] { serve(fd, number); });
  }
}

namespace {

/// Reads requests from `stream` and answers them until the peer or the handler closes.
template <class Stream>
void serve_stream(Stream& stream, std::size_t number, const test_server::handler& handler,
                  std::atomic<std::size_t>& requests, std::mutex& mutex, std::condition_variable& released,
                  const bool& stopping) {
  beast::flat_buffer buffer;
  for (;;) {
    beast::error_code ec;
    bhttp::request<bhttp::string_body> req;
    bhttp::read(stream, buffer, req, ec);
    if (ec) {
      return;
    }
    served_request in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    for (const auto& field : req) {
      in.headers.emplace(lowercase(field.name_string()), std::string(field.value()));
    }
    in.body = std::move(req.body());
    in.connection = number;
    ++requests;
    served_response out = handler(in);
    if (out.hang) {
      std::unique_lock<std::mutex> lock{mutex};
      released.wait(lock, [&] { return stopping; });
      return;
    }
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status), req.version()};
    res.set(bhttp::field::server, "prov-test");
    for (const auto& [name, value] : out.headers) {
      res.set(name, value);
    }
    res.body() = std::move(out.body);
    res.keep_alive(req.keep_alive() && !out.close);
    if (res[bhttp::field::transfer_encoding] == "chunked") {
      res.chunked(true);
    } else {
      res.prepare_payload();
    }
    bhttp::write(stream, res, ec);
    if (ec || !res.keep_alive() || out.silent_close) {
      return;
    }
  }
}

}  // namespace

void test_server::serve(int fd, std::size_t number) {
  auto& st = *_state;
  tcp::socket socket{st.ioc};
  beast::error_code ec;
  socket.assign(tcp::v4(), fd, ec);
  if (!ec) {
    if (st.tls) {
      ssl::stream<tcp::socket&> stream{socket, *st.tls};
      stream.handshake(ssl::stream_base::server, ec);
      if (!ec) {
        serve_stream(stream, number, _handler, _requests, st.mutex, st.released, st.stopping);
      }
    } else {
      serve_stream(socket, number, _handler, _requests, st.mutex, st.released, st.stopping);
    }
  }
  {
    std::lock_guard<std::mutex> guard{st.mutex};
    st.open_fds.erase(fd);
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace prov::test
