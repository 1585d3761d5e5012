#include <catch2/catch.hpp>

#include "prov/kafka/command.hpp"

using namespace prov::kafka;
using nlohmann::json;

namespace {

json vps() {
  return json{{"type", "vps"},
              {"provider", "simulation"},
              {"region", "local"},
              {"spec", {{"cpu", 2}, {"memoryGb", 4}, {"storageGb", 40}, {"image", "debian-12"}}}};
}

rejected_command rejected(const parsed_command& p) {  // a copy: the argument is often a temporary
  REQUIRE(std::holds_alternative<rejected_command>(p));
  return std::get<rejected_command>(p);
}

command valid(const parsed_command& p) {
  if (const auto* r = std::get_if<rejected_command>(&p)) {
    FAIL("rejected: " << r->err.message);
  }
  return std::get<command>(p);
}

}  // namespace

TEST_CASE("kafka create command carries the POST body and an idempotency key", "[kafka][commands]") {
  const json j{{"type", "create"}, {"correlationId", "c1"}, {"idempotencyKey", "k1"}, {"tenant", "acme"}, {"request", vps()}};
  const auto& cmd = valid(parse_command(j.dump(), "acme"));
  CHECK(cmd.type == command_type::create);
  CHECK(cmd.correlation_id == "c1");
  CHECK(cmd.tenant == "acme");
  CHECK(cmd.submit.tenant == "acme");
  CHECK(cmd.submit.idempotency_key == "k1");
  CHECK(cmd.submit.region == "local");

  // The key may be absent; when given it must name the same tenant.
  CHECK(std::holds_alternative<command>(parse_command(j.dump(), "")));
  const auto& other = rejected(parse_command(j.dump(), "globex"));
  CHECK(other.err.code == prov::errc::forbidden);
  CHECK(other.correlation_id == "c1");
  CHECK_FALSE(other.poison);

  // No idempotency key: a replay would create a second request.
  json no_key = j;
  no_key.erase("idempotencyKey");
  CHECK(rejected(parse_command(no_key.dump(), "acme")).err.code == prov::errc::invalid_argument);
  // ...unless the body has one.
  no_key["request"]["idempotencyKey"] = "k2";
  CHECK(valid(parse_command(no_key.dump(), "acme")).submit.idempotency_key == "k2");

  // The body is validated as the HTTP API validates it.
  json bad = j;
  bad["request"]["spec"]["cpu"] = -1;
  const auto& r = rejected(parse_command(bad.dump(), "acme"));
  CHECK(r.err.code == prov::errc::invalid_argument);
  CHECK(r.err.message.rfind("request: ", 0) == 0);
}

TEST_CASE("kafka lifecycle commands name a request, reject needs a reason", "[kafka][commands]") {
  for (const auto* type : {"approve", "suspend", "reactivate", "deprovision", "cancel"}) {
    const json j{{"type", type}, {"correlationId", "c"}, {"requestId", "r-1"}};
    const auto& cmd = valid(parse_command(j.dump(), "acme"));
    CHECK(command_type_name(cmd.type) == type);
    CHECK(cmd.request_id == "r-1");
    CHECK(cmd.tenant == "acme");
  }
  const json reject{{"type", "reject"}, {"correlationId", "c"}, {"requestId", "r-1"}};
  CHECK(rejected(parse_command(reject.dump(), "")).err.code == prov::errc::invalid_argument);
  json with_reason = reject;
  with_reason["reason"] = "too big";
  CHECK(valid(parse_command(with_reason.dump(), "")).reason == "too big");

  const json manual{{"type", "manual-input"}, {"correlationId", "c"}, {"requestId", "r-1"},
                    {"input", {{"endpoints", {{"ssh", "10.0.0.1:22"}}}, {"credentials", {{"password", "x"}}}}}};
  const auto& m = valid(parse_command(manual.dump(), ""));
  CHECK(m.input.endpoints.at("ssh") == "10.0.0.1:22");
  CHECK(m.input.credentials.at("password") == "x");

  const json no_id{{"type", "approve"}, {"correlationId", "c"}};
  CHECK(rejected(parse_command(no_id.dump(), "")).err.code == prov::errc::invalid_argument);
  const json typo{{"type", "approve"}, {"correlationId", "c"}, {"requestId", "r-1"}, {"reqestId", "x"}};
  CHECK(rejected(parse_command(typo.dump(), "")).err.message.find("reqestId") != std::string::npos);
}

TEST_CASE("kafka malformed and unknown commands are rejected with what can be read of them", "[kafka][commands]") {
  SECTION("not JSON: poison, no payload in the message") {
    const auto& r = rejected(parse_command("{\"type\": secret-garbage", "acme"));
    CHECK(r.poison);
    CHECK(r.correlation_id == "unknown");
    CHECK(r.err.message.find("secret") == std::string::npos);
  }
  SECTION("not an object: poison") {
    CHECK(rejected(parse_command("[1,2,3]", "")).poison);
    CHECK(rejected(parse_command("", "")).poison);
  }
  SECTION("too large: poison") {
    const std::string big(70 * 1024, ' ');
    const auto& r = rejected(parse_command(big, ""));
    CHECK(r.poison);
    CHECK(r.err.code == prov::errc::payload_too_large);
  }
  SECTION("unknown type: rejected, correlation kept") {
    const auto& r = rejected(parse_command(R"({"type":"explode","correlationId":"c9","requestId":"r-2"})", ""));
    CHECK_FALSE(r.poison);
    CHECK(r.correlation_id == "c9");
    CHECK(r.type == "explode");
    CHECK(r.request_id == "r-2");
    CHECK(r.err.message.find("unknown command type") != std::string::npos);
  }
  SECTION("no correlation id") {
    const auto& r = rejected(parse_command(R"({"type":"approve","requestId":"r-2"})", ""));
    CHECK(r.correlation_id == "unknown");
    CHECK(r.err.code == prov::errc::invalid_argument);
  }
}

TEST_CASE("kafka command results render as the documented JSON", "[kafka][commands]") {
  command_result ok;
  ok.correlation_id = "c1";
  ok.type = "create";
  ok.request_id = "r-1";
  ok.state = prov::events::lifecycle_state::queued;
  ok.replayed = true;
  CHECK(to_json(ok) == json{{"correlationId", "c1"}, {"type", "create"}, {"status", "accepted"},
                            {"requestId", "r-1"}, {"state", "queued"}, {"replayed", true}});

  const auto r = result_of(rejected(parse_command(R"({"type":"approve","correlationId":"c2","requestId":"r-3"})" "x", "")));
  const auto j = to_json(r);
  CHECK(j["status"] == "rejected");
  CHECK(j["correlationId"] == "unknown");
  CHECK(j["error"]["code"] == "invalid_argument");
  CHECK(j["error"]["message"].is_string());
}
