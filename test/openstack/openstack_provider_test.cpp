// Contract tests of the OpenStack provider against a fake Keystone/Nova/Neutron/Cinder/Glance
// that answers as the documented APIs do and checks every request body against their schemas
// (see fake_openstack.hpp; the API reference pages are cited in fake_openstack.cpp). Every
// test that talks to the fake also asserts that no body was refused.

#include "prov/providers/openstack_provider.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include <catch2/catch.hpp>

#include "detail/openstack_objects.hpp"
#include "detail/openstack_session.hpp"
#include "fake_openstack.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/core/time_format.hpp"
#include "prov/providers/provider_factory.hpp"
#include "test_pki.hpp"
#include "test_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using prov::events::resource;
using prov::events::step_kind;
using prov::providers::openstack_credentials;
using prov::providers::openstack_provider;
using prov::providers::openstack_settings;
using prov::providers::release_call;
using prov::providers::service_call;
using prov::providers::step_call;
using prov::providers::step_outcome;
using prov::test::fake_openstack;
namespace os = prov::providers::openstack;

namespace {

const std::string request_id = "0190a4b2-7c1e-7d3a-9f00-1234567890ab";

/// Fast polling and short deadlines: the fake answers at once.
json fast_settings() {
  return {{"region", "RegionOne"},     {"image", "tiny-raw"},       {"network", "private"},
          {"externalNetwork", "public"}, {"verifyReachable", false},  {"pollIntervalMs", 1},
          {"volumeTimeoutMs", 5000},   {"portTimeoutMs", 5000},     {"activateTimeoutMs", 5000},
          {"deleteTimeoutMs", 5000},   {"powerTimeoutMs", 5000},    {"requestTimeoutMs", 5000}};
}

openstack_credentials password_credentials(const std::string& password = "secret") {
  openstack_credentials c;
  c.username = "admin";
  c.password = password;
  c.project = "admin";
  return c;
}

std::unique_ptr<openstack_provider> provider_for(const fake_openstack& cloud, const json& overrides = json::object(),
                                                 openstack_credentials creds = password_credentials(),
                                                 const prov::clock* clk = nullptr) {
  json s = fast_settings();
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    s[it.key()] = it.value();
  }
  auto parsed = openstack_settings::parse(s.dump());
  INFO((parsed.ok() ? "" : parsed.err().message));
  REQUIRE(parsed.ok());
  return std::make_unique<openstack_provider>("os-1", cloud.keystone(), *parsed, std::move(creds), clk);
}

step_call call_for(step_kind step, const std::vector<resource>& held = {}, std::uint32_t attempt = 1,
                   const std::string& id = request_id) {
  step_call c;
  c.request_id = id;
  c.tenant = "acme";
  c.type = prov::events::service_type::vps;
  c.step = step;
  c.attempt = attempt;
  c.idempotency_key =
      id + "/" + std::string{prov::events::step_kind_names[static_cast<std::size_t>(step)]} + "/" + std::to_string(attempt);
  c.spec.cpu_millis = 1000;
  c.spec.memory_mb = 2048;
  c.spec.storage_gb = 10;
  c.resources = held;
  return c;
}

void add(std::vector<resource>& held, const std::vector<resource>& more) {
  for (const auto& r : more) {
    if (std::none_of(held.begin(), held.end(), [&](const resource& x) { return x.kind == r.kind && x.id == r.id; })) {
      held.push_back(r);
    }
  }
}

step_outcome run(openstack_provider& p, step_kind step, std::vector<resource>& held, const std::string& id = request_id) {
  auto out = p.run_step(call_for(step, held, 1, id));
  INFO(prov::events::step_kind_names[static_cast<std::size_t>(step)] << ": " << out.error.code << " "
                                                                     << out.error.message);
  REQUIRE(out.ok);
  add(held, out.resources);
  return out;
}

std::vector<resource> provision(openstack_provider& p, const std::string& id = request_id) {
  std::vector<resource> held;
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify}) {
    run(p, step, held, id);
  }
  return held;
}

void roll_back(openstack_provider& p, const std::vector<resource>& held, const std::string& id = request_id) {
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    auto out = p.release(release_call{id, *it, id + "/release/" + it->kind + "/1"});
    INFO(it->kind << " " << it->id << ": " << out.error.message);
    REQUIRE(out.ok);
  }
  auto swept = p.sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

void require_valid_bodies(const fake_openstack& cloud) {
  INFO("violations:\n" << joined(cloud.violations()) << "log:\n" << joined(cloud.log()));
  CHECK(cloud.violations().empty());
}

std::string held_id(const std::vector<resource>& held, const std::string& kind) {
  for (const auto& r : held) {
    if (r.kind == kind) {
      return r.id;
    }
  }
  return {};
}

service_call service_for(const std::vector<resource>& held, const std::string& id = request_id) {
  service_call c;
  c.request_id = id;
  c.tenant = "acme";
  c.resources = held;
  return c;
}

/// A loopback port nobody listens on (bound, never listening, held).
unsigned short closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  // Kept bound (never listening) until the process ends: a connect is refused, and no test
  // running beside this one can take the port in the meantime (closing it here did let one).
  static std::vector<int> held;
  held.push_back(fd);
  return ntohs(a.sin_port);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings, credentials, registration

TEST_CASE("settings: defaults, required image and network, strict parsing", "[openstack][settings]") {
  auto s = openstack_settings::parse(R"({"image": "debian-12", "network": "private"})");
  REQUIRE(s.ok());
  CHECK(s->interface == "public");
  CHECK(s->boot_volume == prov::providers::openstack_boot_volume::cinder);
  CHECK(s->verify_reachable);
  CHECK(s->http_probe);
  CHECK(s->volume_size_gb == 0);
  CHECK(s->suspend_action == "stop");
  CHECK(s->compute_microversion == "2.79");

  auto all = openstack_settings::parse(
      R"({"region": "RegionOne", "interface": "internal", "image": "i", "flavor": "m1.small", "network": "n",
          "externalNetwork": "ext", "volumeSizeGb": 20, "verifyReachable": false, "httpProbe": false,
          "bootFromVolume": "nova-bdm", "namePrefix": "vps-", "keyName": "ops", "cloudInitCredentials": false,
          "loginUser": "debian", "suspendAction": "suspend", "sshPort": 2222, "httpProbePort": 8080,
          "pollIntervalMs": 2000, "activateTimeoutMs": 1000, "verifyTls": false})");
  REQUIRE(all.ok());
  CHECK(all->boot_volume == prov::providers::openstack_boot_volume::nova_bdm);
  CHECK(all->volume_size_gb == 20);
  CHECK(all->ssh_port == 2222);
  CHECK(all->poll_interval == 2000ms);
  CHECK_FALSE(all->verify_tls);

  for (const std::string bad : {R"({"network": "n"})", R"({"image": "i"})", R"({"image": "i", "network": "n", "colour": 1})",
                                R"({"image": "i", "network": "n", "bootFromVolume": "local"})",
                                R"({"image": "i", "network": "n", "interface": "private"})",
                                R"({"image": "i", "network": "n", "volumeSizeGb": -1})",
                                R"({"image": "i", "network": "n", "pollIntervalMs": 0})",
                                R"({"image": "i", "network": "n", "loginUser": "Root User"})",
                                R"({"image": "i", "network": "n", "suspendAction": "pause"})", "[1]", "not json"}) {
    INFO(bad);
    CHECK_FALSE(openstack_settings::parse(bad).ok());
  }
  CHECK(openstack_settings::parse(R"({"image": "i", "network": "n", "colour": 1})").err().message.find("colour") !=
        std::string::npos);
}

TEST_CASE("credentials: a password or an application credential, never echoed", "[openstack][settings]") {
  auto pw = openstack_credentials::parse(
      R"({"username": "svc", "password": "p4ss", "userDomain": "Corp", "project": "vps", "projectDomain": "Corp"})");
  REQUIRE(pw.ok());
  CHECK(pw->user_domain == "Corp");
  CHECK_FALSE(pw->uses_application_credential());
  auto defaults = openstack_credentials::parse(R"({"userId": "u1", "password": "p", "projectId": "p1"})");
  REQUIRE(defaults.ok());
  CHECK(defaults->user_domain == "Default");
  auto app = openstack_credentials::parse(R"({"applicationCredentialId": "id1", "applicationCredentialSecret": "s3"})");
  REQUIRE(app.ok());
  CHECK(app->uses_application_credential());

  for (const std::string bad :
       {R"({"username": "svc", "project": "vps"})", R"({"password": "topsecret", "project": "vps"})",
        R"({"username": "svc", "password": "topsecret"})", R"({"applicationCredentialId": "id1"})",
        R"({"applicationCredentialId": "id1", "applicationCredentialSecret": "topsecret", "password": "topsecret", "username": "u"})",
        R"({"username": "svc", "password": "topsecret", "project": "p", "token": "topsecret"})",
        R"({"username": "svc", "password": 5, "project": "p"})", "topsecret"}) {
    auto parsed = openstack_credentials::parse(bad);
    INFO(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().message.find("topsecret") == std::string::npos);
  }
}

TEST_CASE("the factory builds an OpenStack provider from a registered cluster", "[openstack][settings]") {
  fake_openstack cloud{{}};
  auto box = prov::secret_box::from_key(std::string(32, 'k'));
  REQUIRE(box.ok());
  prov::events::cluster_state c;
  c.id = "os-1";
  c.type = prov::events::provider_type::openstack;
  c.endpoint = cloud.keystone();
  json settings = fast_settings();
  c.settings_json = settings.dump();
  c.credentials_sealed = box->seal(R"({"username": "admin", "password": "secret", "project": "admin"})");
  prov::providers::provider_context ctx;
  ctx.secrets = &*box;
  CHECK(prov::providers::has_driver(prov::events::provider_type::openstack));
  auto p = prov::providers::make_provider(c, ctx);
  REQUIRE(p);
  CHECK(p->blocking());
  CHECK(p->test_connectivity().ok);

  c.settings_json = "{}";  // no image, no network
  auto misconfigured = prov::providers::make_provider(c, ctx);
  auto out = misconfigured->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "misconfigured");
  CHECK_FALSE(out.error.retryable);
  c.settings_json = settings.dump();
  c.credentials_sealed.clear();
  CHECK(prov::providers::make_provider(c, ctx)->run_step(call_for(step_kind::allocate)).error.code == "misconfigured");
}

// ---------------------------------------------------------------------------------------------
// Marks, names, bodies, errors

TEST_CASE("ownership marks: tags, metadata and descriptions round-trip", "[openstack][marks]") {
  CHECK(os::request_tag(request_id) == "provisiond-req-" + request_id);
  for (const auto& odd : std::vector<std::string>{"a/b,c", std::string(80, 'x'), ""}) {
    const auto tag = os::request_tag(odd);
    CHECK(tag.size() <= 60);
    CHECK(tag.find_first_of("/,") == std::string::npos);
    CHECK(tag == os::request_tag(odd));
  }
  CHECK(os::server_name("prov-", "r 1/x") == "prov-r-1-x");
  CHECK(os::volume_name("prov-", "r1") == "prov-r1-boot");

  const os::owner o{request_id, "acme", request_id + "/allocate/1", step_kind::allocate};
  const auto meta = os::metadata_for(o);
  auto back = os::owner_from_metadata(meta);
  REQUIRE(back);
  CHECK(back->request_id == request_id);
  CHECK(back->idempotency_key == request_id + "/allocate/1");
  const auto description = os::description_for(o);
  CHECK(description.size() <= 255);
  auto from_description = os::owner_from_description(description);
  REQUIRE(from_description);
  CHECK(from_description->tenant == "acme");
  CHECK(from_description->step == step_kind::allocate);
  CHECK_FALSE(os::owner_from_description("Default security group"));
  CHECK_FALSE(os::owner_from_description("provisiond not json"));
  CHECK_FALSE(os::owner_from_metadata(json{{"provisiond-request", request_id}}));  // no managed mark
  const os::owner long_one{request_id, std::string(200, 't'), std::string(200, 'k'), step_kind::configure};
  CHECK(os::description_for(long_one).size() <= 255);
  CHECK(os::owner_from_description(os::description_for(long_one))->request_id == request_id);

  CHECK(os::login_password("cluster-secret", "r1") == os::login_password("cluster-secret", "r1"));
  CHECK(os::login_password("cluster-secret", "r1") != os::login_password("cluster-secret", "r2"));
  CHECK(os::login_password("cluster-secret", "r1") != os::login_password("other-secret", "r1"));
  CHECK(os::login_password("cluster-secret", "r1").size() == 20);
  const auto config = os::cloud_config("cloud-user", "pw");
  CHECK(config.rfind("#cloud-config\n", 0) == 0);
  CHECK(config.find("plain_text_passwd: \"pw\"") != std::string::npos);
}

TEST_CASE("errors: each service's error body and status map to a clear provider error", "[openstack][errors]") {
  CHECK(os::error_detail(json::parse(R"({"badRequest": {"message": "Invalid flavorRef", "code": 400}})"), "") ==
        "Invalid flavorRef");
  CHECK(os::error_detail(json::parse(R"({"NeutronError": {"type": "OverQuota", "message": "Quota exceeded", "detail": ""}})"),
                         "") == "OverQuota: Quota exceeded");
  CHECK(os::error_detail(json::parse(R"({"error": {"code": 401, "message": "Unauthorized", "title": "x"}})"), "") ==
        "Unauthorized");
  CHECK(os::error_detail(nullptr, "<html>404 Not\nFound</html>") == "<html>404 Not Found</html>");

  const auto mapped = [](unsigned status, const std::string& body) {
    os::api_reply r;
    r.status = status;
    r.text = body;
    r.body = json::parse(body, nullptr, false);
    return os::status_error(r, "create server x");
  };
  struct row {
    unsigned status;
    std::string body;
    std::string code;
    bool retryable;
  };
  for (const auto& [status, body, code, retryable] : std::vector<row>{
           {400, R"({"badRequest": {"message": "bad"}})", "bad_request", false},
           {401, R"({"error": {"message": "no"}})", "unauthorized", false},
           {403, R"({"forbidden": {"message": "Quota exceeded for cores: Requested 4"}})", "quota_exceeded", false},
           {403, R"({"forbidden": {"message": "Policy doesn't allow"}})", "forbidden", false},
           {404, R"({"itemNotFound": {"message": "gone"}})", "not_found", false},
           {409, R"({"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources"}})", "quota_exceeded", false},
           {409, R"({"conflictingRequest": {"message": "task_state powering-off"}})", "conflict", true},
           {413, R"({"overLimit": {"message": "VolumeSizeExceedsAvailableQuota"}})", "quota_exceeded", false},
           {429, R"({"overLimit": {"message": "slow down"}})", "rate_limited", true},
           {500, R"({"computeFault": {"message": "oops"}})", "server_error", true},
           {503, "<html>Service Unavailable</html>", "server_error", true},
       }) {
    const auto e = mapped(status, body);
    INFO(status << " " << body << " -> " << e.code << ": " << e.message);
    CHECK(e.code == code);
    CHECK(e.retryable == retryable);
    CHECK(e.message.find("create server x: HTTP " + std::to_string(status)) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// The steps

TEST_CASE("the four steps: a group, a volume, a server with both, rules and a floating IP", "[openstack][steps]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  std::vector<resource> held;
  auto allocated = run(*p, step_kind::allocate, held);
  REQUIRE(held.size() == 3);
  CHECK(held[0].kind == "security_group");
  CHECK(held[1].kind == "volume");
  CHECK(held[2].kind == "server");
  CHECK(held[2].name == "prov-" + request_id);
  for (const auto& r : held) {
    CHECK(r.idempotency_key == request_id + "/allocate/1");
    CHECK(r.step == step_kind::allocate);
  }
  CHECK(allocated.credentials.at("username") == "cloud-user");
  CHECK(allocated.credentials.at("password") == os::login_password("secret", request_id));

  // What the cloud holds now, as the provider wrote it.
  const auto group = *cloud.object("security_groups", held[0].id);
  CHECK(os::owned_by(group, request_id));
  CHECK(group["tags"] == json::array({"provisiond", os::request_tag(request_id)}));
  const auto volume = *cloud.object("volumes", held[1].id);
  CHECK(volume["size"] == 10);  // the request's storageGb
  CHECK(volume["metadata"]["provisiond-request"] == request_id);
  const auto server = *cloud.object("servers", held[2].id);
  CHECK(server["flavor_id"] == "2");  // smallest flavor with 1 vCPU and 2048 MB
  CHECK(server["groups"] == json::array({held[0].id}));
  CHECK(server["volumes"][0]["id"] == held[1].id);
  CHECK(server["metadata"]["provisiond-key"] == request_id + "/allocate/1");
  CHECK(server["tags"] == json::array({"provisiond", os::request_tag(request_id)}));
  CHECK(cloud.count("POST", "/compute/v2.1/servers") == 1);

  auto configured = run(*p, step_kind::configure, held);
  REQUIRE(held.size() == 4);
  CHECK(held[3].kind == "floating_ip");
  CHECK(held[3].step == step_kind::configure);
  const auto fip = *cloud.object("floatingips", held[3].id);
  CHECK(fip["floating_network_id"] == fake_openstack::public_network_id);
  CHECK(fip["port_id"].is_string());
  CHECK(fip["tags"].size() == 2);
  CHECK(configured.endpoints.at("ssh") == "ssh://cloud-user@" + fip["floating_ip_address"].get<std::string>() + ":22");
  CHECK(configured.endpoints.at("floatingIp") == fip["floating_ip_address"]);
  CHECK(configured.endpoints.at("server") == held[2].id);
  int web_rules = 0;
  const auto rules = cloud.object("security_groups", held[0].id)->at("security_group_rules");
  for (const auto& rule : rules) {
    if (rule["direction"] == "ingress") {
      CHECK(rule["port_range_min"] == rule["port_range_max"]);
      CHECK(rule["remote_ip_prefix"] == "0.0.0.0/0");
      ++web_rules;
    }
  }
  CHECK(web_rules == 3);

  run(*p, step_kind::activate, held);
  run(*p, step_kind::verify, held);
  // The catalog's other interface and region (port 9) were never called.
  for (const auto& line : cloud.log()) {
    CHECK(line.find(":9/") == std::string::npos);
  }
  CHECK(cloud.tokens_issued() == 1);
  require_valid_bodies(cloud);

  roll_back(*p, held);
  INFO(joined(cloud.made()));
  CHECK(cloud.made().empty());
  require_valid_bodies(cloud);
}

TEST_CASE("nova-bdm: Nova makes the boot volume from the image, it goes with the server", "[openstack][steps]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud, {{"bootFromVolume", "nova-bdm"}, {"flavor", "m1.tiny"}, {"cloudInitCredentials", false}});
  std::vector<resource> held;
  auto allocated = run(*p, step_kind::allocate, held);
  CHECK(allocated.credentials.empty());
  CHECK(held_id(held, "volume").empty());
  CHECK(cloud.count("POST", "/volumes") == 0);
  const auto server = *cloud.object("servers", held_id(held, "server"));
  CHECK(server["flavor_id"] == "1");
  for (auto step : {step_kind::configure, step_kind::activate, step_kind::verify}) {
    run(*p, step, held);
  }
  roll_back(*p, held);
  CHECK(cloud.made().empty());
  require_valid_bodies(cloud);
}

TEST_CASE("configure waits for the server's port", "[openstack][steps]") {
  fake_openstack::options o;
  o.port_reads = 3;
  fake_openstack cloud{o};
  auto p = provider_for(cloud);
  auto held = provision(*p);
  CHECK(cloud.count("GET", "/network/v2.0/ports?device_id=") >= 4);
  require_valid_bodies(cloud);
}

TEST_CASE("per-request image and flavor from the spec's extra object", "[openstack][steps]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto c = call_for(step_kind::allocate);
  c.spec.extra_json = R"({"flavor": "m1.large"})";
  auto out = p->run_step(c);
  REQUIRE(out.ok);
  CHECK(cloud.object("servers", held_id(out.resources, "server"))->at("flavor_id") == "4");
  auto unknown_image = call_for(step_kind::allocate, {}, 1, "third");
  unknown_image.spec.extra_json = R"({"image": "no-such-image"})";
  auto bad = provider_for(cloud)->run_step(unknown_image);
  CHECK_FALSE(bad.ok);
  CHECK(bad.error.code == "bad_spec");
  CHECK_FALSE(bad.error.retryable);
  CHECK(bad.resources.empty());  // nothing made before the look-ups
  require_valid_bodies(cloud);
}

TEST_CASE("no flavor fits: a clear non-retryable error before anything is made", "[openstack][steps]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto c = call_for(step_kind::allocate);
  c.spec.cpu_millis = 64000;
  auto out = p->run_step(c);
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "bad_spec");
  CHECK(out.error.message.find("64000 mCPU") != std::string::npos);
  CHECK(cloud.made().empty());
}

// ---------------------------------------------------------------------------------------------
// Idempotency: adoption after a crash

TEST_CASE("a re-run with the same key adopts the group, volume, server and floating IP", "[openstack][adopt]") {
  fake_openstack cloud{{}};
  auto first = provider_for(cloud)->run_step(call_for(step_kind::allocate));
  REQUIRE(first.ok);
  // The engine crashed before recording: a new process repeats the call, knowing nothing.
  auto again = provider_for(cloud)->run_step(call_for(step_kind::allocate));
  REQUIRE(again.ok);
  REQUIRE(again.resources.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(again.resources[i].id == first.resources[i].id);
  }
  CHECK(again.credentials == first.credentials);
  CHECK(cloud.count("POST", "/network/v2.0/security-groups") == 1);
  CHECK(cloud.count("POST", "/volumes") == 1);
  CHECK(cloud.count("POST", "/compute/v2.1/servers") == 1);

  std::vector<resource> held = again.resources;
  auto c1 = provider_for(cloud)->run_step(call_for(step_kind::configure, held));
  REQUIRE(c1.ok);
  // A retry (attempt 2, a new key) finds the floating IP on the port and the rules in place.
  auto c2 = provider_for(cloud)->run_step(call_for(step_kind::configure, held, 2));
  REQUIRE(c2.ok);
  CHECK(c2.resources.at(0).id == c1.resources.at(0).id);
  CHECK(c2.resources.at(0).idempotency_key == request_id + "/configure/1");  // the call that made it
  CHECK(cloud.count("POST", "/floatingips") == 1);
  CHECK(cloud.count("POST", "/security-group-rules") == 3);
  // Configure without the journal's resources: the server and group are found by their marks.
  auto c3 = provider_for(cloud)->run_step(call_for(step_kind::configure, {}, 3));
  REQUIRE(c3.ok);
  CHECK(c3.resources.at(0).id == c1.resources.at(0).id);
  require_valid_bodies(cloud);
}

TEST_CASE("a floating IP of ours left unattached is associated again, not made twice", "[openstack][adopt]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto held = provision(*p);
  const auto fip = held_id(held, "floating_ip");
  auto stored = *cloud.object("floatingips", fip);
  stored["port_id"] = nullptr;
  cloud.put("floatingips", stored);
  auto again = p->run_step(call_for(step_kind::configure, held, 2));
  REQUIRE(again.ok);
  CHECK(again.resources.at(0).id == fip);
  CHECK(cloud.object("floatingips", fip)->at("port_id").is_string());
  CHECK(cloud.count("POST", "/floatingips") == 1);
  CHECK(cloud.count("PUT", "/floatingips/" + fip + " ->") == 1);  // the association (tags aside)
  require_valid_bodies(cloud);
}

TEST_CASE("409 on re-create is adoption: rules that exist, a floating IP made meanwhile", "[openstack][adopt][faults]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  std::vector<resource> held;
  run(*p, step_kind::allocate, held);
  // Neutron says every rule exists already (SecurityGroupRuleExists), and the first floating IP
  // create conflicts: both are outcomes of an earlier try, not failures.
  cloud.inject({"POST", "/security-group-rules", 409, "Security group rule already exists. Rule id is x.", false, 3});
  cloud.inject({"POST", "/floatingips", 409, "Cannot associate floating IP: that fixed IP already has one.", false, 1});
  run(*p, step_kind::configure, held);
  CHECK(cloud.count("POST", "/floatingips") == 2);
  CHECK(held_id(held, "floating_ip") != "");
  require_valid_bodies(cloud);
}

TEST_CASE("an object of someone else is never adopted", "[openstack][adopt]") {
  fake_openstack cloud{{}};
  // A group with our name but no marks, a server with our tag but no metadata.
  cloud.put("security_groups", {{"name", "prov-" + request_id},
                                {"description", "made by hand"},
                                {"project_id", "0f0e0d0c0b0a09080706050403020100"},
                                {"tags", json::array()},
                                {"security_group_rules", json::array()}});
  cloud.put("servers", {{"name", "prov-" + request_id},
                        {"status", "ACTIVE"},
                        {"metadata", json::object()},
                        {"tags", json::array({"provisiond", os::request_tag(request_id)})},
                        {"flavor_id", "1"},
                        {"volumes", json::array()}});
  const auto before = cloud.ids("servers");
  auto p = provider_for(cloud);
  auto held = provision(*p);
  CHECK(cloud.count("POST", "/network/v2.0/security-groups") == 1);
  CHECK(cloud.count("POST", "/compute/v2.1/servers") == 1);
  CHECK(std::find(before.begin(), before.end(), held_id(held, "server")) == before.end());
  roll_back(*p, held);
  CHECK(cloud.ids("servers") == before);  // the foreign server is still there
  require_valid_bodies(cloud);
}

// ---------------------------------------------------------------------------------------------
// Rollback, sweep, inventory

TEST_CASE("404 on delete is success: releasing what is already gone", "[openstack][rollback]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  for (const std::string kind : {"floating_ip", "server", "volume", "security_group", "unknown_kind"}) {
    auto out = p->release(release_call{request_id, resource{kind, "00000000-dead-4000-8000-000000000000", "", step_kind::allocate, "k", false}, "r"});
    INFO(kind << ": " << out.error.message);
    CHECK(out.ok);
  }
  // Gone behind our back after provisioning: the rollback still completes.
  auto held = provision(*p);
  cloud.remove("floatingips", held_id(held, "floating_ip"));
  cloud.remove("servers", held_id(held, "server"));
  roll_back(*p, held);
  INFO(joined(cloud.made()));
  CHECK(cloud.made().empty());
}

TEST_CASE("release waits for a busy volume and a group still in use, then reports it retryable",
          "[openstack][rollback]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud, {{"deleteTimeoutMs", 30}});
  auto held = provision(*p);
  auto volume = p->release(release_call{request_id, resource{"volume", held_id(held, "volume"), "", step_kind::allocate, "k", false}, "r"});
  CHECK_FALSE(volume.ok);
  CHECK(volume.error.code == "timeout");
  CHECK(volume.error.retryable);
  CHECK(volume.error.message.find("in-use") != std::string::npos);
  auto group = p->release(release_call{request_id, resource{"security_group", held_id(held, "security_group"), "", step_kind::allocate, "k", false}, "r"});
  CHECK_FALSE(group.ok);
  CHECK(group.error.retryable);
  CHECK(group.error.message.find("in use") != std::string::npos);
  roll_back(*p, held);  // in the right order it works
  CHECK(cloud.made().empty());
}

TEST_CASE("sweep alone finds and deletes everything marked with the request", "[openstack][rollback]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  provision(*p);
  provision(*p, "another-request");
  auto swept = provider_for(cloud)->sweep(request_id);
  REQUIRE(swept.ok);
  std::vector<std::string> kinds;
  for (const auto& r : swept.released) {
    kinds.push_back(r.kind);
    CHECK(r.released);
  }
  CHECK(kinds == std::vector<std::string>{"floating_ip", "server", "volume", "security_group"});
  // Only the other request's objects remain (and its port).
  auto inv = p->inventory();
  REQUIRE(inv.ok());
  CHECK(inv->size() == 4);
  for (const auto& item : *inv) {
    CHECK(item.request_id == "another-request");
  }
  auto again = p->sweep(request_id);
  CHECK(again.ok);
  CHECK(again.released.empty());
  require_valid_bodies(cloud);
}

TEST_CASE("inventory lists exactly what provisiond made, with request, key, step and suspension",
          "[openstack][inventory]") {
  fake_openstack cloud{{}};
  cloud.put("floatingips", {{"floating_ip_address", "203.0.113.99"},
                            {"description", ""},
                            {"port_id", nullptr},
                            {"project_id", "0f0e0d0c0b0a09080706050403020100"},
                            {"tags", json::array()}});
  cloud.put("volumes", {{"name", "data"}, {"status", "available"}, {"size", 1}, {"metadata", json::object()}});
  auto p = provider_for(cloud);
  auto held = provision(*p);
  auto inv = p->inventory();
  REQUIRE(inv.ok());
  std::map<std::string, prov::providers::inventory_item> by_kind;
  for (const auto& item : *inv) {
    by_kind[item.kind] = item;
  }
  REQUIRE(inv->size() == 4);
  CHECK(by_kind.at("server").id == held_id(held, "server"));
  CHECK(by_kind.at("server").idempotency_key == request_id + "/allocate/1");
  CHECK(by_kind.at("floating_ip").step == step_kind::configure);
  CHECK(by_kind.at("volume").created_at == *prov::parse_rfc3339("2030-01-01T00:00:00Z"));
  CHECK(by_kind.at("security_group").cluster == "os-1");
  for (const auto& item : *inv) {
    CHECK(item.request_id == request_id);
    CHECK_FALSE(item.suspended);
  }
  REQUIRE(p->suspend(service_for(held)).ok);
  auto after = p->inventory();
  REQUIRE(after.ok());
  for (const auto& item : *after) {
    CHECK(item.suspended);
  }
}

// ---------------------------------------------------------------------------------------------
// Authentication

TEST_CASE("tokens: renewed before expiry, issued again once on 401, then a clear error", "[openstack][auth]") {
  fake_openstack cloud{{}};
  prov::manual_clock clk;
  auto p = provider_for(cloud, json::object(), password_credentials(), &clk);
  std::vector<resource> held;
  run(*p, step_kind::allocate, held);
  CHECK(cloud.tokens_issued() == 1);
  clk.advance(50min);  // 1 h tokens are renewed 5 min before they expire
  run(*p, step_kind::configure, held);
  CHECK(cloud.tokens_issued() == 1);
  clk.advance(6min);
  run(*p, step_kind::activate, held);
  CHECK(cloud.tokens_issued() == 2);

  cloud.expire_tokens();  // revoked (or expired early): 401, one new token, the call repeated
  run(*p, step_kind::verify, held);
  CHECK(cloud.tokens_issued() == 3);

  cloud.refuse_all_tokens(true);
  auto refused = p->suspend(service_for(held));
  CHECK_FALSE(refused.ok);
  CHECK(refused.error.code == "unauthorized");
  CHECK_FALSE(refused.error.retryable);
  CHECK(cloud.tokens_issued() == 4);  // exactly one re-authentication
  require_valid_bodies(cloud);
}

TEST_CASE("application credentials authenticate without a scope", "[openstack][auth]") {
  fake_openstack cloud{{}};
  openstack_credentials app;
  app.application_credential_id = "appcred-1";
  app.application_credential_secret = "appcred-secret";
  auto p = provider_for(cloud, json::object(), app);
  auto held = provision(*p);
  const auto auth = cloud.last_auth();
  CHECK(auth["auth"]["identity"]["methods"] == json::array({"application_credential"}));
  CHECK_FALSE(auth["auth"].contains("scope"));
  // The login password derives from the application credential's secret.
  auto again = p->run_step(call_for(step_kind::allocate, held));
  CHECK(again.credentials.at("password") == os::login_password("appcred-secret", request_id));
  require_valid_bodies(cloud);
}

TEST_CASE("wrong credentials: a clear non-retryable error that never shows the password", "[openstack][auth]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud, json::object(), password_credentials("wrong-pa55word"));
  auto out = p->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "unauthorized");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.error.message.find("credentials were refused") != std::string::npos);
  CHECK(out.error.message.find("wrong-pa55word") == std::string::npos);
  auto report = p->test_connectivity();
  CHECK_FALSE(report.ok);
  CHECK(report.message.find("401") != std::string::npos);
}

TEST_CASE("connectivity: a token and the catalog, with latency, a missing service is named", "[openstack][auth]") {
  fake_openstack cloud{{}};
  auto report = provider_for(cloud)->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  CHECK(report.latency >= 0ms);
  CHECK(report.message.find("project admin") != std::string::npos);

  fake_openstack::options o;
  o.catalog_without_volume = true;
  fake_openstack partial{o};
  auto p = provider_for(partial);
  auto lacking = p->test_connectivity();
  CHECK_FALSE(lacking.ok);
  CHECK(lacking.message.find("volumev3") != std::string::npos);
  auto out = p->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "misconfigured");
  CHECK_FALSE(out.error.retryable);

  auto unreachable = std::make_unique<openstack_provider>(
      "os-x", "http://127.0.0.1:" + std::to_string(closed_port()) + "/v3", *openstack_settings::parse(fast_settings().dump()),
      password_credentials());
  auto down = unreachable->test_connectivity();
  CHECK_FALSE(down.ok);
  CHECK(down.message.find("auth/tokens") != std::string::npos);
}

TEST_CASE("TLS: an unknown CA is a clear non-retryable error, the cluster's CA makes it work", "[openstack][tls]") {
  const auto ca = prov::test::make_test_ca();
  fake_openstack::options o;
  o.tls = prov::test::make_server_identity(ca);
  fake_openstack cloud{o};
  auto untrusted = provider_for(cloud);
  auto out = untrusted->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "tls");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.error.message.find("certificate") != std::string::npos);
  CHECK_FALSE(untrusted->test_connectivity().ok);

  auto creds = password_credentials();
  creds.ca_pem = ca.cert_pem;
  auto trusted = provider_for(cloud, json::object(), creds);
  CHECK(trusted->test_connectivity().ok);
  auto held = provision(*trusted);
  roll_back(*trusted, held);
  CHECK(cloud.made().empty());
  require_valid_bodies(cloud);
}

// ---------------------------------------------------------------------------------------------
// Faults

TEST_CASE("5xx and 429 are retryable, a partial allocation is reported and the retry adopts it",
          "[openstack][faults]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  cloud.inject({"POST", "/compute/v2.1/servers", 500, "Unexpected API Error.", false, 1});
  auto failed = p->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(failed.ok);
  CHECK(failed.error.code == "server_error");
  CHECK(failed.error.retryable);
  CHECK(failed.error.message.find("Unexpected API Error") != std::string::npos);
  REQUIRE(failed.resources.size() == 2);  // group and volume exist: rollback must see them
  auto retried = p->run_step(call_for(step_kind::allocate, failed.resources, 2));
  REQUIRE(retried.ok);
  CHECK(retried.resources[0].id == failed.resources[0].id);
  CHECK(retried.resources[1].id == failed.resources[1].id);
  CHECK(cloud.count("POST", "/volumes") == 1);

  cloud.inject({"GET", "/flavors", 429, "Rate limit exceeded", false, 1});
  auto limited = p->run_step(call_for(step_kind::allocate, {}, 1, "r-429"));
  CHECK_FALSE(limited.ok);
  CHECK(limited.error.code == "rate_limited");
  CHECK(limited.error.retryable);

  cloud.inject({"GET", "/network/v2.0/ports", 503, "", false, 2});  // waited out while polling
  std::vector<resource> held = retried.resources;
  run(*p, step_kind::configure, held);
  require_valid_bodies(cloud);
}

TEST_CASE("timeouts are retryable and name the call", "[openstack][faults]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud, {{"requestTimeoutMs", 300}});
  cloud.inject({"POST", "/security-groups", 0, "", true, 1});
  auto out = p->run_step(call_for(step_kind::allocate));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "timeout");
  CHECK(out.error.retryable);
  CHECK(out.error.message.find("POST") != std::string::npos);
  CHECK(out.error.message.find("security-groups") != std::string::npos);
}

TEST_CASE("quota refusals are not retryable: Nova 403, Cinder 413, Neutron 409 OverQuota", "[openstack][faults]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  cloud.inject({"POST", "/compute/v2.1/servers", 403, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances", false, 1});
  auto nova = p->run_step(call_for(step_kind::allocate, {}, 1, "q-nova"));
  CHECK(nova.error.code == "quota_exceeded");
  CHECK_FALSE(nova.error.retryable);
  CHECK(nova.error.message.find("Quota exceeded for instances") != std::string::npos);

  cloud.inject({"POST", "/volumes", 413, "VolumeSizeExceedsAvailableQuota: Requested volume exceeds allowed gigabytes quota", false, 1});
  auto cinder = p->run_step(call_for(step_kind::allocate, {}, 1, "q-cinder"));
  CHECK(cinder.error.code == "quota_exceeded");
  CHECK_FALSE(cinder.error.retryable);

  cloud.inject({"POST", "/floatingips", 409, "Quota exceeded for resources: ['floatingip'].", false, 1});
  std::vector<resource> held;
  run(*p, step_kind::allocate, held, "q-neutron");
  auto neutron = p->run_step(call_for(step_kind::configure, held, 1, "q-neutron"));
  CHECK(neutron.error.code == "quota_exceeded");
  CHECK_FALSE(neutron.error.retryable);
}

TEST_CASE("400 on create is not retryable and carries the service's message", "[openstack][faults]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  cloud.inject({"POST", "/volumes", 400, "Invalid input received: image min_disk exceeds size", false, 1});
  auto out = p->run_step(call_for(step_kind::allocate));
  CHECK(out.error.code == "bad_request");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.error.message.find("image min_disk exceeds size") != std::string::npos);
  CHECK(out.resources.size() == 1);  // the group
}

TEST_CASE("a server going to ERROR fails non-retryably with Nova's fault", "[openstack][faults]") {
  SECTION("while activate waits for ACTIVE") {
    fake_openstack::options o;
    o.build_reads = 3;
    fake_openstack cloud{o};
    auto p = provider_for(cloud);
    std::vector<resource> held;
    run(*p, step_kind::allocate, held);
    run(*p, step_kind::configure, held);
    cloud.set_server_fault("No valid host was found. There are not enough hosts available.");
    auto out = p->run_step(call_for(step_kind::activate, held));
    CHECK_FALSE(out.ok);
    CHECK(out.error.code == "server_error");
    CHECK_FALSE(out.error.retryable);
    CHECK(out.error.message.find("No valid host was found") != std::string::npos);
    roll_back(*p, held);
    CHECK(cloud.made().empty());
  }
  SECTION("while configure waits for the port") {
    fake_openstack::options o;
    o.server_fault = "Build of instance aborted: Volume attach failed.";
    fake_openstack cloud{o};
    auto p = provider_for(cloud);
    std::vector<resource> held;
    run(*p, step_kind::allocate, held);
    auto out = p->run_step(call_for(step_kind::configure, held));
    CHECK_FALSE(out.ok);
    CHECK(out.error.code == "server_error");
    CHECK_FALSE(out.error.retryable);
    CHECK(out.error.message.find("Volume attach failed") != std::string::npos);
    roll_back(*p, held);
    CHECK(cloud.made().empty());
  }
}

TEST_CASE("activate: 5xx while polling is waited out, a server that never comes up times out retryably",
          "[openstack][faults]") {
  fake_openstack::options o;
  o.build_reads = 2;
  fake_openstack cloud{o};
  auto p = provider_for(cloud);
  std::vector<resource> held;
  run(*p, step_kind::allocate, held);
  run(*p, step_kind::configure, held);
  cloud.inject({"GET", "/compute/v2.1/servers/", 502, "", false, 2});
  run(*p, step_kind::activate, held);

  fake_openstack::options slow;
  slow.build_reads = 1'000'000;
  fake_openstack stuck{slow};
  auto q = provider_for(stuck, {{"activateTimeoutMs", 20}});
  std::vector<resource> h2;
  run(*q, step_kind::allocate, h2);
  auto out = q->run_step(call_for(step_kind::activate, h2));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "timeout");
  CHECK(out.error.retryable);
  CHECK(out.error.message.find("BUILD") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Verify, suspend, reactivate, metrics

TEST_CASE("verify by the API: bound port in our group with the floating IP, drift is reported",
          "[openstack][verify]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto held = provision(*p);
  const auto fip = *cloud.object("floatingips", held_id(held, "floating_ip"));
  auto port = *cloud.object("ports", fip["port_id"].get<std::string>());
  port["binding:vif_type"] = "binding_failed";
  cloud.put("ports", port);
  auto out = p->run_step(call_for(step_kind::verify, held));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "not_bound");
  port["binding:vif_type"] = "ovs";
  port["security_groups"] = json::array();
  cloud.put("ports", port);
  out = p->run_step(call_for(step_kind::verify, held));
  CHECK(out.error.code == "drift");
  CHECK(out.error.message.find("security group") != std::string::npos);
  port["security_groups"] = json::array({held_id(held, "security_group")});
  cloud.put("ports", port);
  cloud.set_server_status(held_id(held, "server"), "SHUTOFF");
  out = p->run_step(call_for(step_kind::verify, held));
  CHECK(out.error.code == "not_active");
  require_valid_bodies(cloud);
}

TEST_CASE("verify over the network: a TCP connect to the SSH port and an HTTP probe", "[openstack][verify]") {
  // The guest is this machine: the floating IP is 127.0.0.1, "ssh" and "http" are local servers.
  prov::test::test_server ssh{[](const prov::test::served_request&) { return prov::test::served_response{}; }};
  prov::test::test_server web{[](const prov::test::served_request&) {
    prov::test::served_response r;
    r.status = 404;  // any HTTP answer shows the guest is reachable
    return r;
  }};
  fake_openstack::options o;
  o.floating_ip_fixed = "127.0.0.1";
  fake_openstack cloud{o};
  auto p = provider_for(cloud, {{"verifyReachable", true}, {"sshPort", ssh.port()}, {"httpProbePort", web.port()}});
  auto held = provision(*p);
  CHECK(ssh.accepted_within(1, std::chrono::seconds{10}));  // the check only connects
  CHECK(web.requests_served() == 1);

  auto closed = provider_for(cloud, {{"verifyReachable", true}, {"sshPort", closed_port()}, {"verifyTimeoutMs", 20}});
  auto out = closed->run_step(call_for(step_kind::verify, held));
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "unreachable");
  CHECK(out.error.retryable);
  auto no_web = provider_for(cloud, {{"verifyReachable", true}, {"sshPort", ssh.port()}, {"httpProbePort", closed_port()}});
  out = no_web->run_step(call_for(step_kind::verify, held));
  CHECK(out.error.code == "unreachable");
  CHECK(out.error.message.find("HTTP probe") != std::string::npos);
  auto ssh_only = provider_for(cloud, {{"verifyReachable", true}, {"sshPort", ssh.port()}, {"httpProbe", false},
                                       {"httpProbePort", closed_port()}});
  CHECK(ssh_only->run_step(call_for(step_kind::verify, held)).ok);
}

TEST_CASE("suspend and reactivate: os-stop and os-start, idempotent, or suspend and resume", "[openstack][power]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto held = provision(*p);
  const auto server = held_id(held, "server");
  REQUIRE(p->suspend(service_for(held)).ok);
  CHECK(cloud.object("servers", server)->at("status") == "SHUTOFF");
  REQUIRE(p->suspend(service_for(held)).ok);
  CHECK(cloud.count("POST", "/servers/" + server + "/action") == 1);  // already stopped: nothing sent
  REQUIRE(p->reactivate(service_for(held)).ok);
  CHECK(cloud.object("servers", server)->at("status") == "ACTIVE");
  REQUIRE(p->reactivate(service_for(held)).ok);
  CHECK(cloud.count("POST", "/servers/" + server + "/action") == 2);

  auto q = provider_for(cloud, {{"suspendAction", "suspend"}});
  REQUIRE(q->suspend(service_for(held)).ok);
  CHECK(cloud.object("servers", server)->at("status") == "SUSPENDED");
  REQUIRE(q->reactivate(service_for(held)).ok);
  CHECK(cloud.object("servers", server)->at("status") == "ACTIVE");

  cloud.remove("servers", server);
  auto gone = p->suspend(service_for(held));
  CHECK_FALSE(gone.ok);
  CHECK(gone.error.code == "not_found");
  require_valid_bodies(cloud);
}

TEST_CASE("metrics: server diagnostics where allowed, the server record otherwise", "[openstack][metrics]") {
  fake_openstack cloud{{}};
  auto p = provider_for(cloud);
  auto held = provision(*p);
  auto m = p->metrics(service_for(held));
  INFO(m.error.message);
  REQUIRE(m.ok);
  CHECK(m.cpu_percent == Approx(20.0));
  CHECK(m.memory_used_mb == Approx(1024.0));
  CHECK(m.network_rx_bytes == Approx(4408.0));
  CHECK(m.network_tx_bytes == Approx(1464.0));
  CHECK(m.extra.at("disk_write_bytes") == Approx(5778432.0));
  CHECK(m.extra.at("uptime_s") == Approx(46664.0));
  CHECK(m.extra.at("diagnostics") == 1);
  CHECK(m.extra.at("volume_gb") == 10);

  fake_openstack::options o;
  o.diagnostics = false;
  fake_openstack restricted{o};
  auto q = provider_for(restricted);
  auto h2 = provision(*q);
  auto fallback = q->metrics(service_for(h2));
  REQUIRE(fallback.ok);
  CHECK_FALSE(fallback.cpu_percent);
  CHECK_FALSE(fallback.memory_used_mb);
  CHECK(fallback.extra.at("diagnostics") == 0);
  CHECK(fallback.extra.at("vcpus") == 1);
  CHECK(fallback.extra.at("flavor_ram_mb") == 2048);
  CHECK(fallback.extra.at("powered_on") == 1);
  CHECK(fallback.extra.count("uptime_s") == 1);

  restricted.remove("servers", held_id(h2, "server"));
  auto gone = q->metrics(service_for(h2));
  CHECK_FALSE(gone.ok);
  CHECK(gone.error.code == "not_found");
}

TEST_CASE("other service types are not OpenStack's", "[openstack][steps]") {
  fake_openstack cloud{{}};
  auto c = call_for(step_kind::allocate);
  c.type = prov::events::service_type::namespace_;
  auto out = provider_for(cloud)->run_step(c);
  CHECK_FALSE(out.ok);
  CHECK(out.error.code == "unsupported");
  CHECK_FALSE(out.error.retryable);
  CHECK(cloud.log().empty());
}
