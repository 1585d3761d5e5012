#include <catch2/catch.hpp>

#include <set>
#include <utility>

#include "prov/events/apply.hpp"
#include "prov/events/transitions.hpp"

using namespace prov;
using namespace prov::events;
using ls = lifecycle_state;

namespace {

// The expected table, written out independently of the implementation.
const std::set<std::pair<ls, ls>> expected_edges{
    {ls::queued, ls::pending_approval},  {ls::queued, ls::allocating},     {ls::queued, ls::failed},
    {ls::pending_approval, ls::queued},  {ls::pending_approval, ls::failed},
    {ls::allocating, ls::configuring},   {ls::allocating, ls::failed},
    {ls::configuring, ls::activating},   {ls::configuring, ls::failed},
    {ls::activating, ls::verifying},     {ls::activating, ls::failed},
    {ls::verifying, ls::completed},      {ls::verifying, ls::failed},
    {ls::completed, ls::suspended},      {ls::completed, ls::rolling_back},
    {ls::suspended, ls::completed},      {ls::suspended, ls::rolling_back},
    {ls::failed, ls::rolling_back},      {ls::rolling_back, ls::rolled_back},
};

ls state_at(std::size_t i) { return static_cast<ls>(i); }

}  // namespace

TEST_CASE("transition table: every pair of the 11 states", "[events][transitions]") {
  std::size_t allowed = 0;
  for (std::size_t f = 0; f < lifecycle_state_count; ++f) {
    for (std::size_t t = 0; t < lifecycle_state_count; ++t) {
      const auto from = state_at(f);
      const auto to = state_at(t);
      INFO(enum_name(from) << " -> " << enum_name(to));
      const bool expected = expected_edges.count({from, to}) == 1;
      CHECK(transition_allowed(from, to) == expected);
      allowed += expected ? 1 : 0;
    }
  }
  CHECK(allowed == expected_edges.size());
}

TEST_CASE("allowed_targets agrees with transition_allowed", "[events][transitions]") {
  for (std::size_t f = 0; f < lifecycle_state_count; ++f) {
    const auto targets = allowed_targets(state_at(f));
    std::size_t n = 0;
    for (std::size_t t = 0; t < lifecycle_state_count; ++t) {
      n += transition_allowed(state_at(f), state_at(t)) ? 1 : 0;
    }
    CHECK(targets.size() == n);
  }
  CHECK(allowed_targets(ls::rolled_back).empty());
}

namespace {

struct builder {
  request_state s;
  timestamp t{std::chrono::seconds{1'800'000'000}};

  status add(const request_event& e) {
    t += std::chrono::milliseconds{1};
    return apply_to(s, e, event_meta{s.version + 1, t});
  }

  void must(const request_event& e) {
    auto st = add(e);
    if (!st) {
      FAIL(st.err().message);
    }
  }
};

request_submitted submitted() {
  request_submitted e;
  e.request_id = "r1";
  e.tenant = "acme";
  e.type = service_type::vps;
  e.provider = provider_type::simulation;
  e.region = "local";
  e.spec = resource_spec{2000, 4096, 50, ""};
  return e;
}

// Folds the events that bring a fresh request into `target`.
bool drive_to(builder& b, ls target) {
  b.must(submitted());
  if (target == ls::queued) {
    return true;
  }
  if (target == ls::pending_approval) {
    b.must(approval_required{"r", "rule"});
    return true;
  }
  if (target == ls::failed || target == ls::rolling_back || target == ls::rolled_back) {
    b.must(request_failed{"provider_error", "boom"});
    if (target != ls::failed) {
      b.must(rollback_started{"provider_error"});
    }
    if (target == ls::rolled_back) {
      b.must(request_rolled_back{});
    }
    return true;
  }
  for (std::size_t i = 0; i < step_count; ++i) {
    const auto step = static_cast<step_kind>(i);
    b.must(step_started{step, 1, "k"});
    if (b.s.state == target) {
      return true;
    }
    b.must(step_succeeded{step, 1, {}});
  }
  b.must(request_completed{});
  if (target == ls::suspended) {
    b.must(action_requested{service_action::suspend, "", "admin"});
    b.must(request_suspended{});
  }
  return b.s.state == target;
}

}  // namespace

TEST_CASE("apply refuses every transition outside the table and leaves the state as it was",
          "[events][transitions][apply]") {
  // For every reachable state and every state-changing event, apply succeeds exactly when the
  // table allows the move (and the step order holds).
  for (std::size_t f = 0; f < lifecycle_state_count; ++f) {
    const auto from = state_at(f);
    builder base;
    if (!drive_to(base, from)) {
      continue;
    }
    REQUIRE(base.s.state == from);
    std::vector<std::pair<request_event, ls>> moves{
        {request_completed{}, ls::completed},
        {request_failed{"x", "y"}, ls::failed},
        {rollback_started{"deprovision"}, ls::rolling_back},
        {request_rolled_back{}, ls::rolled_back},
        {approval_required{"r", "rule"}, ls::pending_approval},
        {request_approved{"admin"}, ls::queued},
        {request_rejected{"no", "admin"}, ls::failed},
        {request_cancelled{"no", "admin"}, ls::failed},
    };
    for (std::size_t i = 0; i < step_count; ++i) {
      moves.emplace_back(step_started{static_cast<step_kind>(i), 1, "k"}, state_of(static_cast<step_kind>(i)));
    }
    for (const auto& [event, to] : moves) {
      builder b = base;
      // Leaving a step state forward needs that step finished: succeed it first (no state change).
      if (auto running = step_of(from); running && !std::holds_alternative<request_failed>(event) &&
                                        !std::holds_alternative<request_cancelled>(event)) {
        b.must(step_succeeded{*running, 1, {}});
      }
      const auto before = b.s;
      const auto st = b.add(event);
      INFO(enum_name(from) << " --" << std::visit([](const auto& e) { return e.info.name; }, event) << "--> "
                           << enum_name(to));
      const bool step_in_order = !std::holds_alternative<step_started>(event) ||
                                 std::get<step_started>(event).step == step_kind::allocate ||
                                 step_of(from) == static_cast<step_kind>(static_cast<int>(std::get<step_started>(event).step) - 1);
      // Approval events have narrower sources than the table's edges into their target.
      const bool approval_only = std::holds_alternative<approval_required>(event) ? from == ls::queued
                                 : std::holds_alternative<request_rejected>(event) ? from == ls::pending_approval
                                                                                    : true;
      const bool expected = transition_allowed(from, to) && step_in_order && approval_only;
      CHECK(st.ok() == expected);
      if (st.ok()) {
        CHECK(b.s.state == to);
      } else {
        CHECK(st.err().code == errc::invalid_transition);
        CHECK(b.s == before);
      }
    }
  }
}
