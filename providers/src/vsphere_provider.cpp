#include "prov/providers/vsphere_provider.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

#include "detail/cluster_config.hpp"
#include "detail/vsphere_api.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/time_format.hpp"

namespace prov::providers {

namespace {

using json = nlohmann::json;
using events::step_kind;
using steady = std::chrono::steady_clock;
using vsphere::operation;
using vsphere::reply;

constexpr std::string_view vm_kind = "vm";

std::string text_of(const json& j, std::string_view key) {
  if (!j.is_object()) {
    return {};
  }
  auto it = j.find(std::string{key});
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// An integer field, accepting the spelling of either API generation ("size_MiB" / "size_mib").
std::optional<std::int64_t> integer_of(const json& j, std::initializer_list<std::string_view> keys) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  for (auto key : keys) {
    auto it = j.find(std::string{key});
    if (it != j.end() && it->is_number_integer()) {
      return it->get<std::int64_t>();
    }
  }
  return std::nullopt;
}

std::int64_t cpu_count_for(const events::resource_spec& spec) {
  return std::max<std::int64_t>(1, (spec.cpu_millis + 999) / 1000);
}

bool has_prefix(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes) {
    if (s.substr(0, p.size()) == p) {
      return true;
    }
  }
  return false;
}

json object_id(const std::string& vm) {
  return json{{"type", "VirtualMachine"}, {"id", vm}};
}

/// The request's VM: the recorded, unreleased "vm" resource.
const events::resource* vm_of(const std::vector<events::resource>& resources) {
  for (const auto& r : resources) {
    if (r.kind == vm_kind && !r.released) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings and credentials

result<vsphere_settings> vsphere_settings::parse(std::string_view text) {
  vsphere_settings s;
  if (text.empty()) {
    return s;
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(errc::invalid_argument, "vsphere settings are not JSON");
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "vsphere settings must be a JSON object");
  }
  const auto bad = [](const std::string& key, const std::string& why) {
    return make_error(errc::invalid_argument, "vsphere settings: " + key + " " + why);
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& key = it.key();
    const auto& v = it.value();
    const detail::setting_field field{"vsphere", key, v};
    status st;
    if (key == "datacenter") {
      st = field.string(s.datacenter);
    } else if (key == "folder") {
      st = field.string(s.folder);
    } else if (key == "resourcePool") {
      st = field.string(s.resource_pool);
    } else if (key == "cluster") {
      st = field.string(s.cluster);
    } else if (key == "datastore") {
      st = field.string(s.datastore);
    } else if (key == "network") {
      st = field.string(s.network);
    } else if (key == "template") {
      st = field.string(s.template_id);
    } else if (key == "guestOs") {
      st = field.string(s.guest_os);
    } else if (key == "nicType") {
      st = field.string(s.nic_type);
    } else if (key == "namePrefix") {
      st = field.string(s.name_prefix);
    } else if (key == "tagCategory") {
      st = field.string(s.tag_category);
    } else if (key == "verifyMode") {
      st = field.string(s.verify_mode);
    } else if (key == "verifyPort") {
      if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > 65535) {
        return bad(key, "must be a port (1-65535)");
      }
      s.verify_port = v.get<int>();
    } else if (key == "requireGuestTools") {
      st = field.boolean(s.require_guest_tools);
    } else if (key == "suspendAction") {
      st = field.string(s.suspend_action);
    } else if (key == "api") {
      st = field.string(s.api);
    } else if (key == "powerTimeoutMs") {
      st = field.millis(s.power_timeout);
    } else if (key == "verifyTimeoutMs") {
      st = field.millis(s.verify_timeout);
    } else if (key == "pollIntervalMs") {
      st = field.millis(s.poll_interval);
    } else if (key == "connectTimeoutMs") {
      st = field.millis(s.connect_timeout);
    } else if (key == "requestTimeoutMs") {
      st = field.millis(s.request_timeout);
    } else if (key == "insecureSkipVerify") {
      st = field.boolean(s.insecure_skip_verify);
    } else {
      return bad(key, "is not a known setting");
    }
    if (!st) {
      return std::move(st).err();
    }
  }
  if (s.verify_mode != "api" && s.verify_mode != "tcp") {
    return bad("verifyMode", "must be \"api\" or \"tcp\"");
  }
  if (s.suspend_action != "suspend" && s.suspend_action != "stop") {
    return bad("suspendAction", "must be \"suspend\" or \"stop\"");
  }
  if (s.api != "auto" && s.api != "api" && s.api != "rest") {
    return bad("api", "must be \"auto\", \"api\" or \"rest\"");
  }
  static const std::set<std::string> nic_types{"E1000", "E1000E", "PCNET32", "VMXNET", "VMXNET2", "VMXNET3"};
  if (nic_types.count(s.nic_type) == 0) {
    return bad("nicType", "must be one of E1000, E1000E, PCNET32, VMXNET, VMXNET2, VMXNET3");
  }
  if (s.guest_os.empty()) {
    return bad("guestOs", "must name a VM.GuestOS value");
  }
  for (char c : s.guest_os) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return bad("guestOs", "must be a VM.GuestOS value (e.g. \"UBUNTU_64\")");
    }
  }
  if (s.name_prefix.size() > 20) {
    return bad("namePrefix", "must be at most 20 characters");
  }
  for (char c : s.name_prefix) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return bad("namePrefix", "must be lowercase letters, digits and '-'");
    }
  }
  if (s.tag_category.empty()) {
    return bad("tagCategory", "must name a tag category");
  }
  if (!s.cluster.empty() && !s.resource_pool.empty()) {
    return bad("cluster", "and resourcePool are alternatives: set one");
  }
  return s;
}

result<vsphere_credentials> vsphere_credentials::parse(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(errc::invalid_argument, "vsphere credentials are not JSON");  // never echo secrets
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "vsphere credentials must be a JSON object");
  }
  vsphere_credentials c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return make_error(errc::invalid_argument, "vsphere credentials: " + it.key() + " must be a string");
    }
    if (it.key() == "username") {
      c.username = it.value().get<std::string>();
    } else if (it.key() == "password") {
      c.password = it.value().get<std::string>();
    } else if (it.key() == "caPem") {
      c.ca_pem = it.value().get<std::string>();
    } else {
      return make_error(errc::invalid_argument, "vsphere credentials: " + it.key() + " is not a known field");
    }
  }
  if (c.username.empty() || c.password.empty()) {
    return make_error(errc::invalid_argument, "vsphere credentials: username and password are required");
  }
  if (c.username.find(':') != std::string::npos) {
    return make_error(errc::invalid_argument, "vsphere credentials: username must not contain ':'");
  }
  return c;
}

std::string vsphere_provider::vm_name(std::string_view prefix, std::string_view tenant, std::string_view request_id) {
  std::string tenant_part;
  for (char c : tenant) {
    const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
      tenant_part.push_back(l);
    } else if (!tenant_part.empty() && tenant_part.back() != '-') {
      tenant_part.push_back('-');
    }
    if (tenant_part.size() >= 24) {
      break;
    }
  }
  while (!tenant_part.empty() && tenant_part.back() == '-') {
    tenant_part.pop_back();
  }
  std::string name{prefix};
  if (!tenant_part.empty()) {
    name += tenant_part + "-";
  }
  return name + sha256_hex(request_id).substr(0, 12);
}

// ---------------------------------------------------------------------------------------------
// The API calls

namespace {

/// Where new VMs go, as vCenter ids.
struct placement {
  std::string folder;
  std::string resource_pool;
  std::string datastore;
  std::string network;
  std::string network_type;  ///< STANDARD_PORTGROUP, DISTRIBUTED_PORTGROUP, OPAQUE_NETWORK
};

/// A request's tag.
struct tag_ref {
  std::string id;
  vsphere::marker mark;
};

}  // namespace

struct vsphere_provider::impl {
  impl(std::string cluster_, std::string endpoint, vsphere_settings s_, const vsphere_credentials& creds,
       const clock* clk_)
      : cluster(std::move(cluster_)), s(std::move(s_)), api(options_for(endpoint, s, creds)), clk(clk_) {}

  static vsphere::api_client::options options_for(const std::string& endpoint, const vsphere_settings& s,
                                                  const vsphere_credentials& c) {
    vsphere::api_client::options o;
    o.endpoint = endpoint;
    o.username = c.username;
    o.password = c.password;
    o.dialect = s.api;
    o.http.verify_tls = !s.insecure_skip_verify;
    o.http.ca_pem = c.ca_pem;
    o.http.connect_timeout = s.connect_timeout;
    o.http.request_timeout = s.request_timeout;
    return o;
  }

  timestamp now() const { return clk != nullptr ? clk->now() : wall.now(); }

  reply call(std::string method, std::string path, std::vector<std::pair<std::string, std::string>> query = {},
             std::optional<json> body = std::nullopt, std::string rest_wrap = "") {
    operation op;
    op.method = std::move(method);
    op.path = std::move(path);
    op.query = std::move(query);
    op.body = std::move(body);
    op.rest_wrap = std::move(rest_wrap);
    return api.call(op);
  }

  // -- placement --------------------------------------------------------------------------

  /// One inventory object by id or name: ids (by prefix) are used as they are.
  std::optional<provider_error> lookup(const std::string& setting, const std::string& value,
                                       std::initializer_list<std::string_view> id_prefixes, const std::string& path,
                                       const std::string& id_field, const std::string& datacenter, std::string& out,
                                       std::vector<std::pair<std::string, std::string>> extra = {}) {
    if (value.empty() || has_prefix(value, id_prefixes)) {
      out = value;
      return std::nullopt;
    }
    auto query = std::move(extra);
    query.emplace_back("names", value);
    if (!datacenter.empty()) {
      query.emplace_back("datacenters", datacenter);
    }
    auto r = call("GET", path, query);
    if (!r.ok() || !r.value.is_array()) {
      return vsphere::error_of(r, "look up " + setting + " '" + value + "'");
    }
    if (r.value.size() != 1) {
      return provider_error{"misconfigured",
                            setting + " '" + value + "' " +
                                (r.value.empty() ? std::string{"does not exist in vCenter"}
                                                 : "names " + std::to_string(r.value.size()) +
                                                       " objects; use its id or set datacenter"),
                            false};
    }
    out = text_of(r.value[0], id_field);
    return std::nullopt;
  }

  std::optional<provider_error> resolve(placement& out) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (resolved) {
        out = *resolved;
        return std::nullopt;
      }
    }
    placement p;
    std::string dc;
    if (auto e = lookup("datacenter", s.datacenter, {"datacenter-"}, "/api/vcenter/datacenter", "datacenter", "", dc)) {
      return e;
    }
    if (auto e = lookup("folder", s.folder, {"group-"}, "/api/vcenter/folder", "folder", dc, p.folder,
                        {{"type", "VIRTUAL_MACHINE"}})) {
      return e;
    }
    if (auto e = lookup("resourcePool", s.resource_pool, {"resgroup-"}, "/api/vcenter/resource-pool",
                        "resource_pool", dc, p.resource_pool)) {
      return e;
    }
    if (!s.cluster.empty()) {
      std::string cluster_id;
      if (auto e = lookup("cluster", s.cluster, {"domain-c"}, "/api/vcenter/cluster", "cluster", dc, cluster_id)) {
        return e;
      }
      auto info = call("GET", "/api/vcenter/cluster/" + cluster_id);
      if (!info.ok()) {
        return vsphere::error_of(info, "read cluster " + cluster_id);
      }
      p.resource_pool = text_of(info.value, "resource_pool");
    }
    if (auto e = lookup("datastore", s.datastore, {"datastore-"}, "/api/vcenter/datastore", "datastore", dc,
                        p.datastore)) {
      return e;
    }
    if (!s.network.empty()) {
      // The NIC backing needs the network's type: always read it.
      std::vector<std::pair<std::string, std::string>> query;
      query.emplace_back(has_prefix(s.network, {"network-", "dvportgroup-"}) ? "networks" : "names", s.network);
      if (!dc.empty()) {
        query.emplace_back("datacenters", dc);
      }
      auto r = call("GET", "/api/vcenter/network", query);
      if (!r.ok() || !r.value.is_array()) {
        return vsphere::error_of(r, "look up network '" + s.network + "'");
      }
      if (r.value.size() != 1) {
        return provider_error{"misconfigured",
                              "network '" + s.network + "' " +
                                  (r.value.empty() ? std::string{"does not exist in vCenter"}
                                                   : "is ambiguous; use its id or set datacenter"),
                              false};
      }
      p.network = text_of(r.value[0], "network");
      p.network_type = text_of(r.value[0], "type");
    }
    std::lock_guard<std::mutex> guard{mutex};
    resolved = p;
    out = p;
    return std::nullopt;
  }

  // -- tagging ----------------------------------------------------------------------------

  /// Our tag category's id ("" when it does not exist and `create` is false).
  std::optional<provider_error> category(bool create, std::string& out) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (!category_id.empty()) {
        out = category_id;
        return std::nullopt;
      }
    }
    for (int round = 0; round < 2; ++round) {
      auto list = call("GET", "/api/cis/tagging/category");
      if (!list.ok() || !list.value.is_array()) {
        return vsphere::error_of(list, "list tag categories");
      }
      for (const auto& id : list.value) {
        if (!id.is_string()) {
          continue;
        }
        auto c = call("GET", "/api/cis/tagging/category/" + id.get<std::string>());
        if (c.status == 404) {
          continue;
        }
        if (!c.ok()) {
          return vsphere::error_of(c, "read tag category " + id.get<std::string>());
        }
        if (text_of(c.value, "name") == s.tag_category) {
          std::lock_guard<std::mutex> guard{mutex};
          category_id = id.get<std::string>();
          out = category_id;
          return std::nullopt;
        }
      }
      if (!create) {
        out.clear();
        return std::nullopt;
      }
      const json spec{{"name", s.tag_category},
                      {"description", "VMs of provisiond requests: one tag per request"},
                      {"cardinality", "MULTIPLE"},
                      {"associable_types", json::array({"VirtualMachine"})}};
      auto created = call("POST", "/api/cis/tagging/category", {}, spec, "create_spec");
      if (created.ok() && created.value.is_string()) {
        std::lock_guard<std::mutex> guard{mutex};
        category_id = created.value.get<std::string>();
        out = category_id;
        return std::nullopt;
      }
      if (!created.is("ALREADY_EXISTS")) {
        return vsphere::error_of(created, "create tag category " + s.tag_category);
      }
      // Made concurrently: list again.
    }
    return provider_error{"conflict", "tag category " + s.tag_category + " exists but cannot be found", true};
  }

  /// Refreshes the names of our category's tags (new ones read, gone ones dropped).
  std::optional<provider_error> scan_tags(const std::string& cat, std::vector<std::string>& ids) {
    auto list = call("POST", "/api/cis/tagging/tag", {{"action", "list-tags-for-category"}}, json{{"category_id", cat}});
    if (!list.ok() || !list.value.is_array()) {
      return vsphere::error_of(list, "list the tags of category " + s.tag_category);
    }
    std::map<std::string, std::string> known;
    {
      std::lock_guard<std::mutex> guard{mutex};
      known = tag_names;
    }
    std::map<std::string, std::string> names;
    for (const auto& id_json : list.value) {
      if (!id_json.is_string()) {
        continue;
      }
      const auto id = id_json.get<std::string>();
      if (auto it = known.find(id); it != known.end()) {
        names[id] = it->second;
        ids.push_back(id);
        continue;
      }
      auto tag = call("GET", "/api/cis/tagging/tag/" + id);
      if (tag.status == 404) {
        continue;
      }
      if (!tag.ok()) {
        return vsphere::error_of(tag, "read tag " + id);
      }
      names[id] = text_of(tag.value, "name");
      ids.push_back(id);
    }
    std::lock_guard<std::mutex> guard{mutex};
    tag_names = std::move(names);
    return std::nullopt;
  }

  bool in_category(const std::string& tag_id) {
    std::lock_guard<std::mutex> guard{mutex};
    return tag_names.count(tag_id) > 0;
  }

  /// Reads one tag; its marker when it is ours.
  std::optional<provider_error> read_tag(const std::string& id, std::optional<tag_ref>& out) {
    auto tag = call("GET", "/api/cis/tagging/tag/" + id);
    if (tag.status == 404) {
      out.reset();
      return std::nullopt;
    }
    if (!tag.ok()) {
      return vsphere::error_of(tag, "read tag " + id);
    }
    auto mark = vsphere::parse_marker(text_of(tag.value, "description"));
    if (mark) {
      out = tag_ref{id, *mark};
    } else {
      out.reset();
    }
    return std::nullopt;
  }

  /// The tag of a request, if any.
  std::optional<provider_error> find_tag(const std::string& cat, const std::string& request_id,
                                         std::optional<tag_ref>& out) {
    out.reset();
    std::vector<std::string> ids;
    if (auto e = scan_tags(cat, ids)) {
      return e;
    }
    std::string id;
    {
      std::lock_guard<std::mutex> guard{mutex};
      for (const auto& [tag_id, name] : tag_names) {
        if (name == request_id) {
          id = tag_id;
        }
      }
    }
    if (id.empty()) {
      return std::nullopt;
    }
    if (auto e = read_tag(id, out)) {
      return e;
    }
    if (out && out->mark.request_id != request_id) {
      out.reset();  // a tag with the request's name that someone else wrote
    }
    return std::nullopt;
  }

  std::optional<provider_error> write_marker(const tag_ref& tag) {
    auto r = call("PATCH", "/api/cis/tagging/tag/" + tag.id, {}, json{{"description", render_marker(tag.mark)}},
                  "update_spec");
    if (!r.ok()) {
      return vsphere::error_of(r, "update tag " + tag.id);
    }
    return std::nullopt;
  }

  std::optional<provider_error> attached_tags(const std::string& vm, std::vector<std::string>& out) {
    auto r = call("POST", "/api/cis/tagging/tag-association", {{"action", "list-attached-tags"}},
                  json{{"object_id", object_id(vm)}});
    if (!r.ok() || !r.value.is_array()) {
      return vsphere::error_of(r, "list the tags of " + vm);
    }
    for (const auto& id : r.value) {
      if (id.is_string()) {
        out.push_back(id.get<std::string>());
      }
    }
    return std::nullopt;
  }

  std::optional<provider_error> attach(const std::string& tag, const std::string& vm) {
    auto r = call("POST", "/api/cis/tagging/tag-association/" + tag, {{"action", "attach"}},
                  json{{"object_id", object_id(vm)}});
    if (!r.ok()) {
      return vsphere::error_of(r, "tag " + vm);
    }
    return std::nullopt;
  }

  /// VMs attached to each tag: tag id -> VM ids.
  std::optional<provider_error> attached_vms(const std::vector<std::string>& tags,
                                             std::map<std::string, std::vector<std::string>>& out) {
    if (tags.empty()) {
      return std::nullopt;
    }
    auto r = call("POST", "/api/cis/tagging/tag-association", {{"action", "list-attached-objects-on-tags"}},
                  json{{"tag_ids", tags}});
    if (!r.ok() || !r.value.is_array()) {
      return vsphere::error_of(r, "list tagged VMs");
    }
    for (const auto& entry : r.value) {
      const auto tag = text_of(entry, "tag_id");
      auto& vms = out[tag];
      if (entry.contains("object_ids") && entry["object_ids"].is_array()) {
        for (const auto& o : entry["object_ids"]) {
          if (text_of(o, "type") == "VirtualMachine") {
            vms.push_back(text_of(o, "id"));
          }
        }
      }
    }
    return std::nullopt;
  }

  // -- VMs --------------------------------------------------------------------------------

  /// VM summaries ({vm, name, power_state, ...}) filtered by `key` ("names" or "vms").
  std::optional<provider_error> list_vms(const std::string& key, const std::vector<std::string>& values,
                                         std::vector<json>& out) {
    if (values.empty()) {
      return std::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> query;
    for (const auto& v : values) {
      query.emplace_back(key, v);
    }
    auto r = call("GET", "/api/vcenter/vm", query);
    if (!r.ok() || !r.value.is_array()) {
      return vsphere::error_of(r, "list VMs");
    }
    for (auto& vm : r.value) {
      out.push_back(std::move(vm));
    }
    return std::nullopt;
  }

  std::optional<provider_error> power_state(const std::string& vm, std::string& state) {
    auto r = call("GET", "/api/vcenter/vm/" + vm + "/power");
    if (!r.ok()) {
      return vsphere::error_of(r, "read the power state of " + vm);
    }
    state = text_of(r.value, "state");
    return std::nullopt;
  }

  /// A power action; "already in the desired state" is success.
  std::optional<provider_error> set_power(const std::string& vm, const std::string& action) {
    auto r = call("POST", "/api/vcenter/vm/" + vm + "/power", {{"action", action}});
    if (r.ok() || r.is("ALREADY_IN_DESIRED_STATE")) {
      return std::nullopt;
    }
    return vsphere::error_of(r, action + " " + vm);
  }

  /// Polls the power state until it is one of `wanted` (bounded); retryable errors are waited out.
  std::optional<provider_error> wait_power(const std::string& vm, std::initializer_list<std::string_view> wanted,
                                           std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    std::string last = "no answer yet";
    for (;;) {
      std::string state;
      if (auto e = power_state(vm, state)) {
        if (!e->retryable) {
          return e;
        }
        last = e->message;
      } else {
        for (auto w : wanted) {
          if (state == w) {
            return std::nullopt;
          }
        }
        last = state;
      }
      if (steady::now() + s.poll_interval > deadline) {
        return provider_error{"timeout",
                              vm + " did not reach " + std::string{*wanted.begin()} + " within " +
                                  std::to_string(timeout.count()) + " ms (last: " + last + ")",
                              true};
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
  }

  /// Powers a VM off and deletes it. Gone already is success; a VM whose name is no longer
  /// `expected_name` (when given) is left alone (not ours any more).
  std::optional<provider_error> destroy(const std::string& vm, const std::string& expected_name, bool& deleted) {
    deleted = false;
    auto info = call("GET", "/api/vcenter/vm/" + vm);
    if (info.status == 404 || info.is("NOT_FOUND")) {
      return std::nullopt;
    }
    if (!info.ok()) {
      return vsphere::error_of(info, "read " + vm);
    }
    if (!expected_name.empty() && text_of(info.value, "name") != expected_name) {
      return std::nullopt;
    }
    if (text_of(info.value, "power_state") != "POWERED_OFF") {
      if (auto e = set_power(vm, "stop")) {
        return e;
      }
      if (auto e = wait_power(vm, {"POWERED_OFF"}, s.power_timeout)) {
        return e;
      }
    }
    auto r = call("DELETE", "/api/vcenter/vm/" + vm);
    if (r.ok() || r.status == 404 || r.is("NOT_FOUND")) {
      deleted = r.ok();
      return std::nullopt;
    }
    return vsphere::error_of(r, "delete " + vm);
  }

  /// Records the suspended flag in the request's tag (what the inventory reports).
  std::optional<provider_error> mark_suspended(const std::string& request_id, bool suspended) {
    std::string cat;
    if (auto e = category(false, cat)) {
      return e;
    }
    if (cat.empty()) {
      return std::nullopt;
    }
    std::optional<tag_ref> tag;
    if (auto e = find_tag(cat, request_id, tag)) {
      return e;
    }
    if (!tag || tag->mark.suspended == suspended) {
      return std::nullopt;
    }
    tag->mark.suspended = suspended;
    return write_marker(*tag);
  }

  std::string cluster;
  vsphere_settings s;
  vsphere::api_client api;
  const clock* clk;
  system_clock_source wall;
  std::mutex mutex;
  std::string category_id;
  std::map<std::string, std::string> tag_names;  ///< our category's tags: id -> name
  std::optional<placement> resolved;
};

vsphere_provider::vsphere_provider(std::string cluster_id, std::string endpoint, vsphere_settings settings,
                                   vsphere_credentials credentials, const clock* clk)
    : _settings(std::move(settings)) {
  _impl = std::make_unique<impl>(std::move(cluster_id), std::move(endpoint), _settings, credentials, clk);
}

vsphere_provider::~vsphere_provider() = default;

result<std::unique_ptr<vsphere_provider>> vsphere_provider::from_cluster(const events::cluster_state& cluster,
                                                                         const secret_box* secrets, const clock* clk) {
  if (cluster.type != events::provider_type::vmware) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " is not a vSphere cluster");
  }
  if (cluster.endpoint.empty()) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " has no vCenter endpoint");
  }
  return detail::assemble_provider<vsphere_provider, vsphere_credentials>(
      cluster, vsphere_settings::parse(cluster.settings_json), secrets, "username, password", clk);
}

// ---------------------------------------------------------------------------------------------
// Steps

step_outcome vsphere_provider::run_step(const step_call& call) {
  step_outcome out;
  if (call.type != events::service_type::vps) {
    out.error = provider_error{"unsupported",
                               "vSphere clusters provide VMs (vps), not " +
                                   std::string{events::service_type_names[static_cast<std::size_t>(call.type)]},
                               false};
    return out;
  }
  auto& d = *_impl;
  const auto& s = _settings;
  const std::string name = vm_name(s.name_prefix, call.tenant, call.request_id);
  const auto vm_resource = [&](const std::string& id) {
    return events::resource{std::string{vm_kind}, id, name, call.step, call.idempotency_key, false};
  };
  const auto fail = [&](provider_error e) {
    out.error = std::move(e);
    return out;
  };

  switch (call.step) {
    case step_kind::allocate: {
      placement p;
      if (auto e = d.resolve(p)) {
        return fail(*e);
      }
      if (p.folder.empty() || p.resource_pool.empty() || (s.template_id.empty() && p.datastore.empty())) {
        return fail(provider_error{"misconfigured",
                                   "settings need folder, resourcePool (or cluster) and, to create VMs without a "
                                   "template, datastore",
                                   false});
      }
      std::string cat;
      if (auto e = d.category(true, cat)) {
        return fail(*e);
      }
      std::vector<json> existing;
      if (auto e = d.list_vms("names", {name}, existing)) {
        return fail(*e);
      }
      if (!existing.empty()) {
        // A re-run: adopt the VM if it is this request's, never anyone else's.
        std::optional<tag_ref> tag;
        if (auto e = d.find_tag(cat, call.request_id, tag)) {
          return fail(*e);
        }
        std::vector<std::pair<std::string, std::vector<std::string>>> tagged;
        for (const auto& vm : existing) {
          std::vector<std::string> tags;
          if (auto e = d.attached_tags(text_of(vm, "vm"), tags)) {
            return fail(*e);
          }
          if (tag && std::find(tags.begin(), tags.end(), tag->id) != tags.end()) {
            out.resources.push_back(vm_resource(text_of(vm, "vm")));
            out.endpoints = {{"vm", text_of(vm, "vm")}, {"name", name}};
            out.ok = true;
            return out;
          }
          tagged.emplace_back(text_of(vm, "vm"), std::move(tags));
        }
        if (tag && tag->mark.creating && tag->mark.vm_name == name) {
          // Created by an earlier try that stopped before tagging it: ours.
          for (const auto& [vm, tags] : tagged) {
            const bool foreign = std::any_of(tags.begin(), tags.end(), [&](const auto& t) { return d.in_category(t); });
            if (foreign) {
              continue;
            }
            if (auto e = d.attach(tag->id, vm)) {
              out.resources.push_back(vm_resource(vm));
              return fail(*e);
            }
            out.resources.push_back(vm_resource(vm));
            out.endpoints = {{"vm", vm}, {"name", name}};
            out.ok = true;
            return out;
          }
        }
        return fail(provider_error{
            "name_taken", "a VM named " + name + " exists and was not created by provisiond for request " + call.request_id,
            false});
      }

      // The tag first, marked "creating": a crash after the create leaves an untagged VM that
      // the next try recognises by name.
      tag_ref tag;
      tag.mark.request_id = call.request_id;
      tag.mark.tenant = call.tenant;
      tag.mark.vm_name = name;
      tag.mark.idempotency_key = call.idempotency_key;
      tag.mark.created_at = format_rfc3339(d.now());
      tag.mark.creating = true;
      const json tag_spec{{"name", call.request_id}, {"description", render_marker(tag.mark)}, {"category_id", cat}};
      auto created_tag = d.call("POST", "/api/cis/tagging/tag", {}, tag_spec, "create_spec");
      if (created_tag.ok() && created_tag.value.is_string()) {
        tag.id = created_tag.value.get<std::string>();
        std::lock_guard<std::mutex> guard{d.mutex};
        d.tag_names[tag.id] = call.request_id;
      } else if (created_tag.is("ALREADY_EXISTS")) {
        std::optional<tag_ref> found;
        if (auto e = d.find_tag(cat, call.request_id, found)) {
          return fail(*e);
        }
        if (!found) {
          return fail(provider_error{"conflict", "the tag of request " + call.request_id + " is not readable yet", true});
        }
        tag.id = found->id;
        tag.mark.created_at = found->mark.created_at.empty() ? tag.mark.created_at : found->mark.created_at;
        if (auto e = d.write_marker(tag)) {
          return fail(*e);
        }
      } else {
        return fail(vsphere::error_of(created_tag, "create the tag of request " + call.request_id));
      }

      reply made;
      std::string what;
      if (s.template_id.empty()) {
        json spec{{"name", name}, {"guest_OS", s.guest_os}};
        spec["placement"] = {{"folder", p.folder}, {"resource_pool", p.resource_pool}, {"datastore", p.datastore}};
        if (call.spec.cpu_millis > 0) {
          spec["cpu"] = {{"count", cpu_count_for(call.spec)}};
        }
        if (call.spec.memory_mb > 0) {
          spec["memory"] = {{"size_MiB", call.spec.memory_mb}};
        }
        spec["disks"] = json::array();
        if (call.spec.storage_gb > 0) {
          spec["disks"].push_back({{"new_vmdk", {{"capacity", call.spec.storage_gb * 1024LL * 1024LL * 1024LL}}}});
        }
        spec["nics"] = json::array();  // configure adds the NIC
        what = "create VM " + name;
        made = d.call("POST", "/api/vcenter/vm", {}, spec, "spec");
      } else if (has_prefix(s.template_id, {"vm-"})) {
        json spec{{"source", s.template_id}, {"name", name}, {"power_on", false}};
        spec["placement"] = {{"folder", p.folder}, {"resource_pool", p.resource_pool}};
        if (!p.datastore.empty()) {
          spec["placement"]["datastore"] = p.datastore;
        }
        what = "clone " + s.template_id + " to " + name;
        made = d.call("POST", "/api/vcenter/vm", {{"action", "clone"}}, spec, "spec");
      } else {
        json spec{{"name", name}, {"powered_on", false}};
        spec["placement"] = {{"folder", p.folder}, {"resource_pool", p.resource_pool}};
        if (!p.datastore.empty()) {
          spec["vm_home_storage"] = {{"datastore", p.datastore}};
          spec["disk_storage"] = {{"datastore", p.datastore}};
        }
        json hardware = json::object();
        if (call.spec.cpu_millis > 0) {
          hardware["cpu_update"] = {{"num_cpus", cpu_count_for(call.spec)}};
        }
        if (call.spec.memory_mb > 0) {
          hardware["memory_update"] = {{"memory", call.spec.memory_mb}};
        }
        if (!hardware.empty()) {
          spec["hardware_customization"] = hardware;
        }
        what = "deploy library item " + s.template_id + " as " + name;
        made = d.call("POST", "/api/vcenter/vm-template/library-items/" + s.template_id, {{"action", "deploy"}}, spec,
                      "spec");
      }
      if (made.is("ALREADY_EXISTS")) {
        return fail(provider_error{"conflict", what + ": a VM with this name appeared meanwhile; try again", true});
      }
      if (!made.ok() || !made.value.is_string()) {
        return fail(vsphere::error_of(made, what));
      }
      const std::string vm = made.value.get<std::string>();
      out.resources.push_back(vm_resource(vm));
      if (auto e = d.attach(tag.id, vm)) {
        return fail(*e);  // the VM is reported: rollback deletes it
      }
      out.endpoints = {{"vm", vm}, {"name", name}};
      out.ok = true;
      return out;
    }

    case step_kind::configure: {
      const auto* vm = vm_of(call.resources);
      if (vm == nullptr) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to configure", false});
      }
      placement p;
      if (auto e = d.resolve(p)) {
        return fail(*e);
      }
      auto info = d.call("GET", "/api/vcenter/vm/" + vm->id);
      if (info.status == 404) {
        return fail(provider_error{"missing", vm->id + " does not exist", false});
      }
      if (!info.ok() || !info.value.is_object()) {
        return fail(vsphere::error_of(info, "read " + vm->id));
      }
      const auto& cpu = info.value.value("cpu", json::object());
      const auto& memory = info.value.value("memory", json::object());
      if (call.spec.cpu_millis > 0 && integer_of(cpu, {"count"}) != cpu_count_for(call.spec)) {
        auto r = d.call("PATCH", "/api/vcenter/vm/" + vm->id + "/hardware/cpu", {},
                        json{{"count", cpu_count_for(call.spec)}}, "spec");
        if (!r.ok()) {
          return fail(vsphere::error_of(r, "set the cpu count of " + vm->id));
        }
      }
      if (call.spec.memory_mb > 0 && integer_of(memory, {"size_MiB", "size_mib"}) != call.spec.memory_mb) {
        auto r = d.call("PATCH", "/api/vcenter/vm/" + vm->id + "/hardware/memory", {},
                        json{{"size_MiB", call.spec.memory_mb}}, "spec");
        if (!r.ok()) {
          return fail(vsphere::error_of(r, "set the memory of " + vm->id));
        }
      }
      if (!p.network.empty()) {
        bool present = false;
        const json nics = vsphere::as_map(info.value.value("nics", json::object()));
        for (const auto& [key, nic] : nics.items()) {
          if (text_of(nic.value("backing", json::object()), "network") == p.network) {
            present = true;
          }
        }
        if (!present) {
          const json nic{{"type", s.nic_type},
                         {"backing", {{"type", p.network_type}, {"network", p.network}}},
                         {"start_connected", true}};
          auto r = d.call("POST", "/api/vcenter/vm/" + vm->id + "/hardware/ethernet", {}, nic, "spec");
          if (!r.ok()) {
            return fail(vsphere::error_of(r, "add a NIC on " + p.network + " to " + vm->id));
          }
        }
      }
      out.endpoints = {{"vm", vm->id}, {"name", vm->name}, {"vcenter", d.api.endpoint()}};
      out.ok = true;
      return out;
    }

    case step_kind::activate: {
      const auto* vm = vm_of(call.resources);
      if (vm == nullptr) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to power on", false});
      }
      if (auto e = d.set_power(vm->id, "start")) {
        return fail(e->code == "not_found" ? provider_error{"missing", e->message, false} : *e);
      }
      if (auto e = d.wait_power(vm->id, {"POWERED_ON"}, s.power_timeout)) {
        return fail(*e);
      }
      out.ok = true;
      return out;
    }

    case step_kind::verify: {
      const auto* vm = vm_of(call.resources);
      if (vm == nullptr) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to verify", false});
      }
      std::string state;
      if (auto e = d.power_state(vm->id, state)) {
        return fail(e->code == "not_found" ? provider_error{"missing", e->message, false} : *e);
      }
      if (state != "POWERED_ON") {
        return fail(provider_error{"not_running", vm->id + " is " + state + ", not POWERED_ON", false});
      }
      // VMware Tools (when installed) report the guest's address.
      const bool tcp = s.verify_mode == "tcp";
      const auto deadline = steady::now() + s.verify_timeout;
      std::string last;
      for (;;) {
        auto tools = d.call("GET", "/api/vcenter/vm/" + vm->id + "/tools");
        const bool running = tools.ok() && text_of(tools.value, "run_state") == "RUNNING";
        std::string ip;
        if (running) {
          auto identity = d.call("GET", "/api/vcenter/vm/" + vm->id + "/guest/identity");
          if (identity.ok()) {
            ip = text_of(identity.value, "ip_address");
            if (!ip.empty()) {
              out.endpoints["ip"] = ip;
            }
            if (auto host = text_of(identity.value, "host_name"); !host.empty()) {
              out.endpoints["hostname"] = host;
            }
          }
          last = ip.empty() ? "VMware Tools run, the guest has no IP address yet" : "";
        } else if (tools.ok() || tools.status == 404 || tools.status == 503) {
          last = "VMware Tools are not running";
        } else {
          auto e = vsphere::error_of(tools, "read the VMware Tools state of " + vm->id);
          if (!e.retryable) {
            return fail(e);
          }
          last = e.message;
        }
        if (tcp && !ip.empty()) {
          const auto why = vsphere::tcp_probe(ip, s.verify_port, s.connect_timeout);
          if (why.empty()) {
            out.ok = true;
            return out;
          }
          last = why;
        } else if (!tcp && (running || !s.require_guest_tools)) {
          out.ok = true;
          return out;
        }
        if (steady::now() + s.poll_interval > deadline) {
          return fail(provider_error{tcp ? "unreachable" : "tools_not_running",
                                     vm->id + " did not pass verification within " +
                                         std::to_string(s.verify_timeout.count()) + " ms: " + last,
                                     true});
        }
        std::this_thread::sleep_for(s.poll_interval);
      }
    }
  }
  out.error = provider_error{"internal", "unknown step", false};
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rollback

release_outcome vsphere_provider::release(const release_call& call) {
  release_outcome out;
  if (call.resource.kind != vm_kind) {
    out.ok = true;  // not a kind this provider makes
    return out;
  }
  bool deleted = false;
  if (auto e = _impl->destroy(call.resource.id, call.resource.name, deleted)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

sweep_outcome vsphere_provider::sweep(const std::string& request_id) {
  sweep_outcome out;
  auto& d = *_impl;
  std::string cat;
  if (auto e = d.category(false, cat)) {
    out.error = *e;
    return out;
  }
  if (cat.empty()) {
    out.ok = true;  // no category: nothing was ever made here
    return out;
  }
  std::optional<tag_ref> tag;
  if (auto e = d.find_tag(cat, request_id, tag)) {
    out.error = *e;
    return out;
  }
  if (!tag) {
    out.ok = true;  // the tag is made before any VM: without it, there is nothing
    return out;
  }
  std::map<std::string, std::vector<std::string>> attached;
  if (auto e = d.attached_vms({tag->id}, attached)) {
    out.error = *e;
    return out;
  }
  std::vector<std::string> vms = attached[tag->id];
  if (tag->mark.creating && !tag->mark.vm_name.empty()) {
    // A VM that a crash left untagged carries the recorded name.
    std::vector<json> named;
    if (auto e = d.list_vms("names", {tag->mark.vm_name}, named)) {
      out.error = *e;
      return out;
    }
    for (const auto& vm : named) {
      const auto id = text_of(vm, "vm");
      if (std::find(vms.begin(), vms.end(), id) != vms.end()) {
        continue;
      }
      std::vector<std::string> tags;
      if (auto e = d.attached_tags(id, tags)) {
        out.error = *e;
        return out;
      }
      if (std::none_of(tags.begin(), tags.end(), [&](const auto& t) { return d.in_category(t); })) {
        vms.push_back(id);
      }
    }
  }
  for (const auto& vm : vms) {
    bool deleted = false;
    if (auto e = d.destroy(vm, "", deleted)) {
      out.error = *e;
      return out;
    }
    if (deleted) {
      out.released.push_back(events::resource{std::string{vm_kind}, vm, tag->mark.vm_name, step_kind::allocate,
                                              tag->mark.idempotency_key, true});
    }
  }
  auto removed = d.call("DELETE", "/api/cis/tagging/tag/" + tag->id);
  if (!removed.ok() && removed.status != 404) {
    out.error = vsphere::error_of(removed, "delete the tag of request " + request_id);
    return out;
  }
  {
    std::lock_guard<std::mutex> guard{d.mutex};
    d.tag_names.erase(tag->id);
  }
  out.ok = true;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Suspend, reactivate, metrics

action_outcome vsphere_provider::suspend(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto* vm = vm_of(call.resources);
  if (vm == nullptr) {
    out.error = provider_error{"not_found", "request " + call.request_id + " holds no VM to suspend", false};
    return out;
  }
  std::string state;
  if (auto e = d.power_state(vm->id, state)) {
    out.error = *e;
    return out;
  }
  if (state == "POWERED_ON") {
    if (auto e = d.set_power(vm->id, _settings.suspend_action)) {
      out.error = *e;
      return out;
    }
    if (auto e = d.wait_power(vm->id, {_settings.suspend_action == "stop" ? "POWERED_OFF" : "SUSPENDED", "POWERED_OFF"},
                              _settings.power_timeout)) {
      out.error = *e;
      return out;
    }
  }
  if (auto e = d.mark_suspended(call.request_id, true)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

action_outcome vsphere_provider::reactivate(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto* vm = vm_of(call.resources);
  if (vm == nullptr) {
    out.error = provider_error{"not_found", "request " + call.request_id + " holds no VM to reactivate", false};
    return out;
  }
  if (auto e = d.set_power(vm->id, "start")) {
    out.error = *e;
    return out;
  }
  if (auto e = d.wait_power(vm->id, {"POWERED_ON"}, _settings.power_timeout)) {
    out.error = *e;
    return out;
  }
  if (auto e = d.mark_suspended(call.request_id, false)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

metrics_sample vsphere_provider::metrics(const service_call& call) {
  metrics_sample m;
  auto& d = *_impl;
  m.at = d.now();
  const auto* vm = vm_of(call.resources);
  if (vm == nullptr) {
    m.error = provider_error{"not_found", "request " + call.request_id + " holds no VM", false};
    return m;
  }
  auto info = d.call("GET", "/api/vcenter/vm/" + vm->id);
  if (!info.ok() || !info.value.is_object()) {
    m.error = vsphere::error_of(info, "read " + vm->id);
    return m;
  }
  // The Automation API has no performance counters (those are in the SOAP PerformanceManager):
  // configured size, power state, and the guest's file systems through VMware Tools.
  const bool on = text_of(info.value, "power_state") == "POWERED_ON";
  m.extra["powered_on"] = on ? 1 : 0;
  if (auto cpus = integer_of(info.value.value("cpu", json::object()), {"count"})) {
    m.extra["cpu_count"] = static_cast<double>(*cpus);
  }
  if (auto mib = integer_of(info.value.value("memory", json::object()), {"size_MiB", "size_mib"})) {
    m.extra["memory_mb"] = static_cast<double>(*mib);
  }
  if (on) {
    auto fs = d.call("GET", "/api/vcenter/vm/" + vm->id + "/guest/local-filesystem");
    if (fs.ok()) {
      double capacity = 0;
      double free = 0;
      const json filesystems = vsphere::as_map(fs.value);
      for (const auto& [mount, f] : filesystems.items()) {
        capacity += static_cast<double>(integer_of(f, {"capacity"}).value_or(0));
        free += static_cast<double>(integer_of(f, {"free_space"}).value_or(0));
      }
      constexpr double gib = 1024.0 * 1024.0 * 1024.0;
      m.disk_used_gb = (capacity - free) / gib;
      m.extra["disk_capacity_gb"] = capacity / gib;
    }
  }
  m.ok = true;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Inventory and connectivity

result<std::vector<inventory_item>> vsphere_provider::inventory() {
  auto& d = *_impl;
  std::vector<inventory_item> out;
  std::string cat;
  if (auto e = d.category(false, cat)) {
    return make_error(errc::provider_error, e->message);
  }
  if (cat.empty()) {
    return out;
  }
  std::vector<std::string> ids;
  if (auto e = d.scan_tags(cat, ids)) {
    return make_error(errc::provider_error, e->message);
  }
  std::map<std::string, vsphere::marker> marks;
  for (const auto& id : ids) {
    std::optional<tag_ref> tag;
    if (auto e = d.read_tag(id, tag)) {
      return make_error(errc::provider_error, e->message);
    }
    if (tag) {
      marks[id] = tag->mark;
    }
  }
  std::vector<std::string> tag_ids;
  for (const auto& [id, mark] : marks) {
    tag_ids.push_back(id);
  }
  std::map<std::string, std::vector<std::string>> attached;
  if (auto e = d.attached_vms(tag_ids, attached)) {
    return make_error(errc::provider_error, e->message);
  }
  std::map<std::string, std::string> owner;  // vm -> tag
  std::vector<std::string> vm_ids;
  std::vector<std::string> pending_names;
  for (const auto& [id, mark] : marks) {
    for (const auto& vm : attached[id]) {
      owner[vm] = id;
      vm_ids.push_back(vm);
    }
    if (attached[id].empty() && mark.creating && !mark.vm_name.empty()) {
      pending_names.push_back(mark.vm_name);
    }
  }
  std::vector<json> vms;
  if (auto e = d.list_vms("vms", vm_ids, vms)) {
    return make_error(errc::provider_error, e->message);
  }
  // VMs a crash left untagged: named as a "creating" marker says.
  std::vector<json> pending;
  if (auto e = d.list_vms("names", pending_names, pending)) {
    return make_error(errc::provider_error, e->message);
  }
  for (const auto& vm : pending) {
    for (const auto& [id, mark] : marks) {
      if (mark.creating && mark.vm_name == text_of(vm, "name") && owner.count(text_of(vm, "vm")) == 0) {
        owner[text_of(vm, "vm")] = id;
        vms.push_back(vm);
      }
    }
  }
  for (const auto& vm : vms) {
    const auto id = text_of(vm, "vm");
    const auto& mark = marks[owner[id]];
    inventory_item it;
    it.cluster = d.cluster;
    it.kind = std::string{vm_kind};
    it.id = id;
    it.name = text_of(vm, "name");
    it.request_id = mark.request_id;
    it.idempotency_key = mark.idempotency_key;
    it.step = step_kind::allocate;
    if (auto t = parse_rfc3339(mark.created_at)) {
      it.created_at = *t;
    }
    it.suspended = mark.suspended;
    out.push_back(std::move(it));
  }
  return out;
}

connectivity_report vsphere_provider::test_connectivity() {
  auto& d = *_impl;
  connectivity_report report;
  const auto start = steady::now();
  auto version = d.call("GET", "/api/appliance/system/version");
  std::string what;
  if (version.ok() && version.value.is_object()) {
    what = "vCenter " + text_of(version.value, "version") + " (build " + text_of(version.value, "build") + ")";
  } else if (version.failure || version.status == 401) {
    report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    report.message = vsphere::error_of(version, "GET /api/appliance/system/version").message;
    return report;
  } else {
    // Users without appliance privileges: the session itself proves the credentials.
    auto session = d.call("GET", "/api/session");
    if (!session.ok()) {
      report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
      report.message = vsphere::error_of(session, "GET /api/session").message;
      return report;
    }
    what = "vCenter session of " + text_of(session.value, "user");
  }
  report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  report.ok = true;
  report.message = what + " at " + d.api.endpoint() + " via " +
                   (d.api.current() == vsphere::dialect::api ? "/api" : "/rest");
  return report;
}

}  // namespace prov::providers
