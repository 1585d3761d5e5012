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
  h.add(credentials_delivered{"v1:sealed-bytes", {"password", "username"}});
  h.add(step_succeeded{step_kind::activate, 1, {}});
  h.add(step_started{step_kind::verify, 1, "r1/verify/1"});
  h.add(step_succeeded{step_kind::verify, 1, {{"http", "http://203.0.113.7"}}});
  h.add(request_completed{});

  const auto& s = h.s;
  CHECK(s.state == lifecycle_state::completed);
  CHECK(s.version == 15);
  CHECK(s.credentials_sealed == "v1:sealed-bytes");
  CHECK(s.credential_fields == std::vector<std::string>{"password", "username"});
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

  // Folding the stored records from scratch gives the same state (that fold moves each
  // decoded event's strings into the state; `add` copied them).
  auto folded = fold_request(h.stored);
  REQUIRE(folded.ok());
  CHECK(*folded == s);
  CHECK(folded->resources[1].idempotency_key == "r1/allocate/1");
  CHECK(folded->step(step_kind::verify).idempotency_key == "r1/verify/1");
}

TEST_CASE("only an event given up (an rvalue) has its strings moved into the state", "[events][apply]") {
  request_state a;
  request_event kept{submitted()};
  REQUIRE(apply_to(a, kept, event_meta{1, timestamp{}}).ok());
  CHECK(std::get<request_submitted>(kept).tenant == "acme");  // an lvalue is copied from

  request_state b;
  request_event given{submitted()};
  REQUIRE(apply_to(b, std::move(given), event_meta{1, timestamp{}}).ok());
  CHECK(b == a);

  // A refused event is not taken either: the state and the event stay as they were.
  request_event again{submitted()};
  CHECK_FALSE(apply_to(b, std::move(again), event_meta{2, timestamp{}}).ok());
  CHECK(std::get<request_submitted>(again).tenant == "acme");
  CHECK(b == a);
}

TEST_CASE("restamp: a fold with a placeholder time, restamped, equals the fold with the real time",
          "[events][apply]") {
  // Every request event type a pipeline appends, through success, failure, retry and rollback.
  const std::vector<request_event> history{
      submitted(),
      cluster_assigned{"sim-local"},
      step_started{step_kind::allocate, 1, "r1/allocate/1"},
      resource_allocated{step_kind::allocate, "volume", "vol-1", "boot", "r1/allocate/1"},
      step_succeeded{step_kind::allocate, 1, {}},
      step_started{step_kind::configure, 1, "r1/configure/1"},
      step_failed{step_kind::configure, 1, "timeout", "no answer", true},
      retry_scheduled{step_kind::configure, 2, timestamp{std::chrono::seconds{1'900'000'000}}, 1000},
      step_started{step_kind::configure, 2, "r1/configure/2"},
      credentials_delivered{"v1:sealed", {"password"}},
      step_failed{step_kind::configure, 2, "timeout", "no answer", false},
      request_failed{"provider_error", "configure failed"},
      rollback_started{"provider_error"},
      resource_released{"volume", "vol-1"},
      request_rolled_back{},
  };
  const timestamp placeholder = timestamp::max();
  timestamp real{std::chrono::seconds{1'800'000'000}};
  request_state stamped;
  request_state folded;
  for (const auto& e : history) {
    real += std::chrono::milliseconds{7};
    // One event per append here; an append of several stamps them all with one time.
    REQUIRE(apply_to(stamped, e, event_meta{stamped.version + 1, placeholder}).ok());
    restamp(stamped, placeholder, real);
    REQUIRE(apply_to(folded, e, event_meta{folded.version + 1, real}).ok());
    CHECK(stamped == folded);
  }
  CHECK(folded.state == lifecycle_state::rolled_back);
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

TEST_CASE("an orphan is recorded as released, only at rest and never for a resource the request holds",
          "[events][apply]") {
  history h;
  h.add(submitted());
  h.add(cluster_assigned{"sim"});
  h.add(step_started{step_kind::allocate, 1, "r1/allocate/1"});
  const orphan_found late{step_kind::allocate, "server", "srv-late", "vm", "r1/allocate/1"};
  // In flight, a call of the request may still be about to record it.
  auto running = apply(h.s, late, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(running.ok());
  CHECK(running.err().code == errc::invalid_transition);
  h.add(resource_allocated{step_kind::allocate, "server", "srv-1", "vm", "r1/allocate/2"});
  h.add(step_succeeded{step_kind::allocate, 1, {}});
  for (const auto step : {step_kind::configure, step_kind::activate, step_kind::verify}) {
    h.add(step_started{step, 1, "k"});
    h.add(step_succeeded{step, 1, {}});
  }
  h.add(request_completed{});
  // What the request holds is never an orphan.
  const orphan_found held{step_kind::allocate, "server", "srv-1", "vm", "r1/allocate/2"};
  auto refused = apply(h.s, held, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == errc::invalid_transition);
  h.add(late);
  CHECK(h.s.state == lifecycle_state::completed);
  REQUIRE(h.s.resources.size() == 2);
  CHECK_FALSE(h.s.resources[0].released);
  CHECK(h.s.resources[1] == resource{"server", "srv-late", "vm", step_kind::allocate, "r1/allocate/1", true});
  // Once recorded, it is not recorded again.
  CHECK_FALSE(apply(h.s, late, event_meta{h.s.version + 1, h.t}).ok());
  auto folded = fold_request(h.stored);
  REQUIRE(folded.ok());
  CHECK(*folded == h.s);
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

TEST_CASE("waiting keeps a request queued with its reason, starting clears it", "[events][apply]") {
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
  REQUIRE(apply_to(ten, tenant_token_rotated{"def", "acme"}, event_meta{3, t}).ok());
  CHECK(ten.token_sha256 == "def");
  CHECK(ten.quota.instances == 3);
  tenant_state none;
  CHECK(apply_to(none, tenant_token_rotated{"def", "admin"}, event_meta{1, t}).err().code == errc::not_found);
}

TEST_CASE("approval: pending_approval until approved (queued again) or rejected (failed)", "[events][apply][approval]") {
  history h;
  h.add(submitted());
  h.add(approval_required{"rule-1", "High-Resource VPS Approval"});
  CHECK(h.s.state == lifecycle_state::pending_approval);
  CHECK(h.s.approval_rule_name == "High-Resource VPS Approval");
  auto early = apply(h.s, step_started{step_kind::allocate, 1, "k"}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(early.ok());
  history rejected = h;
  h.add(request_approved{"admin"});
  CHECK(h.s.state == lifecycle_state::queued);
  auto twice = apply(h.s, request_approved{"admin"}, event_meta{h.s.version + 1, h.t});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.err().code == errc::invalid_transition);
  rejected.add(request_rejected{"too expensive", "admin"});
  CHECK(rejected.s.state == lifecycle_state::failed);
  CHECK(rejected.s.reason == "rejected");
  CHECK(rejected.s.reason_message == "too expensive");
}

TEST_CASE("cancel fails the running step, a completed request cannot be cancelled", "[events][apply]") {
  history h;
  h.add(submitted());
  h.add(step_started{step_kind::allocate, 1, "k"});
  h.add(request_cancelled{"no longer needed", "acme"});
  CHECK(h.s.state == lifecycle_state::failed);
  CHECK(h.s.reason == "cancelled");
  CHECK(h.s.step(step_kind::allocate).status == step_status::failed);
}

TEST_CASE("suspend and reactivate go through a recorded pending action", "[events][apply][lifecycle]") {
  history h;
  h.add(submitted());
  for (std::size_t i = 0; i < step_count; ++i) {
    h.add(step_started{static_cast<step_kind>(i), 1, "k"});
    h.add(step_succeeded{static_cast<step_kind>(i), 1, {}});
  }
  h.add(request_completed{});
  auto without = apply(h.s, request_suspended{}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(without.ok());  // the request must be asked first
  h.add(action_requested{service_action::suspend, "non-payment", "admin"});
  CHECK(h.s.state == lifecycle_state::completed);
  CHECK(h.s.pending_action == static_cast<std::uint8_t>(service_action::suspend));
  h.add(request_suspended{});
  CHECK(h.s.state == lifecycle_state::suspended);
  CHECK(h.s.reason_message == "non-payment");
  h.add(action_requested{service_action::reactivate, "", "admin"});
  h.add(action_failed{service_action::reactivate, "timeout", "no answer"});
  CHECK(h.s.state == lifecycle_state::suspended);
  CHECK(h.s.action_error == "timeout: no answer");
  h.add(action_requested{service_action::reactivate, "", "admin"});
  h.add(request_reactivated{});
  CHECK(h.s.state == lifecycle_state::completed);
  h.add(rollback_started{"deprovisioned"});
  CHECK(h.s.state == lifecycle_state::rolling_back);
  CHECK(h.s.reason == "deprovisioned");
}

TEST_CASE("manual input: the step waits, then the input completes it", "[events][apply][manual]") {
  history h;
  h.add(submitted());
  h.add(step_started{step_kind::allocate, 1, "k"});
  h.add(input_requested{step_kind::allocate});
  CHECK(h.s.step(step_kind::allocate).status == step_status::awaiting_input);
  h.add(input_provided{step_kind::allocate, {{"url", "https://x"}}, "admin"});
  h.add(credentials_delivered{"v1:sealed", {"password"}});
  CHECK(h.s.step(step_kind::allocate).status == step_status::succeeded);
  CHECK(h.s.endpoints.at("url") == "https://x");
  CHECK(h.s.credential_fields == std::vector<std::string>{"password"});
  auto again = apply(h.s, input_provided{step_kind::allocate, {}, "admin"}, event_meta{h.s.version + 1, h.t});
  CHECK_FALSE(again.ok());
}

TEST_CASE("approval rules: priority, tenant before global, conditions", "[events][rules]") {
  auto rule = [](std::string id, std::string tenant, std::int64_t prio, rule_conditions c, int created) {
    rule_state r;
    r.id = std::move(id);
    r.name = r.id;
    r.tenant = std::move(tenant);
    r.priority = prio;
    r.conditions = std::move(c);
    r.created_at = timestamp{std::chrono::seconds{created}};
    r.version = 1;
    return r;
  };
  rule_conditions big;
  big.min_cpu_millis = 16000;
  big.min_memory_mb = 32 * 1024;
  big.min_storage_gb = 500;
  big.types = {service_type::vps};
  big.regions = {"eu-west-1"};
  rule_conditions region_only;
  region_only.regions = {"us-east-1"};
  std::vector<rule_state> rules{rule("global-big", "", 10, big, 1), rule("acme-big", "acme", 10, big, 2),
                                rule("us", "", 5, region_only, 3)};
  const resource_spec huge{16000, 32 * 1024, 500, ""};
  const resource_spec small{2000, 4096, 50, ""};
  CHECK(first_matching_rule(rules, "acme", huge, service_type::vps, "eu-west-1")->id == "acme-big");
  CHECK(first_matching_rule(rules, "other", huge, service_type::vps, "eu-west-1")->id == "global-big");
  CHECK(first_matching_rule(rules, "acme", small, service_type::vps, "eu-west-1") == nullptr);
  CHECK(first_matching_rule(rules, "acme", huge, service_type::namespace_, "eu-west-1") == nullptr);
  CHECK(first_matching_rule(rules, "acme", small, service_type::vps, "us-east-1")->id == "us");
  CHECK(first_matching_rule(rules, "acme", huge, service_type::vps, "us-east-1")->id == "us");
  rules[2].deleted = true;
  CHECK(first_matching_rule(rules, "acme", small, service_type::vps, "us-east-1") == nullptr);
  // Equal priority, both global: the older rule.
  rules.push_back(rule("global-big-2", "", 10, big, 0));
  CHECK(first_matching_rule(rules, "other", huge, service_type::vps, "eu-west-1")->id == "global-big-2");
}
