// Crash-resume at every point of the pipeline: for each append a request makes, simulate a
// process death exactly there (the append never becomes durable, nothing after it happens),
// then start a fresh node over what the journal and the simulated cloud hold, and prove the
// request finishes exactly as an uninterrupted run: same terminal state, a valid history
// (the fold accepts every event: no duplicate step outcomes or allocations), and a cloud that
// holds exactly the resources the log says the request holds.

#include <catch2/catch.hpp>

#include <set>

#include "harness.hpp"
#include "support/counting_inventory.hpp"

using namespace prov;
using namespace prov::events;
using prov::testing::node;

namespace {

struct scenario {
  std::string name;
  service_type type;
  simulation_settings sim;
  lifecycle_state outcome;
};

struct reference_run {
  std::size_t appends = 0;
  events::request_state final;
};

reference_run run_uninterrupted(const scenario& sc) {
  prov::testing::virtual_clock clk;
  memory_journal journal{clk};
  auto backing = providers::make_memory_inventory_store();
  prov::test::counting_inventory cloud{*backing};
  prov::testing::submit(journal, prov::testing::vps_request("r1", sc.type));
  std::size_t appends = 0;
  journal.set_crash_hook([&](const std::vector<stream_append>&) {
    ++appends;
    return true;
  });
  node n{journal, clk, cloud, {prov::testing::sim_cluster("sim", sc.sim)}};
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(journal, {"r1"}); }));
  const auto final = prov::testing::fold(journal, "r1");
  REQUIRE(final.state == sc.outcome);
  // Uninterrupted, every call is its key's first: the cloud is never searched for an earlier
  // try. (After a crash it is: the runs below would leave duplicates if it were not.)
  CHECK(cloud.lookups() == 0);
  return reference_run{appends, final};
}

void check_consistent(const journal& j, providers::inventory_store& cloud, const events::request_state& reference) {
  const auto s = prov::testing::fold(j, "r1");  // throws if any event does not apply
  CHECK(s.state == reference.state);
  std::set<std::string> held;
  std::set<std::string> seen;
  for (const auto& r : s.resources) {
    CHECK(seen.insert(r.id).second);  // recorded once
    if (!r.released) {
      held.insert(r.id);
    }
  }
  std::set<std::string> at_provider;
  const auto items = cloud.list("sim");
  for (const auto& item : *items) {
    at_provider.insert(item.id);
  }
  CHECK(held == at_provider);
  // Each step took exactly as many attempts as in the uninterrupted run: no call was repeated
  // as a new attempt, and no retry was lost.
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    CHECK(s.steps[i].attempts == reference.steps[i].attempts);
    CHECK(s.steps[i].status == reference.steps[i].status);
  }
}

}  // namespace

TEST_CASE("crash at every append, restart, finish exactly once", "[actors][crash]") {
  simulation_settings failing;
  failing.fail_configure = 1.0;
  simulation_settings slow;
  slow.delay_min_ms = 50;
  slow.delay_max_ms = 400;
  const auto sc = GENERATE_COPY(scenario{"vps completes", service_type::vps, {}, lifecycle_state::completed},
                                scenario{"namespace completes, with delays", service_type::namespace_, slow,
                                         lifecycle_state::completed},
                                scenario{"vps fails at configure and rolls back", service_type::vps, failing,
                                         lifecycle_state::rolled_back});
  const auto reference = run_uninterrupted(sc);
  const auto total = reference.appends;
  REQUIRE(total >= 4);
  for (std::size_t crash_at = 1; crash_at <= total; ++crash_at) {
    INFO(sc.name << ": crash at append " << crash_at << " of " << total);
    prov::testing::virtual_clock clk;
    memory_journal journal{clk};
    auto cloud = providers::make_memory_inventory_store();
    prov::testing::submit(journal, prov::testing::vps_request("r1", sc.type));
    std::size_t appends = 0;
    journal.set_crash_hook([&](const std::vector<stream_append>&) { return ++appends < crash_at; });
    {
      node first{journal, clk, *cloud, {prov::testing::sim_cluster("sim", sc.sim)}};
      first.start("r1");
      REQUIRE(first.run_until([&] { return appends >= crash_at; }));
    }  // the process dies here
    auto restarted = journal.clone();
    node second{*restarted, clk, *cloud, {prov::testing::sim_cluster("sim", sc.sim)}};
    second.start("r1");
    REQUIRE(second.run_until([&] { return prov::testing::at_rest(*restarted, {"r1"}); }));
    check_consistent(*restarted, *cloud, reference.final);
  }
}
