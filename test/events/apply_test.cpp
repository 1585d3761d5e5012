#include <catch2/catch.hpp>

#include "prov/events/apply.hpp"

using namespace prov;
using namespace prov::events;

namespace {

struct history {
  request_state s;
  std::vector<stored_event> stored;
  timestamp t{std::chrono::seconds{1'800'000'000}};

  void add(const request_event& e) {
    t += std::chrono::milliseconds{10};
    auto st = apply_to(s, e, event_meta{s.version + 1, t});
    if (!st) {
      FAIL(st.err().message);
    }
    auto rec = std::visit([](const auto& x) { return to_record(x); }, e);
    stored.push_back(stored_event{stored.size() + 1, "request/r1", stored.size() + 1, t, rec.type_id,
                                  rec.version, rec.payload});
  }
};

request_submitted submitted() {
  request_submitted e;
  e.request_id = "r1";
  e.tenant = "acme";
  e.region = "local";
  e.spec = resource_spec{2000, 4096, 50, R"({"image":"debian-12"})"};
  return e;
}

}  // namespace

TEST_CASE("a happy path folds to completed with steps, resources and endpoints", "[events][apply]") {
  history h;
  h.add(submitted());
  h.add(cluster_assigned{"sim-local"});
  h.add(step_started{step_kind::allocate, 1, "r1/allocate/1"});
  h.add(resource_allocated{step_kind::allocate, "volume", "vol-1", "boot", "r1/allocate/1"});
  h.add(resource_allocated{step_kind::allocate, "server", "srv-1", "vm", "r1/allocate/1"});
  h.add(step_succeeded{step_kind::allocate, 1, {}});
  h.add(step_started{step_kind::configure, 1, "r1/configure/1"});
  h.add(resource_allocated{step_kind::configure, "floating_ip", "fip-1", "", "r1/configure/1"});
  h.add(step_succeeded{step_kind::configure, 1, {{"ssh", "ssh://203.0.113.7:22"}}});
  h.add(step_started{step_kind::activate, 1, "r1/activate/1"});
  h.add(step_succeeded{step_kind::activate, 1, {}});
  h.add(step_started{step_kind::verify, 1, "r1/verify/1"});
  h.add(step_succeeded{step_kind::verify, 1, {{"http", "http://203.0.113.7"}}});
  h.add(request_completed{});

  const auto& s = h.s;
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.version == 14);
  CHECK(s.cluster == "sim-local");
  CHECK(s.resources.size() == 3);
  CHECK(s.endpoints.size() == 2);
  for (const auto& step : s.steps) {
    CHECK(step.status == step_status::succeeded);
    CHECK(step.attempts == 1);
    CHECK(step.started_at.has_value());
    CHECK(step.finished_at.has_value());
  }
  CHECK(s.created_at < s.updated_at);

  // Folding the stored records from scratch gives the same state.
  auto folded = fold_request(h.stored);
  REQUIRE(folded.ok());
  CHECK(*folded == s);
}

TEST_CASE("a failed step folds through failed and rolling_back to rolled_back", "[events][apply]") {
  history h;
  h.add(submitted());
  h.add(step_started{step_kind::allocate, 1, "k1"});
  h.add(resource_allocated{step_kind::allocate, "volume", "vol-1", "", "k1"});
  h.add(step_succeeded{step_kind::allocate, 1, {}});
  h.add(step_started{step_kind::configure, 1, "k2"});
  h.add(step_failed{step_kind::configure, 1, "provider_error", "no floating ip left", true});
  // A retry needs its schedule in the log first.
  auto unscheduled = apply(h.s, step_started{step_kind::configure, 2, "k3"}, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(unscheduled.ok());
  const auto due = h.t + std::chrono::seconds{5};
  h.add(retry_scheduled{step_kind::configure, 2, due, 5000});
  CHECK(h.s.step(step_kind::configure).next_attempt_at == due);
  h.add(step_started{step_kind::configure, 2, "k3"});
  CHECK_FALSE(h.s.step(step_kind::configure).next_attempt_at.has_value());
  h.add(step_failed{step_kind::configure, 2, "provider_error", "still none", true});
  h.add(request_failed{"provider_error", "configure failed after 2 attempts"});
  CHECK(h.s.state == lifecycle_state::failed);
  CHECK(h.s.step(step_kind::configure).attempts == 2);
  CHECK(h.s.step(step_kind::configure).error == "still none");
  h.add(rollback_started{"provider_error"});
  CHECK(h.s.reason == "provider_error");

  // Not all released yet: rolled_back is refused.
  auto early = apply(h.s, request_rolled_back{}, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(early.ok());
  CHECK(early.err().code == errc::invalid_transition);

  h.add(resource_released{"volume", "vol-1"});
  h.add(resource_released{"security_group", "sg-orphan"});  // found by tag, never recorded
  h.add(request_rolled_back{});
  CHECK(h.s.state == lifecycle_state::rolled_back);
  REQUIRE(h.s.resources.size() == 2);
  CHECK(h.s.resources[1].released);
}

TEST_CASE("apply refuses out-of-order sequences, double releases and stale attempts", "[events][apply]") {
  history h;
  h.add(submitted());
  const auto before = h.s;

  auto gap = apply(h.s, cluster_assigned{"c"}, event_meta{h.s.version + 2, h.t});
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.err().code == errc::version_conflict);

  auto again = apply(h.s, submitted(), event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(again.ok());
  CHECK(again.err().code == errc::invalid_transition);

  h.add(step_started{step_kind::allocate, 1, "k"});
  auto stale = apply(h.s, step_succeeded{step_kind::allocate, 2, {}}, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(stale.ok());

  auto wrong_attempt = apply(h.s, step_started{step_kind::allocate, 3, "k"}, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(wrong_attempt.ok());

  // Nothing before the aggregate exists.
  auto orphan = apply(request_state{}, cluster_assigned{"c"}, event_meta{1, h.t});
  REQUIRE_FALSE(orphan.ok());
  CHECK(orphan.err().code == errc::not_found);
  CHECK(before.version == 1);
}

TEST_CASE("waiting keeps a request queued with its reason; starting clears it", "[events][apply]") {
  history h;
  h.add(submitted());
  h.add(request_waiting{"waiting_for_tenant_slot"});
  CHECK(h.s.state == lifecycle_state::queued);
  CHECK(h.s.reason == "waiting_for_tenant_slot");
  h.add(step_started{step_kind::allocate, 1, "k"});
  CHECK(h.s.reason.empty());
  auto late = apply(h.s, request_waiting{"x"}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(late.ok());
  // A retry is scheduled only for a failed step, for the next attempt.
  auto early = apply(h.s, retry_scheduled{step_kind::allocate, 2, h.t, 0}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(early.ok());
  h.add(step_failed{step_kind::allocate, 1, "timeout", "t", true});
  auto skip = apply(h.s, retry_scheduled{step_kind::allocate, 3, h.t, 0}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(skip.ok());
}

TEST_CASE("cluster and tenant aggregates fold", "[events][apply]") {
  cluster_state c;
  const timestamp t{std::chrono::seconds{1}};
  cluster_registered reg;
  reg.cluster_id = "sim";
  reg.region = "local";
  reg.simulation.fail_verify = 0.5;
  REQUIRE(apply_to(c, reg, event_meta{1, t}).ok());
  cluster_updated upd;
  upd.enabled = false;
  REQUIRE(apply_to(c, upd, event_meta{2, t}).ok());
  CHECK_FALSE(c.enabled);
  CHECK(c.simulation.fail_verify == 0.5);
  CHECK_FALSE(apply_to(c, reg, event_meta{3, t}).ok());

  tenant_state ten;
  REQUIRE(apply_to(ten, tenant_created{"acme", "Acme", "abc", {}}, event_meta{1, t}).ok());
  tenant_quota q;
  q.instances = 3;
  REQUIRE(apply_to(ten, tenant_quota_set{q}, event_meta{2, t}).ok());
  CHECK(ten.quota.instances == 3);
}
