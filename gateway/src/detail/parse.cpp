#include "detail/parse.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "prov/core/ids.hpp"
#include "prov/events/codec.hpp"

namespace prov::gateway::detail {

using nlohmann::json;

result<json> parse_object(const std::string& body) {
  if (body.empty()) {
    return make_error(errc::invalid_argument, "request body is empty; expected a JSON object");
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return make_error(errc::invalid_argument, std::string{"malformed JSON: "} + e.what());
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "request body must be a JSON object");
  }
  return j;
}

void field_reader::fail(const std::string& name, const std::string& what) {
  if (!_error) {
    _error = make_error(errc::invalid_argument, path_of(name) + " " + what);
  }
}

const json* field_reader::find(const char* name, bool required) {
  _known.insert(name);
  const auto it = _obj.find(name);
  if (it == _obj.end() || it->is_null()) {
    if (required) {
      fail(name, "is required");
    }
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> field_reader::text(const char* name, bool required, std::size_t max_len) {
  const auto* v = find(name, required);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (!v->is_string()) {
    fail(name, "must be a string");
    return std::nullopt;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.empty() || s.size() > max_len) {
    fail(name, "must be 1 to " + std::to_string(max_len) + " characters");
    return std::nullopt;
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      fail(name, "must not contain control characters");
      return std::nullopt;
    }
  }
  return s;
}

std::optional<std::string> field_reader::id(const char* name, bool required, std::size_t max_len) {
  auto s = text(name, required, max_len);
  if (s && !is_valid_id(*s, max_len)) {
    fail(name, "may contain only letters, digits and . _ : -");
    return std::nullopt;
  }
  return s;
}

std::optional<double> field_reader::number(const char* name, bool required, double min, double max) {
  const auto* v = find(name, required);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (!v->is_number()) {
    fail(name, "must be a number");
    return std::nullopt;
  }
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    std::ostringstream msg;
    msg << "must be between " << min << " and " << max;
    fail(name, msg.str());
    return std::nullopt;
  }
  return d;
}

std::optional<std::int64_t> field_reader::integer(const char* name, bool required, std::int64_t min, std::int64_t max) {
  const auto* v = find(name, required);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (!v->is_number_integer()) {
    fail(name, "must be a whole number");
    return std::nullopt;
  }
  const auto i = v->get<std::int64_t>();
  if (i < min || i > max) {
    fail(name, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return i;
}

std::optional<bool> field_reader::boolean(const char* name) {
  const auto* v = find(name, false);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (!v->is_boolean()) {
    fail(name, "must be true or false");
    return std::nullopt;
  }
  return v->get<bool>();
}

const json* field_reader::object(const char* name, bool required) {
  const auto* v = find(name, required);
  if (v != nullptr && !v->is_object()) {
    fail(name, "must be an object");
    return nullptr;
  }
  return v;
}

const json* field_reader::array(const char* name, bool required) {
  const auto* v = find(name, required);
  if (v != nullptr && !v->is_array()) {
    fail(name, "must be an array");
    return nullptr;
  }
  return v;
}

void field_reader::check_unknown() {
  for (auto it = _obj.begin(); it != _obj.end(); ++it) {
    if (_known.count(it.key()) == 0) {
      fail(it.key(), "is not a known field");
      return;
    }
  }
}

namespace {

constexpr double max_cores = 4096;
constexpr double max_memory_gb = 65536;
constexpr std::int64_t max_storage_gb = 1'000'000;

template <class E>
std::optional<E> named(field_reader& f, const char* field, bool required) {
  auto s = f.text(field, required, 32);
  if (!s) {
    return std::nullopt;
  }
  auto e = events::enum_from_name<E>(*s);
  if (!e) {
    std::string known;
    for (auto n : enum_names(E{})) {
      known += (known.empty() ? "" : ", ") + std::string{n};
    }
    f.fail(field, "'" + *s + "' is not one of: " + known);
  }
  return e;
}

// cpu (cores), memoryGb, storageGb in exact integer units; other members kept as extra JSON.
result<events::resource_spec> parse_spec(const json& spec, const std::string& path) {
  field_reader f{spec, path};
  events::resource_spec out;
  const auto cpu = f.number("cpu", true, 0.001, max_cores);
  const auto memory = f.number("memoryGb", true, 0.001, max_memory_gb);
  const auto storage = f.integer("storageGb", false, 0, max_storage_gb);
  if (!f.ok()) {
    return f.err();
  }
  out.cpu_millis = static_cast<std::int64_t>(std::llround(*cpu * 1000));
  out.memory_mb = static_cast<std::int64_t>(std::llround(*memory * 1024));
  out.storage_gb = storage.value_or(0);
  json extra = json::object();
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (it.key() != "cpu" && it.key() != "memoryGb" && it.key() != "storageGb") {
      extra[it.key()] = it.value();
    }
  }
  if (!extra.empty()) {
    out.extra_json = extra.dump();
  }
  return out;
}

bool compatible(events::service_type type, events::provider_type provider) {
  using events::provider_type;
  using events::service_type;
  if (provider == provider_type::simulation || provider == provider_type::manual) {
    return true;
  }
  switch (type) {
    case service_type::vps:
      return provider == provider_type::openstack || provider == provider_type::vmware ||
             provider == provider_type::proxmox;
    case service_type::namespace_:
      return provider == provider_type::openshift || provider == provider_type::kubernetes;
    case service_type::managed:
      return false;
  }
  return false;
}

}  // namespace

result<actors::submit_command> parse_submit(const json& body, const std::string& caller_tenant, const std::string& path) {
  if (!body.is_object()) {
    return make_error(errc::invalid_argument, (path.empty() ? std::string{"request body"} : path) + " must be a JSON object");
  }
  field_reader f{body, path};
  actors::submit_command cmd;
  const auto tenant = f.id("tenant", caller_tenant.empty());
  const auto type = named<events::service_type>(f, "type", true);
  const auto provider = named<events::provider_type>(f, "provider", true);
  const auto region = f.id("region", false);
  const auto* spec = f.object("spec", true);
  const auto* depends = f.array("dependsOn", false);
  const auto key = f.text("idempotencyKey", false, 255);
  const auto cluster = f.id("cluster", false);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  if (!caller_tenant.empty() && tenant && *tenant != caller_tenant) {
    return make_error(errc::forbidden, "a tenant token can only submit requests for its own tenant");
  }
  if (!compatible(*type, *provider)) {
    return make_error(errc::invalid_argument, "provider " + std::string{events::enum_name(*provider)} +
                                                  " cannot provision a " + std::string{events::enum_name(*type)});
  }
  auto parsed_spec = parse_spec(*spec, f.path_of("spec"));
  if (!parsed_spec) {
    return std::move(parsed_spec).err();
  }
  if (depends != nullptr) {
    // A request id, or "key:<idempotency key>" of a request of the same tenant (which may be
    // submitted later: this one waits for it).
    for (const auto& d : *depends) {
      const bool ok = d.is_string() && (is_valid_id(d.get_ref<const std::string&>(), 64) ||
                                        (d.get_ref<const std::string&>().rfind("key:", 0) == 0 &&
                                         d.get_ref<const std::string&>().size() > 4 &&
                                         d.get_ref<const std::string&>().size() <= 259));
      if (!ok) {
        return make_error(errc::invalid_argument,
                          f.path_of("dependsOn") + " must be an array of request ids or \"key:<idempotencyKey>\"");
      }
      cmd.depends_on.push_back(d.get<std::string>());
    }
    if (cmd.depends_on.size() > 100) {
      return make_error(errc::invalid_argument, f.path_of("dependsOn") + " may name at most 100 requests");
    }
    std::set<std::string> unique(cmd.depends_on.begin(), cmd.depends_on.end());
    if (unique.size() != cmd.depends_on.size()) {
      return make_error(errc::invalid_argument, f.path_of("dependsOn") + " names a request twice");
    }
  }
  cmd.tenant = tenant ? *tenant : caller_tenant;
  cmd.type = *type;
  cmd.provider = *provider;
  cmd.region = region.value_or("");
  cmd.spec = std::move(*parsed_spec);
  cmd.idempotency_key = key.value_or("");
  cmd.requested_cluster = cluster.value_or("");
  return cmd;
}

result<const json*> parse_submit_batch(const json& body, std::size_t max_items) {
  field_reader f{body, ""};
  const auto* items = f.array("requests", true);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  if (items->empty() || items->size() > max_items) {
    return make_error(errc::invalid_argument,
                      "requests must hold 1 to " + std::to_string(max_items) + " requests, not " +
                          std::to_string(items->size()));
  }
  return items;
}

result<events::tenant_quota> parse_quota(const json& quota, const std::string& path) {
  field_reader f{quota, path};
  events::tenant_quota q;
  const auto cpu = f.number("cpu", false, 0, 1e9);
  const auto memory = f.number("memoryGb", false, 0, 1e9);
  q.storage_gb = f.integer("storageGb", false, 0, 1'000'000'000);
  q.instances = f.integer("instances", false, 0, 1'000'000'000);
  if (const auto* by_type = f.object("instancesByType", false)) {
    for (auto it = by_type->begin(); it != by_type->end(); ++it) {
      if (!events::enum_from_name<events::service_type>(it.key())) {
        f.fail("instancesByType", "key '" + it.key() + "' is not a service type (vps, namespace, managed)");
        break;
      }
      if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0) {
        f.fail("instancesByType." + it.key(), "must be a non-negative whole number");
        break;
      }
      q.instances_by_type[it.key()] = it.value().get<std::int64_t>();
    }
  }
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  if (cpu) {
    q.cpu_millis = static_cast<std::int64_t>(std::llround(*cpu * 1000));
  }
  if (memory) {
    q.memory_mb = static_cast<std::int64_t>(std::llround(*memory * 1024));
  }
  return q;
}

result<actors::tenant_command> parse_tenant(const json& body) {
  field_reader f{body, ""};
  actors::tenant_command cmd;
  const auto id = f.id("id", true);
  const auto name = f.text("name", false, 256);
  const auto* quota = f.object("quota", false);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  cmd.id = *id;
  cmd.name = name.value_or(*id);
  if (quota != nullptr) {
    auto q = parse_quota(*quota, "quota");
    if (!q) {
      return std::move(q).err();
    }
    cmd.quota = *q;
  }
  return cmd;
}

result<events::rule_created> parse_rule(const json& body) {
  field_reader f{body, ""};
  events::rule_created r;
  const auto id = f.id("id", false);
  const auto name = f.text("name", true, 200);
  const auto scope = f.text("scope", false, 16);
  const auto tenant = f.id("tenant", false);
  const auto priority = f.integer("priority", false, -1'000'000, 1'000'000);
  const auto* conditions = f.object("conditions", true);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  const bool tenant_scope = scope.value_or(tenant ? "tenant" : "global") == "tenant";
  if (scope && *scope != "tenant" && *scope != "global") {
    return make_error(errc::invalid_argument, "scope must be \"global\" or \"tenant\"");
  }
  if (tenant_scope && !tenant) {
    return make_error(errc::invalid_argument, "a tenant-scoped rule needs \"tenant\"");
  }
  if (!tenant_scope && tenant) {
    return make_error(errc::invalid_argument, "a global rule takes no \"tenant\"");
  }
  field_reader c{*conditions, "conditions"};
  const auto min_cpu = c.number("minCpu", false, 0, 1e6);
  const auto min_memory = c.number("minMemoryGb", false, 0, 1e9);
  const auto min_storage = c.integer("minStorageGb", false, 0, 1'000'000'000);
  const auto* types = c.array("types", false);
  const auto* regions = c.array("regions", false);
  c.check_unknown();
  if (!c.ok()) {
    return c.err();
  }
  if (min_cpu) {
    r.conditions.min_cpu_millis = static_cast<std::int64_t>(std::llround(*min_cpu * 1000));
  }
  if (min_memory) {
    r.conditions.min_memory_mb = static_cast<std::int64_t>(std::llround(*min_memory * 1024));
  }
  r.conditions.min_storage_gb = min_storage;
  if (types != nullptr) {
    for (const auto& t : *types) {
      // Accept "VPS" as the seed writes it, as well as "vps".
      std::string name = t.is_string() ? t.get<std::string>() : std::string{};
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
      auto e = events::enum_from_name<events::service_type>(name);
      if (!e) {
        return make_error(errc::invalid_argument, "conditions.types: each must be vps, namespace or managed");
      }
      r.conditions.types.push_back(*e);
    }
  }
  if (regions != nullptr) {
    for (const auto& reg : *regions) {
      if (!reg.is_string() || !is_valid_id(reg.get_ref<const std::string&>(), 64)) {
        return make_error(errc::invalid_argument, "conditions.regions: each must be a region name");
      }
      r.conditions.regions.push_back(reg.get<std::string>());
    }
  }
  r.rule_id = id.value_or("");
  r.name = *name;
  r.tenant = tenant_scope ? *tenant : "";
  r.priority = priority.value_or(100);
  return r;
}

result<actors::manual_input> parse_manual_input(const json& body) {
  field_reader f{body, ""};
  const auto* endpoints = f.object("endpoints", true);
  const auto* credentials = f.object("credentials", false);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  actors::manual_input in;
  auto strings = [](const json& obj, const char* what, std::map<std::string, std::string>& out) -> status {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!it.value().is_string() || it.value().get_ref<const std::string&>().empty() || it.key().empty() ||
          it.key().size() > 64 || it.value().get_ref<const std::string&>().size() > 4096) {
        return make_error(errc::invalid_argument,
                          std::string{what} + "." + it.key() + " must be a non-empty string (at most 4096 characters)");
      }
      out.emplace(it.key(), it.value().get<std::string>());
    }
    return {};
  };
  if (auto st = strings(*endpoints, "endpoints", in.endpoints); !st) {
    return std::move(st).err();
  }
  if (in.endpoints.empty()) {
    return make_error(errc::invalid_argument, "endpoints must name at least one way to reach the service");
  }
  if (credentials != nullptr) {
    if (auto st = strings(*credentials, "credentials", in.credentials); !st) {
      return std::move(st).err();
    }
  }
  return in;
}

namespace {

// A body of at most one text member (`{"reason": "..."}`): its value, "" when the body or the
// member is absent and not `required`.
result<std::string> single_text(const std::string& body, const char* name, bool required, std::size_t max_len) {
  if (body.empty()) {
    if (required) {
      return make_error(errc::invalid_argument, std::string{name} + " is required: {\"" + name + "\": \"...\"}");
    }
    return std::string{};
  }
  auto obj = parse_object(body);
  if (!obj) {
    return std::move(obj).err();
  }
  field_reader f{*obj, ""};
  const auto value = f.text(name, required, max_len);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  return value.value_or("");
}

}  // namespace

result<std::string> parse_reason(const std::string& body, bool required) {
  return single_text(body, "reason", required, 1000);
}

result<std::string> parse_backup_name(const std::string& body) { return single_text(body, "name", false, 64); }

namespace {

std::optional<events::cluster_capacity> parse_capacity(field_reader& outer, const json* cap) {
  if (cap == nullptr) {
    return std::nullopt;
  }
  field_reader f{*cap, "capacity"};
  events::cluster_capacity c;
  c.cpu_millis = static_cast<std::int64_t>(std::llround(f.number("cpu", false, 0, 1e9).value_or(0) * 1000));
  c.memory_mb = static_cast<std::int64_t>(std::llround(f.number("memoryGb", false, 0, 1e9).value_or(0) * 1024));
  c.storage_gb = f.integer("storageGb", false, 0, 1'000'000'000).value_or(0);
  c.vm_slots = f.integer("vmSlots", false, 0, 1'000'000'000).value_or(0);
  f.check_unknown();
  if (!f.ok()) {
    outer.fail("capacity", f.err().message.substr(std::string{"capacity."}.size()));
    return std::nullopt;
  }
  return c;
}

// "simulation": {"failureRate": {"allocate": 0.1, ...}, "delayMs": {"min": .., "max": ..}, "seed": n}
std::optional<events::simulation_settings> parse_simulation(field_reader& outer, const json* sim,
                                                            events::simulation_settings s) {
  if (sim == nullptr) {
    return std::nullopt;
  }
  field_reader f{*sim, "simulation"};
  const auto* rates = f.object("failureRate", false);
  const auto* delay = f.object("delayMs", false);
  if (auto seed = f.integer("seed", false, 0, std::numeric_limits<std::int64_t>::max())) {
    s.seed = static_cast<std::uint64_t>(*seed);
  }
  f.check_unknown();
  std::optional<error> nested;
  if (f.ok() && rates != nullptr) {
    field_reader r{*rates, "simulation.failureRate"};
    s.fail_allocate = r.number("allocate", false, 0, 1).value_or(s.fail_allocate);
    s.fail_configure = r.number("configure", false, 0, 1).value_or(s.fail_configure);
    s.fail_activate = r.number("activate", false, 0, 1).value_or(s.fail_activate);
    s.fail_verify = r.number("verify", false, 0, 1).value_or(s.fail_verify);
    s.fail_rollback = r.number("rollback", false, 0, 1).value_or(s.fail_rollback);
    s.hang_rate = r.number("hang", false, 0, 1).value_or(s.hang_rate);
    r.check_unknown();
    if (!r.ok()) {
      nested = r.err();
    }
  }
  if (f.ok() && !nested && delay != nullptr) {
    field_reader d{*delay, "simulation.delayMs"};
    s.delay_min_ms = d.integer("min", false, 0, 3'600'000).value_or(s.delay_min_ms);
    s.delay_max_ms = d.integer("max", false, 0, 3'600'000).value_or(s.delay_max_ms);
    d.check_unknown();
    if (!d.ok()) {
      nested = d.err();
    } else if (s.delay_max_ms < s.delay_min_ms) {
      nested = make_error(errc::invalid_argument, "simulation.delayMs.max must be >= min");
    }
  }
  if (!f.ok()) {
    nested = f.err();
  }
  if (nested) {
    outer.fail("simulation", nested->message.substr(std::string{"simulation"}.size() + 1));
    return std::nullopt;
  }
  return s;
}

}  // namespace

result<cluster_input<events::cluster_registered>> parse_cluster(const json& body) {
  field_reader f{body, ""};
  events::cluster_registered c;
  const auto* settings = f.object("settings", false);
  const auto* credentials = f.object("credentials", false);
  const auto id = f.id("id", true);
  const auto name = f.text("name", false);
  const auto type = named<events::provider_type>(f, "type", true);
  const auto region = f.id("region", true);
  const auto endpoint = f.text("endpoint", false, 2048);
  const auto capacity = parse_capacity(f, f.object("capacity", false));
  const auto enabled = f.boolean("enabled");
  const auto is_default = f.boolean("isDefault");
  const auto health = named<events::cluster_health>(f, "health", false);
  const auto* sim = f.object("simulation", false);
  const auto simulation = parse_simulation(f, sim, {});
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  if (sim != nullptr && *type != events::provider_type::simulation) {
    return make_error(errc::invalid_argument, "simulation settings apply only to clusters of type simulation");
  }
  c.cluster_id = *id;
  c.name = name.value_or(*id);
  c.type = *type;
  c.region = *region;
  c.endpoint = endpoint.value_or("");
  c.capacity = capacity.value_or(events::cluster_capacity{});
  c.enabled = enabled.value_or(true);
  c.is_default = is_default.value_or(false);
  c.health = health.value_or(events::cluster_health::healthy);
  c.simulation = simulation.value_or(events::simulation_settings{});
  c.settings_json = settings != nullptr ? settings->dump() : std::string{};
  return cluster_input<events::cluster_registered>{std::move(c), credentials != nullptr ? credentials->dump() : ""};
}

result<cluster_input<events::cluster_updated>> parse_cluster_patch(const json& body,
                                                                   const events::cluster_state& current) {
  field_reader f{body, ""};
  events::cluster_updated u;
  const auto* settings = f.object("settings", false);
  const auto* credentials = f.object("credentials", false);
  u.name = f.text("name", false);
  u.endpoint = f.text("endpoint", false, 2048);
  u.capacity = parse_capacity(f, f.object("capacity", false));
  u.enabled = f.boolean("enabled");
  u.is_default = f.boolean("isDefault");
  u.health = named<events::cluster_health>(f, "health", false);
  const auto* sim = f.object("simulation", false);
  u.simulation = parse_simulation(f, sim, current.simulation);
  f.check_unknown();
  if (!f.ok()) {
    return f.err();
  }
  if (sim != nullptr && current.type != events::provider_type::simulation) {
    return make_error(errc::invalid_argument, "simulation settings apply only to clusters of type simulation");
  }
  if (settings != nullptr) {
    u.settings_json = settings->dump();
  }
  if (u == events::cluster_updated{} && credentials == nullptr) {
    return make_error(errc::invalid_argument, "nothing to change: give at least one field");
  }
  return cluster_input<events::cluster_updated>{std::move(u), credentials != nullptr ? credentials->dump() : ""};
}

}  // namespace prov::gateway::detail
