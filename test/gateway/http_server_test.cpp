#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "../support/http_client.hpp"
#include "prov/core/log.hpp"
#include "prov/gateway/http_server.hpp"
#include "prov/providers/http/client.hpp"
#include "providers_http/test_pki.hpp"
#include "support/log_capture.hpp"
#include "support/tls_probe.hpp"

using namespace prov;
using namespace prov::gateway;
using prov::test::http_client;

namespace {

/// Answers every request with what the server parsed, as JSON.
http_response echo(const http_request& req) {
  nlohmann::json query = nlohmann::json::object();
  for (const auto& [k, v] : req.query) {
    query[k] = v;
  }
  return json_response(200, {{"method", req.method},
                             {"target", req.target},
                             {"path", req.path},
                             {"query", query},
                             {"body", req.body},
                             {"authorization", req.authorization},
                             {"content_type", req.content_type},
                             {"x_trace", std::string(req.header("X-Trace"))},
                             {"remote", req.remote},
                             {"version", req.version}});
}

http_handler echo_handler() {
  return [](http_request&& req, responder respond) { respond(echo(req)); };
}

/// A started server on an ephemeral port of 127.0.0.1.
struct running_server {
  explicit running_server(http_handler handler, http_server_options options = {})
      : server(with_ephemeral_port(std::move(options)), std::move(handler)) {
    auto started = server.start();
    REQUIRE(started.ok());
    port = *started;
  }

  static http_server_options with_ephemeral_port(http_server_options o) {
    o.host = "127.0.0.1";
    o.port = 0;
    return o;
  }

  http_client client() const { return http_client("127.0.0.1", port); }

  http_server server;
  unsigned short port = 0;
};

/// True if the reply failed because the server closed the connection (not by client timeout).
bool closed_by_server(const http_client::reply& r) {
  return r.status == 0 && r.body.find("timeout") == std::string::npos;
}

std::size_t count_of(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

using prov::test::log_capture;

/// Responders handed over to another thread, which answers them after the handler returned.
class answering_thread {
 public:
  answering_thread() : _thread([this] { run(); }) {}
  ~answering_thread() {
    {
      std::lock_guard lock(_mutex);
      _done = true;
    }
    _cv.notify_all();
    _thread.join();
  }

  void hand_over(responder r, http_response response) {
    {
      std::lock_guard lock(_mutex);
      _queue.emplace_back(std::move(r), std::move(response));
    }
    _cv.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(_mutex);
    for (;;) {
      _cv.wait(lock, [this] { return _done || !_queue.empty(); });
      if (_queue.empty()) {
        return;
      }
      auto [r, response] = std::move(_queue.front());
      _queue.pop_front();
      lock.unlock();
      r(std::move(response));
      lock.lock();
    }
  }

  std::mutex _mutex;
  std::condition_variable _cv;
  std::deque<std::pair<responder, http_response>> _queue;
  bool _done = false;
  std::thread _thread;
};

}  // namespace

TEST_CASE("http status and error body follow the errc table", "[gateway][http]") {
  CHECK(http_status_for(errc::invalid_argument) == 400);
  CHECK(http_status_for(errc::unauthorized) == 401);
  CHECK(http_status_for(errc::forbidden) == 403);
  CHECK(http_status_for(errc::not_found) == 404);
  CHECK(http_status_for(errc::conflict) == 409);
  CHECK(http_status_for(errc::version_conflict) == 409);
  CHECK(http_status_for(errc::invalid_transition) == 409);
  CHECK(http_status_for(errc::payload_too_large) == 413);
  CHECK(http_status_for(errc::quota_exceeded) == 422);
  CHECK(http_status_for(errc::no_cluster_available) == 422);
  CHECK(http_status_for(errc::unsupported) == 501);
  CHECK(http_status_for(errc::provider_error) == 502);
  CHECK(http_status_for(errc::unavailable) == 503);
  CHECK(http_status_for(errc::timeout) == 504);
  CHECK(http_status_for(errc::io_error) == 500);
  CHECK(http_status_for(errc::corrupt) == 500);
  CHECK(http_status_for(errc::internal) == 500);

  const auto r = error_response(404, errc::not_found, "no such request");
  CHECK(r.status == 404);
  CHECK(r.content_type == "application/json");
  CHECK(nlohmann::json::parse(r.body) ==
        nlohmann::json{{"error", {{"code", "not_found"}, {"message", "no such request"}}}});
  CHECK(error_response(make_error(errc::conflict, "taken")).status == 409);
}

TEST_CASE("http round trip echoes method, path, query, headers and body", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();

  const auto r = client.request("POST", "/v1/requests?state=pending&limit=10", R"({"a":1})",
                                {{"Authorization", "Bearer tok"}, {"Content-Type", "application/json"},
                                 {"X-Trace", "abc"}});
  REQUIRE(r.status == 200);
  CHECK(r.header("server") == "provisiond");
  CHECK(r.header("content-type") == "application/json");
  CHECK(r.header("content-length") == std::to_string(r.body.size()));
  CHECK_FALSE(r.header("date").empty());
  const auto j = r.json();
  CHECK(j["method"] == "POST");
  CHECK(j["target"] == "/v1/requests?state=pending&limit=10");
  CHECK(j["path"] == "/v1/requests");
  CHECK(j["query"] == nlohmann::json{{"state", "pending"}, {"limit", "10"}});
  CHECK(j["body"] == R"({"a":1})");
  CHECK(j["authorization"] == "Bearer tok");
  CHECK(j["content_type"] == "application/json");
  CHECK(j["x_trace"] == "abc");
  CHECK(j["version"] == 11);
  CHECK(j["remote"].get<std::string>().rfind("127.0.0.1:", 0) == 0);

  SECTION("token helpers send a bearer token") {
    CHECK(client.get("/x", "secret").json()["authorization"] == "Bearer secret");
    CHECK(client.post("/x", {{"k", "v"}}, "t2").json()["body"] == R"({"k":"v"})");
    CHECK(client.del("/x").json()["method"] == "DELETE");
  }
  SECTION("unknown methods reach the handler") {
    CHECK(client.request("BREW", "/pot").json()["method"] == "BREW");
  }
  SECTION("handler headers are sent, reserved ones are not overridden") {
    running_server h([](http_request&&, responder respond) {
      http_response r;
      r.status = 201;
      r.body = "made";
      r.content_type = "text/plain";
      r.headers = {{"Location", "/v1/x/1"}, {"Content-Length", "999"}, {"X-Evil", "a\r\nInjected: yes"}};
      respond(std::move(r));
    });
    auto c = h.client();
    const auto made = c.get("/");
    CHECK(made.status == 201);
    CHECK(made.body == "made");
    CHECK(made.header("location") == "/v1/x/1");
    CHECK(made.header("content-length") == "4");
    CHECK(made.header("content-type") == "text/plain");
    CHECK(made.header("x-evil").empty());
    CHECK(made.header("injected").empty());
  }
}

TEST_CASE("http percent-decodes path and query", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();
  const auto j = client.get("/v1/a%20b/%C3%A9?x=1%2B1&y=a+b&flag&x=second&&z=%3D").json();
  CHECK(j["path"] == "/v1/a b/\xC3\xA9");
  CHECK(j["query"] == nlohmann::json{{"x", "1+1"}, {"y", "a b"}, {"flag", ""}, {"z", "="}});
}

TEST_CASE("http rejects invalid percent-encoding with 400 before the handler", "[gateway][http]") {
  std::atomic<int> calls{0};
  running_server s([&](http_request&& req, responder respond) {
    ++calls;
    respond(echo(req));
  });
  auto client = s.client();
  for (const char* target : {"/a%zz", "/a%2", "/a%", "/ok?x=%G1", "/ok?%=1", "/nul%00byte"}) {
    INFO(target);
    const auto r = client.get(target);
    CHECK(r.status == 400);
    CHECK(r.json()["error"]["code"] == "invalid_argument");
  }
  CHECK(calls == 0);
  // The connection stays usable after such a 400.
  CHECK(client.get("/fine").status == 200);
  CHECK(calls == 1);
  CHECK(client.connections_opened() == 1);
}

TEST_CASE("http keep-alive serves many requests on one connection", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();
  std::string remote;
  for (int i = 0; i < 200; ++i) {
    const auto r = client.get("/n/" + std::to_string(i));
    REQUIRE(r.status == 200);
    const auto j = r.json();
    CHECK(j["path"] == "/n/" + std::to_string(i));
    if (remote.empty()) {
      remote = j["remote"];
    }
    CHECK(j["remote"] == remote);
  }
  CHECK(client.connections_opened() == 1);
}

TEST_CASE("http pipelined requests are answered in order, one at a time", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();
  const auto out = client.send_raw(
      "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(count_of(out, "HTTP/1.1 200 OK") == 3);
  const auto first = out.find("\"/first\"");
  const auto second = out.find("\"/second\"");
  const auto third = out.find("\"/third\"");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(third != std::string::npos);
  CHECK(first < second);
  CHECK(second < third);
  CHECK(out.find("\"abc\"") != std::string::npos);
}

TEST_CASE("http honors Connection: close and HTTP/1.0 without keep-alive", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();

  SECTION("Connection: close ends the connection after the response") {
    // If the server kept the connection open, it would answer the second request too.
    const auto out = client.send_raw(
        "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(count_of(out, "HTTP/1.1 200 OK") == 1);
    CHECK(out.find("Connection: close\r\n") != std::string::npos);
  }
  SECTION("HTTP/1.0 closes by default") {
    const auto out = client.send_raw("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    CHECK(count_of(out, " 200 OK") == 1);
    CHECK(out.find("\"version\":10") != std::string::npos);
  }
  SECTION("HTTP/1.0 with keep-alive stays open") {
    const auto out = client.send_raw(
        "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        "GET /b HTTP/1.0\r\n\r\n");
    CHECK(count_of(out, " 200 OK") == 2);
    CHECK(out.find("Connection: keep-alive\r\n") != std::string::npos);
  }
  SECTION("the client sees the close and reconnects") {
    CHECK(client.request("GET", "/a", {}, {{"Connection", "close"}}).status == 200);
    CHECK(client.get("/b").status == 200);
    CHECK(client.connections_opened() == 2);
  }
}

TEST_CASE("http HEAD gets headers only and Expect: 100-continue bodies arrive", "[gateway][http]") {
  running_server s(echo_handler());
  auto client = s.client();
  SECTION("HEAD") {
    const auto out = client.send_raw("HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    REQUIRE(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(out.find("Content-Length: ") != std::string::npos);
    CHECK(out.size() == out.find("\r\n\r\n") + 4);
  }
  SECTION("100-continue") {
    const auto out = client.send_raw(
        "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\nhi");
    CHECK(out.find("HTTP/1.1 200 OK\r\n") != std::string::npos);
    CHECK(out.find("\"body\":\"hi\"") != std::string::npos);
  }
}

TEST_CASE("http responder may be called from another thread after the handler returned", "[gateway][http]") {
  answering_thread answerer;
  running_server s([&](http_request&& req, responder respond) {
    auto response = echo(req);
    answerer.hand_over(std::move(respond), std::move(response));
  });
  auto client = s.client();
  for (int i = 0; i < 50; ++i) {
    const auto r = client.post("/async", {{"i", i}});
    REQUIRE(r.status == 200);
    CHECK(r.json()["body"] == nlohmann::json{{"i", i}}.dump());
  }
  CHECK(client.connections_opened() == 1);
}

TEST_CASE("http responder called twice answers once", "[gateway][http]") {
  running_server s([](http_request&& req, responder respond) {
    respond(json_response(200, {{"n", 1}}));
    respond(json_response(500, {{"n", 2}}));
  });
  auto client = s.client();
  for (int i = 0; i < 3; ++i) {
    const auto r = client.get("/twice");
    REQUIRE(r.status == 200);
    CHECK(r.json()["n"] == 1);
  }
  CHECK(client.connections_opened() == 1);
}

TEST_CASE("http dropped responder closes the connection", "[gateway][http]") {
  std::atomic<int> drops{0};
  running_server s([&](http_request&& req, responder respond) {
    if (req.path == "/drop") {
      ++drops;
      return;  // the responder dies here without being called
    }
    respond(echo(req));
  });
  auto client = s.client();
  REQUIRE(client.get("/before").status == 200);
  const auto dropped = client.get("/drop");
  CHECK(closed_by_server(dropped));
  CHECK(drops == 1);
  // A later request opens a new connection and is served.
  CHECK(client.get("/after").status == 200);
  CHECK(client.connections_opened() == 2);

  SECTION("also when the responder is dropped on another thread") {
    running_server t([](http_request&&, responder respond) {
      std::thread([r = std::move(respond)] {}).join();
    });
    auto c = t.client();
    CHECK(closed_by_server(c.get("/x")));
    CHECK(closed_by_server(c.get("/y")));
    CHECK(c.connections_opened() == 2);
  }
}

TEST_CASE("http body over the limit is refused with 413 and the server keeps serving", "[gateway][http]") {
  std::atomic<int> calls{0};
  running_server s([&](http_request&& req, responder respond) {
    ++calls;
    respond(json_response(200, {{"size", req.body.size()}}));
  });

  SECTION("declared by Content-Length") {
    auto client = s.client();
    const auto r = client.request("POST", "/big", std::string((1 << 20) + 1, 'x'));
    REQUIRE(r.status == 413);
    CHECK(r.json()["error"]["code"] == "payload_too_large");
    CHECK(r.header("connection") == "close");
    CHECK(calls == 0);
    // Exactly at the limit is fine, on a new connection.
    auto next = s.client();
    const auto ok = next.request("POST", "/limit", std::string(1 << 20, 'y'));
    REQUIRE(ok.status == 200);
    CHECK(ok.json()["size"] == (1 << 20));
  }
  SECTION("chunked body growing past the limit") {
    running_server small([&](http_request&& req, responder respond) { respond(echo(req)); },
                         http_server_options{.max_body_bytes = 8});
    auto client = small.client();
    const auto out = client.send_raw(
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
    CHECK(out.rfind("HTTP/1.1 413 ", 0) == 0);
    CHECK(out.find("payload_too_large") != std::string::npos);
    const auto within = client.send_raw(
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n");
    CHECK(within.find("\"body\":\"abc\"") != std::string::npos);
  }
}

TEST_CASE("http malformed requests get 400 and do not hurt the server", "[gateway][http]") {
  std::atomic<int> calls{0};
  running_server s([&](http_request&& req, responder respond) {
    ++calls;
    respond(echo(req));
  });
  auto client = s.client();
  for (const char* raw : {
           "this is not http\r\n\r\n",
           "GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
           "GET /x HTTP/2.0\r\n\r\n",
           "GET /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
           "\x01\x02\x03\xff\r\n\r\n",
           "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "GET http://example.com/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
       }) {
    INFO(raw);
    const auto out = client.send_raw(raw);
    CHECK(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(out.find("\"invalid_argument\"") != std::string::npos);
  }
  SECTION("an oversized header is refused with 431") {
    const auto out = client.send_raw("GET /x HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
    CHECK(out.rfind("HTTP/1.1 431 ", 0) == 0);
  }
  CHECK(calls == 0);
  CHECK(client.get("/still-alive").status == 200);
}

TEST_CASE("http handler exception becomes a 500 internal error", "[gateway][http]") {
  log_capture logged;
  running_server s([](http_request&& req, responder respond) {
    if (req.path == "/throw") {
      throw std::runtime_error("boom");
    }
    if (req.path == "/throw-int") {
      throw 42;
    }
    if (req.path == "/bad-status") {
      http_response bad;
      bad.status = 42;
      respond(std::move(bad));
      return;
    }
    respond(echo(req));
  });
  auto client = s.client();
  for (const char* target : {"/throw", "/throw-int", "/bad-status"}) {
    INFO(target);
    const auto r = client.get(target);
    REQUIRE(r.status == 500);
    CHECK(r.json()["error"]["code"] == "internal");
  }
  CHECK(client.get("/ok").status == 200);
  CHECK(client.connections_opened() == 1);
  CHECK(logged.count("boom") == 1);
  CHECK(logged.count("http handler produced an invalid status") == 1);
}

TEST_CASE("http stop with open connections returns and is idempotent", "[gateway][http]") {
  std::mutex mutex;
  std::condition_variable parked_cv;
  std::vector<responder> parked;
  std::atomic<int> handled{0};
  std::optional<running_server> s;
  s.emplace([&](http_request&& req, responder respond) {
    ++handled;
    if (req.path == "/park") {
      std::lock_guard lock(mutex);
      parked.push_back(std::move(respond));
      parked_cv.notify_all();
      return;
    }
    respond(echo(req));
  });
  const auto port = s->port;

  std::vector<std::unique_ptr<http_client>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<http_client>("127.0.0.1", port));
    REQUIRE(idle.back()->get("/warm").status == 200);
  }
  // One request waits for a response that never comes before stop().
  http_client::reply parked_reply;
  std::thread waiting([&] { parked_reply = http_client("127.0.0.1", port).get("/park"); });
  {
    std::unique_lock lock(mutex);
    parked_cv.wait(lock, [&] { return !parked.empty(); });
  }

  s->server.stop();
  s->server.stop();
  waiting.join();
  CHECK(closed_by_server(parked_reply));
  {
    // Answering after stop is a harmless no-op, as is dropping.
    std::lock_guard lock(mutex);
    parked.front()(json_response(200, {{"late", true}}));
    parked.clear();
  }
  for (auto& c : idle) {
    CHECK(closed_by_server(c->get("/after-stop")));
  }
  CHECK(s->server.start().err().code == errc::unavailable);
  s.reset();
  CHECK(handled == 9);
}

TEST_CASE("http start reports an address in use", "[gateway][http]") {
  running_server s(echo_handler());
  http_server second(http_server_options{.host = "127.0.0.1", .port = s.port}, echo_handler());
  const auto r = second.start();
  REQUIRE_FALSE(r.ok());
  CHECK(r.err().code == errc::io_error);
  CHECK(r.err().message.find(std::to_string(s.port)) != std::string::npos);
  CHECK(s.server.start().err().code == errc::conflict);
}

TEST_CASE("http max_connections closes connections beyond the limit", "[gateway][http]") {
  running_server s(echo_handler(), http_server_options{.max_connections = 1});
  auto first = s.client();
  REQUIRE(first.get("/one").status == 200);
  auto second = s.client();
  CHECK(closed_by_server(second.get("/two")));
  CHECK(first.get("/one-again").status == 200);
}

TEST_CASE("http 64 concurrent clients x 50 requests all succeed", "[gateway][http]") {
  running_server s(echo_handler());
  constexpr int clients = 64;
  constexpr int requests = 50;
  std::atomic<int> ok{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      http_client client("127.0.0.1", s.port);
      for (int i = 0; i < requests; ++i) {
        const std::string body = std::to_string(c) + ":" + std::to_string(i);
        const auto r = client.request("PUT", "/c/" + std::to_string(c), body);
        if (r.status == 200 && r.json()["body"] == body) {
          ++ok;
        } else {
          ++wrong;
        }
      }
      if (client.connections_opened() != 1) {
        ++wrong;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(wrong == 0);
  CHECK(ok == clients * requests);
}

// -- TLS ------------------------------------------------------------------------------------

namespace {

/// A test CA, a server identity it signed for 127.0.0.1, and the two as files.
struct tls_files {
  prov::test::test_ca ca = prov::test::make_test_ca();
  prov::test::test_identity id = prov::test::make_server_identity(ca);
  prov::test::temp_file cert{id.cert_pem};
  prov::test::temp_file key{id.key_pem};

  http_server_options options() const {
    http_server_options o;
    o.tls_cert_file = cert.path();
    o.tls_key_file = key.path();
    return o;
  }
};

/// What `close_over_tls` saw: the bytes of the answer, and whether the stream ended with the
/// server's close_notify (a read ending in eof rather than a truncation).
struct closing_exchange {
  std::string response;
  bool clean_end = false;
};

/// One `Connection: close` request over a fresh TLS connection (blocking, reads bounded by a
/// 10 s receive timeout).
closing_exchange close_over_tls(unsigned short port, const std::string& ca_pem) {
  namespace net = boost::asio;
  net::io_context ioc;
  net::ssl::context ctx{net::ssl::context::tls_client};
  ctx.add_certificate_authority(net::buffer(ca_pem));
  ctx.set_verify_mode(net::ssl::verify_peer);
  net::ssl::stream<net::ip::tcp::socket> stream{ioc, ctx};
  stream.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
  const timeval limit{10, 0};
  ::setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  stream.handshake(net::ssl::stream_base::client);
  const std::string request = "GET /bye HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  net::write(stream, net::buffer(request));
  closing_exchange out;
  std::array<char, 4096> buf{};
  boost::system::error_code ec;
  while (!ec) {
    const auto n = stream.read_some(net::buffer(buf), ec);
    out.response.append(buf.data(), n);
  }
  out.clean_end = ec == net::error::eof;
  return out;
}

providers::http::client verifying_client(const std::string& ca_pem) {
  providers::http::client_options o;
  o.ca_pem = ca_pem;
  o.request_timeout = std::chrono::seconds{10};
  return providers::http::client{o};
}

}  // namespace

TEST_CASE("http over TLS: a client that trusts the CA gets answers on one kept-alive connection",
          "[gateway][http][tls]") {
  const tls_files files;
  REQUIRE(check_tls(files.options()).ok());
  running_server s(echo_handler(), files.options());
  auto c = verifying_client(files.ca.cert_pem);
  const auto base = "https://127.0.0.1:" + std::to_string(s.port);
  for (int i = 0; i < 3; ++i) {
    const nlohmann::json body{{"n", i}};
    auto r = c.send_json("POST", base + "/v1/echo?x=" + std::to_string(i), &body, {{"Authorization", "Bearer t"}});
    REQUIRE(r.ok());
    REQUIRE(r->status == 200);
    const auto echoed = r->json();
    REQUIRE(echoed.ok());
    CHECK((*echoed)["path"] == "/v1/echo");
    CHECK((*echoed)["query"]["x"] == std::to_string(i));
    CHECK((*echoed)["authorization"] == "Bearer t");
    CHECK(nlohmann::json::parse((*echoed)["body"].get<std::string>()) == body);
  }
  CHECK(c.connections_opened() == 1);
  // "Connection: close" is answered, then the server ends the stream with close_notify, so
  // that the client can tell the end from a truncation.
  const auto last = close_over_tls(s.port, files.ca.cert_pem);
  CHECK(last.response.rfind("HTTP/1.1 200 ", 0) == 0);
  CHECK(last.response.find("Connection: close\r\n") != std::string::npos);
  CHECK(last.response.find("\"path\":\"/bye\"") != std::string::npos);
  CHECK(last.clean_end);
}

TEST_CASE("http over TLS: plain HTTP and clients that do not trust the certificate get nothing",
          "[gateway][http][tls]") {
  const tls_files files;
  running_server s(echo_handler(), files.options());
  // Plain HTTP to the TLS port: no HTTP answer (the handshake fails on the first bytes).
  auto plain = s.client().get("/healthz");
  CHECK(plain.status == 0);
  // A client with another CA refuses the server's certificate.
  const auto other = prov::test::make_test_ca("another CA");
  auto c = verifying_client(other.cert_pem);
  auto r = c.send({"GET", "https://127.0.0.1:" + std::to_string(s.port) + "/", {}, "", std::nullopt});
  REQUIRE_FALSE(r.ok());
  CHECK(r.err().message.find("tls") != std::string::npos);
  // The server is still there for a trusting client.
  auto trusting = verifying_client(files.ca.cert_pem);
  auto ok = trusting.send({"GET", "https://127.0.0.1:" + std::to_string(s.port) + "/after", {}, "", std::nullopt});
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
}

TEST_CASE("http over TLS: TLS 1.2 and 1.3 by default, 1.3 only when the minimum says so", "[gateway][http][tls]") {
  const tls_files files;
  CHECK(parse_tls_version("1.2") == tls_version::v1_2);
  CHECK(parse_tls_version("1.3") == tls_version::v1_3);
  CHECK_FALSE(parse_tls_version("1.1").has_value());
  CHECK_FALSE(parse_tls_version("").has_value());
  {
    running_server s(echo_handler(), files.options());
    CHECK(prov::test::tls_handshake(s.port, files.ca.cert_pem) == "TLSv1.3");
    CHECK(prov::test::tls_handshake(s.port, files.ca.cert_pem, TLS1_2_VERSION) == "TLSv1.2");
  }
  auto strict = files.options();
  strict.tls_min_version = tls_version::v1_3;
  REQUIRE(check_tls(strict).ok());
  running_server s(echo_handler(), strict);
  CHECK(prov::test::tls_handshake(s.port, files.ca.cert_pem) == "TLSv1.3");
  CHECK_FALSE(prov::test::tls_handshake(s.port, files.ca.cert_pem, TLS1_2_VERSION).has_value());
  // Still serving after the refused handshake.
  auto c = verifying_client(files.ca.cert_pem);
  auto r = c.send({"GET", "https://127.0.0.1:" + std::to_string(s.port) + "/after", {}, "", std::nullopt});
  REQUIRE(r.ok());
  CHECK(r->status == 200);
}

TEST_CASE("http TLS options: both files needed, unreadable files and a key of another certificate are named",
          "[gateway][http][tls]") {
  const tls_files files;
  const tls_files others;
  auto only_cert = files.options();
  only_cert.tls_key_file.clear();
  CHECK(check_tls(only_cert).err().code == errc::invalid_argument);

  auto missing = files.options();
  missing.tls_cert_file = "/nonexistent/cert.pem";
  auto checked = check_tls(missing);
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.err().message.find("/nonexistent/cert.pem") != std::string::npos);

  auto not_a_key = files.options();
  not_a_key.tls_key_file = files.cert.path();  // a certificate where the key should be
  checked = check_tls(not_a_key);
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.err().message.find(files.cert.path()) != std::string::npos);

  auto mismatched = files.options();
  mismatched.tls_key_file = others.key.path();
  checked = check_tls(mismatched);
  REQUIRE_FALSE(checked.ok());
  INFO(checked.err().message);
  CHECK(checked.err().message.find("does not belong") != std::string::npos);

  // start() refuses the same way, before it binds anything.
  http_server server{running_server::with_ephemeral_port(mismatched), echo_handler()};
  const auto started = server.start();
  REQUIRE_FALSE(started.ok());
  CHECK(started.err().code == errc::invalid_argument);
  CHECK(check_tls(http_server_options{}).ok());  // plain HTTP: nothing to check
}

TEST_CASE("http over TLS: a reload takes a renewed certificate for new connections, a bad one is refused",
          "[gateway][http][tls]") {
  const tls_files files;
  running_server s(echo_handler(), files.options());
  const auto url = "https://127.0.0.1:" + std::to_string(s.port) + "/";
  const auto answers = [&](const std::string& ca_pem) {
    auto c = verifying_client(ca_pem);  // a fresh client: a new connection
    auto r = c.send({"GET", url, {}, "", std::nullopt});
    return r.ok() && r->status == 200;
  };
  const auto renewed_ca = prov::test::make_test_ca("renewed CA");
  const auto renewed = prov::test::make_server_identity(renewed_ca);
  const auto overwrite = [](const std::string& path, const std::string& text) {
    std::ofstream out{path, std::ios::trunc};
    out << text;
  };
  CHECK(answers(files.ca.cert_pem));
  CHECK_FALSE(answers(renewed_ca.cert_pem));

  overwrite(files.cert.path(), renewed.cert_pem);
  overwrite(files.key.path(), renewed.key_pem);
  REQUIRE(s.server.reload_tls().ok());
  CHECK(answers(renewed_ca.cert_pem));
  CHECK_FALSE(answers(files.ca.cert_pem));

  // A key that does not load: refused, and the server goes on with the certificate it has.
  overwrite(files.key.path(), "not a key");
  const auto refused = s.server.reload_tls();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().message.find(files.key.path()) != std::string::npos);
  CHECK(answers(renewed_ca.cert_pem));

  running_server plain(echo_handler());
  CHECK(plain.server.reload_tls().err().code == errc::invalid_argument);
}
