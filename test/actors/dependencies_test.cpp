// dependsOn in the actors: the graph refuses cycles (Kahn's algorithm), dependents wait
// until every prerequisite completed, and fail with dependency_failed when one fails.

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace prov;
using namespace prov::events;
using prov::testing::node;
using prov::testing::virtual_clock;

namespace {

struct world {
  virtual_clock clk;
  memory_journal journal{clk};
  std::unique_ptr<providers::inventory_store> cloud = providers::make_memory_inventory_store();
};

void submit_after(world& w, node& n, const std::string& id, std::vector<std::string> deps, std::string region = "local") {
  auto r = prov::testing::vps_request(id);
  r.depends_on = deps;
  r.region = std::move(region);
  REQUIRE(n.add_dependencies(id, deps).ok);
  prov::testing::submit(w.journal, r);
  n.start(id);
}

timestamp completed_at(const memory_journal& j, const std::string& id) {
  for (const auto& e : j.events()) {
    if (e.stream == request_stream(id) && e.type_id == request_completed::info.id) {
      return e.time;
    }
  }
  return timestamp::max();
}

timestamp started_at(const memory_journal& j, const std::string& id) {
  for (const auto& e : j.events()) {
    if (e.stream == request_stream(id) && e.type_id == step_started::info.id) {
      return e.time;
    }
  }
  return timestamp::max();
}

}  // namespace

TEST_CASE("dependencies: a diamond runs in order, each after all its prerequisites", "[actors][dependencies]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 100;
  sim.delay_max_ms = 300;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}};
  submit_after(w, n, "a", {});
  submit_after(w, n, "b", {"a"});
  submit_after(w, n, "c", {"a"});
  submit_after(w, n, "d", {"b", "c"});
  REQUIRE(n.run_until([&] {
    n.run_jobs();
    return prov::testing::at_rest(w.journal, {"a", "b", "c", "d"});
  }));
  for (const auto* id : {"a", "b", "c", "d"}) {
    CHECK(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
  }
  CHECK(started_at(w.journal, "b") >= completed_at(w.journal, "a"));
  CHECK(started_at(w.journal, "c") >= completed_at(w.journal, "a"));
  CHECK(started_at(w.journal, "d") >= completed_at(w.journal, "b"));
  CHECK(started_at(w.journal, "d") >= completed_at(w.journal, "c"));
  // While it waited, d said why.
  bool waited = false;
  for (const auto& e : w.journal.events()) {
    if (e.stream == request_stream("d") && e.type_id == request_waiting::info.id) {
      waited = std::get<request_waiting>(*decode(e)).reason == "waiting_for_dependencies";
    }
  }
  CHECK(waited);
}

TEST_CASE("dependencies: a failed prerequisite fails its dependents, naming it", "[actors][dependencies]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 50;
  sim.delay_max_ms = 50;
  actors::pipeline_options no_retries;
  no_retries.retry.max_retries = 0;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, no_retries};
  // "a" asks for a region no cluster serves: it fails.
  submit_after(w, n, "a", {}, "nowhere");
  submit_after(w, n, "b", {"a"});
  submit_after(w, n, "c", {"b"});
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"a", "b", "c"}); }));
  const auto b = prov::testing::fold(w.journal, "b");
  CHECK(b.state == lifecycle_state::rolled_back);
  CHECK(b.reason == "dependency_failed");
  CHECK(b.reason_message.find("prerequisite a") != std::string::npos);
  const auto c = prov::testing::fold(w.journal, "c");
  CHECK(c.reason == "dependency_failed");
  CHECK(c.reason_message.find("prerequisite b") != std::string::npos);
  CHECK(c.step(step_kind::allocate).attempts == 0);  // nothing was provisioned for them
}

TEST_CASE("dependency graph: self-dependency, 2- and 3-cycles, and cycles through keys not yet submitted",
          "[actors][dependencies][cycles]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  CHECK_FALSE(n.add_dependencies("x", {"x"}).ok);
  REQUIRE(n.add_dependencies("a", {"c"}).ok);
  REQUIRE(n.add_dependencies("b", {"a"}).ok);
  const auto verdict = n.add_dependencies("c", {"b"});
  REQUIRE_FALSE(verdict.ok);
  // The cycle is named, each waiting for the next.
  CHECK((verdict.cycle == "c -> b -> a -> c" || verdict.cycle == "b -> a -> c -> b" || verdict.cycle == "a -> c -> b -> a"));
  // A refused request leaves the graph as it was: a valid one still fits.
  CHECK(n.add_dependencies("d", {"a", "b"}).ok);
  // Through keys: p (key kp) waits for key kq, which is not submitted yet; q arrives with key
  // kq and waits for p: refused.
  REQUIRE(n.add_dependencies("p", {"key:acme/kq"}, "key:acme/kp").ok);
  const auto through_key = n.add_dependencies("q", {"p"}, "key:acme/kq");
  REQUIRE_FALSE(through_key.ok);
  CHECK(through_key.cycle.find("q") != std::string::npos);
  CHECK(through_key.cycle.find("p") != std::string::npos);
  CHECK_FALSE(n.add_dependencies("s", {"key:acme/ks"}, "key:acme/ks").ok);  // itself by key
}
