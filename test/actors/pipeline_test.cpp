#include <catch2/catch.hpp>

#include <algorithm>

#include "harness.hpp"

using namespace prov;
using namespace prov::events;
using prov::testing::node;

namespace {

struct world {
  prov::testing::virtual_clock clk;
  memory_journal journal{clk};
  std::unique_ptr<providers::inventory_store> cloud = providers::make_memory_inventory_store();

  std::vector<providers::inventory_item> inventory(const std::string& cluster = "sim") {
    return *cloud->list(cluster);
  }
};

std::vector<std::string> released_ids(const journal& j, const std::string& id) {
  std::vector<std::string> out;
  const auto stored = j.read_stream(request_stream(id));
  for (const auto& e : *stored) {
    if (e.type_id == resource_released::info.id) {
      out.push_back(std::get<resource_released>(*decode(e)).resource_id);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("each service type runs the four steps to completed", "[actors][pipeline]") {
  const auto type = GENERATE(service_type::vps, service_type::namespace_, service_type::managed);
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1", type));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));

  const auto s = prov::testing::fold(w.journal, "r1");
  INFO(enum_name(type));
  REQUIRE(s.state == lifecycle_state::completed);
  CHECK(s.cluster == "sim");
  for (const auto& step : s.steps) {
    CHECK(step.status == step_status::succeeded);
    CHECK(step.attempts == 1);
  }
  CHECK_FALSE(s.endpoints.empty());
  // The provider holds exactly what the log says the request holds.
  const auto inv = w.inventory();
  REQUIRE(inv.size() == s.resources.size());
  for (const auto& r : s.resources) {
    CHECK(std::any_of(inv.begin(), inv.end(), [&](const auto& i) { return i.id == r.id && i.request_id == "r1"; }));
  }
  // Passivated: the request's actor stopped once it reached a state at rest.
  CHECK(n.live_requests() == 0);
}

TEST_CASE("the vps happy path records events in pipeline order", "[actors][pipeline]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const std::vector<std::string> expected{
      "request.submitted",          "request.cluster_assigned",   "request.step_started",
      "request.resource_allocated", "request.resource_allocated", "request.resource_allocated",
      "request.step_succeeded",     "request.step_started",       "request.resource_allocated",
      "request.step_succeeded",     "request.step_started",       "request.credentials_delivered",
      "request.step_succeeded",     "request.step_started",       "request.step_succeeded",
      "request.completed"};
  CHECK(prov::testing::event_types(w.journal, "r1") == expected);
}

TEST_CASE("started from its submitted state, a request records what a start from the log records",
          "[actors][pipeline]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  prov::testing::submit(w.journal, prov::testing::vps_request("r2"));
  n.start("r1");
  n.start_from("r2", prov::testing::fold(w.journal, "r2"));
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1", "r2"}); }));
  CHECK(prov::testing::fold(w.journal, "r2").state == lifecycle_state::completed);
  CHECK(prov::testing::event_types(w.journal, "r2") == prov::testing::event_types(w.journal, "r1"));
  CHECK(n.live_requests() == 0);
}

TEST_CASE("a request cancelled before its actor starts from the submitted state ends cancelled",
          "[actors][pipeline]") {
  // The state handed to the new actor is stale: its first append conflicts, it re-reads the
  // log, and it rolls back without calling the provider.
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  const auto submitted = prov::testing::fold(w.journal, "r1");
  std::vector<stream_append> cancel;
  cancel.push_back(stream_append{request_stream("r1"), 1, {to_record(request_cancelled{"changed my mind", "tenant"})}});
  w.journal.append(std::move(cancel), [](result<append_receipt> r) { REQUIRE(r.ok()); });
  n.start_from("r1", submitted);
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.reason == "cancelled");
  CHECK(s.resources.empty());
  CHECK(w.inventory().empty());
  const auto types = prov::testing::event_types(w.journal, "r1");
  CHECK(std::find(types.begin(), types.end(), "request.step_started") == types.end());
}

TEST_CASE("a failure at each step rolls back every resource in reverse order", "[actors][pipeline][rollback]") {
  const auto failing = GENERATE(step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify);
  simulation_settings sim;
  sim.fail_allocate = failing == step_kind::allocate ? 1.0 : 0.0;
  sim.fail_configure = failing == step_kind::configure ? 1.0 : 0.0;
  sim.fail_activate = failing == step_kind::activate ? 1.0 : 0.0;
  sim.fail_verify = failing == step_kind::verify ? 1.0 : 0.0;
  world w;
  actors::pipeline_options no_retries;
  no_retries.retry.max_retries = 0;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, no_retries};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));

  INFO("failing step " << enum_name(failing));
  const auto s = prov::testing::fold(w.journal, "r1");
  REQUIRE(s.state == lifecycle_state::rolled_back);
  CHECK(s.reason == "provider_error");
  CHECK(s.step(failing).status == step_status::failed);
  CHECK(w.inventory().empty());

  // Every resource the request ever held is released, newest first.
  std::vector<std::string> allocated;
  for (const auto& r : s.resources) {
    CHECK(r.released);
    allocated.push_back(r.id);
  }
  std::reverse(allocated.begin(), allocated.end());
  CHECK(released_ids(w.journal, "r1") == allocated);
  // A failed vps allocation still created its security group and volume; a failed configure
  // created no floating ip; later failures hold all four resources.
  const std::size_t expected = failing == step_kind::allocate ? 2 : failing == step_kind::configure ? 3 : 4;
  CHECK(s.resources.size() == expected);
  CHECK(n.live_requests() == 0);
}

TEST_CASE("simulated delays run in virtual time", "[actors][pipeline][time]") {
  simulation_settings sim;
  sim.delay_min_ms = 200;
  sim.delay_max_ms = 900;
  world w;
  actors::pipeline_options wide;
  wide.calls.max_concurrent = 100;  // no bulkhead queueing and no tenant limit:
  wide.admission.tenant_max_active = 100;  // measure concurrency itself
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, wide};
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back("r" + std::to_string(i));
    prov::testing::submit(w.journal, prov::testing::vps_request(ids.back()));
    n.start(ids.back());
  }
  const auto before = n.virtual_now();
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }));
  for (int i = 0; i < 20; ++i) {
    CHECK(prov::testing::fold(w.journal, "r" + std::to_string(i)).state == lifecycle_state::completed);
  }
  // Requests run concurrently: the whole batch takes at least four calls' minimum, and far
  // less than 20 requests x 4 calls of the maximum.
  const auto elapsed = n.virtual_now() - before;
  CHECK(elapsed >= std::chrono::milliseconds{4 * 200});
  CHECK(elapsed <= std::chrono::milliseconds{4 * 900});
}

TEST_CASE("no matching cluster: failed with the reason, then rolled back", "[actors][pipeline]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", {}, "local")}};
  auto req = prov::testing::vps_request("r1");
  req.region = "eu-west-1";
  prov::testing::submit(w.journal, req);
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.reason == "no_cluster_available");
  CHECK(s.reason_message.find("sim: region local is not eu-west-1") != std::string::npos);
  CHECK(s.cluster.empty());
}

TEST_CASE("a disabled cluster is skipped, the default is preferred", "[actors][pipeline]") {
  world w;
  auto off = prov::testing::sim_cluster("a-off");
  off.enabled = false;
  auto plain = prov::testing::sim_cluster("b-plain");
  plain.is_default = false;
  auto preferred = prov::testing::sim_cluster("c-default");
  node n{w.journal, w.clk, *w.cloud, {off, plain, preferred}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  CHECK(prov::testing::fold(w.journal, "r1").cluster == "c-default");
}

TEST_CASE("failing releases are retried with backoff until the rollback finishes", "[actors][pipeline][rollback]") {
  simulation_settings sim;
  sim.fail_verify = 1.0;
  sim.fail_rollback = 0.6;
  sim.seed = 11;
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}};
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back("r" + std::to_string(i));
    prov::testing::submit(w.journal, prov::testing::vps_request(ids.back()));
    n.start(ids.back());
  }
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }));
  for (int i = 0; i < 10; ++i) {
    CHECK(prov::testing::fold(w.journal, "r" + std::to_string(i)).state == lifecycle_state::rolled_back);
  }
  CHECK(w.inventory().empty());
  // Backoff happened on the virtual clock (at least one 1 s wait).
  CHECK(n.virtual_now() >= std::chrono::seconds{1});
}
