// Policy and lifecycle in the actors (R-2.4, R-2.5, R-4.3, R-5.6), in virtual time: capacity
// and region proximity in cluster selection, the manual provider's wait for input,
// credentials sealed before they reach the log, suspend/reactivate through the provider, and
// deprovision giving capacity back.

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

cluster_state with_capacity(cluster_state c, cluster_capacity cap) {
  c.capacity = cap;
  return c;
}

}  // namespace

TEST_CASE("capacity: two requests can never both take the last slot, rollback gives it back",
          "[actors][lifecycle][capacity]") {
  world w;
  simulation_settings slow;
  slow.delay_min_ms = 100;
  slow.delay_max_ms = 100;
  auto c = with_capacity(prov::testing::sim_cluster("small", slow), cluster_capacity{0, 0, 0, 1});
  node n{w.journal, w.clk, *w.cloud, {c}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  prov::testing::submit(w.journal, prov::testing::vps_request("r2"));
  n.start("r1");
  n.start("r2");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1", "r2"}); }));
  const auto r1 = prov::testing::fold(w.journal, "r1");
  const auto r2 = prov::testing::fold(w.journal, "r2");
  CHECK(r1.state == lifecycle_state::completed);
  CHECK(r2.state == lifecycle_state::rolled_back);
  CHECK(r2.reason == "no_cluster_available");
  CHECK(r2.reason_message.find("no free VM slot (1 of 1 used)") != std::string::npos);

  // Deprovision r1: the slot is free again, and a new request takes it.
  prov::testing::append_to(w.journal, "r1", {rollback_started{"deprovisioned"}});
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "r1").state == lifecycle_state::rolled_back; }));
  CHECK(w.cloud->list("small")->empty());
  prov::testing::submit(w.journal, prov::testing::vps_request("r3"));
  n.start("r3");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r3"}); }));
  CHECK(prov::testing::fold(w.journal, "r3").state == lifecycle_state::completed);
}

TEST_CASE("capacity exactly at the limit fits, one unit more does not", "[actors][lifecycle][capacity]") {
  world w;
  auto c = with_capacity(prov::testing::sim_cluster("exact"), cluster_capacity{4000, 8192, 80, 0});
  node n{w.journal, w.clk, *w.cloud, {c}};
  auto a = prov::testing::vps_request("a");
  a.spec = resource_spec{2000, 4096, 40, ""};
  auto b = a;
  b.request_id = "b";
  auto extra = a;
  extra.request_id = "c";
  extra.spec = resource_spec{1, 0, 0, ""};
  for (const auto& r : {a, b, extra}) {
    prov::testing::submit(w.journal, r);
    n.start(r.request_id);
    REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {r.request_id}); }));
  }
  CHECK(prov::testing::fold(w.journal, "a").state == lifecycle_state::completed);
  CHECK(prov::testing::fold(w.journal, "b").state == lifecycle_state::completed);
  const auto c3 = prov::testing::fold(w.journal, "c");
  CHECK(c3.state == lifecycle_state::rolled_back);
  CHECK(c3.reason_message.find("not enough cpu") != std::string::npos);
}

TEST_CASE("selection: region first, then the nearest region, default preferred, skipped ones named",
          "[actors][lifecycle][selection]") {
  world w;
  auto far = prov::testing::sim_cluster("us-1", {}, "us-east-1");
  auto near_default = prov::testing::sim_cluster("fra-default", {}, "eu-central-1");
  auto near_plain = prov::testing::sim_cluster("fra-plain", {}, "eu-central-1");
  near_plain.is_default = false;
  auto full = with_capacity(prov::testing::sim_cluster("dub-full", {}, "eu-west-1"), cluster_capacity{0, 0, 0, 0});
  full.health = cluster_health::degraded;
  actors::region_distances distances{{"eu-west-1", {{"eu-central-1", 1}, {"us-east-1", 5}}}};
  node n{w.journal, w.clk, *w.cloud, {far, near_default, near_plain, full}, {}, distances};
  auto r = prov::testing::vps_request("r1");
  r.region = "eu-west-1";
  prov::testing::submit(w.journal, r);
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  CHECK(prov::testing::fold(w.journal, "r1").cluster == "fra-default");

  auto lost = prov::testing::vps_request("r2");
  lost.region = "ap-south-1";
  prov::testing::submit(w.journal, lost);
  n.start("r2");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r2"}); }));
  const auto s = prov::testing::fold(w.journal, "r2");
  CHECK(s.reason == "no_cluster_available");
  CHECK(s.reason_message.find("dub-full: region eu-west-1 is not ap-south-1 nor near it") != std::string::npos);
}

TEST_CASE("manual provider: waits for input, passivates, then delivers", "[actors][lifecycle][manual]") {
  world w;
  auto manual = prov::testing::sim_cluster("vendor");
  manual.type = provider_type::manual;
  node n{w.journal, w.clk, *w.cloud, {manual}};
  auto r = prov::testing::vps_request("m1", service_type::managed);
  r.provider = provider_type::manual;
  prov::testing::submit(w.journal, r);
  n.start("m1");
  REQUIRE(n.run_until([&] {
    const auto s = prov::testing::fold(w.journal, "m1");
    return s.state == lifecycle_state::allocating && s.step(step_kind::allocate).status == step_status::awaiting_input;
  }));
  n.run_for(std::chrono::hours{2});  // no progress, but a person is expected: never "stuck"
  CHECK(prov::testing::fold(w.journal, "m1").step(step_kind::allocate).status == step_status::awaiting_input);
  CHECK(n.live_requests() == 0);  // passivated while waiting

  const auto sealed = prov::testing::test_secrets().seal(R"({"password":"s3cret"})");
  prov::testing::append_to(w.journal, "m1",
                           {input_provided{step_kind::allocate, {{"url", "https://db.vendor.example"}}, "admin"},
                            credentials_delivered{sealed, {"password"}}});
  n.start("m1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"m1"}); }));
  const auto s = prov::testing::fold(w.journal, "m1");
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.endpoints.at("url") == "https://db.vendor.example");
  CHECK(*prov::testing::test_secrets().open(s.credentials_sealed) == R"({"password":"s3cret"})");
}

TEST_CASE("credentials from the provider are sealed before they are appended", "[actors][lifecycle][credentials]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const auto s = prov::testing::fold(w.journal, "r1");
  REQUIRE(secret_box::looks_sealed(s.credentials_sealed));
  const auto plain = nlohmann::json::parse(*prov::testing::test_secrets().open(s.credentials_sealed));
  const auto password = plain.at("password").get<std::string>();
  CHECK(s.credential_fields == std::vector<std::string>{"password", "username"});
  // The password appears nowhere in the journal's bytes.
  for (const auto& e : w.journal.events()) {
    CHECK(e.payload.find(password) == std::string::npos);
  }
}

TEST_CASE("suspend and reactivate go through the provider, deprovision releases everything",
          "[actors][lifecycle][post]") {
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));

  prov::testing::append_to(w.journal, "r1", {action_requested{service_action::suspend, "non-payment", "admin"}});
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "r1").state == lifecycle_state::suspended; }));
  for (const auto& item : *w.cloud->list("sim")) {
    CHECK(item.suspended);
  }
  prov::testing::append_to(w.journal, "r1", {action_requested{service_action::reactivate, "", "admin"}});
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "r1").state == lifecycle_state::completed; }));
  for (const auto& item : *w.cloud->list("sim")) {
    CHECK_FALSE(item.suspended);
  }
  prov::testing::append_to(w.journal, "r1", {rollback_started{"deprovisioned"}});
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "r1").state == lifecycle_state::rolled_back; }));
  CHECK(w.cloud->list("sim")->empty());
  CHECK(prov::testing::fold(w.journal, "r1").reason == "deprovisioned");
}
