// dependsOn in the actors: the graph refuses cycles (Kahn's algorithm), dependents wait
// until every prerequisite completed, and fail with dependency_failed when one fails.

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

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
  // Racing through each other's keys: u (key ku) waits for key kv, and v (key kv) for key ku,
  // both submitted before either claim commits. v closes a cycle once the claims commit.
  REQUIRE(n.add_dependencies("u", {"key:acme/kv"}, "key:acme/ku").ok);
  const auto racing = n.add_dependencies("v", {"key:acme/ku"}, "key:acme/kv");
  REQUIRE_FALSE(racing.ok);
  CHECK(racing.cycle.find("u") != std::string::npos);
  CHECK(racing.cycle.find("v") != std::string::npos);
  // Once u's submission is forgotten (it did not commit), v fits.
  caf::anon_send(n.ctx.dependencies, actors::forget_atom::value, std::string{"u"});
  n.run_jobs();
  CHECK(n.add_dependencies("v", {"key:acme/ku"}, "key:acme/kv").ok);
}

TEST_CASE("dependency graph: a key is its request once that request's claim commits, whoever raced for it",
          "[actors][dependencies][keys]") {
  // Two submissions race for key k (a wins, b's claim conflicts), while d and e wait for the
  // key: d linked before a's claim committed, e after (its submitter read the claim stream
  // just before the commit). Both must be resumed when a settles.
  world w;
  simulation_settings sim;
  sim.delay_min_ms = 100;
  sim.delay_max_ms = 100;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim", sim)}};
  const std::string key = "key:acme/k";  // the graph's node; the requests say "key:k"
  auto waiting_for_key = [&](const std::string& id) {
    REQUIRE(n.add_dependencies(id, {key}).ok);
    auto r = prov::testing::vps_request(id);
    r.depends_on = {"key:k"};
    prov::testing::submit(w.journal, r);
    n.start(id);
  };
  REQUIRE(n.add_dependencies("a", {}, key).ok);
  REQUIRE(n.add_dependencies("b", {}, key).ok);
  waiting_for_key("d");
  REQUIRE(n.run_until([&] { return prov::testing::fold(w.journal, "d").reason == "waiting_for_dependencies"; }));

  // a's submission commits with its claim; b's does not.
  auto a = prov::testing::vps_request("a");
  a.idempotency_key = "k";
  prov::testing::submit(w.journal, a);
  std::vector<stream_append> claim;
  claim.push_back(stream_append{idempotency_stream("acme", "k"), 0, {to_record(idempotency_claimed{"a"})}});
  w.journal.append(std::move(claim), [](result<append_receipt> r) { REQUIRE(r); });
  caf::anon_send(n.ctx.dependencies, actors::forget_atom::value, std::string{"b"});
  caf::anon_send(n.ctx.dependencies, actors::claimed_atom::value, key, std::string{"a"});
  n.run_jobs();
  waiting_for_key("e");
  n.start("a");

  REQUIRE(n.run_until([&] {
    n.run_jobs();
    return prov::testing::at_rest(w.journal, {"a", "d", "e"});
  }));
  for (const auto* id : {"a", "d", "e"}) {
    CHECK(prov::testing::fold(w.journal, id).state == lifecycle_state::completed);
  }
  CHECK(started_at(w.journal, "d") >= completed_at(w.journal, "a"));
  CHECK(started_at(w.journal, "e") >= completed_at(w.journal, "a"));
}

TEST_CASE("dependency graph: a verdict is heard exactly once, also when the graph stops before it checks the node",
          "[actors][dependencies][sink]") {
  // engine::submit does not wait for the graph: it sends the node with a sink. The sink must
  // answer whatever happens to the message, or that submission would never be answered.
  struct heard {
    int verdicts = 0;
    int drops = 0;
    bool ok = false;
  };
  auto sink_into = [](heard& h) {
    return actors::verdict_sink{[&h](const actors::dependency_verdict& v) {
                                  ++h.verdicts;
                                  h.ok = v.ok;
                                },
                                [&h] { ++h.drops; }};
  };
  SECTION("the sink itself: the first delivery wins, copies share it, an undelivered one is dropped once") {
    heard delivered;
    heard lost;
    {
      auto a = sink_into(delivered);
      auto copy = a;
      copy(actors::dependency_verdict{true, {}});
      a(actors::dependency_verdict{false, "x -> x"});
      auto b = sink_into(lost);
      auto b_copy = b;
    }
    CHECK(delivered.verdicts == 1);
    CHECK(delivered.ok);
    CHECK(delivered.drops == 0);
    CHECK(lost.verdicts == 0);
    CHECK(lost.drops == 1);
  }
  SECTION("through the graph: nodes queued before it stops are answered, one sent after is dropped") {
    world w;
    heard checked;
    heard queued;
    heard after;
    {
      node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
      caf::anon_send(n.ctx.dependencies, actors::add_atom::value, actors::dependency_node{"a", {}, {"b"}},
                     sink_into(checked));
      n.run_jobs();
      CHECK(checked.verdicts == 1);
      CHECK(checked.ok);
      // The shutdown's exit queues behind what is in the mailbox already.
      caf::anon_send(n.ctx.dependencies, actors::add_atom::value, actors::dependency_node{"c", {}, {"a"}},
                     sink_into(queued));
      caf::anon_send_exit(n.ctx.dependencies, caf::exit_reason::user_shutdown);
      n.run_jobs();
      CHECK(queued.verdicts == 1);
      // Sent once the graph is gone (a submission racing the shutdown).
      caf::anon_send(n.ctx.dependencies, actors::add_atom::value, actors::dependency_node{"d", {}, {"a"}},
                     sink_into(after));
      n.run_jobs();
      CHECK(after.drops == 1);
    }
    CHECK(checked.drops == 0);
    CHECK(queued.drops == 0);
    CHECK(after.verdicts == 0);
    CHECK(after.drops == 1);
  }
}

TEST_CASE("dependency graph: the incremental cycle check agrees with a check of the whole graph",
          "[actors][dependencies][cycles]") {
  // Random adds (through ids and keys, pending claims racing for one key), claims that commit
  // and submissions forgotten. Debug builds check every add against Kahn's algorithm on a copy
  // of the whole graph (an assert in the graph); here, what a refusal names must be a cycle
  // through the refused request.
  world w;
  node n{w.journal, w.clk, *w.cloud, {prov::testing::sim_cluster("sim")}};
  std::mt19937 rng{20261127};
  auto pick = [&](int n) { return std::uniform_int_distribution<int>{0, n - 1}(rng); };
  std::vector<std::string> added;
  std::map<std::string, std::string> key_of;  ///< request -> the key it claims
  std::set<std::string> committed;            ///< keys whose claim committed (one request each)
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto op = pick(10);
    if (op < 7 || added.empty()) {
      const auto id = "r" + std::to_string(i);
      std::vector<std::string> prerequisites;
      for (int k = pick(3); k > 0; --k) {
        prerequisites.push_back(pick(3) == 0 || added.empty() ? "key:acme/k" + std::to_string(pick(12))
                                                              : added[static_cast<std::size_t>(pick(static_cast<int>(added.size())))]);
      }
      const auto key = pick(2) == 0 ? "key:acme/k" + std::to_string(pick(12)) : std::string{};
      const auto verdict = n.add_dependencies(id, prerequisites, key);
      if (verdict.ok) {
        added.push_back(id);
        if (!key.empty()) {
          key_of[id] = key;
        }
        continue;
      }
      ++refused;
      CAPTURE(verdict.cycle);
      const auto first = verdict.cycle.substr(0, verdict.cycle.find(' '));
      const auto last = verdict.cycle.substr(verdict.cycle.rfind(' ') + 1);
      CHECK(first == last);
      CHECK(verdict.cycle.find(id) != std::string::npos);
    } else if (op < 9) {
      // A claim commits only for the request that made it, and for one request per key.
      const auto& id = added[static_cast<std::size_t>(pick(static_cast<int>(added.size())))];
      const auto claim = key_of.find(id);
      if (claim != key_of.end() && committed.insert(claim->second).second) {
        caf::anon_send(n.ctx.dependencies, actors::claimed_atom::value, claim->second, id);
        n.run_jobs();
      }
    } else {
      const auto at = static_cast<std::size_t>(pick(static_cast<int>(added.size())));
      caf::anon_send(n.ctx.dependencies, actors::forget_atom::value, added[at]);
      if (const auto claim = key_of.find(added[at]); claim != key_of.end()) {
        key_of.erase(claim);  // a committed key stays committed: nobody else's claim commits
      }
      added.erase(added.begin() + static_cast<std::ptrdiff_t>(at));
      n.run_jobs();
    }
  }
  CHECK(refused >= 5);  // the walk met cycles, not only acyclic adds
  CHECK(added.size() > 100);
}
