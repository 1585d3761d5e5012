#include <catch2/catch.hpp>

#include "prov/events/apply.hpp"
#include "prov/events/lifecycle.hpp"

#include <set>

using namespace prov;
using namespace prov::events;

TEST_CASE("lifecycle events: each R-6.1 type from the journal, stable ids, no secrets", "[events][lifecycle]") {
  std::vector<request_event> history{
      request_submitted{"r1", "acme", service_type::vps, provider_type::simulation, "local", {1000, 1024, 10, ""}, {}, "", ""},
      cluster_assigned{"sim"},
      step_started{step_kind::allocate, 1, "k1"},
      resource_allocated{step_kind::allocate, "server", "srv-1", "vm", "k1"},
      step_succeeded{step_kind::allocate, 1, {}},
      step_started{step_kind::configure, 1, "k2"},
      step_succeeded{step_kind::configure, 1, {{"ssh", "ssh://x"}}},
      step_started{step_kind::activate, 1, "k3"},
      credentials_delivered{"v1:SEALED-SECRET", {"password"}},
      step_succeeded{step_kind::activate, 1, {}},
      step_started{step_kind::verify, 1, "k4"},
      step_succeeded{step_kind::verify, 1, {}},
      request_completed{},
      action_requested{service_action::suspend, "non-payment", "admin"},
      request_suspended{},
      action_requested{service_action::reactivate, "", "admin"},
      request_reactivated{},
      rollback_started{"deprovisioned"},
      resource_released{"server", "srv-1"},
      request_rolled_back{},
  };
  request_state s;
  std::vector<std::string> types;
  std::vector<std::string> ids;
  std::uint64_t seq = 0;
  for (const auto& e : history) {
    ++seq;
    const auto rec = std::visit([](const auto& x) { return to_record(x); }, e);
    const stored_event stored{seq, "request/r1", seq, timestamp{std::chrono::seconds{seq}}, rec.type_id, rec.version, rec.payload};
    REQUIRE(apply_to(s, e, event_meta{seq, stored.time}).ok());
    const auto any = *decode(stored);
    for (const auto& le : to_lifecycle(stored, any, s)) {
      types.push_back(le.type);
      ids.push_back(le.cloudevent["id"].get<std::string>());
      CHECK(le.request == "r1");
      CHECK(le.tenant == "acme");
      CHECK(le.cloudevent["specversion"] == "1.0");
      CHECK(le.cloudevent["sequence"] == seq);
      CHECK(le.cloudevent.dump().find("SEALED-SECRET") == std::string::npos);
      CHECK(is_lifecycle_type(le.type));
    }
  }
  const std::vector<std::string> expected{
      "provisioning.started",        "resource.allocated",          "provisioning.step-completed",
      "provisioning.step-completed", "provisioning.step-completed", "service.activated",
      "provisioning.step-completed", "provisioning.completed",      "service.suspended",
      "service.reactivated",         "provisioning.rolled-back"};
  CHECK(types == expected);
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
  // Every type except provisioning.failed appears in this history.
  for (auto t : lifecycle_types) {
    if (t != "provisioning.failed") {
      CHECK(std::find(types.begin(), types.end(), std::string{t}) != types.end());
    }
  }
}
