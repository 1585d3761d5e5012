#include "fake_openstack.hpp"

#include <algorithm>
#include <regex>

#include "prov/core/secret_box.hpp"
#include "prov/core/time_format.hpp"

// What the fake follows (OpenStack API references, Zed):
//   Keystone tokens       https://docs.openstack.org/api-ref/identity/v3/#password-authentication-with-scoped-authorization
//   application creds     https://docs.openstack.org/api-ref/identity/v3/#authenticating-with-an-application-credential
//   Nova servers          https://docs.openstack.org/api-ref/compute/#create-server (schema: nova/api/openstack/
//                         compute/schemas/servers.py, metadata and tag patterns in nova/api/validation/parameter_types.py)
//   Nova list filters     https://docs.openstack.org/api-ref/compute/#list-servers-detailed (tags, 2.26)
//   Nova actions          https://docs.openstack.org/api-ref/compute/#stop-server-os-stop-action and following
//   Nova diagnostics      https://docs.openstack.org/api-ref/compute/#show-server-diagnostics (2.48 format)
//   Nova faults           https://docs.openstack.org/api-guide/compute/faults.html
//   Neutron groups/rules  https://docs.openstack.org/api-ref/network/v2/#security-groups-security-groups
//   Neutron floating IPs  https://docs.openstack.org/api-ref/network/v2/#floating-ips-floatingips
//   Neutron tags          https://docs.openstack.org/api-ref/network/v2/#replace-all-tags
//   Neutron errors        https://docs.openstack.org/api-ref/network/v2/#response-codes (NeutronError bodies)
//   Cinder volumes        https://docs.openstack.org/api-ref/block-storage/v3/#volumes-volumes
//   Glance images         https://docs.openstack.org/api-ref/image/v2/#list-images

namespace prov::test {

using json = nlohmann::json;

namespace {

constexpr const char* created_z = "2030-01-01T00:00:00Z";
constexpr const char* created_cinder = "2030-01-01T00:00:00.000000";  // Cinder leaves out the zone

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(const std::string& q) {
  std::map<std::string, std::string> out;
  std::size_t at = 0;
  while (at < q.size()) {
    auto amp = q.find('&', at);
    if (amp == std::string::npos) {
      amp = q.size();
    }
    const auto pair = q.substr(at, amp - at);
    const auto eq = pair.find('=');
    if (eq != std::string::npos) {
      out[url_decode(pair.substr(0, eq))] = url_decode(pair.substr(eq + 1));
    }
    at = amp + 1;
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    auto next = s.find(sep, at);
    if (next == std::string::npos) {
      next = s.size();
    }
    out.push_back(s.substr(at, next - at));
    at = next + 1;
  }
  return out;
}

/// Keys of `object` outside `allowed` ("" = none).
std::string unknown_keys(const json& object, std::initializer_list<const char*> allowed) {
  std::string out;
  for (const auto& [key, value] : object.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      out += (out.empty() ? "" : ", ") + key;
    }
  }
  return out;
}

bool string_max(const json& object, const char* key, std::size_t max) {
  return !object.contains(key) || (object[key].is_string() && object[key].get<std::string>().size() <= max);
}

/// Nova's metadata schema: keys ^[a-zA-Z0-9-_:. ]{1,255}$, values strings of at most 255.
std::string metadata_problem(const json& m) {
  static const std::regex key_pattern{"^[a-zA-Z0-9\\-_:. ]{1,255}$"};
  if (!m.is_object()) {
    return "metadata must be an object";
  }
  for (const auto& [key, value] : m.items()) {
    if (!std::regex_match(key, key_pattern)) {
      return "metadata key '" + key + "' does not match ^[a-zA-Z0-9-_:. ]{1,255}$";
    }
    if (!value.is_string() || value.get<std::string>().size() > 255) {
      return "metadata value of '" + key + "' must be a string of at most 255 characters";
    }
  }
  return {};
}

json service_error(const std::string& service, unsigned status, const std::string& message) {
  if (status == 401) {
    return {{"error", {{"code", 401}, {"title", "Unauthorized"}, {"message", message}}}};
  }
  if (service == "network") {
    std::string type = "NeutronError";
    switch (status) {
      case 400: type = "HTTPBadRequest"; break;
      case 404: type = "NotFound"; break;
      case 409: type = "Conflict"; break;
      case 503: type = "ServiceUnavailable"; break;
      default: break;
    }
    return {{"NeutronError", {{"type", type}, {"message", message}, {"detail", ""}}}};
  }
  std::string name = "computeFault";
  switch (status) {
    case 400: name = "badRequest"; break;
    case 403: name = "forbidden"; break;
    case 404: name = "itemNotFound"; break;
    case 409: name = "conflictingRequest"; break;
    case 413:
    case 429: name = "overLimit"; break;
    case 503: name = "serviceUnavailable"; break;
    default: break;
  }
  return {{name, {{"message", message}, {"code", status}}}};
}

served_response reply(unsigned status, const json& body) {
  served_response r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}};
  r.body = body.dump();
  return r;
}

served_response no_content(unsigned status = 204) {
  served_response r;
  r.status = status;
  return r;
}

}  // namespace

fake_openstack::fake_openstack(options o)
    : _options(std::move(o)), _server([this](const served_request& in) { return handle(in); }, _options.tls) {
  auto seed = [&](const std::string& collection, json object) {
    const std::string id = object["id"].get<std::string>();
    _store[collection][id] = std::move(object);
    _seeded.insert(collection + "/" + id);
  };
  seed("flavors", {{"id", "1"}, {"name", "m1.tiny"}, {"vcpus", 1}, {"ram", 512}, {"disk", 1}});
  seed("flavors", {{"id", "2"}, {"name", "m1.small"}, {"vcpus", 1}, {"ram", 2048}, {"disk", 20}});
  seed("flavors", {{"id", "3"}, {"name", "m1.medium"}, {"vcpus", 2}, {"ram", 4096}, {"disk", 40}});
  seed("flavors", {{"id", "4"}, {"name", "m1.large"}, {"vcpus", 4}, {"ram", 8192}, {"disk", 80}});
  seed("images", {{"id", image_id},
                  {"name", "tiny-raw"},
                  {"status", "active"},
                  {"min_disk", 0},
                  {"size", 1048576},
                  {"disk_format", "raw"}});
  seed("networks", {{"id", private_network_id},
                    {"name", "private"},
                    {"router:external", false},
                    {"project_id", _options.project_id}});
  seed("networks", {{"id", public_network_id}, {"name", "public"}, {"router:external", true}, {"project_id", "other"}});
  seed("security_groups", {{"id", "aaaaaaaa-0000-4000-8000-0000000000df"},
                           {"name", "default"},
                           {"description", "Default security group"},
                           {"project_id", _options.project_id},
                           {"tags", json::array()},
                           {"security_group_rules", json::array()},
                           {"created_at", created_z}});
}

fake_openstack::~fake_openstack() { _server.stop(); }

std::string fake_openstack::base() const { return _server.url(""); }
std::string fake_openstack::keystone() const { return _server.url("/identity/v3"); }

void fake_openstack::expire_tokens() {
  std::lock_guard lock{_mutex};
  _valid_tokens.clear();
}

void fake_openstack::refuse_all_tokens(bool refuse) {
  std::lock_guard lock{_mutex};
  _refuse_tokens = refuse;
}

void fake_openstack::inject(fault f) {
  std::lock_guard lock{_mutex};
  _faults.push_back(std::move(f));
}

void fake_openstack::set_server_fault(std::string message) {
  std::lock_guard lock{_mutex};
  _options.server_fault = std::move(message);
}

std::string fake_openstack::put(const std::string& collection, json object) {
  std::lock_guard lock{_mutex};
  if (!object.contains("id")) {
    object["id"] = new_id();
  }
  const auto id = object["id"].get<std::string>();
  _store[collection][id] = std::move(object);
  return id;
}

void fake_openstack::set_server_status(const std::string& id, const std::string& status) {
  std::lock_guard lock{_mutex};
  _store["servers"][id]["status"] = status;
  _reads.erase("build/" + id);
}

void fake_openstack::remove(const std::string& collection, const std::string& id) {
  std::lock_guard lock{_mutex};
  if (collection == "servers" && _store["servers"].count(id) > 0) {
    delete_server_now(id);  // what a completed delete leaves behind: ports gone, volumes freed
    for (const auto& vol : _store["servers"][id]["volumes"]) {
      if (vol["delete_on_termination"].get<bool>()) {
        _store["volumes"].erase(vol["id"].get<std::string>());
      }
    }
  }
  _store[collection].erase(id);
}

std::optional<json> fake_openstack::object(const std::string& collection, const std::string& id) const {
  std::lock_guard lock{_mutex};
  auto c = _store.find(collection);
  if (c == _store.end()) {
    return std::nullopt;
  }
  auto it = c->second.find(id);
  if (it == c->second.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::string> fake_openstack::ids(const std::string& collection) const {
  std::lock_guard lock{_mutex};
  std::vector<std::string> out;
  if (auto c = _store.find(collection); c != _store.end()) {
    for (const auto& [id, object] : c->second) {
      out.push_back(id);
    }
  }
  return out;
}

std::vector<std::string> fake_openstack::made() const {
  std::lock_guard lock{_mutex};
  std::vector<std::string> out;
  for (const auto& [collection, objects] : _store) {
    for (const auto& [id, object] : objects) {
      if (_seeded.count(collection + "/" + id) == 0 && collection != "security_group_rules") {
        out.push_back(collection + "/" + id);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t fake_openstack::tokens_issued() const {
  std::lock_guard lock{_mutex};
  return _tokens;
}

json fake_openstack::last_auth() const {
  std::lock_guard lock{_mutex};
  return _last_auth;
}

std::vector<std::string> fake_openstack::violations() const {
  std::lock_guard lock{_mutex};
  return _violations;
}

std::vector<std::string> fake_openstack::log() const {
  std::lock_guard lock{_mutex};
  return _log;
}

std::size_t fake_openstack::count(const std::string& method, const std::string& path_contains) const {
  std::lock_guard lock{_mutex};
  std::size_t n = 0;
  for (const auto& line : _log) {
    if (line.rfind(method + " ", 0) == 0 && line.find(path_contains) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

std::string fake_openstack::new_id() {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llu", static_cast<unsigned long long>(_next++));
  return buf;
}

std::string fake_openstack::next_fixed_ip() { return "10.0.0." + std::to_string(_next_ip++); }

served_response fake_openstack::bad(const std::string& service, unsigned status, const std::string& message,
                                    const std::string& where) {
  if (status == 400 && !where.empty()) {
    _violations.push_back(where + ": " + message);
  }
  return reply(status, service_error(service, status, message));
}

// ---------------------------------------------------------------------------------------------

served_response fake_openstack::handle(const served_request& in) {
  std::lock_guard lock{_mutex};
  const auto q = in.target.find('?');
  const std::string path = in.target.substr(0, q);
  const auto query = q == std::string::npos ? std::map<std::string, std::string>{} : parse_query(in.target.substr(q + 1));
  const std::string service = path.rfind("/identity", 0) == 0  ? "identity"
                              : path.rfind("/compute", 0) == 0 ? "compute"
                              : path.rfind("/network", 0) == 0 ? "network"
                              : path.rfind("/volume", 0) == 0  ? "volume"
                                                               : "image";
  served_response out;
  bool answered = false;
  for (auto it = _faults.begin(); it != _faults.end(); ++it) {
    if ((it->method.empty() || it->method == in.method) && in.target.find(it->path_contains) != std::string::npos) {
      if (it->hang) {
        out.hang = true;
      } else {
        out = reply(it->status, service_error(service, it->status,
                                              it->message.empty() ? "injected fault " + std::to_string(it->status)
                                                                  : it->message));
      }
      if (--it->times <= 0) {
        _faults.erase(it);
      }
      answered = true;
      break;
    }
  }
  if (!answered) {
    if (service == "identity") {
      out = identity(in, path.substr(std::string{"/identity"}.size()));
    } else if (_refuse_tokens || _valid_tokens.count(in.header("x-auth-token")) == 0) {
      out = reply(401, service_error(service, 401, "The request you have made requires authentication."));
    } else if (service == "compute") {
      out = compute(in, path.substr(std::string{"/compute/v2.1"}.size()), query);
    } else if (service == "network") {
      if (path.rfind("/network/v2.0/", 0) != 0) {
        out = bad("network", 404, "The resource could not be found.", "");
      } else {
        out = network(in, path.substr(std::string{"/network/v2.0"}.size()), query);
      }
    } else if (service == "volume") {
      const std::string prefix = "/volume/v3/" + _options.project_id;
      if (path.rfind(prefix, 0) != 0) {
        out = bad("volume", 404, "wrong project in the volume URL", "");
      } else {
        out = volume(in, path.substr(prefix.size()), query);
      }
    } else {
      out = image(in, path, query);
    }
  }
  _log.push_back(in.method + " " + in.target + " -> " + (out.hang ? std::string{"(no answer)"} : std::to_string(out.status)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keystone

served_response fake_openstack::identity(const served_request& in, const std::string& path) {
  if (in.method != "POST" || path != "/v3/auth/tokens") {
    return bad("identity", 404, "The resource could not be found.");
  }
  const json body = json::parse(in.body, nullptr, false);
  const std::string where = "POST /v3/auth/tokens";
  _last_auth = body;
  const auto unauthorized = [&] {
    return reply(401, service_error("identity", 401, "The request you have made requires authentication."));
  };
  if (!body.is_object() || !body.contains("auth") || !body["auth"].is_object() || !body["auth"].contains("identity")) {
    _violations.push_back(where + ": no auth.identity");
    return reply(400, service_error("identity", 400, "auth.identity is required"));
  }
  const json& auth = body["auth"];
  const json& identity = auth["identity"];
  const json methods = identity.value("methods", json::array());
  if (methods == json::array({"password"})) {
    const json user = identity.contains("password") ? identity["password"].value("user", json::object()) : json::object();
    const bool by_name = user.contains("name") && user.contains("domain") && user["domain"].contains("name");
    if (!user.contains("password") || !(by_name || user.contains("id"))) {
      _violations.push_back(where + ": password.user needs password and name+domain.name or id");
      return reply(400, service_error("identity", 400, "Invalid user"));
    }
    const json project = auth.contains("scope") ? auth["scope"].value("project", json::object()) : json::object();
    const bool project_by_name = project.contains("name") && project.contains("domain") && project["domain"].contains("name");
    if (!(project_by_name || project.contains("id"))) {
      _violations.push_back(where + ": scope.project needs name+domain.name or id");
      return reply(400, service_error("identity", 400, "Invalid scope"));
    }
    if (user.value("name", "") != _options.username || user["password"] != _options.password ||
        (project_by_name && project["name"] != _options.project)) {
      return unauthorized();
    }
  } else if (methods == json::array({"application_credential"})) {
    const json cred = identity.value("application_credential", json::object());
    if (!cred.contains("id") || !cred.contains("secret") || auth.contains("scope")) {
      _violations.push_back(where + ": application_credential needs id and secret and no scope");
      return reply(400, service_error("identity", 400, "Invalid application credential"));
    }
    if (cred["id"] != _options.app_credential_id || cred["secret"] != _options.app_credential_secret) {
      return unauthorized();
    }
  } else {
    _violations.push_back(where + ": unsupported methods " + methods.dump());
    return reply(400, service_error("identity", 400, "unsupported auth methods"));
  }
  ++_tokens;
  const std::string token = "tok-" + std::to_string(_tokens);
  _valid_tokens.insert(token);
  const timestamp issued = *parse_rfc3339("2030-01-01T00:00:00Z");
  const std::string b = base();
  const auto endpoints = [&](const std::string& public_url) {
    // Wrong interface and wrong region first: a client that does not filter picks them.
    return json::array({{{"interface", "internal"}, {"region_id", "RegionOne"}, {"region", "RegionOne"}, {"url", "http://127.0.0.1:9/internal"}},
                        {{"interface", "public"}, {"region_id", "RegionTwo"}, {"region", "RegionTwo"}, {"url", "http://127.0.0.1:9/other-region"}},
                        {{"interface", "public"}, {"region_id", "RegionOne"}, {"region", "RegionOne"}, {"url", public_url}}});
  };
  json catalog = json::array({{{"type", "compute"}, {"name", "nova"}, {"endpoints", endpoints(b + "/compute/v2.1")}},
                              {{"type", "network"}, {"name", "neutron"}, {"endpoints", endpoints(b + "/network")}},
                              {{"type", "image"}, {"name", "glance"}, {"endpoints", endpoints(b + "/image")}},
                              {{"type", "identity"}, {"name", "keystone"}, {"endpoints", endpoints(b + "/identity/v3")}}});
  if (!_options.catalog_without_volume) {
    catalog.push_back({{"type", "volumev3"},
                       {"name", "cinderv3"},
                       {"endpoints", endpoints(b + "/volume/v3/" + _options.project_id)}});
  }
  json out{{"token",
            {{"methods", methods},
             {"issued_at", format_rfc3339(issued, 6)},
             {"expires_at", format_rfc3339(issued + _options.token_lifetime, 6)},
             {"user", {{"id", "u-0001"}, {"name", _options.username}}},
             {"project", {{"id", _options.project_id}, {"name", _options.project}}},
             {"catalog", catalog}}}};
  auto r = reply(201, out);
  r.headers.emplace_back("X-Subject-Token", token);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Nova

json fake_openstack::server_view(const json& s) const {
  json v{{"id", s["id"]},
         {"name", s["name"]},
         {"status", s["status"]},
         {"metadata", s["metadata"]},
         {"tags", s["tags"]},
         {"created", created_z},
         {"description", s.value("description", "")},
         {"OS-EXT-STS:task_state", s.value("deleting", false) ? json("deleting") : json(nullptr)},
         {"OS-EXT-STS:power_state", s["status"] == "ACTIVE" ? 1 : (s["status"] == "BUILD" ? 0 : 4)},
         {"OS-SRV-USG:launched_at", s["status"] == "BUILD" ? json(nullptr) : json("2030-01-01T00:00:00.000000")},
         {"addresses", json::object()}};
  const auto& flavors = _store.at("flavors");
  if (auto f = flavors.find(s["flavor_id"].get<std::string>()); f != flavors.end()) {
    v["flavor"] = {{"vcpus", f->second["vcpus"]},
                   {"ram", f->second["ram"]},
                   {"disk", f->second["disk"]},
                   {"original_name", f->second["name"]}};
  }
  json attached = json::array();
  for (const auto& vol : s["volumes"]) {
    attached.push_back({{"id", vol["id"]}, {"delete_on_termination", vol["delete_on_termination"]}});
  }
  v["os-extended-volumes:volumes_attached"] = attached;
  if (s.contains("fault")) {
    v["fault"] = s["fault"];
  }
  return v;
}

served_response fake_openstack::create_server(const json& body) {
  const std::string where = "POST /servers";
  if (!body.is_object() || !body.contains("server") || !body["server"].is_object()) {
    return bad("compute", 400, "Invalid input: 'server' is a required property", where);
  }
  const json& s = body["server"];
  if (auto extra = unknown_keys(s, {"name", "flavorRef", "imageRef", "networks", "security_groups",
                                    "block_device_mapping_v2", "metadata", "tags", "user_data", "key_name",
                                    "description", "adminPass", "availability_zone", "config_drive"});
      !extra.empty()) {
    return bad("compute", 400, "Additional properties are not allowed (" + extra + " were unexpected)", where);
  }
  if (!s.contains("name") || !s["name"].is_string() || s["name"].get<std::string>().empty() ||
      s["name"].get<std::string>().size() > 255) {
    return bad("compute", 400, "name must be a string of 1 to 255 characters", where);
  }
  if (s.contains("imageRef")) {
    return bad("compute", 400, "a server booted from a volume sends no imageRef", where);
  }
  if (!s.contains("flavorRef") || !s["flavorRef"].is_string() ||
      _store["flavors"].count(s["flavorRef"].get<std::string>()) == 0) {
    return bad("compute", 400, "Flavor could not be found", where);
  }
  if (!s.contains("networks") || !s["networks"].is_array() || s["networks"].size() != 1 ||
      !s["networks"][0].contains("uuid") || unknown_keys(s["networks"][0], {"uuid", "port", "fixed_ip", "tag"}) != "") {
    return bad("compute", 400, "networks must be [{\"uuid\": ...}]", where);
  }
  const std::string net = s["networks"][0]["uuid"].get<std::string>();
  if (_store["networks"].count(net) == 0) {
    return bad("compute", 400, "Network " + net + " could not be found.", where);
  }
  std::vector<std::string> groups;
  for (const auto& g : s.value("security_groups", json::array())) {
    if (!g.is_object() || !g.contains("name") || !g["name"].is_string() || g.size() != 1) {
      return bad("compute", 400, "security_groups entries must be {\"name\": ...}", where);
    }
    const std::string ref = g["name"].get<std::string>();
    std::string found;
    for (const auto& [id, group] : _store["security_groups"]) {
      if (id == ref || group["name"] == ref) {
        found = id;
      }
    }
    if (found.empty()) {
      return bad("compute", 400, "Unable to find security_group with name or id '" + ref + "'", where);
    }
    groups.push_back(found);
  }
  if (!s.contains("block_device_mapping_v2") || !s["block_device_mapping_v2"].is_array() ||
      s["block_device_mapping_v2"].size() != 1) {
    return bad("compute", 400, "one block_device_mapping_v2 entry (the boot volume) is expected", where);
  }
  const json& bdm = s["block_device_mapping_v2"][0];
  if (auto extra = unknown_keys(bdm, {"boot_index", "uuid", "source_type", "destination_type",
                                      "delete_on_termination", "volume_size", "device_name", "disk_bus"});
      !extra.empty()) {
    return bad("compute", 400, "block_device_mapping_v2: unexpected " + extra, where);
  }
  if (bdm.value("boot_index", -1) != 0 || bdm.value("destination_type", "") != "volume" ||
      !bdm.contains("delete_on_termination") || !bdm["delete_on_termination"].is_boolean() || !bdm.contains("uuid")) {
    return bad("compute", 400, "the boot mapping needs boot_index 0, destination_type volume, a boolean "
                               "delete_on_termination and a uuid", where);
  }
  if (s.contains("metadata")) {
    if (auto problem = metadata_problem(s["metadata"]); !problem.empty()) {
      return bad("compute", 400, problem, where);
    }
  }
  if (s.contains("tags")) {
    static const std::regex tag_pattern{"^[^,/]{1,60}$"};
    if (!s["tags"].is_array() || s["tags"].size() > 50) {
      return bad("compute", 400, "tags must be an array of at most 50", where);
    }
    for (const auto& t : s["tags"]) {
      if (!t.is_string() || !std::regex_match(t.get<std::string>(), tag_pattern)) {
        return bad("compute", 400, "tag " + t.dump() + " must be 1-60 characters without ',' or '/'", where);
      }
    }
  }
  if (!string_max(s, "description", 255)) {
    return bad("compute", 400, "description must be a string of at most 255", where);
  }
  if (s.contains("user_data")) {
    if (!s["user_data"].is_string() || s["user_data"].get<std::string>().size() > 65535 ||
        !base64_decode(s["user_data"].get<std::string>())) {
      return bad("compute", 400, "user_data must be base64 of at most 65535 bytes", where);
    }
  }
  const std::string server_id = new_id();
  json volume_entry;
  const std::string source = bdm.value("source_type", "");
  if (source == "volume") {
    const std::string vid = bdm["uuid"].get<std::string>();
    auto v = _store["volumes"].find(vid);
    if (v == _store["volumes"].end()) {
      return bad("compute", 400, "Block Device Mapping is Invalid: failed to get volume " + vid + ".", where);
    }
    if (v->second["status"] != "available") {
      return bad("compute", 400, "Invalid volume: volume " + vid + " status must be 'available'", "");
    }
    v->second["status"] = "in-use";
    volume_entry = {{"id", vid}, {"delete_on_termination", bdm["delete_on_termination"]}};
  } else if (source == "image") {
    if (bdm["uuid"] != image_id || !bdm.contains("volume_size") || !bdm["volume_size"].is_number_integer() ||
        bdm["volume_size"].get<int>() < 1) {
      return bad("compute", 400, "source image needs a known image uuid and an integer volume_size >= 1", where);
    }
    const std::string vid = new_id();
    _store["volumes"][vid] = {{"id", vid},
                              {"name", ""},
                              {"status", "in-use"},
                              {"size", bdm["volume_size"]},
                              {"metadata", json::object()},
                              {"created_at", created_cinder}};
    volume_entry = {{"id", vid}, {"delete_on_termination", bdm["delete_on_termination"]}};
  } else {
    return bad("compute", 400, "source_type must be volume or image", where);
  }
  json stored{{"id", server_id},
              {"name", s["name"]},
              {"status", "BUILD"},
              {"metadata", s.value("metadata", json::object())},
              {"tags", s.value("tags", json::array())},
              {"description", s.value("description", "")},
              {"flavor_id", s["flavorRef"]},
              {"network_id", net},
              {"groups", groups},
              {"volumes", json::array({volume_entry})}};
  _store["servers"][server_id] = stored;
  _reads["build/" + server_id] = _options.build_reads;
  if (_options.server_fault.empty()) {
    _reads["port/" + server_id] = _options.port_reads;
  }
  return reply(202, {{"server",
                      {{"id", server_id},
                       {"links", json::array()},
                       {"OS-DCF:diskConfig", "MANUAL"},
                       {"adminPass", "generated-by-nova"},
                       {"security_groups", json::array({{{"name", "ref"}}})}}}});
}

served_response fake_openstack::read_server(const std::string& id) {
  auto it = _store["servers"].find(id);
  if (it == _store["servers"].end()) {
    return bad("compute", 404, "Instance " + id + " could not be found.");
  }
  json& s = it->second;
  if (s.value("deleting", false)) {
    if (--_reads["gone/" + id] < 0) {
      for (const auto& vol : s["volumes"]) {  // Nova deletes these once the server is gone
        if (vol["delete_on_termination"].get<bool>()) {
          _store["volumes"].erase(vol["id"].get<std::string>());
        }
      }
      _store["servers"].erase(it);
      return bad("compute", 404, "Instance " + id + " could not be found.");
    }
  } else if (s["status"] == "BUILD") {
    if (--_reads["build/" + id] < 0) {
      if (!_options.server_fault.empty()) {
        s["status"] = "ERROR";
        s["fault"] = {{"code", 500}, {"message", _options.server_fault}, {"created", created_z}};
      } else {
        s["status"] = "ACTIVE";
      }
    }
  }
  return reply(200, {{"server", server_view(s)}});
}

void fake_openstack::delete_server_now(const std::string& id) {
  json& s = _store["servers"][id];
  s["deleting"] = true;
  _reads["gone/" + id] = 1;
  // Its ports go, floating IPs on them are disassociated, its volumes detached or deleted.
  for (auto p = _store["ports"].begin(); p != _store["ports"].end();) {
    if (p->second["device_id"] == id) {
      for (auto& [fid, fip] : _store["floatingips"]) {
        if (fip["port_id"] == p->first) {
          fip["port_id"] = nullptr;
          fip["fixed_ip_address"] = nullptr;
        }
      }
      p = _store["ports"].erase(p);
    } else {
      ++p;
    }
  }
  for (const auto& vol : s["volumes"]) {
    auto v = _store["volumes"].find(vol["id"].get<std::string>());
    if (v == _store["volumes"].end()) {
      continue;
    }
    if (vol["delete_on_termination"].get<bool>()) {
      v->second["status"] = "deleting";
      _reads["volume-gone/" + v->first] = 1;
    } else {
      v->second["status"] = "available";
    }
  }
}

served_response fake_openstack::server_action(const std::string& id, const json& body) {
  const std::string where = "POST /servers/" + id + "/action";
  auto it = _store["servers"].find(id);
  if (it == _store["servers"].end()) {
    return bad("compute", 404, "Instance " + id + " could not be found.");
  }
  if (!body.is_object() || body.size() != 1) {
    return bad("compute", 400, "an action body has exactly one member", where);
  }
  const std::string action = body.begin().key();
  if (!body.begin().value().is_null()) {
    return bad("compute", 400, action + " takes null", where);
  }
  json& s = it->second;
  const std::string status = s["status"].get<std::string>();
  const auto conflict = [&] {
    return bad("compute", 409,
               "Cannot '" + action + "' instance " + id + " while it is in vm_state " + status);
  };
  if (action == "os-stop") {
    if (status != "ACTIVE") {
      return conflict();
    }
    s["status"] = "SHUTOFF";
  } else if (action == "os-start") {
    if (status != "SHUTOFF") {
      return conflict();
    }
    s["status"] = "ACTIVE";
  } else if (action == "suspend") {
    if (status != "ACTIVE") {
      return conflict();
    }
    s["status"] = "SUSPENDED";
  } else if (action == "resume") {
    if (status != "SUSPENDED") {
      return conflict();
    }
    s["status"] = "ACTIVE";
  } else {
    return bad("compute", 400, "unknown action " + action, where);
  }
  return no_content(202);
}

served_response fake_openstack::compute(const served_request& in, const std::string& path,
                                        const std::map<std::string, std::string>& query) {
  // Every call states the microversion it was written for (2.79: tags in create, 2.48
  // diagnostics format, flavor embedded in servers).
  if (in.header("openstack-api-version") != "compute 2.79") {
    _violations.push_back(in.method + " " + path + ": no OpenStack-API-Version: compute 2.79 header");
  }
  const auto parts = split(path, '/');  // "", "servers", id, ...
  const json body = in.body.empty() ? json() : json::parse(in.body, nullptr, false);
  if (parts.size() >= 2 && parts[1] == "flavors") {
    if (parts.size() == 3 && parts[2] == "detail") {
      json list = json::array();
      for (const auto& [id, f] : _store["flavors"]) {
        list.push_back(f);
      }
      return reply(200, {{"flavors", list}});
    }
    if (parts.size() == 3) {
      auto f = _store["flavors"].find(parts[2]);
      if (f == _store["flavors"].end()) {
        return bad("compute", 404, "Flavor " + parts[2] + " could not be found.");
      }
      return reply(200, {{"flavor", f->second}});
    }
  }
  if (parts.size() >= 2 && parts[1] == "servers") {
    if (parts.size() == 2 && in.method == "POST") {
      return create_server(body);
    }
    if (parts.size() == 3 && parts[2] == "detail" && in.method == "GET") {
      std::vector<std::string> wanted;
      if (auto t = query.find("tags"); t != query.end()) {
        wanted = split(t->second, ',');
      }
      json list = json::array();
      for (const auto& [id, s] : _store["servers"]) {
        bool all = true;
        for (const auto& w : wanted) {
          all = all && std::find(s["tags"].begin(), s["tags"].end(), json(w)) != s["tags"].end();
        }
        if (all) {
          list.push_back(server_view(s));
        }
      }
      return reply(200, {{"servers", list}});
    }
    if (parts.size() == 3 && in.method == "GET") {
      return read_server(parts[2]);
    }
    if (parts.size() == 3 && in.method == "DELETE") {
      if (_store["servers"].count(parts[2]) == 0) {
        return bad("compute", 404, "Instance " + parts[2] + " could not be found.");
      }
      delete_server_now(parts[2]);
      return no_content(204);
    }
    if (parts.size() == 4 && parts[3] == "action" && in.method == "POST") {
      return server_action(parts[2], body);
    }
    if (parts.size() == 4 && parts[3] == "diagnostics" && in.method == "GET") {
      auto it = _store["servers"].find(parts[2]);
      if (it == _store["servers"].end()) {
        return bad("compute", 404, "Instance " + parts[2] + " could not be found.");
      }
      if (!_options.diagnostics) {
        return bad("compute", 403, "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.");
      }
      if (it->second["status"] != "ACTIVE") {
        return bad("compute", 409, "Cannot 'get_diagnostics' instance while it is in vm_state stopped");
      }
      return reply(200, {{"state", "running"},
                         {"driver", "libvirt"},
                         {"uptime", 46664},
                         {"num_cpus", 2},
                         {"num_nics", 1},
                         {"num_disks", 1},
                         {"memory_details", {{"maximum", 2048}, {"used", 1024}}},
                         {"cpu_details", json::array({{{"id", 0}, {"time", 17300000000LL}, {"utilisation", 10}},
                                                      {{"id", 1}, {"time", 17300000000LL}, {"utilisation", 30}}})},
                         {"nic_details", json::array({{{"mac_address", "fa:16:3e:00:00:01"},
                                                       {"rx_octets", 4408},
                                                       {"tx_octets", 1464},
                                                       {"rx_packets", 66},
                                                       {"tx_packets", 9}}})},
                         {"disk_details", json::array({{{"read_bytes", 262144},
                                                        {"read_requests", 112},
                                                        {"write_bytes", 5778432},
                                                        {"write_requests", 488},
                                                        {"errors_count", 0}}})}});
    }
  }
  return bad("compute", 404, "The resource could not be found.");
}

// ---------------------------------------------------------------------------------------------
// Neutron

served_response fake_openstack::network(const served_request& in, const std::string& path,
                                        const std::map<std::string, std::string>& query) {
  const auto parts = split(path, '/');  // "", "security-groups", id, "tags"
  const json body = in.body.empty() ? json() : json::parse(in.body, nullptr, false);
  const std::string resource = parts.size() >= 2 ? parts[1] : "";
  const std::string where = in.method + " /v2.0" + path;
  const auto matches = [&](const json& object) {
    for (const auto& [key, value] : query) {
      if (key == "fields") {
        continue;
      }
      if (!object.contains(key)) {
        return false;
      }
      const json& v = object[key];
      const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      if (text != value) {
        return false;
      }
    }
    return true;
  };
  const auto list_of = [&](const std::string& collection, const std::string& key) {
    json list = json::array();
    for (const auto& [id, object] : _store[collection]) {
      if (matches(object)) {
        list.push_back(object);
      }
    }
    return reply(200, {{key, list}});
  };

  if (resource == "networks" && in.method == "GET") {
    if (parts.size() == 3) {
      auto n = _store["networks"].find(parts[2]);
      if (n == _store["networks"].end()) {
        return bad("network", 404, "Network " + parts[2] + " could not be found.");
      }
      return reply(200, {{"network", n->second}});
    }
    return list_of("networks", "networks");
  }

  // PUT /v2.0/{resource}/{id}/tags: replace all tags.
  if (parts.size() == 4 && parts[3] == "tags" && in.method == "PUT") {
    const std::string collection = resource == "security-groups" ? "security_groups" : resource;
    auto it = _store[collection].find(parts[2]);
    if (it == _store[collection].end()) {
      return bad("network", 404, resource + " " + parts[2] + " could not be found.");
    }
    if (!body.is_object() || body.size() != 1 || !body.contains("tags") || !body["tags"].is_array()) {
      return bad("network", 400, "body must be {\"tags\": [...]}", where);
    }
    std::set<std::string> seen;
    for (const auto& t : body["tags"]) {
      if (!t.is_string() || t.get<std::string>().empty() || t.get<std::string>().size() > 255 ||
          !seen.insert(t.get<std::string>()).second) {
        return bad("network", 400, "tags must be unique strings of 1 to 255 characters", where);
      }
    }
    it->second["tags"] = body["tags"];
    return reply(200, {{"tags", body["tags"]}});
  }

  if (resource == "security-groups") {
    if (parts.size() == 2 && in.method == "GET") {
      return list_of("security_groups", "security_groups");
    }
    if (parts.size() == 2 && in.method == "POST") {
      if (!body.is_object() || !body.contains("security_group") || !body["security_group"].is_object()) {
        return bad("network", 400, "Resource body required", where);
      }
      const json& g = body["security_group"];
      if (auto extra = unknown_keys(g, {"name", "description", "stateful", "project_id", "tenant_id"}); !extra.empty()) {
        return bad("network", 400, "Unrecognized attribute(s) '" + extra + "'", where);
      }
      if (!string_max(g, "name", 255) || !string_max(g, "description", 255)) {
        return bad("network", 400, "name and description are strings of at most 255 characters", where);
      }
      const std::string id = new_id();
      json group{{"id", id},
                 {"name", g.value("name", "")},
                 {"description", g.value("description", "")},
                 {"project_id", _options.project_id},
                 {"tenant_id", _options.project_id},
                 {"stateful", true},
                 {"tags", json::array()},
                 {"created_at", created_z}};
      json rules = json::array();
      for (const char* ether : {"IPv4", "IPv6"}) {
        const std::string rid = new_id();
        json rule{{"id", rid},         {"security_group_id", id}, {"direction", "egress"},
                  {"ethertype", ether}, {"protocol", nullptr},     {"port_range_min", nullptr},
                  {"port_range_max", nullptr}, {"remote_ip_prefix", nullptr}};
        rules.push_back(rule);
      }
      group["security_group_rules"] = rules;
      _store["security_groups"][id] = group;
      return reply(201, {{"security_group", group}});
    }
    if (parts.size() == 3 && in.method == "GET") {
      auto it = _store["security_groups"].find(parts[2]);
      if (it == _store["security_groups"].end()) {
        return bad("network", 404, "Security group " + parts[2] + " does not exist");
      }
      return reply(200, {{"security_group", it->second}});
    }
    if (parts.size() == 3 && in.method == "DELETE") {
      auto it = _store["security_groups"].find(parts[2]);
      if (it == _store["security_groups"].end()) {
        return bad("network", 404, "Security group " + parts[2] + " does not exist");
      }
      for (const auto& [pid, port] : _store["ports"]) {
        for (const auto& g : port["security_groups"]) {
          if (g == parts[2]) {
            return reply(409, {{"NeutronError",
                                {{"type", "SecurityGroupInUse"},
                                 {"message", "Security Group " + parts[2] + " in use."},
                                 {"detail", ""}}}});
          }
        }
      }
      _store["security_groups"].erase(it);
      return no_content(204);
    }
  }

  if (resource == "security-group-rules" && parts.size() == 2 && in.method == "POST") {
    if (!body.is_object() || !body.contains("security_group_rule") || !body["security_group_rule"].is_object()) {
      return bad("network", 400, "Resource body required", where);
    }
    const json& r = body["security_group_rule"];
    if (auto extra = unknown_keys(r, {"security_group_id", "direction", "ethertype", "protocol", "port_range_min",
                                      "port_range_max", "remote_ip_prefix", "remote_group_id", "description"});
        !extra.empty()) {
      return bad("network", 400, "Unrecognized attribute(s) '" + extra + "'", where);
    }
    const std::string gid = r.value("security_group_id", "");
    auto g = _store["security_groups"].find(gid);
    if (g == _store["security_groups"].end()) {
      return bad("network", 404, "Security group " + gid + " does not exist");
    }
    const std::string direction = r.value("direction", "");
    const std::string ether = r.value("ethertype", "IPv4");
    if ((direction != "ingress" && direction != "egress") || (ether != "IPv4" && ether != "IPv6")) {
      return bad("network", 400, "direction must be ingress or egress, ethertype IPv4 or IPv6", where);
    }
    const bool ports = r.contains("port_range_min") || r.contains("port_range_max");
    if (ports) {
      const auto& min = r.value("port_range_min", json());
      const auto& max = r.value("port_range_max", json());
      if (!min.is_number_integer() || !max.is_number_integer() || min.get<int>() < 1 || max.get<int>() > 65535 ||
          min.get<int>() > max.get<int>() || r.value("protocol", "") != "tcp") {
        return bad("network", 400, "port_range_min <= port_range_max in 1-65535, with protocol tcp", where);
      }
    }
    static const std::regex v4_cidr{"^(\\d{1,3}\\.){3}\\d{1,3}/\\d{1,2}$"};
    if (r.contains("remote_ip_prefix") &&
        (!r["remote_ip_prefix"].is_string() ||
         (ether == "IPv4" && !std::regex_match(r["remote_ip_prefix"].get<std::string>(), v4_cidr)))) {
      return bad("network", 400, "remote_ip_prefix must be a CIDR of the ethertype", where);
    }
    for (const auto& existing : g->second["security_group_rules"]) {
      if (existing["direction"] == direction && existing["ethertype"] == ether &&
          existing["protocol"] == r.value("protocol", json()) &&
          existing["port_range_min"] == r.value("port_range_min", json()) &&
          existing["port_range_max"] == r.value("port_range_max", json()) &&
          existing["remote_ip_prefix"] == r.value("remote_ip_prefix", json())) {
        return reply(409, {{"NeutronError",
                            {{"type", "SecurityGroupRuleExists"},
                             {"message", "Security group rule already exists. Rule id is " +
                                             existing["id"].get<std::string>() + "."},
                             {"detail", ""}}}});
      }
    }
    const std::string rid = new_id();
    json rule{{"id", rid},
              {"security_group_id", gid},
              {"direction", direction},
              {"ethertype", ether},
              {"protocol", r.value("protocol", json())},
              {"port_range_min", r.value("port_range_min", json())},
              {"port_range_max", r.value("port_range_max", json())},
              {"remote_ip_prefix", r.value("remote_ip_prefix", json())},
              {"description", r.value("description", "")}};
    g->second["security_group_rules"].push_back(rule);
    return reply(201, {{"security_group_rule", rule}});
  }

  if (resource == "ports" && parts.size() == 2 && in.method == "GET") {
    // A server's port appears after `port_reads` lists of its ports.
    if (auto d = query.find("device_id"); d != query.end()) {
      const std::string sid = d->second;
      auto pending = _reads.find("port/" + sid);
      if (pending != _reads.end() && _store["servers"].count(sid) > 0) {
        if (pending->second <= 0) {
          const auto& server = _store["servers"][sid];
          const std::string pid = new_id();
          _store["ports"][pid] = {{"id", pid},
                                  {"device_id", sid},
                                  {"device_owner", "compute:nova"},
                                  {"network_id", server["network_id"]},
                                  {"status", "DOWN"},
                                  {"binding:vif_type", "ovs"},
                                  {"binding:host_id", "fake-compute"},
                                  {"security_groups", server["groups"]},
                                  {"fixed_ips", json::array({{{"ip_address", next_fixed_ip()}}})},
                                  {"project_id", _options.project_id}};
          _reads.erase(pending);
        } else {
          --pending->second;
        }
      }
    }
    return list_of("ports", "ports");
  }

  if (resource == "floatingips") {
    if (parts.size() == 2 && in.method == "GET") {
      return list_of("floatingips", "floatingips");
    }
    if (parts.size() == 2 && in.method == "POST") {
      if (!body.is_object() || !body.contains("floatingip") || !body["floatingip"].is_object()) {
        return bad("network", 400, "Resource body required", where);
      }
      const json& f = body["floatingip"];
      if (auto extra = unknown_keys(f, {"floating_network_id", "port_id", "description", "fixed_ip_address",
                                        "subnet_id", "project_id", "floating_ip_address", "dns_name", "dns_domain"});
          !extra.empty()) {
        return bad("network", 400, "Unrecognized attribute(s) '" + extra + "'", where);
      }
      const std::string net = f.value("floating_network_id", "");
      auto n = _store["networks"].find(net);
      if (n == _store["networks"].end() || !n->second["router:external"].get<bool>()) {
        return bad("network", 400, "Bad floatingip request: Network " + net + " is not a valid external network.", where);
      }
      if (!string_max(f, "description", 255)) {
        return bad("network", 400, "description is a string of at most 255 characters", where);
      }
      json fixed = nullptr;
      json port_ref = nullptr;
      if (f.contains("port_id") && !f["port_id"].is_null()) {
        const std::string pid = f["port_id"].get<std::string>();
        auto p = _store["ports"].find(pid);
        if (p == _store["ports"].end()) {
          return bad("network", 404, "Port " + pid + " could not be found.");
        }
        for (const auto& [fid, fip] : _store["floatingips"]) {
          if (fip["port_id"] == pid) {
            return reply(409, {{"NeutronError",
                                {{"type", "FloatingIPPortAlreadyAssociated"},
                                 {"message", "Cannot associate floating IP with port " + pid +
                                                 ", as that fixed IP already has a floating IP on external network " + net + "."},
                                 {"detail", ""}}}});
          }
        }
        fixed = p->second["fixed_ips"][0]["ip_address"];
        port_ref = pid;
      }
      const std::string id = new_id();
      const std::string address = _options.floating_ip_fixed.empty()
                                      ? _options.floating_ip_prefix + std::to_string(_next_ip++)
                                      : _options.floating_ip_fixed;
      json fip{{"id", id},
               {"floating_ip_address", address},
               {"floating_network_id", net},
               {"fixed_ip_address", fixed},
               {"port_id", port_ref},
               {"status", "DOWN"},
               {"description", f.value("description", "")},
               {"tags", json::array()},
               {"project_id", _options.project_id},
               {"tenant_id", _options.project_id},
               {"created_at", created_z}};
      _store["floatingips"][id] = fip;
      return reply(201, {{"floatingip", fip}});
    }
    if (parts.size() == 3) {
      auto it = _store["floatingips"].find(parts[2]);
      if (it == _store["floatingips"].end()) {
        return bad("network", 404, "Floating IP " + parts[2] + " could not be found");
      }
      if (in.method == "GET") {
        return reply(200, {{"floatingip", it->second}});
      }
      if (in.method == "DELETE") {
        _store["floatingips"].erase(it);
        return no_content(204);
      }
      if (in.method == "PUT") {
        if (!body.is_object() || !body.contains("floatingip") || !body["floatingip"].is_object() ||
            unknown_keys(body["floatingip"], {"port_id", "fixed_ip_address", "description"}) != "") {
          return bad("network", 400, "update takes port_id, fixed_ip_address, description", where);
        }
        const json& f = body["floatingip"];
        if (f.contains("port_id")) {
          if (f["port_id"].is_null()) {
            it->second["port_id"] = nullptr;
            it->second["fixed_ip_address"] = nullptr;
          } else {
            auto p = _store["ports"].find(f["port_id"].get<std::string>());
            if (p == _store["ports"].end()) {
              return bad("network", 404, "Port could not be found.");
            }
            it->second["port_id"] = p->first;
            it->second["fixed_ip_address"] = p->second["fixed_ips"][0]["ip_address"];
          }
        }
        return reply(200, {{"floatingip", it->second}});
      }
    }
  }
  return bad("network", 404, "The resource could not be found.");
}

// ---------------------------------------------------------------------------------------------
// Cinder

served_response fake_openstack::volume(const served_request& in, const std::string& path,
                                       const std::map<std::string, std::string>& query) {
  const auto parts = split(path, '/');  // "", "volumes", id
  const json body = in.body.empty() ? json() : json::parse(in.body, nullptr, false);
  const std::string where = in.method + " /volumes";
  if (parts.size() < 2 || parts[1] != "volumes") {
    return bad("volume", 404, "The resource could not be found.");
  }
  if (parts.size() == 3 && parts[2] == "detail" && in.method == "GET") {
    json list = json::array();
    for (const auto& [id, v] : _store["volumes"]) {
      if (auto n = query.find("name"); n != query.end() && v["name"] != n->second) {
        continue;
      }
      list.push_back(v);
    }
    return reply(200, {{"volumes", list}});
  }
  if (parts.size() == 2 && in.method == "POST") {
    if (!body.is_object() || !body.contains("volume") || !body["volume"].is_object()) {
      return bad("volume", 400, "Missing required element 'volume' in request body.", where);
    }
    const json& v = body["volume"];
    if (auto extra = unknown_keys(v, {"name", "size", "imageRef", "metadata", "description", "volume_type",
                                      "availability_zone", "snapshot_id", "source_volid", "multiattach"});
        !extra.empty()) {
      return bad("volume", 400, "Additional properties are not allowed (" + extra + " were unexpected)", where);
    }
    if (!v.contains("size") || !v["size"].is_number_integer() || v["size"].get<int>() < 1) {
      return bad("volume", 400, "size must be an integer >= 1", where);
    }
    if (v.contains("imageRef") && v["imageRef"] != image_id) {
      return bad("volume", 400, "Invalid image identifier or unable to access requested image.", where);
    }
    if (v.contains("metadata")) {
      if (auto problem = metadata_problem(v["metadata"]); !problem.empty()) {
        return bad("volume", 400, problem, where);
      }
    }
    if (!string_max(v, "name", 255) || !string_max(v, "description", 255)) {
      return bad("volume", 400, "name and description are strings of at most 255 characters", where);
    }
    const std::string id = new_id();
    json stored{{"id", id},
                {"name", v.value("name", "")},
                {"size", v["size"]},
                {"status", "creating"},
                {"bootable", v.contains("imageRef") ? "true" : "false"},
                {"metadata", v.value("metadata", json::object())},
                {"description", v.value("description", "")},
                {"created_at", created_cinder}};
    _store["volumes"][id] = stored;
    _reads["volume/" + id] = _options.volume_reads;
    return reply(202, {{"volume", stored}});
  }
  if (parts.size() == 3) {
    auto it = _store["volumes"].find(parts[2]);
    if (it == _store["volumes"].end()) {
      return bad("volume", 404, "Volume " + parts[2] + " could not be found.");
    }
    json& v = it->second;
    if (in.method == "GET") {
      if (v["status"] == "deleting") {
        if (--_reads["volume-gone/" + parts[2]] < 0) {
          _store["volumes"].erase(it);
          return bad("volume", 404, "Volume " + parts[2] + " could not be found.");
        }
      } else if (v["status"] == "creating" && --_reads["volume/" + parts[2]] < 0) {
        v["status"] = "available";
      }
      return reply(200, {{"volume", v}});
    }
    if (in.method == "DELETE") {
      const std::string status = v["status"].get<std::string>();
      if (status != "available" && status.rfind("error", 0) != 0) {
        return bad("volume", 400,
                   "Invalid volume: Volume status must be available or error or error_restoring or error_extending "
                   "or error_managing and must not be migrating, attached, belong to a group, have snapshots or be "
                   "disassociated from snapshots after volume transfer.");
      }
      v["status"] = "deleting";
      _reads["volume-gone/" + parts[2]] = 1;
      return no_content(202);
    }
  }
  return bad("volume", 404, "The resource could not be found.");
}

// ---------------------------------------------------------------------------------------------
// Glance

served_response fake_openstack::image(const served_request& in, const std::string& path,
                                      const std::map<std::string, std::string>& query) {
  const auto parts = split(path, '/');  // "", "image", "v2", "images", id
  if (in.method != "GET" || parts.size() < 4 || parts[1] != "image" || parts[2] != "v2" || parts[3] != "images") {
    served_response r;
    r.status = 404;
    r.body = "<html><body><h1>404 Not Found</h1>The resource could not be found.</body></html>";
    return r;
  }
  if (parts.size() == 5) {
    auto it = _store["images"].find(parts[4]);
    if (it == _store["images"].end()) {
      served_response r;
      r.status = 404;
      r.body = "<html><body><h1>404 Not Found</h1>No image found with ID " + parts[4] + "</body></html>";
      return r;
    }
    return reply(200, it->second);
  }
  json list = json::array();
  for (const auto& [id, img] : _store["images"]) {
    if (auto n = query.find("name"); n != query.end() && img["name"] != n->second) {
      continue;
    }
    if (auto st = query.find("status"); st != query.end() && img["status"] != st->second) {
      continue;
    }
    list.push_back(img);
  }
  return reply(200, {{"images", list}, {"first", "/v2/images"}, {"schema", "/v2/schemas/images"}});
}

}  // namespace prov::test
