#include "fake_proxmox_api.hpp"

#include <algorithm>
#include <cstdio>
#include <regex>

// What the fake follows (Proxmox VE 8 API viewer, https://pve.proxmox.com/pve-docs/api-viewer/,
// and https://pve.proxmox.com/wiki/Proxmox_VE_API):
//   Authentication   `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`, or a ticket from
//                    POST /access/ticket (username, password) sent as the PVEAuthCookie cookie,
//                    with the CSRFPreventionToken header on every write; 401 otherwise
//   Encoding         parameters as application/x-www-form-urlencoded (query string for GET and
//                    DELETE); answers {"data": ...}; errors: the status with
//                    {"data": null, "message": "...\n"} (pve-http-server's JSON formatter), and
//                    400 {"errors": {"<param>": "<why>"}, "message": "Parameter verification failed.\n"}
//   GET  /version                       {version, release, repoid}
//   GET  /cluster/nextid                the lowest free VMID, as a string
//   GET  /cluster/resources (type)      [{id: "qemu/<vmid>", type, vmid, node, name, status, template, tags}]
//   GET  /nodes/{node}/qemu             [{vmid, name ("VM <vmid>" without one), status, lock, tags}]
//   POST /nodes/{node}/qemu             vmid, name (dns-name), description (<= 8192), tags
//                                       (pve-tag-list), ostype, scsihw, cores, memory, net[n],
//                                       scsi0 ("<storage>:<GiB>"), pool -> UPID (qmcreate)
//   POST /nodes/{node}/qemu/{vmid}/clone  newid, name, description, full, storage (full clones
//                                       only), pool -> UPID (qmclone); "unable to create VM <id>:
//                                       config file already exists" when newid is taken
//   GET/PUT /nodes/{node}/qemu/{vmid}/config  (PUT: cores, memory, net0, tags, description, delete)
//   PUT  /nodes/{node}/qemu/{vmid}/resize  disk, size (\+?\d+(\.\d+)?[KMGT]?) -> UPID (PVE 8);
//                                       shrinking is refused
//   POST /nodes/{node}/qemu/{vmid}/status/{start,stop,shutdown (forceStop, timeout),suspend,resume} -> UPID
//   GET  /nodes/{node}/qemu/{vmid}/status/current  {status, qmpstatus, cpu, cpus, mem, maxmem, disk,
//                                       maxdisk, netin, netout, diskread, diskwrite, uptime}
//   POST /nodes/{node}/qemu/{vmid}/agent/ping; GET .../agent/network-get-interfaces
//   DELETE /nodes/{node}/qemu/{vmid}    purge, destroy-unreferenced-disks -> UPID (qmdestroy);
//                                       a running VM is refused
//   GET  /nodes/{node}/tasks/{upid}/status  {upid, node, type, id, user, status, exitstatus}
//   A missing VM: 500 "Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' does not exist".

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

std::map<std::string, std::string> parse_form(const std::string& text) {
  std::map<std::string, std::string> out;
  if (text.empty()) {
    return out;
  }
  for (const auto& pair : split(text, '&')) {
    const auto eq = pair.find('=');
    out[url_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
  }
  return out;
}

std::string hex8(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08llX", static_cast<unsigned long long>(v));
  return buf;
}

const std::set<std::string>& storages() {
  static const std::set<std::string> all{"local-lvm", "ceph-pool"};
  return all;
}
const std::set<std::string>& bridges() {
  static const std::set<std::string> all{"vmbr0", "vmbr1"};
  return all;
}
const std::set<std::string>& pools() {
  static const std::set<std::string> all{"tenants"};
  return all;
}

bool integer_in(const std::string& v, long long min, long long max) {
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) || v.size() > 12) {
    return false;
  }
  const auto n = std::stoll(v);
  return n >= min && n <= max;
}

bool boolean(const std::string& v) {
  static const std::set<std::string> ok{"0", "1", "true", "false", "yes", "no", "on", "off"};
  return ok.count(v) > 0;
}

bool truthy(const std::string& v) {
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

/// One parameter of a method: whether it is required, and its check ("" = valid, else why not).
struct param_spec {
  bool required = false;
  std::function<std::string(const std::string&)> check;
};

std::string drive_for_create(const std::string& v) {
  static const std::regex new_disk{R"(^([a-zA-Z][a-zA-Z0-9\-_.]*):([0-9]+)(,.*)?$)"};
  std::smatch m;
  if (!std::regex_match(v, m, new_disk)) {
    return "format error: expected <storage>:<size in GiB>[,options]";
  }
  if (storages().count(m[1]) == 0) {
    return "storage '" + std::string{m[1]} + "' does not exist";
  }
  return "";
}

}  // namespace

namespace pve_schema {

bool dns_name(const std::string& s) {
  static const std::regex re{R"(^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)$)"};
  return !s.empty() && std::regex_match(s, re);
}

bool tag_list(const std::string& s) {
  static const std::regex tag{R"(^[a-zA-Z0-9_][a-zA-Z0-9_\-+.]*$)"};
  std::string part;
  bool any = false;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ';' || s[i] == ',' || s[i] == ' ') {
      if (!part.empty()) {
        if (!std::regex_match(part, tag)) {
          return false;
        }
        any = true;
      }
      part.clear();
    } else {
      part.push_back(s[i]);
    }
  }
  return any;
}

bool net(const std::string& s, const std::set<std::string>& known_bridges) {
  static const std::set<std::string> models{"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"};
  static const std::regex mac{R"(^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$)"};
  static const std::set<std::string> options{"bridge", "firewall", "link_down", "mtu", "queues", "rate", "tag",
                                             "trunks", "macaddr", "model"};
  bool model_seen = false;
  bool bridge_ok = false;
  for (const auto& part : split(s, ',')) {
    const auto eq = part.find('=');
    const auto key = part.substr(0, eq);
    const auto value = eq == std::string::npos ? std::string{} : part.substr(eq + 1);
    if (models.count(key) > 0) {
      if (model_seen || (!value.empty() && !std::regex_match(value, mac))) {
        return false;
      }
      model_seen = true;
    } else if (options.count(key) == 0 || eq == std::string::npos) {
      return false;
    } else if (key == "bridge") {
      bridge_ok = known_bridges.count(value) > 0;
    }
  }
  return model_seen && bridge_ok;
}

bool size(const std::string& s) {
  static const std::regex re{R"(^\+?\d+(\.\d+)?[KMGT]?$)"};
  return std::regex_match(s, re);
}

}  // namespace pve_schema

fake_proxmox_api::fake_proxmox_api(options o)
    : _options(std::move(o)), _server([this](const served_request& in) { return handle(in); }, _options.tls) {
  std::lock_guard<std::mutex> guard{_mutex};
  vm_state tmpl;
  tmpl.config = {{"name", "tmpl-debian12"},
                 {"template", 1},
                 {"cores", 1},
                 {"memory", "1024"},
                 {"ostype", "l26"},
                 {"scsihw", "virtio-scsi-single"},
                 {"scsi0", "local-lvm:base-9000-disk-0,size=8G"},
                 {"net0", "virtio=BC:24:11:00:90:00,bridge=vmbr0,firewall=1"},
                 {"agent", "1"},
                 {"smbios1", "uuid=00000000-0000-4000-8000-000000009000"}};
  _vms[9000] = tmpl;
}

fake_proxmox_api::~fake_proxmox_api() {
  _server.stop();
}

std::string fake_proxmox_api::endpoint() const {
  return _server.url();
}

void fake_proxmox_api::expire_tickets() {
  std::lock_guard<std::mutex> guard{_mutex};
  _tickets.clear();
}

void fake_proxmox_api::inject(fault f) {
  std::lock_guard<std::mutex> guard{_mutex};
  _faults.push_back(std::move(f));
}

void fake_proxmox_api::steal_next_ids(int n) {
  std::lock_guard<std::mutex> guard{_mutex};
  _steal += n;
}

std::int64_t fake_proxmox_api::put_vm(const std::string& name, const std::string& description) {
  std::lock_guard<std::mutex> guard{_mutex};
  const auto id = free_id();
  vm_state v;
  v.config = {{"name", name}, {"cores", 1}, {"memory", "512"}, {"net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0"}};
  if (!description.empty()) {
    v.config["description"] = description;
  }
  _vms[id] = v;
  return id;
}

void fake_proxmox_api::set_counters(std::int64_t vmid, json counters) {
  std::lock_guard<std::mutex> guard{_mutex};
  _vms.at(vmid).counters = std::move(counters);
}

void fake_proxmox_api::set_state(std::int64_t vmid, const std::string& state) {
  std::lock_guard<std::mutex> guard{_mutex};
  auto& v = _vms.at(vmid);
  v.status = state == "paused" ? "running" : state;
  v.qmp = state;
}

void fake_proxmox_api::finish_tasks() {
  std::lock_guard<std::mutex> guard{_mutex};
  for (auto& [upid, t] : _tasks) {
    if (!t.done) {
      end_task(t);
    }
  }
}

std::optional<json> fake_proxmox_api::vm(std::int64_t vmid) const {
  std::lock_guard<std::mutex> guard{_mutex};
  auto it = _vms.find(vmid);
  if (it == _vms.end()) {
    return std::nullopt;
  }
  json out = it->second.config;
  out["status"] = it->second.status;
  out["qmpstatus"] = it->second.qmp;
  if (!it->second.pool.empty()) {
    out["pool"] = it->second.pool;
  }
  return out;
}

std::vector<std::int64_t> fake_proxmox_api::vmids() const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::int64_t> out;
  for (const auto& [id, v] : _vms) {
    if (!v.config.contains("template")) {
      out.push_back(id);
    }
  }
  return out;
}

std::size_t fake_proxmox_api::tickets_issued() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _ticket_count;
}

std::vector<std::string> fake_proxmox_api::violations() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _violations;
}

std::vector<std::string> fake_proxmox_api::log() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _log;
}

std::size_t fake_proxmox_api::count(const std::string& method, const std::string& path_contains) const {
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

std::int64_t fake_proxmox_api::free_id() const {
  std::int64_t id = 100;
  while (_vms.count(id) > 0) {
    ++id;
  }
  return id;
}

std::string fake_proxmox_api::gone(std::int64_t vmid) const {
  return "Configuration file 'nodes/" + _options.node + "/qemu-server/" + std::to_string(vmid) + ".conf' does not exist";
}

fake_proxmox_api::answer fake_proxmox_api::invalid(const std::string& where,
                                                   const std::map<std::string, std::string>& problems) {
  json errors = json::object();
  for (const auto& [param, why] : problems) {
    _violations.push_back(where + ": " + param + ": " + why);
    errors[param] = why + "\n";
  }
  return answer{400, nullptr, "Parameter verification failed.", errors};
}

std::string fake_proxmox_api::start_task(const std::string& type, std::int64_t vmid, const std::string& user,
                                         std::function<std::string()> finish) {
  const auto pid = ++_pid;
  const std::string upid = "UPID:" + _options.node + ":" + hex8(pid) + ":" + hex8(0xC0FFEE + pid) + ":" +
                           hex8(0x65A1B2C3 + pid) + ":" + type + ":" + std::to_string(vmid) + ":" + user + ":";
  task_state t;
  t.node = _options.node;
  t.type = type;
  t.id = std::to_string(vmid);
  t.user = user;
  t.reads_left = _options.task_reads;
  t.finish = std::move(finish);
  auto& stored = _tasks[upid] = std::move(t);
  if (stored.reads_left <= 0) {
    end_task(stored);
  }
  return upid;
}

void fake_proxmox_api::end_task(task_state& t) {
  t.exitstatus = t.finish();
  t.done = true;
}

json fake_proxmox_api::status_of(std::int64_t vmid) const {
  const auto& v = _vms.at(vmid);
  const bool running = v.status == "running";
  const double maxmem = std::stod(v.config.value("memory", std::string{"512"})) * 1024 * 1024;
  json st{{"vmid", vmid},
          {"status", v.status},
          {"qmpstatus", v.qmp},
          {"cpus", v.config.value("cores", 1)},
          {"maxmem", maxmem},
          {"maxdisk", 8.0 * 1024 * 1024 * 1024},
          {"cpu", 0},
          {"mem", 0},
          {"disk", 0},
          {"netin", 0},
          {"netout", 0},
          {"diskread", 0},
          {"diskwrite", 0},
          {"uptime", 0},
          {"agent", 1},
          {"ha", {{"managed", 0}}}};
  if (v.config.contains("name")) {
    st["name"] = v.config["name"];
  }
  if (v.config.contains("tags")) {
    st["tags"] = v.config["tags"];
  }
  if (v.config.contains("lock")) {
    st["lock"] = v.config["lock"];
  }
  if (running) {
    st["pid"] = 4242;
    st["uptime"] = 60;
    for (const auto& [k, value] : v.counters.items()) {
      st[k] = value;
    }
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// HTTP

served_response fake_proxmox_api::handle(const served_request& in) {
  std::lock_guard<std::mutex> guard{_mutex};
  const auto q = in.target.find('?');
  const std::string path = in.target.substr(0, q);
  served_response out;
  const auto respond = [&](const answer& a) {
    served_response r;
    r.status = a.status;
    r.headers = {{"Content-Type", "application/json;charset=UTF-8"}};
    json body{{"data", a.data}};
    if (a.status >= 400) {
      body["message"] = a.message + "\n";
    }
    if (!a.errors.is_null()) {
      body["errors"] = a.errors;
    }
    r.body = body.dump();
    _log.push_back(in.method + " " + in.target + " -> " + std::to_string(r.status));
    return r;
  };
  // Time passes with every request: each running task comes one step closer to its end.
  for (auto& [upid, t] : _tasks) {
    if (!t.done && --t.reads_left <= 0) {
      end_task(t);
    }
  }
  for (auto& f : _faults) {
    if (f.times > 0 && (f.method.empty() || f.method == in.method) &&
        (f.path_contains.empty() || in.target.find(f.path_contains) != std::string::npos)) {
      --f.times;
      if (f.hang) {
        out.hang = true;
        _log.push_back(in.method + " " + in.target + " -> (no answer)");
        return out;
      }
      return respond(answer{f.status, nullptr, f.message});
    }
  }
  const std::string prefix = "/api2/json/";
  if (path.compare(0, prefix.size(), prefix) != 0) {
    return respond(answer{501, nullptr, "Method '" + in.method + " " + path + "' not implemented"});
  }
  auto segments = split(path.substr(prefix.size()), '/');
  for (auto& segment : segments) {
    segment = url_decode(segment);  // UPIDs travel percent-encoded
  }
  // Parameters: the query for GET/DELETE, a form body for POST/PUT.
  params p;
  if (in.method == "GET" || in.method == "DELETE") {
    if (!in.body.empty()) {
      _violations.push_back(in.method + " " + path + ": a body on " + in.method);
    }
    if (q != std::string::npos) {
      p = parse_form(in.target.substr(q + 1));
    }
  } else {
    if (q != std::string::npos) {
      _violations.push_back(in.method + " " + path + ": parameters belong in the form body");
    }
    if (!in.body.empty() && in.header("content-type").rfind("application/x-www-form-urlencoded", 0) != 0) {
      return respond(invalid(in.method + " " + path, {{"(body)", "expected application/x-www-form-urlencoded"}}));
    }
    p = parse_form(in.body);
  }

  if (segments == std::vector<std::string>{"access", "ticket"} && in.method == "POST") {
    if (p["username"] != _options.username || p["password"] != _options.password) {
      return respond(answer{401, nullptr, "authentication failure"});
    }
    const std::string ticket = "PVE:" + _options.username + ":" + hex8(++_ticket_count) + "::c2lnbmF0dXJl";
    _tickets.insert(ticket);
    return respond(answer{200,
                          {{"ticket", ticket},
                           {"CSRFPreventionToken", hex8(_ticket_count) + ":csrf"},
                           {"username", _options.username},
                           {"cap", json::object()}}});
  }
  std::string user;
  const auto auth = in.header("authorization");
  const std::string cookie = in.header("cookie");
  if (!auth.empty()) {
    if (auth != "PVEAPIToken=" + _options.token_id + "=" + _options.secret) {
      return respond(answer{401, nullptr, "invalid token value!"});
    }
    user = _options.token_id;
  } else if (cookie.rfind("PVEAuthCookie=", 0) == 0) {
    const auto ticket = cookie.substr(std::string{"PVEAuthCookie="}.size());
    if (_tickets.count(ticket) == 0) {
      return respond(answer{401, nullptr, "invalid PVE ticket"});
    }
    if (in.method != "GET") {
      const auto n = ticket.substr(ticket.find(':', 4) + 1, 8);
      if (in.header("csrfpreventiontoken") != n + ":csrf") {
        return respond(answer{401, nullptr, "Permission denied - invalid csrf token"});
      }
    }
    user = _options.username;
  } else {
    return respond(answer{401, nullptr, "No ticket"});
  }
  return respond(route(in.method, segments, p, user));
}

fake_proxmox_api::answer fake_proxmox_api::route(const std::string& method, const std::vector<std::string>& seg,
                                                 const params& p, const std::string& user) {
  const auto where = [&] {
    std::string w = method + " /";
    for (std::size_t i = 0; i < seg.size(); ++i) {
      w += (i ? "/" : "") + seg[i];
    }
    return w;
  }();
  const auto check = [&](const std::map<std::string, param_spec>& spec) -> std::optional<answer> {
    std::map<std::string, std::string> problems;
    for (const auto& [name, value] : p) {
      auto it = spec.find(name);
      if (it == spec.end()) {
        problems[name] = "property is not defined in schema and the schema does not allow additional properties";
      } else if (it->second.check) {
        if (auto why = it->second.check(value); !why.empty()) {
          problems[name] = why;
        }
      }
    }
    for (const auto& [name, s] : spec) {
      if (s.required && p.count(name) == 0) {
        problems[name] = "property is missing and it is not optional";
      }
    }
    if (!problems.empty()) {
      return invalid(where, problems);
    }
    return std::nullopt;
  };
  if (seg == std::vector<std::string>{"version"} && method == "GET") {
    return answer{200, {{"version", "8.1.4"}, {"release", "8.1"}, {"repoid", "ec5affc9e41f1d79"}}};
  }
  if (seg == std::vector<std::string>{"cluster", "nextid"} && method == "GET") {
    if (auto bad = check({{"vmid", {false, [](const std::string& v) {
                             return integer_in(v, 100, 999999999) ? "" : "invalid VMID";
                           }}}})) {
      return *bad;
    }
    const auto id = free_id();
    if (_steal > 0) {
      --_steal;
      vm_state v;  // someone else takes it before we do
      v.config = {{"name", "someone-else-" + std::to_string(id)}, {"cores", 1}, {"memory", "512"}};
      _vms[id] = v;
    }
    return answer{200, std::to_string(id)};
  }
  if (seg == std::vector<std::string>{"cluster", "resources"} && method == "GET") {
    if (auto bad = check({{"type", {false, [](const std::string& v) {
                             return v == "vm" || v == "storage" || v == "node" || v == "sdn" ? "" : "value not allowed";
                           }}}})) {
      return *bad;
    }
    json list = json::array();
    for (const auto& [id, v] : _vms) {
      json r{{"id", "qemu/" + std::to_string(id)},
             {"type", "qemu"},
             {"vmid", id},
             {"node", _options.node},
             {"status", v.status},
             {"template", v.config.contains("template") ? 1 : 0},
             {"maxcpu", v.config.value("cores", 1)}};
      if (v.config.contains("name")) {
        r["name"] = v.config["name"];
      }
      if (v.config.contains("tags")) {
        r["tags"] = v.config["tags"];
      }
      if (!v.pool.empty()) {
        r["pool"] = v.pool;
      }
      list.push_back(r);
    }
    if (p.count("type") > 0 && p.at("type") != "vm") {
      list = json::array();
    }
    return answer{200, list};
  }
  if (seg.size() >= 2 && seg[0] == "nodes") {
    if (seg[1] != _options.node) {
      return answer{500, nullptr, "hostname lookup '" + seg[1] + "' failed - failed to get address info for: " + seg[1] +
                                      ": Name or service not known"};
    }
    if (seg.size() == 5 && seg[2] == "tasks" && seg[4] == "status" && method == "GET") {
      auto it = _tasks.find(seg[3]);
      if (it == _tasks.end()) {
        return answer{400, nullptr, "unable to parse worker upid '" + seg[3] + "'"};
      }
      const auto& t = it->second;
      json st{{"upid", seg[3]},     {"node", t.node},         {"pid", 4096},   {"pstart", 12345678},
              {"starttime", 1893456000}, {"type", t.type}, {"id", t.id},    {"user", t.user},
              {"status", t.done ? "stopped" : "running"}};
      if (t.done) {
        st["exitstatus"] = t.exitstatus;
      }
      return answer{200, st};
    }
    if (seg.size() == 3 && seg[2] == "qemu") {
      if (method == "GET") {
        json list = json::array();
        for (const auto& [id, v] : _vms) {
          json r{{"vmid", id}, {"status", v.status}, {"name", v.config.value("name", "VM " + std::to_string(id))}};
          for (const char* k : {"tags", "lock"}) {
            if (v.config.contains(k)) {
              r[k] = v.config[k];
            }
          }
          if (v.config.contains("template")) {
            r["template"] = 1;
          }
          list.push_back(r);
        }
        return answer{200, list};
      }
      if (method == "POST") {
        if (auto bad = check({
                {"vmid", {true, [](const std::string& v) { return integer_in(v, 100, 999999999) ? "" : "invalid VMID"; }}},
                {"name", {false, [](const std::string& v) { return pve_schema::dns_name(v) ? "" : "invalid format - value does not look like a valid DNS name"; }}},
                {"description", {false, [](const std::string& v) { return v.size() <= 8192 ? "" : "value may only be 8192 characters long"; }}},
                {"tags", {false, [](const std::string& v) { return pve_schema::tag_list(v) ? "" : "invalid format - invalid tag"; }}},
                {"ostype", {false, [](const std::string& v) {
                   static const std::set<std::string> ok{"other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"};
                   return ok.count(v) ? "" : "value '" + v + "' does not have a value in the enumeration";
                 }}},
                {"scsihw", {false, [](const std::string& v) {
                   static const std::set<std::string> ok{"lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"};
                   return ok.count(v) ? "" : "value '" + v + "' does not have a value in the enumeration";
                 }}},
                {"cores", {false, [](const std::string& v) { return integer_in(v, 1, 1024) ? "" : "type check ('integer') failed"; }}},
                {"memory", {false, [](const std::string& v) { return integer_in(v, 16, 1LL << 32) ? "" : "invalid format"; }}},
                {"net0", {false, [](const std::string& v) { return pve_schema::net(v, bridges()) ? "" : "invalid format - format error"; }}},
                {"scsi0", {false, drive_for_create}},
                {"virtio0", {false, drive_for_create}},
                {"sata0", {false, drive_for_create}},
                {"ide0", {false, drive_for_create}},
                {"agent", {false, nullptr}},
                {"pool", {false, [](const std::string& v) { return pools().count(v) ? "" : "pool '" + v + "' does not exist"; }}},
            })) {
          return *bad;
        }
        return create(p, user);
      }
    }
    if (seg.size() >= 4 && seg[2] == "qemu") {
      if (!integer_in(seg[3], 1, 999999999)) {
        return invalid(where, {{"vmid", "type check ('integer') failed"}});
      }
      const auto vmid = std::stoll(seg[3]);
      const std::vector<std::string> rest(seg.begin() + 4, seg.end());
      // Each method's parameters, as the API viewer lists them (those provisiond may send).
      std::map<std::string, param_spec> spec;
      const auto key = method + " " + (rest.empty() ? std::string{} : rest[0]) + (rest.size() > 1 ? "/" + rest[1] : "");
      const auto vmid_check = [](const std::string& v) { return integer_in(v, 100, 999999999) ? "" : "invalid VMID"; };
      const auto bool_check = [](const std::string& v) { return boolean(v) ? "" : "type check ('boolean') failed"; };
      if (key == "POST clone") {
        spec = {{"newid", {true, vmid_check}},
                {"name", {false, [](const std::string& v) { return pve_schema::dns_name(v) ? "" : "invalid format - value does not look like a valid DNS name"; }}},
                {"description", {false, [](const std::string& v) { return v.size() <= 8192 ? "" : "value may only be 8192 characters long"; }}},
                {"full", {false, bool_check}},
                {"storage", {false, [](const std::string& v) { return storages().count(v) ? "" : "storage '" + v + "' does not exist"; }}},
                {"pool", {false, [](const std::string& v) { return pools().count(v) ? "" : "pool '" + v + "' does not exist"; }}},
                {"target", {false, nullptr}},
                {"format", {false, nullptr}},
                {"snapname", {false, nullptr}},
                {"bwlimit", {false, nullptr}}};
      } else if (key == "PUT config") {
        spec = {{"cores", {false, [](const std::string& v) { return integer_in(v, 1, 1024) ? "" : "type check ('integer') failed"; }}},
                {"memory", {false, [](const std::string& v) { return integer_in(v, 16, 1LL << 32) ? "" : "invalid format"; }}},
                {"net0", {false, [](const std::string& v) { return pve_schema::net(v, bridges()) ? "" : "invalid format - format error"; }}},
                {"tags", {false, [](const std::string& v) { return pve_schema::tag_list(v) ? "" : "invalid format - invalid tag"; }}},
                {"description", {false, [](const std::string& v) { return v.size() <= 8192 ? "" : "value may only be 8192 characters long"; }}},
                {"delete", {false, [](const std::string& v) { return std::regex_match(v, std::regex{R"(^[a-z0-9]+([,; ][a-z0-9]+)*$)"}) ? "" : "invalid format - invalid configuration ID list"; }}},
                {"digest", {false, nullptr}}};
      } else if (key == "PUT resize") {
        spec = {{"disk", {true, [](const std::string& v) { return std::regex_match(v, std::regex{R"(^(scsi|virtio|sata|ide)[0-9]+$)"}) ? "" : "value does not have a value in the enumeration"; }}},
                {"size", {true, [](const std::string& v) { return pve_schema::size(v) ? "" : "value does not match the regex pattern"; }}},
                {"digest", {false, nullptr}},
                {"skiplock", {false, bool_check}}};
      } else if (key == "POST status/shutdown") {
        spec = {{"forceStop", {false, bool_check}},
                {"timeout", {false, [](const std::string& v) { return integer_in(v, 0, 1LL << 31) ? "" : "type check ('integer') failed"; }}},
                {"keepActive", {false, bool_check}},
                {"skiplock", {false, bool_check}}};
      } else if (key == "POST status/start" || key == "POST status/stop" || key == "POST status/resume" ||
                 key == "POST status/suspend") {
        spec = {{"skiplock", {false, bool_check}}, {"timeout", {false, nullptr}}};
      } else if (key == "DELETE ") {
        spec = {{"purge", {false, bool_check}}, {"destroy-unreferenced-disks", {false, bool_check}}, {"skiplock", {false, bool_check}}};
      }
      if (auto bad = check(spec)) {
        return *bad;
      }
      return qemu(method, vmid, rest, p, user);
    }
  }
  return answer{501, nullptr, "Method '" + where + "' not implemented"};
}

fake_proxmox_api::answer fake_proxmox_api::create(const params& p, const std::string& user) {
  const auto vmid = std::stoll(p.at("vmid"));
  if (_vms.count(vmid) > 0) {
    return answer{500, nullptr,
                  "unable to create VM " + std::to_string(vmid) + " - VM " + std::to_string(vmid) +
                      " already exists on node '" + _options.node + "'"};
  }
  _vms[vmid].config = {{"lock", "create"}};
  const auto upid = start_task("qmcreate", vmid, user, [this, vmid, p] {
    auto& v = _vms[vmid];
    json cfg = json::object();
    for (const auto& [k, value] : p) {
      if (k == "vmid" || k == "pool") {
        continue;
      }
      cfg[k] = value;
    }
    if (cfg.contains("cores")) {
      cfg["cores"] = std::stoll(p.at("cores"));
    }
    for (const char* disk : {"scsi0", "virtio0", "sata0", "ide0"}) {
      if (cfg.contains(disk)) {
        const auto spec = cfg[disk].get<std::string>();
        const auto colon = spec.find(':');
        const auto comma = spec.find(',');
        cfg[disk] = spec.substr(0, colon) + ":vm-" + std::to_string(vmid) + "-disk-0,size=" +
                    spec.substr(colon + 1, comma == std::string::npos ? std::string::npos : comma - colon - 1) + "G";
      }
    }
    if (cfg.contains("net0")) {
      auto net = cfg["net0"].get<std::string>();
      const auto comma = net.find(',');
      if (net.substr(0, comma).find('=') == std::string::npos) {
        net.insert(comma, "=BC:24:11:00:" + hex8(static_cast<std::uint64_t>(vmid)).substr(4, 2) + ":" +
                              hex8(static_cast<std::uint64_t>(vmid)).substr(6, 2));
      }
      cfg["net0"] = net;
    }
    cfg["smbios1"] = "uuid=00000000-0000-4000-8000-" + hex8(static_cast<std::uint64_t>(vmid)) + "0000";
    v.config = cfg;
    if (p.count("pool")) {
      v.pool = p.at("pool");
    }
    return std::string{"OK"};
  });
  return answer{200, upid};
}

fake_proxmox_api::answer fake_proxmox_api::clone(std::int64_t source, const params& p, const std::string& user) {
  const auto& src = _vms.at(source);
  const auto newid = std::stoll(p.at("newid"));
  const bool full = p.count("full") ? truthy(p.at("full")) : !src.config.contains("template");
  if (p.count("storage") && !full) {
    return answer{500, nullptr, "parameter 'storage' not allowed for linked clones"};
  }
  if (!full && !src.config.contains("template")) {
    return answer{500, nullptr, "Linked clone feature is not supported for drive 'scsi0'"};
  }
  if (src.config.contains("lock")) {
    return answer{500, nullptr, "VM is locked (" + src.config["lock"].get<std::string>() + ")"};
  }
  if (_vms.count(newid) > 0) {
    return answer{500, nullptr, "unable to create VM " + std::to_string(newid) + ": config file already exists"};
  }
  // The temporary configuration: no name until the disks are copied.
  _vms[newid].config = {{"lock", "clone"}};
  const auto upid = start_task("qmclone", source, user, [this, source, newid, p, full] {
    if (_vms.count(source) == 0) {
      _vms.erase(newid);
      return std::string{"clone failed: source VM is gone"};
    }
    json cfg = _vms.at(source).config;
    cfg.erase("template");
    cfg["name"] = p.count("name") ? p.at("name") : "Copy-of-VM-" + cfg.value("name", std::to_string(source));
    if (p.count("description")) {
      cfg["description"] = p.at("description");
    }
    const auto size = cfg.value("scsi0", std::string{}).substr(cfg.value("scsi0", std::string{}).find(",size="));
    const std::string storage = p.count("storage") ? p.at("storage") : "local-lvm";
    cfg["scsi0"] = full ? storage + ":vm-" + std::to_string(newid) + "-disk-0" + size
                        : "local-lvm:base-" + std::to_string(source) + "-disk-0/vm-" + std::to_string(newid) + "-disk-0" + size;
    cfg["net0"] = "virtio=BC:24:11:00:" + hex8(static_cast<std::uint64_t>(newid)).substr(6, 2) + ":01,bridge=vmbr0,firewall=1";
    cfg["smbios1"] = "uuid=00000000-0000-4000-8000-" + hex8(static_cast<std::uint64_t>(newid)) + "0000";
    auto& v = _vms[newid];
    v.config = cfg;
    if (p.count("pool")) {
      v.pool = p.at("pool");
    }
    return std::string{"OK"};
  });
  return answer{200, upid};
}

fake_proxmox_api::answer fake_proxmox_api::qemu(const std::string& method, std::int64_t vmid,
                                                const std::vector<std::string>& rest, const params& p,
                                                const std::string& user) {
  auto it = _vms.find(vmid);
  if (it == _vms.end()) {
    return answer{500, nullptr, gone(vmid)};
  }
  auto& v = it->second;
  const auto locked = [&]() -> std::optional<answer> {
    if (v.config.contains("lock")) {
      return answer{500, nullptr, "VM is locked (" + v.config["lock"].get<std::string>() + ")"};
    }
    return std::nullopt;
  };
  const std::string id = std::to_string(vmid);
  if (rest.size() == 1 && rest[0] == "clone" && method == "POST") {
    return clone(vmid, p, user);
  }
  if (rest.size() == 1 && rest[0] == "config") {
    if (method == "GET") {
      json cfg = v.config;
      cfg["digest"] = "3f1d0c0ffee" + id;
      return answer{200, cfg};
    }
    if (method == "PUT") {
      if (auto l = locked()) {
        return *l;
      }
      for (const auto& [k, value] : p) {
        if (k == "delete") {
          for (const auto& d : split(value, ',')) {
            v.config.erase(d);
          }
        } else if (k == "cores") {
          v.config[k] = std::stoll(value);
        } else if (k != "digest") {
          v.config[k] = value;
        }
      }
      return answer{200, nullptr};
    }
  }
  if (rest.size() == 1 && rest[0] == "resize" && method == "PUT") {
    if (auto l = locked()) {
      return *l;
    }
    const auto disk = p.at("disk");
    if (!v.config.contains(disk)) {
      return answer{500, nullptr, "disk '" + disk + "' does not exist"};
    }
    auto drive = v.config[disk].get<std::string>();
    const auto at = drive.find(",size=");
    const double current = std::stod(drive.substr(at + 6));  // the fake keeps sizes in G
    auto size = p.at("size");
    const bool relative = size.front() == '+';
    if (relative) {
      size.erase(0, 1);
    }
    if (size.back() != 'G') {
      return answer{500, nullptr, "the fake only sizes in G"};
    }
    double wanted = std::stod(size);
    if (relative) {
      wanted += current;
    }
    if (wanted < current) {
      return answer{500, nullptr, "shrinking disks is not supported"};
    }
    const auto upid = start_task("resize", vmid, user, [this, vmid, disk, drive, at, wanted] {
      std::string w = std::to_string(static_cast<long long>(wanted));
      _vms[vmid].config[disk] = drive.substr(0, at) + ",size=" + w + "G";
      return std::string{"OK"};
    });
    return answer{200, upid};
  }
  if (rest.size() == 2 && rest[0] == "status") {
    if (rest[1] == "current" && method == "GET") {
      return answer{200, status_of(vmid)};
    }
    if (method != "POST") {
      return answer{501, nullptr, "Method not implemented"};
    }
    if (auto l = locked()) {
      return *l;
    }
    const auto transition = [&](const std::string& type, std::string status, std::string qmp) {
      return answer{200, start_task(type, vmid, user, [this, vmid, status, qmp] {
                      if (_vms.count(vmid) == 0) {
                        return std::string{"VM " + std::to_string(vmid) + " does not exist"};
                      }
                      _vms[vmid].status = status;
                      _vms[vmid].qmp = qmp;
                      return std::string{"OK"};
                    })};
    };
    if (rest[1] == "start") {
      if (v.status == "running") {
        return answer{500, nullptr, "VM " + id + " already running"};
      }
      return transition("qmstart", "running", "running");
    }
    if (rest[1] == "stop") {
      return transition("qmstop", "stopped", "stopped");
    }
    if (rest[1] == "shutdown") {
      if (v.status != "running") {
        return answer{500, nullptr, "VM " + id + " not running"};
      }
      return transition("qmshutdown", "stopped", "stopped");
    }
    if (rest[1] == "suspend") {
      if (v.status != "running") {
        return answer{500, nullptr, "VM " + id + " not running"};
      }
      return transition("qmpause", "running", "paused");
    }
    if (rest[1] == "resume") {
      if (v.status != "running") {
        return answer{500, nullptr, "VM " + id + " not running"};
      }
      return transition("qmresume", "running", "running");
    }
  }
  if (rest.size() == 2 && rest[0] == "agent") {
    if (!_options.agent || v.status != "running" || v.qmp != "running") {
      return answer{500, nullptr, "QEMU guest agent is not running"};
    }
    if (rest[1] == "ping" && method == "POST") {
      return answer{200, {{"result", json::object()}}};
    }
    if (rest[1] == "network-get-interfaces" && method == "GET") {
      return answer{200,
                    {{"result", json::array({{{"name", "lo"},
                                              {"ip-addresses",
                                               json::array({{{"ip-address", "127.0.0.1"},
                                                             {"ip-address-type", "ipv4"},
                                                             {"prefix", 8}}})}},
                                             {{"name", "eth0"},
                                              {"hardware-address", "bc:24:11:00:00:01"},
                                              {"ip-addresses",
                                               json::array({{{"ip-address", "10.0.0." + std::to_string(vmid % 250)},
                                                             {"ip-address-type", "ipv4"},
                                                             {"prefix", 24}}})}}})}}};
    }
  }
  if (rest.empty() && method == "DELETE") {
    if (auto l = locked()) {
      return *l;
    }
    if (v.status == "running") {
      return answer{500, nullptr, "VM " + id + " is running - destroy failed"};
    }
    v.config["lock"] = "destroyed";
    return answer{200, start_task("qmdestroy", vmid, user, [this, vmid] {
                    _vms.erase(vmid);
                    return std::string{"OK"};
                  })};
  }
  return answer{501, nullptr, "Method '" + method + " /nodes/" + _options.node + "/qemu/" + id + "' not implemented"};
}

}  // namespace prov::test
