#include "prov/providers/simulation_provider.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <span>

#include "prov/core/ids.hpp"

namespace prov::providers {

namespace {

using events::service_type;
using events::step_kind;

struct failure_text {
  std::string_view code;
  std::string_view message;
};

// What a step creates, in creation order (see the header).
std::span<const std::string_view> plan(service_type type, step_kind step) {
  static constexpr std::array<std::string_view, 3> vps_allocate{"security_group", "volume", "server"};
  static constexpr std::array<std::string_view, 1> vps_configure{"floating_ip"};
  static constexpr std::array<std::string_view, 1> ns_allocate{"namespace"};
  static constexpr std::array<std::string_view, 4> ns_configure{"resource_quota", "limit_range", "role_binding",
                                                                "network_policy"};
  static constexpr std::array<std::string_view, 1> managed_allocate{"service_instance"};
  switch (type) {
    case service_type::vps:
      if (step == step_kind::allocate) return vps_allocate;
      if (step == step_kind::configure) return vps_configure;
      return {};
    case service_type::namespace_:
      if (step == step_kind::allocate) return ns_allocate;
      if (step == step_kind::configure) return ns_configure;
      return {};
    case service_type::managed:
      if (step == step_kind::allocate) return managed_allocate;
      return {};
  }
  return {};
}

failure_text failure_for(service_type type, step_kind step) {
  switch (step) {
    case step_kind::allocate: return {"capacity", "No valid host was found: not enough capacity"};
    case step_kind::configure: return {"network", "Floating IP pool exhausted"};
    case step_kind::activate:
      return {"timeout", type == service_type::namespace_ ? "namespace did not become Active"
                                                          : "server did not reach ACTIVE in time"};
    case step_kind::verify:
      return {"health_check", type == service_type::vps ? "TCP connect to port 22 refused"
                                                        : "readiness probe failed"};
  }
  return {"internal", "unknown step"};
}

std::string short_id(const std::string& request_id) {
  std::string out;
  for (char c : request_id) {
    if (c != '-') {
      out.push_back(c);
    }
  }
  return out.size() > 12 ? out.substr(out.size() - 12) : out;
}

// A DNS-1123 label made of the tenant and the request.
std::string namespace_name(const step_call& call) {
  std::string name = "prov-";
  for (char c : call.tenant) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      name.push_back(c);
    } else if (c >= 'A' && c <= 'Z') {
      name.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      name.push_back('-');
    }
    if (name.size() >= 40) {
      break;
    }
  }
  return name + "-" + short_id(call.request_id);
}

std::string floating_address(const std::string& resource_id) {
  const auto h = stable_hash64(resource_id);
  return "198." + std::to_string(18 + (h & 1)) + "." + std::to_string((h >> 8) & 0xff) + "." +
         std::to_string(1 + ((h >> 16) % 254));
}

std::string make_resource_id(std::string_view kind, const step_call& call) {
  if (kind == "namespace") {
    return namespace_name(call);
  }
  if (kind == "service_instance") {
    return "svc-" + random_hex(6);
  }
  return make_uuid_v4();
}

provider_error internal(const error& e) { return provider_error{"internal", e.message, true}; }

}  // namespace

simulation_provider::simulation_provider(std::string cluster_id, events::simulation_settings settings,
                                         inventory_store& store, const clock& clk)
    : _cluster(std::move(cluster_id)), _settings(settings), _store(store), _clock(clk) {}

void simulation_provider::update(const events::simulation_settings& settings) {
  std::lock_guard<std::mutex> guard{_mutex};
  _settings = settings;
}

events::simulation_settings simulation_provider::settings() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _settings;
}

std::chrono::milliseconds simulation_provider::delay_for(const std::string& key) const {
  const auto s = settings();
  if (s.delay_max_ms <= s.delay_min_ms) {
    return std::chrono::milliseconds{std::max<std::int64_t>(0, s.delay_min_ms)};
  }
  const auto span = static_cast<std::uint64_t>(s.delay_max_ms - s.delay_min_ms + 1);
  return std::chrono::milliseconds{s.delay_min_ms + static_cast<std::int64_t>(stable_hash64(key + "#delay", s.seed) % span)};
}

bool simulation_provider::decide_failure(const std::string& key, double rate) const {
  if (rate <= 0) {
    return false;
  }
  if (rate >= 1) {
    return true;
  }
  const auto h = stable_hash64(key + "#fail", settings().seed);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < rate;
}

step_outcome simulation_provider::run_step(const step_call& call) {
  step_outcome out;
  out.delay = delay_for(call.idempotency_key);
  const auto s = settings();
  if (s.hang_rate > 0 && decide_failure(call.idempotency_key + "#hang", s.hang_rate)) {
    out.delay = never_answers;  // the API accepted the call and was never heard of again
    return out;
  }
  const auto planned = plan(call.type, call.step);
  const bool fail = decide_failure(call.idempotency_key, s.failure_rate(call.step));
  // A failing vps allocation gets as far as its volume: a partial allocation.
  const std::size_t to_create = !fail ? planned.size()
                                : (call.type == service_type::vps && call.step == step_kind::allocate) ? 2
                                                                                                       : 0;
  // A first try has nothing to adopt: no lookup.
  auto existing = call.first_try ? result<std::vector<inventory_item>>{std::vector<inventory_item>{}}
                                 : _store.by_key(_cluster, call.request_id, call.idempotency_key);
  if (!existing) {
    out.error = internal(existing.err());
    return out;
  }
  std::vector<inventory_item> created;
  created.reserve(to_create);
  for (std::size_t i = 0; i < to_create; ++i) {
    const auto kind = planned[i];
    const inventory_item* adopted = nullptr;
    for (const auto& item : *existing) {
      if (item.kind == kind) {
        adopted = &item;
      }
    }
    const inventory_item* item = adopted;
    if (item == nullptr) {
      auto& fresh = created.emplace_back();
      fresh.cluster = _cluster;
      fresh.kind = std::string{kind};
      fresh.id = make_resource_id(kind, call);
      fresh.name = kind == "floating_ip" ? floating_address(fresh.id)
                                         : "prov-" + short_id(call.request_id) + "-" + std::string{kind};
      fresh.request_id = call.request_id;
      fresh.idempotency_key = call.idempotency_key;
      fresh.step = call.step;
      fresh.created_at = _clock.now();
      item = &fresh;
    }
    out.resources.push_back(
        events::resource{item->kind, item->id, item->name, call.step, call.idempotency_key, false});
  }
  // One write for the call's record: what it adopted and what it created.
  if (!created.empty()) {
    auto record = std::move(*existing);
    record.insert(record.end(), std::make_move_iterator(created.begin()), std::make_move_iterator(created.end()));
    if (auto st = _store.put_call(record); !st) {
      out.resources.clear();
      out.error = internal(st.err());
      return out;
    }
  }
  if (fail) {
    const auto text = failure_for(call.type, call.step);
    out.error = provider_error{std::string{text.code}, std::string{text.message}, true};
    return out;
  }
  out.ok = true;
  if (call.step == step_kind::activate) {
    // Access details, as a cloud returns them once the service is up. Secrets: the engine
    // seals them before anything is written.
    if (call.type == service_type::namespace_) {
      out.credentials = {{"token", "sim-sa-" + random_hex(24)}};
    } else {
      out.credentials = {{"username", call.type == service_type::vps ? "cloud-user" : "admin"},
                         {"password", random_hex(12)}};
    }
  }
  if (call.step == step_kind::configure) {
    if (call.type == service_type::vps) {
      const auto& ip = out.resources.front().name;
      out.endpoints = {{"ssh", "ssh://cloud-user@" + ip + ":22"}, {"http", "http://" + ip}, {"https", "https://" + ip}};
    } else if (call.type == service_type::namespace_) {
      std::string ns;
      for (const auto& r : call.resources) {
        if (r.kind == "namespace") {
          ns = r.id;
        }
      }
      out.endpoints = {{"api", "https://api." + _cluster + ".sim.local:6443"},
                       {"console", "https://console." + _cluster + ".sim.local/k8s/ns/" + ns},
                       {"namespace", ns}};
    }
  } else if (call.step == step_kind::allocate && call.type == service_type::managed) {
    out.endpoints = {{"url", "https://" + out.resources.front().id + "." + _cluster + ".managed.sim.local"}};
  }
  return out;
}

release_outcome simulation_provider::release(const release_call& call) {
  release_outcome out;
  out.delay = delay_for(call.idempotency_key);
  if (const auto hang = settings().hang_rate; hang > 0 && decide_failure(call.idempotency_key + "#hang", hang)) {
    out.delay = never_answers;
    return out;
  }
  if (decide_failure(call.idempotency_key, settings().fail_rollback)) {
    out.error = provider_error{"timeout", "delete of " + call.resource.kind + " " + call.resource.id + " timed out", true};
    return out;
  }
  auto erased = _store.erase(_cluster, call.request_id, call.resource.id);
  if (!erased) {
    out.error = internal(erased.err());
    return out;
  }
  out.ok = true;  // already gone counts as released
  return out;
}

sweep_outcome simulation_provider::sweep(const std::string& request_id) {
  sweep_outcome out;
  out.delay = delay_for(request_id + "#sweep");
  auto left = _store.by_request(_cluster, request_id);
  if (!left) {
    out.error = internal(left.err());
    return out;
  }
  for (const auto& item : *left) {
    auto erased = _store.erase(_cluster, item.request_id, item.id);
    if (!erased) {
      out.error = internal(erased.err());
      return out;
    }
    if (*erased) {
      out.released.push_back(events::resource{item.kind, item.id, item.name, item.step, item.idempotency_key, true});
    }
  }
  out.ok = true;
  return out;
}

action_outcome simulation_provider::set_suspended(const service_call& call, bool suspended) {
  action_outcome out;
  out.delay = delay_for(call.idempotency_key);
  auto items = _store.by_request(_cluster, call.request_id);
  if (!items) {
    out.error = internal(items.err());
    return out;
  }
  std::vector<inventory_item> changed;
  for (auto& item : *items) {
    if (item.suspended != suspended) {
      item.suspended = suspended;
      changed.push_back(std::move(item));
    }
  }
  if (auto st = _store.put_all(changed); !st) {
    out.error = internal(st.err());
    return out;
  }
  out.ok = true;
  return out;
}

action_outcome simulation_provider::suspend(const service_call& call) { return set_suspended(call, true); }

action_outcome simulation_provider::reactivate(const service_call& call) { return set_suspended(call, false); }

metrics_sample simulation_provider::metrics(const service_call& call) {
  metrics_sample m;
  m.at = _clock.now();
  auto items = _store.by_request(_cluster, call.request_id);
  if (!items) {
    m.error = internal(items.err());
    return m;
  }
  if (items->empty()) {
    m.error = provider_error{"not_found", "no resources of request " + call.request_id + " at " + _cluster, false};
    return m;
  }
  const bool suspended = items->front().suspended;
  // Smooth, plausible, changing numbers: a per-request phase plus the minutes the service has
  // existed (since its first resource was created).
  auto born = items->front().created_at;
  for (const auto& item : *items) {
    born = std::min(born, item.created_at);
  }
  const double phase = static_cast<double>(stable_hash64(call.request_id) % 6283) / 1000.0;
  const double t = std::max(0.0, static_cast<double>((m.at - born).count()) / 60e6);  // minutes
  const double cores = std::max<double>(1.0, static_cast<double>(call.spec.cpu_millis) / 1000.0);
  const double memory = static_cast<double>(std::max<std::int64_t>(call.spec.memory_mb, 256));
  m.cpu_percent = suspended ? 0.0 : 35.0 + 25.0 * std::sin(t + phase);
  m.memory_used_mb = suspended ? 0.0 : memory * (0.45 + 0.15 * std::sin(t / 3 + phase));
  m.disk_used_gb = std::min(static_cast<double>(call.spec.storage_gb),
                            static_cast<double>(call.spec.storage_gb) * 0.3 + t * 0.001);
  // Counters since boot: they only grow (and stand still while suspended).
  m.network_rx_bytes = 1.0e6 * cores * (t + phase);
  m.network_tx_bytes = 0.4e6 * cores * (t + phase);
  m.ok = true;
  return m;
}

result<std::vector<inventory_item>> simulation_provider::inventory() { return _store.list(_cluster); }

connectivity_report simulation_provider::test_connectivity() {
  return connectivity_report{true, delay_for("connectivity"), "simulation cluster " + _cluster + " is reachable"};
}

}  // namespace prov::providers
