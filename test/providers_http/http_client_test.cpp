// The shared HTTP(S) client against a local Beast server: plain and TLS (certificates made at
// test time), keep-alive, deadlines, transport errors, TLS verification.

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "prov/providers/http/client.hpp"
#include "test_pki.hpp"
#include "test_server.hpp"

using namespace std::chrono_literals;
using prov::errc;
namespace http = prov::providers::http;
using prov::test::served_request;
using prov::test::served_response;
using prov::test::test_server;

namespace {

served_response echo(const served_request& in) {
  served_response out;
  out.headers = {{"Content-Type", "application/json"}};
  out.body = nlohmann::json{{"method", in.method},
                            {"target", in.target},
                            {"body", in.body},
                            {"host", in.header("host")},
                            {"contentType", in.header("content-type")},
                            {"accept", in.header("accept")},
                            {"userAgent", in.header("user-agent")},
                            {"x", in.header("x-test")}}
                 .dump();
  return out;
}

/// Client options changed by `set` (designated initializers warn under -Wextra).
template <class F>
http::client_options options(F set) {
  http::client_options o;
  set(o);
  return o;
}

served_response body_of(std::string text) {
  served_response out;
  out.body = std::move(text);
  return out;
}

served_response never_answer() {
  served_response out;
  out.hang = true;
  return out;
}

/// A TCP port on 127.0.0.1 where nothing listens (bound once, then closed).
unsigned short closed_port() {
  test_server s{echo};
  const auto port = s.port();
  s.stop();
  return port;
}

}  // namespace

TEST_CASE("a request round-trips with method, target, headers and body", "[http][client]") {
  test_server server{echo};
  http::client client;
  http::request req;
  req.method = "POST";
  req.url = server.url("/a/b?c=d%20e");
  req.headers = {{"X-Test", "yes"}, {"Content-Type", "text/plain"}};
  req.body = "hello";
  auto res = client.send(req);
  REQUIRE(res.ok());
  CHECK(res->status == 200);
  CHECK(res->ok());
  CHECK(res->header("Content-Type") == "application/json");
  auto j = res->json();
  REQUIRE(j.ok());
  CHECK((*j)["method"] == "POST");
  CHECK((*j)["target"] == "/a/b?c=d%20e");
  CHECK((*j)["body"] == "hello");
  CHECK((*j)["x"] == "yes");
  CHECK((*j)["contentType"] == "text/plain");
  CHECK((*j)["userAgent"] == "provisiond");
  CHECK((*j)["host"] == "127.0.0.1:" + std::to_string(server.port()));
}

TEST_CASE("send_json sets JSON headers and serializes the body", "[http][client]") {
  test_server server{echo};
  http::client client;
  const nlohmann::json body{{"a", 1}};
  auto res = client.send_json("PUT", server.url("/x"), &body);
  REQUIRE(res.ok());
  auto j = *res->json();
  CHECK(j["body"] == R"({"a":1})");
  CHECK(j["contentType"] == "application/json");
  CHECK(j["accept"] == "application/json");

  auto patched = client.send_json("PATCH", server.url("/x"), &body, {{"Content-Type", "application/merge-patch+json"}});
  REQUIRE(patched.ok());
  CHECK((*patched->json())["contentType"] == "application/merge-patch+json");

  auto get = client.send_json("GET", server.url("/x"), nullptr);
  REQUIRE(get.ok());
  CHECK((*get->json())["body"] == "");
}

TEST_CASE("keep-alive reuses one connection per origin", "[http][client]") {
  test_server server{echo};
  http::client client;
  for (int i = 0; i < 5; ++i) {
    auto res = client.send_json("GET", server.url("/n/" + std::to_string(i)), nullptr);
    REQUIRE(res.ok());
    CHECK(res->status == 200);
  }
  CHECK(server.connections_accepted() == 1);
  CHECK(client.connections_opened() == 1);
  client.close_idle();
  REQUIRE(client.send_json("GET", server.url("/again"), nullptr).ok());
  CHECK(client.connections_opened() == 2);
}

TEST_CASE("a connection the server closed is not reused", "[http][client]") {
  test_server server{[](const served_request& in) {
    auto out = echo(in);
    out.close = in.target == "/close";
    return out;
  }};
  http::client client;
  REQUIRE(client.send_json("GET", server.url("/close"), nullptr).ok());
  auto res = client.send_json("GET", server.url("/next"), nullptr);
  REQUIRE(res.ok());
  CHECK(res->status == 200);
  CHECK(server.connections_accepted() == 2);
}

TEST_CASE("a kept-alive connection the server dropped silently is replaced", "[http][client]") {
  test_server server{[](const served_request& in) {
    auto out = echo(in);
    out.silent_close = true;  // answers with keep-alive, then closes anyway
    return out;
  }};
  http::client client;
  // Idempotent methods only: those are retried even if the close races the next write.
  for (const std::string method : {"GET", "DELETE", "PUT", "GET"}) {
    INFO(method);
    auto res = client.send_json(method, server.url("/drop"), nullptr);
    REQUIRE(res.ok());
    CHECK(res->status == 200);
  }
  CHECK(server.connections_accepted() == 4);
  CHECK(server.requests_served() == 4);
}

TEST_CASE("concurrent requests from several threads all succeed", "[http][client]") {
  test_server server{echo};
  http::client client{options([&](http::client_options& o) { o.max_idle_per_origin = 2; })};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto res = client.send_json("GET", server.url("/t/" + std::to_string(t)), nullptr);
        if (res.ok() && res->status == 200) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(ok == 40);
  CHECK(client.connections_opened() <= 40);
}

TEST_CASE("a server that never answers ends in errc::timeout", "[http][client][fault]") {
  test_server server{[](const served_request&) { return never_answer(); }};
  http::client client{options([&](http::client_options& o) { o.request_timeout = 200ms; })};
  auto res = client.send_json("GET", server.url("/hang"), nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::timeout);
  CHECK_THAT(res.err().message, Catch::Contains("timed out"));

  http::request req;
  req.url = server.url("/hang");
  req.timeout = 100ms;  // per request
  http::client slow{options([&](http::client_options& o) { o.request_timeout = 60'000ms; })};
  auto again = slow.send(req);
  REQUIRE_FALSE(again.ok());
  CHECK(again.err().code == errc::timeout);
}

TEST_CASE("connect refused is errc::unavailable", "[http][client][fault]") {
  http::client client;
  auto res = client.send_json("GET", "http://127.0.0.1:" + std::to_string(closed_port()) + "/", nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::unavailable);
  CHECK_THAT(res.err().message, Catch::Contains("connect"));
}

TEST_CASE("bad urls are errc::invalid_argument", "[http][client]") {
  http::client client;
  for (const std::string url : {"ftp://x/", "127.0.0.1/", "http://", "http://host:99999/", "http://u:p@host/",
                                "http://host:12ab/", "http://host/a b"}) {
    auto res = client.send_json("GET", url, nullptr);
    INFO(url);
    REQUIRE_FALSE(res.ok());
    CHECK(res.err().code == errc::invalid_argument);
  }
}

TEST_CASE("error statuses are responses, not errors", "[http][client]") {
  test_server server{[](const served_request& in) {
    served_response out;
    out.status = in.target == "/missing" ? 404 : 500;
    out.body = R"({"kind":"Status","code":)" + std::to_string(out.status) + "}";
    return out;
  }};
  http::client client;
  auto missing = client.send_json("GET", server.url("/missing"), nullptr);
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK_FALSE(missing->ok());
  CHECK((*missing->json())["code"] == 404);
  auto broken = client.send_json("DELETE", server.url("/broken"), nullptr);
  REQUIRE(broken.ok());
  CHECK(broken->status == 500);
  CHECK(server.connections_accepted() == 1);  // error responses keep the connection
}

TEST_CASE("a response over max_response_bytes is refused", "[http][client][fault]") {
  test_server server{[](const served_request& in) {
    auto out = body_of(std::string(4096, 'x'));
    if (in.target == "/chunked") {
      out.headers = {{"Transfer-Encoding", "chunked"}};
    }
    return out;
  }};
  http::client client{options([&](http::client_options& o) { o.max_response_bytes = 1024; })};
  auto res = client.send_json("GET", server.url("/big"), nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::payload_too_large);
  auto chunked = client.send_json("GET", server.url("/chunked"), nullptr);
  REQUIRE_FALSE(chunked.ok());
  CHECK(chunked.err().code == errc::payload_too_large);
  http::client roomy;
  auto ok = roomy.send_json("GET", server.url("/big"), nullptr);
  REQUIRE(ok.ok());
  CHECK(ok->body.size() == 4096);
}

TEST_CASE("a non-JSON body is a provider_error from json()", "[http][client]") {
  test_server server{[](const served_request&) { return body_of("<html>"); }};
  http::client client;
  auto res = client.send_json("GET", server.url("/"), nullptr);
  REQUIRE(res.ok());
  auto j = res->json();
  REQUIRE_FALSE(j.ok());
  CHECK(j.err().code == errc::provider_error);
}

TEST_CASE("url_encode keeps unreserved characters only", "[http][client]") {
  CHECK(http::url_encode("a-b_c.d~E9") == "a-b_c.d~E9");
  CHECK(http::url_encode("k=v,w/x y") == "k%3Dv%2Cw%2Fx%20y");
  CHECK(http::url_encode("é") == "%C3%A9");
}

TEST_CASE("https: verification fails without the test CA", "[http][client][tls]") {
  const auto ca = prov::test::make_test_ca();
  test_server server{echo, prov::test::make_server_identity(ca)};
  http::client client;  // system store: does not know the test CA
  auto res = client.send_json("GET", server.url("/"), nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::provider_error);
  CHECK_THAT(res.err().message, Catch::StartsWith("tls: "));
  CHECK_THAT(res.err().message, Catch::Contains("certificate"));
}

TEST_CASE("https: ca_bundle and ca_pem make the test CA trusted", "[http][client][tls]") {
  const auto ca = prov::test::make_test_ca();
  test_server server{echo, prov::test::make_server_identity(ca)};
  const prov::test::temp_file bundle{ca.cert_pem};

  http::client by_file{options([&](http::client_options& o) { o.ca_bundle = bundle.path(); })};
  auto res = by_file.send_json("GET", server.url("/ip"), nullptr);
  REQUIRE(res.ok());
  CHECK(res->status == 200);
  auto named = by_file.send_json("GET", server.url_by_name("/name"), nullptr);
  REQUIRE(named.ok());
  CHECK((*named->json())["target"] == "/name");
  // Both requests went to different origins (127.0.0.1 vs localhost), each kept alive.
  REQUIRE(by_file.send_json("GET", server.url("/ip2"), nullptr).ok());
  CHECK(by_file.connections_opened() == 2);

  http::client by_pem{options([&](http::client_options& o) { o.ca_pem = ca.cert_pem; })};
  auto pem = by_pem.send_json("GET", server.url("/pem"), nullptr);
  REQUIRE(pem.ok());
  CHECK(pem->status == 200);
}

TEST_CASE("https: a certificate for another host name is refused", "[http][client][tls]") {
  const auto ca = prov::test::make_test_ca();
  test_server server{echo, prov::test::make_server_identity(ca, {"api.other.example"}, {})};
  http::client client{options([&](http::client_options& o) { o.ca_pem = ca.cert_pem; })};
  auto res = client.send_json("GET", server.url("/"), nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::provider_error);
  CHECK_THAT(res.err().message, Catch::Contains("tls: certificate verification failed"));
  auto by_name = client.send_json("GET", server.url_by_name("/"), nullptr);
  REQUIRE_FALSE(by_name.ok());
  CHECK_THAT(by_name.err().message, Catch::StartsWith("tls: "));
}

TEST_CASE("https: a certificate from another CA is refused", "[http][client][tls]") {
  const auto ca = prov::test::make_test_ca("server CA");
  const auto other = prov::test::make_test_ca("other CA");
  test_server server{echo, prov::test::make_server_identity(ca)};
  http::client client{options([&](http::client_options& o) { o.ca_pem = other.cert_pem; })};
  auto res = client.send_json("GET", server.url("/"), nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK_THAT(res.err().message, Catch::StartsWith("tls: certificate verification failed"));
}

TEST_CASE("https: verify_tls=false accepts an unknown certificate", "[http][client][tls]") {
  const auto ca = prov::test::make_test_ca();
  test_server server{echo, prov::test::make_server_identity(ca, {"api.other.example"}, {})};
  http::client client{options([&](http::client_options& o) { o.verify_tls = false; })};
  for (int i = 0; i < 3; ++i) {
    auto res = client.send_json("GET", server.url("/insecure"), nullptr);
    REQUIRE(res.ok());
    CHECK(res->status == 200);
  }
  CHECK(server.connections_accepted() == 1);  // TLS connections are kept alive too
}

TEST_CASE("https: a bad ca_bundle path is a tls error, not a crash", "[http][client][tls]") {
  http::client client{options([&](http::client_options& o) { o.ca_bundle = "/nonexistent/ca.pem"; })};
  auto res = client.send_json("GET", "https://127.0.0.1:1/", nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::provider_error);
  CHECK_THAT(res.err().message, Catch::Contains("tls: cannot load CA bundle"));
}

TEST_CASE("https: a plain HTTP server behind an https url is a tls error", "[http][client][tls]") {
  test_server server{echo};
  http::client client{options([&](http::client_options& o) {
    o.verify_tls = false;
    o.request_timeout = 10'000ms;
  })};
  auto res = client.send_json("GET", "https://127.0.0.1:" + std::to_string(server.port()) + "/", nullptr);
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::provider_error);
  CHECK_THAT(res.err().message, Catch::StartsWith("tls: "));
}
