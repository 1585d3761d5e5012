#include "prov/providers/proxmox_provider.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

#include "detail/cluster_config.hpp"
#include "detail/proxmox_api.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/time_format.hpp"

// The calls follow the PVE API viewer (https://pve.proxmox.com/pve-docs/api-viewer/):
//   GET    /version                                   {version, release, repoid}
//   GET    /cluster/nextid                            next free VMID (a string)
//   GET    /cluster/resources?type=vm                 [{id, vmid, node, name, status, tags, template}]
//   GET    /nodes/{node}/qemu                         [{vmid, name, status, tags, lock, template}]
//   POST   /nodes/{node}/qemu                         create (vmid, name, description, tags, ...) -> UPID
//   POST   /nodes/{node}/qemu/{vmid}/clone            clone (newid, name, description, full, storage, pool) -> UPID
//   GET    /nodes/{node}/qemu/{vmid}/config           current configuration
//   PUT    /nodes/{node}/qemu/{vmid}/config           synchronous update (cores, memory, net0, tags)
//   PUT    /nodes/{node}/qemu/{vmid}/resize           disk, size (null, or a UPID since PVE 8)
//   POST   /nodes/{node}/qemu/{vmid}/status/start|stop|shutdown|suspend|resume -> UPID
//   GET    /nodes/{node}/qemu/{vmid}/status/current   {status, qmpstatus, cpu, mem, maxmem, disk, netin, netout, ...}
//   POST   /nodes/{node}/qemu/{vmid}/agent/ping, GET .../agent/network-get-interfaces
//   DELETE /nodes/{node}/qemu/{vmid}                  purge, destroy-unreferenced-disks -> UPID
//   GET    /nodes/{node}/tasks/{upid}/status          {status: running|stopped, exitstatus}

namespace prov::providers {

namespace {

using json = nlohmann::json;
using events::step_kind;
using steady = std::chrono::steady_clock;
using pve::params;
using pve::reply;

constexpr std::string_view vm_kind = "vm";

std::string text_of(const json& j, std::string_view key) {
  if (!j.is_object()) {
    return {};
  }
  auto it = j.find(std::string{key});
  if (it == j.end()) {
    return {};
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  if (it->is_number_integer()) {
    return std::to_string(it->get<std::int64_t>());
  }
  return {};
}

/// A numeric field that PVE sends as a number or a numeric string.
std::optional<double> number_of(const json& j, std::string_view key) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  auto it = j.find(std::string{key});
  if (it == j.end()) {
    return std::nullopt;
  }
  if (it->is_number()) {
    return it->get<double>();
  }
  if (it->is_string()) {
    const auto s = it->get<std::string>();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && *end == '\0') {
      return v;
    }
  }
  return std::nullopt;
}

std::int64_t cores_for(const events::resource_spec& spec) {
  return std::max<std::int64_t>(1, (spec.cpu_millis + 999) / 1000);
}

/// A VM of ours: where it is.
struct vm_ref {
  std::string node;
  std::int64_t vmid = 0;

  std::string id() const { return node + "/" + std::to_string(vmid); }
  std::string path() const { return "/nodes/" + node + "/qemu/" + std::to_string(vmid); }
};

std::optional<vm_ref> parse_vm_id(std::string_view id) {
  const auto slash = id.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return std::nullopt;
  }
  vm_ref r;
  r.node = std::string{id.substr(0, slash)};
  r.vmid = pve::vmid_of(json(std::string{id.substr(slash + 1)}));
  if (r.vmid <= 0) {
    return std::nullopt;
  }
  return r;
}

const events::resource* vm_of(const std::vector<events::resource>& resources) {
  for (const auto& r : resources) {
    if (r.kind == vm_kind && !r.released) {
      return &r;
    }
  }
  return nullptr;
}

bool has_tag(const json& entry, std::string_view tag) {
  const auto tags = pve::split_tags(text_of(entry, "tags"));
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

/// Whether a task's exit status is success ("OK", or "WARNINGS: n" since PVE 7.4).
bool task_succeeded(std::string_view exitstatus) {
  return exitstatus == "OK" || exitstatus.substr(0, 9) == "WARNINGS:";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings and credentials

result<proxmox_settings> proxmox_settings::parse(std::string_view text) {
  proxmox_settings s;
  json j = text.empty() ? json::object() : json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(errc::invalid_argument, "proxmox settings are not JSON");
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "proxmox settings must be a JSON object");
  }
  const auto bad = [](const std::string& key, const std::string& why) {
    return make_error(errc::invalid_argument, "proxmox settings: " + key + " " + why);
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& key = it.key();
    const auto& v = it.value();
    const detail::setting_field field{"proxmox", key, v};
    status st;
    if (key == "node") {
      st = field.string(s.node);
    } else if (key == "template") {
      const auto id = pve::vmid_of(v);
      if (id < 100 || id > 999'999'999) {
        return bad(key, "must be a VMID (100-999999999)");
      }
      s.template_id = id;
    } else if (key == "fullClone") {
      st = field.boolean(s.full_clone);
    } else if (key == "storage") {
      st = field.string(s.storage);
    } else if (key == "bridge") {
      st = field.string(s.bridge);
    } else if (key == "pool") {
      st = field.string(s.pool);
    } else if (key == "ostype") {
      st = field.string(s.ostype);
    } else if (key == "scsihw") {
      st = field.string(s.scsihw);
    } else if (key == "disk") {
      st = field.string(s.disk);
    } else if (key == "netModel") {
      st = field.string(s.net_model);
    } else if (key == "namePrefix") {
      st = field.string(s.name_prefix);
    } else if (key == "suspendMode") {
      st = field.string(s.suspend_mode);
    } else if (key == "shutdownTimeoutS") {
      if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
        return bad(key, "must be a positive integer (seconds)");
      }
      s.shutdown_timeout = std::chrono::seconds{v.get<std::int64_t>()};
    } else if (key == "agentPing") {
      st = field.boolean(s.agent_ping);
    } else if (key == "nextidAttempts") {
      if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > 50) {
        return bad(key, "must be an integer in 1-50");
      }
      s.nextid_attempts = v.get<int>();
    } else if (key == "taskTimeoutMs") {
      st = field.millis(s.task_timeout);
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
  const auto identifier = [](const std::string& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
             c == '.';
    });
  };
  if (!identifier(s.node)) {
    return bad("node", "is required (the PVE node name)");
  }
  if (!s.storage.empty() && !identifier(s.storage)) {
    return bad("storage", "must be a storage id");
  }
  if (!identifier(s.bridge)) {
    return bad("bridge", "must be a bridge name (e.g. vmbr0)");
  }
  if (!s.pool.empty() && !identifier(s.pool)) {
    return bad("pool", "must be a pool id");
  }
  if (s.template_id == 0 && s.storage.empty()) {
    return bad("storage", "is required to create VMs without a template");
  }
  static const std::set<std::string> disks{"scsi0", "virtio0", "sata0", "ide0"};
  if (disks.count(s.disk) == 0) {
    return bad("disk", "must be scsi0, virtio0, sata0 or ide0");
  }
  if (s.suspend_mode != "shutdown" && s.suspend_mode != "pause") {
    return bad("suspendMode", "must be \"shutdown\" or \"pause\"");
  }
  if (s.name_prefix.size() > 20 ||
      !std::all_of(s.name_prefix.begin(), s.name_prefix.end(),
                   [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }) ||
      (!s.name_prefix.empty() && s.name_prefix.front() == '-')) {
    return bad("namePrefix", "must be at most 20 of lowercase letters, digits and '-' (not first)");
  }
  return s;
}

result<proxmox_credentials> proxmox_credentials::parse(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(errc::invalid_argument, "proxmox credentials are not JSON");  // never echo secrets
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "proxmox credentials must be a JSON object");
  }
  proxmox_credentials c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return make_error(errc::invalid_argument, "proxmox credentials: " + it.key() + " must be a string");
    }
    const auto v = it.value().get<std::string>();
    if (it.key() == "tokenId") {
      c.token_id = v;
    } else if (it.key() == "secret") {
      c.secret = v;
    } else if (it.key() == "username") {
      c.username = v;
    } else if (it.key() == "password") {
      c.password = v;
    } else if (it.key() == "caPem") {
      c.ca_pem = v;
    } else {
      return make_error(errc::invalid_argument, "proxmox credentials: " + it.key() + " is not a known field");
    }
  }
  const bool token = !c.token_id.empty() || !c.secret.empty();
  const bool ticket = !c.username.empty() || !c.password.empty();
  if (token == ticket) {
    return make_error(errc::invalid_argument,
                      "proxmox credentials: give either tokenId and secret, or username and password");
  }
  if (token) {
    const auto bang = c.token_id.find('!');
    if (c.secret.empty() || c.token_id.find('@') == std::string::npos || bang == std::string::npos ||
        bang + 1 == c.token_id.size()) {
      return make_error(errc::invalid_argument, "proxmox credentials: tokenId must be USER@REALM!TOKENID with a secret");
    }
    const auto clean = [](const std::string& v) {
      return std::none_of(v.begin(), v.end(), [](char ch) { return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f; });
    };
    if (!clean(c.token_id) || !clean(c.secret) || c.token_id.find('=') != std::string::npos) {
      return make_error(errc::invalid_argument, "proxmox credentials: tokenId or secret has spaces, '=' or control characters");
    }
  } else if (c.username.empty() || c.password.empty() || c.username.find('@') == std::string::npos) {
    return make_error(errc::invalid_argument, "proxmox credentials: username must be USER@REALM, with a password");
  }
  return c;
}

std::string proxmox_provider::vm_name(std::string_view prefix, std::string_view tenant, std::string_view request_id) {
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
  name += sha256_hex(request_id).substr(0, 12);
  while (!name.empty() && name.front() == '-') {
    name.erase(0, 1);
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// The API calls

struct proxmox_provider::impl {
  impl(std::string cluster_, std::string endpoint, proxmox_settings s_, const proxmox_credentials& c, const clock* clk_)
      : cluster(std::move(cluster_)), s(std::move(s_)), api(options_for(endpoint, s, c)), clk(clk_) {}

  static pve::api_client::options options_for(const std::string& endpoint, const proxmox_settings& s,
                                              const proxmox_credentials& c) {
    pve::api_client::options o;
    o.endpoint = endpoint;
    o.token_id = c.token_id;
    o.secret = c.secret;
    o.username = c.username;
    o.password = c.password;
    o.http.verify_tls = !s.insecure_skip_verify;
    o.http.ca_pem = c.ca_pem;
    o.http.connect_timeout = s.connect_timeout;
    o.http.request_timeout = s.request_timeout;
    return o;
  }

  timestamp now() const { return clk != nullptr ? clk->now() : wall.now(); }

  reply call(const std::string& method, const std::string& path, const params& p = {}) {
    return api.call(method, path, p);
  }

  /// Waits for a task (UPID) to stop; its exit status in `exitstatus`. Retryable errors while
  /// polling are waited out.
  std::optional<provider_error> wait_task(const std::string& upid, std::chrono::milliseconds timeout,
                                          std::string& exitstatus) {
    std::string node = pve::upid_node(upid);
    if (node.empty()) {
      node = s.node;
    }
    const auto deadline = steady::now() + timeout;
    std::string last = "no answer yet";
    for (;;) {
      auto r = call("GET", "/nodes/" + node + "/tasks/" + http::url_encode(upid) + "/status");
      if (r.ok() && r.data.is_object()) {
        if (text_of(r.data, "status") == "stopped") {
          exitstatus = text_of(r.data, "exitstatus");
          return std::nullopt;
        }
        last = "running";
      } else {
        auto e = pve::error_of(r, "read task " + upid);
        if (!e.retryable) {
          return e;
        }
        last = e.message;
      }
      if (steady::now() + s.poll_interval > deadline) {
        return provider_error{
            "timeout", "task " + upid + " did not finish within " + std::to_string(timeout.count()) + " ms (last: " + last + ")",
            true};
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
  }

  /// Starts a task and waits for it; a failed task is a retryable `task_failed`.
  std::optional<provider_error> run_task(const std::string& method, const std::string& path, const params& p,
                                         std::chrono::milliseconds timeout, const std::string& what) {
    auto r = call(method, path, p);
    if (!r.ok()) {
      return pve::error_of(r, what);
    }
    if (!r.data.is_string()) {
      return std::nullopt;  // a synchronous answer (e.g. resize before PVE 8)
    }
    std::string exitstatus;
    if (auto e = wait_task(r.data.get<std::string>(), timeout, exitstatus)) {
      return e;
    }
    if (!task_succeeded(exitstatus)) {
      return provider_error{"task_failed", what + ": " + exitstatus, true};
    }
    return std::nullopt;
  }

  std::optional<provider_error> config(const vm_ref& vm, json& out, bool& gone) {
    gone = false;
    auto r = call("GET", vm.path() + "/config");
    if (pve::vm_gone(r)) {
      gone = true;
      return std::nullopt;
    }
    if (!r.ok() || !r.data.is_object()) {
      return pve::error_of(r, "read the configuration of VM " + vm.id());
    }
    out = std::move(r.data);
    return std::nullopt;
  }

  std::optional<provider_error> current(const vm_ref& vm, json& out) {
    auto r = call("GET", vm.path() + "/status/current");
    if (!r.ok() || !r.data.is_object()) {
      return pve::error_of(r, "read the status of VM " + vm.id());
    }
    out = std::move(r.data);
    return std::nullopt;
  }

  /// Polls until the VM's status satisfies `done` (bounded).
  template <class Done>
  std::optional<provider_error> wait_status(const vm_ref& vm, Done done, std::string_view wanted,
                                            std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    std::string last = "no answer yet";
    for (;;) {
      json status;
      if (auto e = current(vm, status)) {
        if (!e->retryable) {
          return e;
        }
        last = e->message;
      } else if (done(status)) {
        return std::nullopt;
      } else {
        last = text_of(status, "status") + "/" + text_of(status, "qmpstatus");
      }
      if (steady::now() + s.poll_interval > deadline) {
        return provider_error{"timeout",
                              "VM " + vm.id() + " did not become " + std::string{wanted} + " within " +
                                  std::to_string(timeout.count()) + " ms (last: " + last + ")",
                              true};
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
  }

  /// Waits until the VM's configuration has no lock (a clone or create still running).
  std::optional<provider_error> wait_unlocked(const vm_ref& vm, json& cfg, bool& gone) {
    const auto deadline = steady::now() + s.task_timeout;
    for (;;) {
      if (auto e = config(vm, cfg, gone)) {
        return e;
      }
      if (gone || !cfg.contains("lock")) {
        return std::nullopt;
      }
      if (steady::now() + s.poll_interval > deadline) {
        return provider_error{"busy", "VM " + vm.id() + " is still locked (" + text_of(cfg, "lock") + ")", true};
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
  }

  std::optional<provider_error> cluster_vms(std::vector<json>& out) {
    auto r = call("GET", "/cluster/resources", {{"type", "vm"}});
    if (!r.ok() || !r.data.is_array()) {
      return pve::error_of(r, "list the cluster's VMs");
    }
    for (auto& entry : r.data) {
      if (text_of(entry, "type") == "qemu" || !entry.contains("type")) {
        out.push_back(std::move(entry));
      }
    }
    return std::nullopt;
  }

  static vm_ref ref_of(const json& entry, const std::string& default_node) {
    vm_ref r;
    r.node = text_of(entry, "node");
    if (r.node.empty()) {
      r.node = default_node;
    }
    r.vmid = pve::vmid_of(entry.value("vmid", json{}));
    return r;
  }

  /// Stops and destroys a VM of the request. Gone already is success; a VM whose description
  /// is not this request's (a reused VMID) is left alone.
  std::optional<provider_error> destroy(const vm_ref& vm, const std::string& request_id, bool& deleted) {
    deleted = false;
    json cfg;
    bool gone = false;
    if (auto e = wait_unlocked(vm, cfg, gone)) {
      return e;
    }
    if (gone) {
      return std::nullopt;
    }
    auto mark = pve::parse_marker(text_of(cfg, "description"));
    if (!mark || mark->request_id != request_id) {
      return std::nullopt;
    }
    auto status = call("GET", vm.path() + "/status/current");
    if (pve::vm_gone(status)) {
      return std::nullopt;  // went away meanwhile
    }
    if (!status.ok()) {
      return pve::error_of(status, "read the status of VM " + vm.id());
    }
    if (text_of(status.data, "status") != "stopped") {
      if (auto e = run_task("POST", vm.path() + "/status/stop", {}, s.power_timeout, "stop VM " + vm.id())) {
        return e;
      }
    }
    auto r = call("DELETE", vm.path(), {{"purge", "1"}, {"destroy-unreferenced-disks", "1"}});
    if (pve::vm_gone(r)) {
      return std::nullopt;
    }
    if (!r.ok()) {
      return pve::error_of(r, "destroy VM " + vm.id());
    }
    if (r.data.is_string()) {
      std::string exitstatus;
      if (auto e = wait_task(r.data.get<std::string>(), s.task_timeout, exitstatus)) {
        return e;
      }
      if (!task_succeeded(exitstatus) && exitstatus.find("does not exist") == std::string::npos) {
        return provider_error{"task_failed", "destroy VM " + vm.id() + ": " + exitstatus, true};
      }
    }
    deleted = true;
    return std::nullopt;
  }

  /// Adds or removes one of our tags (PUT .../config, synchronous).
  std::optional<provider_error> set_tag(const vm_ref& vm, std::string_view tag, bool present) {
    json cfg;
    bool gone = false;
    if (auto e = config(vm, cfg, gone)) {
      return e;
    }
    if (gone) {
      return provider_error{"not_found", "VM " + vm.id() + " does not exist", false};
    }
    auto tags = pve::split_tags(text_of(cfg, "tags"));
    const bool has = std::find(tags.begin(), tags.end(), tag) != tags.end();
    if (has == present) {
      return std::nullopt;
    }
    if (present) {
      tags.emplace_back(tag);
    } else {
      tags.erase(std::remove(tags.begin(), tags.end(), tag), tags.end());
    }
    params p;
    if (tags.empty()) {
      p.emplace_back("delete", "tags");
    } else {
      p.emplace_back("tags", pve::join_tags(tags));
    }
    auto r = call("PUT", vm.path() + "/config", p);
    if (!r.ok()) {
      return pve::error_of(r, "update the tags of VM " + vm.id());
    }
    return std::nullopt;
  }

  std::string cluster;
  proxmox_settings s;
  pve::api_client api;
  const clock* clk;
  system_clock_source wall;
};

proxmox_provider::proxmox_provider(std::string cluster_id, std::string endpoint, proxmox_settings settings,
                                   proxmox_credentials credentials, const clock* clk)
    : _settings(std::move(settings)) {
  _impl = std::make_unique<impl>(std::move(cluster_id), std::move(endpoint), _settings, credentials, clk);
}

proxmox_provider::~proxmox_provider() = default;

result<std::unique_ptr<proxmox_provider>> proxmox_provider::from_cluster(const events::cluster_state& cluster,
                                                                         const secret_box* secrets, const clock* clk) {
  if (cluster.type != events::provider_type::proxmox) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " is not a Proxmox VE cluster");
  }
  if (cluster.endpoint.empty()) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " has no API endpoint");
  }
  return detail::assemble_provider<proxmox_provider, proxmox_credentials>(
      cluster, proxmox_settings::parse(cluster.settings_json), secrets, "an API token", clk);
}

// ---------------------------------------------------------------------------------------------
// Steps

step_outcome proxmox_provider::run_step(const step_call& call) {
  step_outcome out;
  if (call.type != events::service_type::vps) {
    out.error = provider_error{"unsupported",
                               "Proxmox VE clusters provide VMs (vps), not " +
                                   std::string{events::service_type_names[static_cast<std::size_t>(call.type)]},
                               false};
    return out;
  }
  auto& d = *_impl;
  const auto& s = _settings;
  const std::string name = vm_name(s.name_prefix, call.tenant, call.request_id);
  const auto fail = [&](provider_error e) {
    out.error = std::move(e);
    return out;
  };
  const auto resource = [&](const vm_ref& vm) {
    return events::resource{std::string{vm_kind}, vm.id(), name, call.step, call.idempotency_key, false};
  };
  const auto recorded = [&]() -> std::optional<vm_ref> {
    const auto* r = vm_of(call.resources);
    if (r == nullptr) {
      return std::nullopt;
    }
    return parse_vm_id(r->id);
  };

  switch (call.step) {
    case step_kind::allocate: {
      // Made already (a re-run)? VMs named as ours, anywhere in the cluster.
      const auto named = [&](std::vector<vm_ref>& found) -> std::optional<provider_error> {
        std::vector<json> vms;
        if (auto e = d.cluster_vms(vms)) {
          return e;
        }
        for (const auto& v : vms) {
          if (text_of(v, "name") == name) {
            found.push_back(impl::ref_of(v, s.node));
          }
        }
        return std::nullopt;
      };
      std::vector<vm_ref> found;
      if (auto e = named(found)) {
        return fail(*e);
      }
      if (found.empty() && call.attempt > 1) {
        // An earlier try may have started a clone that has no name yet (PVE writes the name
        // when the first disk is copied): wait for nameless locked VMs on the node, then look again.
        const auto deadline = steady::now() + s.task_timeout;
        for (;;) {
          auto r = d.call("GET", "/nodes/" + s.node + "/qemu");
          if (!r.ok() || !r.data.is_array()) {
            return fail(pve::error_of(r, "list the VMs of node " + s.node));
          }
          bool pending = false;
          for (const auto& v : r.data) {
            const auto vmid = pve::vmid_of(v.value("vmid", json{}));
            const auto n = text_of(v, "name");
            const auto lock = text_of(v, "lock");
            if ((lock == "clone" || lock == "create") && (n.empty() || n == "VM " + std::to_string(vmid))) {
              pending = true;
            }
          }
          if (!pending) {
            break;
          }
          if (steady::now() + s.poll_interval > deadline) {
            return fail(provider_error{"busy", "VMs being cloned on node " + s.node + " did not finish", true});
          }
          std::this_thread::sleep_for(s.poll_interval);
        }
        if (auto e = named(found)) {
          return fail(*e);
        }
      }
      std::optional<vm_ref> foreign;
      for (const auto& vm : found) {
        json cfg;
        bool gone = false;
        if (auto e = d.wait_unlocked(vm, cfg, gone)) {
          return fail(*e);
        }
        if (gone) {
          continue;
        }
        auto mark = pve::parse_marker(text_of(cfg, "description"));
        if (!mark || mark->request_id != call.request_id) {
          foreign = vm;
          continue;
        }
        out.resources.push_back(resource(vm));
        out.endpoints = {{"vm", vm.id()}, {"name", name}};
        out.ok = true;
        return out;
      }
      if (foreign) {
        return fail(provider_error{"name_taken",
                                   "a VM named " + name + " (" + foreign->id() +
                                       ") exists and was not created by provisiond for request " + call.request_id,
                                   false});
      }

      const pve::marker mark{call.request_id, call.tenant, call.idempotency_key, format_rfc3339(d.now())};
      for (int attempt = 1;; ++attempt) {
        auto next = d.call("GET", "/cluster/nextid");
        const auto vmid = next.ok() ? pve::vmid_of(next.data) : 0;
        if (vmid <= 0) {
          return fail(pve::error_of(next, "get a free VMID"));
        }
        const vm_ref vm{s.node, vmid};
        params p;
        std::string path;
        std::string what;
        if (s.template_id > 0) {
          path = "/nodes/" + s.node + "/qemu/" + std::to_string(s.template_id) + "/clone";
          what = "clone template " + std::to_string(s.template_id) + " to VM " + vm.id();
          p = {{"newid", std::to_string(vmid)},
               {"name", name},
               {"description", pve::render_marker(mark)},
               {"full", s.full_clone ? "1" : "0"}};
          if (s.full_clone && !s.storage.empty()) {
            p.emplace_back("storage", s.storage);
          }
        } else {
          path = "/nodes/" + s.node + "/qemu";
          what = "create VM " + vm.id();
          p = {{"vmid", std::to_string(vmid)},
               {"name", name},
               {"description", pve::render_marker(mark)},
               {"tags", std::string{pve::managed_tag}},
               {"ostype", s.ostype},
               {"scsihw", s.scsihw},
               {"cores", std::to_string(cores_for(call.spec))},
               {"net0", s.net_model + ",bridge=" + s.bridge}};
          if (call.spec.memory_mb > 0) {
            p.emplace_back("memory", std::to_string(call.spec.memory_mb));
          }
          p.emplace_back(s.disk, s.storage + ":" + std::to_string(std::max<std::int64_t>(1, call.spec.storage_gb)));
        }
        if (!s.pool.empty()) {
          p.emplace_back("pool", s.pool);
        }
        auto started = d.call("POST", path, p);
        bool taken = started.says("already exists");
        if (!taken) {
          if (!started.ok() || !started.data.is_string()) {
            return fail(pve::error_of(started, what));
          }
          std::string exitstatus;
          if (auto e = d.wait_task(started.data.get<std::string>(), s.task_timeout, exitstatus)) {
            out.resources.push_back(resource(vm));  // it may finish: rollback checks the marker
            return fail(*e);
          }
          if (task_succeeded(exitstatus)) {
            out.resources.push_back(resource(vm));
            out.endpoints = {{"vm", vm.id()}, {"name", name}};
            out.ok = true;
            return out;
          }
          taken = exitstatus.find("already exists") != std::string::npos;
          if (!taken) {
            return fail(provider_error{"task_failed", what + ": " + exitstatus, true});
          }
        }
        // The VMID was taken between /cluster/nextid and our call: another one.
        if (attempt >= s.nextid_attempts) {
          return fail(provider_error{"conflict",
                                     "every VMID from /cluster/nextid was taken before it could be used (" +
                                         std::to_string(attempt) + " tries)",
                                     true});
        }
      }
    }

    case step_kind::configure: {
      const auto vm = recorded();
      if (!vm) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to configure", false});
      }
      json cfg;
      bool gone = false;
      if (auto e = d.wait_unlocked(*vm, cfg, gone)) {
        return fail(*e);
      }
      if (gone) {
        return fail(provider_error{"missing", "VM " + vm->id() + " does not exist", false});
      }
      params p;
      if (call.spec.cpu_millis > 0 && number_of(cfg, "cores").value_or(0) != static_cast<double>(cores_for(call.spec))) {
        p.emplace_back("cores", std::to_string(cores_for(call.spec)));
      }
      if (call.spec.memory_mb > 0 && number_of(cfg, "memory").value_or(0) != static_cast<double>(call.spec.memory_mb)) {
        p.emplace_back("memory", std::to_string(call.spec.memory_mb));
      }
      // net0 on our bridge; the model and MAC address of an existing NIC are kept.
      auto net = pve::parse_property_string(text_of(cfg, "net0"));
      bool bridged = false;
      for (auto& [key, value] : net) {
        if (key == "bridge") {
          bridged = value == s.bridge;
          value = s.bridge;
        }
      }
      if (net.empty()) {
        net = {{s.net_model, ""}, {"bridge", s.bridge}};
      } else if (std::none_of(net.begin(), net.end(), [](const auto& kv) { return kv.first == "bridge"; })) {
        net.emplace_back("bridge", s.bridge);
      }
      if (!bridged) {
        p.emplace_back("net0", pve::render_property_string(net));
      }
      auto tags = pve::split_tags(text_of(cfg, "tags"));
      if (std::find(tags.begin(), tags.end(), pve::managed_tag) == tags.end()) {
        tags.emplace_back(pve::managed_tag);
        p.emplace_back("tags", pve::join_tags(tags));
      }
      if (!p.empty()) {
        auto r = d.call("PUT", vm->path() + "/config", p);
        if (!r.ok()) {
          return fail(pve::error_of(r, "configure VM " + vm->id()));
        }
      }
      if (call.spec.storage_gb > 0) {
        const auto drive = text_of(cfg, s.disk);
        if (drive.empty()) {
          return fail(provider_error{"misconfigured", "VM " + vm->id() + " has no disk " + s.disk + " to size", false});
        }
        const auto size = pve::drive_size_gib(drive);
        if (!size || *size < static_cast<double>(call.spec.storage_gb)) {
          if (auto e = d.run_task("PUT", vm->path() + "/resize",
                                  {{"disk", s.disk}, {"size", std::to_string(call.spec.storage_gb) + "G"}},
                                  s.task_timeout, "grow disk " + s.disk + " of VM " + vm->id())) {
            return fail(*e);
          }
        }
      }
      out.endpoints = {
          {"vm", vm->id()}, {"node", vm->node}, {"vmid", std::to_string(vm->vmid)}, {"name", text_of(cfg, "name")}};
      out.ok = true;
      return out;
    }

    case step_kind::activate: {
      const auto vm = recorded();
      if (!vm) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to start", false});
      }
      json status;
      if (auto e = d.current(*vm, status)) {
        return fail(e->code == "not_found" ? provider_error{"missing", e->message, false} : *e);
      }
      if (text_of(status, "status") != "running") {
        if (auto e = d.run_task("POST", vm->path() + "/status/start", {}, s.power_timeout, "start VM " + vm->id())) {
          return fail(*e);
        }
      } else if (text_of(status, "qmpstatus") == "paused") {
        if (auto e = d.run_task("POST", vm->path() + "/status/resume", {}, s.power_timeout, "resume VM " + vm->id())) {
          return fail(*e);
        }
      }
      if (auto e = d.wait_status(
              *vm,
              [](const json& st) {
                return text_of(st, "status") == "running" && text_of(st, "qmpstatus") != "paused";
              },
              "running", s.power_timeout)) {
        return fail(*e);
      }
      out.ok = true;
      return out;
    }

    case step_kind::verify: {
      const auto vm = recorded();
      if (!vm) {
        return fail(provider_error{"missing", "request " + call.request_id + " holds no VM to verify", false});
      }
      json status;
      if (auto e = d.current(*vm, status)) {
        return fail(e->code == "not_found" ? provider_error{"missing", e->message, false} : *e);
      }
      const auto state = text_of(status, "status");
      const auto qmp = text_of(status, "qmpstatus");
      if (state != "running" || (!qmp.empty() && qmp != "running")) {
        return fail(provider_error{"not_running", "VM " + vm->id() + " is " + state + "/" + qmp, false});
      }
      if (s.agent_ping) {
        const auto deadline = steady::now() + s.verify_timeout;
        for (;;) {
          auto ping = d.call("POST", vm->path() + "/agent/ping");
          if (ping.ok()) {
            break;
          }
          auto e = pve::error_of(ping, "ping the guest agent of VM " + vm->id());
          if (ping.status != 500 && !e.retryable) {
            return fail(e);  // 500 = the agent is not running (yet)
          }
          if (steady::now() + s.poll_interval > deadline) {
            return fail(provider_error{"agent_not_running", e.message, true});
          }
          std::this_thread::sleep_for(s.poll_interval);
        }
        auto nics = d.call("GET", vm->path() + "/agent/network-get-interfaces");
        if (nics.ok() && nics.data.is_object() && nics.data.contains("result") && nics.data["result"].is_array()) {
          for (const auto& nic : nics.data["result"]) {
            if (text_of(nic, "name") == "lo" || !nic.contains("ip-addresses") || !nic["ip-addresses"].is_array()) {
              continue;
            }
            for (const auto& a : nic["ip-addresses"]) {
              if (text_of(a, "ip-address-type") == "ipv4" && out.endpoints.count("ip") == 0) {
                out.endpoints["ip"] = text_of(a, "ip-address");
              }
            }
          }
        }
      }
      out.ok = true;
      return out;
    }
  }
  out.error = provider_error{"internal", "unknown step", false};
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rollback

release_outcome proxmox_provider::release(const release_call& call) {
  release_outcome out;
  if (call.resource.kind != vm_kind) {
    out.ok = true;
    return out;
  }
  const auto vm = parse_vm_id(call.resource.id);
  if (!vm) {
    out.error = provider_error{"bad_resource", "resource id '" + call.resource.id + "' is not <node>/<vmid>", false};
    return out;
  }
  bool deleted = false;
  if (auto e = _impl->destroy(*vm, call.request_id, deleted)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

sweep_outcome proxmox_provider::sweep(const std::string& request_id) {
  sweep_outcome out;
  auto& d = *_impl;
  std::vector<json> vms;
  if (auto e = d.cluster_vms(vms)) {
    out.error = *e;
    return out;
  }
  // Our names end with 12 hex of the request id's hash; the description decides.
  const std::string suffix = "-" + sha256_hex(request_id).substr(0, 12);
  for (const auto& v : vms) {
    const auto n = text_of(v, "name");
    if (n.size() < suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const auto vm = impl::ref_of(v, _settings.node);
    json cfg;
    bool gone = false;
    if (auto e = d.config(vm, cfg, gone)) {
      out.error = *e;
      return out;
    }
    const auto mark = gone ? std::nullopt : pve::parse_marker(text_of(cfg, "description"));
    if (!mark || mark->request_id != request_id) {
      continue;
    }
    bool deleted = false;
    if (auto e = d.destroy(vm, request_id, deleted)) {
      out.error = *e;
      return out;
    }
    if (deleted) {
      out.released.push_back(
          events::resource{std::string{vm_kind}, vm.id(), n, step_kind::allocate, mark->idempotency_key, true});
    }
  }
  out.ok = true;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Suspend, reactivate, metrics

action_outcome proxmox_provider::suspend(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto* r = vm_of(call.resources);
  const auto vm = r != nullptr ? parse_vm_id(r->id) : std::nullopt;
  if (!vm) {
    out.error = provider_error{"not_found", "request " + call.request_id + " holds no VM to suspend", false};
    return out;
  }
  json status;
  if (auto e = d.current(*vm, status)) {
    out.error = *e;
    return out;
  }
  const bool stopped = text_of(status, "status") == "stopped";
  const bool paused = text_of(status, "qmpstatus") == "paused";
  if (_settings.suspend_mode == "pause") {
    if (!stopped && !paused) {
      if (auto e = d.run_task("POST", vm->path() + "/status/suspend", {}, _settings.power_timeout,
                              "pause VM " + vm->id())) {
        out.error = *e;
        return out;
      }
      if (auto e = d.wait_status(
              *vm, [](const json& st) { return text_of(st, "qmpstatus") == "paused" || text_of(st, "status") == "stopped"; },
              "paused", _settings.power_timeout)) {
        out.error = *e;
        return out;
      }
    }
  } else if (!stopped) {
    // A clean ACPI shutdown; forced off after the timeout so the service is surely stopped.
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(_settings.shutdown_timeout) +
                         _settings.power_timeout;
    if (auto e = d.run_task("POST", vm->path() + "/status/shutdown",
                            {{"forceStop", "1"}, {"timeout", std::to_string(_settings.shutdown_timeout.count())}},
                            timeout, "shut down VM " + vm->id())) {
      out.error = *e;
      return out;
    }
    if (auto e = d.wait_status(
            *vm, [](const json& st) { return text_of(st, "status") == "stopped"; }, "stopped", _settings.power_timeout)) {
      out.error = *e;
      return out;
    }
  }
  if (auto e = d.set_tag(*vm, pve::suspended_tag, true)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

action_outcome proxmox_provider::reactivate(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto* r = vm_of(call.resources);
  const auto vm = r != nullptr ? parse_vm_id(r->id) : std::nullopt;
  if (!vm) {
    out.error = provider_error{"not_found", "request " + call.request_id + " holds no VM to reactivate", false};
    return out;
  }
  json status;
  if (auto e = d.current(*vm, status)) {
    out.error = *e;
    return out;
  }
  if (text_of(status, "status") == "stopped") {
    if (auto e = d.run_task("POST", vm->path() + "/status/start", {}, _settings.power_timeout, "start VM " + vm->id())) {
      out.error = *e;
      return out;
    }
  } else if (text_of(status, "qmpstatus") == "paused") {
    if (auto e = d.run_task("POST", vm->path() + "/status/resume", {}, _settings.power_timeout,
                            "resume VM " + vm->id())) {
      out.error = *e;
      return out;
    }
  }
  if (auto e = d.wait_status(
          *vm,
          [](const json& st) { return text_of(st, "status") == "running" && text_of(st, "qmpstatus") != "paused"; },
          "running", _settings.power_timeout)) {
    out.error = *e;
    return out;
  }
  if (auto e = d.set_tag(*vm, pve::suspended_tag, false)) {
    out.error = *e;
    return out;
  }
  out.ok = true;
  return out;
}

metrics_sample proxmox_provider::metrics(const service_call& call) {
  metrics_sample m;
  auto& d = *_impl;
  m.at = d.now();
  const auto* r = vm_of(call.resources);
  const auto vm = r != nullptr ? parse_vm_id(r->id) : std::nullopt;
  if (!vm) {
    m.error = provider_error{"not_found", "request " + call.request_id + " holds no VM", false};
    return m;
  }
  json st;
  if (auto e = d.current(*vm, st)) {
    m.error = *e;
    return m;
  }
  constexpr double mib = 1024.0 * 1024.0;
  constexpr double gib = mib * 1024.0;
  // `cpu` is the share of the VM's vCPUs in use (1.0 = all busy).
  if (auto cpu = number_of(st, "cpu")) {
    m.cpu_percent = *cpu * 100.0;
  }
  if (auto mem = number_of(st, "mem")) {
    m.memory_used_mb = *mem / mib;
  }
  // QEMU VMs report disk usage only through the guest agent; 0 means "not known".
  if (auto disk = number_of(st, "disk"); disk && *disk > 0) {
    m.disk_used_gb = *disk / gib;
  }
  if (auto in = number_of(st, "netin")) {
    m.network_rx_bytes = *in;
  }
  if (auto outb = number_of(st, "netout")) {
    m.network_tx_bytes = *outb;
  }
  const std::pair<std::string_view, double> extras[] = {
      {"cpus", 1}, {"maxmem", mib}, {"maxdisk", gib}, {"diskread", 1}, {"diskwrite", 1}, {"uptime", 1}};
  for (const auto& [key, divisor] : extras) {
    if (auto v = number_of(st, key)) {
      const std::string name = key == "maxmem"    ? "memory_total_mb"
                               : key == "maxdisk" ? "disk_total_gb"
                               : key == "uptime"  ? "uptime_s"
                               : key == "diskread"  ? "disk_read_bytes"
                               : key == "diskwrite" ? "disk_write_bytes"
                                                    : std::string{key};
      m.extra[name] = *v / divisor;
    }
  }
  m.extra["running"] = text_of(st, "status") == "running" ? 1 : 0;
  m.ok = true;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Inventory and connectivity

result<std::vector<inventory_item>> proxmox_provider::inventory() {
  auto& d = *_impl;
  std::vector<json> vms;
  if (auto e = d.cluster_vms(vms)) {
    return make_error(errc::provider_error, e->message);
  }
  const auto ours_by_name = [&](const std::string& n) {
    // prefix ... '-' + 12 hex: a VM whose tags were not written yet (a crash in between).
    if (n.size() < 13 || n.compare(0, _settings.name_prefix.size(), _settings.name_prefix) != 0 ||
        n[n.size() - 13] != '-') {
      return false;
    }
    return std::all_of(n.end() - 12, n.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  std::vector<inventory_item> out;
  for (const auto& v : vms) {
    if (!has_tag(v, pve::managed_tag) && !ours_by_name(text_of(v, "name"))) {
      continue;
    }
    const auto vm = impl::ref_of(v, _settings.node);
    json cfg;
    bool gone = false;
    if (auto e = d.config(vm, cfg, gone)) {
      return make_error(errc::provider_error, e->message);
    }
    const auto mark = gone ? std::nullopt : pve::parse_marker(text_of(cfg, "description"));
    if (!mark) {
      continue;
    }
    inventory_item it;
    it.cluster = d.cluster;
    it.kind = std::string{vm_kind};
    it.id = vm.id();
    it.name = text_of(cfg, "name");
    it.request_id = mark->request_id;
    it.idempotency_key = mark->idempotency_key;
    it.step = step_kind::allocate;
    if (auto t = parse_rfc3339(mark->created_at)) {
      it.created_at = *t;
    }
    it.suspended = has_tag(cfg, pve::suspended_tag);
    out.push_back(std::move(it));
  }
  return out;
}

connectivity_report proxmox_provider::test_connectivity() {
  auto& d = *_impl;
  connectivity_report report;
  const auto start = steady::now();
  auto version = d.call("GET", "/version");
  report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  if (!version.ok() || !version.data.is_object()) {
    report.message = pve::error_of(version, "GET /version").message;
    return report;
  }
  // The node must exist and its VMs be visible to these credentials.
  auto node = d.call("GET", "/nodes/" + _settings.node + "/qemu");
  if (!node.ok()) {
    report.message = pve::error_of(node, "list the VMs of node " + _settings.node).message;
    return report;
  }
  report.ok = true;
  report.message = "Proxmox VE " + text_of(version.data, "version") + " at " + d.api.endpoint() + ", node " +
                   _settings.node;
  return report;
}

}  // namespace prov::providers
