#include "prov/events/rule.hpp"

#include <algorithm>

namespace prov::events {

bool rule_conditions::matches(const resource_spec& spec, service_type type, const std::string& region) const {
  if (min_cpu_millis && spec.cpu_millis < *min_cpu_millis) {
    return false;
  }
  if (min_memory_mb && spec.memory_mb < *min_memory_mb) {
    return false;
  }
  if (min_storage_gb && spec.storage_gb < *min_storage_gb) {
    return false;
  }
  if (!types.empty() && std::find(types.begin(), types.end(), type) == types.end()) {
    return false;
  }
  if (!regions.empty() && std::find(regions.begin(), regions.end(), region) == regions.end()) {
    return false;
  }
  return true;
}

const rule_state* first_matching_rule(const std::vector<rule_state>& rules, const std::string& tenant,
                                      const resource_spec& spec, service_type type, const std::string& region) {
  const rule_state* best = nullptr;
  auto before = [](const rule_state& a, const rule_state& b) {
    if (a.priority != b.priority) {
      return a.priority < b.priority;
    }
    if (a.tenant.empty() != b.tenant.empty()) {
      return !a.tenant.empty();  // tenant rule first
    }
    if (a.created_at != b.created_at) {
      return a.created_at < b.created_at;
    }
    return a.id < b.id;
  };
  for (const auto& r : rules) {
    if (r.deleted || (!r.tenant.empty() && r.tenant != tenant) || !r.conditions.matches(spec, type, region)) {
      continue;
    }
    if (best == nullptr || before(r, *best)) {
      best = &r;
    }
  }
  return best;
}

}  // namespace prov::events
