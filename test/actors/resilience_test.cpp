// Worker resilience in virtual time: fairness, retries with backoff, restarts in the
// middle of a backoff, stuck detection, the circuit breaker and the bulkhead. Every check is
// made on the event log (or the actors' own status), never on wall-clock timing.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

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

struct logged {
  std::string request;
  any_event event;
  timestamp time;
};

// The global log, decoded, in order.
std::vector<logged> global_log(const memory_journal& j) {
  std::vector<logged> out;
  for (const auto& e : j.events()) {
    if (stream_category(e.stream) == "request") {
      out.push_back(logged{std::string{stream_key(e.stream)}, *decode(e), e.time});
    }
  }
  return out;
}

// An allocate that always fails, retried once, 60 s later.
struct one_slow_retry {
  simulation_settings sim;
  actors::pipeline_options opts;
  one_slow_retry() {
    sim.fail_allocate = 1.0;
    opts.retry.base = std::chrono::seconds{60};
    opts.retry.max_retries = 1;
  }
};

// r1's allocate step as the log has it now.
events::step_record allocate_of(const memory_journal& j) { return prov::testing::fold(j, "r1").step(step_kind::allocate); }

// When r1's allocate `attempt` started (the epoch if it did not).
timestamp allocate_started(const memory_journal& j, std::uint32_t attempt) {
  timestamp at{};
  for (const auto& e : global_log(j)) {
    if (const auto* s = std::get_if<step_started>(&e.event); s && s->step == step_kind::allocate && s->attempt == attempt) {
      at = e.time;
    }
  }
  return at;
}

std::string submit_for(world& w, node& n, const std::string& tenant, const std::string& id) {
  auto req = prov::testing::vps_request(id);
  req.tenant = tenant;
  prov::testing::submit(w.journal, req);
  n.start(id);
  return id;
}

}  // namespace

TEST_CASE("fairness: one tenant's flood never holds more than its slots nor delays another tenant",
          "[actors][resilience][fairness]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 100;
  sim.delay_max_ms = 400;
  actors::pipeline_options opts;
  opts.calls.max_concurrent = 1000;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  std::vector<std::string> ids;
  std::map<std::string, std::string> tenant_of;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(submit_for(w, n, "tenant-a", "a" + std::to_string(i)));
    tenant_of[ids.back()] = "tenant-a";
  }
  n.run_jobs();
  for (int i = 0; i < 5; ++i) {
    ids.push_back(submit_for(w, n, "tenant-b", "b" + std::to_string(i)));
    tenant_of[ids.back()] = "tenant-b";
  }
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }));

  std::map<std::string, int> active;
  std::map<std::string, int> peak;
  std::size_t a_started_before_b = 0;
  bool b_submitted = false;
  bool b_started = false;
  std::size_t waiting_events = 0;
  for (const auto& entry : global_log(w.journal)) {
    const auto& tenant = tenant_of[entry.request];
    if (std::holds_alternative<request_submitted>(entry.event) && tenant == "tenant-b") {
      b_submitted = true;
    }
    if (const auto* s = std::get_if<step_started>(&entry.event); s && s->step == step_kind::allocate && s->attempt == 1) {
      peak[tenant] = std::max(peak[tenant], ++active[tenant]);
      if (tenant == "tenant-b") {
        b_started = true;
      } else if (b_submitted && !b_started) {
        ++a_started_before_b;
      }
    }
    if (std::holds_alternative<request_completed>(entry.event) || std::holds_alternative<request_failed>(entry.event)) {
      --active[tenant];
    }
    waiting_events += std::holds_alternative<request_waiting>(entry.event) ? 1 : 0;
  }
  CHECK(peak["tenant-a"] == 5);
  CHECK(peak["tenant-b"] <= 5);
  CHECK(a_started_before_b <= 1);
  CHECK(waiting_events >= 190);  // A's queue said why it waited
  for (const auto& id : ids) {
    CHECK(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
  }
}

TEST_CASE("fairness: with a global limit, tenants take turns for free slots", "[actors][resilience][fairness]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 50;
  sim.delay_max_ms = 50;
  actors::pipeline_options opts;
  opts.admission.max_active = 3;
  opts.admission.tenant_max_active = 5;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    ids.push_back(submit_for(w, n, "tenant-a", "a" + std::to_string(i)));
  }
  n.run_jobs();
  ids.push_back(submit_for(w, n, "tenant-b", "b0"));
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }));
  std::size_t starts_between = 0;
  bool b_submitted = false;
  std::size_t active_peak = 0;
  std::size_t active = 0;
  for (const auto& entry : global_log(w.journal)) {
    if (entry.request == "b0" && std::holds_alternative<request_submitted>(entry.event)) {
      b_submitted = true;
    }
    if (const auto* s = std::get_if<step_started>(&entry.event); s && s->step == step_kind::allocate && s->attempt == 1) {
      active_peak = std::max(active_peak, ++active);
      if (entry.request == "b0") {
        break;
      }
      starts_between += b_submitted ? 1 : 0;
    }
    if (std::holds_alternative<request_completed>(entry.event)) {
      --active;
    }
  }
  CHECK(active_peak <= 3);
  CHECK(starts_between <= 1);
}

TEST_CASE("retries follow the backoff schedule exactly, then the request fails and rolls back",
          "[actors][resilience][retry]") {
  const bool capped = GENERATE(false, true);
  world w;
  simulation_settings sim;
  sim.fail_allocate = 1.0;
  actors::pipeline_options opts;
  std::vector<std::chrono::seconds> expected{std::chrono::seconds{5}, std::chrono::seconds{10}, std::chrono::seconds{20}};
  if (capped) {
    opts.retry.base = std::chrono::seconds{100};
    opts.retry.max_retries = 5;
    expected = {std::chrono::seconds{100}, std::chrono::seconds{200}, std::chrono::seconds{300},
                std::chrono::seconds{300}, std::chrono::seconds{300}};
  }
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));

  std::vector<timestamp> failed_at;
  std::vector<timestamp> started_at;
  std::vector<retry_scheduled> schedules;
  for (const auto& e : global_log(w.journal)) {
    if (const auto* s = std::get_if<step_started>(&e.event)) {
      started_at.push_back(e.time);
      CHECK(s->attempt == started_at.size());
    }
    if (std::holds_alternative<step_failed>(e.event)) {
      failed_at.push_back(e.time);
    }
    if (const auto* r = std::get_if<retry_scheduled>(&e.event)) {
      schedules.push_back(*r);
    }
  }
  REQUIRE(schedules.size() == expected.size());
  REQUIRE(started_at.size() == expected.size() + 1);
  REQUIRE(failed_at.size() == expected.size() + 1);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("retry " << i + 1);
    CHECK(schedules[i].delay_ms == std::chrono::milliseconds{expected[i]}.count());
    CHECK(schedules[i].due == failed_at[i] + expected[i]);
    CHECK(started_at[i + 1] == schedules[i].due);  // started exactly when due
  }
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.step(step_kind::allocate).attempts == expected.size() + 1);
  CHECK(s.reason_message.find("after " + std::to_string(expected.size() + 1) + " attempts") != std::string::npos);
  CHECK(w.cloud->list("sim")->empty());
}

TEST_CASE("a permanent provider error fails at once, without retries", "[actors][resilience][retry]") {
  world w;
  events::cluster_state c = prov::testing::sim_cluster("os");
  c.type = provider_type::openstack;  // no driver in this build: permanent "unsupported"
  node n{w.journal, w.clk, *w.cloud, {c}};
  auto req = prov::testing::vps_request("r1");
  req.provider = provider_type::openstack;
  prov::testing::submit(w.journal, req);
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.step(step_kind::allocate).attempts == 1);
}

TEST_CASE("a restart in the middle of a backoff keeps the due time", "[actors][resilience][retry][crash]") {
  world w;
  const one_slow_retry r;
  timestamp due{};
  {
    node first{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", r.sim)}, r.opts};
    prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
    first.start("r1");
    REQUIRE(first.run_until([&] { return allocate_of(w.journal).next_attempt_at.has_value(); }));
    due = *allocate_of(w.journal).next_attempt_at;
    first.run_for(std::chrono::seconds{20});
    CHECK(allocate_of(w.journal).attempts == 1);
  }  // killed 20 s into a 60 s backoff
  w.clk.pass(std::chrono::seconds{15});  // down for 15 s
  node second{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", r.sim)}, r.opts};
  second.start("r1");
  REQUIRE(second.run_until([&] { return allocate_of(w.journal).attempts == 2; }));
  CHECK(allocate_started(w.journal, 2) == due);  // not restart + 60 s
  REQUIRE(second.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
}

TEST_CASE("a wall clock set back during a backoff does not delay the retry", "[actors][resilience][retry][clock]") {
  world w;
  const one_slow_retry r;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", r.sim)}, r.opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return allocate_of(w.journal).next_attempt_at.has_value(); }));
  const auto due = *allocate_of(w.journal).next_attempt_at;
  n.run_for(std::chrono::seconds{20});
  w.clk.step(-std::chrono::hours{1});  // an NTP step or an operator, 20 s into a 60 s backoff
  // Bounded well below the hour: with the wait measured on the wall clock this fails.
  REQUIRE(n.run_until([&] { return allocate_of(w.journal).attempts == 2; }, std::chrono::minutes{5}));
  CHECK(w.clk.now() == due - std::chrono::hours{1});  // it started 60 s after the failure, as time passed
  // The log's time does not run back with the clock: the start is dated at the failure's time.
  CHECK(allocate_started(w.journal, 2) == due - r.opts.retry.base);
}

TEST_CASE("stuck: a cluster that never answers -> failed with reason stuck -> rolled back",
          "[actors][resilience][stuck]") {
  world w;
  simulation_settings sim;
  sim.hang_rate = 1.0;
  actors::pipeline_options opts;
  opts.calls.call_timeout = std::chrono::milliseconds{0};  // no per-call timeout: only the watchdog
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  const auto start = w.clk.now();
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }, std::chrono::hours{2}));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.reason == "stuck");
  CHECK(s.step(step_kind::allocate).status == step_status::failed);
  const auto waited = s.updated_at - start;
  CHECK(waited > std::chrono::minutes{30});
  CHECK(waited <= std::chrono::minutes{32});
}

TEST_CASE("stuck: a wall clock set two hours ahead does not fail the requests in flight",
          "[actors][resilience][stuck]") {
  // An NTP step, an operator or a virtual machine resumed from a snapshot moves the wall clock
  // without time passing: "no progress for 30 minutes" is measured on the elapsed clock.
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 10 * 60'000;  // every call takes 10 minutes
  sim.delay_max_ms = 10 * 60'000;
  actors::pipeline_options opts;
  opts.calls.call_timeout = std::chrono::milliseconds{0};  // only the watchdog
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  n.run_for(std::chrono::minutes{1});
  REQUIRE(prov::testing::fold(w.journal, "r1").state == lifecycle_state::allocating);
  w.clk.step(std::chrono::hours{2});
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }, std::chrono::hours{2}));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.reason.empty());
}

TEST_CASE("stuck: a wall clock set back an hour does not hold a stuck request alive", "[actors][resilience][stuck]") {
  world w;
  simulation_settings sim;
  sim.hang_rate = 1.0;
  actors::pipeline_options opts;
  opts.calls.call_timeout = std::chrono::milliseconds{0};  // only the watchdog
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  const auto start = w.clk.now();
  const auto started = w.clk.elapsed();
  n.start("r1");
  n.run_for(std::chrono::minutes{20});
  w.clk.step(-std::chrono::hours{1});
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }, std::chrono::hours{2}));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(s.reason == "stuck");
  // Failed 30-32 minutes after its last progress as time passed, not once the wall clock
  // showed 30 minutes again (an hour later).
  const auto waited = w.clk.elapsed() - started;
  CHECK(waited > std::chrono::minutes{30});
  CHECK(waited <= std::chrono::minutes{32});
  CHECK(s.updated_at >= start);  // the log's time did not run back with the clock
}

TEST_CASE("a per-call timeout turns a hung call into a retryable failure", "[actors][resilience][timeout]") {
  world w;
  simulation_settings sim;
  sim.hang_rate = 1.0;
  actors::pipeline_options opts;
  opts.calls.call_timeout = std::chrono::seconds{30};
  opts.retry.max_retries = 1;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  std::size_t timeouts = 0;
  for (const auto& e : global_log(w.journal)) {
    if (const auto* f = std::get_if<step_failed>(&e.event)) {
      CHECK(f->code == "timeout");
      CHECK(f->retryable);
      ++timeouts;
    }
  }
  CHECK(timeouts == 2);
  CHECK(n.cluster_status("sim").timeouts == 2);
}

TEST_CASE("calls answered inline arm no timeout, but a delayed call still does", "[actors][resilience][timeout]") {
  // A delayed message cannot be taken back: a timer armed for every call would sit in the
  // actor clock for the whole call timeout (5 min by default), millions of them under load.
  actors::pipeline_options opts;
  REQUIRE(opts.calls.call_timeout.count() > 0);  // the default: timeouts on
  {
    world w;
    node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}, opts};
    auto& timers = n.sched->clock().schedule();
    n.run_jobs();
    const auto idle_timers = timers.size();  // the watchdog's scan
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) {
      ids.push_back(submit_for(w, n, "t", "r" + std::to_string(i)));
    }
    n.run_jobs();
    REQUIRE(prov::testing::at_rest(w.journal, ids));
    for (const auto& id : ids) {
      CHECK(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
    }
    const auto status = n.cluster_status("sim");
    CHECK(status.calls == 40);
    CHECK(status.in_flight == 0);  // nothing left tracked for a call answered inline
    CHECK(status.queued == 0);
    CHECK(timers.size() == idle_timers);
  }
  // A call that answers later keeps its timeout: one timer for the answer, one for the timeout.
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 1000;
  sim.delay_max_ms = 1000;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  auto& timers = n.sched->clock().schedule();
  n.run_jobs();
  const auto idle_timers = timers.size();
  prov::testing::submit(w.journal, prov::testing::vps_request("s1"));
  n.start("s1");
  n.run_jobs();
  REQUIRE(n.cluster_status("sim").in_flight == 1);
  CHECK(timers.size() == idle_timers + 2);
}

TEST_CASE("circuit breaker: opens on a failing cluster, fails fast, closes after a good probe",
          "[actors][resilience][breaker]") {
  world w;
  simulation_settings broken;
  broken.fail_allocate = 1.0;
  actors::pipeline_options opts;
  opts.retry.base = std::chrono::seconds{1};
  opts.retry.cap = std::chrono::seconds{8};
  opts.retry.max_retries = 50;
  opts.calls.breaker.consecutive_failures = 5;
  opts.calls.breaker.cooldown = std::chrono::seconds{30};
  auto cluster = prov::testing::sim_cluster("sim", broken);
  node n{w.journal, w.clk, *w.cloud, {cluster}, opts};
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    ids.push_back(submit_for(w, n, "t" + std::to_string(i), "r" + std::to_string(i)));
  }
  n.run_for(std::chrono::seconds{10});
  auto status = n.cluster_status("sim");
  CHECK(status.breaker == "open");
  CHECK(status.breaker_opened >= 1);
  CHECK(status.rejected > 0);
  std::size_t fast_failures = 0;
  for (const auto& e : global_log(w.journal)) {
    if (const auto* f = std::get_if<step_failed>(&e.event); f && f->code == "circuit_open") {
      CHECK(f->retryable);
      ++fast_failures;
    }
  }
  CHECK(fast_failures > 0);
  // While open, the provider gets no calls at all (at most the probes after each cool-down).
  const auto calls_while_open = n.cluster_status("sim").calls;
  n.run_for(std::chrono::seconds{20});
  CHECK(n.cluster_status("sim").calls - calls_while_open <= 1);

  // The cluster recovers: the next probe succeeds, the breaker closes, the requests finish.
  cluster.simulation.fail_allocate = 0;
  cluster.version = 2;
  n.update_cluster(cluster);
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, ids); }));
  CHECK(n.cluster_status("sim").breaker == "closed");
  for (const auto& id : ids) {
    CHECK(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
  }
}

TEST_CASE("bulkhead: no more provider calls at once than allowed, the rest wait their turn",
          "[actors][resilience][bulkhead]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 1000;
  sim.delay_max_ms = 1000;
  actors::pipeline_options opts;
  opts.calls.max_concurrent = 2;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}, opts};
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(submit_for(w, n, "t" + std::to_string(i), "r" + std::to_string(i)));
  }
  n.run_jobs();
  auto status = n.cluster_status("sim");
  CHECK(status.in_flight == 2);
  CHECK(status.queued == 4);
  REQUIRE(n.run_until([&] {
    CHECK(n.cluster_status("sim").in_flight <= 2);
    return prov::testing::at_rest(w.journal, ids);
  }));
  // 6 requests x 4 calls of 1 s, two at a time: 12 s of virtual time at least.
  CHECK(n.virtual_now() >= std::chrono::seconds{12});
}

TEST_CASE("bulkhead: an inventory listing and a connectivity test wait for a slot and time out like any call",
          "[actors][resilience][bulkhead]") {
  // Before, both ran beside the bulkhead: on a real cloud a slow listing held a worker thread
  // that an admitted step's call then waited for, its own timeout running.
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 1000;
  sim.delay_max_ms = 1000;
  simulation_settings slow;
  slow.delay_min_ms = 2000;
  slow.delay_max_ms = 2000;
  actors::pipeline_options opts;
  opts.calls.max_concurrent = 1;
  opts.calls.call_timeout = std::chrono::milliseconds{1500};
  auto slow_cluster = prov::testing::sim_cluster("slow", slow);
  slow_cluster.is_default = false;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim), slow_cluster}, opts};
  // Asks cluster `id`'s actor, as the engine does; the reply lands in `*out`.
  auto ask = [&](const std::string& id, auto atom, auto out) {
    auto registry = n.ctx.registry;
    n.sys->spawn([registry, id, atom, out](caf::event_based_actor* self) {
      self->request(registry, caf::infinite, actors::lookup_atom::value, id).then([=](const actors::cluster_choice& c) {
        using reply = typename std::decay_t<decltype(*out)>::value_type;
        self->request(c.handle, caf::infinite, atom).then([=](const reply& r) { *out = r; });
      });
    });
  };
  submit_for(w, n, "t0", "r0");
  n.run_jobs();
  REQUIRE(n.cluster_status("sim").in_flight == 1);  // the allocate call, 1 s

  auto listing = std::make_shared<std::optional<actors::inventory_reply>>();
  ask("sim", actors::inventory_atom::value, listing);
  n.run_jobs();
  CHECK_FALSE(listing->has_value());  // behind the step's call
  CHECK(n.cluster_status("sim").queued == 1);
  REQUIRE(n.run_until([&] { return listing->has_value(); }));
  CHECK((*listing)->ok);
  CHECK(n.virtual_now() >= std::chrono::seconds{1});

  // A test that takes longer than the call timeout is answered with the timeout.
  auto report = std::make_shared<std::optional<providers::connectivity_report>>();
  const auto asked_at = n.virtual_now();
  ask("slow", actors::test_atom::value, report);
  REQUIRE(n.run_until([&] { return report->has_value(); }));
  CHECK_FALSE((*report)->ok);
  CHECK((*report)->message.rfind("timeout", 0) == 0);
  CHECK(n.virtual_now() - asked_at < std::chrono::seconds{2});
}

TEST_CASE("draining finishes and records in-flight calls, then stops", "[actors][resilience][shutdown]") {
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 500;
  sim.delay_max_ms = 500;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}};
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(submit_for(w, n, "t" + std::to_string(i), "r" + std::to_string(i)));
  }
  n.run_jobs();  // every request has its allocate call in flight
  auto drained = std::make_shared<std::size_t>(0);
  auto supervisor = n.supervisor;
  n.sys->spawn([drained, supervisor](caf::event_based_actor* self) {
    self->request(supervisor, caf::infinite, actors::drain_atom::value).then([drained](std::size_t k) { *drained = k; });
  });
  REQUIRE(n.run_until([&] { return *drained == 4; }));
  CHECK(n.live_requests() == 0);
  for (const auto& id : ids) {
    const auto s = prov::testing::fold(w.journal, id);
    // The allocate call that was in flight finished and its outcome is in the log; nothing
    // further was started while draining (configure is recorded as started, not called).
    CHECK(s.step(step_kind::allocate).status == step_status::succeeded);
    CHECK(s.state == lifecycle_state::configuring);
  }
}

TEST_CASE("stuck in rolling_back: the rollback is retried and reported, never dropped",
          "[actors][resilience][stuck]") {
  world w;
  simulation_settings sim;
  sim.fail_configure = 1.0;
  sim.delay_min_ms = 100;
  sim.delay_max_ms = 100;
  actors::pipeline_options opts;
  opts.retry.max_retries = 0;
  opts.calls.call_timeout = std::chrono::milliseconds{0};
  auto cluster = prov::testing::sim_cluster("sim", sim);
  node n{w.journal, w.clk, *w.cloud, {cluster}, opts};
  prov::testing::submit(w.journal, prov::testing::vps_request("r1"));
  n.start("r1");
  // Allocate succeeds, configure fails: rollback starts. Before it can release anything, the
  // cloud stops answering deletes.
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "r1").state == lifecycle_state::rolling_back; }));
  cluster.simulation.hang_rate = 1.0;
  cluster.version = 2;
  n.update_cluster(cluster);
  n.run_for(std::chrono::minutes{65});  // two watchdog periods without progress
  auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolling_back);  // still trying, not dropped
  std::uint64_t reports = 0;
  {
    auto watchdog = n.ctx.watchdog;
    auto out = std::make_shared<std::uint64_t>(0);
    n.sys->spawn([watchdog, out](caf::event_based_actor* self) {
      self->request(watchdog, caf::infinite, actors::status_atom::value).then([out](std::uint64_t k) { *out = k; });
    });
    n.run_jobs();
    reports = *out;
  }
  CHECK(reports >= 2);
  // The cloud answers again: the next stuck retry finishes the rollback.
  cluster.simulation.hang_rate = 0;
  cluster.version = 3;
  n.update_cluster(cluster);
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }, std::chrono::hours{2}));
  s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::rolled_back);
  CHECK(w.cloud->list("sim")->empty());
}

namespace {

/// A journal whose appends to one stream fail with an I/O error (nothing written) once
/// `pass` of them went through, while `failures` is above zero; everything else goes on to
/// `inner`.
struct flaky_journal final : events::journal {
  events::journal& inner;
  std::string stream;
  int pass = 0;
  int failures = 0;
  errc code = errc::io_error;  ///< what the failures answer
  std::vector<timestamp> failed_at;
  const prov::clock& clk;

  flaky_journal(events::journal& j, std::string s, const prov::clock& c) : inner(j), stream(std::move(s)), clk(c) {}

  void append(std::vector<stream_append> batch, append_handler done) override {
    if (batch.size() == 1 && batch.front().stream == stream && pass-- <= 0 && failures > 0) {
      --failures;
      failed_at.push_back(clk.now());
      done(make_error(code, "disk full (injected)"));
      return;
    }
    inner.append(std::move(batch), std::move(done));
  }
  result<std::vector<stored_event>> read_stream(std::string_view s, std::uint64_t from, std::uint64_t max) const override {
    return inner.read_stream(s, from, max);
  }
  result<std::uint64_t> stream_version(std::string_view s) const override { return inner.stream_version(s); }
  result<std::size_t> read_all(std::uint64_t from, std::size_t max,
                               const std::function<void(const stored_event&)>& visit) const override {
    return inner.read_all(from, max, visit);
  }
  std::uint64_t head() const override { return inner.head(); }
  void on_commit(commit_listener listener) override { inner.on_commit(std::move(listener)); }
  void drain() override { inner.drain(); }
};

}  // namespace

/// A node whose journal is `flaky` for the stream of "r1", a vps request submitted, with
/// append_retry at 1.5 s.
struct flaky_node {
  static actors::pipeline_options options() {
    actors::pipeline_options opts;
    opts.append_retry = std::chrono::milliseconds{1500};
    return opts;
  }

  world w;
  flaky_journal flaky{w.journal, request_stream("r1"), w.clk};
  node n{flaky, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}, options()};

  flaky_node() { prov::testing::submit(w.journal, prov::testing::vps_request("r1")); }
};

TEST_CASE("an append that fails with an I/O error is made again, the same events, after append_retry",
          "[actors][resilience][journal]") {
  flaky_node f;
  auto& [w, flaky, n] = f;
  // The cluster and the first step are recorded; the next two appends (allocate's outcome
  // with configure's start) fail before the third attempt goes through.
  flaky.pass = 1;
  flaky.failures = 2;
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  REQUIRE(flaky.failed_at.size() == 2);
  CHECK(flaky.failed_at[1] - flaky.failed_at[0] >= std::chrono::milliseconds{1500});

  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::completed);
  for (const auto& step : s.steps) {
    CHECK(step.attempts == 1);  // the outcome was recorded, not the step run again
  }
  // Allocate ran once: its resources exist once at the provider and in the log.
  const auto log = global_log(w.journal);
  const auto allocated = std::count_if(log.begin(), log.end(), [](const logged& l) {
    return std::holds_alternative<resource_allocated>(l.event) &&
           std::get<resource_allocated>(l.event).step == step_kind::allocate;
  });
  CHECK(allocated == static_cast<long>(w.cloud->by_key("sim", "r1", "r1/allocate/1")->size()));
  CHECK(s.resources.size() == w.cloud->list("sim")->size());
  // The retried batch is stamped when it went through, after the failures.
  const auto configure_started = std::find_if(log.begin(), log.end(), [](const logged& l) {
    return std::holds_alternative<step_started>(l.event) && std::get<step_started>(l.event).step == step_kind::configure;
  });
  REQUIRE(configure_started != log.end());
  CHECK(configure_started->time >= flaky.failed_at[1] + std::chrono::milliseconds{1500});
}

TEST_CASE("an append the journal refuses until it is reopened stops the request's actor, and the next start goes on",
          "[actors][resilience][journal]") {
  flaky_node f;
  auto& [w, flaky, n] = f;
  // Allocate's outcome is refused as by a journal whose WAL sync failed.
  flaky.pass = 1;
  flaky.failures = 1'000;
  flaky.code = errc::unavailable;
  n.start("r1");
  REQUIRE(n.run_until([&] { return !flaky.failed_at.empty() && n.live_requests() == 0; }));
  n.run_for(std::chrono::minutes{1});
  CHECK(flaky.failed_at.size() == 1);  // not appended again every append_retry
  CHECK(n.live_requests() == 0);
  CHECK(prov::testing::fold(w.journal, "r1").state == lifecycle_state::allocating);

  // Reopened: the next start decides again from the log, and allocate's call is adopted.
  flaky.failures = 0;
  n.start("r1");
  REQUIRE(n.run_until([&] { return prov::testing::at_rest(w.journal, {"r1"}); }));
  const auto s = prov::testing::fold(w.journal, "r1");
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.steps[0].attempts == 1);
  CHECK(s.resources.size() == w.cloud->list("sim")->size());
}
