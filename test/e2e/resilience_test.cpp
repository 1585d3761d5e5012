// Resilience through the real binary: graceful shutdown under load, and the circuit breaker
// as an operator sees it (the cluster's runtime in the API and in /metrics).

#include <map>
#include <set>
#include <sstream>

#include "server_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

TEST_CASE("SIGTERM during slow requests: in-flight calls finish, exit 0 within the grace, all finish after restart",
          "[e2e][shutdown]") {
  server s{fresh_dir("drain")};
  const std::vector<std::string> flags{"--shutdown-grace", "5s"};
  s.start(flags);
  auto c = s.client();
  std::vector<std::string> tokens;
  for (int t = 0; t < 8; ++t) {
    tokens.push_back(make_tenant(c, s.admin(), "t" + std::to_string(t)));
  }
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "slow"},
                      {"type", "simulation"},
                      {"region", "local"},
                      {"simulation", {{"delayMs", {{"min", 300}, {"max", 1200}}}}}},
                 s.admin())
              .status == 201);
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    json body{{"type", "vps"}, {"provider", "simulation"}, {"cluster", "slow"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}};
    auto r = c.post("/v1/requests", body, tokens[static_cast<std::size_t>(i) % tokens.size()]);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  REQUIRE(eventually([&] {
    return !c.get("/v1/requests?state=configuring&limit=1", s.admin()).json()["items"].empty();
  }));
  // The limit: the grace period plus the time to flush and exit.
  CHECK(s.stop_within(std::chrono::seconds{15}) == 0);
  CHECK(s.log().find("\"msg\":\"drained\"") != std::string::npos);

  s.start(flags);
  auto c2 = s.client();
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      if (c2.get("/v1/requests/" + id, s.admin()).json()["state"] != "completed") {
        return false;
      }
    }
    return true;
  }));
  for (const auto& id : ids) {
    // Named: the loop over a temporary's ["steps"] would read a destroyed document.
    const auto view = c2.get("/v1/requests/" + id, s.admin()).json();
    REQUIRE(view["steps"].size() == 4);
    for (const auto& step : view["steps"]) {
      CHECK(step["attempts"] == 1);  // nothing was lost and repeated as a new attempt
    }
  }
}

TEST_CASE("the circuit breaker is visible in the cluster's view and in /metrics", "[e2e][breaker]") {
  server s{fresh_dir("breaker")};
  s.start({"--breaker-failures", "3", "--breaker-cooldown", "1s", "--retry-base", "200ms", "--retry-cap", "1s",
           "--retry-max", "50"});
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "down"},
                      {"type", "simulation"},
                      {"region", "local"},
                      {"simulation", {{"failureRate", {{"allocate", 1.0}}}}}},
                 s.admin())
              .status == 201);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    json body{{"type", "vps"}, {"provider", "simulation"}, {"cluster", "down"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}};
    ids.push_back(c.post("/v1/requests", body, token).json()["id"].get<std::string>());
  }
  REQUIRE(eventually([&] {
    auto view = c.get("/v1/clusters/down", s.admin()).json();
    return view["runtime"]["breakerOpenedTotal"].get<int>() >= 1;
  }));
  const auto metrics = c.get("/metrics").body;
  CHECK(metrics.find("provisiond_cluster_breaker_state{cluster=\"down\"}") != std::string::npos);
  CHECK(metrics.find("provisiond_cluster_calls_rejected_total{cluster=\"down\"}") != std::string::npos);
  // The exposition format: every family's HELP and TYPE once, before its samples.
  {
    std::istringstream lines{metrics};
    std::set<std::string> helped;
    std::set<std::string> typed;
    std::string line;
    std::size_t samples = 0;
    while (std::getline(lines, line)) {
      CAPTURE(line);
      if (line.rfind("# HELP ", 0) == 0) {
        CHECK(helped.insert(line.substr(7, line.find(' ', 7) - 7)).second);
      } else if (line.rfind("# TYPE ", 0) == 0) {
        const auto name = line.substr(7, line.find(' ', 7) - 7);
        CHECK(helped.count(name) == 1);
        CHECK(typed.insert(name).second);
        const auto type = line.substr(line.rfind(' ') + 1);
        CHECK((type == "counter" || type == "gauge"));
      } else {
        CHECK(typed.count(line.substr(0, line.find_first_of("{ "))) == 1);
        CHECK(line.find(' ') != std::string::npos);
        ++samples;
      }
    }
    CHECK(typed.count("provisiond_cluster_calls_total") == 1);
    CHECK(typed.count("provisiond_journal_group_commits_total") == 1);
    CHECK(typed.count("provisiond_journal_syncs_total") == 1);
    CHECK(typed.count("provisiond_journal_events_total") == 1);
    // Every actor's part of the page: each answered the round that gathers them.
    for (const auto* family : {"provisiond_live_request_actors", "provisiond_admission_active",
                               "provisiond_admission_waiting", "provisiond_stuck_reports_total",
                               "provisiond_reconcile_passes_total", "provisiond_orphans_total",
                               "provisiond_cluster_breaker_state"}) {
      CAPTURE(family);
      CHECK(typed.count(family) == 1);
    }
    const std::string events_line = "\nprovisiond_journal_events_total ";
    const auto at = metrics.find(events_line);
    REQUIRE(at != std::string::npos);
    CHECK(std::stoull(metrics.substr(at + events_line.size())) >= 3);  // three requests were submitted
    const auto counter = [&](const std::string& name) {
      const auto line_at = metrics.find("\n" + name + " ");
      REQUIRE(line_at != std::string::npos);
      return std::stoull(metrics.substr(line_at + name.size() + 2));
    };
    // Durable by default: every commit was synced, and no sync without a group to cover.
    CHECK(counter("provisiond_journal_syncs_total") >= 1);
    CHECK(counter("provisiond_journal_syncs_total") <= counter("provisiond_journal_group_commits_total"));
    // A restart replays from the stored position, never from past what is applied.
    CHECK(typed.count("provisiond_projection_unwritten_requests") == 1);
    CHECK(counter("provisiond_projection_stored_position") <= counter("provisiond_projection_position"));
    CHECK(samples > typed.size() / 2);
  }

  // The cluster recovers: the breaker closes and the waiting requests complete.
  REQUIRE(c.patch("/v1/clusters/down", json{{"simulation", {{"failureRate", {{"allocate", 0.0}}}}}}, s.admin()).status ==
          200);
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      if (c.get("/v1/requests/" + id, token).json()["state"] != "completed") {
        return false;
      }
    }
    return true;
  }));
  CHECK(c.get("/v1/clusters/down", s.admin()).json()["runtime"]["breaker"] == "closed");
}

TEST_CASE("what calls create after their timeout is found and deleted by the orphan reconciler", "[e2e][orphans]") {
  server s{fresh_dir("orphans")};
  // Calls take 0-560 ms against a 500 ms timeout: a first try that times out has created its
  // resources already, and the retry creates (and records) others.
  // The breaker stays closed: with about one call in six timing out, the default one opens,
  // and a request whose retries run out while it is open rolls back instead of completing.
  s.start({"--call-timeout", "500ms", "--retry-base", "100ms", "--retry-max", "8", "--tenant-max-active", "40",
           "--breaker-failures", "1000000", "--breaker-failure-ratio", "1", "--orphan-scan-interval", "1s",
           "--orphan-grace", "500ms"});
  auto c = s.client();
  REQUIRE(c.post("/v1/tenants", json{{"id", "acme"}, {"quota", {{"instances", 100}}}}, s.admin()).status == 201);
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "slowish"},
                      {"type", "simulation"},
                      {"region", "local"},
                      {"simulation", {{"delayMs", {{"min", 0}, {"max", 560}}}}}},
                 s.admin())
              .status == 201);
  for (int i = 0; i < 40; ++i) {
    json body{{"tenant", "acme"},
              {"type", "vps"},
              {"provider", "simulation"},
              {"cluster", "slowish"},
              {"spec", {{"cpu", 1}, {"memoryGb", 1}}}};
    REQUIRE(c.post("/v1/requests", body, s.admin()).status == 202);
  }
  const auto counter = [&](const std::string& sample) {
    const auto metrics = c.get("/metrics").body;
    const auto at = metrics.find("\n" + sample + " ");
    return at == std::string::npos ? 0ULL : std::stoull(metrics.substr(at + sample.size() + 2));
  };
  // Done when every request completed and the cluster holds exactly what the requests hold.
  std::size_t held = 0;
  std::size_t recorded_orphans = 0;
  std::size_t at_provider = 0;
  std::map<std::string, int> states;  // of the last look, for a failure's message
  const auto settled = [&] {
    held = recorded_orphans = 0;
    states.clear();
    bool all_completed = true;
    for (const auto& r : all_requests(c, s.admin())) {
      ++states[r["state"].get<std::string>()];
      all_completed = all_completed && r["state"] == "completed";
      for (const auto& res : r["resources"]) {
        (res["status"] == "released" ? recorded_orphans : held) += 1;
      }
    }
    at_provider = c.get("/v1/clusters/slowish/inventory", s.admin()).json()["items"].size();
    return all_completed && at_provider == held && recorded_orphans > 0 &&
           counter("provisiond_orphans_total{outcome=\"found\"}") == recorded_orphans;
  };
  const bool ok = eventually(settled, std::chrono::seconds{120});
  for (const auto& [state, count] : states) {
    UNSCOPED_INFO(state << ": " << count);
  }
  CHECK(ok);
  CHECK(held == 40 * 4);
  CHECK(at_provider == held);
  CHECK(recorded_orphans > 0);
  CHECK(counter("provisiond_reconcile_passes_total") >= 1);
  CHECK(s.log().find("\"msg\":\"orphan_found\"") != std::string::npos);
  // A pass asked for now (admin): nothing left to find.
  auto pass = c.post("/v1/clusters/slowish/reconcile", json::object(), s.admin());
  REQUIRE(pass.status == 200);
  CHECK(pass.json()["orphansFound"] == 0);
  CHECK(pass.json()["releaseFailures"] == 0);
  CHECK(c.post("/v1/clusters/nowhere/reconcile", json::object(), s.admin()).status == 404);
  CHECK(c.get("/v1/clusters/slowish/reconcile", s.admin()).status == 405);
  CHECK(s.stop() == 0);
}
