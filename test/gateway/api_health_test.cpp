// The API over an engine in this process whose store writes through a fault-injecting file
// system: what /healthz, /readyz and /metrics say once the journal can no longer write.

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>

#include "prov/actors/engine.hpp"
#include "prov/core/clock.hpp"
#include "prov/gateway/api.hpp"
#include "support/wal_sync_gate.hpp"

using namespace prov;
using nlohmann::json;

namespace {

constexpr std::string_view admin = "health-admin-token";

/// A fresh directory for the engine, removed when the test ends (also when it fails).
struct scratch_dir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("prov-engine-health-" +
                                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

/// One request through the API, answered (on whichever thread) within 30 s.
gateway::http_response call(gateway::api& api, std::string method, std::string path, std::string body = {}) {
  gateway::http_request req;
  req.method = std::move(method);
  req.target = path;
  req.path = std::move(path);
  req.authorization = "Bearer " + std::string{admin};
  req.body = std::move(body);
  auto answered = std::make_shared<std::promise<gateway::http_response>>();
  auto got = answered->get_future();
  api.handle(std::move(req), gateway::responder{[answered](gateway::http_response r) { answered->set_value(std::move(r)); }});
  REQUIRE(got.wait_for(std::chrono::seconds{30}) == std::future_status::ready);
  return got.get();
}

}  // namespace

TEST_CASE("api: after a failed WAL sync /healthz and /readyz answer 503 naming the journal, and writes are refused",
          "[gateway][api]") {
  const scratch_dir scratch;
  const auto& dir = scratch.path;
  prov::test::gated_env fs;
  system_clock_source clk;
  {
    actors::engine_options options;
    options.data_dir = dir.string();
    options.store_env = fs.env.get();
    auto opened = actors::engine::open(options, clk);
    REQUIRE(opened.ok());
    auto& engine = **opened;
    gateway::api api{engine, gateway::api_options{std::string{admin}}};

    CHECK(call(api, "GET", "/healthz").status == 200);
    CHECK(call(api, "GET", "/readyz").status == 200);
    CHECK(call(api, "POST", "/v1/tenants", json{{"id", "acme"}}.dump()).status == 201);
    CHECK(call(api, "GET", "/metrics").body.find("\nprovisiond_journal_failed 0\n") != std::string::npos);

    fs.gate->fail(true);
    CHECK(call(api, "POST", "/v1/tenants", json{{"id", "globex"}}.dump()).status >= 500);
    fs.gate->fail(false);  // the disk is back: the journal still may not go on

    CHECK(call(api, "POST", "/v1/tenants", json{{"id", "initech"}}.dump()).status == 503);
    for (const auto* probe : {"/healthz", "/readyz"}) {
      INFO(probe);
      const auto r = call(api, "GET", probe);
      REQUIRE(r.status == 503);
      const auto body = json::parse(r.body);
      CHECK(body.at("error").at("code") == "unavailable");
      CHECK(body.at("error").at("message").get<std::string>().find("restarted") != std::string::npos);
    }
    CHECK(call(api, "GET", "/metrics").body.find("\nprovisiond_journal_failed 1\n") != std::string::npos);
    CHECK(call(api, "GET", "/v1/tenants/acme").status == 200);  // reads still work
    engine.shutdown();
  }
  {
    // A restart recovers: alive and ready again, and writes work.
    actors::engine_options options;
    options.data_dir = dir.string();
    auto opened = actors::engine::open(options, clk);
    REQUIRE(opened.ok());
    gateway::api api{**opened, gateway::api_options{std::string{admin}}};
    CHECK(call(api, "GET", "/healthz").status == 200);
    CHECK(call(api, "GET", "/readyz").status == 200);
    CHECK(call(api, "POST", "/v1/tenants", json{{"id", "initech"}}.dump()).status == 201);
    (*opened)->shutdown();
  }
}
