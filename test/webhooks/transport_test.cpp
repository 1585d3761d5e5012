// The production webhook transport against local receivers on 127.0.0.1: what is sent, the
// SSRF guard after resolution, plain HTTP pinned to the checked address, HTTPS with
// certificate verification, and the per-attempt timeout. Every wait is bounded.

#include <atomic>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "prov/actors/webhooks.hpp"
#include "test_pki.hpp"
#include "test_server.hpp"

using namespace prov;
using namespace prov::actors;
using prov::test::served_request;
using prov::test::served_response;
using prov::test::test_server;

namespace {

webhook_options loopback_options() {
  webhook_options o;
  o.addresses.allow_loopback = true;
  o.timeout = std::chrono::seconds{5};
  o.max_concurrent = 2;
  return o;
}

/// Posts once and waits (bounded) for the reply.
webhook_reply post_once(webhook_transport& t, const std::string& url, std::string body = R"({"x":1})") {
  auto promise = std::make_shared<std::promise<webhook_reply>>();
  auto future = promise->get_future();
  t.post(webhook_post{"wh1", url, {{"Content-Type", "application/cloudevents+json"}, {"X-Webhook-Id", "e1"}}, std::move(body), "acme"},
         [promise](webhook_reply r) { promise->set_value(std::move(r)); });
  REQUIRE(future.wait_for(std::chrono::seconds{30}) == std::future_status::ready);
  return future.get();
}

}  // namespace

TEST_CASE("webhook transport: POSTs the body and headers to a loopback receiver when allowed", "[webhooks][transport]") {
  std::mutex m;
  std::vector<served_request> seen;
  test_server receiver{[&](const served_request& r) {
    std::lock_guard<std::mutex> guard{m};
    seen.push_back(r);
    return served_response{204, {}, {}};
  }};
  auto t = make_http_webhook_transport(loopback_options());
  const auto reply = post_once(*t, receiver.url("/hook?x=1"), R"({"hello":"world"})");
  CHECK(reply.status == 204);
  CHECK(reply.delivered());
  CHECK(reply.error.empty());
  std::lock_guard<std::mutex> guard{m};
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == "/hook?x=1");
  CHECK(seen[0].body == R"({"hello":"world"})");
  CHECK(seen[0].header("x-webhook-id") == "e1");
  CHECK(seen[0].header("content-type") == "application/cloudevents+json");
}

TEST_CASE("webhook transport: a 5xx answer is a failed delivery with its status", "[webhooks][transport]") {
  test_server receiver{[](const served_request&) { return served_response{503, {}, "busy"}; }};
  auto t = make_http_webhook_transport(loopback_options());
  const auto reply = post_once(*t, receiver.url("/"));
  CHECK(reply.status == 503);
  CHECK_FALSE(reply.delivered());
}

TEST_CASE("webhook transport: loopback is refused by default and nothing is sent", "[webhooks][transport]") {
  std::atomic<int> hits{0};
  test_server receiver{[&](const served_request&) {
    ++hits;
    return served_response{200, {}, {}};
  }};
  webhook_options o;  // defaults: public addresses only
  auto t = make_http_webhook_transport(o);
  const auto reply = post_once(*t, receiver.url("/"));
  CHECK(reply.status == 0);
  CHECK(reply.error.find("loopback") != std::string::npos);
  CHECK(hits.load() == 0);
}

TEST_CASE("webhook transport: a name that resolves to a metadata address is refused", "[webhooks][transport]") {
  auto resolver = [](const std::string&, const std::string&) -> result<std::vector<std::string>> {
    return std::vector<std::string>{"169.254.169.254"};
  };
  auto t = make_http_webhook_transport(loopback_options(), resolver);
  const auto reply = post_once(*t, "http://innocent.example/hook");
  CHECK(reply.status == 0);
  CHECK(reply.error.find("169.254.169.254") != std::string::npos);
  CHECK(reply.error.find("link-local") != std::string::npos);
}

TEST_CASE("webhook transport: plain HTTP goes to the checked address with the name as Host", "[webhooks][transport]") {
  std::mutex m;
  std::string host;
  test_server receiver{[&](const served_request& r) {
    std::lock_guard<std::mutex> guard{m};
    host = r.header("host");
    return served_response{200, {}, {}};
  }};
  int lookups = 0;
  auto resolver = [&](const std::string& name, const std::string&) -> result<std::vector<std::string>> {
    ++lookups;
    if (name != "hooks.test") {
      return make_error(errc::unavailable, "unknown name");
    }
    return std::vector<std::string>{"127.0.0.1"};
  };
  auto t = make_http_webhook_transport(loopback_options(), resolver);
  const auto url = "http://hooks.test:" + std::to_string(receiver.port()) + "/in";
  const auto reply = post_once(*t, url);
  CHECK(reply.status == 200);
  CHECK(lookups == 1);
  std::lock_guard<std::mutex> guard{m};
  CHECK(host == "hooks.test:" + std::to_string(receiver.port()));
}

TEST_CASE("webhook transport: HTTPS verifies the receiver's certificate", "[webhooks][transport][tls]") {
  const auto ca = prov::test::make_test_ca();
  test_server receiver{[](const served_request&) { return served_response{200, {}, {}}; },
                       prov::test::make_server_identity(ca)};
  {
    auto untrusted = make_http_webhook_transport(loopback_options());
    const auto reply = post_once(*untrusted, receiver.url("/"));
    CHECK(reply.status == 0);
    CHECK(reply.error.find("tls") != std::string::npos);
  }
  prov::test::temp_file bundle{ca.cert_pem};
  auto o = loopback_options();
  o.ca_bundle = bundle.path();
  auto trusted = make_http_webhook_transport(o);
  const auto reply = post_once(*trusted, receiver.url("/"));
  CHECK(reply.status == 200);
}

TEST_CASE("webhook transport: a receiver that never answers times out", "[webhooks][transport]") {
  test_server receiver{[](const served_request&) {
    served_response r;
    r.hang = true;
    return r;
  }};
  auto o = loopback_options();
  o.timeout = std::chrono::milliseconds{300};
  auto t = make_http_webhook_transport(o);
  const auto reply = post_once(*t, receiver.url("/"));
  CHECK(reply.status == 0);
  CHECK_FALSE(reply.error.empty());
  receiver.stop();
}

TEST_CASE("webhook transport: one tenant's hanging receivers never hold every thread", "[webhooks][transport]") {
  std::atomic<int> hanging_posts{0};
  test_server hanging{[&](const served_request&) {
    ++hanging_posts;
    served_response r;
    r.hang = true;
    return r;
  }};
  test_server calm{[](const served_request&) { return served_response{204, {}, {}}; }};
  auto o = loopback_options();
  o.max_concurrent = 4;
  o.max_concurrent_per_tenant = 2;
  o.timeout = std::chrono::seconds{60};  // the flood's POSTs stay in flight for the whole test
  auto t = make_http_webhook_transport(o);

  std::vector<std::future<webhook_reply>> flood;
  for (int i = 0; i < 4; ++i) {
    auto promise = std::make_shared<std::promise<webhook_reply>>();
    flood.push_back(promise->get_future());
    t->post(webhook_post{"flood-" + std::to_string(i), hanging.url("/"), {}, "{}", "flood"},
            [promise](webhook_reply r) { promise->set_value(std::move(r)); });
  }
  // Bounded wait until the flood holds its share of the threads.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (hanging_posts.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  REQUIRE(hanging_posts.load() == 2);

  auto promise = std::make_shared<std::promise<webhook_reply>>();
  auto other = promise->get_future();
  t->post(webhook_post{"calm-0", calm.url("/"), {}, "{}", "calm"},
          [promise](webhook_reply r) { promise->set_value(std::move(r)); });
  REQUIRE(other.wait_for(std::chrono::seconds{30}) == std::future_status::ready);
  CHECK(other.get().status == 204);
  // The flood never got more than its share: two POSTs hang, two wait their turn.
  CHECK(hanging_posts.load() == 2);
  for (auto& f : flood) {
    CHECK(f.wait_for(std::chrono::seconds{0}) != std::future_status::ready);
  }

  hanging.stop();  // releases the hung POSTs; the waiting two then fail to connect
  for (auto& f : flood) {
    REQUIRE(f.wait_for(std::chrono::seconds{30}) == std::future_status::ready);
    CHECK_FALSE(f.get().delivered());
  }
}
