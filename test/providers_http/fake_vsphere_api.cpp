#include "fake_vsphere_api.hpp"

#include <algorithm>
#include <regex>

// What the fake follows (vSphere Automation API reference, vSphere 8.0 for /api and
// 6.5 - 7.0U1 for /rest; https://developer.broadcom.com/xapis/vsphere-automation-api/latest/,
// formerly https://developer.vmware.com/apis/vsphere-automation/latest/):
//   Session          POST /api/session -> 201 "<id>", header vmware-api-session-id;
//                    POST /rest/com/vmware/cis/session -> {"value": "<id>"}
//   Errors           /api: {"error_type": "NOT_FOUND", "messages": [{"args": [], "default_message", "id"}]}
//                    /rest: {"type": "com.vmware.vapi.std.errors.not_found", "value": {"messages": [...]}}
//                    HTTP status per error type: ALREADY_EXISTS, ALREADY_IN_DESIRED_STATE,
//                    INVALID_ARGUMENT, NOT_ALLOWED_IN_CURRENT_STATE, RESOURCE_IN_USE -> 400,
//                    UNAUTHENTICATED 401, UNAUTHORIZED 403, NOT_FOUND 404, SERVICE_UNAVAILABLE 503
//   VM               GET /api/vcenter/vm (VM.Summary list; filters names, vms), VM.CreateSpec
//                    (guest_OS, name, placement{folder, resource_pool, datastore}, cpu{count},
//                    memory{size_MiB}, disks[{new_vmdk{capacity}}], nics[{backing}]),
//                    VM.CloneSpec (source, name, placement, power_on), VM.Info, DELETE
//   VM template      POST /api/vcenter/vm-template/library-items/{item}?action=deploy (DeploySpec)
//   Power            GET/POST /api/vcenter/vm/{vm}/power[?action=start|stop|suspend]
//   Hardware         PATCH .../hardware/cpu {count}, .../hardware/memory {size_MiB},
//                    POST .../hardware/ethernet (Ethernet.CreateSpec: type, backing, start_connected)
//   Guest            GET .../tools (run_state), .../guest/identity (ip_address, host_name),
//                    .../guest/local-filesystem (map of mount -> {capacity, free_space})
//   Inventory        GET /api/vcenter/datacenter|folder|resource-pool|datastore|network|cluster
//   Tagging          /api/cis/tagging/category (CreateSpec: name, description, cardinality,
//                    associable_types), /tag (CreateSpec: name, description, category_id;
//                    UpdateSpec; ?action=list-tags-for-category), /tag-association
//                    (/{tag}?action=attach {object_id}; ?action=list-attached-tags {object_id};
//                    ?action=list-attached-objects-on-tags {tag_ids})
//   Appliance        GET /api/appliance/system/version

namespace prov::test {

using json = nlohmann::json;

namespace {

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  for (char c : s) {
    if (c == sep) {
      out.push_back(part);
      part.clear();
    } else {
      part.push_back(c);
    }
  }
  out.push_back(part);
  return out;
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

std::string type_for_status(unsigned status) {
  switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "UNAUTHORIZED";
    case 404: return "NOT_FOUND";
    case 409: return "CONCURRENT_CHANGE";
    case 429: return "";  // the reverse proxy answers rate limits, without a vAPI body
    case 503: return "SERVICE_UNAVAILABLE";
    case 504: return "TIMED_OUT";
    default: return status >= 500 ? "ERROR" : "INVALID_ARGUMENT";
  }
}

json error_messages(const std::string& message) {
  return json::array({{{"args", json::array()}, {"default_message", message}, {"id", "com.vmware.fake.error"}}});
}

/// The keys of `o` not in `allowed` (vCenter refuses unexpected properties).
void unknown_keys(const json& o, std::initializer_list<const char*> allowed, const std::string& where,
                  std::vector<std::string>& problems) {
  if (!o.is_object()) {
    problems.push_back(where + ": must be an object");
    return;
  }
  for (const auto& [key, value] : o.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      problems.push_back(where + "." + key + ": unexpected property");
    }
  }
}

void require_string(const json& o, const char* key, const std::string& where, std::vector<std::string>& problems,
                    bool required = true) {
  if (!o.is_object() || !o.contains(key)) {
    if (required) {
      problems.push_back(where + "." + key + ": required");
    }
    return;
  }
  if (!o[key].is_string() || o[key].get<std::string>().empty()) {
    problems.push_back(where + "." + key + ": must be a non-empty string");
  }
}

void require_int(const json& o, const char* key, std::int64_t min, const std::string& where,
                 std::vector<std::string>& problems, bool required = true) {
  if (!o.is_object() || !o.contains(key)) {
    if (required) {
      problems.push_back(where + "." + key + ": required");
    }
    return;
  }
  if (!o[key].is_number_integer() || o[key].get<std::int64_t>() < min) {
    problems.push_back(where + "." + key + ": must be an integer >= " + std::to_string(min));
  }
}

void require_bool(const json& o, const char* key, const std::string& where, std::vector<std::string>& problems) {
  if (o.is_object() && o.contains(key) && !o[key].is_boolean()) {
    problems.push_back(where + "." + key + ": must be a boolean");
  }
}

const std::map<std::string, json>& datacenters() {
  static const std::map<std::string, json> all{{"datacenter-2", {{"datacenter", "datacenter-2"}, {"name", "dc1"}}}};
  return all;
}
const std::map<std::string, json>& folders() {
  static const std::map<std::string, json> all{
      {"group-v3", {{"folder", "group-v3"}, {"name", "vm"}, {"type", "VIRTUAL_MACHINE"}}},
      {"group-v77", {{"folder", "group-v77"}, {"name", "tenants"}, {"type", "VIRTUAL_MACHINE"}}},
      {"group-h4", {{"folder", "group-h4"}, {"name", "host"}, {"type", "HOST"}}}};
  return all;
}
const std::map<std::string, json>& resource_pools() {
  static const std::map<std::string, json> all{
      {"resgroup-8", {{"resource_pool", "resgroup-8"}, {"name", "Resources"}}}};
  return all;
}
const std::map<std::string, json>& clusters() {
  static const std::map<std::string, json> all{
      {"domain-c7", {{"cluster", "domain-c7"}, {"name", "cluster1"}, {"ha_enabled", false}, {"drs_enabled", true}}}};
  return all;
}
const std::map<std::string, json>& datastores() {
  static const std::map<std::string, json> all{
      {"datastore-12",
       {{"datastore", "datastore-12"}, {"name", "datastore1"}, {"type", "VMFS"}, {"free_space", 1LL << 40},
        {"capacity", 2LL << 40}}}};
  return all;
}
const std::map<std::string, json>& networks() {
  static const std::map<std::string, json> all{
      {"network-13", {{"network", "network-13"}, {"name", "VM Network"}, {"type", "STANDARD_PORTGROUP"}}},
      {"dvportgroup-20", {{"network", "dvportgroup-20"}, {"name", "prod-net"}, {"type", "DISTRIBUTED_PORTGROUP"}}}};
  return all;
}

constexpr const char* library_item = "7c0d8f3a-0b6f-4e3c-9a51-3c1b2e8f9d10";

}  // namespace

fake_vsphere_api::fake_vsphere_api(options o)
    : _options(std::move(o)),
      _server([this](const served_request& in) { return handle(in); }, _options.tls) {
  std::lock_guard<std::mutex> guard{_mutex};
  vm_state tmpl;
  tmpl.name = "tmpl-ubuntu";
  tmpl.folder = "group-v3";
  tmpl.resource_pool = "resgroup-8";
  tmpl.datastore = "datastore-12";
  tmpl.guest_os = "UBUNTU_64";
  tmpl.is_template = true;
  tmpl.disks = {16LL << 30};
  tmpl.nics["4000"] = {{"type", "VMXNET3"},
                       {"backing", {{"type", "STANDARD_PORTGROUP"}, {"network", "network-13"}}},
                       {"start_connected", true}};
  _vms["vm-42"] = tmpl;
}

fake_vsphere_api::~fake_vsphere_api() {
  _server.stop();
}

std::string fake_vsphere_api::endpoint() const {
  return _server.url();
}

void fake_vsphere_api::expire_sessions() {
  std::lock_guard<std::mutex> guard{_mutex};
  _sessions.clear();
}

void fake_vsphere_api::inject(fault f) {
  std::lock_guard<std::mutex> guard{_mutex};
  _faults.push_back(std::move(f));
}

std::string fake_vsphere_api::new_vm(vm_state v) {
  const std::string id = "vm-" + std::to_string(_next_vm++);
  _vms[id] = std::move(v);
  return id;
}

std::string fake_vsphere_api::put_vm(const std::string& name) {
  std::lock_guard<std::mutex> guard{_mutex};
  vm_state v;
  v.name = name;
  v.folder = "group-v3";
  v.resource_pool = "resgroup-8";
  v.datastore = "datastore-12";
  v.disks = {8LL << 30};
  return new_vm(std::move(v));
}

void fake_vsphere_api::set_power(const std::string& vm, const std::string& state) {
  std::lock_guard<std::mutex> guard{_mutex};
  auto& v = _vms.at(vm);
  v.power = state;
  v.shown = state;
  v.lag = 0;
}

void fake_vsphere_api::set_filesystem(const std::string& vm, std::int64_t capacity, std::int64_t free_space) {
  std::lock_guard<std::mutex> guard{_mutex};
  auto& v = _vms.at(vm);
  v.fs_capacity = capacity;
  v.fs_free = free_space;
}

std::optional<json> fake_vsphere_api::vm(const std::string& id) const {
  std::lock_guard<std::mutex> guard{_mutex};
  auto it = _vms.find(id);
  if (it == _vms.end()) {
    return std::nullopt;
  }
  const auto& v = it->second;
  json nics = json::object();
  for (const auto& [key, nic] : v.nics) {
    nics[key] = nic;
  }
  return json{{"name", v.name},     {"power", v.power},         {"cpu", v.cpu},
              {"memory_mib", v.memory_mib}, {"disks", v.disks}, {"nics", nics},
              {"folder", v.folder}, {"resource_pool", v.resource_pool}, {"datastore", v.datastore},
              {"guest_os", v.guest_os}};
}

std::vector<std::string> fake_vsphere_api::vm_ids() const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::string> out;
  for (const auto& [id, v] : _vms) {
    if (!v.is_template) {
      out.push_back(id);
    }
  }
  return out;
}

std::vector<std::string> fake_vsphere_api::tag_names() const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::string> out;
  for (const auto& [id, t] : _tags) {
    out.push_back(t["name"].get<std::string>());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> fake_vsphere_api::category_names() const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::string> out;
  for (const auto& [id, c] : _categories) {
    out.push_back(c["name"].get<std::string>());
  }
  return out;
}

std::vector<std::string> fake_vsphere_api::tags_of(const std::string& vm) const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::string> out;
  for (const auto& [tag, vms] : _attached) {
    if (vms.count(vm) > 0) {
      out.push_back(_tags.at(tag)["name"].get<std::string>());
    }
  }
  return out;
}

std::size_t fake_vsphere_api::sessions_created() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _session_count;
}

std::vector<std::string> fake_vsphere_api::violations() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _violations;
}

std::vector<std::string> fake_vsphere_api::log() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _log;
}

std::size_t fake_vsphere_api::count(const std::string& method, const std::string& path_contains) const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::size_t n = 0;
  for (const auto& line : _log) {
    if ((method.empty() || line.compare(0, method.size() + 1, method + " ") == 0) &&
        line.find(path_contains) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

fake_vsphere_api::answer fake_vsphere_api::invalid(const std::string& where, const std::vector<std::string>& problems) {
  std::string message;
  for (const auto& p : problems) {
    _violations.push_back(where + ": " + p);
    message += (message.empty() ? "" : "; ") + p;
  }
  return answer{400, nullptr, "INVALID_ARGUMENT", message};
}

// ---------------------------------------------------------------------------------------------
// HTTP

served_response fake_vsphere_api::handle(const served_request& in) {
  std::lock_guard<std::mutex> guard{_mutex};
  const auto q = in.target.find('?');
  std::string path = in.target.substr(0, q);
  std::vector<std::pair<std::string, std::string>> query;
  if (q != std::string::npos) {
    for (const auto& pair : split(in.target.substr(q + 1), '&')) {
      const auto eq = pair.find('=');
      query.emplace_back(url_decode(pair.substr(0, eq)), eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1)));
    }
  }
  const bool rest = starts_with(path, "/rest/");
  served_response out;
  const auto finish = [&](served_response r) {
    _log.push_back(in.method + " " + in.target + " -> " + (r.hang ? std::string{"(no answer)"} : std::to_string(r.status)));
    return r;
  };
  const auto render = [&](const answer& a) {
    served_response r;
    r.status = a.status;
    r.headers = {{"Content-Type", "application/json"}};
    if (!a.error_type.empty()) {
      r.body = rest ? json{{"type", "com.vmware.vapi.std.errors." + lower(a.error_type)},
                           {"value", {{"messages", error_messages(a.message)}}}}
                          .dump()
                    : json{{"error_type", a.error_type}, {"messages", error_messages(a.message)}}.dump();
    } else if (a.status >= 400) {
      r.body = a.message;  // a proxy's answer, not vAPI's
      r.headers = {{"Content-Type", "text/plain"}};
    } else if (!a.value.is_null()) {
      r.body = rest ? json{{"value", a.value}}.dump() : a.value.dump();
    } else if (!rest && a.status == 200) {
      r.status = 204;
    }
    return r;
  };
  for (auto& f : _faults) {
    if (f.times > 0 && (f.method.empty() || f.method == in.method) &&
        (f.path_contains.empty() || in.target.find(f.path_contains) != std::string::npos)) {
      --f.times;
      if (f.hang) {
        served_response hang;
        hang.hang = true;
        return finish(hang);
      }
      const auto type = type_for_status(f.status);
      return finish(render(answer{f.status, nullptr, type, "injected fault"}));
    }
  }
  if (!rest && !starts_with(path, "/api/")) {
    return finish(render(answer{404, nullptr, "", "not found"}));
  }
  if (!rest && _options.legacy) {
    return finish(render(answer{404, nullptr, "", "not found"}));  // 6.7: no /api
  }

  // The /rest dialect in /api terms.
  json body;
  if (!in.body.empty()) {
    body = json::parse(in.body, nullptr, false);
    if (body.is_discarded()) {
      return finish(render(invalid(in.method + " " + path, {"the body is not JSON"})));
    }
  }
  std::string method = in.method;
  std::string action;
  std::vector<std::pair<std::string, std::string>> api_query;
  if (rest) {
    std::string api_path;
    if (path == "/rest/com/vmware/cis/session") {
      api_path = "/api/session";
      for (const auto& [k, v] : query) {
        if (k == "~action" && v == "get") {
          method = "GET";
        }
      }
    } else if (starts_with(path, "/rest/com/vmware/cis/tagging/")) {
      auto segments = split(path.substr(std::string{"/rest/com/vmware/cis/tagging/"}.size()), '/');
      api_path = "/api/cis/tagging/" + segments[0];
      std::string id;
      if (segments.size() > 1) {
        if (!starts_with(segments[1], "id:")) {
          return finish(render(invalid(in.method + " " + path, {"/rest ids are written id:<id>"})));
        }
        id = segments[1].substr(3);
      }
      for (const auto& [k, v] : query) {
        if (k == "~action") {
          action = v;
        } else {
          return finish(render(invalid(in.method + " " + path, {"unexpected query parameter " + k})));
        }
      }
      if (segments[0] == "tag" && action == "list-tags-for-category") {
        body = json{{"category_id", id}};
      } else if (!id.empty()) {
        api_path += "/" + id;
      }
    } else if (starts_with(path, "/rest/vcenter/")) {
      api_path = "/api" + path.substr(5);
      static const std::regex power{R"(^(/api/vcenter/vm/[^/]+/power)/(start|stop|suspend|reset)$)"};
      std::smatch m;
      if (std::regex_match(api_path, m, power)) {
        action = m[2];
        api_path = m[1];
      }
      static const std::regex filter{R"(^filter\.([a-z_]+)(\.[0-9]+)?$)"};
      for (const auto& [k, v] : query) {
        std::smatch fm;
        if (k == "action") {
          action = v;
        } else if (std::regex_match(k, fm, filter)) {
          api_query.emplace_back(fm[1], v);
        } else {
          return finish(render(invalid(in.method + " " + path, {"unexpected query parameter " + k})));
        }
      }
    } else if (starts_with(path, "/rest/appliance/")) {
      api_path = "/api" + path.substr(5);
    } else {
      return finish(render(answer{404, nullptr, "", "not found"}));
    }
    path = api_path;
    // /rest wraps request bodies: {"spec": ...}, {"create_spec": ...}, {"update_spec": ...}.
    std::string wrap;
    if ((path == "/api/vcenter/vm" && method == "POST") ||
        std::regex_match(path, std::regex{R"(^/api/vcenter/vm/[^/]+/hardware/(cpu|memory|ethernet)$)"}) ||
        starts_with(path, "/api/vcenter/vm-template/library-items/")) {
      wrap = "spec";
    } else if ((path == "/api/cis/tagging/category" || path == "/api/cis/tagging/tag") && method == "POST" &&
               action.empty()) {
      wrap = "create_spec";
    } else if (starts_with(path, "/api/cis/tagging/tag/") && method == "PATCH") {
      wrap = "update_spec";
    }
    if (!wrap.empty()) {
      if (!body.is_object() || body.size() != 1 || !body.contains(wrap)) {
        return finish(render(invalid(in.method + " " + in.target, {"/rest expects the body as {\"" + wrap + "\": ...}"})));
      }
      body = json(body[wrap]);
    }
  } else {
    for (const auto& [k, v] : query) {
      if (k == "action") {
        action = v;
      } else {
        api_query.emplace_back(k, v);
      }
    }
  }

  // Sessions.
  if (path == "/api/session" && method == "POST") {
    const auto expected = "Basic " + [&] {
      static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const std::string raw = _options.username + ":" + _options.password;
      std::string b64;
      std::size_t i = 0;
      for (; i + 2 < raw.size(); i += 3) {
        const unsigned n = (static_cast<unsigned char>(raw[i]) << 16) | (static_cast<unsigned char>(raw[i + 1]) << 8) |
                           static_cast<unsigned char>(raw[i + 2]);
        b64 += {alphabet[(n >> 18) & 63], alphabet[(n >> 12) & 63], alphabet[(n >> 6) & 63], alphabet[n & 63]};
      }
      if (i + 1 == raw.size()) {
        const unsigned n = static_cast<unsigned char>(raw[i]) << 16;
        b64 += {alphabet[(n >> 18) & 63], alphabet[(n >> 12) & 63], '=', '='};
      } else if (i + 2 == raw.size()) {
        const unsigned n = (static_cast<unsigned char>(raw[i]) << 16) | (static_cast<unsigned char>(raw[i + 1]) << 8);
        b64 += {alphabet[(n >> 18) & 63], alphabet[(n >> 12) & 63], alphabet[(n >> 6) & 63], '='};
      }
      return b64;
    }();
    if (in.header("authorization") != expected) {
      return finish(render(answer{401, nullptr, "UNAUTHENTICATED", "Authentication required."}));
    }
    const std::string id = "fake-session-" + std::to_string(++_session_count);
    _sessions.insert(id);
    answer a{rest ? 200u : 201u, id, "", ""};
    return finish(render(a));
  }
  if (_sessions.count(in.header("vmware-api-session-id")) == 0) {
    return finish(render(answer{401, nullptr, "UNAUTHENTICATED", "This method requires authentication."}));
  }
  if (rest && action == "clone") {
    return finish(render(answer{404, nullptr, "OPERATION_NOT_FOUND", "no clone in /rest"}));
  }
  auto query_with_action = api_query;
  if (!action.empty()) {
    query_with_action.emplace_back("action", action);
  }
  return finish(render(route(method, path, query_with_action, body, rest)));
}

// ---------------------------------------------------------------------------------------------
// Routes (in /api terms)

fake_vsphere_api::answer fake_vsphere_api::route(const std::string& method, const std::string& path,
                                                 const std::vector<std::pair<std::string, std::string>>& query,
                                                 const json& body, bool rest) {
  std::string action;
  std::map<std::string, std::vector<std::string>> filters;
  for (const auto& [k, v] : query) {
    if (k == "action") {
      action = v;
    } else {
      filters[k].push_back(v);
    }
  }
  const auto matches = [&](const std::string& key, const std::string& value) {
    auto it = filters.find(key);
    return it == filters.end() || std::find(it->second.begin(), it->second.end(), value) != it->second.end();
  };
  if (path == "/api/session" && method == "GET") {
    return answer{200, {{"user", "VSPHERE.LOCAL\\" + _options.username.substr(0, _options.username.find('@'))},
                        {"created_time", "2030-01-01T00:00:00.000Z"},
                        {"last_accessed_time", "2030-01-01T00:00:00.000Z"}}};
  }
  if (path == "/api/appliance/system/version" && method == "GET") {
    return answer{200,
                  {{"version", _options.legacy ? "6.7.0.44000" : "8.0.2.00100"},
                   {"build", _options.legacy ? "15976714" : "22617221"},
                   {"product", "VMware vCenter Server"},
                   {"type", "vCenter Server with an embedded Platform Services Controller"},
                   {"releasedate", "September 21, 2023"},
                   {"install_time", "2030-01-01T00:00:00.000Z"},
                   {"summary", "Patch for VMware vCenter Server 8.0"}}};
  }
  const auto inventory = [&](const std::map<std::string, json>& objects, const std::string& id_key) {
    for (const auto& [k, values] : filters) {
      static const std::set<std::string> known{"names", "datacenters", "type", "folders", "networks", "datastores",
                                               "resource_pools", "clusters"};
      if (known.count(k) == 0) {
        return invalid("GET " + path, {"unknown filter " + k});
      }
    }
    json list = json::array();
    for (const auto& [id, o] : objects) {
      if (matches("names", o["name"].get<std::string>()) && matches(id_key + "s", id) &&
          (!o.contains("type") || matches("type", o["type"].get<std::string>())) && matches("datacenters", "datacenter-2")) {
        list.push_back(o);
      }
    }
    return answer{200, list};
  };
  if (method == "GET") {
    if (path == "/api/vcenter/datacenter") {
      return inventory(datacenters(), "datacenter");
    }
    if (path == "/api/vcenter/folder") {
      return inventory(folders(), "folder");
    }
    if (path == "/api/vcenter/resource-pool") {
      return inventory(resource_pools(), "resource_pool");
    }
    if (path == "/api/vcenter/datastore") {
      return inventory(datastores(), "datastore");
    }
    if (path == "/api/vcenter/network") {
      return inventory(networks(), "network");
    }
    if (path == "/api/vcenter/cluster") {
      return inventory(clusters(), "cluster");
    }
    if (starts_with(path, "/api/vcenter/cluster/")) {
      const auto id = path.substr(std::string{"/api/vcenter/cluster/"}.size());
      auto it = clusters().find(id);
      if (it == clusters().end()) {
        return answer{404, nullptr, "NOT_FOUND", "cluster " + id + " not found"};
      }
      return answer{200, {{"name", it->second["name"]}, {"resource_pool", "resgroup-8"}}};
    }
  }
  if (path == "/api/vcenter/vm") {
    if (method == "GET") {
      for (const auto& [k, values] : filters) {
        if (k != "names" && k != "vms" && k != "power_states" && k != "folders") {
          return invalid("GET " + path, {"unknown filter " + k});
        }
      }
      json list = json::array();
      for (auto& [id, v] : _vms) {
        if (matches("names", v.name) && matches("vms", id)) {
          list.push_back(summary(id, v));
        }
      }
      return answer{200, list};
    }
    if (method == "POST" && action.empty()) {
      return create_vm(body);
    }
    if (method == "POST" && action == "clone") {
      return clone_vm(body);
    }
  }
  if (starts_with(path, "/api/vcenter/vm-template/library-items/") && method == "POST") {
    if (action != "deploy") {
      return invalid("POST " + path, {"expected ?action=deploy"});
    }
    return deploy(path.substr(std::string{"/api/vcenter/vm-template/library-items/"}.size()), body);
  }
  if (starts_with(path, "/api/vcenter/vm/")) {
    auto segments = split(path.substr(std::string{"/api/vcenter/vm/"}.size()), '/');
    const std::string id = segments[0];
    segments.erase(segments.begin());
    return vm_route(method, id, segments, action, body, rest);
  }
  if (starts_with(path, "/api/cis/tagging/")) {
    auto segments = split(path.substr(std::string{"/api/cis/tagging/"}.size()), '/');
    return tagging(method, segments, action, body);
  }
  return answer{404, nullptr, "OPERATION_NOT_FOUND", "no operation " + method + " " + path};
}

json fake_vsphere_api::summary(const std::string& id, const vm_state& v) const {
  return json{{"vm", id}, {"name", v.name}, {"power_state", v.shown}, {"cpu_count", v.cpu}, {"memory_size_MiB", v.memory_mib}};
}

std::string fake_vsphere_api::visible_power(vm_state& v, bool count_read) {
  if (v.lag > 0 && count_read) {
    if (--v.lag == 0) {
      v.shown = v.power;
    }
  }
  if (v.lag == 0) {
    v.shown = v.power;
  }
  return v.shown;
}

bool fake_vsphere_api::name_taken(const std::string& folder, const std::string& name) const {
  return std::any_of(_vms.begin(), _vms.end(),
                     [&](const auto& kv) { return kv.second.folder == folder && kv.second.name == name; });
}

json fake_vsphere_api::vm_info(const std::string& id, bool rest) {
  auto& v = _vms.at(id);
  json disks = json::object();
  int key = 2000;
  for (auto capacity : v.disks) {
    disks[std::to_string(key++)] = {{"label", "Hard disk " + std::to_string(key - 2000)}, {"type", "SCSI"}, {"capacity", capacity}};
  }
  json nics = json::object();
  int n = 1;
  for (const auto& [k, nic] : v.nics) {
    json info = nic;
    info["label"] = "Network adapter " + std::to_string(n++);
    info["mac_type"] = "GENERATED";
    info["mac_address"] = "00:50:56:00:00:0" + std::to_string(n);
    info["state"] = v.power == "POWERED_ON" ? "CONNECTED" : "NOT_CONNECTED";
    const auto net = nic["backing"]["network"].get<std::string>();
    info["backing"]["network_name"] = networks().count(net) ? networks().at(net)["name"] : json("?");
    nics[k] = info;
  }
  const auto as_rest_map = [&](const json& map) {
    if (!rest) {
      return map;
    }
    json arr = json::array();
    for (const auto& [k, value] : map.items()) {
      arr.push_back({{"key", k}, {"value", value}});
    }
    return arr;
  };
  return json{{"name", v.name},
              {"guest_OS", v.guest_os},
              {"power_state", visible_power(v, false)},
              {"cpu", {{"count", v.cpu}, {"cores_per_socket", 1}, {"hot_add_enabled", false}, {"hot_remove_enabled", false}}},
              {"memory", {{"size_MiB", v.memory_mib}, {"hot_add_enabled", false}}},
              {"hardware", {{"version", "VMX_19"}, {"upgrade_policy", "NEVER"}, {"upgrade_status", "NONE"}}},
              {"boot", {{"type", "BIOS"}, {"delay", 0}, {"retry", false}, {"retry_delay", 10000}, {"enter_setup_mode", false}}},
              {"disks", as_rest_map(disks)},
              {"nics", as_rest_map(nics)},
              {"identity", {{"name", v.name}, {"bios_uuid", "4231" + id}, {"instance_uuid", "5031" + id}}}};
}

fake_vsphere_api::answer fake_vsphere_api::create_vm(const json& spec) {
  std::vector<std::string> problems;
  unknown_keys(spec, {"guest_OS", "name", "placement", "cpu", "memory", "disks", "nics", "hardware_version", "boot"},
               "spec", problems);
  require_string(spec, "guest_OS", "spec", problems);
  if (spec.contains("guest_OS") && spec["guest_OS"].is_string() &&
      !std::regex_match(spec["guest_OS"].get<std::string>(), std::regex{"^[A-Z0-9_]+$"})) {
    problems.push_back("spec.guest_OS: not a VM.GuestOS value");
  }
  require_string(spec, "name", "spec", problems);
  if (spec.contains("name") && spec["name"].is_string() && spec["name"].get<std::string>().size() > 80) {
    problems.push_back("spec.name: longer than 80 characters");
  }
  const json placement = spec.value("placement", json());
  if (placement.is_null()) {
    problems.push_back("spec.placement: required");
  } else {
    unknown_keys(placement, {"folder", "resource_pool", "host", "cluster", "datastore"}, "spec.placement", problems);
    require_string(placement, "folder", "spec.placement", problems);
    require_string(placement, "datastore", "spec.placement", problems);
    if (!placement.contains("resource_pool") && !placement.contains("cluster") && !placement.contains("host")) {
      problems.push_back("spec.placement: one of resource_pool, cluster, host is required");
    }
    if (placement.contains("folder") && placement["folder"].is_string() &&
        (folders().count(placement["folder"]) == 0 || folders().at(placement["folder"])["type"] != "VIRTUAL_MACHINE")) {
      problems.push_back("spec.placement.folder: no VM folder " + placement["folder"].dump());
    }
    if (placement.contains("resource_pool") && (!placement["resource_pool"].is_string() ||
                                                resource_pools().count(placement["resource_pool"]) == 0)) {
      problems.push_back("spec.placement.resource_pool: no such resource pool");
    }
    if (placement.contains("datastore") && (!placement["datastore"].is_string() ||
                                            datastores().count(placement["datastore"]) == 0)) {
      problems.push_back("spec.placement.datastore: no such datastore");
    }
  }
  if (spec.contains("cpu")) {
    unknown_keys(spec["cpu"], {"count", "cores_per_socket", "hot_add_enabled", "hot_remove_enabled"}, "spec.cpu", problems);
    require_int(spec["cpu"], "count", 1, "spec.cpu", problems);
  }
  if (spec.contains("memory")) {
    unknown_keys(spec["memory"], {"size_MiB", "hot_add_enabled"}, "spec.memory", problems);
    require_int(spec["memory"], "size_MiB", 4, "spec.memory", problems);
  }
  if (spec.contains("disks")) {
    if (!spec["disks"].is_array()) {
      problems.push_back("spec.disks: must be a list");
    } else {
      for (const auto& d : spec["disks"]) {
        unknown_keys(d, {"type", "new_vmdk", "backing", "scsi", "sata", "ide", "nvme"}, "spec.disks[]", problems);
        if (d.contains("new_vmdk")) {
          unknown_keys(d["new_vmdk"], {"name", "capacity", "storage_policy"}, "spec.disks[].new_vmdk", problems);
          require_int(d["new_vmdk"], "capacity", 1, "spec.disks[].new_vmdk", problems);
        } else if (!d.contains("backing")) {
          problems.push_back("spec.disks[]: new_vmdk or backing is required");
        }
      }
    }
  }
  if (spec.contains("nics") && !spec["nics"].is_array()) {
    problems.push_back("spec.nics: must be a list");
  }
  if (!problems.empty()) {
    return invalid("POST /api/vcenter/vm", problems);
  }
  if (name_taken(placement["folder"], spec["name"])) {
    return answer{400, nullptr, "ALREADY_EXISTS", "A VM named " + spec["name"].get<std::string>() + " already exists"};
  }
  vm_state v;
  v.name = spec["name"];
  v.guest_os = spec["guest_OS"];
  v.folder = placement["folder"];
  v.resource_pool = placement.value("resource_pool", std::string{"resgroup-8"});
  v.datastore = placement["datastore"];
  v.cpu = spec.contains("cpu") ? spec["cpu"]["count"].get<std::int64_t>() : 1;
  v.memory_mib = spec.contains("memory") ? spec["memory"]["size_MiB"].get<std::int64_t>() : 1024;
  if (spec.contains("disks")) {
    for (const auto& d : spec["disks"]) {
      v.disks.push_back(d["new_vmdk"]["capacity"].get<std::int64_t>());
    }
  } else {
    v.disks = {16LL << 30};  // guest default
  }
  return answer{200, new_vm(std::move(v))};
}

fake_vsphere_api::answer fake_vsphere_api::clone_vm(const json& spec) {
  std::vector<std::string> problems;
  unknown_keys(spec, {"source", "name", "placement", "power_on", "disks_to_remove", "disks_to_update",
                      "guest_customization_spec"},
               "spec", problems);
  require_string(spec, "source", "spec", problems);
  require_string(spec, "name", "spec", problems);
  require_bool(spec, "power_on", "spec", problems);
  if (spec.contains("placement")) {
    unknown_keys(spec["placement"], {"folder", "resource_pool", "host", "cluster", "datastore"}, "spec.placement",
                 problems);
  }
  if (spec.contains("source") && spec["source"].is_string() && _vms.count(spec["source"]) == 0) {
    return answer{404, nullptr, "NOT_FOUND", "source VM not found"};
  }
  if (!problems.empty()) {
    return invalid("POST /api/vcenter/vm?action=clone", problems);
  }
  const auto& source = _vms.at(spec["source"]);
  vm_state v = source;
  v.is_template = false;
  v.name = spec["name"];
  v.power = v.shown = spec.value("power_on", false) ? "POWERED_ON" : "POWERED_OFF";
  v.lag = 0;
  if (spec.contains("placement")) {
    v.folder = spec["placement"].value("folder", v.folder);
    v.resource_pool = spec["placement"].value("resource_pool", v.resource_pool);
    v.datastore = spec["placement"].value("datastore", v.datastore);
  }
  if (name_taken(v.folder, v.name)) {
    return answer{400, nullptr, "ALREADY_EXISTS", "A VM named " + v.name + " already exists"};
  }
  return answer{200, new_vm(std::move(v))};
}

fake_vsphere_api::answer fake_vsphere_api::deploy(const std::string& item, const json& spec) {
  if (item != library_item) {
    return answer{404, nullptr, "NOT_FOUND", "library item " + item + " not found"};
  }
  std::vector<std::string> problems;
  unknown_keys(spec, {"name", "description", "placement", "vm_home_storage", "disk_storage", "disk_storage_overrides",
                      "guest_customization", "hardware_customization", "powered_on"},
               "spec", problems);
  require_string(spec, "name", "spec", problems);
  require_bool(spec, "powered_on", "spec", problems);
  if (spec.contains("placement")) {
    unknown_keys(spec["placement"], {"folder", "resource_pool", "host", "cluster"}, "spec.placement", problems);
  }
  for (const char* storage : {"vm_home_storage", "disk_storage"}) {
    if (spec.contains(storage)) {
      unknown_keys(spec[storage], {"datastore", "storage_policy"}, std::string{"spec."} + storage, problems);
    }
  }
  if (spec.contains("hardware_customization")) {
    const auto& h = spec["hardware_customization"];
    unknown_keys(h, {"nics", "disks_to_remove", "disks_to_update", "cpu_update", "memory_update"},
                 "spec.hardware_customization", problems);
    if (h.contains("cpu_update")) {
      unknown_keys(h["cpu_update"], {"num_cpus", "num_cores_per_socket"}, "spec.hardware_customization.cpu_update",
                   problems);
      require_int(h["cpu_update"], "num_cpus", 1, "spec.hardware_customization.cpu_update", problems);
    }
    if (h.contains("memory_update")) {
      unknown_keys(h["memory_update"], {"memory"}, "spec.hardware_customization.memory_update", problems);
      require_int(h["memory_update"], "memory", 4, "spec.hardware_customization.memory_update", problems);
    }
  }
  if (!problems.empty()) {
    return invalid("POST vm-template deploy", problems);
  }
  vm_state v = _vms.at("vm-42");
  v.is_template = false;
  v.name = spec["name"];
  if (spec.contains("placement")) {
    v.folder = spec["placement"].value("folder", v.folder);
  }
  if (name_taken(v.folder, v.name)) {
    return answer{400, nullptr, "ALREADY_EXISTS", "A VM named " + v.name + " already exists"};
  }
  if (spec.contains("hardware_customization")) {
    const auto& h = spec["hardware_customization"];
    if (h.contains("cpu_update")) {
      v.cpu = h["cpu_update"]["num_cpus"];
    }
    if (h.contains("memory_update")) {
      v.memory_mib = h["memory_update"]["memory"];
    }
  }
  v.power = v.shown = spec.value("powered_on", false) ? "POWERED_ON" : "POWERED_OFF";
  return answer{200, new_vm(std::move(v))};
}

fake_vsphere_api::answer fake_vsphere_api::vm_route(const std::string& method, const std::string& id,
                                                    const std::vector<std::string>& sub, const std::string& action,
                                                    const json& body, bool rest) {
  auto it = _vms.find(id);
  if (it == _vms.end()) {
    return answer{404, nullptr, "NOT_FOUND", "Virtual machine with identifier '" + id + "' does not exist."};
  }
  auto& v = it->second;
  const std::string where = method + " /api/vcenter/vm/" + id;
  if (sub.empty()) {
    if (method == "GET") {
      return answer{200, vm_info(id, rest)};
    }
    if (method == "DELETE") {
      if (v.power != "POWERED_OFF") {
        return answer{400, nullptr, "NOT_ALLOWED_IN_CURRENT_STATE", "The virtual machine is powered on."};
      }
      _vms.erase(it);
      for (auto& [tag, vms] : _attached) {
        vms.erase(id);
      }
      return answer{200, nullptr};
    }
  }
  if (sub.size() == 1 && sub[0] == "power") {
    if (method == "GET") {
      return answer{200, {{"state", visible_power(v, true)}}};
    }
    if (method == "POST") {
      if (!body.is_null()) {
        return invalid(where + "/power", {"power actions take no body"});
      }
      const auto change = [&](const std::string& to) {
        v.shown = visible_power(v, false);
        v.power = to;
        v.lag = _options.power_reads;
        if (v.lag == 0) {
          v.shown = to;
        }
        return answer{200, nullptr};
      };
      if (action == "start") {
        if (v.power == "POWERED_ON") {
          return answer{400, nullptr, "ALREADY_IN_DESIRED_STATE", "The virtual machine is already powered on."};
        }
        return change("POWERED_ON");
      }
      if (action == "stop") {
        if (v.power == "POWERED_OFF") {
          return answer{400, nullptr, "ALREADY_IN_DESIRED_STATE", "The virtual machine is already powered off."};
        }
        return change("POWERED_OFF");
      }
      if (action == "suspend") {
        if (v.power == "SUSPENDED") {
          return answer{400, nullptr, "ALREADY_IN_DESIRED_STATE", "The virtual machine is already suspended."};
        }
        if (v.power == "POWERED_OFF") {
          return answer{400, nullptr, "NOT_ALLOWED_IN_CURRENT_STATE", "The virtual machine is powered off."};
        }
        return change("SUSPENDED");
      }
      return invalid(where + "/power", {"unknown action '" + action + "'"});
    }
  }
  const bool tools_running = _options.tools && v.power == "POWERED_ON";
  if (sub.size() == 1 && sub[0] == "tools" && method == "GET") {
    return answer{200,
                  {{"run_state", tools_running ? "RUNNING" : "NOT_RUNNING"},
                   {"version_status", "CURRENT"},
                   {"install_type", "OPEN_VM_TOOLS"},
                   {"auto_update_supported", false},
                   {"upgrade_policy", "MANUAL"},
                   {"version_number", 12352},
                   {"version", "12352"}}};
  }
  if (sub.size() == 2 && sub[0] == "guest" && method == "GET") {
    if (!tools_running) {
      return answer{503, nullptr, "SERVICE_UNAVAILABLE", "VMware Tools are not running in the guest."};
    }
    if (sub[1] == "identity") {
      return answer{200,
                    {{"name", "UBUNTU_64"},
                     {"family", "LINUX"},
                     {"full_name", {{"args", json::array()}, {"default_message", "Ubuntu Linux (64-bit)"}, {"id", "x"}}},
                     {"host_name", v.name},
                     {"ip_address", _options.guest_ip}}};
    }
    if (sub[1] == "local-filesystem") {
      json fs = json::object();
      if (v.fs_capacity > 0) {
        fs["/"] = {{"capacity", v.fs_capacity}, {"free_space", v.fs_free}, {"filesystem", "ext4"}, {"mappings", json::array()}};
      }
      if (rest) {
        json arr = json::array();
        for (const auto& [k, value] : fs.items()) {
          arr.push_back({{"key", k}, {"value", value}});
        }
        return answer{200, arr};
      }
      return answer{200, fs};
    }
  }
  if (sub.size() == 2 && sub[0] == "hardware") {
    if ((sub[1] == "cpu" || sub[1] == "memory") && method == "PATCH") {
      std::vector<std::string> problems;
      if (sub[1] == "cpu") {
        unknown_keys(body, {"count", "cores_per_socket", "hot_add_enabled", "hot_remove_enabled"}, "spec", problems);
        require_int(body, "count", 1, "spec", problems, false);
      } else {
        unknown_keys(body, {"size_MiB", "hot_add_enabled"}, "spec", problems);
        require_int(body, "size_MiB", 4, "spec", problems, false);
      }
      if (!problems.empty()) {
        return invalid(where + "/hardware/" + sub[1], problems);
      }
      if (v.power != "POWERED_OFF") {
        return answer{400, nullptr, "NOT_ALLOWED_IN_CURRENT_STATE", "Hot add is not enabled."};
      }
      if (sub[1] == "cpu" && body.contains("count")) {
        v.cpu = body["count"];
      }
      if (sub[1] == "memory" && body.contains("size_MiB")) {
        v.memory_mib = body["size_MiB"];
      }
      return answer{200, nullptr};
    }
    if (sub[1] == "ethernet" && method == "GET") {
      json list = json::array();
      for (const auto& [k, nic] : v.nics) {
        list.push_back({{"nic", k}});
      }
      return answer{200, list};
    }
    if (sub[1] == "ethernet" && method == "POST") {
      std::vector<std::string> problems;
      unknown_keys(body, {"type", "upt_compatibility_enabled", "mac_type", "mac_address", "pci_slot_number",
                          "wake_on_lan_enabled", "backing", "start_connected", "allow_guest_control"},
                   "spec", problems);
      static const std::set<std::string> types{"E1000", "E1000E", "PCNET32", "VMXNET", "VMXNET2", "VMXNET3"};
      if (body.contains("type") && (!body["type"].is_string() || types.count(body["type"]) == 0)) {
        problems.push_back("spec.type: not an Ethernet.EmulationType");
      }
      require_bool(body, "start_connected", "spec", problems);
      if (!body.contains("backing")) {
        problems.push_back("spec.backing: required");
      } else {
        const auto& b = body["backing"];
        unknown_keys(b, {"type", "network", "distributed_port", "host_device"}, "spec.backing", problems);
        require_string(b, "type", "spec.backing", problems);
        require_string(b, "network", "spec.backing", problems);
        if (b.contains("network") && b["network"].is_string()) {
          auto net = networks().find(b["network"]);
          if (net == networks().end()) {
            problems.push_back("spec.backing.network: no such network");
          } else if (b.value("type", std::string{}) != net->second["type"]) {
            problems.push_back("spec.backing.type: " + b.value("type", std::string{}) + " does not match network type " +
                               net->second["type"].get<std::string>());
          }
        }
      }
      if (!problems.empty()) {
        return invalid(where + "/hardware/ethernet", problems);
      }
      const std::string key = std::to_string(4000 + v.nics.size());
      json nic = body;
      nic.erase("upt_compatibility_enabled");
      v.nics[key] = nic;
      return answer{200, key};
    }
  }
  return answer{404, nullptr, "OPERATION_NOT_FOUND", "no operation " + where};
}

fake_vsphere_api::answer fake_vsphere_api::tagging(const std::string& method, const std::vector<std::string>& seg,
                                                   const std::string& action, const json& body) {
  const std::string where = method + " /api/cis/tagging/" + seg[0];
  if (seg[0] == "category") {
    if (seg.size() == 1 && method == "GET") {
      json ids = json::array();
      for (const auto& [id, c] : _categories) {
        ids.push_back(id);
      }
      return answer{200, ids};
    }
    if (seg.size() == 1 && method == "POST" && action.empty()) {
      std::vector<std::string> problems;
      unknown_keys(body, {"name", "description", "cardinality", "associable_types", "category_id"}, "create_spec",
                   problems);
      require_string(body, "name", "create_spec", problems);
      if (!body.contains("description") || !body["description"].is_string()) {
        problems.push_back("create_spec.description: required (a string)");
      }
      if (!body.contains("cardinality") || (body["cardinality"] != "SINGLE" && body["cardinality"] != "MULTIPLE")) {
        problems.push_back("create_spec.cardinality: SINGLE or MULTIPLE");
      }
      if (!body.contains("associable_types") || !body["associable_types"].is_array()) {
        problems.push_back("create_spec.associable_types: required (a list)");
      }
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      for (const auto& [id, c] : _categories) {
        if (c["name"] == body["name"]) {
          return answer{400, nullptr, "ALREADY_EXISTS", "Category " + c["name"].get<std::string>() + " already exists"};
        }
      }
      const std::string id = "urn:vmomi:InventoryServiceCategory:c0000000-0000-4000-8000-" +
                             std::to_string(100000000000ULL + _next_urn++) + ":GLOBAL";
      _categories[id] = body;
      return answer{200, id};
    }
    if (seg.size() == 2 && method == "GET") {
      auto it = _categories.find(seg[1]);
      if (it == _categories.end()) {
        return answer{404, nullptr, "NOT_FOUND", "category not found"};
      }
      json c = it->second;
      c["id"] = seg[1];
      c["used_by"] = json::array();
      return answer{200, c};
    }
  }
  if (seg[0] == "tag") {
    if (seg.size() == 1 && method == "POST" && action == "list-tags-for-category") {
      std::vector<std::string> problems;
      unknown_keys(body, {"category_id"}, "body", problems);
      require_string(body, "category_id", "body", problems);
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      if (_categories.count(body["category_id"]) == 0) {
        return answer{404, nullptr, "NOT_FOUND", "category not found"};
      }
      json ids = json::array();
      for (const auto& [id, t] : _tags) {
        if (t["category_id"] == body["category_id"]) {
          ids.push_back(id);
        }
      }
      return answer{200, ids};
    }
    if (seg.size() == 1 && method == "POST" && action.empty()) {
      std::vector<std::string> problems;
      unknown_keys(body, {"name", "description", "category_id", "tag_id"}, "create_spec", problems);
      require_string(body, "name", "create_spec", problems);
      require_string(body, "category_id", "create_spec", problems);
      if (!body.contains("description") || !body["description"].is_string()) {
        problems.push_back("create_spec.description: required (a string)");
      }
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      if (_categories.count(body["category_id"]) == 0) {
        return answer{404, nullptr, "NOT_FOUND", "category not found"};
      }
      for (const auto& [id, t] : _tags) {
        if (t["name"] == body["name"] && t["category_id"] == body["category_id"]) {
          return answer{400, nullptr, "ALREADY_EXISTS", "Tag " + t["name"].get<std::string>() + " already exists"};
        }
      }
      const std::string id = "urn:vmomi:InventoryServiceTag:t0000000-0000-4000-8000-" +
                             std::to_string(100000000000ULL + _next_urn++) + ":GLOBAL";
      _tags[id] = body;
      return answer{200, id};
    }
    if (seg.size() == 2) {
      auto it = _tags.find(seg[1]);
      if (it == _tags.end()) {
        return answer{404, nullptr, "NOT_FOUND", "tag not found"};
      }
      if (method == "GET") {
        json t = it->second;
        t["id"] = seg[1];
        t["used_by"] = json::array();
        return answer{200, t};
      }
      if (method == "PATCH") {
        std::vector<std::string> problems;
        unknown_keys(body, {"name", "description"}, "update_spec", problems);
        if (!problems.empty()) {
          return invalid(where, problems);
        }
        for (const auto& [k, value] : body.items()) {
          it->second[k] = value;
        }
        return answer{200, nullptr};
      }
      if (method == "DELETE") {
        _tags.erase(it);
        _attached.erase(seg[1]);
        return answer{200, nullptr};
      }
    }
  }
  if (seg[0] == "tag-association") {
    const auto check_object = [&](const json& o, std::vector<std::string>& problems) {
      unknown_keys(o, {"type", "id"}, "object_id", problems);
      require_string(o, "type", "object_id", problems);
      require_string(o, "id", "object_id", problems);
    };
    if (seg.size() == 2 && method == "POST" && action == "attach") {
      std::vector<std::string> problems;
      unknown_keys(body, {"object_id"}, "body", problems);
      if (body.contains("object_id")) {
        check_object(body["object_id"], problems);
      } else {
        problems.push_back("body.object_id: required");
      }
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      if (_tags.count(seg[1]) == 0) {
        return answer{404, nullptr, "NOT_FOUND", "tag not found"};
      }
      if (body["object_id"]["type"] != "VirtualMachine" || _vms.count(body["object_id"]["id"]) == 0) {
        return answer{404, nullptr, "NOT_FOUND", "object not found"};
      }
      _attached[seg[1]].insert(body["object_id"]["id"].get<std::string>());
      return answer{200, nullptr};
    }
    if (seg.size() == 1 && method == "POST" && action == "list-attached-tags") {
      std::vector<std::string> problems;
      unknown_keys(body, {"object_id"}, "body", problems);
      if (body.contains("object_id")) {
        check_object(body["object_id"], problems);
      } else {
        problems.push_back("body.object_id: required");
      }
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      json ids = json::array();
      for (const auto& [tag, vms] : _attached) {
        if (vms.count(body["object_id"]["id"].get<std::string>()) > 0) {
          ids.push_back(tag);
        }
      }
      return answer{200, ids};
    }
    if (seg.size() == 1 && method == "POST" && action == "list-attached-objects-on-tags") {
      std::vector<std::string> problems;
      unknown_keys(body, {"tag_ids"}, "body", problems);
      if (!body.contains("tag_ids") || !body["tag_ids"].is_array()) {
        problems.push_back("body.tag_ids: required (a list)");
      }
      if (!problems.empty()) {
        return invalid(where, problems);
      }
      json out = json::array();
      for (const auto& t : body["tag_ids"]) {
        if (!t.is_string() || _tags.count(t) == 0) {
          continue;  // unknown tags are skipped, as documented
        }
        json objects = json::array();
        for (const auto& vm : _attached[t]) {
          objects.push_back({{"type", "VirtualMachine"}, {"id", vm}});
        }
        out.push_back({{"tag_id", t}, {"object_ids", objects}});
      }
      return answer{200, out};
    }
  }
  return answer{404, nullptr, "OPERATION_NOT_FOUND", "no operation " + where + (action.empty() ? "" : "?action=" + action)};
}

}  // namespace prov::test
