// The orphan reconciler in virtual time: what a provider call creates after its
// timeout is found, recorded and deleted; what a request holds, what a request still in
// flight may record, and what another system tagged are never touched.

#include <catch2/catch.hpp>

#include <algorithm>

#include "harness.hpp"

using namespace prov;
using namespace prov::events;
using prov::testing::node;
using std::chrono::minutes;

namespace {

struct world {
  prov::testing::virtual_clock clk;
  memory_journal journal{clk};
  std::unique_ptr<providers::inventory_store> cloud = providers::make_memory_inventory_store();

  std::vector<providers::inventory_item> at_provider(const std::string& request) {
    return *cloud->by_request("sim", request);
  }
};

/// Resources at the provider that `request` does not hold (recorded and not released).
std::vector<std::string> orphans_of(world& w, const std::string& request) {
  const auto s = prov::testing::fold(w.journal, request);
  std::vector<std::string> out;
  for (const auto& item : w.at_provider(request)) {
    const bool held = std::any_of(s.resources.begin(), s.resources.end(),
                                  [&](const resource& r) { return r.id == item.id && !r.released; });
    if (!held) {
      out.push_back(item.id);
    }
  }
  return out;
}

std::vector<orphan_found> orphan_events(const journal& j, const std::string& request) {
  std::vector<orphan_found> out;
  for (const auto& e : *j.read_stream(request_stream(request))) {
    if (e.type_id == orphan_found::info.id) {
      out.push_back(std::get<orphan_found>(*decode(e)));
    }
  }
  return out;
}

/// A resource as a call of `request` that answered too late would have left it.
providers::inventory_item late_item(const std::string& request, const std::string& id) {
  providers::inventory_item item;
  item.cluster = "sim";
  item.kind = "server";
  item.id = id;
  item.name = "late";
  item.request_id = request;
  item.idempotency_key = request + "/allocate/1";
  return item;
}

/// Submits a vps request and runs the node until it is at rest.
void run_to_rest(world& w, node& n, const std::string& id) {
  prov::testing::submit(w.journal, prov::testing::vps_request(id));
  n.start(id);
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {id}); }));
}

actors::pipeline_options reconciling(minutes every, minutes settled_for) {
  actors::pipeline_options opts;
  opts.reconcile.every = every;
  opts.reconcile.settled_for = settled_for;
  return opts;
}

}  // namespace

TEST_CASE("what a timed-out call created is recorded and deleted once its request is at rest",
          "[actors][reconciler]") {
  world w;
  // Calls take 0-560 ms, the timeout is 500 ms: some first tries time out after creating
  // their resources, and the retry (a new key) creates and records others.
  simulation_settings sim;
  sim.delay_min_ms = 0;
  sim.delay_max_ms = 560;
  auto opts = reconciling(minutes{10}, minutes{5});
  opts.calls.call_timeout = std::chrono::milliseconds{500};
  opts.retry.max_retries = 6;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  std::vector<std::string> ids;
  // More requests than a pass looks at per message (64): the pass yields and goes on.
  for (int i = 0; i < 70; ++i) {
    ids.push_back("r" + std::to_string(i));
    auto req = prov::testing::vps_request(ids.back());
    prov::testing::submit(w.journal, req);
    n.start(ids.back());
  }
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }, std::chrono::hours{2}));
  std::map<std::string, std::vector<std::string>> orphans;
  std::size_t total = 0;
  for (const auto& id : ids) {
    REQUIRE(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
    if (auto o = orphans_of(w, id); !o.empty()) {
      total += o.size();
      orphans.emplace(id, std::move(o));
    }
  }
  REQUIRE(total > 0);  // the scenario does leave orphans behind

  n.run_for(minutes{30});
  for (const auto& id : ids) {
    INFO(id);
    const auto s = prov::testing::fold(w.journal, id);
    CHECK(s.state == lifecycle_state::completed);
    CHECK(orphans_of(w, id).empty());
    // Everything the request holds is still there.
    for (const auto& r : s.resources) {
      const auto there = w.at_provider(id);
      CHECK(std::any_of(there.begin(), there.end(), [&](const auto& i) { return i.id == r.id; }) == !r.released);
    }
    // Each orphan was recorded once, before it was deleted, with the key of the call that made it.
    const auto found = orphan_events(w.journal, id);
    const auto expected = orphans.count(id) != 0 ? orphans[id] : std::vector<std::string>{};
    REQUIRE(found.size() == expected.size());
    for (const auto& e : found) {
      CHECK(std::find(expected.begin(), expected.end(), e.resource_id) != expected.end());
      CHECK(e.idempotency_key.starts_with(id + "/"));
      CHECK(e.idempotency_key != s.step(e.step).idempotency_key);  // not the attempt that succeeded
    }
  }
  const auto status = n.reconciler_status();
  CHECK(status.orphans_found == total);
  // A delete may time out too (the simulated cloud deletes, then answers late): the next
  // pass finds nothing left.
  CHECK(status.released + status.release_failures >= total);
  CHECK(status.passes >= 3);
}

TEST_CASE("the reconciler leaves alone what a request holds, what a request in flight may record and what "
          "it does not know",
          "[actors][reconciler]") {
  world w;
  auto cluster = prov::testing::sim_cluster("sim");
  auto opts = reconciling(minutes{10}, minutes{0});
  opts.calls.call_timeout = std::chrono::milliseconds{0};
  node n{w.journal, w.clk, *w.cloud, {cluster}, opts};
  run_to_rest(w, n, "done");
  // From now on a call takes two hours and has no timeout: "slow" stays in its allocation,
  // whose resources exist at the provider before the log records them.
  cluster.simulation.delay_min_ms = cluster.simulation.delay_max_ms = 2 * 3600 * 1000;
  cluster.version = 2;
  n.update_cluster(cluster);
  prov::testing::submit(w.journal, prov::testing::vps_request("slow"));
  n.start("slow");
  n.run_jobs();
  REQUIRE(w.at_provider("slow").size() == 3);
  REQUIRE(prov::testing::fold(w.journal, "slow").resources.empty());
  // Tagged by a request this journal never heard of (another engine sharing the cloud).
  REQUIRE(w.cloud->put(late_item("elsewhere", "srv-foreign")).ok());

  const auto versions_before = std::make_pair(prov::testing::fold(w.journal, "done").version,
                                              prov::testing::fold(w.journal, "slow").version);
  n.run_for(minutes{25});
  CHECK(w.at_provider("done").size() == 4);
  CHECK(w.at_provider("slow").size() == 3);
  CHECK(w.at_provider("elsewhere").size() == 1);
  CHECK(prov::testing::fold(w.journal, "done").version == versions_before.first);
  CHECK(prov::testing::fold(w.journal, "slow").version == versions_before.second);
  const auto status = n.reconciler_status();
  CHECK(status.passes == 2);
  CHECK(status.orphans_found == 0);
  CHECK(status.released == 0);
  CHECK(status.deferred == 2 * 3);
  CHECK(status.foreign == 2 * 1);
}

TEST_CASE("an orphan waits for its request to settle, is recorded once, and a failed delete is retried",
          "[actors][reconciler]") {
  world w;
  auto cluster = prov::testing::sim_cluster("sim");
  node n{w.journal, w.clk, *w.cloud, {cluster}, reconciling(minutes{10}, minutes{15})};
  run_to_rest(w, n, "r1");
  REQUIRE(w.cloud->put(late_item("r1", "srv-late")).ok());
  // Deletes fail at the provider for now.
  cluster.simulation.fail_rollback = 1.0;
  cluster.version = 2;
  n.update_cluster(cluster);

  n.run_for(minutes{11});  // a pass, before the request has been at rest for 15 minutes
  CHECK(orphan_events(w.journal, "r1").empty());
  CHECK(n.reconciler_status().deferred == 1);

  n.run_for(minutes{10});  // recorded, but the delete fails
  REQUIRE(orphan_events(w.journal, "r1").size() == 1);
  CHECK(orphan_events(w.journal, "r1")[0] ==
        orphan_found{step_kind::allocate, "server", "srv-late", "late", "r1/allocate/1"});
  CHECK(w.at_provider("r1").size() == 5);
  CHECK(n.reconciler_status().release_failures == 1);
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.resources.back() == resource{"server", "srv-late", "late", step_kind::allocate, "r1/allocate/1", true});

  cluster.simulation.fail_rollback = 0;
  cluster.version = 3;
  n.update_cluster(cluster);
  n.run_for(minutes{10});  // deleted, without a second event
  CHECK(orphan_events(w.journal, "r1").size() == 1);
  CHECK(w.at_provider("r1").size() == 4);
  const auto status = n.reconciler_status();
  CHECK(status.orphans_found == 1);
  CHECK(status.released == 1);
  CHECK(orphans_of(w, "r1").empty());
}

TEST_CASE("a pass asked for runs at once (or after the running one), answers with its counts, and adds no timer",
          "[actors][reconciler]") {
  world w;
  auto cluster = prov::testing::sim_cluster("sim");
  node n{w.journal, w.clk, *w.cloud, {cluster}, reconciling(minutes{10}, minutes{0})};
  run_to_rest(w, n, "r1");
  REQUIRE(w.cloud->put(late_item("r1", "srv-late")).ok());
  auto& timers = n.sched->clock().schedule();
  const auto timers_before = timers.size();

  auto first = std::make_shared<std::optional<actors::reconcile_status>>();
  n.ask_reconcile("sim", first);
  n.run_jobs();
  REQUIRE(first->has_value());
  CHECK((*first)->passes == 1);
  CHECK((*first)->orphans_found == 1);
  CHECK((*first)->released == 1);
  CHECK(orphans_of(w, "r1").empty());
  // Once the pass's request timeouts (5 minutes) are gone, the timers are those from before:
  // the periodic pass still has one timer, not a second one from the pass asked for.
  n.run_for(minutes{6});
  CHECK(timers.size() == timers_before);

  // Deletes take three minutes now: a second pass asked for while one runs waits for it.
  REQUIRE(w.cloud->put(late_item("r1", "srv-later")).ok());
  cluster.simulation.delay_min_ms = cluster.simulation.delay_max_ms = 3 * 60 * 1000;
  cluster.version = 2;
  n.update_cluster(cluster);
  auto second = std::make_shared<std::optional<actors::reconcile_status>>();
  auto third = std::make_shared<std::optional<actors::reconcile_status>>();
  n.ask_reconcile("sim", second);
  n.run_jobs();
  n.ask_reconcile("sim", third);
  n.run_jobs();
  CHECK_FALSE(second->has_value());  // its delete is under way
  CHECK_FALSE(third->has_value());
  n.run_for(minutes{10});
  REQUIRE(second->has_value());
  REQUIRE(third->has_value());
  CHECK((*second)->orphans_found == 1);
  CHECK((*second)->released == 1);
  CHECK((*third)->orphans_found == 0);  // the second pass took care of it
  CHECK((*third)->released == 0);
  CHECK(orphan_events(w.journal, "r1").size() == 2);
  CHECK(orphans_of(w, "r1").empty());
}
