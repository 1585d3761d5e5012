#include <catch2/catch.hpp>

#include <set>

#include "prov/events/catalog.hpp"
#include "prov/events/cloudevents.hpp"

using namespace prov;
using namespace prov::events;

namespace {

// One populated sample of every event type in the catalog.
std::vector<any_event> samples() {
  request_submitted sub;
  sub.request_id = "0193a6f0-0000-7000-8000-000000000001";
  sub.tenant = "acme";
  sub.type = service_type::namespace_;
  sub.provider = provider_type::kubernetes;
  sub.region = "eu-west-1";
  sub.spec = resource_spec{500, 512, 10, R"({"image":"x"})"};
  sub.depends_on = {"a", "b"};
  sub.idempotency_key = "order-42 ünïcode";
  cluster_registered reg;
  reg.cluster_id = "c1";
  reg.name = "Cluster One";
  reg.type = provider_type::openstack;
  reg.capacity = cluster_capacity{64000, 262144, 10000, 100};
  reg.simulation = simulation_settings{0.1, 0.2, 0.3, 0.4, 0.05, 5, 50, 7};
  reg.is_default = true;
  reg.health = cluster_health::degraded;
  cluster_updated upd;
  upd.enabled = false;
  upd.capacity = cluster_capacity{1, 2, 3, 4};
  tenant_quota q;
  q.cpu_millis = 16000;
  q.instances = 0;
  return {sub,
          cluster_assigned{"c1"},
          step_started{step_kind::verify, 3, "k/verify/3"},
          step_succeeded{step_kind::configure, 1, {{"ssh", "ssh://x:22"}, {"http", "http://x"}}},
          step_failed{step_kind::activate, 2, "timeout", "server never became ACTIVE", true},
          resource_allocated{step_kind::allocate, "server", "srv-1", "vm-1", "k"},
          resource_released{"server", "srv-1"},
          request_completed{},
          request_failed{"no_cluster_available", "none fits"},
          rollback_started{"deprovision"},
          request_rolled_back{},
          retry_scheduled{step_kind::configure, 3, timestamp{std::chrono::seconds{1'800'000'020}}, 20000},
          request_waiting{"waiting_for_tenant_slot"},
          approval_required{"rule-1", "High-Resource VPS Approval"},
          request_approved{"admin"},
          request_rejected{"too big", "admin"},
          request_cancelled{"changed my mind", "acme"},
          action_requested{service_action::suspend, "non-payment", "admin"},
          request_suspended{},
          request_reactivated{},
          action_failed{service_action::reactivate, "timeout", "no answer"},
          credentials_delivered{"v1:abc", {"password", "username"}},
          input_requested{step_kind::allocate},
          input_provided{step_kind::allocate, {{"url", "https://vendor.example"}}, "admin"},
          orphan_found{step_kind::allocate, "server", "srv-9", "vm-9", "r1/allocate/1"},
          reg,
          upd,
          cluster_tested{true, 12, "reachable"},
          rule_created{"rule-1", "big", "", 10, rule_conditions{16000, 32768, 500, {service_type::vps}, {"eu-west-1"}}, "admin"},
          rule_deleted{"admin"},
          tenant_created{"acme", "Acme Inc", "deadbeef", q},
          tenant_quota_set{q},
          tenant_token_rotated{"cafef00d", "admin"},
          idempotency_claimed{"r1"},
          webhook_registered{"wh-1", "acme", "https://hooks.example/x", {"provisioning.completed", "*"}, "v1:c2Vj", "acme"},
          webhook_deactivated{"5 consecutive failed deliveries", 5},
          webhook_reactivated{"acme"},
          webhook_deleted{"admin"},
          webhook_delivery_attempted{"request/r1/3#0", "provisioning.completed", "r1", 42, 2, delivery_outcome::failed,
                                     false, 503, 17, "HTTP 503", timestamp{std::chrono::seconds{1'800'000'030}}}};
}

}  // namespace

TEST_CASE("the catalog covers every event type with unique ids and names", "[events][codec]") {
  const auto all = samples();
  REQUIRE(all.size() == std::variant_size_v<any_event>);
  std::set<std::uint16_t> ids;
  std::set<std::string_view> names;
  for (const auto& e : all) {
    const auto rec = to_record(e);
    ids.insert(rec.type_id);
    names.insert(type_name(e));
    CHECK(type_name(rec.type_id) == type_name(e));
  }
  CHECK(ids.size() == all.size());
  CHECK(names.size() == all.size());
}

TEST_CASE("every event round-trips through the binary encoding", "[events][codec]") {
  for (const auto& e : samples()) {
    INFO(type_name(e));
    const auto rec = to_record(e);
    auto back = decode(rec.type_id, rec.version, rec.payload);
    REQUIRE(back.ok());
    CHECK(*back == e);
  }
}

TEST_CASE("every event round-trips through CloudEvents JSON", "[events][codec][cloudevents]") {
  std::uint64_t seq = 0;
  for (const auto& e : samples()) {
    INFO(type_name(e));
    if (std::holds_alternative<credentials_delivered>(e)) {
      continue;  // redacted on purpose: see the next test
    }
    const auto rec = to_record(e);
    ++seq;
    stored_event stored{100 + seq, "request/r1", seq,
                        timestamp{std::chrono::microseconds{1'800'000'000'123'456}}, rec.type_id, rec.version,
                        rec.payload};
    auto ce = to_cloudevent(stored);
    REQUIRE(ce.ok());
    CHECK((*ce)["specversion"] == "1.0");
    CHECK((*ce)["sequence"] == seq);
    CHECK((*ce)["subject"] == "r1");
    CHECK((*ce)["time"] == "2027-01-15T08:00:00.123456Z");
    // Through text, as a consumer would see it.
    auto parsed = from_cloudevent(nlohmann::json::parse(ce->dump()));
    REQUIRE(parsed.ok());
    CHECK(*parsed == stored);
  }
}

TEST_CASE("secret events are redacted in CloudEvents", "[events][codec][cloudevents]") {
  const auto rec = to_record(any_event{credentials_delivered{"v1:c2VjcmV0", {"password"}}});
  stored_event stored{1, "request/r1", 1, timestamp{}, rec.type_id, rec.version, rec.payload};
  auto ce = to_cloudevent(stored);
  REQUIRE(ce.ok());
  CHECK((*ce)["data"] == nlohmann::json{{"redacted", true}, {"fields", {"password"}}});
  CHECK(ce->dump().find("c2VjcmV0") == std::string::npos);
}

TEST_CASE("request state round-trips in binary (the projection format)", "[events][codec]") {
  request_state s;
  s.id = "r";
  s.state = lifecycle_state::rolling_back;
  s.steps[1].status = step_status::failed;
  s.steps[1].started_at = timestamp{std::chrono::microseconds{-5}};
  s.resources.push_back(resource{"server", "s1", "n", step_kind::allocate, "k", true});
  s.endpoints["ssh"] = "x";
  s.version = 9;
  auto back = decode_binary<request_state>(encode_binary(s));
  REQUIRE(back.ok());
  CHECK(*back == s);
}

TEST_CASE("malformed payloads are corrupt, never a crash", "[events][codec]") {
  const auto rec = to_record(any_event{step_failed{step_kind::activate, 2, "c", "m", true}});
  for (std::size_t cut = 0; cut < rec.payload.size(); ++cut) {
    auto r = decode(rec.type_id, rec.version, rec.payload.substr(0, cut));
    CHECK_FALSE(r.ok());
  }
  CHECK_FALSE(decode(rec.type_id, rec.version, rec.payload + "x").ok());
  CHECK(decode(999, 1, "").err().code == errc::corrupt);
  CHECK(decode(rec.type_id, 9, rec.payload).err().code == errc::corrupt);
  // A huge declared string length must not allocate or read past the end.
  CHECK_FALSE(decode(cluster_assigned::info.id, 1, std::string("\xff\xff\xff\xff\x0f", 5)).ok());
  // An out-of-range enum value.
  CHECK_FALSE(decode(step_started::info.id, 1, std::string("\x09\x01\x00", 3)).ok());
}

TEST_CASE("JSON decoding names the offending field", "[events][codec]") {
  auto bad = from_json_value<step_started>(nlohmann::json{{"step", "sideways"}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.err().message == "$.step must be a known name");
  auto wrong = from_json_value<resource_spec>(nlohmann::json{{"cpuMillis", "many"}});
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.err().message == "$.cpuMillis must be an integer");
}
